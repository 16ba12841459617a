package deb

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vigil/test/netlab"
)

// container is a Debian 12 booted by systemd-nspawn in a lab node's network namespace.
type container struct {
	t    *testing.T
	cmd  *exec.Cmd
	log  string // the console's output
	init int    // systemd's pid, in this process's pid namespace
}

func (c *container) console() string {
	b, _ := os.ReadFile(c.log)
	return string(b)
}

// sh runs a command inside the container (all its namespaces) and returns its output.
func (c *container) sh(args ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.init), "-a"}, args...)...).CombinedOutput()
	return string(out), err
}

func (c *container) must(args ...string) string {
	c.t.Helper()
	out, err := c.sh(args...)
	if err != nil {
		c.t.Fatalf("in the container: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// show is one property of a unit, as systemctl show -p NAME --value prints it.
func (c *container) show(unit, prop string) string {
	c.t.Helper()
	return strings.TrimSpace(c.must("systemctl", "show", "-p", prop, "--value", unit))
}

// The package's unit starts and works under a real systemd (issue 16: "the package installs,
// starts under systemd's rules"): a Debian 12 root file system (test/deb/rootfs.sh, cached) with
// the package installed by dpkg boots with systemd-nspawn inside a lab node's network namespace,
// with /etc/vigil/vigil.yaml written as an operator would. Then: vigil.service is active (so
// ExecStartPre's validation passed and READY=1 came: Type=notify), its process has exactly the
// unit's capabilities, no_new_privs and a seccomp filter, the watchdog is armed, the node becomes
// VRRP master with its VIP on the lab's segment (raw socket, netlink, GARP all under the filter),
// the watchdog keeps a live daemon and restarts a hung one, `systemctl reload` succeeds,
// `systemctl stop` removes the VIP, and the journal has no "operation not permitted".
func TestStartsUnderSystemd(t *testing.T) {
	requireRoot(t)
	requireTools(t, map[string]string{"systemd-nspawn": "systemd-container", "mmdebstrap": "mmdebstrap", "nsenter": "util-linux"})
	deb := debPackage(t)
	priv, err := netlab.UnitPrivileges()
	if err != nil {
		t.Fatal(err)
	}
	wantCaps, err := netlab.CapMask(priv.Bounding)
	if err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command("bash", filepath.Join(moduleRoot(t), "test/deb/rootfs.sh")).Output()
	if err != nil {
		t.Fatalf("test/deb/rootfs.sh: %v", err)
	}
	cached := strings.TrimSpace(string(out))
	root := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("cp", "-a", "--reflink=auto", cached, root).CombinedOutput(); err != nil {
		t.Fatalf("copying the root file system: %v\n%s", err, out)
	}
	if out, err := exec.Command("cp", deb, filepath.Join(root, "tmp/vigil.deb")).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// No systemd runs in the chroot, so the maintainer scripts enable the unit but start nothing.
	if out, err := exec.Command("chroot", root, "dpkg", "-i", "/tmp/vigil.deb").CombinedOutput(); err != nil {
		t.Fatalf("dpkg -i in the root file system: %v\n%s", err, out)
	}

	lab := netlab.NewForTest(t, "vgdn")
	n1, err := lab.AddNode("n1", netip.MustParsePrefix("192.0.2.11/24"))
	if err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParseAddr("192.0.2.100")
	if err := os.WriteFile(filepath.Join(root, "etc/vigil/vigil.yaml"), []byte(`node:
  name: n1
vrrp:
  instances:
    - name: web
      interface: `+n1.Dev+`
      vrid: 51
      priority: 150
      advert_interval: 100ms
      vips: [192.0.2.100/24]
`), 0o640); err != nil {
		t.Fatal(err)
	}

	c := &container{t: t, log: filepath.Join(t.TempDir(), "console.log")}
	console, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	defer console.Close() // the child has its own copy
	c.cmd = exec.Command("systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--boot",
		"--directory", root, "--machine", lab.Prefix+"n1",
		"--network-namespace-path", "/run/netns/"+n1.NS,
		// nspawn keeps CAP_NET_ADMIN only for a network of the container's own; this one is
		// the lab node's, which the container may configure as a director does its host's.
		"--capability=CAP_NET_ADMIN")
	c.cmd.Stdout, c.cmd.Stderr = console, console
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("systemd-nspawn: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// SIGTERM: systemd-nspawn shuts the container down cleanly.
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-done
			t.Errorf("the container did not shut down in 30 s; killed")
		}
		if t.Failed() {
			t.Logf("container console:\n%s", c.console())
		}
	})

	if err := netlab.Poll(30*time.Second, 100*time.Millisecond, func() (bool, error) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", c.cmd.Process.Pid, c.cmd.Process.Pid))
		if err != nil {
			return false, err
		}
		for _, f := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(f)
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "systemd" {
				c.init = pid
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatalf("no systemd in the container: %v\n%s", err, c.console())
	}
	var state string
	if err := netlab.Poll(60*time.Second, 250*time.Millisecond, func() (bool, error) {
		out, _ := c.sh("systemctl", "is-active", "vigil.service")
		state = strings.TrimSpace(out)
		return state == "active" || state == "failed", nil
	}); err != nil || state != "active" {
		out, _ := c.sh("journalctl", "--no-pager", "-u", "vigil.service")
		t.Fatalf("vigil.service is %q (%v)\n%s", state, err, out)
	}
	start := time.Now()

	pid := c.show("vigil.service", "MainPID")
	status := c.must("cat", "/proc/"+pid+"/status")
	for _, want := range []string{
		fmt.Sprintf("CapBnd:\t%016x", wantCaps),
		fmt.Sprintf("CapEff:\t%016x", wantCaps),
		"NoNewPrivs:\t1",
		"Seccomp:\t2", // a filter: SystemCallFilter=
	} {
		if !strings.Contains(status, want+"\n") {
			t.Errorf("vigil's /proc/%s/status lacks %q", pid, want)
		}
	}
	if got := c.show("vigil.service", "WatchdogUSec"); got != "30s" {
		t.Errorf("WatchdogUSec=%s, want 30s", got)
	}
	if err := n1.WaitAddr(n1.Dev, vip, true, 15*time.Second); err != nil {
		t.Fatalf("no VIP %v on the node: %v\n%s", vip, err, c.must("journalctl", "--no-pager", "-u", "vigil.service"))
	}
	t.Logf("master with its VIP %v after vigil.service became active", time.Since(start).Round(time.Millisecond))

	// The watchdog, shortened by a drop-in so the test does not wait 30 s: vigil's WATCHDOG=1
	// pings keep a live daemon running through several periods, and a hung one (SIGSTOP: no
	// ping) is killed and restarted (issue 16: "so a hung daemon is restarted").
	dropIn := filepath.Join(root, "etc/systemd/system/vigil.service.d")
	if err := os.MkdirAll(dropIn, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dropIn, "test-watchdog.conf"),
		[]byte("[Service]\nWatchdogSec=2s\nTimeoutAbortSec=2s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.must("systemctl", "daemon-reload")
	c.must("systemctl", "restart", "vigil.service")
	pid = c.show("vigil.service", "MainPID")
	time.Sleep(5 * time.Second) // 2.5 watchdog periods
	if got, n := c.show("vigil.service", "MainPID"), c.show("vigil.service", "NRestarts"); got != pid || n != "0" {
		t.Fatalf("a live vigil was restarted by the 2 s watchdog (MainPID %s -> %s, NRestarts %s): its pings do not arrive\n%s",
			pid, got, n, c.must("journalctl", "--no-pager", "-o", "cat", "-u", "vigil.service"))
	}
	c.must("systemctl", "kill", "--kill-whom=main", "--signal=SIGSTOP", "vigil.service")
	if err := netlab.Poll(20*time.Second, 200*time.Millisecond, func() (bool, error) {
		out, _ := c.sh("systemctl", "show", "-p", "NRestarts", "-p", "ActiveState", "-p", "MainPID", "vigil.service")
		return strings.Contains(out, "NRestarts=1\n") && strings.Contains(out, "ActiveState=active\n") &&
			!strings.Contains(out, "MainPID="+pid+"\n"), nil
	}); err != nil {
		t.Fatalf("a hung vigil was not restarted by the watchdog: %v\n%s", err, c.must("journalctl", "--no-pager", "-o", "cat", "-u", "vigil.service"))
	}
	if !strings.Contains(c.must("journalctl", "--no-pager", "-u", "vigil.service"), "Watchdog timeout") {
		t.Error("the restart was not the watchdog's (no \"Watchdog timeout\" in the journal)")
	}
	if err := n1.WaitAddr(n1.Dev, vip, true, 15*time.Second); err != nil {
		t.Fatalf("the restarted vigil has no VIP: %v", err)
	}
	c.must("systemctl", "reload", "vigil.service")
	c.must("systemctl", "stop", "vigil.service")
	if has, err := n1.HasAddr(n1.Dev, vip); err != nil || has {
		t.Errorf("after systemctl stop: VIP still there (%v)", err)
	}
	journal := c.must("journalctl", "--no-pager", "-o", "cat", "-u", "vigil.service")
	if !strings.Contains(journal, "vigil stopped") {
		t.Errorf("no clean stop in the journal:\n%s", journal)
	}
	if strings.Contains(strings.ToLower(journal), "operation not permitted") {
		t.Errorf("the journal has an EPERM (the sandbox denied something):\n%s", journal)
	}
	if got := c.show("vigil.service", "Result"); got != "success" {
		t.Errorf("vigil.service Result=%s after stop, want success\n%s", got, journal)
	}
}
