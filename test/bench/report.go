package bench

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// Implementations, in the order of the report's columns.
const (
	ImplVigil      = "vigil"
	ImplKeepalived = "keepalived"
)

var impls = []string{ImplVigil, ImplKeepalived}

// Kinds of takeover benchmarks.
const (
	KindLinkCut  = "linkcut"
	KindGraceful = "graceful"
	// KindHandoff: a planned move of mastership: vigil vrrp failover
	// against keepalived's only tool for it, stopping the master (priority 0).
	KindHandoff = "handoff"
)

// TakeoverResult is one takeover scenario for one implementation at one
// advert interval.
type TakeoverResult struct {
	Kind     string
	Impl     string
	Interval time.Duration
	// Expected is what the backup's timer should produce: its
	// Master_Down_Interval (link cut) or Skew_Time (graceful stop).
	Expected time.Duration
	// Attempts counts the repetitions tried; Takeovers holds the measured
	// ones; Failures says why the others could not be measured.
	Attempts  int
	Takeovers []time.Duration
	Failures  []string
	// PreemptBack: link restored / daemon restarted → the master's first
	// advert after the backup fell silent (informational).
	PreemptBack []time.Duration
	// Notes are observations worth a reader's attention (counted).
	Notes   map[string]int
	Elapsed time.Duration
	// Load is /proc/loadavg at the start and the end; Busy the share of all
	// CPUs busy (every process on the machine) during the scenario.
	LoadStart, LoadEnd string
	Busy               float64
	// CaptureDrops is what tcpdump reported dropped by the kernel over the
	// scenario (-1 unknown).
	CaptureDrops int
}

// Note counts an observation.
func (r *TakeoverResult) Note(s string) {
	if r.Notes == nil {
		r.Notes = map[string]int{}
	}
	r.Notes[s]++
}

// Excess returns Takeovers − Expected.
func (r *TakeoverResult) Excess() []time.Duration {
	out := make([]time.Duration, len(r.Takeovers))
	for i, d := range r.Takeovers {
		out[i] = d - r.Expected
	}
	return out
}

// ResourceResult is one CPU/RSS scenario for one implementation.
type ResourceResult struct {
	Impl      string
	Instances int
	Interval  time.Duration
	Window    time.Duration // measured window (about 10 s)
	// Master and Backup are the implementation's processes on each node.
	Master, Backup []ProcUsage
	// From a short capture (WireWindow) before the CPU window: the times
	// between consecutive adverts of one VRID from the master, how many
	// distinct VRIDs it advertised, how many adverts the backup sent.
	MasterGaps    Summary // time between consecutive adverts of one VRID
	MasterVRIDs   int
	BackupAdverts int
	CaptureDrops  int // packets tcpdump reports dropped by the kernel; -1 unknown
	WireWindow    time.Duration
	Busy          float64 // share of all CPUs busy during the window
	Notes         map[string]int
	Elapsed       time.Duration
	LoadStart     string
	LoadEnd       string
}

// Note counts an observation.
func (r *ResourceResult) Note(s string) {
	if r.Notes == nil {
		r.Notes = map[string]int{}
	}
	r.Notes[s]++
}

// Machine describes where the benchmarks ran.
type Machine struct {
	Date       time.Time
	Kernel     string
	CPU        string
	Cores      int
	GoVersion  string
	Keepalived string
	Vigil      string
	LoadStart  string
	LoadEnd    string
	Command    string
	Runs       int
	Elapsed    time.Duration
}

// Report gathers the results of one `go test -bench` run.
type Report struct {
	mu        sync.Mutex
	Machine   Machine
	Takeovers []*TakeoverResult
	Resources []*ResourceResult
}

// AddTakeover records a takeover result.
func (r *Report) AddTakeover(t *TakeoverResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Takeovers = append(r.Takeovers, t)
}

// AddResource records a resource result.
func (r *Report) AddResource(x *ResourceResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Resources = append(r.Resources, x)
}

