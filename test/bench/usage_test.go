package bench

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"vigil/test/netlab"
)

// resourceWindow is the CPU measurement window.
const resourceWindow = 10 * time.Second

// resourceScenarios are the CPU/RSS benchmark's cluster sizes; every
// instance has its own VRID (1..n) and VIP (.1 .. .n of the range).
var resourceScenarios = []struct {
	Instances int
	Interval  time.Duration
	VIPNet    netip.Prefix
}{
	{200, time.Second, netip.MustParsePrefix("198.51.100.0/24")},
	{50, 10 * time.Millisecond, netip.MustParsePrefix("203.0.113.0/24")},
}

// BenchmarkResources measures CPU and RSS of a master and a backup running
// many instances. See the package documentation.
func BenchmarkResources(b *testing.B) {
	for _, sc := range resourceScenarios {
		b.Run(fmt.Sprintf("%dx%v", sc.Instances, sc.Interval), func(b *testing.B) {
			for _, impl := range impls {
				b.Run(impl, func(b *testing.B) { benchResources(b, impl, sc.Instances, sc.Interval, sc.VIPNet) })
			}
		})
	}
}

// wireWindow is how long the wire is captured before the CPU window: long
// enough for a few adverts of every VRID.
func wireWindow(iv time.Duration) time.Duration { return max(2*time.Second, 3*iv+500*time.Millisecond) }

// vipRange returns count /24 addresses .1, .2, ... of net.
func vipRange(net netip.Prefix, count int) []netip.Prefix {
	var out []netip.Prefix
	a := net.Addr()
	for range count {
		a = a.Next()
		out = append(out, netip.PrefixFrom(a, net.Bits()))
	}
	return out
}

