package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"vigil/config"
	"vigil/node"
	"vigil/test/netlab"
	"vigil/test/peer"
)

// rolloutPushArgs are added to every `vigil config push` the rollout benchmark times; none is the
// default plan (--order backups-first: the masters apply after every other member). Set
// VIGIL_ROLLOUT_PUSH_ARGS (split at spaces), e.g. "--order all", to time another order.
var rolloutPushArgs = strings.Fields(os.Getenv("VIGIL_ROLLOUT_PUSH_ARGS"))

// rolloutPoll is how often the benchmark asks each member's own admin API for its verdict
// (VIGIL_ROLLOUT_POLL, default 20ms): a member's polled time is late by at most this plus one
// request. The members' own timestamps do not depend on it, but the polling's load does: 50
// members polled every 20 ms are 2,500 requests a second the daemons answer during a push.
var rolloutPoll = 20 * time.Millisecond

// rolloutBatch is how many members start at once.
const rolloutBatch = 10

// rolloutVirtualServers and rolloutRealServers size the large document: the table of the IPVS
// benchmarks (docs/benchmarks.md), about 1.1 MB of YAML.
const (
	rolloutVirtualServers = 1000
	rolloutRealServers    = 10
)

// BenchmarkRollout (issue 14, "Rollout"): the time from starting `vigil config push` (through n1,
// without --wait) until every member's OWN admin API reports the new version applied, with 5 and 50
// members, each a real vigil in its own namespace on one bridge, all following the fleet, one VRRP
// instance each at 1 s adverts, gossip profile lan. Each member is polled every 20 ms over its
// admin socket (GET /v1/config/history), so the figure does not depend on the pusher's gossip
// view; the member's own "applied" timestamp (the same host clock) gives the exact time too.
//
//   - small change: VIGIL_ROLLOUT_PUSHES pushes (default 20), alternating one backup's priority,
//     2 s apart; p50, p99 (nearest rank) and max of "every member applied", and what one
//     `vigil config push --wait` takes.
//   - 1,000 virtual servers × 10 real servers: VIGIL_ROLLOUT_LARGE pushes (default 3), alternating
//     one weight. Without IPVS in the kernel (this host) every member refuses the document when it
//     opens IPVS, after fetching, parsing and validating it: the figure is then "every member has
//     its verdict", which covers the announcement, the fetch and the validation, not the IPVS
//     programming (see docs/benchmarks.md for that, measured in the test VM).
//
// VIGIL_ROLLOUT_SIZES (default "5,50") and VIGIL_ROLLOUT_PROFILES (default "lan"; "lan,lan-fast"
// adds the faster profile) choose the fleets; the daemons run with GOMAXPROCS=1
// (VIGIL_ROLLOUT_GOMAXPROCS, see rolloutProcs). VIGIL_ROLLOUT_STATE=tmpfs puts the members' state
// directories on a tmpfs: every applied version is written durably (fsync) before it is reported,
// and here all members share one disk's journal, where each director has its own (the members'
// "fleet configuration applied" log lines give each step's time: fetch, compose, apply, record).
func BenchmarkRollout(b *testing.B) {
	if v := os.Getenv("VIGIL_ROLLOUT_POLL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("VIGIL_ROLLOUT_POLL=%q: want a duration such as 20ms", v)
		}
		rolloutPoll = d
	}
	sizes := []int{5, 50}
	if v := os.Getenv("VIGIL_ROLLOUT_SIZES"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 3 || n > 99 {
				b.Fatalf("VIGIL_ROLLOUT_SIZES=%q: want member counts from 3 to 99", v)
			}
			sizes = append(sizes, n)
		}
	}
	profiles := strings.Split(cmp.Or(os.Getenv("VIGIL_ROLLOUT_PROFILES"), "lan"), ",")
	pushes, large := envCount(b, "VIGIL_ROLLOUT_PUSHES", 20), envCount(b, "VIGIL_ROLLOUT_LARGE", 3)
	for _, profile := range profiles {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("members=%d/profile=%s", n, profile), func(b *testing.B) {
				for range b.N {
					rollout(b, n, profile, pushes, large)
				}
			})
		}
	}
}

func envCount(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a count", name, v)
	}
	return n
}

