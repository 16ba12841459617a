package track

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"vigil/vrrp/policy"
)

// runManager runs m until the returned stop is called (or the test ends).
func runManager(t *testing.T, m *Manager, out chan<- Update) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- m.Run(ctx, out) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("Manager.Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Manager.Run did not return within 5s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// fake is a tracker driven by the test.
type fake struct {
	name  string
	kind  policy.Kind
	runs  atomic.Int32
	run   func(ctx context.Context, emit func(Update)) error
	value int
}

func (f *fake) Kind() policy.Kind {
	if f.kind == "" {
		return policy.KindScript
	}
	return f.kind
}
func (f *fake) Name() string    { return f.name }
func (f *fake) Initial() Update { return Update{Up: true, Value: f.value, Detail: "init"} }
func (f *fake) Run(ctx context.Context, emit func(Update)) error {
	f.runs.Add(1)
	return f.run(ctx, emit)
}

func TestManagerCoalescesForSlowConsumer(t *testing.T) {
	noLeaks(t)
	const n = 20000
	fast := &fake{name: "fast", kind: policy.KindFile, run: func(ctx context.Context, emit func(Update)) error {
		for i := 1; i <= n; i++ {
			emit(Update{Up: true, Value: i})
		}
		<-ctx.Done()
		return nil
	}}
	tick := make(chan struct{})
	other := &fake{name: "other", run: func(ctx context.Context, emit func(Update)) error {
		emit(Update{Up: false, Detail: "first"})
		<-tick // emitted while the consumer is not reading: must not block
		emit(Update{Up: true, Detail: "second"})
		<-ctx.Done()
		return nil
	}}
	m, err := NewManager(testLog(t), fast, other)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan Update) // unbuffered: the consumer is as slow as it gets
	runManager(t, m, out)
	select {
	case <-m.Ready():
	case <-time.After(2 * time.Second):
		t.Fatal("not ready")
	}
	close(tick)
	// Both trackers' latest states are delivered; per tracker in order.
	lastFast, gotSecond, count := 0, false, 0
	deadline := time.After(5 * time.Second)
	for lastFast != n || !gotSecond {
		select {
		case u := <-out:
			count++
			switch u.Name {
			case "fast":
				if u.Value <= lastFast {
					t.Fatalf("fast: value %d after %d: out of order", u.Value, lastFast)
				}
				lastFast = u.Value
			case "other":
				gotSecond = u.Detail == "second"
			}
			time.Sleep(time.Millisecond)
		case <-deadline:
			t.Fatalf("last states not delivered: fast at %d, other second %v", lastFast, gotSecond)
		}
	}
	if count > n/10 {
		t.Errorf("%d updates delivered: not coalesced", count)
	}
	if u, _ := m.State(policy.KindFile, "fast"); u.Value != n {
		t.Errorf("State: %+v", u)
	}
}

func TestManagerRestartsFailedTracker(t *testing.T) {
	noLeaks(t)
	old := restartMin
	restartMin = 20 * time.Millisecond
	t.Cleanup(func() { restartMin = old })
	f := &fake{name: "broken", value: 7, kind: policy.KindFile}
	f.run = func(ctx context.Context, emit func(Update)) error {
		if f.runs.Load() < 3 {
			return errors.New("no inotify for you")
		}
		emit(Update{Up: true, Value: 42})
		<-ctx.Done()
		return nil
	}
	m, err := NewManager(testLog(t), f)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan Update, 100)
	runManager(t, m, out)
	u := <-out
	if u.Value != 7 || !u.Up || u.Init || !strings.Contains(u.Detail, "tracker failed: no inotify for you") {
		t.Errorf("failed file tracker reported %+v, want its init value and the error", u)
	}
	for u.Value != 42 {
		select {
		case u = <-out:
		case <-time.After(2 * time.Second):
			t.Fatalf("not restarted; runs %d", f.runs.Load())
		}
	}
	if r := f.runs.Load(); r != 3 {
		t.Errorf("%d runs", r)
	}

	// Other kinds fail down.
	g := &fake{name: "g", run: func(ctx context.Context, emit func(Update)) error { return errors.New("boom") }}
	m2, _ := NewManager(nil, g)
	out2 := make(chan Update, 100)
	runManager(t, m2, out2)
	if u := <-out2; u.Up || u.Init {
		t.Errorf("failed tracker reported %+v, want down", u)
	}
}

func TestManagerAddRemove(t *testing.T) {
	noLeaks(t)
	mk := func(name string) *fake {
		return &fake{name: name, run: func(ctx context.Context, emit func(Update)) error {
			emit(Update{Up: true, Detail: name})
			<-ctx.Done()
			return nil
		}}
	}
	a := mk("a")
	m, err := NewManager(testLog(t), a)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Add(mk("a")); err == nil {
		t.Error("duplicate accepted")
	}
	if err := m.Add(&fake{name: "a", kind: policy.KindProcess, run: a.run}); err != nil {
		t.Errorf("same name, other kind: %v", err)
	}
	if !m.Remove(policy.KindProcess, "a") || m.Remove(policy.KindProcess, "a") {
		t.Error("Remove before Run")
	}
	out := make(chan Update, 10)
	runManager(t, m, out)
	if u := <-out; u.Name != "a" {
		t.Fatalf("%+v", u)
	}
	b := mk("b")
	if err := m.Add(b); err != nil {
		t.Fatal(err)
	}
	if u := <-out; u.Name != "b" || !u.Up || u.Init {
		t.Fatalf("%+v", u)
	}
	if !m.Remove(policy.KindScript, "a") {
		t.Fatal("Remove a")
	}
	if _, ok := m.State(policy.KindScript, "a"); ok {
		t.Error("state kept after Remove")
	}
	if got := m.States(); len(got) != 1 || got[0].Name != "b" {
		t.Errorf("States: %+v", got)
	}
	if err := m.Run(context.Background(), out); err == nil {
		t.Error("second Run accepted")
	}
}

func TestManagerStopsEverything(t *testing.T) {
	noLeaks(t)
	dir, script := stateScript(t)
	s, err := NewScript(ScriptSpec{Name: "s", Argv: []string{script}, Interval: 10 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFile(FileSpec{Name: "f", Path: dir + "/value"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProcess(ProcessSpec{Name: "p", Process: "vgtrk_none"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(testLog(t), s, f, p)
	if err != nil {
		t.Fatal(err)
	}
	// Nobody reads out: trackers must still run and stop.
	stop := runManager(t, m, make(chan Update))
	select {
	case <-m.Ready():
	case <-time.After(3 * time.Second):
		t.Fatalf("not ready: %+v", m.States())
	}
	time.Sleep(100 * time.Millisecond)
	stop()
}
