package fleet

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/node"
	"vigil/test/netlab"
	"vigil/test/peer"
)

// fleetDoc is a fleet document for n1..n3: one instance with two VIPs, priorities per node;
// n3's interface is iface3.
func fleetDoc(iface3 string) string {
	return fmt.Sprintf(`vrrp:
  instances:
    - { name: vr51, interface: eth0, vrid: 51, priority: 100, advert_interval: 100ms, vips: [192.0.2.100/24, 192.0.2.101/24] }
nodes:
  n1: { vrrp: { instances: [ { name: vr51, priority: 200 } ] } }
  n2: { vrrp: { instances: [ { name: vr51, priority: 150 } ] } }
  n3: { vrrp: { instances: [ { name: vr51, interface: %s } ] } }
`, iface3)
}

// push runs vigil config push --wait through node via's daemon, with args after the defaults.
func (l *lab) push(t *testing.T, via, doc string, args ...string) (string, int) {
	t.Helper()
	return l.pushFile(t, via, l.docFile(t, doc), args...)
}

// docFile writes doc to a new file in the lab directory.
func (l *lab) docFile(t *testing.T, doc string) string {
	t.Helper()
	path := filepath.Join(l.lab.Dir(), fmt.Sprintf("fleet-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// pushFile runs vigil config push PATH --wait (and args) through node via's daemon; it returns
// the output and the exit status.
func (l *lab) pushFile(t *testing.T, via, path string, args ...string) (string, int) {
	t.Helper()
	// Killed well after any --timeout the test gives.
	out, err := l.cliWithin(time.Minute, via, append([]string{"config", "push", path, "--wait", "--timeout", "20s"}, args...)...)
	var xe *exec.ExitError
	switch {
	case errors.As(err, &xe):
		return string(out), xe.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return string(out), 0
}

// TestFleetPush (issue 14): a document pushed through one member is applied by every member
// that follows the fleet (the new VIP appears on the master, each node has its own priority);
// a restarted member keeps the version instead of its local file; a version that fails on one
// member (its interface is missing there) leaves that member on its last good version and stops
// the rollout, reported by --wait.
func TestFleetPush(t *testing.T) {
	l := newLab(t, 3)
	l.follow = true
	local := []peer.Instance{vr(100)} // the local files: one VIP, equal priorities
	for _, n := range []string{"n1", "n2", "n3"} {
		l.start(n, local, "test", "")
	}
	all := map[string]string{"n1": "alive", "n2": "alive", "n3": "alive"}
	l.waitMembers([]string{"n1", "n2", "n3"}, all, 30*time.Second)

	out, code := l.push(t, "n2", fleetDoc("eth0"))
	t.Logf("vigil config push --wait (version 1):\n%s", out)
	if code != 0 || strings.Count(out, "applied version 1") != 3 {
		t.Fatalf("push v1: exit %d:\n%s", code, out)
	}
	second := netip.MustParseAddr("192.0.2.101")
	if err := l.lab.Node("n1").WaitAddr(netlab.Dev, second, true, 5*time.Second); err != nil {
		t.Fatalf("the pushed VIP is not on the master n1: %v", err)
	}
	for name, prio := range map[string]uint8{"n1": 200, "n2": 150, "n3": 100} {
		st, err := l.status(name)
		if err != nil {
			t.Fatal(err)
		}
		if p := st.Instances[0].EffectivePriority; p != prio || len(st.Instances[0].VIPs) != 2 {
			t.Errorf("%s after the push: priority %d (want %d), %d VIPs", name, p, prio, len(st.Instances[0].VIPs))
		}
	}

	// Restart n2: it runs version 1, not its local file.
	if err := l.procs["n2"].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	l.start("n2", local, "test", "")
	l.waitMembers([]string{"n1", "n3"}, all, 30*time.Second)
	if err := netlab.Poll(10*time.Second, 100*time.Millisecond, func() (bool, error) {
		st, err := l.status("n2")
		return err == nil && len(st.Instances) == 1 && st.Instances[0].EffectivePriority == 150 && len(st.Instances[0].VIPs) == 2, nil
	}); err != nil {
		st, _ := l.status("n2")
		t.Fatalf("n2 after a restart does not run version 1: %+v", st.Instances)
	}

	// Version 2 names an interface n3 does not have: n3 keeps version 1 and the rollout stops:
	// the master n1, whose turn comes after the backups (backups-first), holds it back; the
	// other backup n2 may have applied it before n3 failed.
	out, code = l.push(t, "n1", strings.Replace(fleetDoc("eth9"), "priority: 200", "priority: 210", 1))
	t.Logf("vigil config push --wait (version 2, bad on n3):\n%s", out)
	if code == 0 || !strings.Contains(out, "n3: FAILED version 2") || !strings.Contains(out, "n1: held back, the rollout stopped (runs 1): n3 failed version 2") {
		t.Fatalf("push v2: exit %d:\n%s", code, out)
	}
	ms, err := l.members("n2")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ms, func(m node.MemberStatus) bool { return m.Name == "n3" })
	if i < 0 || ms[i].ConfigVersion != 1 || ms[i].ConfigErrorVersion != 2 || !strings.Contains(ms[i].ConfigError, "eth9") {
		t.Errorf("n3 as the fleet sees it: %+v", ms[i])
	}
	if st, err := l.status("n3"); err != nil || st.Instances[0].Interface != "eth0" {
		t.Errorf("n3 no longer runs version 1: %+v %v", st.Instances, err)
	}

	// Rollback to version 1 through n2: pushed again as version 3, which every node applies,
	// n3 included; n1's history lists 1 and 3, not 2, which it held back.
	out2, err := l.cli("n2", "config", "rollback", "1", "--wait", "--timeout", "20s")
	t.Logf("vigil config rollback 1 --wait:\n%s", out2)
	if err != nil || strings.Count(string(out2), "applied version 3") != 3 {
		t.Fatalf("rollback: %v\n%s", err, out2)
	}
	hist, err := l.cli("n1", "config", "history")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("vigil config history on n1:\n%s", hist)
	for _, v := range []string{"\n1 ", "\n3 "} {
		if !strings.Contains(string(hist), v) {
			t.Errorf("n1's history lacks version %s:\n%s", strings.TrimSpace(v), hist)
		}
	}
	if strings.Contains(string(hist), "\n2 ") {
		t.Errorf("n1's history lists version 2, which the stopped rollout held back:\n%s", hist)
	}
	if st, err := l.status("n1"); err != nil || st.Instances[0].EffectivePriority != 200 {
		t.Errorf("n1 after the rollback: %+v %v", st.Instances, err)
	}
}

// TestFleetPushLateJoiner (issue 14): "a node joining later catches up" and "a node with
// fleet.config not following ignores pushes": version 1 is pushed through n2 to n1 and n2, then n2,
// the version's origin, leaves; n3, started afterwards and following, applies version 1 from the
// announcement n1 makes once no live member announces it (its own row, which gossip's state
// exchange brings n3); n4, started with the default fleet.config (ignore), keeps running its own
// file and shows as not following.
func TestFleetPushLateJoiner(t *testing.T) {
	l := newLab(t, 4)
	l.follow = true
	local := []peer.Instance{vr(100)}
	l.start("n1", local, "test", "")
	l.start("n2", local, "test", "")
	two := map[string]string{"n1": "alive", "n2": "alive"}
	l.waitMembers([]string{"n1", "n2"}, two, 30*time.Second)
	out, code := l.push(t, "n2", fleetDoc("eth0"))
	if code != 0 || strings.Count(out, "applied version 1") != 2 {
		t.Fatalf("push v1 to n1 and n2: exit %d:\n%s", code, out)
	}
	if err := l.procs["n2"].Stop(10 * time.Second); err != nil {
		t.Fatalf("stopping n2: %v", err)
	}
	l.waitMembers([]string{"n1"}, map[string]string{"n1": "alive", "n2": "left"}, 15*time.Second)

	l.start("n3", local, "test", "")
	l.follow = false
	l.start("n4", local, "test", "")
	if err := netlab.Poll(30*time.Second, 100*time.Millisecond, func() (bool, error) {
		ms, err := l.members("n3")
		alive := 0
		for _, m := range ms {
			if m.State == "alive" {
				alive++
			}
		}
		return err == nil && alive == 3, nil
	}); err != nil {
		ms, _ := l.members("n3")
		t.Fatalf("n3 does not see n1, n3 and n4 alive: %s", states(ms))
	}
	if err := netlab.Poll(20*time.Second, 100*time.Millisecond, func() (bool, error) {
		st, err := l.status("n3")
		return err == nil && len(st.Instances) == 1 && len(st.Instances[0].VIPs) == 2, nil
	}); err != nil {
		st, _ := l.status("n3")
		t.Fatalf("n3, joining after the origin left, did not catch up with version 1: %+v", st.Instances)
	}
	var n4 node.MemberStatus
	if err := netlab.Poll(10*time.Second, 100*time.Millisecond, func() (bool, error) {
		ms, err := l.members("n1")
		if err != nil {
			return false, nil
		}
		for _, m := range ms {
			if m.Name == "n4" {
				n4 = m
			}
		}
		return n4.Drift == node.DriftNotFollowing, nil
	}); err != nil {
		t.Fatalf("n4 as n1 sees it: %+v", n4)
	}
	if n4.ConfigVersion != 0 {
		t.Errorf("n4 reports fleet version %d, want none", n4.ConfigVersion)
	}
	if st, err := l.status("n4"); err != nil || len(st.Instances) != 1 || len(st.Instances[0].VIPs) != 1 {
		t.Errorf("n4 no longer runs its own file (one VIP): %+v %v", st.Instances, err)
	}
}
