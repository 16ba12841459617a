package node

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"

	"vigil/config"
	"vigil/gossip"
)

func signer(n byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{n}, ed25519.SeedSize))
}

// Issue 14: the node that takes a push, if it has trusted keys, refuses unsigned and badly
// signed documents; without trusted keys it takes both, but a signature given must be one of
// this document (signing another file is caught at the push).
func TestCheckPushSignature(t *testing.T) {
	doc, other := []byte("nodes: { n1: {} }\n"), []byte("nodes: { n2: {} }\n")
	a, b := signer(1), signer(2)
	trusted := config.NewTrustedKeys(a.Public().(ed25519.PublicKey))
	aID := config.KeyID(a.Public().(ed25519.PublicKey))
	cases := []struct {
		name    string
		trusted config.TrustedKeys
		sig     string
		want    error // nil: taken
		id      string
	}{
		{"no trusted keys, unsigned", config.TrustedKeys{}, "", nil, ""},
		{"no trusted keys, signed", config.TrustedKeys{}, config.SignDocument(b, doc), nil, config.KeyID(b.Public().(ed25519.PublicKey))},
		{"no trusted keys, signature of another document", config.TrustedKeys{}, config.SignDocument(b, other), config.ErrBadSignature, config.KeyID(b.Public().(ed25519.PublicKey))},
		{"trusted, signed by it", trusted, config.SignDocument(a, doc), nil, aID},
		{"trusted, unsigned", trusted, "", config.ErrUnsigned, ""},
		{"trusted, another key", trusted, config.SignDocument(b, doc), config.ErrUntrustedKey, config.KeyID(b.Public().(ed25519.PublicKey))},
		{"trusted, signature of another document", trusted, config.SignDocument(a, other), config.ErrBadSignature, aID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := checkPushSignature(c.trusted, doc, c.sig)
			switch {
			case c.want == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != nil && (!errors.Is(err, c.want) || !errors.Is(err, ErrPushSignature)):
				t.Fatalf("error %v, want %v and %v", err, ErrPushSignature, c.want)
			}
			if id != c.id {
				t.Errorf("key id %q, want %q", id, c.id)
			}
		})
	}
}

// Of the announcements of one version, a follower takes a signed one (a member of an earlier
// vigil re-announces without the signature); a newer version always wins.
func TestPreferredAnnouncement(t *testing.T) {
	ann := func(n uint64, sig string) gossip.ConfigAnnouncement {
		return gossip.ConfigAnnouncement{Version: n, Hash: "aa", Origin: "n1", Signature: sig}
	}
	planned := func(a gossip.ConfigAnnouncement) gossip.ConfigAnnouncement {
		a.Plan = gossip.RolloutPlan{Canary: []string{"n2"}}
		return a
	}
	cases := []struct {
		name string
		a    gossip.ConfigAnnouncement
		best *gossip.ConfigAnnouncement
		want bool
	}{
		{"the first", ann(1, ""), nil, true},
		{"newer, unsigned", ann(2, ""), new(ann(1, "s")), true},
		{"older, signed", ann(1, "s"), new(ann(2, "")), false},
		{"same version, signed over unsigned", ann(2, "s"), new(ann(2, "")), true},
		{"same version, unsigned over signed", ann(2, ""), new(ann(2, "s")), false},
		{"same version, both signed", ann(2, "t"), new(ann(2, "s")), false},
		{"same version and signing, with a plan over without", planned(ann(2, "s")), new(ann(2, "s")), true},
		{"same version and signing, without a plan", ann(2, "s"), new(planned(ann(2, "s"))), false},
		{"a plan does not beat a signature", planned(ann(2, "")), new(ann(2, "s")), false},
	}
	for _, c := range cases {
		if got := preferred(c.a, c.best); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
