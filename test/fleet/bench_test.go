package fleet

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/test/bench"
	"vigil/test/fault"
	"vigil/test/peer"
)

// BenchmarkSplitBrain measures, side by side, how long two masters last when IP protocol 112 is
// dropped between two directors at 100 ms adverts while everything else passes: vigil with
// arbitration (the default), vigil without, and keepalived. Each cycle drops VRRP for 3 s, samples
// the VIP on both nodes every 20 ms, then heals and lets the pair settle. Figures: the share of
// samples with two holders, and the time from the drop to the last such sample (0 when never).
// VIGIL_BENCH_RUNS sets the cycles per implementation (default 5).
func BenchmarkSplitBrain(b *testing.B) {
	runs := 5
	if v, err := strconv.Atoi(os.Getenv("VIGIL_BENCH_RUNS")); err == nil && v > 0 {
		runs = v
	}
	for _, impl := range []string{"vigil-arbitrate", "vigil-no-arbitrate", "keepalived"} {
		b.Run(impl, func(b *testing.B) {
			for range b.N {
				dual, samples, worst := splitBrainCycles(b, impl, runs)
				b.ReportMetric(100*float64(dual)/float64(samples), "%dual")
				b.ReportMetric(worst.Seconds(), "s-last-dual")
				fmt.Printf("split brain %-20s %d cycles: two masters in %d of %d samples (%.0f %%); last dual-master sample %.2fs after the drop\n",
					impl, runs, dual, samples, 100*float64(dual)/float64(samples), worst.Seconds())
			}
		})
	}
}

