package vmac

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestMAC(t *testing.T) {
	for _, tc := range []struct {
		vrid   uint8
		family int
		want   string
	}{
		{51, 4, "00:00:5e:00:01:33"},
		{51, 6, "00:00:5e:00:02:33"},
		{1, 4, "00:00:5e:00:01:01"},
		{255, 6, "00:00:5e:00:02:ff"},
	} {
		if got := MAC(tc.vrid, tc.family).String(); got != tc.want {
			t.Errorf("MAC(%d, %d) = %s, want %s", tc.vrid, tc.family, got, tc.want)
		}
		if got := macFamily(MAC(tc.vrid, tc.family)); got != tc.family {
			t.Errorf("macFamily(MAC(%d, %d)) = %d", tc.vrid, tc.family, got)
		}
	}
	for _, f := range []int{0, 2, 10, 5} {
		if m := MAC(1, f); m != nil {
			t.Errorf("MAC(1, %d) = %s, want nil", f, m)
		}
	}
	if f := macFamily(net.HardwareAddr{0x02, 0, 0, 0, 0, 1}); f != 0 {
		t.Errorf("macFamily of a custom MAC = %d, want 0", f)
	}
	if f := macFamily(net.HardwareAddr{0, 0, 0x5e, 0, 0x03, 1}); f != 0 {
		t.Errorf("macFamily(00:00:5e:00:03:01) = %d, want 0", f)
	}
}

func TestDefaultName(t *testing.T) {
	for _, tc := range []struct {
		vrid   uint8
		family int
		want   string
	}{
		{51, 4, "vrrp.51"},
		{51, 6, "vrrp6.51"},
		{255, 6, "vrrp6.255"},
		{1, 4, "vrrp.1"},
		{1, 3, ""},
	} {
		got := DefaultName(tc.vrid, tc.family)
		if got != tc.want {
			t.Errorf("DefaultName(%d, %d) = %q, want %q", tc.vrid, tc.family, got, tc.want)
		}
		if len(got) > maxNameLen {
			t.Errorf("DefaultName(%d, %d) = %q is longer than IFNAMSIZ-1", tc.vrid, tc.family, got)
		}
	}
}

func TestValidate(t *testing.T) {
	good := MAC(51, 4)
	for _, tc := range []struct {
		name, parent string
		mac          net.HardwareAddr
		want         string // substring of the error; "" = valid
	}{
		{"vrrp.51", "eth0", good, ""},
		{"vrrp6.255", "bond0.100", MAC(255, 6), ""},
		{"v", "eth0", net.HardwareAddr{0x02, 0, 0, 0, 0, 1}, ""},
		{"", "eth0", good, "no interface name"},
		{"vrrp.51", "", good, "no parent interface name"},
		{"a-name-too-long-x", "eth0", good, "longer than 15"},
		{"vrrp/51", "eth0", good, "contains"},
		{"vrrp 51", "eth0", good, "contains"},
		{"vrrp:51", "eth0", good, "contains"},
		{"..", "eth0", good, "invalid interface name"},
		{"eth0", "eth0", good, "its own parent"},
		{"vrrp.51", "eth0", nil, "not a 6-byte unicast"},
		{"vrrp.51", "eth0", net.HardwareAddr{1, 0, 0x5e, 0, 0, 18}, "not a 6-byte unicast"},
		{"vrrp.51", "eth0", net.HardwareAddr{0, 0, 0, 0, 0, 0}, "not a 6-byte unicast"},
		{"vrrp.51", "eth0", net.HardwareAddr{0, 0, 0x5e, 0, 1, 51, 0, 0}, "not a 6-byte unicast"},
	} {
		err := validate(tc.name, tc.parent, tc.mac)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("validate(%q, %q, %s) = %v, want nil", tc.name, tc.parent, tc.mac, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("validate(%q, %q, %s) = %v, want an error containing %q", tc.name, tc.parent, tc.mac, err, tc.want)
		}
	}
}

func TestEUI64LinkLocal(t *testing.T) {
	// What the kernel gives a macvlan with addrgenmode eui64 (keepalived #364
	// shows fe80::200:5eff:fe00:119 for VRID 25).
	if got, want := eui64LinkLocal(MAC(25, 4)), netip.MustParseAddr("fe80::200:5eff:fe00:119"); got != want {
		t.Errorf("eui64LinkLocal(MAC(25, 4)) = %s, want %s", got, want)
	}
	if got, want := eui64LinkLocal(MAC(51, 6)), netip.MustParseAddr("fe80::200:5eff:fe00:233"); got != want {
		t.Errorf("eui64LinkLocal(MAC(51, 6)) = %s, want %s", got, want)
	}
}

func TestSysctlName(t *testing.T) {
	if got := sysctlName("ipv4/conf/vrrp.51/arp_ignore"); got != "net.ipv4.conf.vrrp.51.arp_ignore" {
		t.Errorf("sysctlName = %q", got)
	}
}

// TestDue: a change is undone once no vmac left needs it (keepalived gives
// the parent's ARP settings back when its last vmac on it goes, rp_filter
// at exit), newest first.
func TestDue(t *testing.T) {
	arpIgnore := change{key: "ipv4/conf/eth0/arp_ignore", from: 0, to: 1, parent: "eth0"}
	arpOther := change{key: "ipv4/conf/eth1/arp_ignore", from: 0, to: 1, parent: "eth1"}
	rpDefault := change{key: "ipv4/conf/default/rp_filter", from: 0, to: 1}
	rpAll := change{key: "ipv4/conf/all/rp_filter", from: 1, to: 0}
	journal := []change{arpIgnore, rpDefault, rpAll, arpOther}
	for _, tc := range []struct {
		name       string
		users      users
		undo, keep []change
	}{
		{"no vmac left: everything, newest first", users{}, []change{arpOther, rpAll, rpDefault, arpIgnore}, nil},
		{"a vmac left on eth0: its parent's and the namespace's stay", users{parents: map[string]bool{"eth0": true}, any: true},
			[]change{arpOther}, []change{arpIgnore, rpDefault, rpAll}},
		{"a vmac left on eth2 only: the rp_filter move stays", users{parents: map[string]bool{"eth2": true}, any: true},
			[]change{arpOther, arpIgnore}, []change{rpDefault, rpAll}},
	} {
		undo, keep := due(journal, tc.users)
		if !slices.Equal(undo, tc.undo) || !slices.Equal(keep, tc.keep) {
			t.Errorf("%s: undo %v keep %v, want undo %v keep %v", tc.name, undo, keep, tc.undo, tc.keep)
		}
	}
}

// TestActionFor: only a value that is still the one written is given back
// (keepalived's rp_filter restore rule); a later one is someone's choice.
func TestActionFor(t *testing.T) {
	c := change{key: "ipv4/conf/eth0/arp_announce", from: 1, to: 2}
	for cur, want := range map[int]restoreAction{2: restoreWrite, 1: restoreNothing, 0: restoreLeave, 3: restoreLeave} {
		if got := actionFor(c, cur); got != want {
			t.Errorf("actionFor(from 1 to 2, now %d) = %d, want %d", cur, got, want)
		}
	}
}
