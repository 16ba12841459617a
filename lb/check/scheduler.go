package check

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"vigil/internal/safe"
	"vigil/lb"
)

// ID names one configured check; the integrator picks it (for example
// "http/198.51.100.11:8080/0"). It is the unit of ownership: several IDs may
// share one probe (see [Key]).
type ID string

// Owner is the real server a check belongs to.
type Owner struct {
	VS string
	RS lb.DestKey
}

// Check is one configured check of one real server.
type Check struct {
	Owner Owner
	Spec  Spec
}

// Status is the state of a check.
type Status struct {
	// Up is the check's state after rise/fall; before the first result it is
	// the start state (up, or down with Alpha) and Init is true.
	Up   bool
	Init bool
	// Weight is the weight an exec (misc_dynamic) or file (dynamic) check
	// last set; Dynamic says whether one did. It is kept while the check is
	// down and across exit-0 results, as keepalived keeps it.
	Weight  int
	Dynamic bool
	// Detail is the last probe's result in words; Since is when Up last
	// changed (or the check was added).
	Detail string
	Since  time.Time
	// Failures counts the probes that failed in a row up to the last one
	// (0 after a success): a check near its fall count, or one down for
	// long, shows here.
	Failures int
	// Last is when the last probe ended (zero before the first): a check
	// whose Last is several intervals old has stalled, and its verdict is
	// not fresh (the fleet view stops counting it).
	Last time.Time
}

// Observer is told of every probe, for metrics (for example
// vigil_check_runs_total{check_type,result} and
// vigil_check_duration_seconds{check_type}). It is called from worker
// goroutines, concurrently, and must not block.
type Observer interface {
	Probed(t Type, r Result, took time.Duration)
}

// ObserverFunc adapts a function to [Observer].
type ObserverFunc func(t Type, r Result, took time.Duration)

// Probed calls f.
func (f ObserverFunc) Probed(t Type, r Result, took time.Duration) { f(t, r, took) }

// Config configures a [Scheduler].
type Config struct {
	// Workers bounds the probes in flight (default 128). Due probes that
	// find every worker busy wait; ticks missed while waiting are skipped.
	Workers int
	// Log receives state changes at info/warn and probe results at debug
	// (default discard).
	Log *slog.Logger
	// Observer, if set, is told of every probe.
	Observer Observer
}

// Scheduler runs every check on one timer loop and a bounded worker pool.
//
// Probes run on a fixed grid: probe k of a check starts at origin +
// k×Interval, where origin is when the check was added plus a random delay
// of up to Jitter, so intervals never drift. A tick that finds the
// previous probe of the check still running is skipped, so a check never
// runs twice at once. Retries (see [Spec]) are the only off-grid probes.
type Scheduler struct {
	cfg     Config
	log     *slog.Logger
	kick    chan struct{}
	changes chan struct{}
	jobs    chan *probe
	// newProber builds probers; tests replace it.
	newProber func(Spec) (prober, error)

	mu     sync.Mutex
	probes map[Key]*probe
	checks map[ID]Check // normalized
	keys   map[ID]Key
	owners map[Owner][]ID
	// keyOwners are the owners of each probe's checks, and dirty the
	// owners whose combined state may have changed since ChangedOwners
	// was last called.
	keyOwners map[Key][]Owner
	dirty     map[Owner]struct{}
	due       probeHeap
	// skipped counts ticks skipped because a probe was still running or the
	// queue was full.
	skipped uint64
	// suspended are the virtual servers whose checks do not run now
	// (keepalived ha_suspend): a probe runs while any of its owners'
	// virtual servers is not suspended.
	suspended map[string]bool
}

// probe is one deduplicated check: its prober, grid and state.
type probe struct {
	key  Key
	spec Spec
	p    prober

	origin  time.Time
	due     time.Time
	idx     int // in Scheduler.due; -1 when not there
	running bool
	removed bool

	st    Status
	count int // consecutive results against st.Up
}

