package accept

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netns"

	"vigil/test/netlab"
)

var (
	ownAddr4 = netip.MustParseAddr("192.0.2.1")
	ownAddr6 = netip.MustParseAddr("2001:db8::1")
	peer4    = netip.MustParseAddr("192.0.2.2")
	peer6    = netip.MustParseAddr("2001:db8::2")
	vip4a    = netip.MustParseAddr("192.0.2.100")
	vip4b    = netip.MustParseAddr("192.0.2.101")
	vip6a    = netip.MustParseAddr("2001:db8::100")
	vip6b    = netip.MustParseAddr("2001:db8::101")
)

// Interface names absent from the root namespace: ndp resolves its zone by
// name, and Go's zone cache is shared by every namespace of the process.
const (
	nodeDev = "vgacc0"
	peerDev = "vgacc1"
)

// labSeq gives each (parallel) test a netlab prefix of its own: vgacca,
// vgaccb, ...
var labSeq atomic.Int32

// lab is two netlab nodes on one segment: "node" holds its own addresses and
// the VIPs (as a VRRP master does) and runs a TCP listener on every address;
// "peer" probes it.
type lab struct {
	node, peer *netlab.Node
	nodeNS     netns.NsHandle
	nodeMAC    net.HardwareAddr
	port       int
}

