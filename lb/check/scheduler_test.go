package check

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"vigil/internal/testlog"

	"vigil/internal/safe"
	"vigil/lb"
)

// fakeProber is a scripted prober for scheduler tests driven by hand.
type fakeProber struct{}

func (fakeProber) probe(context.Context) outcome { return ok("fake") }

// manual returns a scheduler whose probes never run by themselves: the
// test calls dispatch with chosen times and records outcomes, so grid
// arithmetic is checked exactly, with no dependence on the machine's load.
func manual(t *testing.T) *Scheduler {
	t.Helper()
	s := New(Config{Workers: 4})
	s.newProber = func(Spec) (prober, error) { return fakeProber{}, nil }
	return s
}

// take returns the probes dispatch queued.
func take(s *Scheduler) []*probe {
	var out []*probe
	for {
		select {
		case p := <-s.jobs:
			out = append(out, p)
		default:
			return out
		}
	}
}

func rs(i int) lb.DestKey {
	return lb.DestKey{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), Port: 80}
}

func tcpSpec(port uint16) Spec {
	return Spec{Type: TCP, Target: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Interval: time.Second, Jitter: NoJitter}
}

func TestGridNoDrift(t *testing.T) {
	s := manual(t)
	if err := s.Set(map[ID]Check{"a": {Owner{"vs", rs(1)}, tcpSpec(1)}}); err != nil {
		t.Fatal(err)
	}
	p := s.probes[mustKey(t, tcpSpec(1))]
	origin := p.origin
	// Wake up late by varying amounts and let probes take up to most of an
	// interval: a scheduler that sleeps "interval" after each probe would
	// drift by the sum of both; the grid must not move.
	for k := range 1000 {
		late := time.Duration(k%7) * 130 * time.Millisecond
		now := origin.Add(time.Duration(k)*time.Second + late)
		s.dispatch(now)
		got := take(s)
		if len(got) != 1 {
			t.Fatalf("tick %d: %d probes dispatched", k, len(got))
		}
		s.record(got[0], ok("fine"), now.Add(90*time.Millisecond))
		if want := origin.Add(time.Duration(k+1) * time.Second); !p.due.Equal(want) {
			t.Fatalf("tick %d: next due %v after origin, want %v", k, p.due.Sub(origin), want.Sub(origin))
		}
	}
}

func TestOverlapSkipsTick(t *testing.T) {
	s := manual(t)
	if err := s.Set(map[ID]Check{"a": {Owner{"vs", rs(1)}, tcpSpec(1)}}); err != nil {
		t.Fatal(err)
	}
	p := s.probes[mustKey(t, tcpSpec(1))]
	o := p.origin
	s.dispatch(o)
	first := take(s)
	s.dispatch(o.Add(time.Second)) // still running: skipped
	if n := len(take(s)); n != 0 || s.Skipped() != 1 {
		t.Fatalf("overlapping tick: %d dispatched, %d skipped", n, s.Skipped())
	}
	s.record(first[0], ok(""), o.Add(1500*time.Millisecond))
	s.dispatch(o.Add(2 * time.Second))
	if n := len(take(s)); n != 1 {
		t.Fatalf("next tick after the slow probe: %d dispatched", n)
	}
	// A stalled loop that wakes 3.5 intervals late runs once, not 3 times.
	s.record(p, ok(""), o.Add(2*time.Second))
	s.dispatch(o.Add(6500 * time.Millisecond))
	if n := len(take(s)); n != 1 || !p.due.Equal(o.Add(7*time.Second)) {
		t.Fatalf("after a stall: %d dispatched, next due %v", n, p.due.Sub(o))
	}
}

