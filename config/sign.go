package config

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Signed fleet documents (issue 14): an operator signs a fleet document
// with an ed25519 key (vigil config keygen, vigil config sign); a node
// whose local file lists trusted public keys (fleet.trusted_keys,
// fleet.trusted_keys_file) applies, and takes pushes of, only documents
// signed by one of them. The signature is detached and covers the
// document's exact bytes (pure Ed25519, RFC 8032 §5.1), so the document
// is pushed unchanged and its hash stays the version's hash.
//
// Every file is text: # comment lines, blank lines, and lines of the form
// PREFIX:BASE64 (standard encoding). The prefixes tell the three apart,
// and an ed25519 public key from a gossip keyring key (both 32 bytes):
//
//	vigil-ed25519-key:  the private key's 32-byte seed (mode 0600)
//	vigil-ed25519-pub:  a public key
//	vigil-ed25519-sig:  a signature: the signer's public key, then the
//	                    64-byte signature, so a node tells an untrusted
//	                    key from a bad signature
//
// Errors name FILE:LINE and never quote key material.

// The line prefixes of the three formats.
const (
	PrivateKeyPrefix = "vigil-ed25519-key:"
	PublicKeyPrefix  = "vigil-ed25519-pub:"
	SignaturePrefix  = "vigil-ed25519-sig:"
)

// Why a document's signature is refused; SignatureReason names them.
var (
	ErrUnsigned     = errors.New("the document is not signed")
	ErrBadSignature = errors.New("the signature does not match the document")
	ErrUntrustedKey = errors.New("the document is signed by a key this node does not trust")
)

// Reasons of refused signatures (the metric's reason label).
const (
	ReasonUnsigned     = "unsigned"
	ReasonBadSignature = "bad_signature"
	ReasonUntrustedKey = "untrusted_key"
)

// SignatureReasons lists every reason SignatureReason returns.
var SignatureReasons = []string{ReasonUnsigned, ReasonBadSignature, ReasonUntrustedKey}

// SignatureReason is the reason of a refusal by Verify or CheckSignature:
// unsigned, bad_signature (a malformed signature included) or
// untrusted_key; "" for another error.
func SignatureReason(err error) string {
	switch {
	case errors.Is(err, ErrUnsigned):
		return ReasonUnsigned
	case errors.Is(err, ErrBadSignature):
		return ReasonBadSignature
	case errors.Is(err, ErrUntrustedKey):
		return ReasonUntrustedKey
	}
	return ""
}

// KeyID is a public key's short name in logs and errors: the first 12 hex
// digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:6])
}

// maxKeyFileSize bounds a key, signature or trusted keys file.
const maxKeyFileSize = 1 << 20

// keyLine is one PREFIX:BASE64 line of a file, decoded.
type keyLine struct {
	line int
	data []byte
}

// parseKeyLines reads the PREFIX:BASE64 lines of data (file names it in
// errors) whose payload is size bytes; what describes the format.
func parseKeyLines(data []byte, file, prefix, what string, size int) ([]keyLine, error) {
	var out []keyLine
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		b, err := decodeKey(string(line), prefix, what, size)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, i+1, err)
		}
		out = append(out, keyLine{line: i + 1, data: b})
	}
	return out, nil
}

// decodeKey decodes one PREFIX:BASE64 value of size bytes. Its errors
// quote nothing of s.
func decodeKey(s, prefix, what string, size int) ([]byte, error) {
	s = strings.TrimSpace(s)
	b64, ok := strings.CutPrefix(s, prefix)
	if !ok {
		for _, p := range []string{PrivateKeyPrefix, PublicKeyPrefix, SignaturePrefix} {
			if strings.HasPrefix(s, p) {
				return nil, fmt.Errorf("a %s line where %s (%s) is wanted", p, what, prefix)
			}
		}
		return nil, fmt.Errorf("not %s: want one line %sBASE64", what, prefix)
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: not base64 (standard encoding)", what)
	case len(b) != size:
		return nil, fmt.Errorf("%s: %d bytes, want %d", what, len(b), size)
	}
	return b, nil
}

// readOne reads the one PREFIX:BASE64 line of a key or signature file.
func readOne(path, prefix, what string, size int) ([]byte, error) {
	data, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	lines, err := parseKeyLines(data, path, prefix, what, size)
	switch {
	case err != nil:
		return nil, err
	case len(lines) == 0:
		return nil, fmt.Errorf("%s: no %s in it (want one line %sBASE64)", path, what, prefix)
	case len(lines) > 1:
		return nil, fmt.Errorf("%s:%d: a second %s: the file holds one", path, lines[1].line, what)
	}
	return lines[0].data, nil
}

func readSmall(path string) ([]byte, error) {
	data, tooBig, err := readLimited(path, maxKeyFileSize)
	switch {
	case err != nil:
		return nil, err
	case tooBig:
		return nil, fmt.Errorf("%s: larger than %d bytes: not a key or signature file", path, maxKeyFileSize)
	}
	return data, nil
}

