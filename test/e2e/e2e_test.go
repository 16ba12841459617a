// Package e2e runs vigil clusters in network namespaces on real raw sockets:
// election, preemption, nopreempt, priority-0 handover, node loss, unicast,
// IPv6, v2 and v3, several VRIDs on one link, and restart after a crash.
package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"vigil/test/netlab"
	"vigil/test/peer"
	"vigil/vrrp"
)

var (
	vip4 = netip.MustParsePrefix("192.0.2.100/24")
	vip6 = netip.MustParsePrefix("2001:db8::100/64")
)

type cluster struct {
	t     *testing.T
	lab   *netlab.Lab
	bin   string
	nodes []*netlab.Node
	procs map[string]*netlab.Process
	insts map[string][]peer.Instance
	cap   *netlab.Capture
}

// newCluster builds n nodes (n1..nN at 192.0.2.1N/24 and 2001:db8::1N/64)
// and starts a capture on the bridge.
func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	lab := netlab.NewForTest(t, "vge2")
	bin, err := peer.VigilBinary()
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, lab: lab, bin: bin, procs: map[string]*netlab.Process{}, insts: map[string][]peer.Instance{}}
	for i := 1; i <= n; i++ {
		nd, err := lab.AddNode(fmt.Sprintf("n%d", i),
			netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", 10+i)),
			netip.MustParsePrefix(fmt.Sprintf("2001:db8::%d/64", 10+i)))
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, nd)
	}
	c.cap, err = lab.StartCapture(netlab.FilterVRRP)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *cluster) node(name string) *netlab.Node { return c.lab.Node(name) }

func (c *cluster) start(name string, insts ...peer.Instance) {
	c.t.Helper()
	p, err := peer.StartVigil(c.node(name), c.bin, insts)
	if err != nil {
		c.t.Fatal(err)
	}
	c.procs[name] = p
	c.insts[name] = insts
}

func (c *cluster) stop(name string) {
	c.t.Helper()
	if err := c.procs[name].Stop(5 * time.Second); err != nil {
		c.t.Fatalf("stopping vigil on %s: %v\n%s", name, err, c.procs[name].Log())
	}
}

// holders returns the nodes that have addr on eth0.
func (c *cluster) holders(addr netip.Addr) []string {
	c.t.Helper()
	var hs []string
	for _, n := range c.nodes {
		ok, err := n.HasAddr("eth0", addr)
		if err != nil {
			c.t.Fatal(err)
		}
		if ok {
			hs = append(hs, n.Name)
		}
	}
	return hs
}