func TestRetryDelay(t *testing.T) {
	// keepalived: retry+1 failures spaced by delay_before_retry take the
	// checker down; the grid resumes after.
	s := manual(t)
	spec := tcpSpec(1)
	spec.Fall, spec.RetryDelay = 3, 200*time.Millisecond
	if err := s.Set(map[ID]Check{"a": {Owner{"vs", rs(1)}, spec}}); err != nil {
		t.Fatal(err)
	}
	p := s.probes[mustKey(t, spec)]
	o := p.origin
	now := o
	for i, wantUp := range []bool{true, true, false} {
		s.dispatch(now)
		got := take(s)
		if len(got) != 1 {
			t.Fatalf("failure %d: %d dispatched at %v", i+1, len(got), now.Sub(o))
		}
		s.record(got[0], fail(Failure, "refused"), now.Add(10*time.Millisecond))
		if p.st.Up != wantUp {
			t.Fatalf("after failure %d: up %v", i+1, p.st.Up)
		}
		if p.st.Failures != i+1 {
			t.Fatalf("after failure %d: Failures %d", i+1, p.st.Failures)
		}
		if wantUp {
			if want := now.Add(210 * time.Millisecond); !p.due.Equal(want) {
				t.Fatalf("retry %d due %v, want %v", i+1, p.due.Sub(o), want.Sub(o))
			}
			now = p.due
		}
	}
	// Down now: back on the grid, no retries.
	if want := o.Add(time.Second); !p.due.Equal(want) {
		t.Fatalf("down: next due %v, want %v", p.due.Sub(o), want.Sub(o))
	}
	// A success ends the run of failures.
	s.dispatch(p.due)
	s.record(take(s)[0], outcome{result: Success, detail: "ok"}, p.due.Add(10*time.Millisecond))
	if p.st.Failures != 0 {
		t.Fatalf("after a success: Failures %d", p.st.Failures)
	}
}

func mustKey(t *testing.T, s Spec) Key {
	t.Helper()
	k, err := s.Key()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDedupAndSetKeepsState(t *testing.T) {
	s := manual(t)
	a, b := tcpSpec(1), tcpSpec(2)
	if err := s.Set(map[ID]Check{
		"vs1/rs1": {Owner{"vs1", rs(1)}, a},
		"vs2/rs1": {Owner{"vs2", rs(1)}, a}, // same target and parameters: one probe
	}); err != nil {
		t.Fatal(err)
	}
	if len(s.probes) != 1 {
		t.Fatalf("%d probes for two identical checks", len(s.probes))
	}
	pa := s.probes[mustKey(t, a)]
	s.dispatch(pa.origin)
	if n := len(take(s)); n != 1 {
		t.Fatalf("%d probes dispatched for two identical checks", n)
	}
	for range 2 {
		s.record(pa, fail(Failure, "refused"), pa.origin)
	}
	for _, vs := range []string{"vs1", "vs2"} {
		if up, _, _ := s.View().RealServer(vs, rs(1)); up {
			t.Errorf("%s: a down probe did not fan out", vs)
		}
	}
	<-s.Changes()
	// Reload: a is kept (with its state and grid), b is new, vs2 is gone.
	if err := s.Set(map[ID]Check{
		"vs1/rs1": {Owner{"vs1", rs(1)}, a},
		"vs1/rs2": {Owner{"vs1", rs(2)}, b},
	}); err != nil {
		t.Fatal(err)
	}
	if s.probes[mustKey(t, a)] != pa || pa.st.Up || pa.removed {
		t.Error("reload reset the state of an unchanged check")
	}
	if up, _, _ := s.View().RealServer("vs2", rs(1)); !up {
		t.Error("a real server whose checks were removed is not up")
	}
	if up, _, _ := s.View().RealServer("vs1", rs(2)); !up {
		t.Error("a new check does not start up")
	}
	// Changing a parameter makes it another check: fresh state.
	a2 := a
	a2.Fall = 5
	if err := s.Set(map[ID]Check{"vs1/rs1": {Owner{"vs1", rs(1)}, a2}}); err != nil {
		t.Fatal(err)
	}
	if !pa.removed || len(s.probes) != 1 || len(s.due) != 1 {
		t.Errorf("old probe removed %v, %d probes, %d scheduled", pa.removed, len(s.probes), len(s.due))
	}
	if up, _, _ := s.View().RealServer("vs1", rs(1)); !up {
		t.Error("changed check kept the old state")
	}
	// A result of a removed probe that was in flight is dropped.
	s.record(pa, ok(""), time.Now())
}

func TestSetRejectsAll(t *testing.T) {
	s := manual(t)
	if err := s.Set(map[ID]Check{"a": {Owner{"vs", rs(1)}, tcpSpec(1)}}); err != nil {
		t.Fatal(err)
	}
	err := s.Set(map[ID]Check{
		"good": {Owner{"vs", rs(1)}, tcpSpec(3)},
		"bad1": {Owner{"vs", rs(2)}, Spec{Type: "smtp"}},
		"bad2": {Owner{"vs", rs(3)}, Spec{Type: HTTP, Target: lo4, Path: "x"}},
	})
	if err == nil || !strings.Contains(err.Error(), `check "bad1"`) || !strings.Contains(err.Error(), `check "bad2"`) {
		t.Fatalf("error %v, want both bad checks named", err)
	}
	if len(s.checks) != 1 || s.checks["a"].Spec.Target.Port() != 1 {
		t.Error("a failed Set changed the running checks")
	}
	// A check that validates but cannot be built (a missing CA file) fails
	// the whole Set too.
	real := New(Config{})
	err = real.Set(map[ID]Check{
		"tcp":   {Owner{"vs", rs(1)}, tcpSpec(1)},
		"https": {Owner{"vs", rs(2)}, Spec{Type: HTTPS, Target: lo4, TLSVerify: true, CAFile: "/nonexistent/ca.pem"}},
	})
	if err == nil || !strings.Contains(err.Error(), `check "https"`) || !strings.Contains(err.Error(), "/nonexistent/ca.pem") {
		t.Errorf("missing CA file: %v", err)
	}
	if len(real.checks) != 0 || len(real.probes) != 0 {
		t.Error("a failed Set added checks")
	}
}

func TestView(t *testing.T) {
	s := manual(t)
	f := func(port uint16, dyn bool) Spec {
		sp := tcpSpec(port)
		if dyn {
			sp = Spec{Type: File, FilePath: fmt.Sprintf("/run/w%d", port), Weight: 1, Dynamic: true, Interval: time.Second}
		}
		return sp
	}
	if err := s.Set(map[ID]Check{
		"r1a": {Owner{"vs", rs(1)}, f(1, false)},
		"r1b": {Owner{"vs", rs(1)}, f(2, false)},
		"r2a": {Owner{"vs", rs(2)}, f(3, true)},
		"r2b": {Owner{"vs", rs(2)}, f(4, true)},
	}); err != nil {
		t.Fatal(err)
	}
	set := func(sp Spec, up bool, w int, dyn bool) {
		p := s.probes[mustKey(t, sp)]
		p.st.Up, p.st.Weight, p.st.Dynamic = up, w, dyn
	}
	h := lb.Health(s.View())
	check := func(name string, r lb.DestKey, wantUp bool, wantW int, wantDyn bool) {
		t.Helper()
		if up, w, dyn := h.RealServer("vs", r); up != wantUp || w != wantW || dyn != wantDyn {
			t.Errorf("%s: %v %d %v, want %v %d %v", name, up, w, dyn, wantUp, wantW, wantDyn)
		}
	}
	check("all up", rs(1), true, 0, false)
	set(f(2, false), false, 0, false)
	check("one of two down", rs(1), false, 0, false)
	check("no checks", rs(9), true, 0, false)
	if up, _, _ := h.RealServer("other", rs(1)); !up {
		t.Error("checks leak across virtual servers")
	}
	set(f(3, true), true, 7, true)
	check("one dynamic", rs(2), true, 7, true)
	set(f(4, true), true, 3, true)
	check("two dynamic: smallest", rs(2), true, 3, true)
}

// listen accepts and closes TCP connections on loopback, counting them.
func listen(t *testing.T) (netip.AddrPort, *atomic.Int64, net.Listener) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	n := new(atomic.Int64)
	go acceptClose(l, n)
	return addrPort(t, l.Addr()), n, l
}