func benchResources(b *testing.B, impl string, count int, iv time.Duration, vipNet netip.Prefix) {
	netlab.Require(b) // before anything is recorded: a skipped scenario reports nothing
	res := &ResourceResult{Impl: impl, Instances: count, Interval: iv, LoadStart: loadAvg(), CaptureDrops: -1}
	start := time.Now()
	defer func() {
		if b.Skipped() {
			return
		}
		res.Elapsed = time.Since(start)
		res.LoadEnd = loadAvg()
		report.AddResource(res)
		b.ReportMetric(0, "ns/op")
		if res.Window > 0 {
			b.ReportMetric(cpuPer10s(res.Master, res.Window), "master-cpu-s/10s")
			b.ReportMetric(cpuPer10s(res.Backup, res.Window), "backup-cpu-s/10s")
			b.ReportMetric(mib(sumRSS(res.Master)), "master-rss-MiB")
			b.ReportMetric(mib(sumRSS(res.Backup)), "backup-rss-MiB")
		}
	}()
	vips := vipRange(vipNet, count)
	c := newCluster(b, impl, instances(count, 1, masterPrio, iv, vips), instances(count, 1, backupPrio, iv, vips), false)
	if err := waitAllVIPs(c.n1, c.n2, c.in1, 60*time.Second+masterDown(backupPrio, iv)); err != nil {
		b.Fatalf("%s never became master for every instance: %v", impl, err)
	}
	time.Sleep(2 * time.Second)
	if err := c.alive(); err != nil {
		b.Fatal(err)
	}

	// The wire, briefly, before the window (a capture costs CPU too): every
	// VRID advertised by the master, nothing from the backup.
	capt, err := c.lab.StartCapture(netlab.FilterVRRP)
	if err != nil {
		b.Fatal(err)
	}
	tA := time.Now()
	time.Sleep(wireWindow(iv))
	tB := time.Now()
	frames, err := capt.Stop()
	if err != nil {
		b.Fatal(err)
	}
	st := countAdverts(netlab.VRRPFrames(frames), tA, tB)
	res.WireWindow, res.CaptureDrops = tB.Sub(tA), captureDrops(capt.Stderr())
	res.MasterVRIDs = len(st.VRIDs[addr1.Addr()])
	res.MasterGaps = Summarize(advertGaps(netlab.VRRPFrames(frames), addr1.Addr()))
	res.BackupAdverts = st.Count[addr2.Addr()]
	if res.MasterVRIDs != count {
		res.Note(fmt.Sprintf("the master advertised %d of %d VRIDs in a %v capture", res.MasterVRIDs, count, wireWindow(iv)))
	}
	if res.CaptureDrops > 0 {
		res.Note(fmt.Sprintf("tcpdump dropped %d packets in the %v capture before the window (the capture's limit, not the daemons')", res.CaptureDrops, wireWindow(iv)))
	}
	if res.BackupAdverts > 0 {
		res.Note(fmt.Sprintf("the backup sent %d adverts in a %v capture before the window", res.BackupAdverts, wireWindow(iv)))
	}
	time.Sleep(time.Second)

	tree1, err1 := processTree(c.p1.Pid())
	tree2, err2 := processTree(c.p2.Pid())
	if err1 != nil || err2 != nil {
		b.Fatalf("process trees: %v %v", err1, err2)
	}
	cpu1, cpu2 := sampleCPU(tree1), sampleCPU(tree2)
	sys0, _ := readSystemCPU()
	t0 := time.Now()
	time.Sleep(resourceWindow)
	t1 := time.Now()
	sys1, _ := readSystemCPU()
	m, err1 := usage(tree1, cpu1)
	k, err2 := usage(tree2, cpu2)
	if err1 != nil || err2 != nil {
		b.Fatalf("reading usage: %v %v", err1, err2)
	}
	res.Master, res.Backup, res.Window, res.Busy = m, k, t1.Sub(t0), busyFraction(sys0, sys1)
	for _, p := range []struct {
		tree []procStat
		pid  int
		node string
	}{{tree1, c.p1.Pid(), "master"}, {tree2, c.p2.Pid(), "backup"}} {
		if now, err := processTree(p.pid); err == nil && len(now) != len(p.tree) {
			res.Note(fmt.Sprintf("the %s's process count changed during the window (%d → %d)", p.node, len(p.tree), len(now)))
		}
	}
	if err := c.alive(); err != nil {
		b.Fatal(err)
	}
	if err := waitAllVIPs(c.n1, c.n2, c.in1, 0); err != nil {
		res.Note("after the window: " + oneLine(err))
	}
	progress("%s %d×%v: master %s, %s; backup %s, %s", impl, count, iv,
		fmtCPU(res.Master, res.Window), fmtRSS(res.Master), fmtCPU(res.Backup, res.Window), fmtRSS(res.Backup))
}

// usage reads CPU time since before and VmRSS now for every process of tree.
func usage(tree []procStat, before cpuSample) ([]ProcUsage, error) {
	var out []ProcUsage
	for _, p := range tree {
		st, err := readProcStat(p.PID)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", p.Comm, p.PID, err)
		}
		mem, err := readStatus(p.PID)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", p.Comm, p.PID, err)
		}
		th, err := threadRuntimes(p.PID)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", p.Comm, p.PID, err)
		}
		b := before[p.PID]
		rt, lost := runtimeDelta(b.threads, th)
		out = append(out, ProcUsage{PID: p.PID, Comm: st.Comm, CPU: ticksToDuration(st.UTime + st.STime - b.ticks),
			Runtime: rt, LostThreads: lost, RSS: mem.RSS, RSSAnon: mem.Anon, RSSFile: mem.File, Threads: mem.Threads, FDs: openFDs(p.PID)})
	}
	return out, nil
}

func cpuPer10s(ps []ProcUsage, window time.Duration) float64 {
	var sum time.Duration
	for _, p := range ps {
		sum += p.CPU
	}
	return sum.Seconds() / window.Seconds() * 10
}

func sumRSS(ps []ProcUsage) int64 {
	var s int64
	for _, p := range ps {
		s += p.RSS
	}
	return s
}
