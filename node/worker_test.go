package node

import (
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

func TestLogLimiter(t *testing.T) {
	l := newLogLimiter(time.Hour)
	if !l.allow("a") || l.allow("a") || !l.allow("b") {
		t.Fatal("limiter must allow the first line per key and drop repeats within the period")
	}
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
