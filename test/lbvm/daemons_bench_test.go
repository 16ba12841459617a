package lbvm

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"vigil/lb"
)

// daemonConfig renders t as a vigil config and as keepalived.conf, with
// weight w for the real server chg (to time one change by a reload).
func daemonConfigs(t lb.Table, chg lb.DestKey, chgSvc lb.ServiceKey, w int) (vigil, keepalived string) {
	var v, k strings.Builder
	v.WriteString("node: {name: bench}\ntelemetry: {listen: \"\"}\nlb:\n  virtual_servers:\n")
	k.WriteString("global_defs {\n  router_id bench\n}\n")
	for i, key := range t.Keys() {
		e := t[key]
		var rs []string
		fmt.Fprintf(&k, "virtual_server %s %d {\n  lb_algo %s\n  lb_kind NAT\n  protocol TCP\n", key.Addr, key.Port, e.Service.Scheduler)
		for _, d := range e.SortedDests() {
			weight := d.Weight
			if key == chgSvc && d.Key() == chg {
				weight = w
			}
			rs = append(rs, fmt.Sprintf("{address: \"%s\", weight: %d}", netip.AddrPortFrom(d.Addr, d.Port), weight))
			fmt.Fprintf(&k, "  real_server %s %d {\n    weight %d\n  }\n", d.Addr, d.Port, weight)
		}
		k.WriteString("}\n")
		fmt.Fprintf(&v, "    - {name: vs%d, address: \"%s\", protocol: tcp, scheduler: %s, real_servers: [%s]}\n",
			i, netip.AddrPortFrom(key.Addr, key.Port), e.Service.Scheduler, strings.Join(rs, ", "))
	}
	return v.String(), k.String()
}

// procTable reads /proc/net/ip_vs inside namespace ns: the number of
// destinations, and the weight of destination d of service s (-1 if absent).
func procTable(t testing.TB, ns string, s lb.ServiceKey, d lb.DestKey) (dests, weight int) {
	t.Helper()
	out, err := exec.Command(ipCmd, "netns", "exec", ns, "cat", "/proc/net/ip_vs").Output()
	if err != nil {
		t.Fatalf("read /proc/net/ip_vs in %s: %v", ns, err)
	}
	hex := func(a netip.Addr, p uint16) string {
		b := a.As4()
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", b[0], b[1], b[2], b[3], p)
	}
	svc, dst := "TCP  "+hex(s.Addr, s.Port)+" ", "  -> "+hex(d.Addr, d.Port)+" "
	weight = -1
	in := false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "  -> ") && !strings.Contains(l, "RemoteAddress"):
			dests++
			if in && strings.HasPrefix(l, dst) {
				f := strings.Fields(l)
				fmt.Sscan(f[3], &weight)
			}
		case strings.HasPrefix(l, "TCP") || strings.HasPrefix(l, "UDP") || strings.HasPrefix(l, "FWM"):
			in = strings.HasPrefix(l, svc)
		}
	}
	return dests, weight
}

