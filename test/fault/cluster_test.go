package fault

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"vigil/test/netlab"
	"vigil/test/peer"
)

// labPrefix starts this package's lab prefixes (with VIGIL_LAB_TAG's letter before it). Every lab
// gets labPrefix and two digits, as in test/interop: netlab.NewForTest removes leftovers of its
// own prefix only, so a failed test's kept lab directory survives the next test.
const labPrefix = "vgft"

var labSeq int

func newLab(t *testing.T) *netlab.Lab {
	t.Helper()
	netlab.Require(t)
	if labSeq == 0 {
		// A new run: remove every leftover of earlier runs of this package, the lab directories
		// that failed tests kept too (Cleanup removes those of its exact prefix only).
		prefix, err := netlab.Tagged(labPrefix)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlab.Cleanup(prefix); err != nil {
			t.Fatalf("netlab: remove leftovers of an earlier run: %v", err)
		}
		kept, _ := filepath.Glob(filepath.Join(os.TempDir(), "netlab-"+prefix+"[0-9][0-9]-*"))
		for _, d := range kept {
			if err := os.RemoveAll(d); err != nil {
				t.Fatalf("remove the lab directory %s of an earlier run: %v", d, err)
			}
		}
	}
	labSeq++
	return netlab.NewForTest(t, fmt.Sprintf("%s%02d", labPrefix, labSeq%100))
}

// The implementations a scenario runs against.
const (
	implVigil      = "vigil"
	implKeepalived = "keepalived"
)

var bothImpls = []string{implVigil, implKeepalived}

const iv = 100 * time.Millisecond // the scenarios' advert interval

var (
	vipA  = netip.MustParsePrefix("192.0.2.100/24")
	vipB  = netip.MustParsePrefix("192.0.2.101/24")
	vipC  = netip.MustParsePrefix("192.0.2.102/24")
	vipA2 = netip.MustParsePrefix("192.0.2.110/24")
	vip6  = netip.MustParsePrefix("2001:db8::100/64")
)

func inst(vrid, prio int, vips ...netip.Prefix) peer.Instance {
	return peer.Instance{Name: fmt.Sprintf("vr%d", vrid), VRID: vrid, Priority: prio, Version: 3,
		Interval: iv, VIPs: vips, Preempt: true}
}

// cluster is a lab of VRRP speakers of one implementation (nodes n1..nN: 192.0.2.1N/24,
// 2001:db8::1N/64, MAC 02:00:00:00:00:1N), optionally an attacker "atk" (192.0.2.99), and a
// capture on the bridge with FilterAll from the start.
type cluster struct {
	t      *testing.T
	impl   string
	lab    *netlab.Lab
	bin    string
	nodes  []*netlab.Node
	atk    *netlab.Node
	procs  map[string]*netlab.Process
	insts  map[string][]peer.Instance
	cap    *netlab.Capture
	chk    *Checker
	killed []int // the processes kill killed
	// garpDelay is the second announcement burst's delay (whole seconds; default 1 s). Set it
	// before starting the daemons.
	garpDelay time.Duration
	// violations are the invariants keepalived broke: recorded in the outcome table, not failed
	// (keepalived is the comparison, not the code under test).
	violations []string
}

// violation reports a broken invariant: a test failure for vigil, a recorded outcome for
// keepalived.
func (c *cluster) violation(format string, args ...any) {
	c.t.Helper()
	msg := fmt.Sprintf(format, args...)
	if c.impl == implVigil {
		c.t.Error(msg)
		return
	}
	c.t.Logf("%s (recorded for the comparison, not a failure)", msg)
	c.violations = append(c.violations, msg)
}

// record adds the scenario's outcome to the table, with keepalived's violations.
func (c *cluster) record(fault, outcome string) {
	if len(c.violations) > 0 {
		outcome += fmt.Sprintf("; VIOLATED: %s", strings.Join(c.violations, "; "))
	}
	record(fault, c.impl, outcome)
}

