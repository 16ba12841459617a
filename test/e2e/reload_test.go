package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A 3-node cluster reloads with added, removed and changed instances while
// a capture shows no extra state change, and no advert gap, for the
// untouched instance (issue 3, live reload).
func TestReloadWithoutDisturbance(t *testing.T) {
	c := newCluster(t, 3)
	prios := map[string]int{"n1": 150, "n2": 100, "n3": 50}
	type inst struct {
		name string
		vrid int
		vips string
		prio int // 0: the node's
	}
	render := func(node string, insts []inst) string {
		var b strings.Builder
		fmt.Fprintf(&b, "node: { name: %s }\ntelemetry: { listen: \"\" }\nvrrp:\n  instances:\n", node)
		for _, in := range insts {
			p := prios[node]
			if in.prio != 0 {
				p = in.prio
			}
			fmt.Fprintf(&b, "    - { name: %s, interface: eth0, vrid: %d, priority: %d, advert_interval: 100ms, vips: [%s] }\n",
				in.name, in.vrid, p, in.vips)
		}
		return b.String()
	}
	before := []inst{
		{"keep", 51, "192.0.2.101/24", 0},
		{"gone", 52, "192.0.2.102/24", 0},
		{"vips", 53, "192.0.2.103/24", 0},
		{"proto", 54, "192.0.2.104/24", 0},
	}
	paths := map[string]string{}
	for _, n := range []string{"n1", "n2", "n3"} {
		paths[n] = filepath.Join(c.lab.Dir(), n+"-reload.yaml")
		if err := os.WriteFile(paths[n], []byte(render(n, before)), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := c.node(n).Start(c.bin, "run", "--config", paths[n], "--admin-socket", filepath.Join(c.lab.Dir(), n+".sock"))
		if err != nil {
			t.Fatal(err)
		}
		c.procs[n] = p
	}
	for _, v := range []string{"192.0.2.101", "192.0.2.102", "192.0.2.103", "192.0.2.104"} {
		c.waitHolder(netip.MustParseAddr(v), "n1", 3*time.Second, 0)
	}
	time.Sleep(3 * iv)

	after := []inst{
		{"keep", 51, "192.0.2.101/24", 0},
		{"vips2", 53, "192.0.2.103/24, 192.0.2.113/24", 0}, // renamed, VIP added: in place
		{"proto", 54, "192.0.2.104/24", 0},
		{"new", 55, "192.0.2.105/24", 0},
	}
	mark := time.Now()
	for _, n := range []string{"n1", "n2", "n3"} {
		insts := after
		if n == "n3" {
			insts = append([]inst(nil), after...)
			insts[2].prio = 60 // a protocol change on a backup: restarted there
		}
		if err := os.WriteFile(paths[n], []byte(render(n, insts)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Two nodes by SIGHUP, one through the CLI and the admin API.
	for _, n := range []string{"n1", "n2"} {
		if err := c.procs[n].Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(c.bin, "config", "reload", "--socket", filepath.Join(c.lab.Dir(), "n3.sock")).CombinedOutput()
	if err != nil {
		t.Fatalf("vigil config reload: %v\n%s", err, out)
	}
	report := strings.Join(strings.Fields(string(out)), " ")
	for _, want := range []string{"added: new", "removed: gone", "restarted: proto", "updated in place: vips2", "unchanged: keep"} {
		if !strings.Contains(report, want) {
			t.Fatalf("reload report lacks %q:\n%s", want, out)
		}
	}
	for _, n := range []string{"n1", "n2"} {
		waitLog(t, c, n, `msg="configuration reloaded"`, 2*time.Second)
	}
	c.waitHolder(netip.MustParseAddr("192.0.2.105"), "n1", 3*time.Second, 0)  // added
	c.waitHolder(netip.MustParseAddr("192.0.2.113"), "n1", time.Second, 0)    // VIP added in place
	c.waitHolder(netip.MustParseAddr("192.0.2.102"), "", time.Second, 0)      // removed everywhere
	c.waitHolder(netip.MustParseAddr("192.0.2.101"), "n1", time.Second, 5*iv) // untouched
	c.waitHolder(netip.MustParseAddr("192.0.2.103"), "n1", time.Second, 0)    // kept across the rename
	c.waitHolder(netip.MustParseAddr("192.0.2.104"), "n1", time.Second, 0)
	time.Sleep(3 * iv)

	// The untouched instance: no state change after the reload on any node.
	// Its last one before the reload ends the start-up election (two
	// backups whose down timers expire together may both be master for a
	// few ms, which is RFC behaviour and not the reload's doing).
	from := mark.Add(-time.Second)
	for _, n := range []string{"n1", "n2", "n3"} {
		for _, line := range strings.Split(c.procs[n].Log(), "\n") {
			if !strings.Contains(line, `msg="vrrp state change"`) || !strings.Contains(line, "vrrp_instance=keep ") ||
				!strings.Contains(line, "reason=") {
				continue
			}
			switch at := logTime(line); {
			case at.After(mark):
				t.Errorf("%s: state change of the untouched instance after the reload: %s", n, line)
			case at.After(from):
				from = at.Add(iv / 2) // adverts sent before it settled
			}
		}
	}
	// And on the wire: VRID 51 adverts only from n1, at its pace, across the
	// reload (no gap beyond 1.5 intervals, no other sender).
	var last time.Time
	for _, f := range c.adverts() {
		if f.VRID != 51 || f.Time.Before(from) {
			continue
		}
		if f.Src != netip.MustParseAddr("192.0.2.11") || f.Priority != 150 {
			t.Fatalf("VRID 51 advert from %s at priority %d around the reload", f.Src, f.Priority)
		}
		if !last.IsZero() && f.Time.Sub(last) > iv*3/2 {
			t.Fatalf("VRID 51 advert gap of %s around the reload", f.Time.Sub(last))
		}
		last = f.Time
	}
	// The removed instance's master resigned with priority 0.
	var resigned bool
	for _, f := range c.adverts() {
		if f.VRID == 52 && f.Priority == 0 && f.Src == netip.MustParseAddr("192.0.2.11") {
			resigned = true
		}
	}
	if !resigned {
		t.Fatal("no priority-0 advert for the removed instance")
	}
	// An invalid file is rejected, every problem printed, nothing applied.
	if err := os.WriteFile(paths["n3"], []byte("vrrp: { instances: [ { name: x, interface: eth0, vrid: 300, vips: [192.0.2.200] } ] }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(c.bin, "config", "reload", "--socket", filepath.Join(c.lab.Dir(), "n3.sock")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "vrrp.instances[0].vrid") || !strings.Contains(string(out), "nothing was applied") {
		t.Fatalf("invalid reload: err %v\n%s", err, out)
	}
	c.waitHolder(netip.MustParseAddr("192.0.2.101"), "n1", 0, 3*iv)
}

// logTime parses the time= field of a text log line.
func logTime(line string) time.Time {
	i := strings.Index(line, "time=")
	if i < 0 {
		return time.Time{}
	}
	f := strings.Fields(line[i+5:])
	if len(f) == 0 {
		return time.Time{}
	}
	ts, _ := time.Parse(time.RFC3339Nano, f[0])
	return ts
}

// A SIGHUP that arrives while vigil is still starting is dropped instead
// of ending the process (the default action); once running, SIGHUP
// reloads a changed file and does nothing for an unchanged one.
func TestHUPDuringStartup(t *testing.T) {
	c := newCluster(t, 1)
	cfg := filepath.Join(c.lab.Dir(), "n1-hup.yaml")
	body := "node: { name: n1 }\ntelemetry: { listen: \"\" }\nvrrp:\n  instances:\n" +
		"    - { name: web, interface: eth0, vrid: 51, priority: 150, advert_interval: 100ms, vips: [192.0.2.101/24] }\n"
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := c.node("n1").Start(c.bin, "run", "--config", cfg, "--admin-socket", filepath.Join(c.lab.Dir(), "n1.sock"))
	if err != nil {
		t.Fatal(err)
	}
	c.procs["n1"] = p
	// From the first log line (the config is read) until vigil reports
	// running, send SIGHUP every millisecond.
	hups := 0
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Log(), `msg="vigil running"`) {
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("vigil exited or never ran after %d SIGHUPs during startup:\n%s", hups, p.Log())
		}
		if strings.Contains(p.Log(), `msg="starting vigil"`) {
			if err := p.Signal(syscall.SIGHUP); err != nil {
				t.Fatalf("SIGHUP: %v", err)
			}
			hups++
		}
		time.Sleep(time.Millisecond)
	}
	if hups == 0 {
		t.Log("vigil was running before a SIGHUP could be sent: this run checks only the reload")
	}
	c.waitHolder(netip.MustParseAddr("192.0.2.101"), "n1", 3*time.Second, 0)
	// A HUP with the file as it was is answered without a reload. (Count
	// the answers: one to a HUP of the startup may already be there.)
	unchanged := strings.Count(p.Log(), `msg="configuration unchanged; nothing to do"`)
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for strings.Count(p.Log(), `msg="configuration unchanged; nothing to do"`) == unchanged {
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("SIGHUP with an unchanged file was not answered:\n%s", p.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A changed file is reloaded.
	if err := os.WriteFile(cfg, []byte(body+"# changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reloads := strings.Count(p.Log(), `msg="configuration reloaded"`)
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for strings.Count(p.Log(), `msg="configuration reloaded"`) == reloads {
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("SIGHUP after startup did not reload:\n%s", p.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d SIGHUPs during startup dropped; once running, a SIGHUP with the file unchanged did nothing and one after a change reloaded", hups)
}

// A reload that fails (an interface that does not exist yet) is tried
// again by the next HUP of the same file: only a file applied counts as
// unchanged.
func TestReloadRetriedAfterPartialFailure(t *testing.T) {
	c := newCluster(t, 1)
	cfg := filepath.Join(c.lab.Dir(), "n1-retry.yaml")
	head := "node: { name: n1 }\ntelemetry: { listen: \"\" }\nvrrp:\n  instances:\n" +
		"    - { name: web, interface: eth0, vrid: 51, priority: 150, advert_interval: 100ms, vips: [192.0.2.101/24] }\n"
	if err := os.WriteFile(cfg, []byte(head), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := c.node("n1").Start(c.bin, "run", "--config", cfg, "--admin-socket", filepath.Join(c.lab.Dir(), "n1.sock"))
	if err != nil {
		t.Fatal(err)
	}
	c.procs["n1"] = p
	c.waitHolder(netip.MustParseAddr("192.0.2.101"), "n1", 3*time.Second, 0)
	next := head + "    - { name: side, interface: side0, vrid: 52, priority: 150, advert_interval: 100ms, vips: [198.51.100.101/24] }\n"
	if err := os.WriteFile(cfg, []byte(next), 0o644); err != nil {
		t.Fatal(err)
	}
	hupUntil := func(what string, before int) {
		t.Helper()
		if err := p.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(p.Log(), what) == before {
			if p.Exited() || time.Now().After(deadline) {
				t.Fatalf("no %s after SIGHUP:\n%s", what, p.LogLines(20))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	failed := `msg="configuration reload failed; the running configuration is unchanged"`
	hupUntil(failed, strings.Count(p.Log(), failed))
	if _, err := c.node("n1").IP("link", "add", "side0", "type", "veth", "peer", "name", "side1"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"addr", "add", "198.51.100.2/24", "dev", "side0"}, {"link", "set", "side1", "up"}, {"link", "set", "side0", "up"}} {
		if _, err := c.node("n1").IP(args...); err != nil {
			t.Fatal(err)
		}
	}
	reloaded := `msg="configuration reloaded"`
	hupUntil(reloaded, strings.Count(p.Log(), reloaded))
	if err := c.node("n1").WaitAddr("side0", netip.MustParseAddr("198.51.100.101"), true, 5*time.Second); err != nil {
		t.Fatalf("the retried reload did not start the instance on side0: %v\n%s", err, p.LogLines(20))
	}
}
