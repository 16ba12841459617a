package fleet

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"vigil/node"
	"vigil/test/fault"
	"vigil/test/netlab"
	"vigil/test/peer"
)

const iv = 100 * time.Millisecond // advert interval of the split-brain scenarios

var vip = netip.MustParsePrefix("192.0.2.100/24")

func vr(prio int) peer.Instance {
	return peer.Instance{Name: "vr51", VRID: 51, Priority: prio, Version: 3, Interval: iv, VIPs: []netip.Prefix{vip}, Preempt: true}
}

func (l *lab) status(name string) (node.Status, error) {
	out, err := l.cli(name, "status", "-o", "json")
	if err != nil {
		return node.Status{}, err
	}
	var st node.Status
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("vigil status -o json on %s: %w", name, err)
	}
	return st, nil
}

// holders returns the nodes among names that have the VIP on their interface.
func (l *lab) holders(names ...string) ([]string, error) {
	var out []string
	for _, n := range names {
		ok, err := l.lab.Node(n).HasAddr(netlab.Dev, vip.Addr())
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, n)
		}
	}
	return out, nil
}

func (l *lab) waitHolders(want []string, timeout time.Duration, names ...string) {
	l.t.Helper()
	var got []string
	err := netlab.Poll(timeout, 20*time.Millisecond, func() (bool, error) {
		var err error
		got, err = l.holders(names...)
		return fmt.Sprint(got) == fmt.Sprint(want), err
	})
	if err != nil {
		l.t.Fatalf("VIP holders: %v: %v, want %v", err, got, want)
	}
}

