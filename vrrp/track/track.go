// Package track runs the objects a VRRP instance tracks — scripts, files,
// processes and interfaces (keepalived's vrrp_script, track_file,
// vrrp_track_process and track_interface) — and reports their state changes.
// The node turns the states into policy.Tracker values and lets vrrp/policy
// compute the effective priority or FAULT; this package knows nothing about
// weights or instances.
//
// # Trackers
//
// Each kind has a spec type and a constructor that validates it and fills in
// defaults: NewScript(ScriptSpec), NewFile(FileSpec), NewProcess(ProcessSpec)
// and NewInterface(InterfaceSpec). A Tracker observes its object in Run until
// the context ends and reports every change of state through an emit
// function that never blocks. The semantics of each kind (initial states,
// hysteresis, file parsing, process matching) are documented on its spec.
//
// # Manager
//
// A Manager runs many trackers and delivers their updates on one channel:
//
//	m, err := track.NewManager(log, script, file, iface)
//	go m.Run(ctx, updates) // returns after every goroutine it started ended
//	<-m.Ready()            // every tracker has its first real observation
//	states := m.States()   // current state of each tracker, for status
//
// Delivery policy: updates are coalesced per tracker. A tracker never waits
// for the consumer; the Manager keeps the latest state of each tracker and
// delivers it when the consumer is ready. A slow consumer therefore sees
// fewer intermediate states, never a stale final one: for each tracker the
// updates arrive in the order they happened, and its latest state is always
// delivered (unless the context ends first). Trackers do not delay each
// other. There is no order across trackers.
//
// A tracker whose Run fails (it cannot observe at all, e.g. no inotify
// instance) or panics is reported down — a file at its Init value — with
// the error as Detail, logged, and restarted with a backoff of 1 s doubling
// to 30 s. A panic is also logged with its stack and counted
// (vigil_panics_recovered_total{component="tracker"}).
//
// Trackers can be added and removed while the Manager runs (Add, Remove), so
// a configuration reload restarts only the trackers whose spec changed and
// the others keep their state.
package track

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"vigil/internal/safe"
	"vigil/vrrp/policy"
)

// Update is the state of one tracker at one moment.
type Update struct {
	Kind policy.Kind
	Name string
	// Up tells whether the object is healthy. Files are always up: their
	// Value carries the signal.
	Up bool
	// Value is a tracked file's number (0 for other kinds).
	Value int
	// Init is true while the tracker has not observed its object yet: Up
	// and Value are the configured initial assumption.
	Init bool
	// Detail says why, for logs and status ("exit status 1: ...",
	// "2 running (quorum 1)", "link down", ...).
	Detail string
	// At is when the state was observed.
	At time.Time
}

// Key identifies a tracker: names are unique per kind.
type Key struct {
	Kind policy.Kind
	Name string
}

func (k Key) String() string { return string(k.Kind) + " " + k.Name }

// Key returns the update's tracker key.
func (u Update) Key() Key { return Key{u.Kind, u.Name} }

// Tracker observes one object.
type Tracker interface {
	Kind() policy.Kind
	Name() string
	// Initial is the state before the first observation (Init is true).
	Initial() Update
	// Run observes the object until ctx ends and calls emit with each new
	// state; the first call settles the initial state (Init false). emit
	// never blocks and is called from one goroutine at a time. Kind, Name
	// and At may be left zero: the caller fills them in. Run returns nil
	// when ctx ends, and an error naming the tracker when it cannot observe
	// at all; every goroutine it started has ended when it returns.
	Run(ctx context.Context, emit func(Update)) error
}

// Manager runs trackers and delivers their updates (see the package doc).
type Manager struct {
	log    *slog.Logger
	notify chan struct{} // capacity 1: some slot has a pending update

	mu      sync.Mutex
	slots   []*slot
	byKey   map[Key]*slot
	ctx     context.Context // set by Run; nil before
	wg      sync.WaitGroup  // tracker goroutines
	started bool
	stopped bool // Run's context ended: Add starts nothing any more
	waiting int  // trackers of the first batch that have not settled
	ready   chan struct{}
}