// Empty reports whether nothing was recorded.
func (r *Report) Empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.Takeovers) == 0 && len(r.Resources) == 0
}

// Goals and earlier keepalived figures, from issue 2.
var (
	linkCutReference = map[time.Duration]string{
		time.Second:            "keepalived measured earlier: 3.610 s",
		100 * time.Millisecond: "keepalived measured earlier: 0.361 s",
	}
	gracefulReference = map[time.Duration]string{
		time.Second: "keepalived measured earlier: 0.611 s",
	}
	handoffReference = map[time.Duration]string{
		time.Second: "keepalived's priority-0 takeover measured earlier: 0.611 s (= Skew_Time)",
	}
	cpuReference = map[string]string{
		"200x1s":  "keepalived measured earlier: 0.70 %",
		"50x10ms": "keepalived measured earlier: 13.2 %",
	}
)

const (
	goalExcess  = "goal: vigil ≤ 1 ms"
	goalHandoff = "goal: vigil < 20 ms"
	goalCPU     = "goal: vigil ≤ keepalived (same run)"
	goalRSS     = "goal: vigil ≤ 30 MB"
	refRSS      = "keepalived measured earlier: 13.6 MB"
)

// WriteMarkdown renders the report.
func (r *Report) WriteMarkdown(w io.Writer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	m := r.Machine
	b.WriteString("# vigil vs keepalived: benchmark report\n\n")
	b.WriteString("Both implementations measured in the same run, on the same machine, in the same kind of lab: two network\n")
	b.WriteString("namespaces on a Linux bridge (package test/netlab), VRRPv3 over IPv4 multicast, one cluster description\n")
	b.WriteString("rendered as vigil YAML and keepalived.conf (package test/peer), each started as test/peer starts it\n")
	b.WriteString("(`vigil run --log-level debug`; `keepalived --dont-fork --log-console --log-detail --vrrp`). Benchmarks report\n")
	b.WriteString("figures; nothing here passes or fails on time.\n\n")
	b.WriteString("## Machine and run\n\n")
	b.WriteString("| | |\n|---|---|\n")
	row := func(k, v string) { fmt.Fprintf(&b, "| %s | %s |\n", k, mdEscape(v)) }
	row("date", m.Date.Format(time.RFC3339))
	row("kernel", m.Kernel)
	row("CPU", fmt.Sprintf("%s, %d cores", m.CPU, m.Cores))
	row("Go", m.GoVersion)
	row("keepalived", m.Keepalived)
	row("vigil", m.Vigil)
	row("repetitions per takeover scenario", fmt.Sprint(m.Runs))
	row("load average (1, 5, 15 min) at start / end", m.LoadStart+" / "+m.LoadEnd)
	row("duration", m.Elapsed.Round(time.Second).String())
	fmt.Fprintf(&b, "\nReproduce (as root, from the repository root): `%s`\n", m.Command)

	if len(r.Takeovers) > 0 {
		r.writeTakeovers(&b, KindLinkCut)
		r.writeTakeovers(&b, KindGraceful)
		r.writeTakeovers(&b, KindHandoff)
	}
	if len(r.Resources) > 0 {
		r.writeResources(&b)
	}
	r.writeNotes(&b)
	r.writeRaw(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) writeTakeovers(b *strings.Builder, kind string) {
	var rs []*TakeoverResult
	for _, t := range r.Takeovers {
		if t.Kind == kind {
			rs = append(rs, t)
		}
	}
	if len(rs) == 0 {
		return
	}
	expName, refs, excessGoal := "Master_Down_Interval", linkCutReference, goalExcess
	switch kind {
	case KindLinkCut:
		b.WriteString("\n## 1. Takeover after node loss (link cut)\n\n")
		b.WriteString("Master priority 150, backup priority 100, one VIP, preempt on. The master's bridge port goes down at a random\n")
		b.WriteString("phase of the advert interval; takeover = last advert of the old master seen on the bridge → first advert of\n")
		b.WriteString("the new master (tcpdump on the bridge, kernel timestamps). Excess = takeover − the backup's\n")
		b.WriteString("Master_Down_Interval (3 × interval + (256 − 100) × interval / 256). The daemons keep running between\n")
		b.WriteString("repetitions: the link comes back, the master preempts back, the wire settles, then the next cut.\n")
		b.WriteString("Preempt back = link restored → the master's first advert after the backup's last one.\n\n")
	case KindGraceful:
		expName, refs, excessGoal = "Skew_Time", gracefulReference, ""
		b.WriteString("\n## 2. Takeover after graceful stop (priority 0)\n\n")
		b.WriteString("SIGTERM to the master (priority 150); takeover = its priority-0 advert → the backup's (priority 100) first\n")
		b.WriteString("advert as master. Excess = takeover − the backup's Skew_Time ((256 − 100) × interval / 256). The stopped\n")
		b.WriteString("daemon is started again between repetitions and preempts back (preempt back = restart → the master's first\n")
		b.WriteString("advert after the backup's last one).\n\n")
	}
	if kind == KindHandoff {
		expName, refs, excessGoal = "expected", handoffReference, goalHandoff
		b.WriteString("\n## 3. Planned handoff (maintenance)\n\n")
		b.WriteString("Master priority 150, backup priority 100, one VIP, preempt on, 1 s adverts. vigil: `vigil vrrp failover --force`\n")
		b.WriteString("on the master (both nodes in a gossip fleet): it tells the backup to take over on its resignation, then\n")
		b.WriteString("sends priority 0; keepalived has no handoff, so its figure is its graceful stop (priority 0, the backup\n")
		b.WriteString("waits Skew_Time). Takeover = the priority-0 advert → the new master's first advert, on the bridge. Expected 0:\n")
		b.WriteString("excess = takeover. The master preempts back (forced: its priority is higher) before the next repetition.\n\n")
	}
	intervals := uniqueIntervals(rs)
	fmt.Fprintf(b, "| advert interval | %s | figure | vigil | keepalived | goal / reference |\n", expName)
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, iv := range intervals {
		cells := map[string]*TakeoverResult{}
		for _, t := range rs {
			if t.Interval == iv {
				cells[t.Impl] = t
			}
		}
		var expected time.Duration
		for _, t := range cells {
			expected = t.Expected
		}
		type line struct {
			name, goal string
			val        func(t *TakeoverResult) string
		}
		p99Name := func() string {
			n := 0
			for _, t := range cells {
				n = max(n, len(t.Takeovers))
			}
			if P99IsMax(n) {
				return "p99 (= max, n < 100)"
			}
			return "p99"
		}()
		lines := []line{
			{"takeover median", refs[iv], func(t *TakeoverResult) string { return fmtMS(Summarize(t.Takeovers).Median) }},
			{"takeover " + p99Name, "", func(t *TakeoverResult) string { return fmtMS(Summarize(t.Takeovers).P99) }},
			{"excess median", "", func(t *TakeoverResult) string { return fmtExcess(Summarize(t.Excess()).Median) }},
			{"excess " + p99Name, excessGoal, func(t *TakeoverResult) string { return fmtExcess(Summarize(t.Excess()).P99) }},
			{"excess min … max", "", func(t *TakeoverResult) string {
				s := Summarize(t.Excess())
				return fmtExcess(s.Min) + " … " + fmtExcess(s.Max)
			}},
			{"runs measured / failed", "≥ 20 runs", func(t *TakeoverResult) string {
				return fmt.Sprintf("%d / %d", len(t.Takeovers), len(t.Failures))
			}},
			{"preempt back, median (informational)", "", func(t *TakeoverResult) string {
				if len(t.PreemptBack) == 0 {
					return "–"
				}
				return fmtMS(Summarize(t.PreemptBack).Median)
			}},
			{"machine busy during scenario (all processes)", "", func(t *TakeoverResult) string {
				return fmt.Sprintf("%.0f %% of all cores (load %s → %s)", t.Busy*100, firstField(t.LoadStart), firstField(t.LoadEnd))
			}},
			{"packets the capture dropped", "", func(t *TakeoverResult) string {
				if t.CaptureDrops < 0 {
					return "?"
				}
				return fmt.Sprint(t.CaptureDrops)
			}},
			{"scenario duration", "", func(t *TakeoverResult) string { return t.Elapsed.Round(time.Second).String() }},
		}
		for i, l := range lines {
			ivCell, expCell := "", ""
			if i == 0 {
				ivCell, expCell = fmtInterval(iv), fmtMS(expected)
			}
			fmt.Fprintf(b, "| %s | %s | %s |", ivCell, expCell, l.name)
			for _, impl := range impls {
				t := cells[impl]
				v := "not run"
				if t != nil {
					if len(t.Takeovers) == 0 && i < 5 {
						v = "no measurement"
					} else {
						v = l.val(t)
					}
				}
				fmt.Fprintf(b, " %s |", v)
			}
			fmt.Fprintf(b, " %s |\n", l.goal)
		}
	}
}

func (r *Report) writeResources(b *strings.Builder) {
	b.WriteString("\n## 3. CPU and memory\n\n")
	b.WriteString("One node is master for every instance (priority 150), a second node runs the same instances as backup\n")
	b.WriteString("(priority 100); each instance has its own VRID and VIP. Measured once every instance is master on the master\n")
	b.WriteString("node (all VIPs present there, none on the backup): CPU = utime + stime from /proc/PID/stat over the window,\n")
	b.WriteString("summed over all the implementation's processes on the node (keepalived: parent + VRRP child), scaled to\n")
	b.WriteString("10 s, also as % of one core; RSS = VmRSS from /proc/PID/status at the end of the window (MiB = 2^20 bytes).\n")
	fmt.Fprintf(b, "utime/stime count in clock ticks of %s, so one tick is %.1f %% of a core over 10 s; the schedstat rows sum\n",
		time.Second/time.Duration(clockTicks()), 100/float64(clockTicks())/10)
	b.WriteString("the threads' sum_exec_runtime (/proc/PID/task/TID/schedstat) over the same window, without that rounding.\n")
	b.WriteString("The wire rows come from a short capture on the bridge just before the window (not during it: tcpdump costs\n")
	b.WriteString("CPU too); at these packet rates tcpdump may drop packets, so they show the median interval only. A backup\n")
	b.WriteString("that sent no advert means it never missed the master for a Master_Down_Interval.\n\n")
	b.WriteString("| scenario | node | figure | vigil | keepalived | goal / reference |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	type key struct {
		n  int
		iv time.Duration
	}
	var keys []key
	for _, x := range r.Resources {
		k := key{x.Instances, x.Interval}
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, c key) int { return cmp.Compare(c.iv, a.iv) })
	for _, k := range keys {
		cells := map[string]*ResourceResult{}
		for _, x := range r.Resources {
			if x.Instances == k.n && x.Interval == k.iv {
				cells[x.Impl] = x
			}
		}
		name := fmt.Sprintf("%d × %s", k.n, fmtInterval(k.iv))
		cpuGoal := goalCPU
		if ref := cpuReference[fmt.Sprintf("%dx%s", k.n, k.iv)]; ref != "" {
			cpuGoal += "; " + ref
		}
		type line struct {
			node, name, goal string
			val              func(x *ResourceResult) string
		}
		lines := []line{
			{"master", "CPU per 10 s", cpuGoal, func(x *ResourceResult) string { return fmtCPU(x.Master, x.Window) }},
			{"master", "CPU per 10 s, from schedstat (ns)", "", func(x *ResourceResult) string { return fmtRuntime(x.Master, x.Window) }},
			{"master", "RSS", goalRSS + "; " + refRSS, func(x *ResourceResult) string { return fmtRSS(x.Master) }},
			{"master", "threads / open fds", "", func(x *ResourceResult) string { return fmtCounts(x.Master) }},
			{"backup", "CPU per 10 s", "", func(x *ResourceResult) string { return fmtCPU(x.Backup, x.Window) }},
			{"backup", "CPU per 10 s, from schedstat (ns)", "", func(x *ResourceResult) string { return fmtRuntime(x.Backup, x.Window) }},
			{"backup", "RSS", "", func(x *ResourceResult) string { return fmtRSS(x.Backup) }},
			{"backup", "threads / open fds", "", func(x *ResourceResult) string { return fmtCounts(x.Backup) }},
			{"wire", fmt.Sprintf("master's advert interval per VRID, median (expected %s)", fmtInterval(k.iv)), "", func(x *ResourceResult) string {
				if x.MasterGaps.N == 0 {
					return "–"
				}
				return fmtMS(x.MasterGaps.Median)
			}},
			{"wire", "VRIDs advertised by the master / adverts from the backup / packets the capture dropped", "", func(x *ResourceResult) string {
				drops := "?"
				if x.CaptureDrops >= 0 {
					drops = fmt.Sprint(x.CaptureDrops)
				}
				return fmt.Sprintf("%d / %d / %s", x.MasterVRIDs, x.BackupAdverts, drops)
			}},
			{"machine", "busy during window (all processes)", "", func(x *ResourceResult) string {
				return fmt.Sprintf("%.0f %% of all cores (load %s → %s)", x.Busy*100, firstField(x.LoadStart), firstField(x.LoadEnd))
			}},
			{"", "scenario duration", "", func(x *ResourceResult) string { return x.Elapsed.Round(time.Second).String() }},
		}
		for i, l := range lines {
			sc := ""
			if i == 0 {
				sc = name
			}
			fmt.Fprintf(b, "| %s | %s | %s |", sc, l.node, l.name)
			for _, impl := range impls {
				v := "not run"
				if x := cells[impl]; x != nil {
					v = l.val(x)
				}
				fmt.Fprintf(b, " %s |", v)
			}
			fmt.Fprintf(b, " %s |\n", l.goal)
		}
	}
}

