package netlab

import (
	"fmt"
	"os/exec"
	"testing"

	"vigil/internal/nslab"
)

// The lab's helpers these tests used when the lab lived in this package.
var (
	poll     = nslab.Poll
	nsPids   = nslab.NamespacePids
	nsExists = nslab.NamespaceExists
)

// ip runs `ip args...` in the root namespace, for the tests that look at namespaces behind the
// lab's back.
func ip(args ...string) ([]byte, error) {
	bin, err := IPPath()
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ip %v: %w: %s", args, err, out)
	}
	return out, nil
}

// tagged is Tagged for the tests that build labs without NewForTest.
func tagged(t *testing.T, prefix string) string {
	t.Helper()
	p, err := Tagged(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
