package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A check script whose result comes from a state file the test flips.
func checkScript(t *testing.T, c *cluster, name string) (path, state string) {
	t.Helper()
	state = filepath.Join(c.lab.Dir(), name+".state")
	path = filepath.Join(c.lab.Dir(), name+".sh")
	body := fmt.Sprintf("#!/bin/sh\ntest \"$(cat %s 2>/dev/null)\" = ok\n", state)
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	setState(t, state, "ok")
	return path, state
}

func setState(t *testing.T, path, v string) {
	t.Helper()
	// Write and rename: the script never reads a half-written file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func waitLog(t *testing.T, c *cluster, node, substr string, timeout time.Duration) {
	t.Helper()
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(c.procs[node].Log(), substr) {
			return
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s never logged %q:\n%s", node, substr, c.procs[node].LogLines(30))
		}
	}
}

// Tracker scripts (keepalived vrrp_script): a weighted failure lowers the
// priority below the peer's and it preempts; recovery preempts back. A
// weight-0 failure puts the instance in FAULT (no VIP, priority 0 sent).
//
// The scripts run every 250 ms with the default timeout (the interval): a
// 50 ms budget for fork+exec timed out on a loaded CI machine and faulted
// the instance for the wrong reason.
func TestTrackScript(t *testing.T) {
	c := newCluster(t, 2)
	chk, state := checkScript(t, c, "chk")
	hard, hardState := checkScript(t, c, "hard")
	cfg := func(name string, prio int, track bool) string {
		tr := ""
		if track {
			tr = "      track: { scripts: [chk, hard] }\n"
		}
		return fmt.Sprintf(`node: { name: %s }
telemetry: { listen: "" }
vrrp:
  scripts:
    - { name: chk, command: [%s], interval: 250ms, weight: -60, fall: 2, rise: 2 }
    - { name: hard, command: [%s], interval: 250ms }
  instances:
    - name: web
      interface: eth0
      vrid: 51
      priority: %d
      advert_interval: 100ms
      vips: [192.0.2.100/24]
%s`, name, chk, hard, prio, tr)
	}
	startYAML(t, c, "n1", cfg("n1", 150, true))
	startYAML(t, c, "n2", cfg("n2", 100, false))
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 3*iv)

	setState(t, state, "fail") // 150 - 60 = 90 < 100: n2 preempts
	c.waitHolder(vip4.Addr(), "n2", 3*time.Second, 3*iv)
	waitLog(t, c, "n1", `msg="effective priority changed" vrrp_instance=web from=150 to=90`, time.Second)
	// vigil status shows the tracker and the effective priority.
	out, err := exec.Command(c.bin, "status", "--socket", filepath.Join(c.lab.Dir(), "n1-admin.sock")).CombinedOutput()
	if err != nil {
		t.Fatalf("vigil status: %v\n%s", err, out)
	}
	status := strings.Join(strings.Fields(string(out)), " ")
	for _, want := range []string{"150/90", "web script chk down -60", "web script hard up 0"} {
		if !strings.Contains(status, want) {
			t.Fatalf("status lacks %q:\n%s", want, out)
		}
	}
	setState(t, state, "ok")
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 3*iv)

	setState(t, hardState, "fail") // weight 0: FAULT
	c.waitHolder(vip4.Addr(), "n2", 3*time.Second, 3*iv)
	waitLog(t, c, "n1", "to=fault reason=tracker_fault", time.Second)
	setState(t, hardState, "ok")
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 3*iv)
	waitLog(t, c, "n1", "from=fault to=backup reason=fault_cleared", time.Second)
}

// track_file: the file's value × weight moves the priority.
func TestTrackFile(t *testing.T) {
	c := newCluster(t, 2)
	file := filepath.Join(c.lab.Dir(), "prio")
	setState(t, file, "0")
	cfg := func(name string, prio int, track string) string {
		return fmt.Sprintf(`node: { name: %s }
telemetry: { listen: "" }
vrrp:
  files: [{ name: prio, path: %s, weight: -1 }]
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: %d, advert_interval: 100ms, vips: [192.0.2.100/24]%s }
`, name, file, prio, track)
	}
	startYAML(t, c, "n1", cfg("n1", 150, ", track: { files: [prio] }"))
	startYAML(t, c, "n2", cfg("n2", 100, ""))
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 3*iv)
	setState(t, file, "80") // 150 - 80 = 70
	c.waitHolder(vip4.Addr(), "n2", 3*time.Second, 3*iv)
	waitLog(t, c, "n1", "from=150 to=70", time.Second)
	setState(t, file, "0")
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 3*iv)
}

