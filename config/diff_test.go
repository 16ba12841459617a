package config

import (
	"reflect"
	"slices"
	"testing"
)

// Every Instance field is either identity or classified for Diff.
func TestDiffClassifiesEveryField(t *testing.T) {
	known := map[string]bool{"Interface": true, "VRID": true}
	for _, f := range instanceFields {
		known[f.field] = true
	}
	typ := reflect.TypeFor[Instance]()
	for i := range typ.NumField() {
		if name := typ.Field(i).Name; !known[name] {
			t.Errorf("Instance.%s is not in instanceFields: say what kind of change it is", name)
		}
	}
	for _, f := range instanceFields {
		if _, ok := typ.FieldByName(f.field); !ok {
			t.Errorf("instanceFields names %s, which Instance does not have", f.field)
		}
	}
}

func TestChangeString(t *testing.T) {
	for c, want := range map[Change]string{
		0:                              "none",
		ChangeName:                     "name",
		ChangeVIPs | ChangeTrack:       "vips+track",
		ChangeProtocol | ChangeName:    "name+protocol",
		ChangeNotify | ChangeSyncGroup: "notify+sync_group",
	} {
		if got := c.String(); got != want {
			t.Errorf("%d: %q, want %q", c, got, want)
		}
	}
	if !(ChangeVIPs | ChangeName).Only(ChangeVIPs|ChangeName) || ChangeVIPs.Only(ChangeName) || Change(0).Only(ChangeVIPs) {
		t.Error("Only")
	}
	if !(ChangeVIPs | ChangeTrack).InPlace() || (ChangeVIPs | ChangeProtocol).InPlace() {
		t.Error("InPlace")
	}
}

// diffResult is Changes reduced to names, for table tests.
type diffResult struct {
	added, removed, unchanged []string
	changed                   map[string]Change   // by new name
	fields                    map[string][]string // by new name, when checked
	scripts                   NameChanges
	other                     []string
}

func reduce(ch Changes) diffResult {
	r := diffResult{changed: map[string]Change{}, fields: map[string][]string{}}
	for _, ic := range ch.Added {
		r.added = append(r.added, ic.New.Name)
		if ic.Old != nil || ic.Change != 0 {
			r.added = append(r.added, "BAD")
		}
	}
	for _, ic := range ch.Removed {
		r.removed = append(r.removed, ic.Old.Name)
		if ic.New != nil || ic.Change != 0 {
			r.removed = append(r.removed, "BAD")
		}
	}
	for _, ic := range ch.Unchanged {
		r.unchanged = append(r.unchanged, ic.New.Name)
		if ic.Old == nil || ic.Change != 0 || ic.Fields != nil {
			r.unchanged = append(r.unchanged, "BAD")
		}
	}
	for _, ic := range ch.Changed {
		r.changed[ic.New.Name] = ic.Change
		r.fields[ic.New.Name] = ic.Fields
		if ic.Old == nil || ic.ID != ic.Old.Identity() || ic.ID != ic.New.Identity() {
			r.changed["BAD"] = 0
		}
	}
	r.scripts = ch.Scripts
	r.other = ch.Other
	return r
}