// acceptClose accepts and closes connections until l closes, counting
// them in n if set.
func acceptClose(l net.Listener, n *atomic.Int64) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		if n != nil {
			n.Add(1)
		}
		c.Close()
	}
}

func start(t *testing.T, s *Scheduler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls cond. The deadlines are seconds for events due within
// tens of milliseconds: generous so a loaded 2-core CI machine does not
// flake, while a real bug still fails.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunDownAndUp(t *testing.T) {
	target, _, l := listen(t)
	var mu sync.Mutex
	runs := map[string]int{}
	s := New(Config{Workers: 2, Observer: ObserverFunc(func(ty Type, r Result, d time.Duration) {
		mu.Lock()
		runs[string(ty)+"/"+r.String()]++
		mu.Unlock()
	})})
	spec := Spec{Type: TCP, Target: target, Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond, RetryDelay: 10 * time.Millisecond, Fall: 2}
	if err := s.Set(map[ID]Check{"a": {Owner{"vs", rs(1)}, spec}}); err != nil {
		t.Fatal(err)
	}
	<-s.Changes()
	start(t, s)
	up := func() bool { u, _, _ := s.View().RealServer("vs", rs(1)); return u }
	waitFor(t, "first result", 5*time.Second, func() bool { return !s.Statuses()["a"].Init })
	if !up() {
		t.Fatalf("listening target down: %+v", s.Statuses()["a"])
	}
	l.Close()
	waitFor(t, "down after the listener closed", 5*time.Second, func() bool { return !up() })
	select {
	case <-s.Changes():
	case <-time.After(5 * time.Second):
		t.Fatal("no change notification for down")
	}
	// The same port again (nothing else binds loopback ports here in the
	// meantime, almost surely; if something did the test would report it).
	l2, err := net.Listen("tcp", target.String())
	if err != nil {
		t.Skipf("port %v taken meanwhile: %v", target, err)
	}
	defer l2.Close()
	go acceptClose(l2, nil)
	waitFor(t, "up again", 5*time.Second, func() bool { return up() })
	mu.Lock()
	defer mu.Unlock()
	if runs["tcp/success"] < 2 || runs["tcp/failure"] < 2 {
		t.Errorf("observer saw %v", runs)
	}
}