func (r *Report) writeNotes(b *strings.Builder) {
	var lines []string
	for _, t := range r.Takeovers {
		scen := fmt.Sprintf("%s %s at %s", t.Impl, kindName(t.Kind), fmtInterval(t.Interval))
		for _, f := range t.Failures {
			lines = append(lines, fmt.Sprintf("%s: failed run: %s", scen, f))
		}
		for _, n := range sortedKeys(t.Notes) {
			lines = append(lines, fmt.Sprintf("%s: %s (%d of %d runs)", scen, n, t.Notes[n], t.Attempts))
		}
	}
	for _, x := range r.Resources {
		scen := fmt.Sprintf("%s %d × %s", x.Impl, x.Instances, fmtInterval(x.Interval))
		for _, n := range sortedKeys(x.Notes) {
			lines = append(lines, fmt.Sprintf("%s: %s", scen, n))
		}
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("\n## Observations\n\n")
	for _, l := range lines {
		fmt.Fprintf(b, "- %s\n", l)
	}
}

// writeRaw lists every measured takeover, in run order.
func (r *Report) writeRaw(b *strings.Builder) {
	if len(r.Takeovers) == 0 {
		return
	}
	b.WriteString("\n## Raw takeover times (ms, in run order)\n\n")
	for _, t := range r.Takeovers {
		var vs []string
		for _, d := range t.Takeovers {
			vs = append(vs, fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)))
		}
		fmt.Fprintf(b, "- %s %s at %s: %s\n", t.Impl, kindName(t.Kind), fmtInterval(t.Interval), strings.Join(vs, ", "))
	}
}

