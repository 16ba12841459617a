package config

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testSigner is a deterministic ed25519 key (seed n repeated).
func testSigner(n byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{n}, ed25519.SeedSize))
}

func testPub(n byte) ed25519.PublicKey { return testSigner(n).Public().(ed25519.PublicKey) }

// Issue 14: "a node with trusted keys refuses unsigned and badly signed documents"; a node
// without trusted keys accepts both. The signature covers the document's exact bytes.
func TestTrustedKeysVerify(t *testing.T) {
	doc := []byte("vrrp: {}\nnodes: { lb1: {} }\n")
	other := []byte("vrrp: {}\nnodes: { lb1: {}, lb2: {} }\n")
	a, b := testSigner(1), testSigner(2)
	// forged claims key a with a signature made by b.
	forged := func() string {
		raw := append(append([]byte{}, testPub(1)...), ed25519.Sign(b, doc)...)
		return SignaturePrefix + base64.StdEncoding.EncodeToString(raw)
	}()
	none, onlyA, both := NewTrustedKeys(), NewTrustedKeys(testPub(1)), NewTrustedKeys(testPub(2), testPub(1))
	cases := []struct {
		name    string
		trusted TrustedKeys
		doc     []byte
		sig     string
		want    error // nil: taken
		id      string
	}{
		{"no trusted keys: unsigned taken", none, doc, "", nil, ""},
		{"no trusted keys: signature not looked at", none, doc, "garbage", nil, ""},
		{"signed by the trusted key", onlyA, doc, SignDocument(a, doc), nil, KeyID(testPub(1))},
		{"signed by the second trusted key", both, doc, SignDocument(b, doc), nil, KeyID(testPub(2))},
		{"unsigned", onlyA, doc, "", ErrUnsigned, ""},
		{"signed by another key", onlyA, doc, SignDocument(b, doc), ErrUntrustedKey, KeyID(testPub(2))},
		{"the signature of another document", onlyA, doc, SignDocument(a, other), ErrBadSignature, KeyID(testPub(1))},
		{"one byte changed (a trailing newline)", onlyA, append(bytes.Clone(doc), '\n'), SignDocument(a, doc), ErrBadSignature, KeyID(testPub(1))},
		{"forged: the trusted key named, another key's signature", onlyA, doc, forged, ErrBadSignature, KeyID(testPub(1))},
		{"malformed: not base64", onlyA, doc, SignaturePrefix + "!!!", ErrBadSignature, ""},
		{"malformed: no prefix", onlyA, doc, strings.TrimPrefix(SignDocument(a, doc), SignaturePrefix), ErrBadSignature, ""},
		{"malformed: a public key instead", onlyA, doc, PublicKeyLine(testPub(1)), ErrBadSignature, ""},
		{"malformed: short", onlyA, doc, SignDocument(a, doc)[:100], ErrBadSignature, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := c.trusted.Verify(c.doc, c.sig)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("Verify: %v, want %v", err, c.want)
			}
			if id != c.id {
				t.Errorf("key id %q, want %q", id, c.id)
			}
			if c.want != nil && SignatureReason(err) == "" {
				t.Errorf("no reason for %v", err)
			}
		})
	}
	if r := SignatureReason(errors.New("other")); r != "" {
		t.Errorf("reason of another error: %q", r)
	}
}

// The node that takes a push checks a given signature against the document even without
// trusted keys (signing the wrong file is caught at once); "" is unsigned.
func TestCheckSignature(t *testing.T) {
	doc := []byte("nodes: { lb1: {} }\n")
	if _, err := CheckSignature(doc, ""); !errors.Is(err, ErrUnsigned) {
		t.Errorf("empty: %v", err)
	}
	if id, err := CheckSignature(doc, SignDocument(testSigner(3), doc)); err != nil || id != KeyID(testPub(3)) {
		t.Errorf("good: %q %v", id, err)
	}
	if _, err := CheckSignature([]byte("nodes: { lb2: {} }\n"), SignDocument(testSigner(3), doc)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another document: %v", err)
	}
}