func prefixes(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func newLab(t *testing.T) *lab {
	t.Helper()
	nl := netlab.NewForTest(t, fmt.Sprintf("vgacc%c", 'a'+(labSeq.Add(1)-1)%26))
	node, err := nl.AddNodeConfig(netlab.NodeConfig{Name: "node", Dev: nodeDev, Addrs: prefixes(
		"192.0.2.1/24", "192.0.2.100/24", "192.0.2.101/24", "2001:db8::1/64", "2001:db8::100/64", "2001:db8::101/64")})
	if err != nil {
		t.Fatal(err)
	}
	peer, err := nl.AddNodeConfig(netlab.NodeConfig{Name: "peer", Dev: peerDev, Addrs: prefixes("192.0.2.2/24", "2001:db8::2/64")})
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{node: node, peer: peer}
	if l.nodeNS, err = netns.GetFromName(node.NS); err != nil {
		t.Fatalf("open namespace %s: %v", node.NS, err)
	}
	t.Cleanup(func() { l.nodeNS.Close() })
	if l.nodeMAC, err = node.MAC(nodeDev); err != nil {
		t.Fatal(err)
	}

	var ln net.Listener
	err = node.Do(func() (err error) {
		ln, err = net.Listen("tcp", "[::]:0") // dual-stack: every address of the node
		return err
	})
	if err != nil {
		t.Fatalf("listening in %s: %v", node.NS, err)
	}
	t.Cleanup(func() { ln.Close() })
	l.port = ln.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// Everything is reachable before any block.
	l.wantReachable(t, ownAddr4, ownAddr6, vip4a, vip4b, vip6a, vip6b)
	return l
}

// peerIP runs `ip -n <peer namespace> args...` and returns its output.
func (l *lab) peerIP(t *testing.T, args ...string) string {
	t.Helper()
	out, err := l.peer.IP(args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// filter opens a Filter in the node namespace; Cleanup closes it.
func (l *lab) filter(t *testing.T) *Filter {
	t.Helper()
	f, err := NewAt(l.nodeNS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// nft is an independent connection to nftables in the node namespace, to
// inspect what the Filter did.
func (l *lab) nft(t *testing.T) *nftables.Conn {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(l.nodeNS)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// comments returns the comments of the rules in vigil's chain, in order.
func (l *lab) comments(t *testing.T) []string {
	t.Helper()
	tb := table()
	rules, err := l.nft(t).GetRules(tb, chain(tb))
	if err != nil {
		t.Fatalf("listing rules: %v", err)
	}
	var out []string
	for _, r := range rules {
		out = append(out, comment(r))
	}
	return out
}

func (l *lab) wantRules(t *testing.T, want ...string) {
	t.Helper()
	got := l.comments(t)
	want = append([]string{ndComment}, want...)
	if !slices.Equal(got, want) {
		t.Fatalf("rules in inet %s %s:\n got %q\nwant %q", TableName, ChainName, got, want)
	}
}

func (l *lab) handles(t *testing.T) []uint64 {
	t.Helper()
	tb := table()
	rules, err := l.nft(t).GetRules(tb, chain(tb))
	if err != nil {
		t.Fatalf("listing rules: %v", err)
	}
	var out []uint64
	for _, r := range rules {
		out = append(out, r.Handle)
	}
	return out
}

func (l *lab) hasTable(t *testing.T) bool {
	t.Helper()
	tables, err := l.nft(t).ListTables()
	if err != nil {
		t.Fatalf("listing tables: %v", err)
	}
	for _, tb := range tables {
		if tb.Name == TableName && tb.Family == nftables.TableFamilyINet {
			return true
		}
	}
	return false
}

// tcp reports whether a TCP connection from the peer to addr succeeds. A
// dropped SYN shows as a timeout.
func (l *lab) tcp(t *testing.T, addr netip.Addr) bool {
	t.Helper()
	var ok bool
	err := l.peer.Do(func() error {
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(addr, uint16(l.port)).String(), 500*time.Millisecond)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return err
		}
		ok = true
		return c.Close()
	})
	if err != nil {
		t.Fatalf("tcp to %s: unexpected error (want success or timeout): %v", addr, err)
	}
	return ok
}

// ping reports whether one ICMP echo from the peer to addr is answered.
func (l *lab) ping(addr netip.Addr) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := l.peer.Run(ctx, "ping", "-n", "-q", "-c", "1", "-W", "1", addr.String())
	return err == nil
}

func (l *lab) wantReachable(t *testing.T, addrs ...netip.Addr) {
	t.Helper()
	for _, a := range addrs {
		if !l.tcp(t, a) {
			t.Errorf("TCP from the peer to %s failed; want it accepted", a)
		}
	}
}

func (l *lab) wantBlocked(t *testing.T, addrs ...netip.Addr) {
	t.Helper()
	for _, a := range addrs {
		if l.tcp(t, a) {
			t.Errorf("TCP from the peer to %s connected; want it dropped", a)
		}
	}
}

// neighbour returns the peer's neighbour-table line for addr, after
// flushing the table and sending a probe so that it is resolved afresh.
func (l *lab) neighbour(t *testing.T, addr netip.Addr) string {
	t.Helper()
	fam := "-4"
	if addr.Is6() {
		fam = "-6"
	}
	l.peerIP(t, fam, "neigh", "flush", "dev", peerDev)
	l.tcp(t, addr)
	return strings.TrimSpace(l.peerIP(t, fam, "neigh", "show", addr.String(), "dev", peerDev))
}

// solicit sends a unicast Neighbor Solicitation for target from the peer to
// target itself (as neighbour unreachability detection does) and reports
// whether a solicited Neighbor Advertisement comes back.
func (l *lab) solicit(t *testing.T, target netip.Addr) bool {
	t.Helper()
	// A permanent entry, so the peer's kernel sends the NS without first
	// resolving target itself, and any NA for target answers ours.
	l.peerIP(t, "-6", "neigh", "replace", target.String(), "lladdr", l.nodeMAC.String(), "dev", peerDev, "nud", "permanent")
	defer l.peerIP(t, "-6", "neigh", "del", target.String(), "dev", peerDev)
	var answered bool
	err := l.peer.Do(func() error {
		ifi, err := net.InterfaceByName(peerDev)
		if err != nil {
			return err
		}
		c, src, err := ndp.Listen(ifi, ndp.Global)
		if err != nil {
			return err
		}
		defer c.Close()
		if src.WithZone("") != peer6 {
			return fmt.Errorf("ndp chose source %s, want %s", src, peer6)
		}
		ns := &ndp.NeighborSolicitation{
			TargetAddress: target,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: ifi.HardwareAddr}},
		}
		if err := c.WriteTo(ns, nil, target); err != nil {
			return fmt.Errorf("sending NS: %w", err)
		}
		if err := c.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
			return err
		}
		for {
			m, _, from, err := c.ReadFrom()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					return nil
				}
				return err
			}
			if na, ok := m.(*ndp.NeighborAdvertisement); ok && na.TargetAddress == target && na.Solicited {
				t.Logf("NA for %s from %s", target, from)
				answered = true
				return nil
			}
		}
	})
	if err != nil {
		t.Fatalf("unicast NS for %s: %v", target, err)
	}
	return answered
}