type slot struct {
	t      Tracker
	key    Key
	cancel context.CancelFunc
	done   chan struct{} // closed when the tracker's goroutine ended

	mu      sync.Mutex
	cur     Update
	pending bool // cur not delivered yet
	settled bool
	removed bool
}

// Backoff bounds for restarting a failed tracker (variables for tests).
var (
	restartMin = time.Second
	restartMax = 30 * time.Second
)

// NewManager returns a Manager for trackers. Two trackers of the same kind
// and name are an error. log may be nil.
func NewManager(log *slog.Logger, trackers ...Tracker) (*Manager, error) {
	m := &Manager{
		log:    orDiscard(log),
		notify: make(chan struct{}, 1),
		byKey:  map[Key]*slot{},
		ready:  make(chan struct{}),
	}
	for _, t := range trackers {
		if err := m.add(t); err != nil {
			return nil, err
		}
	}
	m.waiting = len(m.slots)
	if m.waiting == 0 {
		close(m.ready)
	}
	return m, nil
}

func (m *Manager) add(t Tracker) error {
	if t == nil {
		return errors.New("track: nil tracker")
	}
	k := Key{t.Kind(), t.Name()}
	if _, dup := m.byKey[k]; dup {
		return fmt.Errorf("track: duplicate tracker %s", k)
	}
	init := t.Initial()
	init.Kind, init.Name, init.Init = k.Kind, k.Name, true
	s := &slot{t: t, key: k, cur: init}
	m.slots = append(m.slots, s)
	m.byKey[k] = s
	return nil
}

// Add adds a tracker; if the Manager runs, the tracker starts at once. Its
// state starts as Initial() and is not delivered until it changes.
func (m *Manager) Add(t Tracker) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.add(t); err != nil {
		return err
	}
	if m.started && !m.stopped {
		m.start(m.slots[len(m.slots)-1])
	}
	return nil
}

// Remove stops the tracker of that kind and name and forgets its state; it
// returns when the tracker's goroutines have ended, and false if there was
// no such tracker. One update of the tracker that the Manager had already
// taken for delivery may still arrive after Remove returns: consumers ignore
// updates for trackers they do not know.
func (m *Manager) Remove(kind policy.Kind, name string) bool {
	k := Key{kind, name}
	m.mu.Lock()
	s, ok := m.byKey[k]
	if !ok {
		m.mu.Unlock()
		return false
	}
	delete(m.byKey, k)
	m.slots = slices.DeleteFunc(m.slots, func(x *slot) bool { return x == s })
	s.mu.Lock()
	s.removed = true
	s.pending = false
	if !s.settled {
		s.settled = true
		m.settledLocked()
	}
	s.mu.Unlock()
	cancel, done := s.cancel, s.done
	m.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return true
}

// Ready is closed when every tracker given to NewManager has reported its
// first observation (or failed, or was removed). Trackers added later do not
// count. A node can wait for it, bounded by the longest script timeout,
// before starting its instances so that they do not start on assumptions.
func (m *Manager) Ready() <-chan struct{} { return m.ready }

// settledLocked counts one tracker of the first batch as settled. Called
// with m.mu held.
func (m *Manager) settledLocked() {
	if m.waiting > 0 {
		m.waiting--
		if m.waiting == 0 {
			close(m.ready)
		}
	}
}

// State returns the current state of a tracker.
func (m *Manager) State(kind policy.Kind, name string) (Update, bool) {
	m.mu.Lock()
	s, ok := m.byKey[Key{kind, name}]
	m.mu.Unlock()
	if !ok {
		return Update{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, true
}

// States returns the current state of every tracker, in the order they were
// added.
func (m *Manager) States() []Update {
	m.mu.Lock()
	slots := slices.Clone(m.slots)
	m.mu.Unlock()
	out := make([]Update, 0, len(slots))
	for _, s := range slots {
		s.mu.Lock()
		out = append(out, s.cur)
		s.mu.Unlock()
	}
	return out
}

// Run starts every tracker and delivers their updates to out until ctx
// ends; it then waits for all the goroutines it started and returns nil. It
// does not close out. Run may be called once.
func (m *Manager) Run(ctx context.Context, out chan<- Update) error {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return errors.New("track: Manager.Run called twice")
	}
	m.started = true
	m.ctx = ctx
	for _, s := range m.slots {
		m.start(s)
	}
	m.mu.Unlock()

	m.dispatch(ctx, out)

	// Trackers stop with ctx; from now on Add starts none, so that the
	// wait covers every goroutine.
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}

// start runs s's tracker in its own goroutine. Called with m.mu held.
func (m *Manager) start(s *slot) {
	ctx, cancel := context.WithCancel(m.ctx)
	s.cancel, s.done = cancel, make(chan struct{})
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(s.done)
		defer cancel()
		m.supervise(ctx, s)
	}()
}

