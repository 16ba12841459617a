package bench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"
	"vigil/test/peer"

	"vigil/test/netlab"
)

// takeoverIntervals are the advert intervals of the link-cut benchmark.
var takeoverIntervals = []time.Duration{time.Second, 100 * time.Millisecond, 10 * time.Millisecond}

// gracefulInterval is the advert interval of the graceful-stop benchmark.
const gracefulInterval = time.Second

// maxConsecutiveFailures ends a scenario that keeps failing: it cannot
// complete, which is the one thing a benchmark fails on.
const maxConsecutiveFailures = 3

// BenchmarkTakeoverLinkCut measures takeover after node loss: the master's
// bridge port goes down; last advert of the old master → first advert of
// the new master, on the bridge. See the package documentation.
func BenchmarkTakeoverLinkCut(b *testing.B) {
	for _, iv := range takeoverIntervals {
		b.Run(iv.String(), func(b *testing.B) {
			for _, impl := range impls {
				b.Run(impl, func(b *testing.B) { benchLinkCut(b, impl, iv) })
			}
		})
	}
}

// BenchmarkTakeoverGracefulStop measures takeover after SIGTERM to the
// master: its priority-0 advert → the new master's first advert.
func BenchmarkTakeoverGracefulStop(b *testing.B) {
	b.Run(gracefulInterval.String(), func(b *testing.B) {
		for _, impl := range impls {
			b.Run(impl, func(b *testing.B) { benchGraceful(b, impl, gracefulInterval) })
		}
	})
}

// BenchmarkHandoff measures a planned move of mastership at 1 s adverts:
// vigil vrrp failover (issue 14: goal < 20 ms) against keepalived's
// priority-0 stop, in the same run.
func BenchmarkHandoff(b *testing.B) {
	b.Run(gracefulInterval.String(), func(b *testing.B) {
		for _, impl := range impls {
			b.Run(impl, func(b *testing.B) {
				if impl == ImplKeepalived {
					benchGracefulAs(b, impl, gracefulInterval, KindHandoff)
					return
				}
				benchFailover(b, gracefulInterval)
			})
		}
	})
}

// stopCapture stops the scenario's capture and records tcpdump's drops.
func (c *cluster) stopCapture(res *TakeoverResult) {
	if _, err := c.capture.Stop(); err != nil {
		c.tb.Logf("stopping the capture: %v", err)
	}
	res.CaptureDrops = captureDrops(c.capture.Stderr())
}

// takeoverCluster builds the one-VIP cluster of the takeover scenarios.
func takeoverCluster(b *testing.B, impl string, iv time.Duration) *cluster {
	vips := []netip.Prefix{takeoverVIP}
	return newCluster(b, impl,
		instances(1, takeoverVRID, masterPrio, iv, vips),
		instances(1, takeoverVRID, backupPrio, iv, vips), true)
}

// scenario wraps the bookkeeping common to the takeover benchmarks: load
// and machine-busy figures, recording the result and the metrics even when
// the benchmark stops early.
func scenario(b *testing.B, res *TakeoverResult) func() {
	start := time.Now()
	res.LoadStart = loadAvg()
	sys0, _ := readSystemCPU()
	return func() {
		if b.Skipped() {
			return
		}
		res.Elapsed = time.Since(start)
		res.LoadEnd = loadAvg()
		if sys1, err := readSystemCPU(); err == nil {
			res.Busy = busyFraction(sys0, sys1)
		}
		report.AddTakeover(res)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(len(res.Takeovers)), "runs")
		b.ReportMetric(float64(len(res.Failures)), "failed-runs")
		if len(res.Takeovers) > 0 {
			s, e := Summarize(res.Takeovers), Summarize(res.Excess())
			b.ReportMetric(ms(s.Median), "median-ms")
			b.ReportMetric(ms(s.P99), "p99-ms")
			b.ReportMetric(ms(e.Median), "excess-median-ms")
			b.ReportMetric(ms(e.P99), "excess-p99-ms")
		}
	}
}