// splitBrain runs two nodes (n1 priority 200, n2 100), waits for n1 master, then drops IP
// protocol 112 on both while gossip passes, and samples who holds the VIP every 20 ms for 3 s.
// It returns the samples with two holders and the time from the drop to the last such sample.
func splitBrain(t *testing.T, arbitrate bool) (l *lab, dual int, samples int, lastDual time.Duration) {
	l = newLab(t, 2)
	l.gossip = fmt.Sprintf("  arbitrate: %v\n", arbitrate)
	l.start("n1", []peer.Instance{vr(200)}, "test", "")
	l.waitHolders([]string{"n1"}, 10*time.Second, "n1", "n2")
	l.start("n2", []peer.Instance{vr(100)}, "test", "")
	l.waitMembers([]string{"n1", "n2"}, map[string]string{"n1": "alive", "n2": "alive"}, 30*time.Second)
	// Let n2 hear n1's adverts and learn from gossip who is master.
	time.Sleep(2 * time.Second)
	l.waitHolders([]string{"n1"}, time.Second, "n1", "n2")
	for _, n := range []string{"n1", "n2"} {
		if err := fault.DropVRRP(l.lab.Node(n), "input", 100); err != nil {
			t.Fatal(err)
		}
	}
	drop := time.Now()
	for time.Since(drop) < 3*time.Second {
		h, err := l.holders("n1", "n2")
		if err != nil {
			t.Fatal(err)
		}
		samples++
		if len(h) == 2 {
			dual++
			lastDual = time.Since(drop)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, err := fault.DroppedVRRP(l.lab.Node("n2")); err != nil || n == 0 {
		t.Fatalf("the drop rule on n2 dropped %d VRRP packets (%v): the test does not see the fault", n, err)
	}
	return l, dual, samples, lastDual
}

// TestSplitBrainArbitration: with protocol 112 dropped between two directors and gossip
// passing, keepalived holds two masters for as long as the fault lasts; vigil, with
// arbitration (the default), keeps one: the backup hears the master through gossip. When
// protocol 112 passes again, nothing flaps.
func TestSplitBrainArbitration(t *testing.T) {
	l, dual, samples, last := splitBrain(t, true)
	t.Logf("arbitrate: true: two VIP holders in %d of %d samples over 3 s after the drop (last at %v)", dual, samples, last)
	// Issue 13: one master within 2 advert intervals plus the gossip
	// delay (a summary comes by direct send in milliseconds; the
	// master's pings that keep it counting, every 100-500 ms: 300 ms
	// allowed). Without arbitration both hold the VIP from the backup's
	// Master_Down_Interval (361 ms) to the end, 3 s.
	if bound := 2*iv + 300*time.Millisecond; last > bound {
		t.Errorf("two masters %v after protocol 112 was dropped: want one within %v", last, bound)
	}
	h, err := l.holders("n1", "n2")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(h) != "[n1]" {
		t.Errorf("VIP holders at the end of the fault: %v, want [n1]", h)
	}
	// Every member counts the masters it sees per virtual router (one), and its members.
	for _, n := range []string{"n1", "n2"} {
		var m string
		err := netlab.Poll(5*time.Second, 200*time.Millisecond, func() (bool, error) {
			var err error
			m, err = l.metrics(n)
			return strings.Contains(m, `vigil_fleet_virtual_router_masters{family="ipv4",vrid="51",vrrp_instance="vr51"} 1`+"\n") &&
				strings.Contains(m, `vigil_gossip_members{state="alive"} 2`+"\n"), err
		})
		if err != nil {
			t.Errorf("metrics on %s during the fault: %v\n%s", n, err, grepLines(m, "vigil_fleet_", "vigil_gossip_"))
		}
	}
	before := map[string]time.Time{}
	for _, n := range []string{"n1", "n2"} {
		st, err := l.status(n)
		if err != nil {
			t.Fatal(err)
		}
		before[n] = st.Instances[0].LastTransition
		if n == "n2" && st.Instances[0].State != "backup" {
			t.Errorf("n2 is %s during the fault, want backup", st.Instances[0].State)
		}
	}
	for _, n := range []string{"n1", "n2"} {
		if err := fault.HealVRRP(l.lab.Node(n)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second)
	for _, n := range []string{"n1", "n2"} {
		st, err := l.status(n)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Instances[0].LastTransition.Equal(before[n]) {
			t.Errorf("%s changed state after protocol 112 passed again (%s, %s)", n, st.Instances[0].State, st.Instances[0].LastReason)
		}
	}
	out, err := l.cli("n2", "status", "--fleet")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("vigil status --fleet on n2:\n%s", out)
}

// TestSplitBrainWithoutArbitration proves the scenario has the fault: with arbitrate: false
// both nodes become master, as keepalived does.
func TestSplitBrainWithoutArbitration(t *testing.T) {
	l, dual, samples, _ := splitBrain(t, false)
	t.Logf("arbitrate: false: two VIP holders in %d of %d samples over 3 s after the drop", dual, samples)
	if dual < samples/2 {
		t.Errorf("two masters in only %d of %d samples without arbitration: the drop does not split the pair", dual, samples)
	}
	// "Two masters" is visible from any node: the metric and vigil status --fleet.
	var m string
	err := netlab.Poll(5*time.Second, 200*time.Millisecond, func() (bool, error) {
		var err error
		m, err = l.metrics("n2")
		return strings.Contains(m, `vigil_fleet_virtual_router_masters{family="ipv4",vrid="51",vrrp_instance="vr51"} 2`+"\n"), err
	})
	if err != nil {
		t.Errorf("masters metric on n2 with two masters: %v\n%s", err, grepLines(m, "vigil_fleet_"))
	}
	out, err := l.cli("n1", "status", "--fleet")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "SPLIT BRAIN") {
		t.Errorf("vigil status --fleet on n1 does not show the split brain:\n%s", out)
	}
}

// TestFleetWithKeepalivedPeer: two vigil nodes in a fleet and a keepalived peer share one
// virtual router; gossip changes nothing on the wire, so they still elect one master, fail over
// from vigil to vigil and from vigil to keepalived.
func TestFleetWithKeepalivedPeer(t *testing.T) {
	l := newLab(t, 3)
	l.start("n1", []peer.Instance{vr(200)}, "test", "")
	l.waitHolders([]string{"n1"}, 10*time.Second, "n1", "n2", "n3")
	l.start("n2", []peer.Instance{vr(150)}, "test", "")
	kp, err := peer.StartKeepalived(l.lab.Node("n3"), []peer.Instance{vr(100)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kp.Stop(5 * time.Second) })
	l.waitMembers([]string{"n1", "n2"}, map[string]string{"n1": "alive", "n2": "alive"}, 30*time.Second)
	time.Sleep(time.Second)
	l.waitHolders([]string{"n1"}, time.Second, "n1", "n2", "n3")
	if err := l.procs["n1"].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	l.waitHolders([]string{"n2"}, 3*time.Second, "n1", "n2", "n3")
	if err := l.procs["n2"].Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	// A SIGKILLed vigil leaves its VIP on the interface (as keepalived would): keepalived takes
	// over on the wire; n2's leftover address is its own.
	if err := netlab.Poll(5*time.Second, 20*time.Millisecond, func() (bool, error) {
		return l.lab.Node("n3").HasAddr(netlab.Dev, vip.Addr())
	}); err != nil {
		t.Fatalf("keepalived did not take over after vigil's master was killed: %v", err)
	}
}

// TestArbitrationKeepsFailoverFast: arbitration holds a backup's Master_Down_Timer only while the
// master answers direct pings, timed from the last answer, so a SIGKILLed master is still
// replaced after about Master_Down_Interval, not after memberlist's failure detection (seconds).
func TestArbitrationKeepsFailoverFast(t *testing.T) {
	for _, arbitrate := range []bool{true, false} {
		t.Run(fmt.Sprintf("arbitrate=%v", arbitrate), func(t *testing.T) {
			l := newLab(t, 2)
			l.gossip = fmt.Sprintf("  arbitrate: %v\n", arbitrate)
			l.start("n1", []peer.Instance{vr(200)}, "test", "")
			l.waitHolders([]string{"n1"}, 10*time.Second, "n1", "n2")
			l.start("n2", []peer.Instance{vr(100)}, "test", "")
			l.waitMembers([]string{"n1", "n2"}, map[string]string{"n1": "alive", "n2": "alive"}, 30*time.Second)
			time.Sleep(2 * time.Second)
			// SIGKILL leaves n1's VIP on its interface: watch n2 alone.
			kill := time.Now()
			if err := l.procs["n1"].Signal(os.Kill); err != nil {
				t.Fatal(err)
			}
			if err := netlab.Poll(5*time.Second, 10*time.Millisecond, func() (bool, error) {
				return l.lab.Node("n2").HasAddr(netlab.Dev, vip.Addr())
			}); err != nil {
				t.Fatalf("n2 did not take over after n1 was killed: %v", err)
			}
			took := time.Since(kill)
			// Master_Down_Interval at 100 ms adverts, priority 100: 3 × 0.1 s + 0.061 s.
			t.Logf("takeover %v after SIGKILL of the master (Master_Down_Interval 361ms)", took.Round(time.Millisecond))
			if took > 1500*time.Millisecond {
				t.Errorf("takeover took %v: arbitration held the backup after the master died", took)
			}
		})
	}
}

// grepLines returns the lines of s that start with one of prefixes.
func grepLines(s string, prefixes ...string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
