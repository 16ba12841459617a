package vip

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"vigil/test/netlab"
)

// Root-only tests (VIGIL_NETNS=1) run on a netlab node of their own: eth0 is
// a veth whose peer is a bridge port. A veth, unlike a dummy, does DAD once
// accept_dad is back on (netlab turns it off), so "not tentative" really
// proves IFA_F_NODAD.
const dev = netlab.Dev

// env is one test's namespace: a Manager, a raw netlink handle to inspect
// what the Manager did, and the namespace itself.
type env struct {
	m    *Manager
	h    *netlink.Handle
	ns   netns.NsHandle
	node *netlab.Node
}

// setup builds a lab with one node; the lab removes it when the test ends.
func setup(t *testing.T) env {
	t.Helper()
	node, err := netlab.NewForTest(t, "vgvip").AddNode("n")
	if err != nil {
		t.Fatal(err)
	}
	// DAD on for addresses added from now on (the kernel checks it per address).
	if _, err := run(node, "sysctl", "-qw", "net.ipv6.conf."+dev+".accept_dad=1"); err != nil {
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
	return env{m: m, h: h, ns: ns, node: node}
}

// run runs a command in the node's namespace and returns its output.
func run(node *netlab.Node, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := node.Run(ctx, name, args...)
	return string(out), err
}

// addrs returns dev's addresses from 192.0.2.0/24 and 2001:db8::/32, keyed
// by address, failing on a duplicate address+prefix.
func addrs(t *testing.T, h *netlink.Handle, dev string) map[netip.Prefix]netlink.Addr {
	t.Helper()
	link, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	list, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	doc4, doc6 := netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")
	out := map[netip.Prefix]netlink.Addr{}
	for _, a := range list {
		ip, _ := netip.AddrFromSlice(a.IP)
		bits, _ := a.Mask.Size()
		p := netip.PrefixFrom(ip.Unmap(), bits)
		if !doc4.Contains(p.Addr()) && !doc6.Contains(p.Addr()) {
			continue
		}
		if _, dup := out[p]; dup {
			t.Fatalf("%s appears twice on %s", p, dev)
		}
		out[p] = a
	}
	return out
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

var testVIPs = []VIP{
	{Prefix: pfx("192.0.2.100/24"), Dev: dev, Label: dev + ":web"},
	{Prefix: pfx("192.0.2.101/32"), Dev: dev},
	{Prefix: pfx("2001:db8::100/64"), Dev: dev},
	{Prefix: pfx("2001:db8::101/128"), Dev: dev},
}

func TestAddIdempotentAndAttributes(t *testing.T) {
	e := setup(t)
	m, h := e.m, e.h
	for i := range 2 {
		if err := m.Add(testVIPs); err != nil {
			t.Fatalf("Add #%d: %v", i+1, err)
		}
	}
	got := addrs(t, h, dev)
	if len(got) != len(testVIPs) {
		t.Fatalf("after Add twice: %d addresses, want %d: %v", len(got), len(testVIPs), got)
	}

	web := got[pfx("192.0.2.100/24")]
	if web.Label != dev+":web" {
		t.Errorf("192.0.2.100/24 label = %q, want %q", web.Label, dev+":web")
	}
	if !web.Broadcast.Equal(netip.MustParseAddr("192.0.2.255").AsSlice()) {
		t.Errorf("192.0.2.100/24 broadcast = %v, want 192.0.2.255", web.Broadcast)
	}
	if l := got[pfx("192.0.2.101/32")].Label; l != dev {
		t.Errorf("192.0.2.101/32 label = %q, want the bare interface name", l)
	}

	for _, p := range []string{"2001:db8::100/64", "2001:db8::101/128"} {
		a := got[pfx(p)]
		if a.Flags&unix.IFA_F_NODAD == 0 {
			t.Errorf("%s: flags %#x lack nodad", p, a.Flags)
		}
		if a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			t.Errorf("%s: flags %#x: tentative or dadfailed, want usable at once", p, a.Flags)
		}
	}
	v64 := got[pfx("2001:db8::100/64")]
	if v64.Flags&unix.IFA_F_DEPRECATED != 0 {
		t.Errorf("2001:db8::100/64 is deprecated; only /128 VIPs should be")
	}
	v128 := got[pfx("2001:db8::101/128")]
	if v128.Flags&unix.IFA_F_DEPRECATED == 0 || v128.PreferedLft != 0 {
		t.Errorf("2001:db8::101/128: flags %#x preferred_lft %d, want deprecated with preferred_lft 0", v128.Flags, v128.PreferedLft)
	}
	if uint32(v128.ValidLft) != 0xFFFFFFFF {
		t.Errorf("2001:db8::101/128: valid_lft %d, want forever", v128.ValidLft)
	}
}

func TestRemoveIdempotent(t *testing.T) {
	e := setup(t)
	m, h := e.m, e.h
	if err := m.Add(testVIPs); err != nil {
		t.Fatal(err)
	}
	// Remove ignores labels: the kernel entry carries one, the request not.
	rm := append([]VIP(nil), testVIPs...)
	rm[0].Label = ""
	for i := range 2 {
		if err := m.Remove(rm); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if got := addrs(t, h, dev); len(got) != 0 {
		t.Fatalf("after Remove: %v left", got)
	}
	// A device that is gone holds nothing to remove.
	if err := m.Remove([]VIP{{Prefix: pfx("192.0.2.100/24"), Dev: "vgnosuch0"}}); err != nil {
		t.Errorf("Remove on a missing device: %v, want nil", err)
	}
}

func TestPresentAfterCrash(t *testing.T) {
	e := setup(t)
	m, h := e.m, e.h
	if err := m.Add(testVIPs); err != nil {
		t.Fatal(err)
	}
	// Someone else's address on the same device must not be reported.
	if _, err := e.node.IP("addr", "add", "192.0.2.1/24", "dev", dev); err != nil {
		t.Fatal(err)
	}
	m.Close() // the old daemon dies without removing anything

	m2, err := NewAt(e.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()

	// The new run's configuration changed one prefix length (/24 -> /32)
	// and lists a VIP on a device that is gone: the leftover is still
	// found, as the kernel holds it, and the missing device is no error.
	cfg := []VIP{
		{Prefix: pfx("192.0.2.100/32"), Dev: dev},
		{Prefix: pfx("192.0.2.101/32"), Dev: dev},
		{Prefix: pfx("2001:db8::100/64"), Dev: dev},
		{Prefix: pfx("2001:db8::101/128"), Dev: dev},
		{Prefix: pfx("2001:db8::101/128"), Dev: dev}, // duplicates are reported once
		{Prefix: pfx("192.0.2.200/32"), Dev: dev},    // never added
		{Prefix: pfx("192.0.2.100/32"), Dev: "vgnosuch0"},
	}
	present, err := m2.Present(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[VIP]bool{
		{Prefix: pfx("192.0.2.100/24"), Dev: dev, Label: dev + ":web"}: true,
		{Prefix: pfx("192.0.2.101/32"), Dev: dev}:                      true,
		{Prefix: pfx("2001:db8::100/64"), Dev: dev}:                    true,
		{Prefix: pfx("2001:db8::101/128"), Dev: dev}:                   true,
	}
	if len(present) != len(want) {
		t.Fatalf("Present = %v, want %d entries", present, len(want))
	}
	for _, v := range present {
		if !want[v] {
			t.Errorf("Present reported %v, not expected", v)
		}
	}

	if err := m2.Remove(present); err != nil {
		t.Fatal(err)
	}
	if again, err := m2.Present(cfg); err != nil || len(again) != 0 {
		t.Fatalf("Present after Remove = %v, %v; want none", again, err)
	}
	got := addrs(t, h, dev)
	if _, ok := got[pfx("192.0.2.1/24")]; !ok || len(got) != 1 {
		t.Fatalf("after reconcile: %v, want only the foreign 192.0.2.1/24", got)
	}
}

func TestErrorsNameTheInterface(t *testing.T) {
	e := setup(t)
	m, h := e.m, e.h
	err := m.Add([]VIP{
		{Prefix: pfx("192.0.2.100/24"), Dev: "vgnosuch0"},
		{Prefix: pfx("192.0.2.101/32"), Dev: dev}, // still added
		{Prefix: pfx("2001:db8::1/64"), Dev: "vgnosuch1"},
	})
	if err == nil {
		t.Fatal("Add on missing devices: no error")
	}
	t.Logf("Add error: %v", err)
	for _, want := range []string{"vgnosuch0", "192.0.2.100/24", "vgnosuch1", "2001:db8::1/64"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, ok := addrs(t, h, dev)[pfx("192.0.2.101/32")]; !ok {
		t.Errorf("the valid VIP was not added alongside the failures")
	}
}

func TestValidate(t *testing.T) {
	// No kernel needed: bad input is refused before any netlink request.
	for _, v := range []VIP{
		{Dev: dev},
		{Prefix: pfx("192.0.2.1/32")},
		{Prefix: pfx("2001:db8::1/128"), Dev: dev, Label: dev + ":x"},
		{Prefix: pfx("192.0.2.1/32"), Dev: dev, Label: "a-label-far-too-long"},
		{Prefix: pfx("::ffff:192.0.2.1/128"), Dev: dev},
		{Prefix: pfx("224.0.0.18/32"), Dev: dev},
	} {
		if err := v.validate(); err == nil {
			t.Errorf("validate(%v) = nil, want an error", v)
		}
	}
	if err := (VIP{Prefix: pfx("192.0.2.1/24"), Dev: dev, Label: dev + ":web"}).validate(); err != nil {
		t.Errorf("valid VIP refused: %v", err)
	}
}

func TestRemoveKeepsSecondaries(t *testing.T) {
	e := setup(t)
	// Two instances' VIPs in one subnet: the first added is the primary.
	a := VIP{Prefix: pfx("192.0.2.100/24"), Dev: dev}
	b := VIP{Prefix: pfx("192.0.2.101/24"), Dev: dev}
	if err := e.m.Add([]VIP{a, b}); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Remove([]VIP{a}); err != nil {
		t.Fatal(err)
	}
	got := addrs(t, e.h, dev)
	if _, ok := got[b.Prefix]; !ok || len(got) != 1 {
		t.Fatalf("after removing the primary %s: %v, want only %s", a.Prefix, got, b.Prefix)
	}
	out, err := run(e.node, "cat", "/proc/sys/net/ipv4/conf/"+dev+"/promote_secondaries")
	if err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("promote_secondaries on %s = %q (%v), want 1", dev, out, err)
	}
}

func TestIPv6OtherPrefixLength(t *testing.T) {
	e := setup(t)
	// The kernel keeps one IPv6 entry per address: an Add with another
	// prefix length succeeds without a duplicate, and Remove takes it off.
	if err := e.m.Add([]VIP{{Prefix: pfx("2001:db8::100/64"), Dev: dev}}); err != nil {
		t.Fatal(err)
	}
	v := VIP{Prefix: pfx("2001:db8::100/128"), Dev: dev}
	if err := e.m.Add([]VIP{v}); err != nil {
		t.Fatal(err)
	}
	if got := addrs(t, e.h, dev); len(got) != 1 {
		t.Fatalf("after Add with another prefix length: %v, want one entry", got)
	}
	if err := e.m.Remove([]VIP{v}); err != nil {
		t.Fatal(err)
	}
	if got := addrs(t, e.h, dev); len(got) != 0 {
		t.Fatalf("after Remove: %v left", got)
	}
}