// rolloutInstance is every member's instance: one VRID on the bridge, 1 s adverts, the priority
// of member i (n1 the highest).
func rolloutInstance(i int) peer.Instance {
	return peer.Instance{Name: "vr51", VRID: 51, Priority: rolloutPriority(i), Version: 3, Interval: time.Second,
		VIPs: []netip.Prefix{vip}, Preempt: true}
}

func rolloutPriority(i int) int { return 200 - 2*i }

// rolloutDoc is the fleet document for n1..nN: the members' instance, each member's priority,
// alt lowering n2's by one (the small change); with vs > 0 also vs virtual servers of
// rolloutRealServers real servers each, alt changing one weight instead.
func rolloutDoc(n, vs int, alt bool) string {
	return peer.RolloutDocument(vip, names(n), func(i int) int {
		if alt && vs == 0 && i == 2 {
			return rolloutPriority(i) - 1
		}
		return rolloutPriority(i)
	}, vs, rolloutRealServers, alt)
}

// verdict is one member's answer for a version: applied (with its own timestamp) or refused.
type verdict struct {
	done, applied bool
	at            time.Time // the member's own "applied" time (history); zero when refused
	err           string
}

// appliedVerdict asks a member's history whether it applied version v.
func appliedVerdict(c *http.Client, v uint64) (verdict, error) {
	var hist []config.FleetEntry
	if err := peer.AdminJSON(c, "/v1/config/history", &hist); err != nil {
		return verdict{}, err
	}
	for _, e := range slices.Backward(hist) {
		if e.Version >= v {
			return verdict{done: true, applied: true, at: e.Applied}, nil
		}
	}
	return verdict{}, nil
}

// applied checks each member's history (the small change is never refused).
func applied(string) func(*http.Client, uint64) (verdict, error) { return appliedVerdict }

// anyVerdict asks a member's own summary (its entry of its own /v1/members) whether it applied
// or refused version v; applied versions are then timed by the history.
func anyVerdict(name string) func(*http.Client, uint64) (verdict, error) {
	return func(c *http.Client, v uint64) (verdict, error) {
		var ms []node.MemberStatus
		if err := peer.AdminJSON(c, "/v1/members", &ms); err != nil {
			return verdict{}, err
		}
		i := slices.IndexFunc(ms, func(m node.MemberStatus) bool { return m.Name == name })
		switch {
		case i < 0:
			return verdict{}, fmt.Errorf("%s is not among its own members", name)
		case ms[i].ConfigVersion >= v:
			return appliedVerdict(c, v)
		case ms[i].ConfigErrorVersion == v:
			return verdict{done: true, err: ms[i].ConfigError}, nil
		case ms[i].RolloutStopped && ms[i].RolloutVersion == v:
			// Held back by a staged rollout that another member's
			// failure stopped: this member keeps its version.
			return verdict{done: true, err: "rollout stopped: " + ms[i].Rollout}, nil
		}
		return verdict{}, nil
	}
}

// pushTiming is one timed push.
type pushTiming struct {
	cmd      time.Duration            // `vigil config push` until it returned
	polled   map[string]time.Duration // per member: push start → its verdict seen
	recorded map[string]time.Duration // per member that applied: push start → its own timestamp
	refused  map[string]string        // per member that refused: its error
}

func (p pushTiming) all() (polled, recorded time.Duration) {
	for _, d := range p.polled {
		polled = max(polled, d)
	}
	for _, d := range p.recorded {
		recorded = max(recorded, d)
	}
	return polled, recorded
}

// rolloutLab is a lab of n following members with an admin client each.
type rolloutLab struct {
	*lab
	n       int
	clients map[string]*http.Client
	version uint64 // the last version pushed
}

