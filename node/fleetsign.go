package node

import (
	"errors"
	"fmt"

	"vigil/config"
	"vigil/gossip"
)

// Signed fleet documents (issue 14). A node whose local file lists
// trusted keys (fleet.trusted_keys) takes a push only signed by one of
// them, and applies a version only when the signature its announcement
// carries is one of them over the fetched document; a node without
// trusted keys takes and applies both signed and unsigned documents.
// Refusals are counted by reason (vigil_fleet_config_rejected_total); a
// follower's is its version's ConfigError, which push --wait prints.

// ErrPushSignature refuses a push for its signature (422 with the reason).
var ErrPushSignature = errors.New("the fleet document's signature is refused")

// checkPushSignature is what the node taking a push requires: with trusted
// keys, a signature by one of them; without, any signature given must
// still be one of the document by the key it names (signing another file
// is caught at once), and unsigned is fine. It returns the signer's id.
func checkPushSignature(trusted config.TrustedKeys, doc []byte, sig string) (string, error) {
	var id string
	var err error
	switch {
	case trusted.Len() > 0:
		id, err = trusted.Verify(doc, sig)
	case sig != "":
		id, err = config.CheckSignature(doc, sig)
	}
	if err != nil {
		return id, fmt.Errorf("%w: %w", ErrPushSignature, err)
	}
	return id, nil
}

// trusted is the running configuration's trusted keys: the local file's,
// also while a fleet version runs (Compose keeps its fleet: section), so a
// reload of the local file changes them.
func (fc *fleetConfig) trusted() config.TrustedKeys {
	fc.f.mu.Lock()
	defer fc.f.mu.Unlock()
	return fc.f.cfg.Fleet.Trusted
}

// countRefusal counts a refusal for a signature (other errors are not).
func (fc *fleetConfig) countRefusal(err error) {
	if r := config.SignatureReason(err); r != "" {
		fc.rejected.Inc(r)
	}
}

// verifyPush checks a push's signature against this node's trusted keys,
// counting a refusal.
func (fc *fleetConfig) verifyPush(doc []byte, sig string) (string, error) {
	id, err := checkPushSignature(fc.trusted(), doc, sig)
	fc.countRefusal(err)
	return id, err
}

// verifyApply checks a fetched version's document against the signature
// its announcement carries before it is applied here, counting a refusal;
// the error names the version and the reason.
func (fc *fleetConfig) verifyApply(doc []byte, label, sig string) (string, error) {
	id, err := fc.trusted().Verify(doc, sig)
	if err != nil {
		fc.countRefusal(err)
		return id, fmt.Errorf("%s refused: %w", label, err)
	}
	return id, nil
}

// signerID is the id of the key a signature names; "" for none.
func signerID(sig string) string {
	pub, _, err := config.ParseSignature(sig)
	if err != nil {
		return ""
	}
	return config.KeyID(pub)
}

// preferred reports whether announcement a is the one to apply rather
// than best (nil: none yet): a newer version, or the same one signed where
// best is not (a member running an earlier vigil re-announces a version
// without its signature), or else with its rollout plan where best has
// none (a restarted member re-announces its version without the plan).
func preferred(a gossip.ConfigAnnouncement, best *gossip.ConfigAnnouncement) bool {
	if best == nil {
		return true
	}
	c := versionOf(a).Compare(versionOf(*best))
	if c != 0 {
		return c > 0
	}
	if (a.Signature != "") != (best.Signature != "") {
		return a.Signature != ""
	}
	return best.Plan.IsZero() && !a.Plan.IsZero()
}