func nodeAddr(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", 10+i)) }

func newCluster(t *testing.T, impl string, n int, attacker bool) *cluster {
	t.Helper()
	lab := newLab(t)
	c := &cluster{t: t, impl: impl, lab: lab, procs: map[string]*netlab.Process{}, insts: map[string][]peer.Instance{},
		garpDelay: time.Second}
	switch impl {
	case implVigil:
		bin, err := peer.VigilBinary()
		if err != nil {
			t.Fatal(err)
		}
		c.bin = bin
	case implKeepalived:
		if _, err := exec.LookPath("keepalived"); err != nil {
			t.Fatalf("keepalived is not installed (bash test/deps.sh installs it): %v", err)
		}
	}
	for i := 1; i <= n; i++ {
		nd, err := lab.AddNodeConfig(netlab.NodeConfig{
			Name: fmt.Sprintf("n%d", i),
			Addrs: []netip.Prefix{netip.PrefixFrom(nodeAddr(i), 24),
				netip.MustParsePrefix(fmt.Sprintf("2001:db8::%d/64", 10+i))},
			MAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(0x10 + i)},
		})
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, nd)
	}
	if attacker {
		nd, err := lab.AddNodeConfig(netlab.NodeConfig{Name: "atk",
			Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.99/24")},
			MAC:   net.HardwareAddr{2, 0, 0, 0, 0, 0x99}})
		if err != nil {
			t.Fatal(err)
		}
		c.atk = nd
	}
	var err error
	if c.cap, err = lab.StartCapture(FilterAll); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *cluster) node(name string) *netlab.Node { return c.lab.Node(name) }

// vigilGARP replaces peer.VigilYAML's single announcement: two messages 20 ms apart and a second
// burst garpDelay later (whole seconds, which keepalived needs), so that a node that keeps
// announcing after it lost mastership (a delayed burst not cancelled) shows on the wire.
func (c *cluster) vigilGARP() string {
	return fmt.Sprintf("garp: { repeat: 2, interval: 20ms, delay: %s }", c.garpDelay)
}

// configPath is the file vigil runs from on a node: peer.VigilYAML with vigilGARP's bursts.
func (c *cluster) configPath(name string) string {
	return filepath.Join(c.lab.Dir(), name+"-fault.yaml")
}

func (c *cluster) writeConfig(name string, insts []peer.Instance) {
	c.t.Helper()
	y := peer.VigilYAML(name, insts)
	const single = "garp: { repeat: 1, delay: 0s }"
	if !strings.Contains(y, single) {
		c.t.Fatalf("peer.VigilYAML no longer says %q; update vigilGARP's replacement:\n%s", single, y)
	}
	y = strings.Replace(y, single, c.vigilGARP(), 1)
	if err := os.WriteFile(c.configPath(name), []byte(y), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// keepalivedGARP gives keepalived the announcements of vigilGARP (peer.KeepalivedConf has one
// GARP and no second burst, as peer.VigilYAML), so that both are judged on the same bursts.
func (c *cluster) keepalivedGARP() string {
	d := int(c.garpDelay / time.Second)
	return fmt.Sprintf("  vrrp_garp_master_delay %d\n  vrrp_garp_master_repeat 2\n  vrrp_garp_lower_prio_delay %d\n  vrrp_garp_lower_prio_repeat 2\n"+
		"  vrrp_garp_interval 0.02\n  vrrp_gna_interval 0.02\n", d, d)
}

func (c *cluster) keepalivedConf(name string, insts []peer.Instance) string {
	c.t.Helper()
	conf := peer.KeepalivedConf(name, insts)
	const single = "  vrrp_garp_master_delay 0\n  vrrp_garp_master_repeat 1\n"
	if !strings.Contains(conf, single) {
		c.t.Fatalf("peer.KeepalivedConf no longer says %q; update keepalivedGARP's replacement:\n%s", single, conf)
	}
	return strings.Replace(conf, single, c.keepalivedGARP(), 1)
}

// startKeepalived is peer.StartKeepalived with keepalivedGARP in the configuration (the same
// command line; it could move to peer as an option).
func (c *cluster) startKeepalived(name string, insts []peer.Instance) (*netlab.Process, error) {
	kp, err := exec.LookPath("keepalived")
	if err != nil {
		return nil, fmt.Errorf("keepalived is not installed (test/deps.sh installs it): %w", err)
	}
	dir := filepath.Join(c.lab.Dir(), name+"-keepalived")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte(c.keepalivedConf(name, insts)), 0o644); err != nil {
		return nil, fmt.Errorf("writing keepalived config for %s: %w", name, err)
	}
	// Under nice, as renice does for vigil: the VRRP child forks from a parent already reniced.
	return c.node(name).Start("nice", "-n", strconv.Itoa(daemonNice), kp, "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
		"--use-file", conf, "--pid", filepath.Join(dir, "keepalived.pid"),
		"--vrrp_pid", filepath.Join(dir, "vrrp.pid"), "--checkers_pid", filepath.Join(dir, "checkers.pid"))
}

// start starts the implementation on a node. vigil runs through peer.StartVigil (its admin
// socket, and whatever else peer applies to every test daemon) with a later --config naming the
// file with vigilGARP's bursts, which wins over the one StartVigil writes (and a later --log-level).
func (c *cluster) start(name string, insts ...peer.Instance) *netlab.Process {
	c.t.Helper()
	var p *netlab.Process
	var err error
	switch c.impl {
	case implVigil:
		c.writeConfig(name, insts)
		// Info, not StartVigil's debug: the checker polls the admin API every 10 ms, and a debug
		// line per request would bury the state changes in the logs a failure prints.
		p, err = peer.StartVigil(c.node(name), c.bin, insts, "--config", c.configPath(name), "--log-level", "info")
	case implKeepalived:
		p, err = c.startKeepalived(name, insts)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	if c.impl == implVigil {
		renice(c.t, p.Pid())
	}
	c.procs[name] = p
	c.insts[name] = insts
	c.chk = nil // the groups may have changed
	return p
}

// daemonNice is the nice value the daemons (both implementations) and the test process run at.
// The machine's two cores are shared with other work (fuzzers at 90 % of both cores were seen);
// at nice 0, vigil and keepalived masters alike missed their advert deadlines by hundreds of
// milliseconds, which is the machine's fault, not theirs. The daemons use a few percent of a
// core, so this takes little from anyone.
const daemonNice = -10

// renice sets the nice value of every thread of a process group (a daemon started by netlab is
// its group's leader); threads created later inherit it.
func renice(t *testing.T, pgid int) {
	t.Helper()
	if err := syscall.Setpriority(syscall.PRIO_PGRP, pgid, daemonNice); err != nil {
		t.Fatalf("renice process group %d to %d: %v", pgid, daemonNice, err)
	}
}

// reniceSelf sets every thread of the test process to daemonNice, so that its pacing (flaps,
// floods) and sampling keep time too.
func reniceSelf() error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, daemonNice); err != nil {
			return fmt.Errorf("renice thread %d: %w", tid, err)
		}
	}
	return nil
}

