package node

import (
	"sync"
	"testing"
	"time"
)

// The worker runs items in order and finishes what is queued before close
// returns through done: a shutdown's address removal is never skipped.
func TestWorkerOrderAndDrain(t *testing.T) {
	w := newWorker()
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
	w := newWorker()
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
