package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"vigil/node"
	"vigil/test/peer"
)

// vigilStatus runs `vigil status --socket SOCK args...` on the host (the
// daemons run in namespaces; their sockets are files) and returns stdout,
// stderr and the exit code.
func vigilStatus(t *testing.T, bin, sock string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"status", "--socket", sock}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	t.Fatalf("running vigil status: %v", err)
	return "", "", -1
}

func statusJSON(t *testing.T, c *cluster, name string) node.Status {
	t.Helper()
	out, errOut, code := vigilStatus(t, c.bin, peer.VigilAdminSocket(c.node(name)), "-o", "json")
	if code != 0 {
		t.Fatalf("vigil status on %s: exit %d: %s\n%s", name, code, errOut, c.logs())
	}
	var st node.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("vigil status -o json on %s: %v\n%s", name, err, out)
	}
	return st
}

// `vigil status` reads each running daemon over its admin socket: the master
// reports itself, the backup reports the master it hears with its priority.
// A second vigil on a live socket refuses to start (and leaves the running
// one alone), the socket goes away on a clean stop, and a crashed run's
// stale socket is taken over on restart.
func TestStatusCLI(t *testing.T) {
	c := newCluster(t, 2)
	c.start("n1", inst(51, 150, iv, vip4))
	c.start("n2", inst(51, 100, iv, vip4))
	c.waitHolder(vip4.Addr(), "n1", mdi(3, 150, iv)+2*time.Second, 3*iv)
	// The backup learns the master from its adverts; give it one interval.
	time.Sleep(2 * iv)

	for _, tc := range []struct {
		node, state string
		prio        uint8
	}{{"n1", "master", 150}, {"n2", "backup", 100}} {
		st := statusJSON(t, c, tc.node)
		if st.Node != tc.node || len(st.Instances) != 1 {
			t.Fatalf("%s: %+v", tc.node, st)
		}
		in := st.Instances[0]
		if in.Name != "vr51" || in.Interface != "eth0" || in.VRID != 51 || in.Family != "ipv4" || in.State != tc.state ||
			in.BasePriority != tc.prio || in.EffectivePriority != tc.prio ||
			in.Master != "192.0.2.11" || in.MasterPriority != 150 || in.AdvertInterval != iv.Seconds() ||
			len(in.VIPs) != 1 || in.VIPs[0].Address != vip4.String() || in.VIPs[0].Dev != "eth0" || in.LastTransition.IsZero() || in.LastReason == "" {
			t.Errorf("%s: %+v", tc.node, in)
		}
		t.Logf("%s: state %s priority %d/%d master %s (%d) reason %s", tc.node, in.State, in.BasePriority,
			in.EffectivePriority, in.Master, in.MasterPriority, in.LastReason)
	}
	table, _, code := vigilStatus(t, c.bin, peer.VigilAdminSocket(c.node("n2")))
	if code != 0 || !strings.Contains(table, "BACKUP") || !strings.Contains(table, "192.0.2.11 (150)") {
		t.Fatalf("table on n2 (exit %d):\n%s", code, table)
	}
	t.Logf("vigil status on n2:\n%s", table)

	// A second vigil pointed at n1's socket stops before touching anything.
	sock1 := peer.VigilAdminSocket(c.node("n1"))
	p, err := peer.StartVigil(c.node("n2"), c.bin, []peer.Instance{inst(51, 100, iv, vip4)}, "--admin-socket", sock1)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		p.Stop(time.Second)
		t.Fatal("a second vigil on a live admin socket kept running")
	}
	if err := p.Wait(); err == nil || !strings.Contains(p.Log(), "another vigil is running") {
		t.Fatalf("second vigil: %v\n%s", err, p.Log())
	}
	c.waitHolder(vip4.Addr(), "n1", 0, 3*iv)
	if st := statusJSON(t, c, "n1"); st.Instances[0].State != "master" {
		t.Fatalf("n1 after the refused start: %+v", st.Instances[0])
	}

	// A clean stop removes the socket; status then says vigil is not running.
	c.stop("n2")
	if _, err := os.Lstat(peer.VigilAdminSocket(c.node("n2"))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("n2's socket after stop: %v", err)
	}
	_, errOut, code := vigilStatus(t, c.bin, peer.VigilAdminSocket(c.node("n2")))
	if code != 1 || !strings.Contains(errOut, "vigil is not running (no socket at ") {
		t.Fatalf("status of a stopped node: exit %d: %s", code, errOut)
	}

	// A crash leaves the socket: status says it is stale, a restart takes it.
	if err := c.procs["n1"].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.procs["n1"].Wait()
	_, errOut, code = vigilStatus(t, c.bin, sock1)
	if code != 1 || !strings.Contains(errOut, "stale socket") {
		t.Fatalf("status after a crash: exit %d: %s", code, errOut)
	}
	c.start("n1", inst(51, 150, iv, vip4))
	// (The crashed run's VIP is still on n1 until the new one starts, so
	// ask the daemon rather than the interface, once it has bound its
	// socket.)
	for start := time.Now(); ; time.Sleep(iv) {
		out, errOut, code := vigilStatus(t, c.bin, sock1, "-o", "json")
		var st node.Status
		if code == 0 {
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				t.Fatal(err)
			}
			if in := st.Instances[0]; in.State == "master" && in.Master == "192.0.2.11" {
				break
			}
		}
		if time.Since(start) > mdi(3, 150, iv)+2*time.Second {
			t.Fatalf("n1 after restart: exit %d %s %+v\n%s", code, errOut, st, c.logs())
		}
	}
	c.waitHolder(vip4.Addr(), "n1", time.Second, 0)
	if !strings.Contains(c.procs["n1"].Log(), "removed a stale admin socket") {
		t.Fatalf("restart did not report the stale socket\n%s", c.procs["n1"].LogLines(20))
	}
}