// progress tells someone watching a long run where it is. It writes to
// stderr at once (b.Log output waits for the end of the benchmark); go test
// passes it on with the figures.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// repeat runs the scenario's repetitions: one(run) measures one takeover.
// Failed repetitions are recorded; the benchmark ends when a daemon died,
// too many repetitions in a row failed, or none succeeded.
func repeat(b *testing.B, res *TakeoverResult, one func(run int) (time.Duration, error)) {
	b.Helper()
	consecutive := 0
	for run := range benchRuns() {
		res.Attempts++
		gap, err := one(run)
		if err != nil {
			progress("%s %s %v run %d/%d: failed: %s", res.Impl, kindName(res.Kind), res.Interval, run+1, benchRuns(), oneLine(err))
			res.Failures = append(res.Failures, fmt.Sprintf("run %d: %s", run+1, oneLine(err)))
			b.Logf("run %d failed: %v", run+1, err)
			consecutive++
			if errors.Is(err, errDied) || consecutive >= maxConsecutiveFailures {
				b.Fatalf("%s %s at %v cannot complete: %v", res.Impl, kindName(res.Kind), res.Interval, err)
			}
			continue
		}
		progress("%s %s %v run %d/%d: %s (excess %s)", res.Impl, kindName(res.Kind), res.Interval, run+1, benchRuns(), fmtMS(gap), fmtExcess(gap-res.Expected))
		consecutive = 0
		res.Takeovers = append(res.Takeovers, gap)
	}
	if len(res.Takeovers) == 0 {
		b.Fatalf("no takeover measured in %d runs", res.Attempts)
	}
	b.Logf("%s %s at %v: %v", res.Impl, kindName(res.Kind), res.Interval, Summarize(res.Takeovers))
}

func benchLinkCut(b *testing.B, impl string, iv time.Duration) {
	netlab.Require(b) // before anything is recorded: a skipped scenario reports nothing
	res := &TakeoverResult{Kind: KindLinkCut, Impl: impl, Interval: iv, Expected: masterDown(backupPrio, iv), CaptureDrops: -1}
	defer scenario(b, res)()
	c := takeoverCluster(b, impl, iv)
	defer c.stopCapture(res)
	since, restored := time.Now(), false
	repeat(b, res, func(int) (time.Duration, error) {
		gap, up, err := c.linkCutRun(iv, since, restored, res)
		if !up.IsZero() {
			since, restored = up, true
		} else {
			since, restored = time.Now(), false
		}
		return gap, err
	})
}

// linkCutRun is one repetition: settle, cut the master's link at a random
// phase, measure the takeover on the bridge, restore the link. up is when
// the link was restored (zero if it was never cut).
func (c *cluster) linkCutRun(iv time.Duration, since time.Time, restored bool, res *TakeoverResult) (gap time.Duration, up time.Time, err error) {
	f := c.flow()
	mdi := masterDown(backupPrio, iv)
	mark := len(c.tail.Frames())
	timeout := 3*masterDown(masterPrio, iv) + 10*time.Second
	if !restored {
		timeout += 20 * time.Second // daemons starting
	}
	settled, err := c.settle(iv, since, timeout)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("settle: %w", err)
	}
	if restored {
		if d, ok := preemptBack(c.tail.Frames()[mark:], f, masterPrio, since); ok {
			res.PreemptBack = append(res.PreemptBack, d)
		}
	}
	time.Sleep(rand.N(iv)) // a random phase of the advert interval

	cut := time.Now()
	if err := c.n1.LinkDown(); err != nil {
		return 0, time.Time{}, err
	}
	defer func() {
		up = time.Now()
		if uerr := c.n1.LinkUp(); uerr != nil {
			err = errors.Join(err, uerr)
			c.tb.Fatalf("cannot restore the link: %v", uerr)
		}
	}()
	// The takeover is due Master_Down_Interval after the last advert, which
	// left at most one interval before the cut: do not poll before that.
	if d := time.Until(cut.Add(mdi - iv - pollEvery(iv))); d > 0 {
		time.Sleep(d)
	}
	deadline := cut.Add(mdi + iv + 5*time.Second)
	var to Takeover
	for {
		if err := c.alive(); err != nil {
			return 0, time.Time{}, err
		}
		if _, err := c.tail.Poll(); err != nil {
			return 0, time.Time{}, err
		}
		frames := c.tail.Frames()[mark:]
		t, found, err := findCutTakeover(frames, f, cut)
		if found && err != nil {
			return 0, time.Time{}, err
		}
		if found {
			to = t
			break
		}
		if time.Now().After(deadline) {
			return 0, time.Time{}, fmt.Errorf("no advert from the backup within %v of the link cut", deadline.Sub(cut))
		}
		time.Sleep(pollEvery(iv))
	}
	frames := c.tail.Frames()[mark:]
	if _, spurious := quietCounts(frames, f, masterPrio, settled.Add(-quietWindow(iv)), cut); spurious > 0 {
		return 0, time.Time{}, fmt.Errorf("the backup advertised %d times between settling and the link cut", spurious)
	}
	if to.To.Priority != backupPrio {
		res.Note(fmt.Sprintf("new master's first advert has priority %d", to.To.Priority))
	}
	if err := c.n2.WaitAddr(netlab.Dev, takeoverVIP.Addr(), true, 2*time.Second); err != nil {
		res.Note("new master had no VIP 2 s after its first advert")
	}
	if ok, _ := c.n1.HasAddr(netlab.Dev, takeoverVIP.Addr()); ok {
		res.Note("old master kept the VIP while its link was down (no carrier tracking)")
	}
	if to.Gap() < mdi-iv/10 {
		res.Note("takeover shorter than Master_Down_Interval − 10 %")
	}
	return to.Gap(), time.Time{}, nil
}