// waitHolder waits until exactly want holds addr (want "" = nobody), then
// checks that it stays so for hold.
func (c *cluster) waitHolder(addr netip.Addr, want string, timeout, hold time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	wantList := []string{}
	if want != "" {
		wantList = []string{want}
	}
	for {
		hs := c.holders(addr)
		if slices.Equal(hs, wantList) {
			break
		}
		if time.Since(start) > timeout {
			c.t.Fatalf("after %s %s is held by %v, want %v\n%s", timeout, addr, hs, wantList, c.logs())
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(start)
	for end := time.Now().Add(hold); time.Now().Before(end); time.Sleep(hold / 10) {
		if hs := c.holders(addr); !slices.Equal(hs, wantList) {
			c.t.Fatalf("%s held by %v during the hold period, want %v\n%s", addr, hs, wantList, c.logs())
		}
	}
	return took
}

func (c *cluster) logs() string {
	var b strings.Builder
	for name, p := range c.procs {
		fmt.Fprintf(&b, "--- vigil on %s ---\n%s\n", name, p.LogLines(30))
	}
	return b.String()
}

// adverts returns the VRRP frames captured so far.
func (c *cluster) adverts() []netlab.VRRPFrame {
	c.t.Helper()
	fr, err := c.cap.Frames()
	if err != nil {
		c.t.Fatal(err)
	}
	return netlab.VRRPFrames(fr)
}

func inst(vrid, prio int, interval time.Duration, vips ...netip.Prefix) peer.Instance {
	return peer.Instance{Name: fmt.Sprintf("vr%d", vrid), VRID: vrid, Priority: prio, Version: 3,
		Interval: interval, VIPs: vips, Preempt: true}
}

func mdi(version uint8, prio int, interval time.Duration) time.Duration {
	return vrrp.MasterDownInterval(version, uint8(prio), interval)
}

const iv = 100 * time.Millisecond

// RFC 5798 §6.4: three nodes elect the highest priority; only it holds the
// VIP and only it advertises, with TTL 255 and the right fields.
func TestElection(t *testing.T) {
	c := newCluster(t, 3)
	c.start("n1", inst(51, 150, iv, vip4))
	c.start("n2", inst(51, 100, iv, vip4))
	c.start("n3", inst(51, 50, iv, vip4))
	c.waitHolder(vip4.Addr(), "n1", mdi(3, 150, iv)+2*time.Second, 3*iv)
	since := time.Now()
	time.Sleep(5 * iv)
	var n int
	for _, f := range c.adverts() {
		if f.Time.Before(since) {
			continue
		}
		n++
		if f.Src != netip.MustParseAddr("192.0.2.11") || f.Priority != 150 || f.TTL != 255 || f.VRID != 51 || f.Version != 3 ||
			f.Dst != vrrp.GroupIPv4 {
			t.Fatalf("unexpected advert in steady state: %+v", f)
		}
	}
	if n < 3 {
		t.Fatalf("%d adverts from the master in 5 intervals", n)
	}
}

// RFC 5798 §6.4.2 preemption: a higher priority joining later takes over;
// with preempt off it does not.
func TestPreemptAndNoPreempt(t *testing.T) {
	c := newCluster(t, 2)
	c.start("n2", inst(51, 100, iv, vip4))
	c.waitHolder(vip4.Addr(), "n2", mdi(3, 100, iv)+2*time.Second, 0)
	c.start("n1", inst(51, 150, iv, vip4))
	took := c.waitHolder(vip4.Addr(), "n1", mdi(3, 150, iv)+2*time.Second, 3*iv)
	t.Logf("preempted after %s (MDI at 150: %s)", took, mdi(3, 150, iv))

	// nopreempt on the higher-priority node: it must not take over.
	c.stop("n1")
	c.waitHolder(vip4.Addr(), "n2", 2*time.Second, 0)
	np := inst(51, 150, iv, vip4)
	np.Preempt = false
	c.start("n1", np)
	c.waitHolder(vip4.Addr(), "n2", time.Second, 10*mdi(3, 150, iv))
}

// RFC 5798 §6.4.3 / §6.4.2: a master stopping gracefully sends priority 0,
// and the backup takes over after Skew_Time rather than
// Master_Down_Interval. The stopped node removes its VIP.
func TestPriorityZeroHandover(t *testing.T) {
	c := newCluster(t, 2)
	interval := time.Second
	c.start("n1", inst(51, 150, interval, vip4))
	c.start("n2", inst(51, 100, interval, vip4))
	c.waitHolder(vip4.Addr(), "n1", mdi(3, 150, interval)+2*time.Second, 0)
	c.stop("n1")
	c.waitHolder(vip4.Addr(), "n2", 2*time.Second, 0)
	c.zeroHandover(100, interval)
}

// zeroHandover checks on the wire that n1 sent a priority-0 advert and
// that n2, at priority prio, sent its first advert one Skew_Time later
// (609.375 ms at priority 100 and 1 s), and returns that delay.
func (c *cluster) zeroHandover(prio int, interval time.Duration) time.Duration {
	c.t.Helper()
	var zero, first time.Time
	for _, f := range c.adverts() {
		if f.Src == netip.MustParseAddr("192.0.2.11") && f.Priority == 0 {
			zero = f.Time
		}
		if !zero.IsZero() && f.Src == netip.MustParseAddr("192.0.2.12") && first.IsZero() {
			first = f.Time
		}
	}
	if zero.IsZero() || first.IsZero() {
		c.t.Fatalf("no priority-0 advert from n1 or no takeover by n2 on the wire (zero %v, first %v)\n%s", zero, first, c.logs())
	}
	skew := vrrp.SkewTime(3, uint8(prio), interval)
	got := first.Sub(zero)
	c.t.Logf("priority-0 handover: %s (Skew_Time %s)", got, skew)
	if got < skew || got > skew+200*time.Millisecond {
		c.t.Fatalf("takeover %s after the priority-0 advert, want Skew_Time %s (+ scheduling)", got, skew)
	}
	return got
}

// Node loss: the master's link is cut; the backup takes over after
// Master_Down_Interval; on restore the higher priority preempts back and a
// single node holds the VIP.
func TestNodeLoss(t *testing.T) {
	c := newCluster(t, 3)
	c.start("n1", inst(51, 150, iv, vip4))
	c.start("n2", inst(51, 100, iv, vip4))
	c.start("n3", inst(51, 50, iv, vip4))
	c.waitHolder(vip4.Addr(), "n1", mdi(3, 150, iv)+2*time.Second, 0)
	if err := c.node("n1").LinkDown(); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	// n1 loses carrier and goes to FAULT (TestInterfaceDownFault); watch n2
	// take the VIP.
	for {
		ok, _ := c.node("n2").HasAddr("eth0", vip4.Addr())
		if ok {
			break
		}
		if time.Since(cut) > mdi(3, 100, iv)+2*time.Second {
			t.Fatalf("n2 did not take over\n%s", c.logs())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ok, _ := c.node("n3").HasAddr("eth0", vip4.Addr()); ok {
		t.Fatal("n3 (priority 50) took the VIP too")
	}
	if err := c.node("n1").LinkUp(); err != nil {
		t.Fatal(err)
	}
	c.waitHolder(vip4.Addr(), "n1", 2*time.Second, 5*iv)
	// The takeover measured on the wire: last n1 advert before the cut →
	// first n2 advert.
	var last, first time.Time
	for _, f := range c.adverts() {
		if f.Src == netip.MustParseAddr("192.0.2.11") && f.Time.Before(cut) {
			last = f.Time
		}
		if f.Src == netip.MustParseAddr("192.0.2.12") && f.Time.After(cut) && first.IsZero() {
			first = f.Time
		}
	}
	want := mdi(3, 100, iv)
	if got := first.Sub(last); got < want || got > want+100*time.Millisecond {
		t.Fatalf("takeover %s after the last master advert, want Master_Down_Interval %s (+ scheduling)", got, want)
	} else {
		t.Logf("node-loss takeover: %s (MDI %s)", got, want)
	}
}

// Unicast mode: adverts go to each peer, never to the group, and failover
// works as with multicast.
func TestUnicast(t *testing.T) {
	c := newCluster(t, 3)
	addr := func(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", 10+i)) }
	for i, prio := range []int{150, 100, 50} {
		in := inst(51, prio, iv, vip4)
		in.UnicastSource = addr(i + 1)
		for j := 1; j <= 3; j++ {
			if j != i+1 {
				in.UnicastPeers = append(in.UnicastPeers, addr(j))
			}
		}
		c.start(fmt.Sprintf("n%d", i+1), in)
	}
	c.waitHolder(vip4.Addr(), "n1", mdi(3, 150, iv)+2*time.Second, 3*iv)
	c.stop("n1")
	c.waitHolder(vip4.Addr(), "n2", 2*time.Second, 3*iv)
	dsts := map[netip.Addr]bool{}
	for _, f := range c.adverts() {
		if f.Dst.IsMulticast() {
			t.Fatalf("multicast advert in unicast mode: %+v", f)
		}
		dsts[f.Dst] = true
	}
	if !dsts[addr(2)] || !dsts[addr(3)] {
		t.Fatalf("adverts did not reach every peer: %v", dsts)
	}
}

// IPv6: VRRPv3 from the link-local address to ff02::12 with hop limit 255,
// a link-local VIP first (RFC 5798 §7.1 advice) and a global one; election
// and priority-0 handover.
func TestIPv6(t *testing.T) {
	c := newCluster(t, 2)
	ll := netip.MustParsePrefix("fe80::100/64")
	// The node's own link-local address, before the link-local VIP joins it.
	n1ll, err := c.node("n1").LinkLocal("eth0")
	if err != nil {
		t.Fatal(err)
	}
	c.start("n1", inst(51, 150, iv, ll, vip6))
	c.start("n2", inst(51, 100, iv, ll, vip6))
	c.waitHolder(vip6.Addr(), "n1", mdi(3, 150, iv)+2*time.Second, 3*iv)
	var seen int
	for _, f := range c.adverts() {
		if f.Src == n1ll {
			seen++
			if f.Dst != vrrp.GroupIPv6 || f.TTL != 255 || f.Version != 3 || f.CountAddrs != 2 {
				t.Fatalf("bad IPv6 advert %+v", f)
			}
		}
	}
	if seen == 0 {
		t.Fatalf("no advert from n1's link-local address %s: %+v", n1ll, c.adverts())
	}
	c.stop("n1")
	c.waitHolder(vip6.Addr(), "n2", 2*time.Second, 3*iv)
}

// VRRPv2 (RFC 3768) with keepalived-style PASS authentication: election and
// handover; a node with the wrong password is ignored (it cannot preempt) and
// becomes master on its own side (that is what a v2 auth mismatch does).
func TestV2(t *testing.T) {
	c := newCluster(t, 2)
	in := func(prio int) peer.Instance {
		i := inst(51, prio, time.Second, vip4)
		i.Version, i.AuthPass = 2, "s3cret"
		return i
	}
	c.start("n1", in(150))
	c.start("n2", in(100))
	c.waitHolder(vip4.Addr(), "n1", mdi(2, 150, time.Second)+2*time.Second, time.Second)
	for _, f := range c.adverts() {
		if f.Version != 2 || f.TTL != 255 || !strings.HasPrefix(string(f.Payload[8+4:]), "s3cret") {
			t.Fatalf("bad v2 advert %+v", f)
		}
	}
	c.stop("n1")
	c.waitHolder(vip4.Addr(), "n2", 2*time.Second, 0)
}

// Several VRIDs share one interface and socket (active-active): each
// instance elects independently.
func TestTwoVRIDsActiveActive(t *testing.T) {
	c := newCluster(t, 2)
	vipB := netip.MustParsePrefix("192.0.2.101/24")
	c.start("n1", inst(51, 150, iv, vip4), inst(52, 100, iv, vipB))
	c.start("n2", inst(51, 100, iv, vip4), inst(52, 150, iv, vipB))
	c.waitHolder(vip4.Addr(), "n1", 2*time.Second, 0)
	c.waitHolder(vipB.Addr(), "n2", 2*time.Second, 3*iv)
	c.stop("n2")
	c.waitHolder(vipB.Addr(), "n1", 2*time.Second, 0)
	c.waitHolder(vip4.Addr(), "n1", 0, 3*iv)
}

// A crashed run (SIGKILL: no priority 0, no cleanup) leaves its VIP on the
// interface. On restart vigil removes it before starting as Backup, then
// preempts back and holds exactly one copy.
func TestRestartAfterCrash(t *testing.T) {
	c := newCluster(t, 2)
	c.start("n1", inst(51, 150, iv, vip4))
	c.start("n2", inst(51, 100, iv, vip4))
	c.waitHolder(vip4.Addr(), "n1", 2*time.Second, 0)
	if err := c.procs["n1"].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.procs["n1"].Wait()
	// The stale address is still on n1 while n2 takes over.
	if ok, _ := c.node("n1").HasAddr("eth0", vip4.Addr()); !ok {
		t.Fatal("expected the crashed run's VIP to remain on n1")
	}
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		if ok, _ := c.node("n2").HasAddr("eth0", vip4.Addr()); ok {
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatal("n2 did not take over from the crashed n1")
		}
	}
	c.start("n1", inst(51, 150, iv, vip4))
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 3*iv)
	if !strings.Contains(c.procs["n1"].Log(), "removing a virtual address left by an earlier run") {
		t.Fatalf("restart did not report the stale VIP\n%s", c.procs["n1"].Log())
	}
	addrs, err := c.node("n1").Addrs("eth0")
	if err != nil {
		t.Fatal(err)
	}
	var copies int
	for _, a := range addrs {
		if a.Addr() == vip4.Addr() {
			copies++
		}
	}
	if copies != 1 {
		t.Fatalf("%d copies of the VIP on n1: %v", copies, addrs)
	}
}

// keepalived's interface tracking: a master whose link goes down enters
// FAULT (drops its VIP); the backup takes over; when the link returns the
// node leaves FAULT as Backup and, with the higher priority, preempts back.
// A node whose interface is down at start begins in FAULT.
func TestInterfaceDownFault(t *testing.T) {
	c := newCluster(t, 2)
	c.start("n1", inst(51, 150, iv, vip4))
	c.start("n2", inst(51, 100, iv, vip4))
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 0)
	if err := c.node("n1").LinkDown(); err != nil {
		t.Fatal(err)
	}
	c.waitHolder(vip4.Addr(), "n2", mdi(3, 100, iv)+2*time.Second, 3*iv)
	if !strings.Contains(c.procs["n1"].Log(), "to=fault reason=interface_down") {
		t.Fatalf("n1 did not report FAULT:\n%s", c.procs["n1"].LogLines(20))
	}
	if err := c.node("n1").LinkUp(); err != nil {
		t.Fatal(err)
	}
	c.waitHolder(vip4.Addr(), "n1", mdi(3, 150, iv)+2*time.Second, 3*iv)
	if !strings.Contains(c.procs["n1"].Log(), "from=fault to=backup reason=fault_cleared") {
		t.Fatalf("n1 did not leave FAULT as Backup:\n%s", c.procs["n1"].LogLines(20))
	}

	// Down at start: FAULT from the beginning, nothing sent, no VIP.
	c.stop("n1")
	if err := c.node("n1").LinkDown(); err != nil {
		t.Fatal(err)
	}
	c.start("n1", inst(51, 150, iv, vip4))
	time.Sleep(2 * mdi(3, 150, iv))
	if ok, _ := c.node("n1").HasAddr("eth0", vip4.Addr()); ok {
		t.Fatal("n1 took the VIP with its link down")
	}
	if !strings.Contains(c.procs["n1"].Log(), "to=fault reason=interface_down") {
		t.Fatalf("n1 did not start in FAULT:\n%s", c.procs["n1"].LogLines(20))
	}
}
