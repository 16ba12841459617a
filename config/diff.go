package config

import (
	"reflect"
	"slices"
	"strings"
)

// Identity is what makes an instance the same virtual router across a
// reload: its interface, VRID and address family, not its name.
type Identity struct {
	Interface string
	VRID      uint8
	Family    int // 4 or 6
}

// Identity returns the instance's identity.
func (in *Instance) Identity() Identity {
	return Identity{Interface: in.Interface, VRID: in.VRID, Family: in.Family()}
}

// Change is a set of kinds of change to one instance across a reload.
type Change uint16

const (
	// ChangeName: renamed; the instance keeps its state.
	ChangeName Change = 1 << iota
	// ChangeVIPs: VIPs added, removed, changed or reordered; a master
	// adds and removes the difference in place.
	ChangeVIPs
	// ChangeGARP: announcement settings (garp:).
	ChangeGARP
	// ChangeTrack: track:, dont_track_primary, or the definition of a
	// script, file or process the instance tracks.
	ChangeTrack
	// ChangeNotify: the instance's notify: settings.
	ChangeNotify
	// ChangeSyncGroup: the instance joined, left or changed sync group, or
	// its group's settings (members, notify, tracking_weight) changed.
	ChangeSyncGroup
	// ChangeProtocol: anything the VRRP engine holds (priority, version,
	// advert_interval, preempt, preempt_delay, accept, lower_prio_no_advert,
	// checksum, unicast, auth, vmac); the instance is restarted.
	ChangeProtocol
)

var changeNames = []string{"name", "vips", "garp", "track", "notify", "sync_group", "protocol"}

// String lists the kinds, "vips+track"; "none" for the empty set.
func (c Change) String() string {
	var parts []string
	for i, n := range changeNames {
		if c&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "+")
}

// InPlace reports whether the change can be applied to a running instance
// without restarting it: no protocol setting changed.
func (c Change) InPlace() bool { return c&ChangeProtocol == 0 }

// Only reports whether something changed and everything that changed is in
// mask: c.Only(ChangeVIPs) is "only the VIPs changed",
// c.Only(ChangeTrack|ChangeNotify) "only trackers and notify changed".
func (c Change) Only(mask Change) bool { return c != 0 && c&^mask == 0 }

// InstanceChange is one instance in a Diff.
type InstanceChange struct {
	ID Identity
	// Old and New point into the two configs; Old is nil for an added
	// instance, New for a removed one.
	Old, New *Instance
	Change   Change   // empty for added, removed and unchanged instances
	Fields   []string // the changed keys in file order ("name", "priority", "vips", "track", ...)
}

// NameChanges compares the scripts, files, processes or sync groups of two
// configs by name.
type NameChanges struct {
	Added, Removed, Changed, Unchanged []string
}

// Changes is what a reload changes. Instances are matched by Identity, so a
// renamed instance is Changed (ChangeName), not removed and added.
type Changes struct {
	Added     []InstanceChange // in the new config's order
	Removed   []InstanceChange // in the old config's order
	Changed   []InstanceChange // in the new config's order
	Unchanged []InstanceChange // in the new config's order

	Scripts, Files, Processes, SyncGroups NameChanges

	// Other lists the changed settings outside instances and trackers:
	// "node.name", "node.allow_empty", "vrrp.strict", "vrrp.garp",
	// "vrrp.script_user", "vrrp.notify_fifo", "vrrp.notify_fifo_group",
	// "telemetry".
	Other []string

	// Gossip: the gossip: section differs (added, removed, or any
	// setting, keys compared by value). memberlist takes its settings at
	// creation: they apply at the next restart.
	Gossip bool
}

// Empty reports whether the two configs are equivalent.
func (c *Changes) Empty() bool {
	none := func(n NameChanges) bool {
		return len(n.Added)+len(n.Removed)+len(n.Changed) == 0
	}
	return len(c.Added)+len(c.Removed)+len(c.Changed)+len(c.Other) == 0 && !c.Gossip &&
		none(c.Scripts) && none(c.Files) && none(c.Processes) && none(c.SyncGroups)
}

