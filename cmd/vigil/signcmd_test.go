package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vigil/config"
)

// vigil config keygen and sign (issue 14): keygen writes PATH and PATH.pub and refuses to
// replace them; sign writes FILE.sig over FILE's exact bytes; push sends FILE.sig when it
// exists, the --signature file, or nothing with --unsigned, and refuses a signature made for
// another version of the file before it reaches the daemon.
func TestConfigKeygenSignPushSignature(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "fleet.key")
	out, code, msg := run(t, "config", "keygen", "--out", key)
	if code != 0 || !strings.Contains(out, "trusted_keys: [vigil-ed25519-pub:") {
		t.Fatalf("keygen: %d %q %q", code, out, msg)
	}
	if _, code, msg := run(t, "config", "keygen", "--out", key); code != 1 || !strings.Contains(msg, "exists") {
		t.Errorf("keygen over an existing key: %d %q", code, msg)
	}
	if _, code, _ := run(t, "config", "keygen"); code != 2 {
		t.Errorf("keygen without --out: exit %d, want 2", code)
	}
	doc := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(doc, []byte("nodes: { n1: {} }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(doc)
	// Unsigned so far: push sends nothing.
	if sig, err := pushSignature(doc, data, "", false); sig != "" || err != nil {
		t.Fatalf("no FILE.sig: %q %v", sig, err)
	}
	if out, code, msg := run(t, "config", "sign", "--key", key, doc); code != 0 || !strings.Contains(out, doc+".sig") {
		t.Fatalf("sign: %d %q %q", code, out, msg)
	}
	other := filepath.Join(dir, "other.sig")
	if _, code, msg := run(t, "config", "sign", "--key", key, doc, "-o", other); code != 0 {
		t.Fatalf("sign -o: %d %q", code, msg)
	}
	pubs, err := config.ReadPublicKeys(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	trusted := config.NewTrustedKeys(pubs...)
	for _, c := range []struct {
		name     string
		sigFile  string
		unsigned bool
		signed   bool
		err      string
	}{
		{"FILE.sig found", "", false, true, ""},
		{"--signature", other, false, true, ""},
		{"--unsigned", "", true, false, ""},
		{"--signature missing", filepath.Join(dir, "none.sig"), false, false, "no such file"},
		{"both", other, true, false, "contradict"},
		{"not a signature file", key + ".pub", false, false, "fleet.key.pub:2: a vigil-ed25519-pub: line"},
	} {
		sig, err := pushSignature(doc, data, c.sigFile, c.unsigned)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want %q", c.name, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.signed:
			if _, err := trusted.Verify(data, sig); err != nil {
				t.Errorf("%s: the signature sent does not verify: %v", c.name, err)
			}
		case sig != "":
			t.Errorf("%s: a signature sent", c.name)
		}
	}
	// The file changed after signing: push refuses FILE.sig at once.
	if err := os.WriteFile(doc, []byte("nodes: { n1: {}, n2: {} }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(doc)
	if _, err := pushSignature(doc, data, "", false); err == nil || !strings.Contains(err.Error(), "another version of") {
		t.Errorf("a stale FILE.sig: %v", err)
	}
	if _, code, msg := run(t, "config", "push", doc, "--socket", filepath.Join(dir, "no.sock")); code != 1 || !strings.Contains(msg, "does not match") {
		t.Errorf("push with a stale FILE.sig: %d %q", code, msg)
	}
}