func TestBlockDropsTrafficButNotNeighbourDiscovery(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	f := l.filter(t)
	l.wantRules(t)

	if err := f.Block("web", []netip.Addr{vip4a, vip6a}); err != nil {
		t.Fatal(err)
	}
	l.wantRules(t, "no_accept web ipv4", "no_accept web ipv6")
	l.wantBlocked(t, vip4a, vip6a)
	for _, a := range []netip.Addr{vip4a, vip6a} {
		if l.ping(a) {
			t.Errorf("ping from the peer to %s answered; want it dropped", a)
		}
	}
	// Not blocked: the node's own addresses and the other VIPs.
	l.wantReachable(t, ownAddr4, ownAddr6, vip4b, vip6b)
	for _, a := range []netip.Addr{ownAddr4, ownAddr6} {
		if !l.ping(a) {
			t.Errorf("ping from the peer to %s failed; want it answered", a)
		}
	}

	// ARP for the blocked IPv4 VIP and neighbour discovery for the blocked
	// IPv6 VIP still work: the peer learns the node's MAC.
	for _, a := range []netip.Addr{vip4a, vip6a} {
		line := l.neighbour(t, a)
		if !strings.Contains(line, "lladdr "+l.nodeMAC.String()) || strings.Contains(line, "FAILED") || strings.Contains(line, "INCOMPLETE") {
			t.Errorf("peer's neighbour entry for blocked %s = %q; want it resolved to %s", a, line, l.nodeMAC)
		}
	}
	// A unicast NS addressed to the blocked VIP itself is answered too.
	if !l.solicit(t, vip6a) {
		t.Errorf("unicast neighbour solicitation to blocked %s not answered", vip6a)
	}

	if err := f.Unblock("web"); err != nil {
		t.Fatal(err)
	}
	l.wantRules(t)
	l.wantReachable(t, vip4a, vip6a)
	for _, a := range []netip.Addr{vip4a, vip6a} {
		if !l.ping(a) {
			t.Errorf("ping from the peer to %s failed after Unblock; want it answered", a)
		}
	}
}

func TestBlockIdempotentAndReplace(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	f := l.filter(t)

	if err := f.Block("web", []netip.Addr{vip6a, vip4a, vip4a}); err != nil {
		t.Fatal(err)
	}
	before := l.handles(t)
	// Same addresses in another order: nothing changes, not even handles.
	if err := f.Block("web", []netip.Addr{vip4a, vip6a}); err != nil {
		t.Fatal(err)
	}
	if after := l.handles(t); !slices.Equal(before, after) {
		t.Errorf("second Block changed the rules: handles %v -> %v", before, after)
	}
	l.wantRules(t, "no_accept web ipv4", "no_accept web ipv6")
	if got, want := f.Blocked("web"), []netip.Addr{vip4a, vip6a}; !slices.Equal(got, want) {
		t.Errorf("Blocked = %v, want %v", got, want)
	}
	l.wantBlocked(t, vip4a, vip6a)

	// Other addresses replace the old ones.
	if err := f.Block("web", []netip.Addr{vip4b}); err != nil {
		t.Fatal(err)
	}
	l.wantRules(t, "no_accept web ipv4")
	l.wantBlocked(t, vip4b)
	l.wantReachable(t, vip4a, vip6a)

	// No addresses is Unblock.
	if err := f.Block("web", nil); err != nil {
		t.Fatal(err)
	}
	l.wantRules(t)
	l.wantReachable(t, vip4b)

	// Unblock of an owner that blocks nothing is fine.
	if err := f.Unblock("nobody"); err != nil {
		t.Fatal(err)
	}
}

func TestOwnersIndependent(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	f := l.filter(t)

	if err := f.Block("a", []netip.Addr{vip4a}); err != nil {
		t.Fatal(err)
	}
	if err := f.Block("b", []netip.Addr{vip4b, vip6b}); err != nil {
		t.Fatal(err)
	}
	l.wantRules(t, "no_accept a ipv4", "no_accept b ipv4", "no_accept b ipv6")
	l.wantBlocked(t, vip4a, vip4b, vip6b)
	l.wantReachable(t, vip6a)
	bHandles := l.handles(t)[2:]

	if err := f.Unblock("a"); err != nil {
		t.Fatal(err)
	}
	l.wantRules(t, "no_accept b ipv4", "no_accept b ipv6")
	if got := l.handles(t)[1:]; !slices.Equal(got, bHandles) {
		t.Errorf("Unblock(a) touched b's rules: handles %v -> %v", bHandles, got)
	}
	l.wantReachable(t, vip4a)
	l.wantBlocked(t, vip4b, vip6b)

	// Changing b does not touch a.
	if err := f.Block("a", []netip.Addr{vip6a}); err != nil {
		t.Fatal(err)
	}
	if err := f.Unblock("b"); err != nil {
		t.Fatal(err)
	}
	l.wantRules(t, "no_accept a ipv6")
	l.wantBlocked(t, vip6a)
	l.wantReachable(t, vip4a, vip4b, vip6b)
}

func TestNewAfterCrash(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	crashed, err := NewAt(l.nodeNS)
	if err != nil {
		t.Fatal(err)
	}
	if err := crashed.Block("web", []netip.Addr{vip4a, vip6a}); err != nil {
		t.Fatal(err)
	}
	// The crashed run also left something else in its table.
	c := l.nft(t)
	c.AddChain(&nftables.Chain{Name: "leftover", Table: table()})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	crashed.closeNS() // no Close: the table stays, as after a crash
	l.wantBlocked(t, vip4a)

	f := l.filter(t)
	l.wantRules(t)
	l.wantReachable(t, vip4a, vip6a)
	chains, err := l.nft(t).ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chains {
		if ch.Table.Name == TableName && ch.Name != ChainName {
			t.Errorf("chain %q from the crashed run survived New", ch.Name)
		}
	}
	if err := f.Block("web", []netip.Addr{vip4a}); err != nil {
		t.Fatal(err)
	}
	l.wantBlocked(t, vip4a)
}