func TestRunManyChecks(t *testing.T) {
	// 500 distinct checks (10 targets × 50 intervals) on one scheduler with
	// 16 workers; every one must get results and be up, each target is
	// probed by its own checks only, and identical checks are not probed
	// twice.
	const targets, variants = 10, 50
	addrs := make([]netip.AddrPort, targets)
	counts := make([]*atomic.Int64, targets)
	for i := range targets {
		addrs[i], counts[i], _ = listen(t)
	}
	var probes atomic.Int64
	s := New(Config{Workers: 16, Observer: ObserverFunc(func(Type, Result, time.Duration) { probes.Add(1) })})
	checks := map[ID]Check{}
	for i := range targets {
		for v := range variants {
			sp := Spec{Type: TCP, Target: addrs[i], Interval: 200*time.Millisecond + time.Duration(v)*time.Millisecond, Timeout: 100 * time.Millisecond}
			checks[ID(fmt.Sprintf("t%d/v%d", i, v))] = Check{Owner{"vs", rs(i)}, sp}
			// A duplicate owner for every check: fans out, no extra probe.
			checks[ID(fmt.Sprintf("t%d/v%d/dup", i, v))] = Check{Owner{"vs2", rs(i)}, sp}
		}
	}
	if err := s.Set(checks); err != nil {
		t.Fatal(err)
	}
	if len(s.probes) != targets*variants {
		t.Fatalf("%d probes for %d distinct checks", len(s.probes), targets*variants)
	}
	begin := time.Now()
	start(t, s)
	waitFor(t, "a result for every check", 20*time.Second, func() bool {
		for _, st := range s.Statuses() {
			if st.Init {
				return false
			}
		}
		return true
	})
	elapsed := time.Since(begin)
	for id, st := range s.Statuses() {
		if !st.Up {
			t.Errorf("%s down: %s", id, st.Detail)
		}
	}
	// Upper bound on probes: each of the 500 checks runs at most
	// elapsed/interval+1 times (+1 for a probe in flight at the read);
	// probing the 1000 owners separately would double it.
	maxProbes := int64(targets*variants) * (int64(elapsed/(200*time.Millisecond)) + 2)
	var accepted int64
	for _, c := range counts {
		accepted += c.Load()
	}
	if got := probes.Load(); got < targets*variants || got > maxProbes || accepted > maxProbes {
		t.Errorf("%d probes (%d accepted) in %v, want %d..%d", got, accepted, elapsed, targets*variants, maxProbes)
	}
}

func TestBusyWorkersDelayNotDrop(t *testing.T) {
	// One worker: the queue holds 4. Ten checks due at once: four are
	// queued, six wait in the heap with their due time (not skipped) and
	// go out as the queue drains.
	s := New(Config{Workers: 1})
	s.newProber = func(Spec) (prober, error) { return fakeProber{}, nil }
	checks := map[ID]Check{}
	for i := range 10 {
		checks[ID(fmt.Sprint(i))] = Check{Owner{"vs", rs(i)}, tcpSpec(uint16(i + 1))}
	}
	if err := s.Set(checks); err != nil {
		t.Fatal(err)
	}
	now := s.due[0].origin // all due: NoJitter, added together
	if wait := s.dispatch(now); wait != time.Millisecond {
		t.Errorf("full queue: next dispatch in %v, want 1ms", wait)
	}
	got := take(s)
	if len(got) != 4 || s.Skipped() != 0 {
		t.Fatalf("%d queued, %d skipped; want 4, 0", len(got), s.Skipped())
	}
	s.dispatch(now.Add(time.Millisecond))
	got = append(got, take(s)...)
	s.dispatch(now.Add(2 * time.Millisecond))
	got = append(got, take(s)...)
	if len(got) != 10 || s.Skipped() != 0 {
		t.Fatalf("%d dispatched, %d skipped after the queue drained; want 10, 0", len(got), s.Skipped())
	}
}

