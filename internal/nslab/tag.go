package nslab

import (
	"fmt"
	"os"
)

// EnvLabTag, when set to one lowercase letter, is put in front of the prefix of every test lab
// (test/netlab's NewForTest) and of `vigil demo`'s, so two checkouts can run the same namespace
// tests at the same time without removing each other's labs (Cleanup goes by prefix).
const EnvLabTag = "VIGIL_LAB_TAG"

// Tagged returns prefix with the letter of VIGIL_LAB_TAG in front; a
// package that calls Cleanup itself must pass its prefix through Tagged too, or a tagged run would
// remove an untagged run's labs.
func Tagged(prefix string) (string, error) {
	tag := os.Getenv(EnvLabTag)
	if tag == "" {
		return prefix, nil
	}
	if len(tag) != 1 || tag[0] < 'a' || tag[0] > 'z' {
		return "", fmt.Errorf("netlab: %s=%q: want one lowercase letter", EnvLabTag, tag)
	}
	return tag + prefix, nil
}