// New returns a scheduler with no checks.
func New(cfg Config) *Scheduler {
	if cfg.Workers <= 0 {
		cfg.Workers = 128
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{
		cfg:       cfg,
		log:       log,
		kick:      make(chan struct{}, 1),
		changes:   make(chan struct{}, 1),
		jobs:      make(chan *probe, cfg.Workers*4),
		newProber: newProber,
		probes:    map[Key]*probe{},
		checks:    map[ID]Check{},
		keys:      map[ID]Key{},
		owners:    map[Owner][]ID{},
		keyOwners: map[Key][]Owner{},
		dirty:     map[Owner]struct{}{},
	}
}

// Changes receives a value after any check's Up or dynamic weight changes
// and after Set; several changes between reads coalesce into one, so a
// reader recomputes the IPVS table once per burst.
func (s *Scheduler) Changes() <-chan struct{} { return s.changes }

// ChangedOwners returns, and forgets, the owners whose checks changed
// state or dynamic weight (or were set) since the last call: with
// Changes, a consumer can look at those real servers only.
func (s *Scheduler) ChangedOwners() []Owner {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Owner, 0, len(s.dirty))
	for o := range s.dirty {
		out = append(out, o)
	}
	clear(s.dirty)
	return out
}

func (s *Scheduler) notify() {
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

func (s *Scheduler) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Set replaces the configured checks. It validates all of them first and,
// if any is invalid, returns every error and changes nothing. Checks whose
// normalized Spec did not change keep their state and grid (a reload does
// not reset health); new ones start as their Spec says; removed ones stop.
func (s *Scheduler) Set(checks map[ID]Check) error {
	norm := make(map[ID]Check, len(checks))
	keys := make(map[ID]Key, len(checks))
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(checks)) {
		c := checks[id]
		n, err := c.Spec.Normalize()
		if err != nil {
			errs = append(errs, fmt.Errorf("check %q (%s %v): %w", id, c.Owner.VS, c.Owner.RS, err))
			continue
		}
		norm[id], keys[id] = Check{Owner: c.Owner, Spec: n}, n.key()
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Build probers for new keys before touching anything, so a bad CA file
	// fails the whole Set, and outside the lock, so reading one does not
	// stall the view.
	s.mu.Lock()
	known := make(map[Key]bool, len(s.probes))
	for k := range s.probes {
		known[k] = true
	}
	s.mu.Unlock()
	fresh := map[Key]*probe{}
	for _, id := range slices.Sorted(maps.Keys(keys)) {
		k := keys[id]
		if known[k] || fresh[k] != nil {
			continue
		}
		pr, err := s.newProber(norm[id].Spec)
		if err != nil {
			errs = append(errs, fmt.Errorf("check %q: %w", id, err))
			continue
		}
		fresh[k] = &probe{key: k, spec: norm[id].Spec, p: pr, idx: -1}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	s.mu.Lock()
	now := time.Now()
	for k, p := range fresh {
		if s.probes[k] != nil {
			continue // added by a concurrent Set meanwhile
		}
		var delay time.Duration
		if p.spec.Jitter > 0 {
			delay = rand.N(p.spec.Jitter)
		}
		p.origin = now.Add(delay)
		p.due = p.origin
		p.st = Status{Up: !p.spec.Alpha, Init: true, Since: now, Detail: "no result yet"}
		s.probes[k] = p
		heap.Push(&s.due, p)
	}
	inUse := map[Key]bool{}
	for _, k := range keys {
		inUse[k] = true
	}
	for k, p := range s.probes {
		if !inUse[k] {
			p.removed = true
			if p.idx >= 0 {
				heap.Remove(&s.due, p.idx)
			}
			delete(s.probes, k)
		}
	}
	s.checks, s.keys = norm, keys
	s.owners = map[Owner][]ID{}
	s.keyOwners = map[Key][]Owner{}
	for _, id := range slices.Sorted(maps.Keys(norm)) {
		o := norm[id].Owner
		s.owners[o] = append(s.owners[o], id)
		s.keyOwners[keys[id]] = append(s.keyOwners[keys[id]], o)
		s.dirty[o] = struct{}{}
	}
	s.log.Info("checks set", "checks", len(norm), "probes", len(s.probes), "new", len(fresh))
	s.mu.Unlock()
	s.wake()
	s.notify()
	return nil
}

// Run schedules the checks until ctx ends, then waits for the probes in
// flight and returns nil. Probes are cancelled through ctx, except a TCP
// connect in progress, which ends within its Timeout.
func (s *Scheduler) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.work(ctx)
		}()
	}
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := s.dispatch(time.Now())
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-s.kick:
		}
	}
}