// timedPush pushes doc through n1 with extra args, polls every member for version want until
// each has a verdict (check says which), and returns the timing; an error when the push failed or
// a member gave no verdict within timeout.
func (r *rolloutLab) timedPush(b *testing.B, doc string, want uint64, check func(name string) func(*http.Client, uint64) (verdict, error),
	timeout time.Duration, args ...string) (pushTiming, error) {
	b.Helper()
	path := filepath.Join(r.lab.lab.Dir(), fmt.Sprintf("rollout-%d.yaml", want))
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		b.Fatal(err)
	}
	t := pushTiming{polled: map[string]time.Duration{}, recorded: map[string]time.Duration{}, refused: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	for _, name := range names(r.n) {
		c, ask := r.clients[name], check(name)
		wg.Go(func() {
			var last error
			for ctx.Err() == nil {
				v, err := ask(c, want)
				last = err
				if v.done {
					mu.Lock()
					t.polled[name] = time.Since(start)
					if v.applied {
						t.recorded[name] = v.at.Sub(start)
					} else {
						t.refused[name] = v.err
					}
					mu.Unlock()
					return
				}
				time.Sleep(rolloutPoll)
			}
			if last != nil {
				b.Logf("%s: last poll: %v", name, last)
			}
		})
	}
	cmdCtx, cmdCancel := context.WithTimeout(ctx, timeout)
	defer cmdCancel()
	cmdArgs := append([]string{"config", "push", path, "--socket", peer.VigilAdminSocket(r.lab.lab.Node("n1"))}, args...)
	out, err := exec.CommandContext(cmdCtx, r.bin, cmdArgs...).CombinedOutput()
	t.cmd = time.Since(start)
	if v, ok := pushedVersion(string(out)); ok {
		r.version = v // also when --wait failed: the version exists
	}
	if err != nil {
		cancel()
		wg.Wait()
		return t, fmt.Errorf("vigil %s after %.1fs: %w\n%s", strings.Join(cmdArgs[:3], " "), t.cmd.Seconds(), err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("pushed fleet version %d ", want)) {
		cancel()
		wg.Wait()
		return t, fmt.Errorf("vigil config push: not version %d:\n%s", want, out)
	}
	wg.Wait()
	if len(t.polled) != r.n {
		var missing []string
		for _, name := range names(r.n) {
			if _, ok := t.polled[name]; !ok {
				missing = append(missing, name)
			}
		}
		return t, fmt.Errorf("%w: version %d, within %s, from %s", errNoVerdict, want, timeout, strings.Join(missing, ", "))
	}
	return t, nil
}

// pushedVersion reads the version `vigil config push` printed.
func pushedVersion(out string) (uint64, bool) {
	_, rest, ok := strings.Cut(out, "pushed fleet version ")
	if !ok {
		return 0, false
	}
	f, _, _ := strings.Cut(rest, " ")
	v, err := strconv.ParseUint(f, 10, 64)
	return v, err == nil
}

// gossipRows sums every member's vigil_gossip_rows_total and vigil_gossip_row_bytes_total
// {direction="received"} by kind: what the fleet's gossip carried to the members. A member whose
// metrics cannot be read is left out (said on the benchmark's log).
func (r *rolloutLab) gossipRows(b *testing.B) map[string][2]float64 {
	b.Helper()
	sum := map[string][2]float64{}
	for _, name := range names(r.n) {
		text, err := r.metrics(name)
		if err != nil {
			b.Logf("%s: metrics: %v", name, err)
			continue
		}
		const rowsPrefix, bytesPrefix = `vigil_gossip_rows_total{direction="received",kind="`, `vigil_gossip_row_bytes_total{direction="received",kind="`
		for _, line := range strings.Split(text, "\n") {
			if rest, ok := strings.CutPrefix(line, rowsPrefix); ok {
				kind, _, _ := strings.Cut(rest, `"`)
				c := sum[kind]
				c[0] += sumMetric(text, rowsPrefix+kind+`"}`)
				c[1] += sumMetric(text, bytesPrefix+kind+`"}`)
				sum[kind] = c
			}
		}
	}
	return sum
}

// rowsPerPush is (after - before) / per, by kind: "kind rows (kB)".
func rowsPerPush(before, after map[string][2]float64, per int) string {
	var out []string
	for _, kind := range slices.Sorted(maps.Keys(after)) {
		d := [2]float64{after[kind][0] - before[kind][0], after[kind][1] - before[kind][1]}
		out = append(out, fmt.Sprintf("%s %.1f (%.1f kB)", kind, d[0]/float64(per), d[1]/float64(per)/1000))
	}
	return strings.Join(out, ", ")
}

// errNoVerdict is a push some member gave no verdict on in time (it did not hear of it, or is
// still working).
var errNoVerdict = errors.New("no verdict")

// rollout runs one fleet of n members and prints its figures.
func rollout(b *testing.B, n int, profile string, pushes, large int) {
	roomForNeighbours(b, n)
	l := newLab(b, n)
	// What an operator runs on a LAN: the profile, the default rejoin interval.
	l.follow, l.profile, l.rejoin = true, profile, "30s"
	if os.Getenv("VIGIL_ROLLOUT_STATE") == "tmpfs" {
		l.stateRoot = tmpfsDir(b, filepath.Join(l.lab.Dir(), "state-tmpfs"))
	}
	r := &rolloutLab{lab: l, n: n, clients: map[string]*http.Client{}}
	all := names(n)
	t0 := time.Now()
	nice := rolloutNice(b)
	renice(b, os.Getpid(), nice) // the polling too
	if procs := rolloutProcs(b); procs > 0 {
		l.env = append(l.env, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	// Members start in batches of rolloutBatch, each joining a fleet that has converged, as
	// directors are brought up one after another: 50 joins at once, on two cores, are a storm
	// of push/pull exchanges that memberlist answers late and takes for failures.
	for i, name := range all {
		p := l.start(name, []peer.Instance{rolloutInstance(i + 1)}, "test", "")
		renice(b, p.Pid(), nice)
		r.clients[name] = peer.AdminClient(peer.VigilAdminSocket(l.lab.Node(name)), 5*time.Second)
		if (i+1)%rolloutBatch == 0 && i+1 < n {
			r.waitFleet(b, i+1, 30*time.Second)
		}
	}
	for _, p := range l.procs { // threads started before the first pass
		renice(b, p.Pid(), nice)
	}
	if alive := r.waitFleet(b, n, 60*time.Second); alive < n {
		fmt.Printf("rollout %d members, %s: the fleet did not converge: a member lists only %d alive (the machine is starved); measuring anyway\n",
			n, profile, alive)
	} else {
		b.Logf("%d members started and joined (each lists %d alive) in %.1fs", n, n, time.Since(t0).Seconds())
	}
	// Let the start's broadcasts (each member's summary and instance rows) drain, as in a fleet
	// that has been running, then measure what the idle fleet costs the machine.
	time.Sleep(10 * time.Second)
	m0 := machineCPU(b)
	idle := r.fleetCPU(b, 5*time.Second)
	busy := machineCPU(b).busySince(m0)
	fmt.Printf("rollout %d members, %s: idle fleet %.1f %% of one core (%.2f %% per member); the machine (2 cores, other jobs included) %.0f %% busy; daemons and polling at nice %d, daemons at GOMAXPROCS %d (0: Go's default)\n",
		n, profile, idle, idle/float64(n), busy, nice, rolloutProcs(b))

	// The first push replaces every member's local file by the fleet's document: not timed.
	if _, err := r.timedPush(b, rolloutDoc(n, 0, false), 1, applied, time.Minute, rolloutPushArgs...); errors.Is(err, errNoVerdict) {
		fmt.Printf("rollout %d members, %s: the first push: %v\n", n, profile, err)
	} else if err != nil {
		b.Fatal(err)
	}
	time.Sleep(2 * time.Second)

	var all1, rec, cmdT []time.Duration
	var perMember []time.Duration
	var pollCPU, pushWall, fleetCPU time.Duration
	var incomplete []string
	m0 = machineCPU(b)
	rows0 := r.gossipRows(b)
	for i := range pushes {
		c0, w0, f0 := selfCPU(), time.Now(), r.daemonsCPU(b)
		const timeout = 30 * time.Second
		t, err := r.timedPush(b, rolloutDoc(n, 0, i%2 == 0), r.version+1, applied, timeout, rolloutPushArgs...)
		pollCPU, pushWall = pollCPU+selfCPU()-c0, pushWall+time.Since(w0)
		fleetCPU += r.daemonsCPU(b) - f0
		p, rc := t.all()
		switch {
		case errors.Is(err, errNoVerdict):
			// Counted as the timeout: a lower bound, said in the output.
			incomplete = append(incomplete, err.Error())
			p, rc = timeout, timeout
		case err != nil:
			b.Fatal(err)
		}
		// A fleet that misses three pushes in a row does not hold together (a starved
		// machine): more pushes would only cost 30 s each.
		stop := len(incomplete) >= 3 && len(incomplete) == i+1
		all1, rec, cmdT = append(all1, p), append(rec, rc), append(cmdT, t.cmd)
		for _, d := range t.polled {
			perMember = append(perMember, d)
		}
		if stop {
			break
		}
		time.Sleep(2 * time.Second)
	}
	label := fmt.Sprintf("rollout %d members, %s", n, profile)
	if len(rolloutPushArgs) > 0 {
		label += ", push " + strings.Join(rolloutPushArgs, " ")
	}
	if len(all1) > 0 {
		s := summarize(all1)
		b.ReportMetric(s.p50.Seconds(), "p50-s")
		b.ReportMetric(s.p99.Seconds(), "p99-s")
		b.ReportMetric(s.max.Seconds(), "max-s")
		fmt.Printf("%s, small change, %d pushes: every member applied (polled every %s): p50 %.3fs p99 %.3fs max %.3fs; "+
			"by the members' own timestamps: p50 %.3fs p99 %.3fs max %.3fs; one member (all %d samples): p50 %.3fs p99 %.3fs; "+
			"`config push` returned after p50 %.3fs; the polling took %.1f %% of one core during the pushes, the machine was %.0f %% busy; "+
			"the daemons used %.2f s of CPU per push (%.1f ms per member; %.0f %% of one core while a push ran, idle share included)\n",
			label, len(all1), rolloutPoll, s.p50.Seconds(), s.p99.Seconds(), s.max.Seconds(),
			summarize(rec).p50.Seconds(), summarize(rec).p99.Seconds(), summarize(rec).max.Seconds(),
			len(perMember), summarize(perMember).p50.Seconds(), summarize(perMember).p99.Seconds(), summarize(cmdT).p50.Seconds(),
			100*pollCPU.Seconds()/pushWall.Seconds(), machineCPU(b).busySince(m0),
			fleetCPU.Seconds()/float64(len(all1)), 1000*fleetCPU.Seconds()/float64(len(all1)*n), 100*fleetCPU.Seconds()/pushWall.Seconds())
		fmt.Printf("%s, small change: gossip rows each member received per push (broadcasts and push/pull, by kind; the fleet idle between pushes included): %s\n",
			label, rowsPerPush(rows0, r.gossipRows(b), len(all1)*n))
		if len(incomplete) > 0 {
			fmt.Printf("%s, small change: %d of %d pushes not applied everywhere in time, counted as 30s: %s\n",
				label, len(incomplete), len(all1), strings.Join(incomplete, "; "))
		}

		// One push with --wait, as an operator runs it: the command's own time (it reads the
		// pusher's gossip view every 250 ms).
		t, err := r.timedPush(b, rolloutDoc(n, 0, len(all1)%2 == 0), r.version+1, applied, time.Minute,
			append([]string{"--wait", "--timeout", "50s"}, rolloutPushArgs...)...)
		if err != nil {
			fmt.Printf("%s, small change: `vigil config push --wait`: %v\n", label, err)
		} else {
			p, _ := t.all()
			b.ReportMetric(t.cmd.Seconds(), "wait-s")
			fmt.Printf("%s, small change: `vigil config push --wait` took %.3fs (every member applied after %.3fs, polled)\n",
				label, t.cmd.Seconds(), p.Seconds())
		}
		time.Sleep(2 * time.Second)
	}

	var largeAll, largeCmd []time.Duration
	var outcome string
	size := len(rolloutDoc(n, rolloutVirtualServers, false))
	// Every member gives its own verdict on the large document: on a kernel without IPVS the
	// first refusal would otherwise stop a staged rollout (backups first), and the masters would
	// never fetch it.
	largeArgs := rolloutPushArgs
	if !slices.Contains(largeArgs, "--order") {
		largeArgs = append(slices.Clone(largeArgs), "--order", "all")
	}
	for i := range large {
		doc := rolloutDoc(n, rolloutVirtualServers, i%2 == 1)
		t, err := r.timedPush(b, doc, r.version+1, anyVerdict, 2*time.Minute, largeArgs...)
		if err != nil { // the push failed, or some member gave no verdict
			// Reported, not fatal: a push this large can outlast the command's own timeout.
			fmt.Printf("%s, %d virtual servers: push %d failed: %v\n", label, rolloutVirtualServers, i+1, err)
			break
		}
		p, _ := t.all()
		largeAll, largeCmd = append(largeAll, p), append(largeCmd, t.cmd)
		outcome = largeOutcome(b, t)
		time.Sleep(5 * time.Second)
	}
	if len(largeAll) > 0 {
		s := summarize(largeAll)
		b.ReportMetric(s.p50.Seconds(), "vs1000-p50-s")
		b.ReportMetric(s.max.Seconds(), "vs1000-max-s")
		fmt.Printf("%s, %d virtual servers × %d real servers (%d kB), %d pushes (%s): every member's verdict (polled every %s): p50 %.3fs max %.3fs; "+
			"`config push` (validates for every member) returned after p50 %.3fs; %s\n",
			label, rolloutVirtualServers, rolloutRealServers, size/1000, len(largeAll), strings.Join(largeArgs, " "), rolloutPoll, s.p50.Seconds(), s.max.Seconds(),
			summarize(largeCmd).p50.Seconds(), outcome)
	}
}

// largeOutcome says what the members did with the large document: applied, or refused for the
// lack of IPVS (this host). Any other refusal is a failure of the benchmark: the document is
// meant to be valid.
func largeOutcome(b *testing.B, t pushTiming) string {
	if len(t.refused) == 0 {
		return "applied by every member (IPVS programmed)"
	}
	for name, e := range t.refused {
		if !strings.Contains(e, "IPVS") && !strings.HasPrefix(e, "rollout stopped: ") {
			b.Fatalf("%s refused the large document for another reason than IPVS: %s", name, e)
		}
	}
	applied := len(t.polled) - len(t.refused)
	var some string
	for _, e := range t.refused {
		some = e
		break
	}
	return fmt.Sprintf("%d applied, %d refused it at apply for want of IPVS in the kernel (%q)", applied, len(t.refused), some)
}

// waitFleet waits until every member lists every member alive, and returns the fewest alive
// members any member listed last: on a starved machine memberlist suspects members that answer
// late, and the benchmark then goes on and says so rather than measuring nothing.
func (r *rolloutLab) waitFleet(b *testing.B, k int, timeout time.Duration) int {
	b.Helper()
	fewest := k
	deadline := time.Now().Add(timeout)
	for _, name := range names(k) {
		var alive int
		err := netlab.Poll(max(time.Until(deadline), time.Second), 200*time.Millisecond, func() (bool, error) {
			alive, _ = peer.AliveMembers(r.clients[name]) // 0 while the daemon does not answer yet
			return alive == k, nil
		})
		if err != nil {
			b.Logf("%s lists %d of %d members alive: %v", name, alive, k, err)
		}
		fewest = min(fewest, alive)
	}
	return fewest
}

// fleetCPU returns the CPU all members' daemons use over window, in percent of one core.
func (r *rolloutLab) fleetCPU(b *testing.B, window time.Duration) float64 {
	b.Helper()
	c0 := r.daemonsCPU(b)
	time.Sleep(window)
	return 100 * (r.daemonsCPU(b) - c0).Seconds() / window.Seconds()
}

// daemonsCPU is the CPU time all members' daemons have used so far.
func (r *rolloutLab) daemonsCPU(b *testing.B) time.Duration {
	b.Helper()
	var sum time.Duration
	for _, p := range r.procs {
		cpu, _, err := procUsage(p.Pid())
		if err != nil {
			b.Fatal(err)
		}
		sum += cpu
	}
	return sum
}

// rolloutNice is the nice value the fleet's daemons and the benchmark run at (VIGIL_ROLLOUT_NICE,
// default -10): this 2-core machine is shared with other jobs (builds, test VMs), which otherwise
// starve 50 daemons until memberlist declares live members dead. 0 leaves them alone.
func rolloutNice(b *testing.B) int {
	v := os.Getenv("VIGIL_ROLLOUT_NICE")
	if v == "" {
		return -10
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < -20 || n > 19 {
		b.Fatalf("VIGIL_ROLLOUT_NICE=%q: want a nice value from -20 to 19", v)
	}
	return n
}

// rolloutProcs is the GOMAXPROCS of the fleet's daemons (VIGIL_ROLLOUT_GOMAXPROCS, default 1; 0
// leaves Go's default, the number of cores). Fifty daemons share this machine's two cores, where
// each director would have a machine of its own: with two Ps every idle daemon's many small
// wake-ups (gossip every 200 ms, probes, VRRP timers) also wake and spin the second P, which
// doubled the idle fleet's cost here (a 50-member idle fleet, CPU over 5 s: 147 % of one core with
// the default, 72 % with GOMAXPROCS=1; a 20 s CPU profile of one member shows scheduler and futex
// time on top, no vigil function) and left too little of the machine for the rollout itself.
func rolloutProcs(b *testing.B) int {
	v := os.Getenv("VIGIL_ROLLOUT_GOMAXPROCS")
	if v == "" {
		return 1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("VIGIL_ROLLOUT_GOMAXPROCS=%q: want a count (0: Go's default)", v)
	}
	return n
}

// renice sets the nice value of every thread of pid (Linux's setpriority applies to one thread;
// threads started later inherit it).
func renice(b *testing.B, pid, nice int) {
	if nice == 0 {
		return
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil && err != syscall.ESRCH {
			b.Fatalf("renice %d of pid %d: %v", nice, pid, err)
		}
	}
}

// cpuTimes are the machine's CPU counters (/proc/stat, all CPUs): busy and total ticks.
type cpuTimes struct{ busy, total float64 }

func machineCPU(b *testing.B) cpuTimes {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	var t cpuTimes
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		t.total += v
		if i != 3 && i != 4 { // idle, iowait
			t.busy += v
		}
	}
	return t
}

// busySince is the share of the machine's CPU time that was busy since t0, in percent.
func (t cpuTimes) busySince(t0 cpuTimes) float64 {
	if t.total == t0.total {
		return 0
	}
	return 100 * (t.busy - t0.busy) / (t.total - t0.total)
}

// stats are nearest-rank percentiles of a sample.
type stats struct{ p50, p99, max time.Duration }

func summarize(d []time.Duration) stats {
	if len(d) == 0 {
		return stats{}
	}
	s := slices.Sorted(slices.Values(d))
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(float64(len(s))*p)) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return stats{p50: rank(0.50), p99: rank(0.99), max: s[len(s)-1]}
}

// selfCPU is the benchmark process's own CPU time (its polling).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestRolloutHelpers checks the benchmark's arithmetic: nearest-rank percentiles (rank ⌈p·n⌉, so
// with fewer than 100 samples p99 is the largest) and the version read from push's output.
func TestRolloutHelpers(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	for _, c := range []struct {
		in   []time.Duration
		want stats
	}{
		{nil, stats{}},
		{ms(7), stats{7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond}},
		{ms(4, 1, 3, 2), stats{2 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond}},
		{ms(5, 1, 4, 2, 3), stats{3 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond}},
	} {
		if got := summarize(c.in); got != c.want {
			t.Errorf("summarize(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(100-i) * time.Millisecond
	}
	if s := summarize(hundred); s.p50 != 50*time.Millisecond || s.p99 != 99*time.Millisecond || s.max != 100*time.Millisecond {
		t.Errorf("summarize(1..100 ms) = %+v, want p50 50ms, p99 99ms, max 100ms", s)
	}
	for out, want := range map[string]uint64{
		"pushed fleet version 12 (sha256 0123abcd) through n1\n":                12,
		"pushed fleet version 3 (sha256 x) through n1\nn1: applied version 3\n": 3,
		"vigil config push: refused":                                            0,
	} {
		if v, ok := pushedVersion(out); v != want || ok != (want != 0) {
			t.Errorf("pushedVersion(%q) = %d, %v, want %d", out, v, ok, want)
		}
	}
}

// roomForNeighbours raises the kernel's neighbour table limits for the length of the benchmark:
// they are one table for every namespace (net.ipv4.neigh.default.gc_thresh3, 1024 by default),
// and n members that all talk to each other and to the multicast group need about n×n entries.
// At 50 members the default overflowed ("arp_cache: neighbor table overflow!" in dmesg): packets
// were dropped, memberlist took live members for failed and VRRP backups took over.
func roomForNeighbours(b *testing.B, n int) {
	need := 4 * n * n
	for _, fam := range []string{"ipv4", "ipv6"} {
		for i, min := range []int{need / 4, need / 2, need} {
			key := fmt.Sprintf("/proc/sys/net/%s/neigh/default/gc_thresh%d", fam, i+1)
			old, err := os.ReadFile(key)
			if err != nil {
				b.Fatalf("neighbour table limit: %v", err)
			}
			var cur int
			fmt.Sscan(strings.TrimSpace(string(old)), &cur)
			if cur >= min {
				continue
			}
			if err := os.WriteFile(key, []byte(strconv.Itoa(min)), 0o644); err != nil {
				b.Fatalf("raising the neighbour table limit %s: %v", key, err)
			}
			b.Cleanup(func() { os.WriteFile(key, old, 0o644) })
		}
	}
}

// tmpfsDir mounts a small tmpfs at dir for the benchmark's length.
func tmpfsDir(b *testing.B, dir string) string {
	b.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		b.Fatalf("mount tmpfs on %s: %v: %s", dir, err, out)
	}
	b.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			b.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