// instanceFields classifies every Instance field but the identity
// (Interface, VRID and the family of VIPs). The test checks it is complete.
var instanceFields = []struct {
	field, key string
	change     Change
}{
	{"Name", "name", ChangeName},
	{"Priority", "priority", ChangeProtocol},
	{"Version", "version", ChangeProtocol},
	{"AdvertInterval", "advert_interval", ChangeProtocol},
	{"Preempt", "preempt", ChangeProtocol},
	{"PreemptDelay", "preempt_delay", ChangeProtocol},
	{"Accept", "accept", ChangeProtocol},
	{"Checksum", "checksum", ChangeProtocol},
	{"LowerPrioNoAdvert", "lower_prio_no_advert", ChangeProtocol},
	{"Unicast", "unicast", ChangeProtocol},
	{"AuthType", "auth", ChangeProtocol},
	{"AuthPassword", "auth", ChangeProtocol},
	{"VIPs", "vips", ChangeVIPs},
	{"GARP", "garp", ChangeGARP},
	{"Track", "track", ChangeTrack},
	{"DontTrackPrimary", "dont_track_primary", ChangeTrack},
	{"Notify", "notify", ChangeNotify},
	{"VMAC", "vmac", ChangeProtocol},
	{"SyncGroup", "sync_group", ChangeSyncGroup},
}

// Diff compares two loaded configs for a live reload. Either may be nil
// (everything added, or everything removed).
func Diff(old, new *Config) Changes {
	if old == nil {
		old = &Config{}
	}
	if new == nil {
		new = &Config{}
	}
	var ch Changes
	oldByID := map[Identity]int{}
	for i := range old.VRRP.Instances {
		oldByID[old.VRRP.Instances[i].Identity()] = i
	}
	matched := make([]bool, len(old.VRRP.Instances))
	for i := range new.VRRP.Instances {
		n := &new.VRRP.Instances[i]
		id := n.Identity()
		j, ok := oldByID[id]
		if !ok || matched[j] {
			ch.Added = append(ch.Added, InstanceChange{ID: id, New: n})
			continue
		}
		matched[j] = true
		o := &old.VRRP.Instances[j]
		ic := InstanceChange{ID: id, Old: o, New: n}
		ic.Change, ic.Fields = diffInstance(old, new, o, n)
		if ic.Change == 0 {
			ch.Unchanged = append(ch.Unchanged, ic)
		} else {
			ch.Changed = append(ch.Changed, ic)
		}
	}
	for j := range old.VRRP.Instances {
		if !matched[j] {
			o := &old.VRRP.Instances[j]
			ch.Removed = append(ch.Removed, InstanceChange{ID: o.Identity(), Old: o})
		}
	}

	ch.Scripts = diffNamed(old.VRRP.Scripts, new.VRRP.Scripts, func(s Script) string { return s.Name })
	ch.Files = diffNamed(old.VRRP.Files, new.VRRP.Files, func(f File) string { return f.Name })
	ch.Processes = diffNamed(old.VRRP.Processes, new.VRRP.Processes, func(p Process) string { return p.Name })
	ch.SyncGroups = diffNamed(old.VRRP.SyncGroups, new.VRRP.SyncGroups, func(g SyncGroup) string { return g.Name })

	other := []struct {
		key    string
		differ bool
	}{
		{"node.name", old.Node.Name != new.Node.Name},
		{"node.allow_empty", old.Node.AllowEmpty != new.Node.AllowEmpty},
		{"vrrp.strict", old.VRRP.Strict != new.VRRP.Strict},
		{"vrrp.garp", old.VRRP.GARP != new.VRRP.GARP},
		{"vrrp.script_user", old.VRRP.ScriptUser != new.VRRP.ScriptUser},
		{"vrrp.notify_fifo", old.VRRP.NotifyFIFO != new.VRRP.NotifyFIFO},
		{"vrrp.notify_fifo_group", old.VRRP.NotifyFIFOGroup != new.VRRP.NotifyFIFOGroup},
		{"telemetry", old.Telemetry != new.Telemetry},
		{"fleet", old.Fleet != new.Fleet},
	}
	for _, o := range other {
		if o.differ {
			ch.Other = append(ch.Other, o.key)
		}
	}
	ch.Gossip = !reflect.DeepEqual(old.Gossip, new.Gossip)
	return ch
}