// dispatch queues every due probe and returns how long until the next.
// When the queue is full (every worker busy), due probes wait in the heap
// and dispatch retries shortly; ticks they miss meanwhile are skipped, so
// an overloaded scheduler sheds load instead of queueing it without bound.
func (s *Scheduler) dispatch(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.due) > 0 && !s.due[0].due.After(now) {
		p := s.due[0]
		if s.isSuspended(p.key) {
			// Not probed, not a skipped tick: its state stays as it was.
			p.due = nextTick(p.origin, p.spec.Interval, now)
			heap.Fix(&s.due, 0)
			continue
		}
		if p.running {
			s.skipped++
			s.log.Debug("previous probe still running; tick skipped", "check", p.spec.Type, "target", p.spec.Target)
		} else {
			select {
			case s.jobs <- p:
				p.running = true
			default:
				s.log.Debug("all check workers busy; probes wait", "workers", s.cfg.Workers)
				return time.Millisecond
			}
		}
		if late := now.Sub(p.due); late >= p.spec.Interval {
			s.skipped += uint64(late / p.spec.Interval) // ticks missed waiting
		}
		p.due = nextTick(p.origin, p.spec.Interval, now)
		heap.Fix(&s.due, 0)
	}
	if len(s.due) == 0 {
		return time.Hour
	}
	return s.due[0].due.Sub(now)
}

// nextTick is the first grid point origin + k×interval after now.
func nextTick(origin time.Time, interval time.Duration, now time.Time) time.Time {
	if now.Before(origin) {
		return origin
	}
	k := now.Sub(origin)/interval + 1
	return origin.Add(k * interval)
}

func (s *Scheduler) work(ctx context.Context) {
	for {
		var p *probe
		select {
		case <-ctx.Done():
			return
		case p = <-s.jobs:
		}
		start := time.Now()
		o := s.runProbe(ctx, p, start)
		took := time.Since(start)
		if ctx.Err() != nil {
			return // stopping: the result says nothing about the target
		}
		if s.cfg.Observer != nil {
			s.cfg.Observer.Probed(p.spec.Type, o.result, took)
		}
		s.record(p, o, start.Add(took))
	}
}

// probeComponent names recovered probe panics in logs and in
// vigil_panics_recovered_total{component}.
const probeComponent = "check_probe"

// runProbe runs p's probe once, started at start. A panic in it (a bug,
// perhaps reached through what a server sent) is logged with its stack,
// counted, and becomes a failed run (Error): the worker goes on, and the
// check's rise/fall moves as for any failure.
func (s *Scheduler) runProbe(ctx context.Context, p *probe, start time.Time) (o outcome) {
	defer safe.Recover(s.log, probeComponent, func(v any) {
		o = fail(Error, "probe panicked: %v (a bug in vigil; the stack is in the log)", v)
		s.log.Error("check probe panicked; counted as a failed run", "check", p.spec.Type, "target", p.spec.Target, "panic", fmt.Sprint(v))
	})
	if _, ok := p.p.(selfTimed); ok {
		return p.p.probe(deadlineCtx{ctx, start.Add(p.spec.Timeout)})
	}
	pctx, cancel := context.WithTimeout(ctx, p.spec.Timeout)
	defer cancel()
	return p.p.probe(pctx)
}

// selfTimed is a prober that bounds itself by ctx.Deadline(), so the
// worker spares it a timer (a tenth of the CPU of a TCP check).
type selfTimed interface{ selfTimed() }

// deadlineCtx carries a deadline without a timer: Done is the parent's.
type deadlineCtx struct {
	context.Context
	at time.Time
}

func (c deadlineCtx) Deadline() (time.Time, bool) { return c.at, true }

