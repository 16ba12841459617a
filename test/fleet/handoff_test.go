package fleet

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"vigil/node"
	"vigil/test/netlab"
	"vigil/test/peer"
)

// TestFleetHandoff (issue 14): vigil vrrp failover and vigil drain on three real nodes (n1 and
// n2 at priority 150, n3 at 100, preemption on). A handoff that preemption would undo is
// refused; a failover asked of any member moves the VIP to the best successor, which takes
// over on the resignation itself (reason admin_handoff, not Skew_Time) and keeps it; a drain
// hands off, holds the node at priority 1, is shown fleet-wide and survives a restart; a drain
// with no successor left is refused; undrain restores the priorities. The wire gap and what a
// client sending to the VIP lost are logged (make bench has the figures).
func TestFleetHandoff(t *testing.T) {
	l := newLab(t, 3)
	inst := func(prio int) []peer.Instance {
		in := vr(prio)
		in.Interval = time.Second // Skew_Time ≈ 0.4 s: far from a handoff's gap
		return []peer.Instance{in}
	}
	l.start("n1", inst(150), "test", "")
	l.waitHolders([]string{"n1"}, 10*time.Second, "n1")
	l.start("n2", inst(150), "test", "")
	l.start("n3", inst(100), "test", "")
	all := []string{"n1", "n2", "n3"}
	l.waitMembers(all, allState(all, "alive"), 30*time.Second)
	l.waitInstances(all, map[string]string{"n1": "master", "n2": "backup", "n3": "backup"}, 10*time.Second)
	l.waitHolders([]string{"n1"}, time.Second, all...)
	client := l.vipClient(t, netip.MustParseAddr("192.0.2.50"), all)
	capture, err := l.lab.StartCapture(netlab.FilterVRRP)
	if err != nil {
		t.Fatal(err)
	}
	defer capture.Stop()

	// n3 (100) as successor: n1 and n2 (150, preempt) would take it back: refused, nothing moves.
	out, err := l.cli("n2", "vrrp", "failover", "vr51", "--to", "n3")
	if err == nil || !strings.Contains(string(out), "n1 (priority 150, preempt) would take mastership back") ||
		!strings.Contains(string(out), "n2 (priority 150) outranks n3") {
		t.Fatalf("failover to a lower node was not refused with its reasons: %v\n%s", err, out)
	}
	if out, err := l.cli("n2", "vrrp", "failover", "vr51", "--to", "n9"); err == nil || !strings.Contains(string(out), "n9 cannot take over") {
		t.Fatalf("failover to a stranger: %v\n%s", err, out)
	}
	l.waitHolders([]string{"n1"}, time.Second, all...)

	// Asked of n3, done by the master n1: n2 (equal priority, higher address) takes over on the
	// resignation and keeps it (an equal priority does not preempt).
	client.reset()
	asked := time.Now()
	out, err = l.cli("n3", "vrrp", "failover", "vr51")
	if err != nil || !strings.Contains(string(out), "vr51: n1 → n2") {
		t.Fatalf("failover: %v\n%s", err, out)
	}
	l.waitHolders([]string{"n2"}, 5*time.Second, all...)
	st := l.mustStatus(t, "n2")
	if st.Instances[0].State != "master" || st.Instances[0].LastReason != "admin_handoff" {
		t.Fatalf("n2 after the failover: %s, reason %s (want master by admin_handoff, not after Skew_Time)", st.Instances[0].State, st.Instances[0].LastReason)
	}
	time.Sleep(3500 * time.Millisecond) // past n1's Master_Down_Interval: nothing takes it back
	l.waitHolders([]string{"n2"}, time.Second, all...)
	sent, lost := client.counts()
	t.Logf("vigil vrrp failover: %s; wire gap %s; a client sending to the VIP every 10 ms lost %d of %d",
		strings.TrimSpace(string(out)), wireGap(t, capture, nodeAddr(1), nodeAddr(2), asked), lost, sent)

	// Drain n2 from n1: n1 takes over by a handoff; n2 runs at priority 1, shown drained everywhere.
	client.reset()
	asked = time.Now()
	if out, err := l.cli("n1", "drain", "n2"); err != nil || !strings.Contains(string(out), "n2: drained") || !strings.Contains(string(out), "vr51: n2 → n1") {
		t.Fatalf("drain n2: %v\n%s", err, out)
	}
	l.waitHolders([]string{"n1"}, 5*time.Second, all...)
	st = l.mustStatus(t, "n2")
	if !st.Drained || st.Instances[0].EffectivePriority != 1 || st.Instances[0].State != "backup" {
		t.Fatalf("n2 drained: drained %v, priority %d, state %s", st.Drained, st.Instances[0].EffectivePriority, st.Instances[0].State)
	}
	if r := l.mustStatus(t, "n1").Instances[0].LastReason; r != "admin_handoff" {
		t.Fatalf("n1 took over by %s, want admin_handoff", r)
	}
	l.waitDrained(t, "n3", "n2", true)
	sent, lost = client.counts()
	t.Logf("vigil drain n2: wire gap %s; the client lost %d of %d", wireGap(t, capture, nodeAddr(2), nodeAddr(1), asked), lost, sent)

	// The drain survives a restart: n2 comes back drained and stays backup.
	if err := l.procs["n2"].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	l.start("n2", inst(150), "test", "")
	l.waitInstances([]string{"n2"}, map[string]string{"n2": "backup"}, 15*time.Second)
	if st := l.mustStatus(t, "n2"); !st.Drained || st.Instances[0].EffectivePriority != 1 {
		t.Fatalf("n2 restarted: drained %v, priority %d", st.Drained, st.Instances[0].EffectivePriority)
	}
	l.waitDrained(t, "n1", "n2", true)
	l.waitHolders([]string{"n1"}, time.Second, all...)

	// With n2 and n3 drained, n1 has no successor: its drain is refused and changes nothing.
	if out, err := l.cli("n3", "drain"); err != nil || !strings.Contains(string(out), "n3: drained") {
		t.Fatalf("drain n3 (a backup): %v\n%s", err, out)
	}
	l.waitDrained(t, "n1", "n3", true)
	out, err = l.cli("n1", "drain")
	if err == nil || !strings.Contains(string(out), "no other live member could take over vr51") {
		t.Fatalf("drain without a successor was not refused: %v\n%s", err, out)
	}
	if st := l.mustStatus(t, "n1"); st.Drained || st.Instances[0].State != "master" {
		t.Fatalf("n1 after a refused drain: drained %v, %s", st.Drained, st.Instances[0].State)
	}

	// Undrain: the configured priorities come back; n1 stays master (equal priority).
	for _, n := range []string{"n2", "n3"} {
		if out, err := l.cli("n1", "undrain", n); err != nil || !strings.Contains(string(out), n+": undrained") {
			t.Fatalf("undrain %s: %v\n%s", n, err, out)
		}
	}
	if st := l.mustStatus(t, "n2"); st.Drained || st.Instances[0].EffectivePriority != 150 {
		t.Fatalf("n2 undrained: drained %v, priority %d", st.Drained, st.Instances[0].EffectivePriority)
	}
	l.waitDrained(t, "n1", "n3", false)
	l.waitHolders([]string{"n1"}, time.Second, all...)
}