// vrrp_track_process: the instance is in FAULT while the process is absent.
func TestTrackProcess(t *testing.T) {
	c := newCluster(t, 2)
	// A process with a unique name (comm): a copy of sleep.
	bin := filepath.Join(c.lab.Dir(), "vge2proc")
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "1000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	proc := start()
	cfg := func(name string, prio int, track string) string {
		return fmt.Sprintf(`node: { name: %s }
telemetry: { listen: "" }
vrrp:
  processes: [{ name: app, process: vge2proc }]
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: %d, advert_interval: 100ms, vips: [192.0.2.100/24]%s }
`, name, prio, track)
	}
	startYAML(t, c, "n1", cfg("n1", 150, ", track: { processes: [app] }"))
	startYAML(t, c, "n2", cfg("n2", 100, ""))
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 3*iv)
	proc.Process.Kill()
	proc.Wait()
	c.waitHolder(vip4.Addr(), "n2", 3*time.Second, 3*iv)
	waitLog(t, c, "n1", "to=fault reason=tracker_fault", time.Second)
	start()
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 3*iv)
}

// vrrp_sync_group: two instances move together. A weight-0 tracker failing
// on one member faults the whole group on that node, so the peer takes
// both VIPs; recovery brings both back.
func TestSyncGroup(t *testing.T) {
	c := newCluster(t, 2)
	chk, state := checkScript(t, c, "grp")
	vipB := "192.0.2.101"
	cfg := func(name string, prio int, track bool) string {
		tr := ""
		if track {
			tr = ", track: { scripts: [grp] }"
		}
		return fmt.Sprintf(`node: { name: %s }
telemetry: { listen: "" }
vrrp:
  scripts: [{ name: grp, command: [%s], interval: 250ms }]
  sync_groups: [{ name: edge, instances: [web, db] }]
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: %d, advert_interval: 100ms, vips: [192.0.2.100/24]%s }
    - { name: db, interface: eth0, vrid: 52, priority: %d, advert_interval: 100ms, vips: [%s/24] }
`, name, chk, prio, tr, prio, vipB)
	}
	startYAML(t, c, "n1", cfg("n1", 150, true))
	startYAML(t, c, "n2", cfg("n2", 100, false))
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 0)
	b := netip.MustParseAddr(vipB)
	c.waitHolder(b, "n1", time.Second, 3*iv)
	setState(t, state, "fail")
	c.waitHolder(vip4.Addr(), "n2", 3*time.Second, 0)
	c.waitHolder(b, "n2", time.Second, 3*iv)
	waitLog(t, c, "n1", "vrrp_instance=db vrid=52 device=eth0 from=master to=fault reason=sync_group", time.Second)
	waitLog(t, c, "n1", `msg="sync group state change" sync_group=edge from=master to=fault`, time.Second)
	setState(t, state, "ok")
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 0)
	c.waitHolder(b, "n1", time.Second, 3*iv)
}

// Notify scripts run in event order even when one is slow, without
// delaying the protocol, and the FIFO carries keepalived's lines in order.
func TestNotifyOrderAndFIFO(t *testing.T) {
	c := newCluster(t, 2)
	out := filepath.Join(c.lab.Dir(), "notify.log")
	script := filepath.Join(c.lab.Dir(), "notify.sh")
	// The first call sleeps 1 s; each call appends its arguments.
	body := fmt.Sprintf("#!/bin/sh\nif [ ! -e %[1]s ]; then sleep 1; fi\necho \"$VIGIL_EVENT_SEQ $*\" >> %[1]s\n", out)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(c.lab.Dir(), "vigil.fifo")
	cfg := func(name string, prio int, notify bool) string {
		extra, top := "", ""
		if notify {
			extra = fmt.Sprintf(", notify: { all: [%s] }", script)
			top = fmt.Sprintf("  notify_fifo: %s\n", fifo)
		}
		return fmt.Sprintf(`node: { name: %s }
telemetry: { listen: "" }
vrrp:
%s  instances:
    - { name: web, interface: eth0, vrid: 51, priority: %d, advert_interval: 100ms, vips: [192.0.2.100/24]%s }
`, name, top, prio, extra)
	}
	startYAML(t, c, "n1", cfg("n1", 150, true))
	// Read the FIFO as keepalived's notify readers do.
	lines := make(chan string, 100)
	go func() {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(fifo); err == nil {
				break
			}
		}
		f, err := os.Open(fifo)
		if err != nil {
			return
		}
		defer f.Close()
		buf := make([]byte, 4096)
		var acc string
		for {
			n, err := f.Read(buf)
			acc += string(buf[:n])
			for i := strings.IndexByte(acc, '\n'); i >= 0; i = strings.IndexByte(acc, '\n') {
				lines <- acc[:i]
				acc = acc[i+1:]
			}
			if err != nil {
				return
			}
		}
	}()
	startYAML(t, c, "n2", cfg("n2", 100, false))
	// Startup → backup → master within Master_Down_Interval, even though the
	// first notify script sleeps 1 s.
	took := c.waitHolder(vip4.Addr(), "n1", mdi(3, 150, iv)+500*time.Millisecond, 0)
	t.Logf("n1 master %s after start (the first notify script sleeps 1 s)", took)
	c.stop("n1") // master → init (STOP)
	c.waitHolder(vip4.Addr(), "n2", 2*time.Second, 0)

	var got []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && len(got) < 3; time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(out)
		got = strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	want := []string{"1 INSTANCE web BACKUP 150", "2 INSTANCE web MASTER 150", "3 INSTANCE web STOP 150"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("notify calls %q, want %q", got, want)
	}
	var fl []string
	for timeout := time.After(3 * time.Second); len(fl) < 3; {
		select {
		case l := <-lines:
			fl = append(fl, l)
		case <-timeout:
			t.Fatalf("FIFO lines %q, want 3", fl)
		}
	}
	if w := []string{`INSTANCE "web" BACKUP 150`, `INSTANCE "web" MASTER 150`, `INSTANCE "web" STOP 150`}; strings.Join(fl, "|") != strings.Join(w, "|") {
		t.Fatalf("FIFO lines %q, want %q", fl, w)
	}
}

