package vmac

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"vigil/test/netlab"
	"vigil/vrrp"
	"vigil/vrrp/announce"
	"vigil/vrrp/vip"
	"vigil/vrrp/vrrpnet"
)

// Root-only tests (VIGIL_NETNS=1) run on netlab nodes: eth0 is a veth whose
// peer is a port of the lab's bridge, so frames the vmac sends can be
// captured on the bridge.

const (
	labPrefix = "vgvmac"
	dev       = netlab.Dev
	vrid      = 51
)

var (
	n1Addr = netip.MustParsePrefix("192.0.2.11/24")
	n2Addr = netip.MustParsePrefix("192.0.2.12/24")
	vip4   = netip.MustParseAddr("192.0.2.100")
	vip6   = netip.MustParseAddr("2001:db8::100")
)

// env is one node with a Manager on it and a netlink handle to inspect what
// the Manager did.
type env struct {
	lab  *netlab.Lab
	node *netlab.Node
	ns   netns.NsHandle
	m    *Manager
	h    *netlink.Handle
}

// newLab builds a lab; the test's cleanup removes it.
func newLab(t *testing.T) *netlab.Lab {
	t.Helper()
	return netlab.NewForTest(t, labPrefix)
}

// onNode opens a Manager and a netlink handle in a new node of lab.
func onNode(t *testing.T, lab *netlab.Lab, name string, addrs ...netip.Prefix) env {
	t.Helper()
	node, err := lab.AddNode(name, addrs...)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.GetFromName(node.NS)
	if err != nil {
		t.Fatalf("open namespace %s: %v", node.NS, err)
	}
	t.Cleanup(func() { ns.Close() })
	m, err := NewAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return env{lab: lab, node: node, ns: ns, m: m, h: h}
}

func setup(t *testing.T) env {
	t.Helper()
	return onNode(t, newLab(t), "n1", n1Addr)
}