// TrustedKeys is a set: order and repetition do not matter, and Config diffs compare it.
func TestTrustedKeysSet(t *testing.T) {
	x, y := NewTrustedKeys(testPub(1), testPub(2), testPub(1)), NewTrustedKeys(testPub(2), testPub(1))
	if x != y || x.Len() != 2 || !x.Trusts(testPub(2)) || x.Trusts(testPub(3)) {
		t.Errorf("sets: %v %v len %d", x.IDs(), y.IDs(), x.Len())
	}
	if (TrustedKeys{}).Len() != 0 || NewTrustedKeys() != (TrustedKeys{}) {
		t.Error("the empty set")
	}
	if id := KeyID(testPub(1)); len(id) != 12 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Errorf("key id %q: want 12 hex digits", id)
	}
}

// vigil config keygen writes the private key 0600 and PATH.pub, refuses to replace either
// without force; the files read back; a signature file round-trips.
func TestSigningKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fleet.key")
	id, err := WriteSigningKey(path, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode: %v %v", fi, err)
	}
	priv, err := ReadSigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := ReadPublicKeys(path + ".pub")
	if err != nil || len(pubs) != 1 || !pubs[0].Equal(priv.Public()) || KeyID(pubs[0]) != id {
		t.Fatalf("public key: %v %v", pubs, err)
	}
	if _, err := WriteSigningKey(path, false, nil); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("overwrite without force: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteSigningKey(path, false, nil); err == nil || !strings.Contains(err.Error(), "fleet.key.pub exists") {
		t.Errorf("a left .pub is replaced without force: %v", err)
	}
	id2, err := WriteSigningKey(path, true, nil)
	if err != nil || id2 == id {
		t.Errorf("--force: %q %v (a new key)", id2, err)
	}

	doc := []byte("nodes: { lb1: {} }\n")
	sig := SignDocument(priv, doc)
	sigPath := filepath.Join(dir, "fleet.yaml.sig")
	if err := os.WriteFile(sigPath, FormatSignature(sig, doc), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSignature(sigPath)
	if err != nil || got != sig {
		t.Fatalf("signature file: %q %v", got, err)
	}
	if _, err := NewTrustedKeys(pubs...).Verify(doc, got); err != nil {
		t.Errorf("the signature read back does not verify: %v", err)
	}
}

// Parse errors name FILE:LINE and never quote key material.
func TestKeyFileErrors(t *testing.T) {
	pub := PublicKeyLine(testPub(1))
	priv := PrivateKeyPrefix + base64.StdEncoding.EncodeToString(testSigner(1).Seed())
	sig := SignDocument(testSigner(1), []byte("x"))
	short := PublicKeyPrefix + base64.StdEncoding.EncodeToString(make([]byte, 31))
	cases := []struct {
		name, text string
		read       func(string) error
		want       string
	}{
		{"private: a public key", "# c\n" + pub + "\n", readPriv, "k:2: a vigil-ed25519-pub: line where an ed25519 private key"},
		{"private: no prefix", "\n" + strings.TrimPrefix(priv, PrivateKeyPrefix) + "\n", readPriv, "k:2: not an ed25519 private key: want one line vigil-ed25519-key:BASE64"},
		{"private: bad base64", PrivateKeyPrefix + "a*b\n", readPriv, "k:1: an ed25519 private key: not base64"},
		{"private: two", priv + "\n" + priv + "\n", readPriv, "k:2: a second an ed25519 private key"},
		{"private: empty", "# nothing\n", readPriv, "k: no an ed25519 private key in it"},
		{"public: short", pub + "\n\n" + short + "\n", readPubs, "k:3: an ed25519 public key: 31 bytes, want 32"},
		{"public: a private key", pub + "\n" + priv + "\n", readPubs, "k:2: a vigil-ed25519-key: line"},
		{"public: none", "\n", readPubs, "k: no public key in it"},
		{"signature: a public key", pub + "\n", readSig, "k:1: a vigil-ed25519-pub: line where a vigil signature"},
		{"signature: two", sig + "\n" + sig + "\n", readSig, "k:2: a second"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k")
			if err := os.WriteFile(path, []byte(c.text), 0o600); err != nil {
				t.Fatal(err)
			}
			err := c.read(path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			for _, secret := range []string{pub, priv, sig} {
				if b64 := secret[strings.IndexByte(secret, ':')+1:]; strings.Contains(err.Error(), b64[:16]) {
					t.Errorf("the error quotes key material: %v", err)
				}
			}
		})
	}
}