// supervise runs a tracker, restarting it with a backoff when it fails.
func (m *Manager) supervise(ctx context.Context, s *slot) {
	emit := func(u Update) { m.emit(s, u) }
	backoff := restartMin
	for {
		began := time.Now()
		err := m.runTracker(ctx, s, emit)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = fmt.Errorf("track: %s: stopped unexpectedly", s.key)
		}
		if time.Since(began) > 2*restartMax {
			backoff = restartMin
		}
		m.log.Error("tracker failed; reporting it down and restarting it", "tracker", s.key.String(), "err", err, "retry_in", backoff)
		u := s.t.Initial()
		u.Init = false
		if s.key.Kind != policy.KindFile {
			u.Up = false
		}
		u.Detail = "tracker failed: " + err.Error()
		emit(u)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, restartMax)
	}
}

// runTracker runs s's tracker once; a panic in it is returned as an error.
// (The tracker's deferred calls have run by then: its goroutines ended, as
// Tracker.Run promises.)
func (m *Manager) runTracker(ctx context.Context, s *slot, emit func(Update)) (err error) {
	defer safe.Recover(m.log, "tracker", func(v any) {
		err = fmt.Errorf("track: %s: panic: %v", s.key, v)
	})
	return s.t.Run(ctx, emit)
}

// emit records u as s's latest state and wakes the dispatcher. It never
// blocks for long: only for the slot's and the Manager's mutexes.
func (m *Manager) emit(s *slot, u Update) {
	u.Kind, u.Name = s.key.Kind, s.key.Name
	if u.At.IsZero() {
		u.At = time.Now()
	}
	s.mu.Lock()
	if s.removed {
		s.mu.Unlock()
		return
	}
	s.cur = u
	s.pending = true
	first := !u.Init && !s.settled
	if first {
		s.settled = true
	}
	s.mu.Unlock()
	if first {
		m.mu.Lock()
		m.settledLocked()
		m.mu.Unlock()
	}
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

// dispatch delivers pending updates round-robin until ctx ends.
func (m *Manager) dispatch(ctx context.Context, out chan<- Update) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.notify:
		}
		m.mu.Lock()
		slots := slices.Clone(m.slots)
		m.mu.Unlock()
		for _, s := range slots {
			s.mu.Lock()
			u, ok := s.cur, s.pending && !s.removed
			s.pending = false
			s.mu.Unlock()
			if !ok {
				continue
			}
			select {
			case out <- u:
			case <-ctx.Done():
				return
			}
		}
	}
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// Tracker returns the running tracker of that kind and name.
func (m *Manager) Tracker(kind policy.Kind, name string) (Tracker, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.byKey[Key{kind, name}]
	if !ok {
		return nil, false
	}
	return s.t, true
}

// SameSpec reports whether two trackers observe the same thing the same
// way (same kind and equal normalized specs), so that a reload can keep the
// running one and its state.
func SameSpec(a, b Tracker) bool {
	type specced interface{ specValue() any }
	sa, oka := a.(specced)
	sb, okb := b.(specced)
	return oka && okb && a.Kind() == b.Kind() && reflect.DeepEqual(sa.specValue(), sb.specValue())
}

func (s *Script) specValue() any    { return s.Spec() }
func (f *File) specValue() any      { return f.Spec() }
func (p *Process) specValue() any   { return p.Spec() }
func (i *Interface) specValue() any { return i.Spec() }

// A feed is the same tracker when it is the same feed (its state comes from
// outside, so a new one would lose it).
func (f *Feed) specValue() any { return f }