// run runs a command in the node's namespace.
func run(t *testing.T, node *netlab.Node, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := node.Run(ctx, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// ipCmd runs `ip -n NS args...`.
func ipCmd(t *testing.T, node *netlab.Node, args ...string) string {
	t.Helper()
	out, err := node.IP(args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// sysctl reads /proc/sys/net/<key> in the node's namespace with cat(1),
// independently of the package's own code.
func sysctl(t *testing.T, node *netlab.Node, key string) int {
	t.Helper()
	out := run(t, node, "cat", "/proc/sys/net/"+key)
	v, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("sysctl %s: %q: %v", key, out, err)
	}
	return v
}

func setSysctl(t *testing.T, node *netlab.Node, key string, v int) {
	t.Helper()
	run(t, node, "sh", "-c", fmt.Sprintf("echo %d > /proc/sys/net/%s", v, key))
}

// wantSysctls checks sysctls in the node's namespace.
func wantSysctls(t *testing.T, node *netlab.Node, want map[string]int) {
	t.Helper()
	for k, v := range want {
		if got := sysctl(t, node, k); got != v {
			t.Errorf("%s = %d, want %d", k, got, v)
		}
	}
}

// ensure calls Ensure and fails the test on error.
func ensure(t *testing.T, e env, name string, mac net.HardwareAddr) int {
	t.Helper()
	idx, err := e.m.Ensure(name, dev, mac)
	if err != nil {
		t.Fatal(err)
	}
	if idx <= 0 {
		t.Fatalf("Ensure(%s) returned index %d", name, idx)
	}
	return idx
}

// checkMacvlan checks name is an up macvlan on eth0, mode private, with mac
// and index idx.
func checkMacvlan(t *testing.T, e env, name string, mac net.HardwareAddr, idx int) {
	t.Helper()
	link, err := e.h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	mv, ok := link.(*netlink.Macvlan)
	if !ok {
		t.Fatalf("%s is a %s, want macvlan", name, link.Type())
	}
	parent, err := e.h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	a := mv.Attrs()
	if a.Index != idx {
		t.Errorf("%s has index %d, Ensure returned %d", name, a.Index, idx)
	}
	if a.ParentIndex != parent.Attrs().Index {
		t.Errorf("%s parent index %d, want %d (%s)", name, a.ParentIndex, parent.Attrs().Index, dev)
	}
	if mv.Mode != netlink.MACVLAN_MODE_PRIVATE {
		t.Errorf("%s mode %s, want private", name, modeName(mv.Mode))
	}
	if !bytes.Equal(a.HardwareAddr, mac) {
		t.Errorf("%s MAC %s, want %s", name, a.HardwareAddr, mac)
	}
	if a.Flags&net.FlagUp == 0 {
		t.Errorf("%s is not up (flags %v)", name, a.Flags)
	}
}

// countMAC counts the interfaces carrying mac.
func countMAC(t *testing.T, e env, mac net.HardwareAddr) int {
	t.Helper()
	links, err := e.h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range links {
		if bytes.Equal(l.Attrs().HardwareAddr, mac) {
			n++
		}
	}
	return n
}

func TestEnsureCreates(t *testing.T) {
	e := setup(t)
	name, mac := DefaultName(vrid, 4), MAC(vrid, 4)
	// The parent starts with the kernel's defaults, which the vmac needs
	// changed (netlab leaves them alone).
	wantSysctls(t, e.node, map[string]int{
		"ipv4/conf/" + dev + "/arp_ignore":   0,
		"ipv4/conf/" + dev + "/arp_announce": 0,
	})

	idx := ensure(t, e, name, mac)
	checkMacvlan(t, e, name, mac, idx)
	wantSysctls(t, e.node, map[string]int{
		"ipv4/conf/" + name + "/arp_ignore":          1,
		"ipv4/conf/" + name + "/arp_announce":        2,
		"ipv4/conf/" + name + "/accept_local":        1,
		"ipv4/conf/" + name + "/rp_filter":           0,
		"ipv4/conf/" + name + "/promote_secondaries": 1,
		"ipv6/conf/" + name + "/disable_ipv6":        1,
		"ipv6/conf/" + name + "/addr_gen_mode":       3, // random
		"ipv4/conf/" + dev + "/arp_ignore":           1,
		"ipv4/conf/" + dev + "/arp_announce":         2,
		"ipv4/conf/" + dev + "/arp_filter":           0, // keepalived sets 1; see the package doc
	})
	// An IPv4 vmac has no IPv6 at all: nothing can leave it in backup.
	infos, err := e.node.AddrInfos(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 0 {
		t.Errorf("IPv4 vmac %s has addresses %v, want none", name, infos)
	}
	// The sysctls went to the node's namespace, not the test's own (whose
	// /proc/sys/net this process sees from unswitched threads).
	if _, err := os.Stat("/proc/sys/net/ipv4/conf/" + name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("/proc/sys/net/ipv4/conf/%s in the test's namespace: %v, want it absent", name, err)
	}
}

func TestEnsureAdopts(t *testing.T) {
	e := setup(t)
	name, mac := DefaultName(vrid, 4), MAC(vrid, 4)
	idx := ensure(t, e, name, mac)
	if again := ensure(t, e, name, mac); again != idx {
		t.Errorf("second Ensure returned index %d, first %d", again, idx)
	}

	// A restart: a new Manager finds the vmac left behind, down and with a
	// setting changed, and adopts and repairs it.
	ipCmd(t, e.node, "link", "set", "dev", name, "down")
	setSysctl(t, e.node, "ipv4/conf/"+name+"/arp_ignore", 0)
	m2, err := NewAt(e.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	again, err := m2.Ensure(name, dev, mac)
	if err != nil {
		t.Fatal(err)
	}
	if again != idx {
		t.Errorf("Ensure after a restart returned index %d, want the existing %d", again, idx)
	}
	checkMacvlan(t, e, name, mac, idx)
	if got := sysctl(t, e.node, "ipv4/conf/"+name+"/arp_ignore"); got != 1 {
		t.Errorf("arp_ignore after adoption = %d, want 1", got)
	}
	if n := countMAC(t, e, mac); n != 1 {
		t.Errorf("%d interfaces carry %s, want 1", n, mac)
	}

	// A parent setting the administrator made stricter is kept.
	setSysctl(t, e.node, "ipv4/conf/"+dev+"/arp_ignore", 2)
	ensure(t, e, name, mac)
	if got := sysctl(t, e.node, "ipv4/conf/"+dev+"/arp_ignore"); got != 2 {
		t.Errorf("parent arp_ignore = %d after Ensure, want the administrator's 2 kept", got)
	}
}

func TestEnsureRejectsDifferentInterface(t *testing.T) {
	e := setup(t)
	// Another possible parent (the kernel may lack the dummy driver).
	ipCmd(t, e.node, "link", "add", "oth0", "type", "veth", "peer", "name", "oth1")
	for _, tc := range []struct {
		name   string
		create []string // ip arguments creating the conflicting interface
		mac    net.HardwareAddr
		want   []string // substrings of the error
	}{{
		name:   "vrrp.52",
		create: []string{"link", "add", "vrrp.52", "link", dev, "address", "02:00:00:00:00:52", "type", "macvlan", "mode", "private"},
		mac:    MAC(52, 4),
		want:   []string{"vrrp.52", "MAC 02:00:00:00:00:52 (want 00:00:5e:00:01:34)"},
	}, {
		name:   "vrrp.53",
		create: []string{"link", "add", "vrrp.53", "link", dev, "address", "00:00:5e:00:01:35", "type", "macvlan", "mode", "bridge"},
		mac:    MAC(53, 4),
		want:   []string{"mode bridge (want private)"},
	}, {
		name:   "vrrp.54",
		create: []string{"link", "add", "vrrp.54", "link", "oth0", "address", "00:00:5e:00:01:36", "type", "macvlan", "mode", "private"},
		mac:    MAC(54, 4),
		want:   []string{"parent oth0 (want eth0)"},
	}, {
		name:   "vrrp.55",
		create: []string{"link", "add", "vrrp.55", "type", "veth", "peer", "name", "vrrp.55p"},
		mac:    MAC(55, 4),
		want:   []string{"type veth (want macvlan)"},
	}, {
		name:   "vrrp.56",
		create: []string{"link", "add", "vrrp.56", "link", dev, "address", "02:00:00:00:00:56", "type", "macvlan", "mode", "vepa"},
		mac:    MAC(56, 4),
		want:   []string{"mode vepa (want private)", "MAC 02:00:00:00:00:56 (want 00:00:5e:00:01:38)"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ipCmd(t, e.node, tc.create...)
			before, err := e.h.LinkByName(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.m.Ensure(tc.name, dev, tc.mac)
			if err == nil {
				t.Fatalf("Ensure(%s) adopted a different interface", tc.name)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			// Left untouched.
			after, err := e.h.LinkByName(tc.name)
			if err != nil {
				t.Fatalf("%s is gone after the failed Ensure: %v", tc.name, err)
			}
			if after.Attrs().Index != before.Attrs().Index || !bytes.Equal(after.Attrs().HardwareAddr, before.Attrs().HardwareAddr) {
				t.Errorf("%s changed: %+v → %+v", tc.name, before.Attrs(), after.Attrs())
			}
		})
	}

	// Bad parents.
	if _, err := e.m.Ensure("vrrp.60", "nosuch0", MAC(60, 4)); err == nil || !strings.Contains(err.Error(), "parent interface nosuch0") {
		t.Errorf("Ensure on a missing parent: %v", err)
	}
	ensure(t, e, "vrrp.61", MAC(61, 4))
	if _, err := e.m.Ensure("vrrp.62", "vrrp.61", MAC(62, 4)); err == nil || !strings.Contains(err.Error(), "is itself a macvlan") {
		t.Errorf("Ensure on a macvlan parent: %v", err)
	}
	// The kernel refuses a second macvlan with the same MAC on one parent.
	// Ensure checks first, so nothing is left behind.
	if _, err := e.m.Ensure("other", dev, MAC(61, 4)); err == nil || !strings.Contains(err.Error(), "already used by macvlan vrrp.61") {
		t.Errorf("Ensure with a MAC in use: %v", err)
	}
	if _, err := e.h.LinkByName("other"); err == nil {
		t.Error("the failed Ensure left interface other behind")
	}
	// A failure after creating the interface removes it again: no IPv6 on
	// a parent with an MTU below 1280, so no IPv6 vmac.
	ipCmd(t, e.node, "link", "set", "dev", "oth0", "mtu", "1200")
	if _, err := e.m.Ensure("vrrp6.70", "oth0", MAC(70, 6)); err == nil || !strings.Contains(err.Error(), "IPv6 is not available") {
		t.Errorf("IPv6 vmac on a parent without IPv6: %v", err)
	}
	if _, err := e.h.LinkByName("vrrp6.70"); err == nil {
		t.Error("the failed Ensure left vrrp6.70 behind")
	}
	// An IPv4 vmac does without.
	if _, err := e.m.Ensure("vrrp.70", "oth0", MAC(70, 4)); err != nil {
		t.Errorf("IPv4 vmac on a parent without IPv6: %v", err)
	}
	if _, err := e.m.Ensure("vrrp.70", dev, MAC(70, 4)); err == nil || !strings.Contains(err.Error(), "parent oth0 (want eth0)") {
		t.Errorf("Ensure for another parent: %v", err)
	}
}

func TestRemove(t *testing.T) {
	e := setup(t)
	name, mac := DefaultName(vrid, 4), MAC(vrid, 4)
	ensure(t, e, name, mac)
	if err := e.m.Remove(name); err != nil {
		t.Fatal(err)
	}
	if _, err := e.h.LinkByName(name); !errors.As(err, &netlink.LinkNotFoundError{}) {
		t.Errorf("%s still there after Remove (%v)", name, err)
	}
	if err := e.m.Remove(name); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if err := e.m.Remove("never.there"); err != nil {
		t.Errorf("Remove of an interface that never existed: %v", err)
	}
	// Never a non-macvlan.
	if err := e.m.Remove(dev); err == nil || !strings.Contains(err.Error(), "not a macvlan") {
		t.Errorf("Remove(%s) = %v, want a refusal", dev, err)
	}
	if _, err := e.h.LinkByName(dev); err != nil {
		t.Fatalf("%s is gone: %v", dev, err)
	}
	// And Ensure recreates it.
	ensure(t, e, name, mac)
	e.m.Close()
	if _, err := e.m.Ensure(name, dev, mac); err == nil {
		t.Error("Ensure after Close succeeded")
	}
	e.m.Close() // idempotent
}

// arpFrame is the ARP part of an Ethernet frame.
type arpFrame struct {
	ethSrc   net.HardwareAddr
	op       uint16
	senderHW net.HardwareAddr
	senderIP netip.Addr
	targetIP netip.Addr
}

func parseARP(b []byte) (arpFrame, bool) {
	if len(b) < 42 || binary.BigEndian.Uint16(b[12:14]) != 0x0806 {
		return arpFrame{}, false
	}
	a := b[14:]
	if binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != 0x0800 || a[4] != 6 || a[5] != 4 {
		return arpFrame{}, false
	}
	return arpFrame{
		ethSrc:   net.HardwareAddr(b[6:12]),
		op:       binary.BigEndian.Uint16(a[6:8]),
		senderHW: net.HardwareAddr(a[8:14]),
		senderIP: netip.AddrFrom4([4]byte(a[14:18])),
		targetIP: netip.AddrFrom4([4]byte(a[24:28])),
	}, true
}

// TestARPUsesVirtualMAC: the GARP for a VIP on the vmac leaves with the
// virtual MAC; a host asking for the VIP gets only the virtual MAC (the
// parent, arp_ignore=1, does not answer with its own), and the reply path
// through the parent (arp_announce=2) never pairs the VIP with the parent's
// MAC, so the host's cache ends with the virtual MAC.
func TestARPUsesVirtualMAC(t *testing.T) {
	lab := newLab(t)
	e := onNode(t, lab, "n1", n1Addr)
	n2, err := lab.AddNode("n2", n2Addr)
	if err != nil {
		t.Fatal(err)
	}
	name, mac := DefaultName(vrid, 4), MAC(vrid, 4)
	ensure(t, e, name, mac)
	parentMAC, err := e.node.MAC(dev)
	if err != nil {
		t.Fatal(err)
	}

	vm, err := vip.NewAt(e.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	if err := vm.Add([]vip.VIP{{Prefix: netip.PrefixFrom(vip4, 32), Dev: name}}); err != nil {
		t.Fatal(err)
	}

	c, err := lab.StartCapture("arp")
	if err != nil {
		t.Fatal(err)
	}
	err = e.node.Do(func() error {
		a, err := announce.New(name, announce.Config{Repeat: 2}, nil)
		if err != nil {
			return err
		}
		defer a.Close()
		_, err = a.Burst([]netip.Addr{vip4})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, n2, "ping", "-c", "1", "-W", "2", vip4.String())
	frames, err := c.Stop()
	if err != nil {
		t.Fatal(err)
	}

	var garps, replies int
	for _, f := range frames {
		a, ok := parseARP(f.Data)
		if !ok {
			continue
		}
		t.Logf("ARP op %d from %s: %s is at %s (target %s)", a.op, a.ethSrc, a.senderIP, a.senderHW, a.targetIP)
		if a.senderIP != vip4 {
			continue
		}
		if !bytes.Equal(a.ethSrc, mac) || !bytes.Equal(a.senderHW, mac) {
			t.Errorf("ARP op %d pairs VIP %s with %s (Ethernet source %s), want %s (parent MAC is %s)",
				a.op, vip4, a.senderHW, a.ethSrc, mac, parentMAC)
		}
		switch {
		case a.op == 1 && a.targetIP == vip4:
			garps++
		case a.op == 2:
			replies++
		}
	}
	if garps != 2 {
		t.Errorf("captured %d gratuitous ARPs for %s, want 2", garps, vip4)
	}
	if replies == 0 {
		t.Errorf("no ARP reply for %s captured", vip4)
	}
	neigh := ipCmd(t, n2, "neigh", "show", vip4.String())
	if !strings.Contains(neigh, "lladdr "+mac.String()) {
		t.Errorf("n2's neighbour entry for %s is %q, want lladdr %s", vip4, strings.TrimSpace(neigh), mac)
	}
}

// TestIPv6VmacLinkLocal: an IPv6 vmac's link-local address is random, not
// the EUI-64 of the shared virtual MAC, so two routers' differ; it is usable
// at once; and an NA for a VIP on it leaves with the virtual MAC.
func TestIPv6VmacLinkLocal(t *testing.T) {
	lab := newLab(t)
	e1 := onNode(t, lab, "n1", n1Addr)
	e2 := onNode(t, lab, "n2", n2Addr)
	name, mac := DefaultName(vrid, 6), MAC(vrid, 6)
	eui := eui64LinkLocal(mac)

	var lls []netip.Addr
	for _, e := range []env{e1, e2} {
		idx := ensure(t, e, name, mac)
		checkMacvlan(t, e, name, mac, idx)
		wantSysctls(t, e.node, map[string]int{
			"ipv6/conf/" + name + "/addr_gen_mode": 3,
			"ipv6/conf/" + name + "/disable_ipv6":  0,
			"ipv6/conf/" + name + "/accept_dad":    0,
			"ipv6/conf/" + name + "/accept_ra":     0,
			"ipv4/conf/" + name + "/arp_ignore":    1,
			// An IPv6 vmac leaves the parent's ARP settings alone.
			"ipv4/conf/" + dev + "/arp_ignore":   0,
			"ipv4/conf/" + dev + "/arp_announce": 0,
		})
		// Usable at once: LinkLocal fails on a tentative address.
		ll, err := e.node.LinkLocal(name)
		if err != nil {
			t.Fatal(err)
		}
		if ll == eui {
			t.Errorf("%s on %s has the EUI-64 link-local %s of the virtual MAC", name, e.node.Name, ll)
		}
		lls = append(lls, ll)
	}
	if lls[0] == lls[1] {
		t.Errorf("both routers' vmacs have link-local %s", lls[0])
	}

	vm, err := vip.NewAt(e1.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	if err := vm.Add([]vip.VIP{{Prefix: netip.PrefixFrom(vip6, 128), Dev: name}}); err != nil {
		t.Fatal(err)
	}
	c, err := lab.StartCapture("icmp6 and ip6[40] == 136")
	if err != nil {
		t.Fatal(err)
	}
	err = e1.node.Do(func() error {
		a, err := announce.New(name, announce.Config{Repeat: 1}, nil)
		if err != nil {
			return err
		}
		defer a.Close()
		_, err = a.Burst([]netip.Addr{vip6})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	frames, err := c.Stop()
	if err != nil {
		t.Fatal(err)
	}
	nas := 0
	for _, f := range frames {
		b := f.Data
		// Ethernet(14) + IPv6(40): ICMPv6 type 136, target at +8.
		if len(b) < 14+40+24 || binary.BigEndian.Uint16(b[12:14]) != 0x86dd || b[54] != 136 {
			continue
		}
		if netip.AddrFrom16([16]byte(b[62:78])) != vip6 {
			continue
		}
		nas++
		if src := net.HardwareAddr(b[6:12]); !bytes.Equal(src, mac) {
			t.Errorf("NA for %s from Ethernet source %s, want %s", vip6, src, mac)
		}
		if src := netip.AddrFrom16([16]byte(b[22:38])); src != lls[0] {
			t.Errorf("NA for %s from %s, want the vmac's link-local %s", vip6, src, lls[0])
		}
	}
	if nas != 1 {
		t.Errorf("captured %d NAs for %s, want 1", nas, vip6)
	}
}

// TestAdoptReplacesEUI64LinkLocal: a vmac made elsewhere with the kernel's
// default addrgenmode (eui64) is adopted and its EUI-64 link-local replaced.
func TestAdoptReplacesEUI64LinkLocal(t *testing.T) {
	e := setup(t)
	name, mac := DefaultName(53, 6), MAC(53, 6)
	eui := eui64LinkLocal(mac)
	ipCmd(t, e.node, "link", "add", name, "link", dev, "address", mac.String(), "type", "macvlan", "mode", "private")
	ipCmd(t, e.node, "link", "set", "dev", name, "up")
	if ll, err := e.node.LinkLocal(name); err != nil || ll != eui {
		t.Fatalf("setup: link-local %s (%v), want %s", ll, err, eui)
	}
	ensure(t, e, name, mac)
	infos, err := e.node.AddrInfos(name)
	if err != nil {
		t.Fatal(err)
	}
	var lls []netip.Addr
	for _, i := range infos {
		if a := i.Prefix.Addr(); a.IsLinkLocalUnicast() {
			lls = append(lls, a)
		}
	}
	if len(lls) != 1 || lls[0] == eui {
		t.Errorf("link-local addresses after adoption %v, want one that is not %s", lls, eui)
	}
	if got := sysctl(t, e.node, "ipv6/conf/"+name+"/addr_gen_mode"); got != 3 {
		t.Errorf("addr_gen_mode = %d, want 3 (random)", got)
	}
}

// TestStrictRPFilter: with all.rp_filter=1 the kernel would filter the vmac
// strictly and drop every packet the hosts send to the VIP; Ensure moves
// strict mode to the individual interfaces, and the VIP answers.
func TestStrictRPFilter(t *testing.T) {
	lab := newLab(t)
	e := onNode(t, lab, "n1", n1Addr)
	n2, err := lab.AddNode("n2", n2Addr)
	if err != nil {
		t.Fatal(err)
	}
	setSysctl(t, e.node, "ipv4/conf/all/rp_filter", 1)
	setSysctl(t, e.node, "ipv4/conf/default/rp_filter", 0)
	setSysctl(t, e.node, "ipv4/conf/"+dev+"/rp_filter", 0)
	setSysctl(t, e.node, "ipv4/conf/lo/rp_filter", 2)

	name := DefaultName(vrid, 4)
	ensure(t, e, name, MAC(vrid, 4))
	wantSysctls(t, e.node, map[string]int{
		"ipv4/conf/all/rp_filter":          0,
		"ipv4/conf/default/rp_filter":      1,
		"ipv4/conf/" + dev + "/rp_filter":  1,
		"ipv4/conf/lo/rp_filter":           2, // not below all's 1 in the kernel's max(): kept
		"ipv4/conf/" + name + "/rp_filter": 0,
	})

	vm, err := vip.NewAt(e.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	if err := vm.Add([]vip.VIP{{Prefix: netip.PrefixFrom(vip4, 32), Dev: name}}); err != nil {
		t.Fatal(err)
	}
	run(t, n2, "ping", "-c", "1", "-W", "2", vip4.String())

	// The administrator puts all back to 1; the next vmac repeats the move,
	// and leaves the first vmac at 0.
	setSysctl(t, e.node, "ipv4/conf/all/rp_filter", 1)
	second := DefaultName(52, 4)
	ensure(t, e, second, MAC(52, 4))
	wantSysctls(t, e.node, map[string]int{
		"ipv4/conf/all/rp_filter":            0,
		"ipv4/conf/" + name + "/rp_filter":   0,
		"ipv4/conf/" + second + "/rp_filter": 0,
	})
	run(t, n2, "ping", "-c", "1", "-W", "2", vip4.String())
}

// TestAdvertsArriveOnTheVmac documents the kernel behaviour the daemon's
// receive path depends on: a multicast frame whose source MAC is the MAC of
// one of our own private-mode macvlans (the other router's advert, sent from
// its vmac with the same virtual MAC) is delivered to that macvlan only and
// never reaches the parent. A backup must therefore receive adverts on its
// vmac (joining 224.0.0.18 there), not on the parent.
func TestAdvertsArriveOnTheVmac(t *testing.T) {
	lab := newLab(t)
	e1 := onNode(t, lab, "n1", n1Addr)
	e2 := onNode(t, lab, "n2", n2Addr)
	name, mac := DefaultName(vrid, 4), MAC(vrid, 4)
	ensure(t, e1, name, mac)
	ensure(t, e2, name, mac)

	// n1 listens on both; the sockets stay in n1's namespace after Do.
	var onParent, onVmac *vrrpnet.Conn
	err := e1.node.Do(func() error {
		var err error
		if onParent, err = vrrpnet.Listen(dev, 4, true); err != nil {
			return err
		}
		onVmac, err = vrrpnet.Listen(name, 4, true)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]chan struct{}{"parent": make(chan struct{}, 16), "vmac": make(chan struct{}, 16)}
	for what, c := range map[string]*vrrpnet.Conn{"parent": onParent, "vmac": onVmac} {
		go func() {
			buf := make([]byte, 1500)
			for {
				p, err := c.Read(buf)
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					continue
				}
				if p.Rx.Src == n2Addr.Addr() {
					select {
					case got[what] <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	defer onParent.Close()
	defer onVmac.Close()

	adv := vrrp.Advert{Version: 3, VRID: vrid, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{vip4}}
	msg, err := adv.Marshal(n2Addr.Addr(), vrrp.GroupIPv4, vrrp.ChecksumPseudoHeader)
	if err != nil {
		t.Fatal(err)
	}
	err = e2.node.Do(func() error {
		c, err := vrrpnet.Listen(name, 4, false)
		if err != nil {
			return err
		}
		defer c.Close()
		for range 3 {
			if err := c.Write(msg, n2Addr.Addr(), vrrp.GroupIPv4); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-got["vmac"]:
	case <-time.After(2 * time.Second):
		t.Fatal("n2's advert, sent from its vmac, did not arrive on n1's vmac")
	}
	select {
	case <-got["parent"]:
		t.Error("n2's advert arrived on n1's parent; the receive path can use the parent after all")
	case <-time.After(300 * time.Millisecond):
	}
}

// TestDisableLinkLocalIGMPReports: joining 224.0.0.18 on the vmac sends IGMP
// reports with the virtual MAC as source, until DisableLinkLocalIGMPReports.
func TestDisableLinkLocalIGMPReports(t *testing.T) {
	e := setup(t)
	name, mac := DefaultName(vrid, 4), MAC(vrid, 4)
	ensure(t, e, name, mac)
	if got := sysctl(t, e.node, "ipv4/igmp_link_local_mcast_reports"); got != 1 {
		t.Fatalf("igmp_link_local_mcast_reports starts at %d, want the kernel default 1", got)
	}
	// reports joins the VRRP group on the vmac and counts the IGMP frames
	// that leave it with the virtual MAC.
	reports := func() int {
		t.Helper()
		c, err := e.lab.StartCapture("igmp")
		if err != nil {
			t.Fatal(err)
		}
		err = e.node.Do(func() error {
			conn, err := vrrpnet.Listen(name, 4, true)
			if err != nil {
				return err
			}
			time.Sleep(1500 * time.Millisecond) // IGMPv3 repeats the report within 1 s
			return conn.Close()
		})
		if err != nil {
			t.Fatal(err)
		}
		frames, err := c.Stop()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range frames {
			if len(f.Data) >= 12 && bytes.Equal(f.Data[6:12], mac) {
				n++
			}
		}
		return n
	}
	if n := reports(); n == 0 {
		t.Error("joining 224.0.0.18 on the vmac sent no IGMP report from the virtual MAC; the hazard this guards against is gone")
	}
	for range 2 {
		if err := e.m.DisableLinkLocalIGMPReports(); err != nil {
			t.Fatal(err)
		}
	}
	if got := sysctl(t, e.node, "ipv4/igmp_link_local_mcast_reports"); got != 0 {
		t.Errorf("igmp_link_local_mcast_reports = %d, want 0", got)
	}
	if n := reports(); n != 0 {
		t.Errorf("%d IGMP frames from the virtual MAC after DisableLinkLocalIGMPReports, want 0", n)
	}
}

// TestIPv4VmacIsQuiet: Ensure of an IPv4 vmac makes it send nothing (no
// IPv6 DAD, router solicitation or MLD), so a backup's vmac never teaches the
// switch the virtual MAC.
func TestIPv4VmacIsQuiet(t *testing.T) {
	e := setup(t)
	name, mac := DefaultName(vrid, 4), MAC(vrid, 4)
	c, err := e.lab.StartCapture("ether src " + mac.String())
	if err != nil {
		t.Fatal(err)
	}
	ensure(t, e, name, mac)
	time.Sleep(1500 * time.Millisecond)
	frames, err := c.Stop()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		t.Errorf("the new vmac sent a frame: % x", f.Data)
	}
}

// TestRemoveGivesSettingsBack: the settings Ensure changed outside the
// vmacs (the parent's ARP settings, the strict rp_filter move) go back to
// what they were once the last vmac that needs them is removed, and not
// before: not while another vmac of this Manager or another vigil's vmac
// is on the parent. A value changed since by someone else stays (issue 11
// item 6; keepalived restores the same way).
func TestRemoveGivesSettingsBack(t *testing.T) {
	e := setup(t)
	settings := []struct {
		key             string
		before, changed int
	}{
		{"ipv4/conf/" + dev + "/arp_ignore", 0, 1},
		{"ipv4/conf/" + dev + "/arp_announce", 1, 2},
		{"ipv4/conf/default/rp_filter", 0, 1},
		{"ipv4/conf/" + dev + "/rp_filter", 0, 1},
		{"ipv4/conf/lo/rp_filter", 2, 2},  // not below all's 1: kept
		{"ipv4/conf/all/rp_filter", 1, 0}, // last: strict from here on
	}
	before, changed := map[string]int{}, map[string]int{}
	for _, s := range settings {
		setSysctl(t, e.node, s.key, s.before)
		before[s.key], changed[s.key] = s.before, s.changed
	}
	first, second, theirs := DefaultName(51, 4), DefaultName(52, 4), DefaultName(53, 4)
	ensure(t, e, first, MAC(51, 4))
	ensure(t, e, second, MAC(52, 4))
	other, err := NewAt(e.ns) // another vigil in the namespace
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Ensure(theirs, dev, MAC(53, 4)); err != nil {
		t.Fatal(err)
	}
	wantSysctls(t, e.node, changed)

	remove := func(m *Manager, name string) {
		t.Helper()
		if err := m.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	remove(e.m, first)
	wantSysctls(t, e.node, changed) // the second vmac needs them
	remove(e.m, second)
	wantSysctls(t, e.node, changed) // the other vigil's vmac needs them
	remove(other, theirs)
	wantSysctls(t, e.node, changed) // the other vigil changed nothing: nothing to give back

	// The administrator chose arp_announce 3 meanwhile; the next Remove
	// (the vmac is gone already) gives the rest back.
	setSysctl(t, e.node, "ipv4/conf/"+dev+"/arp_announce", 3)
	remove(e.m, second)
	before["ipv4/conf/"+dev+"/arp_announce"] = 3
	wantSysctls(t, e.node, before)
}