func TestLateDispatchCountsMissedTicks(t *testing.T) {
	s := manual(t)
	if err := s.Set(map[ID]Check{"a": {Owner{"vs", rs(1)}, tcpSpec(1)}}); err != nil {
		t.Fatal(err)
	}
	o := s.due[0].origin
	s.dispatch(o.Add(3500 * time.Millisecond)) // the loop stalled 3.5 intervals
	if n := len(take(s)); n != 1 || s.Skipped() != 3 {
		t.Errorf("%d dispatched, %d skipped; want 1, 3", n, s.Skipped())
	}
}

func TestChangesCoalesce(t *testing.T) {
	s := manual(t)
	spec := tcpSpec(1)
	spec.Fall = 1
	if err := s.Set(map[ID]Check{"a": {Owner{"vs", rs(1)}, spec}}); err != nil {
		t.Fatal(err)
	}
	p := s.probes[mustKey(t, spec)]
	// Set, down, up, down: four changes unread collapse into one value.
	s.record(p, fail(Failure, ""), time.Now())
	s.record(p, ok(""), time.Now())
	s.record(p, fail(Failure, ""), time.Now())
	<-s.Changes()
	select {
	case <-s.Changes():
		t.Error("changes did not coalesce")
	default:
	}
	// A result that changes nothing does not notify.
	s.record(p, fail(Failure, ""), time.Now())
	select {
	case <-s.Changes():
		t.Error("notified without a change")
	default:
	}
	if st := s.Statuses()["a"]; st.Up || st.Init {
		t.Errorf("status %+v", st)
	}
}

// ChangedOwners names every owner of a probe whose state changed, once;
// Set reports all owners of the new checks.
func TestChangedOwners(t *testing.T) {
	s := manual(t)
	spec := tcpSpec(1)
	spec.Fall = 1
	a, b, c := Owner{"web", rs(1)}, Owner{"api", rs(1)}, Owner{"web", rs(2)}
	other := tcpSpec(2)
	if err := s.Set(map[ID]Check{"a": {a, spec}, "b": {b, spec}, "c": {c, other}}); err != nil {
		t.Fatal(err)
	}
	owners := func() string {
		got := s.ChangedOwners()
		slices.SortFunc(got, func(x, y Owner) int { return strings.Compare(fmt.Sprint(x), fmt.Sprint(y)) })
		return fmt.Sprint(got)
	}
	if got := owners(); got != fmt.Sprint([]Owner{b, a, c}) {
		t.Fatalf("after Set: %s", got)
	}
	if got := owners(); got != "[]" {
		t.Fatalf("asked again: %s", got)
	}
	p := s.probes[mustKey(t, spec)]
	// fail runs p's next probe as a failure (the other probe may be due
	// at the same time: it is put back untouched).
	failP := func() {
		t.Helper()
		s.dispatch(p.due)
		found := false
		for _, q := range take(s) {
			if q == p {
				s.record(q, fail(Failure, "refused"), p.due)
				found = true
			} else {
				s.mu.Lock()
				q.running = false
				s.mu.Unlock()
			}
		}
		if !found {
			t.Fatal("the shared probe was not dispatched")
		}
	}
	failP()
	if got := owners(); got != fmt.Sprint([]Owner{b, a}) {
		t.Fatalf("after the shared probe went down: %s", got)
	}
	failP()
	if got := owners(); got != "[]" {
		t.Fatalf("a failure that changes nothing: %s", got)
	}
}

