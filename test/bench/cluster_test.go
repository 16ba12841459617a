package bench

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/test/netlab"
	"vigil/test/peer"
)

// labPrefix is this package's netlab prefix.
const labPrefix = "vgbn"

// The two-node cluster of every scenario.
const (
	masterPrio = 150
	backupPrio = 100
	// takeoverVRID is the virtual router of the takeover scenarios.
	takeoverVRID = 51
)

var (
	addr1       = netip.MustParsePrefix("192.0.2.11/24")
	addr2       = netip.MustParsePrefix("192.0.2.12/24")
	takeoverVIP = netip.MustParsePrefix("192.0.2.100/24")
)

// skew is Skew_Time of a VRRPv3 backup of priority prio at advert interval
// iv, exactly: (256 − prio) × iv / 256 (RFC 5798 §6.1). Computed here from
// the RFC, not taken from vigil, since it is what vigil is measured against.
func skew(prio int, iv time.Duration) time.Duration {
	return time.Duration(256-prio) * iv / 256
}

// masterDown is Master_Down_Interval of a VRRPv3 backup: 3 × iv + Skew_Time.
func masterDown(prio int, iv time.Duration) time.Duration {
	return 3*iv + skew(prio, iv)
}

// cluster is two lab nodes, n1 (the master, priority 150) and n2 (the
// backup, priority 100), running one implementation with the same
// instances, and optionally a VRRP capture on the bridge.
type cluster struct {
	tb       testing.TB
	impl     string
	lab      *netlab.Lab
	n1, n2   *netlab.Node
	in1, in2 []peer.Instance
	p1, p2   *netlab.Process
	capture  *netlab.Capture
	tail     *pcapTail
	// gossip runs vigil with a gossip section (the handoff needs the
	// fleet); no effect on keepalived.
	gossip bool
}

// instances returns count instances for one node at priority prio: VRIDs
// firstVRID.., one VIP each, taken in order from vips.
func instances(count, firstVRID, prio int, iv time.Duration, vips []netip.Prefix) []peer.Instance {
	var out []peer.Instance
	for i := range count {
		out = append(out, peer.Instance{
			Name:     fmt.Sprintf("VI_%d", firstVRID+i),
			VRID:     firstVRID + i,
			Priority: prio,
			Version:  3,
			Interval: iv,
			VIPs:     []netip.Prefix{vips[i]},
			Preempt:  true,
		})
	}
	return out
}

// newCluster builds the lab (closed when tb ends), starts a VRRP capture on
// the bridge when capture is set, and starts the implementation on both
// nodes.
func newCluster(tb testing.TB, impl string, in1, in2 []peer.Instance, capture bool) *cluster {
	return newClusterWith(tb, impl, in1, in2, capture, false)
}

// newClusterWith is newCluster, with vigil in a gossip fleet when gossip is set.
func newClusterWith(tb testing.TB, impl string, in1, in2 []peer.Instance, capture, gossip bool) *cluster {
	tb.Helper()
	lab := netlab.NewForTest(tb, labPrefix)
	c := &cluster{tb: tb, impl: impl, lab: lab, in1: in1, in2: in2, gossip: gossip}
	var err error
	if c.n1, err = lab.AddNode("n1", addr1); err != nil {
		tb.Fatal(err)
	}
	if c.n2, err = lab.AddNode("n2", addr2); err != nil {
		tb.Fatal(err)
	}
	if capture {
		if c.capture, err = lab.StartCapture(netlab.FilterVRRP); err != nil {
			tb.Fatal(err)
		}
		c.tail = newPcapTail(c.capture.Path())
		tb.Cleanup(func() { c.tail.Close() })
	}
	if c.p1, err = c.start(c.n1, in1); err != nil {
		tb.Fatal(err)
	}
	if c.p2, err = c.start(c.n2, in2); err != nil {
		tb.Fatal(err)
	}
	return c
}

