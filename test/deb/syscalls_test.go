package deb

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vigil/test/netlab"
)

// unitSyscallFilter reads the unit's SystemCallFilter= lines (only plain allow lists: what the
// shipped unit uses) and expands their groups with `systemd-analyze syscall-filter`, as systemd
// would build the seccomp filter.
func unitSyscallFilter(t *testing.T, unit string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	var items []string
	for l := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if !ok || k != "SystemCallFilter" {
			continue
		}
		if strings.HasPrefix(v, "~") {
			t.Fatalf("SystemCallFilter=%s: deny lists are not read by this test", v)
		}
		items = append(items, strings.Fields(v)...)
	}
	if len(items) == 0 {
		t.Fatalf("%s has no SystemCallFilter=", unit)
	}
	groups := syscallGroups(t)
	set := map[string]bool{}
	var expand func(string)
	expand = func(item string) {
		if !strings.HasPrefix(item, "@") {
			set[item] = true
			return
		}
		members, ok := groups[item]
		if !ok {
			t.Fatalf("SystemCallFilter=: unknown group %s", item)
		}
		for _, m := range members {
			expand(m)
		}
	}
	for _, it := range items {
		expand(it)
	}
	return set
}

// syscallGroups parses `systemd-analyze syscall-filter`: "@group" lines, each followed by its
// members (system calls and other groups), "#" lines being descriptions.
func syscallGroups(t *testing.T) map[string][]string {
	t.Helper()
	out := run(t, "systemd-analyze", "syscall-filter", "--no-pager")
	groups := map[string][]string{}
	cur := ""
	for l := range strings.Lines(out) {
		f := strings.TrimSpace(l)
		switch {
		case f == "" || strings.HasPrefix(f, "#"):
		case !strings.HasPrefix(l, " ") && strings.HasPrefix(f, "@"):
			cur = strings.Fields(f)[0]
			groups[cur] = nil
		case cur != "":
			groups[cur] = append(groups[cur], strings.Fields(f)[0])
		}
	}
	if len(groups["@system-service"]) == 0 {
		t.Fatalf("no @system-service in systemd-analyze syscall-filter:\n%s", out)
	}
	return groups
}

// straceCall is the system call of one strace -f line: "PID name(" or "PID <... name resumed>".
var straceCall = regexp.MustCompile(`^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)`)

