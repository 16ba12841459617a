package config

// The fleet: section of a node's local file (issue 14): whether the node
// follows configurations pushed to the fleet, and where it keeps them.

// Fleet is a node's fleet settings; never taken from a fleet document.
type Fleet struct {
	// Config is FleetIgnore (the default: a node is never taken over by
	// accident) or FleetFollow: the node applies fleet pushes.
	Config string
	// StateDir keeps the applied fleet version, its document and the
	// history (default DefaultStateDir, the unit's StateDirectory=).
	StateDir string
	// Trusted are the public keys a fleet document must be signed by to
	// be taken (pushed through this node) or applied here: the union of
	// trusted_keys and trusted_keys_file's keys. None: signatures are not
	// required. Never taken from a fleet document (Compose keeps the local
	// file's fleet: section).
	Trusted TrustedKeys
	// TrustedKeysFile is trusted_keys_file's path, "" when not set.
	TrustedKeysFile string
}

// Values of Fleet.Config, and the default state directory.
const (
	FleetIgnore     = "ignore"
	FleetFollow     = "follow"
	DefaultStateDir = "/var/lib/vigil"
)

// Follows reports whether the node applies fleet pushes.
func (f Fleet) Follows() bool { return f.Config == FleetFollow }

func (d *decoder) fleet(o *object, gossip bool) Fleet {
	f := Fleet{Config: d.choice(o, "config", FleetIgnore, FleetIgnore, FleetFollow), StateDir: DefaultStateDir}
	if dir := d.absPath(o, "state_dir"); dir != "" {
		f.StateDir = dir
	}
	if f.Follows() && !gossip {
		d.fail("fleet.config", "follow needs a gossip: section: pushes travel through the fleet")
	}
	f.Trusted, f.TrustedKeysFile = d.trustedKeys(o)
	o.unknown(nil, nil)
	return f
}
