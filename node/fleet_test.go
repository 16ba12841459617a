package node

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"vigil/config"
	"vigil/gossip"
	"vigil/lb/check"
)

// instanceSummary turns an instance's status into its gossip row: the advert source is the
// RFC tie-break address, the VIPs (without prefix lengths) identify the virtual router.
func TestInstanceSummary(t *testing.T) {
	is := InstanceStatus{Name: "web", Interface: "eth0", VRID: 51, Family: "ipv6", State: "master", BasePriority: 100,
		EffectivePriority: 90, Source: "fe80::1", AdvertInterval: 0.1,
		VIPs: []VIPStatus{{Address: "2001:db8::100/64", Dev: "eth0"}, {Address: "2001:db8::101/64", Dev: "eth1"}}}
	got := instanceSummary(is)
	vips := []netip.Addr{netip.MustParseAddr("2001:db8::100"), netip.MustParseAddr("2001:db8::101")}
	want := gossip.InstanceSummary{Name: "web", VRID: 51, Family: 6, Interface: "eth0", State: "master", Base: 100, Priority: 90,
		Primary: netip.MustParseAddr("fe80::1"), Interval: 100 * time.Millisecond, VIPs: vips, VIPSet: gossip.HashVIPs(vips), VIPCount: 2}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("instanceSummary:\n got %+v\nwant %+v", got, want)
	}
	// No source yet (waiting in FAULT): no primary, which arbitration ignores.
	is.Source = ""
	if s := instanceSummary(is); s.Primary.IsValid() {
		t.Fatalf("primary %v without a source", s.Primary)
	}
}

// sameInstance must see a change in every field, or a changed instance would not be
// republished: each field of InstanceSummary is changed in turn.
func TestSameInstanceSeesEveryField(t *testing.T) {
	base := gossip.InstanceSummary{Name: "web", VRID: 51, Family: 4, Interface: "eth0", State: "backup", Base: 100, Priority: 100,
		Primary: netip.MustParseAddr("192.0.2.11"), Interval: time.Second, VIPs: []netip.Addr{netip.MustParseAddr("192.0.2.100")},
		VIPSet: "abc", VIPCount: 1}
	if !sameInstance(base, base) {
		t.Fatal("a summary differs from itself")
	}
	v := reflect.ValueOf(&base).Elem()
	for i := range v.NumField() {
		changed := base
		changed.VIPs = append([]netip.Addr(nil), base.VIPs...)
		f := reflect.ValueOf(&changed).Elem().Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(f.String() + "x")
		case reflect.Int, reflect.Int64:
			f.SetInt(f.Int() + 1)
		case reflect.Uint8:
			f.SetUint(f.Uint() + 1)
		case reflect.Slice:
			changed.VIPs = append(changed.VIPs, netip.MustParseAddr("192.0.2.101"))
		case reflect.Struct: // netip.Addr
			changed.Primary = netip.MustParseAddr("192.0.2.12")
		default:
			t.Fatalf("field %s: kind %s not covered by this test", v.Type().Field(i).Name, f.Kind())
		}
		if sameInstance(base, changed) {
			t.Errorf("sameInstance misses a change of %s", v.Type().Field(i).Name)
		}
	}
}

// A reload reports changed gossip settings (they need a restart), but not a keyring file that
// `vigil gossip keys` rewrote: the running keyring is the fleet's.
func TestGossipChanged(t *testing.T) {
	a := &config.Gossip{Bind: netip.MustParseAddrPort("192.0.2.11:7946"), Cluster: "c", Keys: [][]byte{{1}}, Arbitrate: true}
	b := *a
	b.Keys = [][]byte{{2}}
	if gossipChanged(a, &b) {
		t.Error("other keys reported as a change")
	}
	b.Arbitrate = false
	if !gossipChanged(a, &b) {
		t.Error("arbitrate: false not reported")
	}
	if !gossipChanged(a, nil) || !gossipChanged(nil, a) || gossipChanged(nil, nil) {
		t.Error("a section added or removed")
	}
}

// A verdict counts in the fleet view only while fresh (issue 13: "a result older than 3 check
// intervals is not fresh"): the observer marks its own row, since rows travel only on change.
func TestCheckFresh(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	spec := check.Spec{Interval: 2 * time.Second, Timeout: time.Second}
	cases := []struct {
		name string
		st   check.CheckStatus
		want bool
	}{
		{"probed just now", check.CheckStatus{Check: check.Check{Spec: spec}, Status: check.Status{Last: now.Add(-time.Second)}}, true},
		{"3 intervals and a timeout ago", check.CheckStatus{Check: check.Check{Spec: spec}, Status: check.Status{Last: now.Add(-7 * time.Second)}}, true},
		{"stalled beyond that", check.CheckStatus{Check: check.Check{Spec: spec}, Status: check.Status{Last: now.Add(-7*time.Second - time.Millisecond)}}, false},
		{"no result yet", check.CheckStatus{Check: check.Check{Spec: spec}, Status: check.Status{Init: true}}, false},
		{"suspended (ha_suspend)", check.CheckStatus{Check: check.Check{Spec: spec}, Status: check.Status{Last: now}, Suspended: true}, false},
	}
	for _, c := range cases {
		if got := checkFresh(c.st, now); got != c.want {
			t.Errorf("%s: fresh %v, want %v", c.name, got, c.want)
		}
	}
}