// record applies one probe's outcome.
func (s *Scheduler) record(p *probe, o outcome, at time.Time) {
	s.mu.Lock()
	p.running = false
	if p.removed {
		s.mu.Unlock()
		return
	}
	was := p.st
	p.st.Init = false
	p.st.Detail = o.detail
	p.st.Last = at
	if o.result == Success {
		p.st.Failures = 0
	} else {
		p.st.Failures++
	}
	changed := p.observe(o.result == Success)
	if changed {
		p.st.Since = at
	}
	if o.setWeight && (!p.st.Dynamic || p.st.Weight != o.weight) {
		p.st.Weight, p.st.Dynamic = o.weight, true
		changed = true
	}
	// keepalived's delay_before_retry: a failing check that is not down
	// yet is probed again soon rather than on the next tick.
	if o.result != Success && p.st.Up && p.count > 0 && p.idx >= 0 {
		if r := at.Add(p.spec.RetryDelay); r.Before(p.due) {
			p.due = r
			heap.Fix(&s.due, p.idx)
			defer s.wake()
		}
	}
	if changed {
		for _, o := range s.keyOwners[p.key] {
			s.dirty[o] = struct{}{}
		}
	}
	st := p.st
	s.mu.Unlock()
	s.log.Debug("probe", "check", p.spec.Type, "target", p.spec.Target, "result", o.result, "detail", o.detail)
	if !changed {
		return
	}
	switch {
	case st.Up && !was.Up:
		s.log.Info("check up", "check", p.spec.Type, "target", p.spec.Target, "rise", p.spec.Rise, "detail", o.detail)
	case !st.Up && was.Up:
		s.log.Warn("check down", "check", p.spec.Type, "target", p.spec.Target, "fall", p.spec.Fall, "detail", o.detail)
	default:
		s.log.Info("check weight set", "check", p.spec.Type, "target", p.spec.Target, "weight", st.Weight, "detail", o.detail)
	}
	s.notify()
}

// observe applies rise and fall to one result and reports whether Up
// changed: Fall consecutive failures take an up check down, Rise
// consecutive successes bring a down one up; a result that agrees with the
// state resets the count.
func (p *probe) observe(success bool) bool {
	if success == p.st.Up {
		p.count = 0
		return false
	}
	p.count++
	need := p.spec.Rise
	if p.st.Up {
		need = p.spec.Fall
	}
	if p.count < need {
		return false
	}
	p.st.Up, p.count = success, 0
	return true
}

// CheckStatus is one check's configuration and state.
type CheckStatus struct {
	Check
	Key Key
	Status
	// Suspended: the check does not run now (see SetSuspended).
	Suspended bool
}

// Statuses returns every check's state, for status output and for a
// fleet-wide view that publishes local results.
func (s *Scheduler) Statuses() map[ID]CheckStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[ID]CheckStatus, len(s.checks))
	for id, c := range s.checks {
		k := s.keys[id]
		out[id] = CheckStatus{Check: c, Key: k, Status: s.probes[k].st, Suspended: s.isSuspended(k)}
	}
	return out
}

// SetSuspended sets the virtual servers whose checks do not run
// (keepalived's ha_suspend, while none of the virtual server's addresses
// is on this host); their real servers keep the state they have. A probe
// shared with a virtual server not suspended still runs.
func (s *Scheduler) SetSuspended(vss map[string]bool) {
	s.mu.Lock()
	s.suspended = maps.Clone(vss)
	s.mu.Unlock()
	s.wake()
}

// isSuspended reports whether every owner of the probe k is suspended;
// s.mu is held.
func (s *Scheduler) isSuspended(k Key) bool {
	if len(s.suspended) == 0 {
		return false
	}
	for _, o := range s.keyOwners[k] {
		if !s.suspended[o.VS] {
			return false
		}
	}
	return len(s.keyOwners[k]) > 0
}

// Skipped returns how many ticks were skipped because the previous probe
// was still running or the workers could not keep up.
func (s *Scheduler) Skipped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skipped
}

// probeHeap orders probes by due time.
type probeHeap []*probe

func (h probeHeap) Len() int           { return len(h) }
func (h probeHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h probeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *probeHeap) Push(x any) {
	p := x.(*probe)
	p.idx = len(*h)
	*h = append(*h, p)
}
func (h *probeHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	p.idx = -1
	*h = old[:len(old)-1]
	return p
}
