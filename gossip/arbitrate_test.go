package gossip

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

var (
	vips4 = []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("192.0.2.101")}
	vips6 = []netip.Addr{netip.MustParseAddr("2001:db8::100")}
)

// inst is an instance of virtual router 51 with vips; the family follows
// the primary address.
func inst(name, state string, prio uint8, primary string, vips []netip.Addr) InstanceSummary {
	p := netip.MustParseAddr(primary)
	fam := 4
	if p.Is6() {
		fam = 6
	}
	return InstanceSummary{Name: name, VRID: 51, Family: fam, State: state, Base: prio, Priority: prio, Primary: p,
		Interval: time.Second, VIPs: vips, VIPSet: HashVIPs(vips)}
}

func master(inst, node string, prio uint8, primary string) FleetMaster {
	return FleetMaster{Instance: inst, Node: node, Priority: prio, Primary: netip.MustParseAddr(primary), Interval: time.Second}
}

// Issue 13, split-brain arbitration: "another live member is MASTER for
// the same virtual router (same VRID, family and VIP set) with a higher
// priority (RFC tie-break on equal priority: the higher primary address
// wins)"; RFC 9568 §6.4.3 compares addresses as unsigned integers.
func TestFleetMasters(t *testing.T) {
	own4 := inst("web", StateMaster, 100, "192.0.2.11", vips4)
	own6 := inst("web6", StateMaster, 100, "2001:db8::11", vips6)
	otherVRID := inst("web", StateMaster, 200, "192.0.2.12", vips4)
	otherVRID.VRID = 52
	otherVRID.VIPSet = HashVIPs(vips4)
	truncated := inst("web", StateMaster, 150, "192.0.2.12", vips4)
	truncated.VIPs = vips4[:1] // VIPSet still covers both
	for _, c := range []struct {
		name   string
		own    []InstanceSummary
		others map[string][]InstanceSummary
		want   []FleetMaster
	}{
		{"higher priority wins", []InstanceSummary{own4}, map[string][]InstanceSummary{
			"b": {inst("w", StateMaster, 150, "192.0.2.12", vips4)}, "c": {inst("w", StateMaster, 120, "192.0.2.13", vips4)}},
			[]FleetMaster{master("web", "b", 150, "192.0.2.12")}},
		{"equal priority: higher IPv4 primary wins", []InstanceSummary{own4}, map[string][]InstanceSummary{
			"b": {inst("w", StateMaster, 150, "192.0.2.12", vips4)}, "c": {inst("w", StateMaster, 150, "192.0.2.13", vips4)}},
			[]FleetMaster{master("web", "c", 150, "192.0.2.13")}},
		{"equal priority: higher IPv6 primary wins", []InstanceSummary{own6}, map[string][]InstanceSummary{
			"b": {inst("w", StateMaster, 150, "2001:db8::12", vips6)}, "c": {inst("w", StateMaster, 150, "2001:db8::9", vips6)}},
			[]FleetMaster{master("web6", "b", 150, "2001:db8::12")}},
		{"a lower master is still reported: the VRRP core decides", []InstanceSummary{own4}, map[string][]InstanceSummary{
			"b": {inst("w", StateMaster, 50, "192.0.2.12", vips4)}}, []FleetMaster{master("web", "b", 50, "192.0.2.12")}},
		{"different VIP set is another router", []InstanceSummary{own4}, map[string][]InstanceSummary{
			"b": {inst("w", StateMaster, 150, "192.0.2.12", vips4[:1])}}, nil},
		{"different family is another router", []InstanceSummary{own4}, map[string][]InstanceSummary{
			"b": {inst("w", StateMaster, 150, "2001:db8::12", vips4)}}, nil},
		{"different VRID is another router", []InstanceSummary{own4}, map[string][]InstanceSummary{"b": {otherVRID}}, nil},
		{"a truncated VIP list with the same VIPSet is the same router", []InstanceSummary{own4},
			map[string][]InstanceSummary{"b": {truncated}}, []FleetMaster{master("web", "b", 150, "192.0.2.12")}},
		{"BACKUP, FAULT and INIT others ignored", []InstanceSummary{own4}, map[string][]InstanceSummary{
			"b": {inst("w", StateBackup, 250, "192.0.2.12", vips4)}, "c": {inst("w", StateFault, 250, "192.0.2.13", vips4)},
			"d": {inst("w", StateInit, 250, "192.0.2.14", vips4)}}, nil},
		{"the caller's own node never returned", []InstanceSummary{own4}, map[string][]InstanceSummary{
			"self": {own4}, "b": {inst("w", StateMaster, 90, "192.0.2.12", vips4)}}, []FleetMaster{master("web", "b", 90, "192.0.2.12")}},
		{"own BACKUP instance gets its master too", []InstanceSummary{inst("web", StateBackup, 100, "192.0.2.11", vips4)},
			map[string][]InstanceSummary{"b": {inst("w", StateMaster, 150, "192.0.2.12", vips4)}},
			[]FleetMaster{master("web", "b", 150, "192.0.2.12")}},
		{"own FAULT and INIT instances get none", []InstanceSummary{inst("web", StateFault, 100, "192.0.2.11", vips4),
			inst("web2", StateInit, 100, "192.0.2.11", vips4)},
			map[string][]InstanceSummary{"b": {inst("w", StateMaster, 150, "192.0.2.12", vips4)}}, nil},
		{"several own instances, sorted by name", []InstanceSummary{own6, own4}, map[string][]InstanceSummary{
			"b": {inst("w6", StateMaster, 150, "2001:db8::12", vips6), inst("w", StateMaster, 150, "192.0.2.12", vips4)}},
			[]FleetMaster{master("web", "b", 150, "192.0.2.12"), master("web6", "b", 150, "2001:db8::12")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := FleetMasters(c.own, c.others); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// Issue 13: "Every member reports the number of masters it sees per
// virtual router (metric, status), so 'two masters' and 'no master' are
// visible from any node."
func TestVirtualRouters(t *testing.T) {
	nodes := map[string][]InstanceSummary{
		"self": {inst("web", StateMaster, 100, "192.0.2.11", vips4), inst("web6", StateBackup, 100, "2001:db8::11", vips6)},
		"b":    {inst("www", StateMaster, 150, "192.0.2.12", vips4), inst("web6", StateBackup, 90, "2001:db8::12", vips6)},
		"c":    {inst("web", StateFault, 0, "192.0.2.13", vips4)},
	}
	k4 := VRKey{VRID: 51, Family: 4, VIPSet: HashVIPs(vips4)}
	k6 := VRKey{VRID: 51, Family: 6, VIPSet: HashVIPs(vips6)}
	want := []VRStatus{
		{Key: k4, Name: "web", Masters: []string{"b", "self"}, Members: []VRMember{
			{"b", "www", StateMaster, 150}, {"c", "web", StateFault, 0}, {"self", "web", StateMaster, 100}}},
		{Key: k6, Name: "web6", Members: []VRMember{
			{"b", "web6", StateBackup, 90}, {"self", "web6", StateBackup, 100}}},
	}
	if got := VirtualRouters(nodes); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if got := VirtualRouters(nil); len(got) != 0 {
		t.Errorf("no nodes: %+v, want none", got)
	}
}