func (c *cluster) start(n *netlab.Node, in []peer.Instance) (*netlab.Process, error) {
	switch c.impl {
	case ImplVigil:
		bin, err := peer.VigilBinary()
		if err != nil {
			return nil, err
		}
		if !c.gossip {
			return peer.StartVigil(n, bin, in)
		}
		// The two directors in one fleet (LAN timings, unencrypted: a
		// benchmark lab), each with its own state directory.
		self, other := addr1.Addr(), addr2.Addr()
		if n == c.n2 {
			self, other = other, self
		}
		y := peer.VigilYAML(n.Name, in) + fmt.Sprintf("gossip: { bind: \"%s:7946\", join: [\"%s:7946\"], insecure: true, profile: lan }\n"+
			"fleet: { state_dir: %s }\n", self, other, filepath.Join(c.lab.Dir(), n.Name+"-state"))
		return peer.StartVigilYAML(n, bin, y)
	case ImplKeepalived:
		return peer.StartKeepalived(n, in)
	}
	return nil, fmt.Errorf("unknown implementation %q", c.impl)
}

// errDied reports a daemon that exited: the scenario cannot go on.
var errDied = errors.New("daemon exited")

// alive checks that both daemons still run.
func (c *cluster) alive() error {
	for _, p := range []*netlab.Process{c.p1, c.p2} {
		if p != nil && p.Exited() {
			return fmt.Errorf("%w: %s on node %s (%v); log:\n%s", errDied, c.impl, p.Node().Name, p.Wait(), tail(p.Log(), 4000))
		}
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// flow is the takeover virtual router between n1 and n2.
func (c *cluster) flow() flow {
	return flow{VRID: takeoverVRID, Master: addr1.Addr(), Backup: addr2.Addr()}
}

// pollEvery is how often the harness looks at the capture: often enough to
// see a takeover soon after it happens, rarely enough not to compete for
// the CPU with the daemons under test.
func pollEvery(iv time.Duration) time.Duration {
	return min(max(iv/10, 5*time.Millisecond), 50*time.Millisecond)
}

// quietWindow is how long the wire must show only the master's adverts
// before the cluster counts as settled.
func quietWindow(iv time.Duration) time.Duration { return 2*iv + 100*time.Millisecond }

// settle waits until, for a quiet window entirely after since, the wire
// carries the master's adverts at priority 150 and nothing from the backup,
// and the VIP is on the master only. It returns the time it settled.
func (c *cluster) settle(iv time.Duration, since time.Time, timeout time.Duration) (time.Time, error) {
	f := c.flow()
	w := quietWindow(iv)
	deadline := time.Now().Add(timeout)
	var lastMaster, lastBackup int
	for {
		if err := c.alive(); err != nil {
			return time.Time{}, err
		}
		if _, err := c.tail.Poll(); err != nil {
			return time.Time{}, err
		}
		now := time.Now()
		if from := now.Add(-w); !from.Before(since) {
			lastMaster, lastBackup = quietCounts(c.tail.Frames(), f, masterPrio, from, now)
			if lastBackup == 0 && lastMaster >= 2 {
				ok1, err1 := c.n1.HasAddr(netlab.Dev, takeoverVIP.Addr())
				ok2, err2 := c.n2.HasAddr(netlab.Dev, takeoverVIP.Addr())
				if err := errors.Join(err1, err2); err != nil {
					return time.Time{}, err
				}
				if ok1 && !ok2 {
					return now, nil
				}
			}
		}
		if now.After(deadline) {
			return time.Time{}, fmt.Errorf("not settled after %v: in the last %v the master sent %d adverts at priority %d and the backup %d",
				timeout, w, lastMaster, masterPrio, lastBackup)
		}
		time.Sleep(max(pollEvery(iv), 20*time.Millisecond))
	}
}

// waitAllVIPs waits until every VIP of in is on n and none of them is on
// other.
func waitAllVIPs(n, other *netlab.Node, in []peer.Instance, timeout time.Duration) error {
	var want []netip.Addr
	for _, i := range in {
		for _, v := range i.VIPs {
			want = append(want, v.Addr())
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		have, err1 := n.Addrs(netlab.Dev)
		stray, err2 := other.Addrs(netlab.Dev)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		missing, extra := vipDiff(want, have, stray)
		if missing == 0 && extra == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %d of %d VIPs missing on %s, %d present on %s", timeout, missing, len(want), n.Name, extra, other.Name)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// vipDiff counts the wanted addresses missing from have and present in stray.
func vipDiff(want []netip.Addr, have, stray []netip.Prefix) (missing, extra int) {
	has := func(ps []netip.Prefix, a netip.Addr) bool {
		return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Addr() == a })
	}
	for _, a := range want {
		if !has(have, a) {
			missing++
		}
		if has(stray, a) {
			extra++
		}
	}
	return missing, extra
}

// oneLine shortens an error for the report.
func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	return s
}