// The unit's SystemCallFilter= (issue 16: "check every hardening option against what vigil needs
// at run time") lets vigil do its work: a daemon under the unit's capabilities, with what calls the
// rarer system calls (a VRRP master adding its VIP on a macvlan, sysctls, GARP on a packet socket,
// a tracked script and notify commands run as nobody, a notify FIFO given a group, the process
// tracker's connector socket, an inotify-tracked file, gossip, the metrics listener, the admin
// socket serving status and a reload, a clean stop) is traced with strace; every system call it
// and its children make after vigil's exec must be in the filter's set. systemd would answer any
// other with EPERM (SystemCallErrorNumber=), which is a feature failing in the field.
func TestSyscallsInFilter(t *testing.T) {
	requireRoot(t)
	requireTools(t, map[string]string{"strace": "strace", "systemd-analyze": "systemd"})
	allowed := unitSyscallFilter(t, filepath.Join(moduleRoot(t), "deploy/systemd/vigil.service"))

	bin := vigilBinary(t)
	lab := netlab.NewForTest(t, "vgdb")
	n1, err := lab.AddNode("n1", netip.MustParsePrefix("192.0.2.11/24"))
	if err != nil {
		t.Fatal(err)
	}
	dir := lab.Dir()
	cfg := filepath.Join(dir, "vigil.yaml")
	sock := filepath.Join(dir, "admin.sock")
	trace := filepath.Join(dir, "strace.out")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `node:
  name: n1
vrrp:
  notify_fifo: %[1]s/notify.fifo
  notify_fifo_group: nogroup
  scripts:
    - {name: chk, command: [/bin/true], interval: 200ms, user: nobody}
  processes:
    - {name: self, process: vigil, weight: -10}
  files:
    - {name: maint, path: %[1]s/maint, weight: 1}
  instances:
    - name: web
      interface: eth0
      vrid: 51
      priority: 150
      advert_interval: 100ms
      vips: [192.0.2.100/24]
      vmac: true
      track: {scripts: [chk], processes: [self], files: [maint]}
      notify: {master: [/bin/true], backup: [/bin/true], user: nobody}
gossip:
  bind: 192.0.2.11:7946
  insecure: true
telemetry:
  listen: 192.0.2.11:9730
`, dir), 0o644); err != nil {
		t.Fatal(err)
	}
	priv := lab.DaemonPrivileges()
	if priv == nil {
		t.Fatal("the lab has no daemon privileges (the unit's)")
	}
	sp, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux): %v", err)
	}
	// strace as root traces setpriv, which drops to the unit's capabilities and execs vigil
	// (systemd does that part before the filter applies: only what follows vigil's exec counts).
	args := []string{"-f", "-qq", "-e", "signal=none", "-o", trace, "--", sp}
	args = append(append(args, priv.SetprivArgs()...), "--", bin, "run", "--config", cfg, "--admin-socket", sock)
	p, err := n1.StartWith(netlab.StartOptions{FullPrivileges: true}, "strace", args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(5 * time.Second) })

	// The daemon's pid: strace's child, once it is vigil.
	var pid int
	if err := netlab.Poll(10*time.Second, 50*time.Millisecond, func() (bool, error) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.Pid(), p.Pid()))
		if err != nil {
			return false, err
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return false, nil
		}
		pid, _ = strconv.Atoi(f[0])
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		return filepath.Base(exe) == filepath.Base(bin), nil
	}); err != nil {
		t.Fatalf("vigil did not start under strace: %v\n%s", err, p.Log())
	}
	if err := n1.WaitAddr("vrrp.51", netip.MustParseAddr("192.0.2.100"), true, 15*time.Second); err != nil {
		t.Fatalf("no master with its VIP on vrrp.51: %v\n%s", err, p.Log())
	}
	// The notify FIFO has a reader, so events are written to it.
	fifo, err := os.OpenFile(filepath.Join(dir, "notify.fifo"), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("notify FIFO: %v", err)
	}
	defer fifo.Close()
	if err := os.WriteFile(filepath.Join(dir, "maint"), []byte("5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The unit runs these under the same filter too (ExecStartPre=, ExecReload=).
	var traces []string
	for i, c := range [][]string{{"config", "validate", "--config", cfg}, {"status", "--socket", sock}, {"config", "reload", "--socket", sock}} {
		tr := filepath.Join(dir, fmt.Sprintf("strace-cli-%d.out", i))
		traces = append(traces, tr)
		args := append([]string{"-f", "-qq", "-e", "signal=none", "-o", tr, "--", bin}, c...)
		if out, err := exec.CommandContext(ctx, "strace", args...).CombinedOutput(); err != nil {
			t.Fatalf("vigil %s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	if _, err := n1.HTTPGet(ctx, "http://192.0.2.11:9730/metrics"); err != nil {
		t.Fatalf("metrics: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // a few script runs after the reload
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("vigil did not stop on SIGTERM\n%s", p.Log())
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("vigil under strace: %v\n%s", err, p.Log())
	}

	seen := map[string]int{}
	for _, tr := range append(traces, trace) {
		tracedCalls(t, tr, bin, seen)
	}
	var outside []string
	for name := range seen {
		if !allowed[name] {
			outside = append(outside, fmt.Sprintf("%s (%d calls)", name, seen[name]))
		}
	}
	slices.Sort(outside)
	t.Logf("%d distinct system calls traced, the filter allows %d", len(seen), len(allowed))
	if len(outside) > 0 {
		t.Errorf("system calls outside the unit's SystemCallFilter=: %s", strings.Join(outside, ", "))
	}
}

// tracedCalls adds to seen the system calls of an strace -f output that follow bin's exec.
func tracedCalls(t *testing.T, trace, bin string, seen map[string]int) {
	t.Helper()
	f, err := os.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	execed := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !execed {
			execed = strings.Contains(l, "execve(\""+bin+"\"") && strings.HasSuffix(l, "= 0")
			continue
		}
		if m := straceCall.FindStringSubmatch(l); m != nil {
			seen[m[1]]++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if !execed {
		t.Fatalf("%s: no execve of %s", trace, bin)
	}
}
