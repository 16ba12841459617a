package lbvm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/lb"
	"vigil/lb/ipvsnet"
	"vigil/test/netlab"
)

// syncThreads returns the pids of the kernel's sync daemon threads of one
// role ("ipvs-m:" master, "ipvs-b:" backup; the kernel names them
// ipvs-<role>:<netns gen>:<thread>). A restart replaces them, so equal
// pids across a call mean the call left the daemon alone.
func syncThreads(t *testing.T, prefix string) []string {
	t.Helper()
	comms, err := filepath.Glob("/proc/[0-9]*/comm")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, c := range comms {
		b, err := os.ReadFile(c)
		if err != nil {
			continue // exited meanwhile
		}
		if strings.HasPrefix(string(b), prefix) {
			pids = append(pids, filepath.Base(filepath.Dir(c)))
		}
	}
	slices.Sort(pids)
	return pids
}

func daemons(t *testing.T, h *ipvsnet.Handle) map[ipvsnet.SyncState]ipvsnet.SyncDaemon {
	t.Helper()
	ds, err := h.SyncDaemons()
	if err != nil {
		t.Fatal(err)
	}
	m := map[ipvsnet.SyncState]ipvsnet.SyncDaemon{}
	for _, d := range ds {
		if _, dup := m[d.State]; dup {
			t.Fatalf("two %s daemons: %v", d.State, ds)
		}
		m[d.State] = d
	}
	return m
}