func (l *lab) mustStatus(t *testing.T, name string) node.Status {
	t.Helper()
	st, err := l.status(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Instances) == 0 {
		t.Fatalf("%s runs no instance", name)
	}
	return st
}

// waitInstances waits until each named node's vr51 is in the given state.
func (l *lab) waitInstances(names []string, want map[string]string, timeout time.Duration) {
	l.t.Helper()
	var got map[string]string
	err := netlab.Poll(timeout, 50*time.Millisecond, func() (bool, error) {
		got = map[string]string{}
		for _, n := range names {
			st, err := l.status(n)
			if err != nil || len(st.Instances) == 0 {
				return false, nil
			}
			got[n] = st.Instances[0].State
		}
		for n, s := range want {
			if got[n] != s {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		l.t.Fatalf("instance states %v, want %v: %v", got, want, err)
	}
}

// waitDrained waits until on's view of the fleet shows target drained (or not).
func (l *lab) waitDrained(t *testing.T, on, target string, drained bool) {
	t.Helper()
	err := netlab.Poll(10*time.Second, 50*time.Millisecond, func() (bool, error) {
		ms, err := l.members(on)
		if err != nil {
			return false, nil
		}
		for _, m := range ms {
			if m.Name == target {
				return m.Drained == drained, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("%s never showed %s drained=%v: %v", on, target, drained, err)
	}
}

// wireGap is the time on the bridge from old's priority-0 advert (after since) to new's first
// advert after it, as text ("none" when either is missing).
func wireGap(t *testing.T, c *netlab.Capture, old, new netip.Addr, since time.Time) string {
	t.Helper()
	fr, err := c.Frames()
	if err != nil {
		t.Fatal(err)
	}
	var resigned time.Time
	for _, f := range netlab.VRRPFrames(fr) {
		switch {
		case f.Time.Before(since):
		case resigned.IsZero() && f.Src == old && f.Priority == 0:
			resigned = f.Time
		case !resigned.IsZero() && f.Src == new && f.Priority > 0:
			return f.Time.Sub(resigned).Round(10 * time.Microsecond).String()
		}
	}
	return "none"
}

// vipClient is a client node sending a numbered UDP datagram to the VIP every 10 ms; each
// director echoes what reaches it (a socket in its namespace), so an answer means the VIP's
// holder got the datagram. It runs until the test ends.
type vipClientLoop struct {
	mu         sync.Mutex
	sent, lost int
	pending    map[uint64]time.Time
	seq        atomic.Uint64
}

func (l *lab) vipClient(t *testing.T, addr netip.Addr, directors []string) *vipClientLoop {
	t.Helper()
	nd := l.addNode("c1", addr)
	const port = 9007
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(done); wg.Wait() })
	for _, d := range directors {
		pc, err := l.lab.Node(d).ListenPacket("udp4", ":9007")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		wg.Go(func() {
			buf := make([]byte, 64)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(buf[:n], from)
			}
		})
	}
	pc, err := nd.ListenPacket("udp4", addr.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	c := &vipClientLoop{pending: map[uint64]time.Time{}}
	to := &net.UDPAddr{IP: vip.Addr().AsSlice(), Port: port}
	wg.Go(func() { // answers
		buf := make([]byte, 64)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n == 8 {
				c.mu.Lock()
				delete(c.pending, binary.BigEndian.Uint64(buf[:8]))
				c.mu.Unlock()
			}
		}
	})
	wg.Go(func() { // requests, and the count of those unanswered after 200 ms
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				seq := c.seq.Add(1)
				c.mu.Lock()
				c.pending[seq] = now
				c.sent++
				for s, at := range c.pending {
					if now.Sub(at) > 200*time.Millisecond {
						delete(c.pending, s)
						c.lost++
					}
				}
				c.mu.Unlock()
				b := binary.BigEndian.AppendUint64(nil, seq)
				if _, err := pc.WriteTo(b, to); err != nil && !errors.Is(err, net.ErrClosed) {
					c.mu.Lock()
					c.lost++
					c.mu.Unlock()
				}
			}
		}
	})
	return c
}

func (c *vipClientLoop) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent, c.lost = 0, 0
}

// counts returns the datagrams sent and lost since the last reset (those still waiting count
// as sent, not lost: let 200 ms pass first).
func (c *vipClientLoop) counts() (sent, lost int) {
	time.Sleep(250 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent, c.lost
}