func (c *cluster) admin(name string) string {
	if c.impl != implVigil {
		return ""
	}
	return peer.VigilAdminSocket(c.node(name))
}

// groups derives the virtual routers from the running configurations.
func (c *cluster) groups() []Group {
	type key struct {
		vrid int
		six  bool
	}
	byKey := map[key]*Group{}
	var order []key
	for _, nd := range c.nodes {
		for _, in := range c.insts[nd.Name] {
			k := key{in.VRID, in.VIPs[0].Addr().Is6()}
			g, ok := byKey[k]
			if !ok {
				g = &Group{VRID: in.VRID, Version: in.Version, Interval: in.Interval, LowestPriority: in.Priority}
				for _, v := range in.VIPs {
					g.VIPs = append(g.VIPs, v.Addr())
				}
				byKey[k] = g
				order = append(order, k)
			}
			g.LowestPriority = min(g.LowestPriority, in.Priority)
		}
	}
	var gs []Group
	for _, k := range order {
		gs = append(gs, *byKey[k])
	}
	return gs
}

func (c *cluster) group(vrid int, six bool) Group {
	for _, g := range c.groups() {
		if g.VRID == vrid && g.IPv6() == six {
			return g
		}
	}
	c.t.Fatalf("no group VRID %d (IPv6 %v)", vrid, six)
	return Group{}
}

func (c *cluster) checker() *Checker {
	if c.chk == nil {
		c.chk = &Checker{Groups: c.groups(), Capture: c.cap}
		for _, nd := range c.nodes {
			if _, ok := c.insts[nd.Name]; ok {
				c.chk.Members = append(c.chk.Members, Member{Node: nd, Admin: c.admin(nd.Name)})
			}
		}
	}
	return c.chk
}

// check runs the invariant checker for a heal and fails the test on any violation.
func (c *cluster) check(heal time.Time, what string) *Report {
	c.t.Helper()
	rep, err := c.checker().AfterHeal(heal)
	c.t.Logf("%s [%s]: %s", what, c.impl, rep)
	if err != nil {
		c.violation("%s [%s]: %v\n%s", what, c.impl, err, c.logs())
	}
	if rep == nil {
		rep = &Report{Heal: heal}
	}
	// A run that never settled has no figures: one empty report per group
	// (no master), so callers' checks report a violation instead of
	// indexing past the end (keepalived's violations are recorded, not
	// fatal, and its run goes on).
	for len(rep.Groups) < len(c.checker().Groups) {
		rep.Groups = append(rep.Groups, GroupReport{})
	}
	return rep
}