// TestSyncDaemonLifecycle starts, reads back, re-applies, changes and
// stops the kernel's sync daemons in a fresh namespace.
func TestSyncDaemonLifecycle(t *testing.T) {
	inVM(t)
	const ns = "vigil-lb-sync"
	h := director(t, ns)
	// The master binds its socket to an IPv4 address of its interface,
	// and both need the interface up.
	run(t, ipCmd, "-n", ns, "link", "add", "sync0", "type", "veth", "peer", "name", "sync1")
	run(t, ipCmd, "-n", ns, "addr", "add", "192.0.2.1/24", "dev", "sync0")
	run(t, ipCmd, "-n", ns, "addr", "add", "192.0.2.2/24", "dev", "sync1")
	run(t, ipCmd, "-n", ns, "link", "set", "sync0", "up")
	run(t, ipCmd, "-n", ns, "link", "set", "sync1", "up")
	t.Cleanup(func() {
		for _, s := range []ipvsnet.SyncState{ipvsnet.SyncMaster, ipvsnet.SyncBackup} {
			if err := h.StopSyncDaemon(s); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})

	if got := daemons(t, h); len(got) != 0 {
		t.Fatalf("fresh namespace runs sync daemons: %v", got)
	}
	if err := h.StopSyncDaemon(ipvsnet.SyncMaster); err != nil {
		t.Fatalf("stopping a master that is not running: %v", err)
	}

	master := ipvsnet.SyncDaemon{State: ipvsnet.SyncMaster, Interface: "sync0", SyncID: 5}
	backup := ipvsnet.SyncDaemon{State: ipvsnet.SyncBackup, Interface: "sync1", SyncID: 5, Port: 9000}
	for _, d := range []ipvsnet.SyncDaemon{master, backup} {
		if err := h.StartSyncDaemon(d); err != nil {
			t.Fatal(err)
		}
	}
	got := daemons(t, h)
	for _, want := range []ipvsnet.SyncDaemon{master, backup} {
		g, ok := got[want.State]
		if !ok {
			t.Fatalf("%s not running after start: %v", want.State, got)
		}
		wantPort := want.Port
		if wantPort == 0 {
			wantPort = ipvsnet.DefaultSyncPort
		}
		if g.Interface != want.Interface || g.SyncID != want.SyncID || g.Port != wantPort ||
			g.Group != ipvsnet.DefaultSyncGroup || g.TTL != ipvsnet.DefaultSyncTTL || g.MaxLen == 0 {
			t.Errorf("kernel reports %s, want %s with the kernel's defaults", g, want)
		}
		t.Logf("running: %s", g)
	}

	// Re-applying the same settings leaves both daemons as they were.
	mPids, bPids := syncThreads(t, "ipvs-m:"), syncThreads(t, "ipvs-b:")
	if len(mPids) == 0 || len(bPids) == 0 {
		t.Fatalf("no sync threads found: master %v, backup %v", mPids, bPids)
	}
	for _, d := range []ipvsnet.SyncDaemon{master, backup} {
		if err := h.StartSyncDaemon(d); err != nil {
			t.Fatalf("idempotent start of %s: %v", d, err)
		}
	}
	if m, b := syncThreads(t, "ipvs-m:"), syncThreads(t, "ipvs-b:"); !slices.Equal(m, mPids) || !slices.Equal(b, bPids) {
		t.Fatalf("an unchanged start restarted a daemon: master threads %v -> %v, backup %v -> %v", mPids, m, bPids, b)
	}

	// Other settings restart the master only.
	changed := ipvsnet.SyncDaemon{State: ipvsnet.SyncMaster, Interface: "sync0", SyncID: 6, Port: 9100, TTL: 2,
		Group: mustAddr("239.192.0.1"), MaxLen: 1000}
	if err := h.StartSyncDaemon(changed); err != nil {
		t.Fatalf("change: %v", err)
	}
	got = daemons(t, h)
	if got[ipvsnet.SyncMaster] != changed {
		t.Errorf("after change the kernel reports %s, want %s", got[ipvsnet.SyncMaster], changed)
	}
	if m := syncThreads(t, "ipvs-m:"); slices.Equal(m, mPids) {
		t.Errorf("the changed master kept its threads %v: not restarted", m)
	}
	if b := syncThreads(t, "ipvs-b:"); !slices.Equal(b, bPids) {
		t.Errorf("changing the master restarted the backup: threads %v -> %v", bPids, b)
	}

	// A restart the kernel refuses names the daemon, keeps the errno and
	// leaves the daemon running as it was.
	runningBackup := got[ipvsnet.SyncBackup]
	err := h.StartSyncDaemon(ipvsnet.SyncDaemon{State: ipvsnet.SyncBackup, Interface: "nosuchif", SyncID: 5})
	if !errors.Is(err, unix.ENODEV) || !strings.Contains(err.Error(), "nosuchif") {
		t.Errorf("restart on a missing interface: %v, want ENODEV naming the interface", err)
	}
	t.Logf("refused restart: %v", err)
	if b := daemons(t, h)[ipvsnet.SyncBackup]; b != runningBackup {
		t.Fatalf("after a refused restart the backup is %s, want it back as %s", b, runningBackup)
	}
	// A refused fresh start leaves nothing running.
	if err := h.StopSyncDaemon(ipvsnet.SyncBackup); err != nil {
		t.Fatal(err)
	}
	err = h.StartSyncDaemon(ipvsnet.SyncDaemon{State: ipvsnet.SyncBackup, Interface: "nosuchif", SyncID: 5})
	if !errors.Is(err, unix.ENODEV) {
		t.Errorf("start on a missing interface: %v, want ENODEV", err)
	}
	if _, ok := daemons(t, h)[ipvsnet.SyncBackup]; ok {
		t.Fatal("a refused start left a backup running")
	}
	if err := h.StartSyncDaemon(runningBackup); err != nil {
		t.Fatal(err)
	}

	// Stop one, then again, then the other.
	for _, s := range []ipvsnet.SyncState{ipvsnet.SyncMaster, ipvsnet.SyncMaster} {
		if err := h.StopSyncDaemon(s); err != nil {
			t.Fatalf("stop %s: %v", s, err)
		}
	}
	got = daemons(t, h)
	if _, ok := got[ipvsnet.SyncMaster]; ok || len(got) != 1 {
		t.Fatalf("after stopping the master: %v, want the backup only", got)
	}
	if len(syncThreads(t, "ipvs-m:")) != 0 {
		t.Errorf("master threads left after stop: %v", syncThreads(t, "ipvs-m:"))
	}
	if err := h.StopSyncDaemon(ipvsnet.SyncBackup); err != nil {
		t.Fatal(err)
	}
	if got := daemons(t, h); len(got) != 0 {
		t.Fatalf("after stopping both: %v", got)
	}
}

// TestSyncDaemonQuickStop stops a backup daemon right after starting it,
// again and again. The kernel answers a stop that finds the daemon's
// thread not yet run with no message at all (kthread_stop's EINTR, which
// netlink does not acknowledge): every stop must still succeed, promptly,
// and leave no daemon. Under TCG about one in ten such stops did so.
func TestSyncDaemonQuickStop(t *testing.T) {
	inVM(t)
	const ns = "vigil-lb-syncq"
	h := director(t, ns)
	run(t, ipCmd, "-n", ns, "link", "add", "sync0", "type", "dummy")
	run(t, ipCmd, "-n", ns, "link", "set", "sync0", "up")
	backup := ipvsnet.SyncDaemon{State: ipvsnet.SyncBackup, Interface: "sync0", SyncID: 7}
	for i := range 40 {
		if err := h.StartSyncDaemon(backup); err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		t0 := time.Now()
		if err := h.StopSyncDaemon(ipvsnet.SyncBackup); err != nil {
			t.Fatalf("stop %d: %v", i, err)
		}
		if d := time.Since(t0); d > 5*time.Second {
			t.Errorf("stop %d took %v", i, d)
		}
		if got := daemons(t, h); len(got) != 0 {
			t.Fatalf("after stop %d: %v", i, got)
		}
	}
}

// TestSyncReplicatesConnections: director A runs a NAT virtual service
// and a master sync daemon, director B a backup daemon on the same
// segment. A TCP connection from a client through A to a real server must
// appear in B's connection table, which is what lets B keep it after a
// failover.
func TestSyncReplicatesConnections(t *testing.T) {
	inVM(t)
	lab := netlab.NewForTest(t, "vgsy")
	add := func(name string, addrs ...string) *netlab.Node { return labNode(t, lab, name, addrs...) }
	client := add("c", "192.0.2.50/24")
	dA := add("a", "192.0.2.11/24", "198.51.100.2/24")
	dB := add("b", "192.0.2.12/24", "198.51.100.3/24")
	real := add("r", "198.51.100.11/24")
	if out, err := real.IP("route", "add", "default", "via", "198.51.100.2"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	ctx := context.Background()
	if out, err := dA.Run(ctx, "sysctl", "-w", "net.ipv4.ip_forward=1"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	// The real server echoes.
	echoServer(t, real, "198.51.100.11:8080")

	svc := entry(tcp("192.0.2.11", 80, "rr"), dst("198.51.100.11", 8080, lb.NAT, 1))
	for _, d := range []struct {
		n     *netlab.Node
		state ipvsnet.SyncState
	}{{dA, ipvsnet.SyncMaster}, {dB, ipvsnet.SyncBackup}} {
		h, err := ipvsnet.Open("/run/netns/" + d.n.NS)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		if err := h.Apply(lb.Diff(table(svc), lb.Table{}, nil)); err != nil {
			t.Fatal(err)
		}
		if err := h.StartSyncDaemon(ipvsnet.SyncDaemon{State: d.state, Interface: "eth0", SyncID: 7}); err != nil {
			t.Fatalf("%s: %v", d.n.Name, err)
		}
		t.Cleanup(func() {
			if err := h.StopSyncDaemon(d.state); err != nil {
				t.Errorf("%s: %v", d.n.Name, err)
			}
		})
	}

	// The daemons live in the directors' namespaces, not the VM's own.
	root, err := ipvsnet.Open("")
	if err != nil {
		t.Fatal(err)
	}
	if ds, err := root.SyncDaemons(); err != nil || len(ds) != 0 {
		t.Errorf("the VM's own namespace reports sync daemons %v, %v; want none", ds, err)
	}
	root.Close()

	// A few round trips: the master syncs an established TCP connection
	// once it has seen three packets from the client.
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := client.Dial(dctx, "tcp", "192.0.2.11:80")
	if err != nil {
		t.Fatalf("connect through the virtual service: %v", err)
	}
	defer conn.Close()
	echoThrough(t, conn, "the virtual service")

	// /proc/net/ip_vs_conn in hex: client 192.0.2.50, virtual 192.0.2.11:80,
	// real 198.51.100.11:8080.
	match := func(table string) bool {
		for _, l := range strings.Split(table, "\n") {
			if strings.HasPrefix(l, "TCP C0000232 ") && strings.Contains(l, " C000020B 0050 C633640B 1F90 ") {
				return true
			}
		}
		return false
	}
	connTable := func(n *netlab.Node) string {
		out, err := n.Run(ctx, "cat", "/proc/net/ip_vs_conn")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return string(out)
	}
	if a := connTable(dA); !match(a) {
		t.Fatalf("connection not in A's own table:\n%s", a)
	}
	// The master sends its buffer when it fills or after about two
	// seconds; the bound only keeps a broken sync from hanging the test.
	var b string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if b = connTable(dB); match(b) {
			t.Logf("B's table:\n%s", b)
			return
		}
	}
	t.Fatalf("the connection never reached backup B's table:\n%s\nA's table:\n%s", b, connTable(dA))
}