func readPriv(p string) error { _, err := ReadSigningKey(p); return err }
func readPubs(p string) error { _, err := ReadPublicKeys(p); return err }
func readSig(p string) error  { _, err := ReadSignature(p); return err }

// fleet.trusted_keys and fleet.trusted_keys_file (issue 14: "trusted public keys in the local
// file"): their union is trusted; each problem is at its key path, without the key.
func TestFleetTrustedKeysConfig(t *testing.T) {
	base := lbDoc(httpVS) + "gossip: { insecure: true }\n"
	file := filepath.Join(t.TempDir(), "trusted.pub")
	if err := os.WriteFile(file, append(FormatPublicKey(testPub(2)), FormatPublicKey(testPub(1))...), 0o644); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, base+"fleet: { config: follow, trusted_keys: ["+PublicKeyLine(testPub(1))+"], trusted_keys_file: "+file+" }\n")
	if c.Fleet.Trusted != NewTrustedKeys(testPub(1), testPub(2)) || c.Fleet.TrustedKeysFile != file {
		t.Errorf("trusted %v file %q", c.Fleet.Trusted.IDs(), c.Fleet.TrustedKeysFile)
	}
	// Block style, as the docs show it.
	c = mustParse(t, base+"fleet:\n  trusted_keys:\n    - "+PublicKeyLine(testPub(3))+"\n")
	if c.Fleet.Trusted != NewTrustedKeys(testPub(3)) {
		t.Errorf("block list: %v", c.Fleet.Trusted.IDs())
	}
	if c := mustParse(t, base); c.Fleet.Trusted.Len() != 0 {
		t.Errorf("no trusted keys by default: %v", c.Fleet.Trusted.IDs())
	}
	bad := filepath.Join(t.TempDir(), "bad.pub")
	if err := os.WriteFile(bad, []byte("# keys\n"+PublicKeyLine(testPub(1))+"x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	k1 := PublicKeyLine(testPub(1))
	cases := []struct{ name, fleet, path, frag string }{
		{"not a key", "{ trusted_keys: [" + k1 + ", vigil-ed25519-pub:AAAA] }", "fleet.trusted_keys[1]", "an ed25519 public key: 3 bytes, want 32"},
		{"a gossip key", "{ trusted_keys: [" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "] }", "fleet.trusted_keys[0]", "not an ed25519 public key: want one line vigil-ed25519-pub:BASE64"},
		{"not a string", "{ trusted_keys: [ {a: 1} ] }", "fleet.trusted_keys[0]", "must be a public key line"},
		{"twice", "{ trusted_keys: [" + k1 + ", " + k1 + "] }", "fleet.trusted_keys[1]", "the key of fleet.trusted_keys[0] again"},
		{"not a list", "{ trusted_keys: " + k1 + ", trusted_keys_file: " + file + " }", "fleet.trusted_keys", "must be a list of public key lines, not a string"},
		{"file relative", "{ trusted_keys_file: keys.pub }", "fleet.trusted_keys_file", "must be an absolute path"},
		{"file missing", "{ trusted_keys_file: /nonexistent/keys.pub }", "fleet.trusted_keys_file", "cannot be used: open /nonexistent/keys.pub"},
		{"file bad line", "{ trusted_keys_file: " + bad + " }", "fleet.trusted_keys_file", "bad.pub:2: an ed25519 public key: not base64"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ve := mustFail(t, base+"fleet: "+tc.fleet+"\n")
			wantErr(t, ve, tc.path, tc.frag)
			if len(ve.Errors) != 1 {
				t.Errorf("want one error, got:\n%v", ve)
			}
			if strings.Contains(ve.Error(), k1[len(PublicKeyPrefix):]) {
				t.Errorf("the error quotes the key: %v", ve)
			}
		})
	}
}