// TestBenchDaemons times the two daemons loading the same 1,000 × 10 table
// from their configuration files: start until the kernel holds every
// destination, a reload that changes one real server's weight until the
// kernel shows it, and a stop until the table is empty. The table is
// polled from /proc/net/ip_vs every 20 ms (a poll costs a few ms under
// TCG, which bounds the resolution). Figures only; correctness is asserted.
func TestBenchDaemons(t *testing.T) {
	inVM(t)
	if os.Getenv("VIGIL_LB_BENCH") != "1" {
		t.Skip("benchmark: set VIGIL_LB_BENCH=1")
	}
	bins := map[string]string{"vigil": os.Getenv("VIGIL_BIN"), "keepalived": os.Getenv("VIGIL_KEEPALIVED")}
	for name, b := range bins {
		if b == "" {
			t.Fatalf("the %s binary is not in the VM (VIGIL_BIN, VIGIL_KEEPALIVED)", name)
		}
	}
	desired := benchTable(1000, 10)
	k0 := desired.Keys()[500]
	d0 := desired[k0].SortedDests()[5].Key()
	dir := t.TempDir()
	const rounds = 2
	results := map[string][3][]time.Duration{}
	left := map[string][]int{}
	for _, impl := range []string{"vigil", "keepalived"} {
		var start, change, stop []time.Duration
		for r := 0; r < rounds; r++ {
			ns := fmt.Sprintf("d-%s%d", impl, r)
			director(t, ns)
			vcfg, kcfg := daemonConfigs(desired, d0, k0, 1)
			cfg := filepath.Join(dir, ns+".conf")
			body := vcfg
			if impl == "keepalived" {
				body = kcfg
			}
			if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"netns", "exec", ns, bins["vigil"], "run", "--config", cfg, "--admin-socket", filepath.Join(dir, ns+".sock")}
			if impl == "keepalived" {
				args = []string{"netns", "exec", ns, bins["keepalived"], "--dont-fork", "--log-console", "--check",
					"--use-file=" + cfg, "--pid=" + filepath.Join(dir, ns+".pid"), "--checkers_pid=" + filepath.Join(dir, ns+"-c.pid")}
			}
			logf, err := os.Create(filepath.Join(dir, ns+".log"))
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(ipCmd, args...)
			cmd.Stdout, cmd.Stderr = logf, logf
			// wait polls cond every poll (each poll starts ip and cat, which
			// costs real CPU in a 1-vCPU TCG guest, so the long phases poll
			// slowly); it returns the time taken, or -1 after 120 s.
			wait := func(what string, poll time.Duration, cond func() bool) time.Duration {
				t.Helper()
				t0 := time.Now()
				for !cond() {
					if time.Since(t0) > 120*time.Second {
						n, _ := procTable(t, ns, k0, d0)
						t.Logf("%s round %d: %s not reached in 120 s (%d destinations)", impl, r, what, n)
						return -1
					}
					time.Sleep(poll)
				}
				return time.Since(t0)
			}
			t0 := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if wait("10,000 destinations", 250*time.Millisecond, func() bool { n, _ := procTable(t, ns, k0, d0); return n == 10000 }) < 0 {
				start = append(start, -1)
			} else {
				start = append(start, time.Since(t0))
			}

			vcfg, kcfg = daemonConfigs(desired, d0, k0, 5)
			body = vcfg
			if impl == "keepalived" {
				body = kcfg
			}
			if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd.Process.Signal(syscall.SIGHUP)
			change = append(change, wait("weight 5 after the reload", 10*time.Millisecond, func() bool { _, w := procTable(t, ns, k0, d0); return w == 5 }))
			if n, _ := procTable(t, ns, k0, d0); n != 10000 {
				t.Logf("%s round %d: %d destinations after the reload", impl, r, n)
			}

			// Stop: both remove what they created; the time is SIGTERM →
			// process exit, and what is left in the kernel is reported.
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			t1 := time.Now()
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(120 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Errorf("%s did not exit within 120 s of SIGTERM", impl)
			}
			stop = append(stop, time.Since(t1))
			n, _ := procTable(t, ns, k0, d0)
			left[impl] = append(left[impl], n)
			logf.Close()
		}
		results[impl] = [3][]time.Duration{start, change, stop}
	}
	for _, impl := range []string{"vigil", "keepalived"} {
		r := results[impl]
		t.Logf("BENCH daemon %s, 1000 VS x 10 RS from its config file: start→all destinations %v; reload changing one RS→visible %v; SIGTERM→exit %v, destinations left %v",
			impl, r[0], r[1], r[2], left[impl])
	}
	// vigil itself must get every figure and clean up; keepalived's are
	// reported as they come (-1: not reached in 120 s).
	if fmt.Sprint(left["vigil"]) != fmt.Sprint(make([]int, rounds)) || slices.Contains(results["vigil"][0], -1) || slices.Contains(results["vigil"][1], -1) {
		t.Errorf("vigil missed a phase or left destinations behind: %v, left %v", results["vigil"], left["vigil"])
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