func TestCloseRemovesTable(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	f, err := NewAt(l.nodeNS)
	if err != nil {
		t.Fatal(err)
	}
	if !l.hasTable(t) {
		t.Fatalf("no table inet %s after New", TableName)
	}
	if err := f.Block("web", []netip.Addr{vip4a, vip6a}); err != nil {
		t.Fatal(err)
	}
	l.wantBlocked(t, vip4a)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if l.hasTable(t) {
		t.Errorf("table inet %s still present after Close", TableName)
	}
	l.wantReachable(t, vip4a, vip6a)
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := f.Block("web", []netip.Addr{vip4a}); !errors.Is(err, ErrClosed) {
		t.Errorf("Block after Close = %v, want ErrClosed", err)
	}
	if err := f.Unblock("web"); !errors.Is(err, ErrClosed) {
		t.Errorf("Unblock after Close = %v, want ErrClosed", err)
	}
}

func TestRepairsAfterOutsideFlush(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	f := l.filter(t)
	if err := f.Block("a", []netip.Addr{vip4a}); err != nil {
		t.Fatal(err)
	}
	// A firewall reload (`nft flush ruleset`) takes vigil's table away.
	c := l.nft(t)
	c.DelTable(table())
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	l.wantReachable(t, vip4a)

	// The next change puts back every owner's rules, not only its own.
	if err := f.Block("b", []netip.Addr{vip6b}); err != nil {
		t.Fatal(err)
	}
	l.wantRules(t, "no_accept a ipv4", "no_accept b ipv6")
	l.wantBlocked(t, vip4a, vip6b)

	// A rule someone else put in vigil's chain is removed.
	tb := table()
	c.AddRule(&nftables.Rule{Table: tb, Chain: chain(tb)})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Unblock("a"); err != nil {
		t.Fatal(err)
	}
	l.wantRules(t, "no_accept b ipv6")
	l.wantReachable(t, vip4a)
}

// The tests below need no kernel.

func TestValidation(t *testing.T) {
	f := &Filter{nsFd: -1, owners: map[string]blocked{}}
	for _, tc := range []struct {
		owner string
		addrs []netip.Addr
		want  string
	}{
		{"", []netip.Addr{vip4a}, "empty owner"},
		{"a\x00b", []netip.Addr{vip4a}, "NUL"},
		{"web", []netip.Addr{{}}, "invalid"},
		{"web", []netip.Addr{netip.MustParseAddr("::ffff:192.0.2.1")}, "IPv4-mapped"},
		{"web", []netip.Addr{netip.MustParseAddr("224.0.0.18")}, "not a unicast"},
		{"web", []netip.Addr{netip.MustParseAddr("::")}, "not a unicast"},
	} {
		err := f.Block(tc.owner, tc.addrs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Block(%q, %v) = %v, want an error containing %q", tc.owner, tc.addrs, err, tc.want)
		}
	}
	if err := f.Unblock(""); err == nil {
		t.Error("Unblock(\"\") succeeded")
	}
}

func TestSplit(t *testing.T) {
	b, err := split([]netip.Addr{vip6b, vip4b, netip.MustParseAddr("fe80::1%eth0"), vip4a, vip6a, vip4b})
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Addr{vip4a, vip4b}; !slices.Equal(b.v4, want) {
		t.Errorf("v4 = %v, want %v", b.v4, want)
	}
	if want := []netip.Addr{vip6a, vip6b, netip.MustParseAddr("fe80::1")}; !slices.Equal(b.v6, want) {
		t.Errorf("v6 = %v, want %v", b.v6, want)
	}
}

func TestTag(t *testing.T) {
	long := strings.Repeat("x", 300)
	seen := map[string]string{}
	for _, owner := range []string{"web", "web ipv4", "a", long, long + "y", strings.Repeat("é", 80)} {
		for _, fam := range []int{4, 6} {
			tg := tag(owner, fam)
			if len(tg) > 128 {
				t.Errorf("tag(%.20q..., %d) is %d bytes; nft prints at most 128", owner, fam, len(tg))
			}
			if !strings.HasSuffix(tg, " ipv"+strconv.Itoa(fam)) {
				t.Errorf("tag(%.20q, %d) = %q: no family suffix", owner, fam, tg)
			}
			key := owner + "/" + strconv.Itoa(fam)
			if prev, dup := seen[tg]; dup {
				t.Errorf("tag %q for both %.20q and %.20q", tg, prev, key)
			}
			seen[tg] = key
			if tg == ndComment {
				t.Errorf("tag %q collides with the ND rule", tg)
			}
		}
	}
}