// keepalived use_vmac: each node runs the instance on a macvlan with the
// virtual MAC 00:00:5e:00:01:VRID; adverts and the VIP live there, so after
// a takeover hosts' ARP caches need no update.
func TestVMAC(t *testing.T) {
	c := newCluster(t, 2)
	cfg := func(name string, prio int) string {
		return fmt.Sprintf(`node: { name: %s }
telemetry: { listen: "" }
vrrp:
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: %d, advert_interval: 100ms, vmac: true, vips: [192.0.2.100/24] }
`, name, prio)
	}
	startYAML(t, c, "n1", cfg("n1", 150))
	startYAML(t, c, "n2", cfg("n2", 100))
	vmacDev := "vrrp.51"
	if err := c.node("n1").WaitAddr(vmacDev, vip4.Addr(), true, 3*time.Second); err != nil {
		t.Fatalf("VIP not on %s: %v\n%s", vmacDev, err, c.procs["n1"].LogLines(20))
	}
	mac, err := c.node("n1").MAC(vmacDev)
	if err != nil || mac.String() != "00:00:5e:00:01:33" {
		t.Fatalf("%s MAC %v (%v), want 00:00:5e:00:01:33", vmacDev, mac, err)
	}
	time.Sleep(5 * iv)
	var seen int
	for _, f := range c.adverts() {
		if f.Src == netip.MustParseAddr("192.0.2.11") {
			seen++
			if f.SrcMAC.String() != "00:00:5e:00:01:33" {
				t.Fatalf("advert from n1 with source MAC %s", f.SrcMAC)
			}
		}
	}
	if seen == 0 {
		t.Fatal("no advert from n1")
	}
	if ok, _ := c.node("n2").HasAddr(vmacDev, vip4.Addr()); ok {
		t.Fatal("the backup holds the VIP on its vmac")
	}
	c.stop("n1")
	if err := c.node("n2").WaitAddr(vmacDev, vip4.Addr(), true, 2*time.Second); err != nil {
		t.Fatalf("n2 did not take over on its vmac: %v", err)
	}
	// The stopped node removed its vmac: it must not answer for the vMAC.
	if out, err := c.node("n1").IP("link", "show", "dev", vmacDev); err == nil {
		t.Fatalf("%s still exists on the stopped node:\n%s", vmacDev, out)
	}
}

// track_interface with a weight: another interface going down lowers the
// priority (here below the peer's), coming back restores it.
func TestTrackInterface(t *testing.T) {
	c := newCluster(t, 2)
	n1 := c.node("n1")
	if _, err := n1.IP("link", "add", "name", "trk0", "type", "veth", "peer", "name", "trk1"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"trk0", "trk1"} {
		if _, err := n1.IP("link", "set", "dev", d, "up"); err != nil {
			t.Fatal(err)
		}
	}
	cfg := func(name string, prio int, track string) string {
		return fmt.Sprintf(`node: { name: %s }
telemetry: { listen: "" }
vrrp:
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: %d, advert_interval: 100ms, vips: [192.0.2.100/24]%s }
`, name, prio, track)
	}
	startYAML(t, c, "n1", cfg("n1", 150, ", track: { interfaces: [{ name: trk0, weight: -60 }] }"))
	startYAML(t, c, "n2", cfg("n2", 100, ""))
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 3*iv)
	if _, err := n1.IP("link", "set", "dev", "trk1", "down"); err != nil { // trk0 loses carrier
		t.Fatal(err)
	}
	c.waitHolder(vip4.Addr(), "n2", 3*time.Second, 3*iv)
	waitLog(t, c, "n1", "from=150 to=90", time.Second)
	if _, err := n1.IP("link", "set", "dev", "trk1", "up"); err != nil {
		t.Fatal(err)
	}
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 3*iv)
}