func benchGraceful(b *testing.B, impl string, iv time.Duration) {
	benchGracefulAs(b, impl, iv, KindGraceful)
}

// benchGracefulAs is benchGraceful recorded under kind.
func benchGracefulAs(b *testing.B, impl string, iv time.Duration, kind string) {
	netlab.Require(b)
	exp := skew(backupPrio, iv)
	if kind == KindHandoff {
		exp = 0
	}
	res := &TakeoverResult{Kind: kind, Impl: impl, Interval: iv, Expected: exp, CaptureDrops: -1}
	defer scenario(b, res)()
	c := takeoverCluster(b, impl, iv)
	defer c.stopCapture(res)
	since, restarted := time.Now(), false
	repeat(b, res, func(int) (time.Duration, error) {
		gap, err := c.gracefulRun(iv, since, restarted, res)
		if c.p1.Exited() {
			// Start the master again for the next repetition.
			p, serr := c.start(c.n1, c.in1)
			if serr != nil {
				b.Fatalf("restart %s on n1: %v", impl, serr)
			}
			c.p1, since, restarted = p, time.Now(), true
		} else {
			since, restarted = time.Now(), false
		}
		return gap, err
	})
}

// gracefulRun is one repetition: settle, SIGTERM the master at a random
// phase, measure priority 0 → the backup's first advert. The caller starts
// the master again.
func (c *cluster) gracefulRun(iv time.Duration, since time.Time, restarted bool, res *TakeoverResult) (time.Duration, error) {
	f, mark, err := c.settleForRun(iv, since, restarted, res)
	if err != nil {
		return 0, err
	}

	stop := time.Now()
	if err := c.p1.Stop(10 * time.Second); err != nil {
		res.Note("stopping the master: " + oneLine(err))
	}
	deadline := stop.Add(skew(backupPrio, iv) + iv + 5*time.Second)
	var to Takeover
	for {
		if c.p2.Exited() {
			return 0, c.alive()
		}
		if _, err := c.tail.Poll(); err != nil {
			return 0, err
		}
		t, found, err := findResignTakeover(c.tail.Frames()[mark:], f, stop)
		if err != nil {
			return 0, err
		}
		if found {
			to = t
			break
		}
		if time.Now().After(deadline) {
			if countResign(c.tail.Frames()[mark:], f, stop) == 0 {
				return 0, fmt.Errorf("no priority-0 advert from the master within %v of SIGTERM", deadline.Sub(stop))
			}
			return 0, fmt.Errorf("no advert from the backup within %v of SIGTERM", deadline.Sub(stop))
		}
		time.Sleep(pollEvery(iv))
	}
	if n := countResign(c.tail.Frames()[mark:], f, stop); n != 1 {
		res.Note(fmt.Sprintf("the stopping master sent %d priority-0 adverts", n))
	}
	if err := c.n2.WaitAddr(netlab.Dev, takeoverVIP.Addr(), true, 2*time.Second); err != nil {
		res.Note("new master had no VIP 2 s after its first advert")
	}
	if ok, _ := c.n1.HasAddr(netlab.Dev, takeoverVIP.Addr()); ok {
		res.Note("the stopped master left its VIP behind")
	}
	return to.Gap(), nil
}

