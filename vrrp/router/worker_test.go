package router

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// The worker runs items in order and finishes what is queued before close
// returns through done: a shutdown's address removal is never skipped.
func TestWorkerOrderAndDrain(t *testing.T) {
	w := newWorker(nil)
	var mu sync.Mutex
	var got []int
	for i := range 1000 {
		w.push(func() {
			if i%100 == 0 {
				time.Sleep(time.Millisecond) // a slow netlink call
			}
			mu.Lock()
			got = append(got, i)
			mu.Unlock()
		})
	}
	w.close()
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
		t.Fatal("worker did not drain")
	}
	if len(got) != 1000 {
		t.Fatalf("%d items ran", len(got))
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("item %d ran at position %d", v, i)
		}
	}
	w.push(func() { t.Error("item ran after close") })
	time.Sleep(10 * time.Millisecond)
}

// An idle worker holds no goroutine, and close on an idle worker is
// immediately done.
func TestWorkerIdle(t *testing.T) {
	w := newWorker(nil)
	ran := make(chan struct{})
	w.push(func() { close(ran) })
	<-ran
	for i := 0; ; i++ {
		w.mu.Lock()
		r := w.running
		w.mu.Unlock()
		if !r {
			break
		}
		if i > 1000 {
			t.Fatal("worker goroutine did not exit when idle")
		}
		time.Sleep(time.Millisecond)
	}
	w.close()
	select {
	case <-w.done:
	case <-time.After(time.Second):
		t.Fatal("idle worker not done after close")
	}
}

// A burst of at least burstRuns worker runs is released once, after the
// last worker went idle; small bursts are left to the runtime.
func TestBurstMemoryReleasesAfterBurst(t *testing.T) {
	released := make(chan struct{}, 4)
	b := &burstMemory{release: func() { released <- struct{}{} }}
	for range burstRuns - 1 {
		b.begin()
		b.end()
	}
	select {
	case <-released:
		t.Fatal("released after a small burst")
	case <-time.After(burstSettle + 200*time.Millisecond):
	}
	// One more run reaches the threshold; while a worker is still active
	// nothing happens.
	b.begin()
	b.begin()
	b.end()
	select {
	case <-released:
		t.Fatal("released while a worker was still running")
	case <-time.After(burstSettle + 200*time.Millisecond):
	}
	b.end()
	select {
	case <-released:
	case <-time.After(10 * time.Second):
		t.Fatal("no release after the burst ended")
	}
	b.mu.Lock()
	runs := b.runs
	b.mu.Unlock()
	if runs != 0 {
		t.Fatalf("runs = %d after release, want 0", runs)
	}
	b.stop()
}

// blockedWorker returns a worker busy in a job until release is closed.
func blockedWorker(t *testing.T) (w *worker, release chan struct{}) {
	t.Helper()
	w = newWorker(nil)
	release = make(chan struct{})
	started := make(chan struct{})
	w.push(func() { close(started); <-release })
	<-started
	return w, release
}

// A flood of lower-priority re-announcements queues one, however many
// arrive while the worker is busy (issue 11 item 2).
func TestWorkerCoalescesLowerPrio(t *testing.T) {
	w, release := blockedWorker(t)
	var mu sync.Mutex
	ran := 0
	for range 2000 {
		w.pushJob(jobLowerPrio, func() { mu.Lock(); ran++; mu.Unlock() })
	}
	if n := w.pending(); n != 1 {
		t.Fatalf("%d jobs queued after 2,000 lower-priority answers, want 1", n)
	}
	close(release)
	w.close()
	<-w.done
	if ran != 1 {
		t.Fatalf("%d re-announcements ran, want 1", ran)
	}
}

// Leaving master drops the queued work of the mastership (its VIP addition
// and announcements) and runs the release next, ahead of anything else
// queued; work that is not the mastership's still runs, after it.
func TestWorkerReleaseGoesFirst(t *testing.T) {
	w, release := blockedWorker(t)
	var mu sync.Mutex
	var got []string
	rec := func(s string) func() { return func() { mu.Lock(); got = append(got, s); mu.Unlock() } }
	w.pushJob(jobMaster, rec("add"))
	w.pushJob(jobMaster, rec("announce"))
	w.pushJob(jobLowerPrio, rec("announce-lower"))
	w.push(rec("remove-gone"))
	w.pushJob(jobRelease, rec("release"))
	w.pushJob(jobMaster, rec("add-next-term"))
	close(release)
	w.close()
	<-w.done
	want := "release remove-gone add-next-term"
	if s := strings.Join(got, " "); s != want {
		t.Fatalf("ran %q, want %q", s, want)
	}
}

// A panicking job is logged and counted; the worker goes on with the next.
func TestWorkerSurvivesPanic(t *testing.T) {
	w := newWorker(nil)
	w.log = slog.New(slog.DiscardHandler)
	ran := make(chan struct{})
	w.push(func() { panic("netlink library bug") })
	w.push(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("the job after a panic did not run")
	}
}
