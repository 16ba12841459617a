package fleet

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

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