// holders returns the nodes that have addr on eth0.
func (c *cluster) holders(addr netip.Addr) []string {
	c.t.Helper()
	var hs []string
	for _, nd := range c.nodes {
		addrs, err := Addrs(nd, netlab.Dev)
		if err != nil {
			c.t.Fatal(err)
		}
		if slices.Contains(addrs, addr) {
			hs = append(hs, nd.Name)
		}
	}
	return hs
}

// waitHolds waits until name holds every address of the group (others may hold them too), at
// most timeout after since, and returns how long after since that was.
func (c *cluster) waitHolds(g Group, name string, since time.Time, timeout time.Duration) time.Duration {
	c.t.Helper()
	start := since
	for {
		all := true
		for _, a := range g.VIPs {
			all = all && slices.Contains(c.holders(a), name)
		}
		if all {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			c.t.Fatalf("[%s] %s does not hold %s's addresses after %s\n%s", c.impl, name, g, timeout, c.logs())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSole waits until name alone holds every address of every group given.
func (c *cluster) waitSole(name string, timeout time.Duration, gs ...Group) {
	c.t.Helper()
	start := time.Now()
	for {
		ok := true
		for _, g := range gs {
			for _, a := range g.VIPs {
				ok = ok && slices.Equal(c.holders(a), []string{name})
			}
		}
		if ok {
			return
		}
		if time.Since(start) > timeout {
			var held []string
			for _, g := range gs {
				for _, a := range g.VIPs {
					held = append(held, fmt.Sprintf("%s on %v", a, c.holders(a)))
				}
			}
			c.t.Fatalf("[%s] want %s the sole holder after %s: %s\n%s", c.impl, name, timeout, strings.Join(held, ", "), c.logs())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// vrrpPID is the process that speaks VRRP on a node: vigil itself, or keepalived's VRRP child
// (keepalived --dont-fork still runs its VRRP process as a child of the parent that
// StartKeepalived started).
func (c *cluster) vrrpPID(name string) int {
	c.t.Helper()
	if c.impl == implVigil {
		return c.procs[name].Pid()
	}
	path := filepath.Join(c.lab.Dir(), name+"-keepalived", "vrrp.pid")
	var pid int
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(path)
		if err == nil {
			if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				return pid
			}
		}
		if time.Since(start) > 5*time.Second {
			c.t.Fatalf("keepalived's VRRP pid on %s: %v", name, err)
		}
	}
}

// kill SIGKILLs the daemon's whole process group (keepalived's parent would restart a VRRP child
// killed alone), and keepalived's VRRP child by its id too, and waits for the process it
// started; waitGone waits for the rest.
func (c *cluster) kill(name string) {
	c.t.Helper()
	p := c.procs[name]
	c.killed = []int{p.Pid()}
	if c.impl == implKeepalived {
		c.killed = append(c.killed, c.vrrpPID(name))
	}
	if err := syscall.Kill(-p.Pid(), syscall.SIGKILL); err != nil {
		c.t.Fatalf("SIGKILL %s on %s: %v", c.impl, name, err)
	}
	for _, pid := range c.killed[1:] {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = p.Wait()
}

// waitGone waits until every process kill killed is gone, reaped too: a keepalived started while
// its old VRRP child is still there (a zombie waiting for init to reap it counts) says "daemon is
// already running" and exits.
func (c *cluster) waitGone() {
	c.t.Helper()
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		if !slices.ContainsFunc(c.killed, func(pid int) bool { return syscall.Kill(pid, 0) == nil }) {
			return
		}
		if time.Since(start) > 10*time.Second {
			c.t.Fatalf("%s: processes %v still there 10 s after SIGKILL", c.impl, c.killed)
		}
	}
}

// waitUp waits until a daemon started on name is running its instances: vigil answers on its
// admin socket, keepalived logged its first state.
func (c *cluster) waitUp(name string, timeout time.Duration) {
	c.t.Helper()
	p := c.procs[name]
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		switch c.impl {
		case implVigil:
			if _, err := Status(c.admin(name)); err == nil {
				return
			}
		case implKeepalived:
			if strings.Contains(p.Log(), "Entering BACKUP STATE") || strings.Contains(p.Log(), "Entering MASTER STATE") {
				return
			}
		}
		if p.Exited() || time.Since(start) > timeout {
			c.t.Fatalf("[%s] not up on %s after %s:\n%s", c.impl, name, time.Since(start), p.LogLines(30))
		}
	}
}

// reload makes a node's daemon apply new instances: `vigil config reload`, or SIGHUP to
// keepalived (which has no synchronous reload) and a wait for its "Reload complete" line.
func (c *cluster) reload(name string, insts []peer.Instance) {
	c.t.Helper()
	c.insts[name] = insts
	c.chk = nil
	switch c.impl {
	case implVigil:
		c.writeConfig(name, insts)
		out, err := exec.Command(c.bin, "config", "reload", "--socket", c.admin(name)).CombinedOutput()
		if err != nil {
			c.t.Fatalf("vigil config reload on %s: %v\n%s", name, err, out)
		}
	case implKeepalived:
		conf := filepath.Join(c.lab.Dir(), name+"-keepalived", "keepalived.conf")
		if err := os.WriteFile(conf, []byte(c.keepalivedConf(name, insts)), 0o644); err != nil {
			c.t.Fatal(err)
		}
		p := c.procs[name]
		before := strings.Count(p.Log(), "Reload complete")
		if err := p.Signal(syscall.SIGHUP); err != nil {
			c.t.Fatal(err)
		}
		for start := time.Now(); strings.Count(p.Log(), "Reload complete") == before; time.Sleep(10 * time.Millisecond) {
			if time.Since(start) > 5*time.Second {
				c.t.Fatalf("keepalived on %s did not finish its reload:\n%s", name, p.LogLines(20))
			}
		}
	}
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

// macOf is a member's MAC as the capture shows it.
func macOf(i int) string { return net.HardwareAddr{2, 0, 0, 0, 0, byte(0x10 + i)}.String() }

// masterAdverts returns the times of name's adverts at a non-zero priority for a group in
// [from, to].
func masterAdverts(frames []netlab.VRRPFrame, g Group, nodeIdx int, from, to time.Time) []time.Time {
	var ts []time.Time
	for _, f := range frames {
		if f.VRID == g.VRID && f.Src.Is6() == g.IPv6() && f.Priority > 0 && f.SrcMAC.String() == macOf(nodeIdx) &&
			!f.Time.Before(from) && !f.Time.After(to) {
			ts = append(ts, f.Time)
		}
	}
	return ts
}

func maxGap(ts []time.Time, from, to time.Time) time.Duration {
	var gap time.Duration
	prev := from
	for _, t := range ts {
		gap = max(gap, t.Sub(prev))
		prev = t
	}
	return max(gap, to.Sub(prev))
}

func (c *cluster) logs() string {
	var b strings.Builder
	for _, nd := range c.nodes {
		if p := c.procs[nd.Name]; p != nil {
			fmt.Fprintf(&b, "--- %s on %s ---\n%s\n", c.impl, nd.Name, p.LogLines(25))
		}
	}
	return b.String()
}

// The outcome table: one row per fault, one column per implementation, printed after the run
// for the README.
var (
	outcomeMu   sync.Mutex
	outcomeRows []string
	outcomes    = map[string]map[string]string{}
)

func record(fault, impl, outcome string) {
	outcomeMu.Lock()
	defer outcomeMu.Unlock()
	if outcomes[fault] == nil {
		outcomes[fault] = map[string]string{}
		outcomeRows = append(outcomeRows, fault)
	}
	outcomes[fault][impl] = outcome
}

func outcomeTable() string {
	outcomeMu.Lock()
	defer outcomeMu.Unlock()
	if len(outcomeRows) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| fault | vigil | keepalived 2.2.7 |\n|---|---|---|\n")
	for _, r := range outcomeRows {
		k := outcomes[r][implKeepalived]
		if k == "" {
			k = "not run"
		}
		v := outcomes[r][implVigil]
		if v == "" {
			v = "not run"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r, v, k)
	}
	return b.String()
}

func TestMain(m *testing.M) {
	if os.Getenv(netlab.EnvNetNS) == "1" && os.Geteuid() == 0 {
		if err := reniceSelf(); err != nil {
			fmt.Fprintf(os.Stderr, "fault: %v\n", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if t := outcomeTable(); t != "" {
		fmt.Printf("\nfault suite outcomes:\n%s", t)
	}
	os.Exit(code)
}