// benchFailover measures vigil vrrp failover --force on the master.
func benchFailover(b *testing.B, iv time.Duration) {
	netlab.Require(b)
	res := &TakeoverResult{Kind: KindHandoff, Impl: ImplVigil, Interval: iv, CaptureDrops: -1}
	defer scenario(b, res)()
	vips := []netip.Prefix{takeoverVIP}
	c := newClusterWith(b, ImplVigil, instances(1, takeoverVRID, masterPrio, iv, vips),
		instances(1, takeoverVRID, backupPrio, iv, vips), true, true)
	defer c.stopCapture(res)
	since, first := time.Now(), true
	repeat(b, res, func(int) (time.Duration, error) {
		gap, err := c.failoverRun(iv, since, first, res)
		since, first = time.Now(), false
		return gap, err
	})
}

// failoverRun is one repetition: settle (the master has preempted back),
// ask the master to hand off at a random phase, measure its priority-0
// advert → the backup's first advert.
func (c *cluster) failoverRun(iv time.Duration, since time.Time, first bool, res *TakeoverResult) (time.Duration, error) {
	f, mark, err := c.settleForRun(iv, since, !first, res)
	if err != nil {
		return 0, err
	}
	bin, err := peer.VigilBinary()
	if err != nil {
		return 0, err
	}
	asked := time.Now()
	// Until gossip has the backup's summary (the first run), the master
	// refuses: no successor known yet.
	for {
		out, err := exec.Command(bin, "vrrp", "failover", "VI_51", "--force", "--socket", peer.VigilAdminSocket(c.n1)).CombinedOutput()
		if err == nil {
			break
		}
		if time.Since(asked) > 20*time.Second {
			return 0, fmt.Errorf("vigil vrrp failover: %v: %s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := c.alive(); err != nil {
			return 0, err
		}
		if _, err := c.tail.Poll(); err != nil {
			return 0, err
		}
		t, found, err := findResignTakeover(c.tail.Frames()[mark:], f, asked)
		if err != nil {
			return 0, err
		}
		if found {
			if err := c.n2.WaitAddr(netlab.Dev, takeoverVIP.Addr(), true, 2*time.Second); err != nil {
				res.Note("new master had no VIP 2 s after its first advert")
			}
			return t.Gap(), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no handoff on the wire within 5 s of vigil vrrp failover")
		}
		time.Sleep(pollEvery(iv))
	}
}

// settleForRun waits for the wire to settle before a repetition (again, if
// the master came back since, noting how long it took to preempt back),
// then sleeps a random phase of the advert interval. It returns the flow
// and where the repetition's frames start.
func (c *cluster) settleForRun(iv time.Duration, since time.Time, again bool, res *TakeoverResult) (flow, int, error) {
	f := c.flow()
	mark := len(c.tail.Frames())
	timeout := 3*masterDown(masterPrio, iv) + 10*time.Second
	if !again {
		timeout += 20 * time.Second // daemons starting
	}
	if _, err := c.settle(iv, since, timeout); err != nil {
		return f, mark, fmt.Errorf("settle: %w", err)
	}
	if again {
		if d, ok := preemptBack(c.tail.Frames()[mark:], f, masterPrio, since); ok {
			res.PreemptBack = append(res.PreemptBack, d)
		}
	}
	time.Sleep(rand.N(iv))
	return f, mark, nil
}
