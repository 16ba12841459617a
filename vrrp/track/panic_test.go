package track

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"vigil/internal/safe"
	"vigil/vrrp/policy"
)

// A tracker whose Run panics is reported down with the panic, restarted,
// and tracks on; the panic is counted.
func TestManagerRecoversTrackerPanic(t *testing.T) {
	noLeaks(t)
	old := restartMin
	restartMin = 20 * time.Millisecond
	t.Cleanup(func() { restartMin = old })
	f := &fake{name: "p", kind: policy.KindProcess}
	f.run = func(ctx context.Context, emit func(Update)) error {
		if f.runs.Load() == 1 {
			panic("tracker blew up")
		}
		emit(Update{Up: true, Detail: "tracking again"})
		<-ctx.Done()
		return nil
	}
	before := safe.Panics("tracker")
	m, err := NewManager(testLog(t), f)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan Update, 10)
	runManager(t, m, out)
	next := func() Update {
		select {
		case u := <-out:
			return u
		case <-time.After(5 * time.Second):
			t.Fatal("no update")
			return Update{}
		}
	}
	if u := next(); u.Up || u.Init || !strings.Contains(u.Detail, "tracker failed: track: process p: panic: tracker blew up") {
		t.Fatalf("after the panic: %+v", u)
	}
	if u := next(); !u.Up || u.Detail != "tracking again" {
		t.Fatalf("after the restart: %+v", u)
	}
	if n := safe.Panics("tracker"); n != before+1 {
		t.Errorf("recovered panics of tracker: %d, want %d", n, before+1)
	}
}

// A panic in a script tracker's runner is a failed run; the next runs go
// on.
func TestScriptRunnerPanicIsAFailedRun(t *testing.T) {
	noLeaks(t)
	s, err := NewScript(ScriptSpec{Name: "chk", Argv: []string{"/bin/true"}, Interval: 50 * time.Millisecond}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int32
	s.runFn = func(ctx context.Context) runResult {
		if runs.Add(1) == 1 {
			panic("runner blew up")
		}
		return runResult{ok: true, detail: "exit status 0", at: time.Now()}
	}
	before := safe.Panics("script")
	r := run(t, s)
	u := r.wait(t, 2*time.Second, "down", isDown)
	if u.Detail != "the script runner failed: panic: runner blew up" {
		t.Errorf("detail %q", u.Detail)
	}
	r.wait(t, 2*time.Second, "up", isUp)
	if n := safe.Panics("script"); n != before+1 {
		t.Errorf("recovered panics of script: %d, want %d", n, before+1)
	}
}

// A panic reading the process connector ends the connector only: the
// tracker goes on by scanning /proc.
func TestProcessConnectorPanic(t *testing.T) {
	requireConnector(t)
	noLeaks(t)
	t.Cleanup(func() { connRead = (*procConn).read })
	connRead = func(c *procConn, ctx context.Context, ch chan<- procEvent) {
		defer close(ch) // as read does
		panic("connector reader blew up")
	}
	before := safe.Panics("tracker")
	bin := sleeper(t, "vgtrk_sleepp")
	p, err := NewProcess(ProcessSpec{Name: "sl", Process: "vgtrk_sleepp"}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, p)
	r.wait(t, 2*time.Second, "settled down", isDown)
	cmd := start(t, bin, "100")
	r.wait(t, 2500*time.Millisecond, "up", isUp)
	stop(t, cmd)
	r.wait(t, 2500*time.Millisecond, "down", isDown)
	if n := safe.Panics("tracker"); n != before+1 {
		t.Errorf("recovered panics of tracker: %d, want %d", n, before+1)
	}
}