// The lb section's identity (what divergence groups by) is the same for
// members whose files differ elsewhere or only in health_policy, and
// differs when what decides the table (here a weight) differs.
func TestLBSectionHash(t *testing.T) {
	doc := func(node, policy string, weight int) *config.Config {
		t.Helper()
		cfg, err := config.Parse(fmt.Appendf(nil, `node: {name: %s}
gossip: {insecure: true}
lb:
  virtual_servers:
    - name: web
      address: 192.0.2.100:80
      protocol: tcp
      %s
      real_servers:
        - {address: "198.51.100.11:80", weight: %d, check: {type: tcp}}
`, node, policy, weight))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	base := lbSectionHash(doc("d1", "health_policy: local", 1))
	if base == "" {
		t.Fatal("no hash: the lb section did not encode")
	}
	if h := lbSectionHash(doc("d2", "health_policy: local", 1)); h != base {
		t.Errorf("another node name changed the lb hash: %s, %s", h, base)
	}
	if h := lbSectionHash(doc("d1", "health_policy: local", 2)); h == base {
		t.Error("another weight kept the lb hash")
	}
	if h := lbSectionHash(doc("d1", "health_policy: quorum", 1)); h != base {
		t.Errorf("the health policy changed the lb hash: %s, %s", h, base)
	}
}

// direct_fanout: 0 means gossip only, which the driver spells negative (its
// 0 is its default, 64).
func TestFanout(t *testing.T) {
	for in, want := range map[int]int{0: -1, 1: 1, 64: 64} {
		if got := fanout(in); got != want {
			t.Errorf("fanout(%d) = %d, want %d", in, got, want)
		}
	}
}

// A member restarted in the middle of a rollout keeps the plan its
// version was pushed with (canaries, order, hold), so its re-announcement
// keeps the rest of the fleet gated; a state without one is the default.
func TestRestartKeepsRolloutPlan(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse(fmt.Appendf(nil, "node: {name: n1}\ngossip: {insecure: true}\nfleet: {config: follow, state_dir: %s}\n", dir))
	if err != nil {
		t.Fatal(err)
	}
	st, err := config.OpenFleetState(dir)
	if err != nil {
		t.Fatal(err)
	}
	doc := []byte("vrrp: {instances: []}\n")
	plan := gossip.RolloutPlan{Order: gossip.OrderAll, Canary: []string{"n3"}, CanaryHold: 45 * time.Second}
	raw, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	v := config.FleetVersion{Version: 3, Hash: config.DocumentHash(doc), Origin: "n2"}
	if err := st.Record(config.FleetEntry{FleetVersion: v, Applied: time.Now(), PushedBy: "ops", Plan: raw}, doc); err != nil {
		t.Fatal(err)
	}
	fc, err := newFleetConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if fc.applied != v || fc.pushedBy != "ops" || !reflect.DeepEqual(fc.ro.plan, plan) {
		t.Errorf("after a restart: version %+v by %q, plan %+v; want %+v by ops, plan %+v", fc.applied, fc.pushedBy, fc.ro.plan, v, plan)
	}
	// The next version, pushed with the default plan, leaves none behind.
	v4 := config.FleetVersion{Version: 4, Hash: config.DocumentHash(doc), Origin: "n2"}
	if err := st.Record(config.FleetEntry{FleetVersion: v4, Applied: time.Now()}, doc); err != nil {
		t.Fatal(err)
	}
	if fc, err = newFleetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if !fc.ro.plan.IsZero() {
		t.Errorf("version 4 has the default plan, the restart gave %+v", fc.ro.plan)
	}
}

// A node keeps the documents it can still be asked for: its history's, the one it runs and those
// pushed through it that are not far behind the fleet; the rest are forgotten (each push of a
// 520 kB document was kept in memory for good).
func TestPruneDocs(t *testing.T) {
	st, err := config.OpenFleetState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	doc := func(s string) []byte { return []byte("vrrp: {}\n# " + s + "\n") }
	ver := func(n uint64, d []byte) config.FleetVersion {
		return config.FleetVersion{Version: n, Hash: config.DocumentHash(d), Origin: "n1"}
	}
	old, recorded, pushed, gone := doc("old"), doc("recorded"), doc("pushed"), doc("gone")
	for i, d := range [][]byte{old, recorded} {
		if err := st.Record(config.FleetEntry{FleetVersion: ver(uint64(i+1), d)}, d); err != nil {
			t.Fatal(err)
		}
	}
	fc := &fleetConfig{follow: true, state: st, applied: ver(2, recorded), ro: newRolloutState(), docs: map[string][]byte{}}
	for _, d := range [][]byte{old, recorded, pushed, gone} {
		fc.docs[config.DocumentHash(d)] = d
	}
	fc.ro.pushed[ver(3, pushed)] = true
	fc.pruneDocs()
	for name, d := range map[string][]byte{"old (in the history)": old, "recorded": recorded, "pushed here": pushed} {
		if _, ok := fc.docs[config.DocumentHash(d)]; !ok {
			t.Errorf("the %s document was forgotten", name)
		}
	}
	if _, ok := fc.docs[config.DocumentHash(gone)]; ok || len(fc.docs) != 3 {
		t.Errorf("a document of no version kept: %d documents", len(fc.docs))
	}
}