func TestDiff(t *testing.T) {
	base := [][]string{{"name: web"}, {"name: db", "vrid: 52"}}
	with := func(extra ...[]string) string {
		ins := make([][]string, len(base))
		for i := range base {
			ins[i] = slices.Clone(base[i])
			if i < len(extra) {
				ins[i] = append(ins[i], extra[i]...)
			}
		}
		return inst(ins...)
	}
	const scripts = "scripts: [{name: chk, command: [/bin/true]}, {name: chk2, command: [/bin/true]}]"
	cases := []struct {
		name     string
		old, new string
		added    []string
		removed  []string
		same     []string
		changed  map[string]Change
		fields   map[string][]string
		other    []string
		scripts  *NameChanges
	}{
		{name: "identical", old: with(), new: with(), same: []string{"web", "db"}},
		{
			name: "renamed keeps identity", old: with(), new: with([]string{"name: www"}),
			same: []string{"db"}, changed: map[string]Change{"www": ChangeName},
			fields: map[string][]string{"www": {"name"}},
		},
		{
			name: "names swapped", old: with(), new: with([]string{"name: db"}, []string{"name: web"}),
			changed: map[string]Change{"db": ChangeName, "web": ChangeName},
		},
		{
			name: "only VIPs", old: with(), new: with([]string{"vips: [192.0.2.100/24, 192.0.2.101]"}),
			same: []string{"db"}, changed: map[string]Change{"web": ChangeVIPs},
			fields: map[string][]string{"web": {"vips"}},
		},
		{
			name: "renamed and VIPs", old: with(), new: with([]string{"name: www", "vips: [192.0.2.101/24]"}),
			same: []string{"db"}, changed: map[string]Change{"www": ChangeName | ChangeVIPs},
			fields: map[string][]string{"www": {"name", "vips"}},
		},
		{
			name: "only trackers and notify", old: with(),
			new:     withVRRP(with([]string{"track: {interfaces: [eth1]}", "notify: {master: /bin/true}"}, []string{"dont_track_primary: true"}), chk0),
			changed: map[string]Change{"web": ChangeTrack | ChangeNotify, "db": ChangeTrack},
			fields:  map[string][]string{"web": {"track", "notify"}, "db": {"dont_track_primary"}},
			scripts: &NameChanges{Added: []string{"chk"}},
		},
		{
			name: "tracked script redefined", old: withVRRP(with([]string{"track: {scripts: [chk]}"}, []string{"track: {scripts: [chk2]}"}), scripts),
			new: withVRRP(with([]string{"track: {scripts: [chk]}"}, []string{"track: {scripts: [chk2]}"}),
				"scripts: [{name: chk, command: [/bin/true], interval: 2s}, {name: chk2, command: [/bin/true]}]"),
			same: []string{"db"}, changed: map[string]Change{"web": ChangeTrack},
			fields:  map[string][]string{"web": {"track"}},
			scripts: &NameChanges{Changed: []string{"chk"}, Unchanged: []string{"chk2"}},
		},
		{
			name: "protocol settings", old: with(), new: with([]string{"priority: 150"}, []string{"advert_interval: 2s", "preempt: false"}),
			changed: map[string]Change{"web": ChangeProtocol, "db": ChangeProtocol},
			fields:  map[string][]string{"web": {"priority"}, "db": {"advert_interval", "preempt"}},
		},
		{
			name: "vmac is protocol", old: with(), new: with([]string{"vmac: true"}),
			same: []string{"db"}, changed: map[string]Change{"web": ChangeProtocol},
			fields: map[string][]string{"web": {"vmac"}},
		},
		{
			name: "garp", old: with(), new: with([]string{"garp: {refresh: 60s}"}),
			same: []string{"db"}, changed: map[string]Change{"web": ChangeGARP},
		},
		{
			name: "vrid changed is a new instance", old: with(), new: with([]string{"vrid: 53"}),
			added: []string{"web"}, removed: []string{"web"}, same: []string{"db"},
		},
		{
			name: "interface changed is a new instance", old: with(), new: with([]string{"interface: eth1"}),
			added: []string{"web"}, removed: []string{"web"}, same: []string{"db"},
		},
		{
			name: "family changed is a new instance", old: with(), new: with([]string{"vips: [fe80::1]"}),
			added: []string{"web"}, removed: []string{"web"}, same: []string{"db"},
		},
		{
			name: "added and removed", old: inst([]string{"name: a", "vrid: 1"}, []string{"name: b", "vrid: 2"}, []string{"name: c", "vrid: 3"}),
			new:   inst([]string{"name: d", "vrid: 4"}, []string{"name: b", "vrid: 2"}, []string{"name: e", "vrid: 5"}),
			added: []string{"d", "e"}, removed: []string{"a", "c"}, same: []string{"b"},
		},
		{
			name: "sync group joined", old: with(), new: withVRRP(with(), "sync_groups: [{name: edge, instances: [web, db]}]"),
			changed: map[string]Change{"web": ChangeSyncGroup, "db": ChangeSyncGroup},
			fields:  map[string][]string{"web": {"sync_group"}, "db": {"sync_group"}},
		},
		{
			name: "sync group notify", old: withVRRP(with(), "sync_groups: [{name: edge, instances: [web, db]}]"),
			new:     withVRRP(with(), "sync_groups: [{name: edge, instances: [web, db], notify: {master: /bin/true}}]"),
			changed: map[string]Change{"web": ChangeSyncGroup, "db": ChangeSyncGroup},
		},
		{
			name: "outside the instances", old: with(), new: "node: {name: other}\ntelemetry: {log_level: debug}\n" + withVRRP(with(), "garp: {interval: 10ms}"),
			changed: map[string]Change{"web": ChangeGARP, "db": ChangeGARP},
			other:   []string{"node.name", "vrrp.garp", "telemetry"},
		},
		{
			name: "strict", old: with(), new: withVRRP(with(), "strict: true"),
			changed: map[string]Change{"web": ChangeProtocol | ChangeGARP, "db": ChangeProtocol | ChangeGARP},
			fields:  map[string][]string{"web": {"accept", "lower_prio_no_advert", "garp"}},
			other:   []string{"vrrp.strict", "vrrp.garp"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			oc, nc := mustParse(t, tc.old), mustParse(t, tc.new)
			ch := Diff(oc, nc)
			got := reduce(ch)
			if tc.changed == nil {
				tc.changed = map[string]Change{}
			}
			if !slices.Equal(got.added, tc.added) || !slices.Equal(got.removed, tc.removed) ||
				!slices.Equal(got.unchanged, tc.same) || !reflect.DeepEqual(got.changed, tc.changed) {
				t.Errorf("got added %q removed %q unchanged %q changed %v\nwant added %q removed %q unchanged %q changed %v",
					got.added, got.removed, got.unchanged, got.changed, tc.added, tc.removed, tc.same, tc.changed)
			}
			for name, want := range tc.fields {
				if !slices.Equal(got.fields[name], want) {
					t.Errorf("%s fields %q, want %q", name, got.fields[name], want)
				}
			}
			if !slices.Equal(got.other, tc.other) {
				t.Errorf("other %q, want %q", got.other, tc.other)
			}
			if tc.scripts != nil && !reflect.DeepEqual(got.scripts, *tc.scripts) {
				t.Errorf("scripts %+v, want %+v", got.scripts, *tc.scripts)
			}
			if empty := len(tc.added)+len(tc.removed)+len(tc.changed)+len(tc.other) == 0 && tc.scripts == nil; ch.Empty() != empty {
				t.Errorf("Empty() = %v", ch.Empty())
			}
			// Pointers point into the configs given.
			for _, ic := range ch.Changed {
				if !containsPtr(nc.VRRP.Instances, ic.New) || !containsPtr(oc.VRRP.Instances, ic.Old) {
					t.Error("Changed does not point into the configs")
				}
			}
		})
	}
}

func containsPtr(ins []Instance, p *Instance) bool {
	for i := range ins {
		if &ins[i] == p {
			return true
		}
	}
	return false
}

func TestDiffNil(t *testing.T) {
	c := mustParse(t, inst([]string{"name: a"}, []string{"name: b"}))
	ch := Diff(nil, c)
	if len(ch.Added) != 2 || len(ch.Removed)+len(ch.Changed)+len(ch.Unchanged) != 0 {
		t.Errorf("from nil: %+v", ch)
	}
	ch = Diff(c, nil)
	if len(ch.Removed) != 2 || ch.Removed[0].Old.Name != "a" || len(ch.Added) != 0 {
		t.Errorf("to nil: %+v", ch)
	}
	if ch := Diff(c, c); !ch.Empty() || len(ch.Unchanged) != 2 {
		t.Errorf("same: %+v", ch)
	}
	// Identity: interface, VRID, family.
	id := c.VRRP.Instances[0].Identity()
	if id != (Identity{Interface: "eth0", VRID: 51, Family: 4}) {
		t.Errorf("Identity %+v", id)
	}
}
