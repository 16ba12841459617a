package events

import (
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"vigil/internal/safe"
)

// A panic while the notifier handles an event (here in OnResult) is
// recovered, logged and counted; the next events' scripts still run.
func TestNotifierSurvivesPanic(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	logf := filepath.Join(dir, "log")
	s := script(t, dir, "s", `echo "$VIGIL_EVENT_SEQ" >> `+logf)
	log, lb := testLogger(t)
	b := NewBus(log)
	defer b.Close()
	rec := make(recorder, 10)
	var calls atomic.Int32
	before := safe.Panics("notify")
	NewNotifier(b, log, NotifyConfig{
		Instances: map[string]ScriptSpec{"VI_1": {Master: []string{s}, Backup: []string{s}}},
		OnResult: func(r ScriptResult) {
			if calls.Add(1) == 1 {
				panic("OnResult blew up")
			}
			rec.add(r)
		},
	})
	b.Publish(inst("VI_1", "backup", "master", "master_down_timer", 100))
	b.Publish(inst("VI_1", "master", "backup", "higher_priority_advert", 100))
	if r := rec.next(t); r.Err != nil || r.Event.Seq != 2 {
		t.Fatalf("the script after the panic: %+v", r)
	}
	if got := lines(logf); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("scripts ran for %q", got)
	}
	if n := safe.Panics("notify"); n != before+1 {
		t.Errorf("recovered panics of notify: %d, want %d", n, before+1)
	}
	if out := lb.String(); !strings.Contains(out, "recovered from a panic") || !strings.Contains(out, "OnResult blew up") {
		t.Errorf("panic not logged:\n%s", out)
	}
}

// A panic while the FIFO sink writes an event is recovered and counted; the
// next lines are written.
func TestFIFOSurvivesPanic(t *testing.T) {
	noLeaks(t)
	path := fifoPath(t)
	log, _ := testLogger(t)
	b := NewBus(log)
	defer b.Close()
	t.Cleanup(func() { testHookFIFODeliver = nil })
	testHookFIFODeliver = func(e Event) {
		if e.Name == "boom" {
			panic("fifo writer blew up")
		}
	}
	before := safe.Panics("fifo")
	if _, err := OpenFIFO(b, log, FIFOConfig{Path: path}); err != nil {
		t.Fatal(err)
	}
	r := openReader(t, path)
	b.Publish(inst("VI_1", "init", "backup", "startup", 100))
	b.Publish(inst("boom", "init", "backup", "startup", 100))
	b.Publish(inst("VI_1", "backup", "master", "master_down_timer", 100))
	want := []string{`INSTANCE "VI_1" BACKUP 100`, `INSTANCE "VI_1" MASTER 100`}
	if got := r.next(t, 2); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	r.none(t)
	if n := safe.Panics("fifo"); n != before+1 {
		t.Errorf("recovered panics of fifo: %d, want %d", n, before+1)
	}
}