func splitBrainCycles(b *testing.B, impl string, runs int) (dual, samples int, worst time.Duration) {
	l := newLab(b, 2)
	start := func(name string, prio int) {
		switch impl {
		case "keepalived":
			p, err := peer.StartKeepalived(l.lab.Node(name), []peer.Instance{vr(prio)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { p.Stop(5 * time.Second) })
		default:
			l.gossip = fmt.Sprintf("  arbitrate: %v\n", impl == "vigil-arbitrate")
			l.start(name, []peer.Instance{vr(prio)}, "test", "")
		}
	}
	start("n1", 200)
	l.waitHolders([]string{"n1"}, 10*time.Second, "n1", "n2")
	start("n2", 100)
	if impl != "keepalived" {
		l.waitMembers([]string{"n1", "n2"}, map[string]string{"n1": "alive", "n2": "alive"}, 30*time.Second)
	}
	for range runs {
		time.Sleep(2 * time.Second)
		l.waitHolders([]string{"n1"}, 5*time.Second, "n1", "n2")
		for _, n := range []string{"n1", "n2"} {
			if err := fault.DropVRRP(l.lab.Node(n), "input", 100); err != nil {
				b.Fatal(err)
			}
		}
		drop := time.Now()
		for time.Since(drop) < 3*time.Second {
			h, err := l.holders("n1", "n2")
			if err != nil {
				b.Fatal(err)
			}
			samples++
			if len(h) == 2 {
				dual++
				worst = max(worst, time.Since(drop))
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, n := range []string{"n1", "n2"} {
			if err := fault.HealVRRP(l.lab.Node(n)); err != nil {
				b.Fatal(err)
			}
		}
	}
	return dual, samples, worst
}

// BenchmarkFleetResources measures the cost of the fleet on the 200-instance scenario:
// two vigil nodes with 200 VRRP instances each (1 s adverts, one VIP each) and gossip on,
// after 40 s of settling, over a 10 s window: RSS and CPU of each daemon, and the gossip row
// bytes each sent (its own counters, /metrics: broadcasts and push/pull state), with the same
// pair without gossip as the baseline. LAN profile, rejoin every 30 s (the defaults).
func BenchmarkFleetResources(b *testing.B) {
	for _, gossipOn := range []bool{false, true} {
		b.Run(fmt.Sprintf("gossip=%v", gossipOn), func(b *testing.B) {
			for range b.N {
				fleetResources(b, gossipOn)
			}
		})
	}
}

// settle is how long the resource benchmark waits before its window.
const settle = 40 * time.Second

func fleetResources(b *testing.B, gossipOn bool) {
	{
		l := newLab(b, 2)
		// The defaults an operator runs with: LAN timings, rejoin every 30 s.
		l.noGossip, l.profile, l.rejoin = !gossipOn, "lan", "30s"
		var insts []peer.Instance
		vipNet := netip.MustParseAddr("198.51.100.0")
		for i := 1; i <= 200; i++ {
			vipNet = vipNet.Next()
			insts = append(insts, peer.Instance{Name: fmt.Sprintf("vr%d", i), VRID: i, Priority: 100, Version: 3,
				Interval: time.Second, VIPs: []netip.Prefix{netip.PrefixFrom(vipNet, 24)}, Preempt: true})
		}
		l.start("n1", insts, "test", "")
		l.start("n2", insts, "test", "")
		if gossipOn {
			l.waitMembers([]string{"n1", "n2"}, map[string]string{"n1": "alive", "n2": "alive"}, 30*time.Second)
		}
		// The start's broadcasts (every instance's first states, each sent
		// RetransmitMult × log10(n+1) times, a few rows per gossip packet)
		// take tens of seconds to drain at LAN timing: let them.
		time.Sleep(settle)
		type sample struct {
			cpu   time.Duration
			bytes float64
		}
		read := func(name string) (sample, memory) {
			pid := l.procs[name].Pid()
			cpu, rss, err := procUsage(pid)
			if err != nil {
				b.Fatal(err)
			}
			m, err := l.metrics(name)
			if err != nil && gossipOn {
				b.Fatal(err)
			}
			return sample{cpu: cpu, bytes: sumMetric(m, `vigil_gossip_row_bytes_total{direction="sent"`)}, rss
		}
		s0 := map[string]sample{}
		for _, n := range []string{"n1", "n2"} {
			s0[n], _ = read(n)
		}
		const window = 10 * time.Second
		time.Sleep(window)
		for _, n := range []string{"n1", "n2"} {
			s1, rss := read(n)
			cpu := 100 * (s1.cpu - s0[n].cpu).Seconds() / window.Seconds()
			bps := (s1.bytes - s0[n].bytes) / window.Seconds()
			b.ReportMetric(float64(rss.rss)/(1<<20), n+"-rss-MiB")
			b.ReportMetric(float64(rss.anon)/(1<<20), n+"-anon-MiB")
			b.ReportMetric(cpu, n+"-cpu-%")
			fmt.Printf("fleet resources, 200 instances at 1 s, gossip %v: %s RSS %.1f MiB (anonymous %.1f, file %.1f), CPU %.2f %% of a core, gossip rows sent %.0f B/s\n",
				gossipOn, n, float64(rss.rss)/(1<<20), float64(rss.anon)/(1<<20), float64(rss.file)/(1<<20), cpu, bps)
		}
	}
}

// procUsage reads a process's CPU time (user + system) and its memory.
func procUsage(pid int) (time.Duration, memory, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, memory{}, err
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	var m memory
	if m.rss, m.anon, m.file, err = bench.Memory(pid); err != nil {
		return 0, memory{}, err
	}
	// USER_HZ is 100 on Linux.
	return time.Duration(ut+st) * 10 * time.Millisecond, m, nil
}

// memory is a process's VmRSS and its anonymous and file-backed parts, bytes.
type memory struct{ rss, anon, file int64 }

// sumMetric sums the samples of the series starting with prefix in an exposition.
func sumMetric(exposition, prefix string) float64 {
	var sum float64
	for _, line := range strings.Split(exposition, "\n") {
		if strings.HasPrefix(line, prefix) {
			if i := strings.LastIndexByte(line, ' '); i > 0 {
				v, _ := strconv.ParseFloat(line[i+1:], 64)
				sum += v
			}
		}
	}
	return sum
}