// diffInstance compares two instances of the same identity.
func diffInstance(oc, nc *Config, o, n *Instance) (Change, []string) {
	var c Change
	var fields []string
	add := func(key string, k Change) {
		c |= k
		if !slices.Contains(fields, key) {
			fields = append(fields, key)
		}
	}
	ov, nv := reflect.ValueOf(o).Elem(), reflect.ValueOf(n).Elem()
	for _, f := range instanceFields {
		if !reflect.DeepEqual(ov.FieldByName(f.field).Interface(), nv.FieldByName(f.field).Interface()) {
			add(f.key, f.change)
		}
	}
	// A tracked object's definition changed (same name, other command,
	// interval, path...).
	if c&ChangeTrack == 0 && trackedDefsDiffer(oc, nc, &n.Track) {
		add("track", ChangeTrack)
	}
	// The group's own settings changed.
	if c&ChangeSyncGroup == 0 && n.SyncGroup != "" {
		og, _ := findGroup(oc, n.SyncGroup)
		ng, _ := findGroup(nc, n.SyncGroup)
		if !reflect.DeepEqual(og, ng) {
			add("sync_group", ChangeSyncGroup)
		}
	}
	return c, fields
}

func findGroup(c *Config, name string) (*SyncGroup, bool) {
	for i := range c.VRRP.SyncGroups {
		if c.VRRP.SyncGroups[i].Name == name {
			return &c.VRRP.SyncGroups[i], true
		}
	}
	return nil, false
}

// trackedDefsDiffer reports whether a script, file or process t refers to is
// defined differently in the two configs.
func trackedDefsDiffer(oc, nc *Config, t *Track) bool {
	return refsDiffer(oc.VRRP.Scripts, nc.VRRP.Scripts, t.Scripts, func(s Script) string { return s.Name }) ||
		refsDiffer(oc.VRRP.Files, nc.VRRP.Files, t.Files, func(f File) string { return f.Name }) ||
		refsDiffer(oc.VRRP.Processes, nc.VRRP.Processes, t.Processes, func(p Process) string { return p.Name })
}

func refsDiffer[T any](old, new []T, refs []TrackRef, name func(T) string) bool {
	for _, r := range refs {
		oi := slices.IndexFunc(old, func(x T) bool { return name(x) == r.Name })
		ni := slices.IndexFunc(new, func(x T) bool { return name(x) == r.Name })
		if oi < 0 || ni < 0 || !reflect.DeepEqual(old[oi], new[ni]) {
			return true
		}
	}
	return false
}

func diffNamed[T any](old, new []T, name func(T) string) NameChanges {
	var nc NameChanges
	oldBy := map[string]int{}
	for i, x := range old {
		oldBy[name(x)] = i
	}
	newBy := map[string]bool{}
	for _, x := range new {
		n := name(x)
		newBy[n] = true
		i, ok := oldBy[n]
		switch {
		case !ok:
			nc.Added = append(nc.Added, n)
		case reflect.DeepEqual(old[i], x):
			nc.Unchanged = append(nc.Unchanged, n)
		default:
			nc.Changed = append(nc.Changed, n)
		}
	}
	for _, x := range old {
		if !newBy[name(x)] {
			nc.Removed = append(nc.Removed, name(x))
		}
	}
	return nc
}