// Issue 14: "trust keys stay in its local file": a fleet document cannot set them (fleet: is
// refused in it, shared or per node), and the configuration a follower composes has its own
// file's trusted keys; a change of them is a change of fleet: for a reload.
func TestFleetTrustedKeysStayLocal(t *testing.T) {
	k := PublicKeyLine(testPub(9))
	for _, doc := range []string{
		"fleet: { trusted_keys: [" + k + "] }\nnodes: { lb1: {} }\n",
		"nodes:\n  lb1: { fleet: { trusted_keys: [] } }\n",
	} {
		if _, err := ParseFleet([]byte(doc), "f.yaml"); err == nil || !strings.Contains(err.Error(), "fleet: a node's local setting") {
			t.Errorf("%q: %v", doc, err)
		}
	}
	fd, err := ParseFleet([]byte("vrrp:\n  instances:\n    - { name: a, interface: eth0, vrid: 1, priority: 100, vips: [192.0.2.100/24] }\nnodes: { lb1: {} }\n"), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	local := "node: { name: lb1 }\ngossip: { insecure: true }\nfleet: { config: follow, trusted_keys: [" + PublicKeyLine(testPub(1)) + "] }\n"
	cfg, err := fd.Compose("lb1", []byte(local), "fleet v2")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Fleet.Trusted != NewTrustedKeys(testPub(1)) {
		t.Errorf("composed trusted keys %v, want the local file's", cfg.Fleet.Trusted.IDs())
	}
	base := lbDoc(httpVS) + "gossip: { insecure: true }\n"
	a := mustParse(t, base+"fleet: { trusted_keys: ["+PublicKeyLine(testPub(1))+"] }\n")
	b := mustParse(t, base+"fleet: { trusted_keys: ["+PublicKeyLine(testPub(2))+"] }\n")
	if ch := Diff(a, b); !slices.Contains(ch.Other, "fleet") {
		t.Errorf("other trusted keys: the diff's other settings are %v", ch.Other)
	}
	if ch := Diff(a, mustParse(t, base+"fleet: { trusted_keys: ["+PublicKeyLine(testPub(1))+"] }\n")); slices.Contains(ch.Other, "fleet") {
		t.Errorf("the same trusted keys: the diff's other settings are %v", ch.Other)
	}
}

// FleetState keeps each version's signature (a rollback pushes it again); a state file written
// before signatures (no "signature" key) still loads, its versions unsigned.
func TestFleetStateKeepsSignatures(t *testing.T) {
	dir := t.TempDir()
	d1, d2 := []byte("nodes: { lb1: {} }\n"), []byte("nodes: { lb1: {}, lb2: {} }\n")
	old := `[{"version": 1, "hash": "` + DocumentHash(d1) + `", "origin": "lb1", "applied": "2026-12-06T12:00:00Z", "pushed_by": "root"}]`
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(old), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "v1-"+DocumentHash(d1)[:12]+".yaml"), d1, 0o640); err != nil {
		t.Fatal(err)
	}
	s, err := OpenFleetState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if h := s.History(); len(h) != 1 || h[0].Signature != "" || h[0].PushedBy != "root" {
		t.Fatalf("an earlier state file: %+v", h)
	}
	sig := SignDocument(testSigner(1), d2)
	e := entry(2, d2, "lb2")
	e.Signature = sig
	if err := s.Record(e, d2); err != nil {
		t.Fatal(err)
	}
	s, err = OpenFleetState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if h := s.History(); len(h) != 2 || h[1].Signature != sig {
		t.Fatalf("reopened: %+v", h)
	}
}