// keepalived's ha_suspend: the checks of a suspended virtual server are not
// probed (no skipped tick either) and keep their state; a probe shared
// with a virtual server that is not suspended still runs; lifting the
// suspension resumes on the grid.
func TestSuspended(t *testing.T) {
	s := manual(t)
	web, shared := tcpSpec(1), tcpSpec(2)
	web.Fall = 1
	if err := s.Set(map[ID]Check{
		"w":  {Owner{"web", rs(1)}, web},
		"ws": {Owner{"web", rs(2)}, shared},
		"as": {Owner{"api", rs(2)}, shared},
	}); err != nil {
		t.Fatal(err)
	}
	pw, ps := s.probes[mustKey(t, web)], s.probes[mustKey(t, shared)]
	o := pw.origin
	s.SetSuspended(map[string]bool{"web": true})
	for k := range 3 { // three ticks
		now := o.Add(time.Duration(k) * time.Second)
		s.dispatch(now)
		got := take(s)
		if len(got) != 1 || got[0] != ps {
			t.Fatalf("tick %d with web suspended: %d probes dispatched (want only the one api shares)", k, len(got))
		}
		s.record(got[0], ok(""), now)
	}
	if s.Skipped() != 0 {
		t.Errorf("suspended ticks counted as skipped: %d", s.Skipped())
	}
	st := s.Statuses()
	if !st["w"].Suspended || st["ws"].Suspended || st["as"].Suspended || !st["w"].Up || !st["w"].Init {
		t.Errorf("statuses: w %+v, ws suspended %v, as suspended %v", st["w"], st["ws"].Suspended, st["as"].Suspended)
	}
	s.SetSuspended(nil)
	s.dispatch(pw.due)
	if got := take(s); len(got) == 0 || !slices.Contains(got, pw) {
		t.Fatalf("after the suspension is lifted, web's probe did not run")
	}
}

// panicky panics in every probe while boom is set, and succeeds otherwise.
type panicky struct{ boom, panics *atomic.Int64 }

func (p panicky) probe(context.Context) outcome {
	if p.boom.Load() != 0 {
		p.panics.Add(1)
		var m map[string]int
		m["boom"]++ // a runtime error, as a bug would panic
	}
	return ok("fine again")
}

// countingProber succeeds and counts its probes.
type countingProber struct{ n *atomic.Int64 }

func (p countingProber) probe(context.Context) outcome { p.n.Add(1); return ok("counted") }

// A probe that panics does not end the process: the run counts as failed
// (Error, with a detail saying so), the check goes down by its fall count
// and up again by its rise count, the other checks go on being probed, and
// each panic is logged with its stack and counted.
func TestProbePanicRecovered(t *testing.T) {
	var boom, panics, good atomic.Int64
	boom.Store(1)
	var errRuns atomic.Int64
	var logs testlog.Buffer
	s := New(Config{Workers: 2, Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Observer: ObserverFunc(func(_ Type, r Result, _ time.Duration) {
			if r == Error {
				errRuns.Add(1)
			}
		})})
	s.newProber = func(sp Spec) (prober, error) {
		if sp.Target.Port() == 1 {
			return panicky{&boom, &panics}, nil
		}
		return countingProber{&good}, nil
	}
	spec := func(port uint16) Spec {
		sp := tcpSpec(port)
		sp.Interval, sp.Timeout, sp.RetryDelay, sp.Fall = 20*time.Millisecond, 10*time.Millisecond, 10*time.Millisecond, 2
		return sp
	}
	if err := s.Set(map[ID]Check{"bad": {Owner{"vs", rs(1)}, spec(1)}, "good": {Owner{"vs", rs(2)}, spec(2)}}); err != nil {
		t.Fatal(err)
	}
	before := safe.Panics(probeComponent)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	status := func(id ID) CheckStatus { return s.Statuses()[id] }
	waitFor(t, "the panicking check to go down", 5*time.Second, func() bool {
		st := status("bad")
		return !st.Up && st.Failures >= 2
	})
	if st := status("bad"); !strings.Contains(st.Detail, "probe panicked: assignment to entry in nil map") {
		t.Errorf("detail %q does not say the probe panicked", st.Detail)
	}
	// The other check goes on, and so do the panics: nothing is stuck.
	g, p := good.Load(), panics.Load()
	waitFor(t, "more probes of both checks", 5*time.Second, func() bool { return good.Load() >= g+3 && panics.Load() >= p+3 })
	if st := status("good"); !st.Up || st.Detail != "counted" {
		t.Errorf("the other check: %+v", st.Status)
	}

	boom.Store(0)
	waitFor(t, "the check to come up again", 5*time.Second, func() bool { st := status("bad"); return st.Up && st.Detail == "fine again" })
	cancel()
	<-done
	n := panics.Load()
	if got := safe.Panics(probeComponent) - before; got != uint64(n) {
		t.Errorf("vigil_panics_recovered_total{component=%q} grew by %d for %d panics", probeComponent, got, n)
	}
	if got := errRuns.Load(); got != n {
		t.Errorf("observer saw %d error results for %d panics", got, n)
	}
	out := logs.String()
	for _, want := range []string{"recovered from a panic", "component=" + probeComponent, "scheduler_test.go", "check probe panicked; counted as a failed run", "target=127.0.0.1:1"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}
