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
	o.unknown(nil, nil)
	return f
}