// readLimited reads a file of at most limit bytes; tooBig reports a larger
// one, of which no more than limit+1 bytes are read.
func readLimited(path string, limit int) (data []byte, tooBig bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	return data, len(data) > limit, nil
}

// GenerateSigningKey returns a new key pair as the private and public key
// files' contents, and the key's id; rand is the entropy (crypto/rand's
// Reader; nil is that).
func GenerateSigningKey(rand io.Reader) (private, public []byte, id string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, nil, "", fmt.Errorf("generating an ed25519 key: %w", err)
	}
	id = KeyID(pub)
	private = fmt.Appendf(nil, "# vigil fleet signing key %s (ed25519, private): keep it secret; sign with vigil config sign --key FILE\n%s%s\n",
		id, PrivateKeyPrefix, base64.StdEncoding.EncodeToString(priv.Seed()))
	public = FormatPublicKey(pub)
	return private, public, id, nil
}

// FormatPublicKey is a public key file's content.
func FormatPublicKey(pub ed25519.PublicKey) []byte {
	return fmt.Appendf(nil, "# vigil fleet signing key %s (ed25519, public): list the line below in fleet.trusted_keys\n%s\n",
		KeyID(pub), PublicKeyLine(pub))
}

// PublicKeyLine is a public key as fleet.trusted_keys lists it.
func PublicKeyLine(pub ed25519.PublicKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// WriteSigningKey writes a new key pair: the private key to path (mode
// 0600) and the public key to path.pub. It refuses to replace either file
// unless force. It returns the key's id.
func WriteSigningKey(path string, force bool, rand io.Reader) (string, error) {
	private, public, id, err := GenerateSigningKey(rand)
	if err != nil {
		return "", err
	}
	pubPath := path + ".pub"
	if !force {
		for _, p := range []string{path, pubPath} {
			if _, err := os.Lstat(p); err == nil {
				return "", fmt.Errorf("%s exists: not replaced (--force replaces it; pushes signed by its key are then refused where only it is trusted)", p)
			}
		}
	}
	if err := writeDurable(path, private, 0o600); err != nil {
		return "", fmt.Errorf("writing the private key %s: %w", path, err)
	}
	if err := writeDurable(pubPath, public, 0o644); err != nil {
		return "", fmt.Errorf("writing the public key %s: %w", pubPath, err)
	}
	return id, nil
}

// ReadSigningKey reads a private key file written by WriteSigningKey.
func ReadSigningKey(path string) (ed25519.PrivateKey, error) {
	seed, err := readOne(path, PrivateKeyPrefix, "an ed25519 private key", ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParsePublicKey reads one public key as fleet.trusted_keys lists it.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := decodeKey(s, PublicKeyPrefix, "an ed25519 public key", ed25519.PublicKeySize)
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(b), nil
}

// ReadPublicKeys reads a trusted keys file: one public key per line (a
// .pub file, or several concatenated); at least one.
func ReadPublicKeys(path string) ([]ed25519.PublicKey, error) {
	data, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	lines, err := parseKeyLines(data, path, PublicKeyPrefix, "an ed25519 public key", ed25519.PublicKeySize)
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("%s: no public key in it (want lines %sBASE64, as vigil config keygen writes to FILE.pub)", path, PublicKeyPrefix)
	}
	var keys []ed25519.PublicKey
	for _, l := range lines {
		keys = append(keys, ed25519.PublicKey(l.data))
	}
	return keys, nil
}

// sigSize is a signature value's payload: the public key, then the
// signature.
const sigSize = ed25519.PublicKeySize + ed25519.SignatureSize

// SignDocument signs doc's exact bytes; the result is the signature value
// (SignaturePrefix and base64) that pushes and announcements carry.
func SignDocument(priv ed25519.PrivateKey, doc []byte) string {
	payload := append(slices.Clone(priv.Public().(ed25519.PublicKey)), ed25519.Sign(priv, doc)...)
	return SignaturePrefix + base64.StdEncoding.EncodeToString(payload)
}

// FormatSignature is a signature file's content for sig, a SignDocument
// value over doc.
func FormatSignature(sig string, doc []byte) []byte {
	id := "?"
	if pub, _, err := ParseSignature(sig); err == nil {
		id = KeyID(pub)
	}
	return fmt.Appendf(nil, "# vigil fleet document signature (ed25519), key %s, document sha256 %.12s\n%s\n", id, DocumentHash(doc), sig)
}

// ReadSignature reads a signature file and returns its value.
func ReadSignature(path string) (string, error) {
	b, err := readOne(path, SignaturePrefix, "a vigil signature", sigSize)
	if err != nil {
		return "", fmt.Errorf("signature: %w", err)
	}
	return SignaturePrefix + base64.StdEncoding.EncodeToString(b), nil
}

// ParseSignature splits a signature value into the signer's public key and
// the signature; a malformed value is ErrBadSignature.
func ParseSignature(sig string) (ed25519.PublicKey, []byte, error) {
	b, err := decodeKey(sig, SignaturePrefix, "a vigil signature", sigSize)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return ed25519.PublicKey(b[:ed25519.PublicKeySize]), b[ed25519.PublicKeySize:], nil
}

// CheckSignature checks that sig is a signature of doc by the key it names,
// trusted or not, and returns that key's id; "" is ErrUnsigned.
func CheckSignature(doc []byte, sig string) (string, error) {
	if sig == "" {
		return "", ErrUnsigned
	}
	pub, s, err := ParseSignature(sig)
	if err != nil {
		return "", err
	}
	id := KeyID(pub)
	if !ed25519.Verify(pub, doc, s) {
		return id, fmt.Errorf("%w (key %s)", ErrBadSignature, id)
	}
	return id, nil
}

// TrustedKeys is the set of public keys a node trusts to sign fleet
// documents. The zero value trusts none: signatures are not required. It
// is comparable (Config diffs compare it) and immutable.
type TrustedKeys struct {
	raw string // the keys' bytes, sorted, concatenated
}

// NewTrustedKeys returns the set of keys (repetitions are one).
func NewTrustedKeys(keys ...ed25519.PublicKey) TrustedKeys {
	var s []string
	for _, k := range keys {
		s = append(s, string(k))
	}
	slices.Sort(s)
	return TrustedKeys{raw: strings.Join(slices.Compact(s), "")}
}

// Len is how many keys are trusted; 0 means signatures are not required.
func (t TrustedKeys) Len() int { return len(t.raw) / ed25519.PublicKeySize }

// Keys returns the trusted keys.
func (t TrustedKeys) Keys() []ed25519.PublicKey {
	var out []ed25519.PublicKey
	for i := 0; i+ed25519.PublicKeySize <= len(t.raw); i += ed25519.PublicKeySize {
		out = append(out, ed25519.PublicKey(t.raw[i:i+ed25519.PublicKeySize]))
	}
	return out
}

// IDs returns the trusted keys' ids.
func (t TrustedKeys) IDs() []string {
	var ids []string
	for _, k := range t.Keys() {
		ids = append(ids, KeyID(k))
	}
	return ids
}

// Trusts reports whether pub is one of the keys.
func (t TrustedKeys) Trusts(pub ed25519.PublicKey) bool {
	return slices.ContainsFunc(t.Keys(), func(k ed25519.PublicKey) bool { return bytes.Equal(k, pub) })
}

// Verify decides whether a node with these trusted keys takes doc with
// signature sig (a SignDocument value, "" when unsigned), and returns the
// signer's key id. With no trusted key every document is taken, signed or
// not, and sig is not looked at. Otherwise the error is ErrUnsigned,
// ErrBadSignature (malformed, or not of this document: forged, or of
// another document) or ErrUntrustedKey, naming the key id.
func (t TrustedKeys) Verify(doc []byte, sig string) (string, error) {
	if t.Len() == 0 {
		return "", nil
	}
	if sig == "" {
		return "", fmt.Errorf("%w: this node trusts only documents signed by %s (vigil config sign)", ErrUnsigned, strings.Join(t.IDs(), ", "))
	}
	pub, _, err := ParseSignature(sig)
	if err != nil {
		return "", err
	}
	id := KeyID(pub)
	if !t.Trusts(pub) {
		return id, fmt.Errorf("%w: key %s (trusted: %s)", ErrUntrustedKey, id, strings.Join(t.IDs(), ", "))
	}
	return CheckSignature(doc, sig)
}

// trustedKeys reads fleet.trusted_keys (a list of public key lines) and
// fleet.trusted_keys_file (an absolute path).
func (d *decoder) trustedKeys(o *object) (TrustedKeys, string) {
	var keys []ed25519.PublicKey
	var list []any
	p, st := o.sub("trusted_keys"), missing
	if raw, ok := o.m["trusted_keys"]; ok && kind(raw) == "a string" {
		// getList would quote it back.
		o.get("trusted_keys")
		d.fail(p, "must be a list of public key lines, not a string (write [ %sBASE64 ] for one)", PublicKeyPrefix)
	} else {
		list, p, st = getList(o, "trusted_keys")
	}
	if st == good {
		seen := map[string]int{}
		for i, raw := range list {
			ip := index(p, i)
			s, ok := raw.(string)
			if !ok {
				d.fail(ip, "must be a public key line %sBASE64 (from vigil config keygen's FILE.pub), not %s", PublicKeyPrefix, kind(raw))
				continue
			}
			k, err := ParsePublicKey(s)
			if err != nil {
				// Not d.bad: the value is not quoted back.
				d.fail(ip, "%v", err)
				continue
			}
			if j, dup := seen[string(k)]; dup {
				d.fail(ip, "the key of %s again", index(p, j))
				continue
			}
			seen[string(k)] = i
			keys = append(keys, k)
		}
	}
	path := d.absPath(o, "trusted_keys_file")
	if strings.HasPrefix(path, "/") {
		fk, err := ReadPublicKeys(path)
		if err != nil {
			d.fail(o.sub("trusted_keys_file"), "cannot be used: %v", err)
		}
		keys = append(keys, fk...)
	}
	return NewTrustedKeys(keys...), path
}
