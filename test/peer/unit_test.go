package peer

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vigil/test/netlab"
)

// procsWithArgs returns the pids whose command line is exactly args.
func procsWithArgs(t *testing.T, args ...string) []int {
	t.Helper()
	want := strings.Join(args, "\x00") + "\x00"
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && string(b) == want {
			pids = append(pids, pid)
		}
	}
	return pids
}

func uidOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			return strings.Fields(v)[0]
		}
	}
	return ""
}

// The documented features run under the unit's privileges (StartVigilYAML in a test lab runs
// vigil under setpriv with the unit's capability sets): a tracked script with user: nobody
// runs (its instance becomes master rather than staying in FAULT), a script as nobody that
// outlives its timeout is killed, a notify command runs as nobody, and the instance works on a
// virtual MAC (macvlan and its sysctls without CAP_SYS_ADMIN).
func TestUnitFeatures(t *testing.T) {
	lab := netlab.NewForTest(t, "vgpr")
	bin, err := VigilBinary()
	if err != nil {
		t.Fatal(err)
	}
	n1, err := lab.AddNode("n1", netip.MustParsePrefix("192.0.2.11/24"))
	if err != nil {
		t.Fatal(err)
	}
	// A duration no other process is likely to sleep, to find the script's processes.
	hang := fmt.Sprintf("31.%06d", os.Getpid()%1000000)
	// The lab's directory is root's alone; nobody writes here.
	open, err := os.MkdirTemp("", "vigil-unit-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(open)
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	notified := filepath.Join(open, "notified")
	yaml := fmt.Sprintf(`node: { name: n1 }
telemetry: { listen: "" }
vrrp:
  scripts:
    - { name: up, command: [/bin/true], interval: 200ms, user: nobody }
    - { name: hang, command: [/bin/sleep, "%s"], interval: 300ms, timeout: 200ms, weight: -10, user: nobody }
  instances:
    - name: web
      interface: eth0
      vrid: 51
      priority: 150
      advert_interval: 100ms
      vmac: true
      vips: [192.0.2.100/24]
      track: { scripts: [up, hang] }
      notify: { master: [/usr/bin/touch, %s], user: nobody }
`, hang, notified)
	v, err := StartVigilYAML(n1, bin, yaml)
	if err != nil {
		t.Fatal(err)
	}
	if err := n1.WaitAddr("vrrp.51", netip.MustParseAddr("192.0.2.100"), true, 5*time.Second); err != nil {
		t.Fatalf("the instance never became master on its vmac: %v\n%s", err, v.LogLines(40))
	}
	var first []int
	for deadline := time.Now().Add(3 * time.Second); len(first) == 0; time.Sleep(20 * time.Millisecond) {
		if first = procsWithArgs(t, "/bin/sleep", hang); time.Now().After(deadline) {
			t.Fatalf("the hang script never ran:\n%s", v.LogLines(40))
		}
	}
	for _, pid := range first {
		if u := uidOf(pid); u != "" && u != "65534" {
			t.Fatalf("the hang script runs as uid %s, want 65534 (nobody)", u)
		}
	}
	// Killed at its 200 ms timeout: a second later none of them is left.
	time.Sleep(time.Second)
	for _, pid := range first {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(b), hang) {
			t.Fatalf("the script as nobody (pid %d) outlived its 200 ms timeout by a second:\n%s", pid, v.LogLines(40))
		}
	}
	if fi, err := os.Stat(notified); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Fatalf("the notify command did not run as nobody: %v\n%s", err, v.LogLines(40))
	}
	if log := v.Log(); strings.Contains(log, "operation not permitted") {
		t.Fatalf("something was not permitted:\n%s", log)
	}
	if err := v.Stop(5 * time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, v.LogLines(40))
	}
}