func kindName(k string) string {
	switch k {
	case KindGraceful:
		return "graceful stop"
	case KindHandoff:
		return "planned handoff"
	}
	return "link cut"
}

func sortedKeys(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func uniqueIntervals(rs []*TakeoverResult) []time.Duration {
	var ivs []time.Duration
	for _, t := range rs {
		if !slices.Contains(ivs, t.Interval) {
			ivs = append(ivs, t.Interval)
		}
	}
	slices.SortFunc(ivs, func(a, b time.Duration) int { return cmp.Compare(b, a) })
	return ivs
}

func fmtMS(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}

func fmtExcess(d time.Duration) string {
	return fmt.Sprintf("%+.3f ms", float64(d)/float64(time.Millisecond))
}

func fmtInterval(d time.Duration) string {
	if d >= time.Second && d%time.Second == 0 {
		return fmt.Sprintf("%d s", d/time.Second)
	}
	return fmt.Sprintf("%d ms", d/time.Millisecond)
}

// fmtCPU is the summed CPU time scaled to 10 s and as % of one core.
func fmtCPU(ps []ProcUsage, window time.Duration) string {
	if len(ps) == 0 || window <= 0 {
		return "–"
	}
	var sum time.Duration
	for _, p := range ps {
		sum += p.CPU
	}
	per10 := float64(sum) / float64(window) * 10
	s := fmt.Sprintf("%.2f s (%.2f %% of a core)", per10, per10*10)
	if len(ps) > 1 {
		var parts []string
		for i, p := range ps {
			parts = append(parts, fmt.Sprintf("%s %.2f s", role(i), float64(p.CPU)/float64(window)*10))
		}
		s += ": " + strings.Join(parts, " + ")
	}
	return s
}

// fmtCounts lists threads and open descriptors per process.
func fmtCounts(ps []ProcUsage) string {
	if len(ps) == 0 {
		return "–"
	}
	var parts []string
	for i, p := range ps {
		v := fmt.Sprintf("%d / %d", p.Threads, p.FDs)
		if len(ps) > 1 {
			v = role(i) + " " + v
		}
		parts = append(parts, v)
	}
	return strings.Join(parts, ", ")
}

// fmtRuntime is the summed scheduler runtime scaled to 10 s.
func fmtRuntime(ps []ProcUsage, window time.Duration) string {
	if len(ps) == 0 || window <= 0 {
		return "–"
	}
	var sum time.Duration
	lost := 0
	for _, p := range ps {
		sum += p.Runtime
		lost += p.LostThreads
	}
	per10 := float64(sum) / float64(window) * 10
	s := fmt.Sprintf("%.3f s (%.2f %%)", per10, per10*10)
	if lost > 0 {
		s += fmt.Sprintf(", %d threads exited during the window", lost)
	}
	return s
}

func fmtRSS(ps []ProcUsage) string {
	if len(ps) == 0 {
		return "–"
	}
	var sum int64
	for _, p := range ps {
		sum += p.RSS
	}
	s := fmt.Sprintf("%.1f MiB", mib(sum))
	if len(ps) == 1 && ps[0].RSSAnon+ps[0].RSSFile > 0 {
		s += fmt.Sprintf(" (anon %.1f + file %.1f)", mib(ps[0].RSSAnon), mib(ps[0].RSSFile))
	}
	if len(ps) > 1 {
		var parts []string
		for i, p := range ps {
			parts = append(parts, fmt.Sprintf("%s %.1f", role(i), mib(p.RSS)))
		}
		s += " (" + strings.Join(parts, " + ") + ")"
	}
	return s
}

// role names a process of a tree listed parent first.
func role(i int) string {
	if i == 0 {
		return "parent"
	}
	return "child"
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return s
}

// mdEscape keeps a value from breaking a table row.
func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}
