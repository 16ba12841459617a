package events

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestSubscribersGetEveryEventInOrder(t *testing.T) {
	noLeaks(t)
	b := NewBus(nil)
	defer b.Close()
	const publishers, each = 4, 250
	subs := []*Subscription{b.Subscribe(2000), b.Subscribe(2000), b.Subscribe(2000)}
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				b.Publish(inst(fmt.Sprintf("VI_%d", p), "backup", "master", "preempted", i))
			}
		})
	}
	wg.Wait()
	for i, s := range subs {
		var last uint64
		for n := 0; n < publishers*each; n++ {
			select {
			case e := <-s.C():
				if e.Kind == KindDropped {
					t.Fatalf("sub %d: unexpected marker %+v", i, e)
				}
				if e.Seq != last+1 {
					t.Fatalf("sub %d: seq %d after %d", i, e.Seq, last)
				}
				if e.Time.IsZero() {
					t.Fatalf("sub %d: no time on %+v", i, e)
				}
				last = e.Seq
			case <-time.After(5 * time.Second):
				t.Fatalf("sub %d: stalled after seq %d", i, last)
			}
		}
	}
	if got := b.LastSeq(); got != publishers*each {
		t.Fatalf("LastSeq = %d", got)
	}
}

func TestPublishKeepsGivenTime(t *testing.T) {
	noLeaks(t)
	b := NewBus(nil)
	defer b.Close()
	s := b.Subscribe(4)
	at := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	e := inst("VI_1", "init", "backup", "startup", 100)
	e.Time, e.Seq, e.Dropped = at, 99, 7
	b.Publish(e)
	got := <-s.C()
	if !got.Time.Equal(at) || got.Seq != 1 || got.Dropped != 0 {
		t.Fatalf("got %+v", got)
	}
}

// A reader that falls behind loses the oldest events, sees a marker where
// the gap is, and still gets the newest ones.
func TestOverflowDropsOldestWithMarker(t *testing.T) {
	noLeaks(t)
	b := NewBus(nil)
	defer b.Close()
	s := b.Subscribe(4)
	const total = 50
	for i := range total {
		b.Publish(inst("VI_1", "backup", "master", "preempted", i))
	}
	// Markers may follow each other: while the reader holds back a marker,
	// more events can be dropped and a second marker is queued. Their sum
	// is the gap before the next event.
	var last, delivered, dropped, gap uint64
	var got []string
	for last < total {
		select {
		case e := <-s.C():
			if e.Kind == KindDropped {
				got = append(got, fmt.Sprintf("dropped %d", e.Dropped))
				if e.Dropped == 0 || e.Seq != 0 {
					t.Fatalf("bad marker %+v", e)
				}
				dropped += e.Dropped
				gap += e.Dropped
				continue
			}
			got = append(got, fmt.Sprint(e.Seq))
			if e.Seq != last+gap+1 {
				t.Fatalf("event %d after %d with %d reported dropped (%v)", e.Seq, last, gap, got)
			}
			last, gap = e.Seq, 0
			delivered++
		case <-time.After(5 * time.Second):
			t.Fatalf("stalled: %v", got)
		}
	}
	if delivered+dropped != total || dropped == 0 {
		t.Fatalf("delivered %d + dropped %d != %d: %v", delivered, dropped, total, got)
	}
	if s.Dropped() != dropped {
		t.Fatalf("Dropped() = %d, markers said %d", s.Dropped(), dropped)
	}
	// The newest events are the ones kept: at most buffer+1 were delivered.
	if delivered > 5 {
		t.Fatalf("delivered %d with a buffer of 4: %v", delivered, got)
	}
	t.Logf("stream: %v", got)
}

func TestCloseDrainsThenClosesChannel(t *testing.T) {
	noLeaks(t)
	b := NewBus(nil)
	s := b.Subscribe(100)
	for i := range 10 {
		b.Publish(inst("VI_1", "backup", "master", "preempted", i))
	}
	var got []uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range s.C() {
			got = append(got, e.Seq)
			time.Sleep(5 * time.Millisecond) // a slowish reader
		}
	}()
	b.Close()
	<-done
	if len(got) != 10 || got[0] != 1 || got[9] != 10 {
		t.Fatalf("got %v", got)
	}
	b.Publish(inst("VI_1", "master", "backup", "shutdown", 1)) // discarded, no panic
	if b.LastSeq() != 10 {
		t.Fatalf("published after Close: %d", b.LastSeq())
	}
	s2 := b.Subscribe(1)
	if _, ok := <-s2.C(); ok {
		t.Fatal("subscription to a closed bus delivered")
	}
	b.Close() // idempotent
}

func TestShutdownCutsStuckSubscriber(t *testing.T) {
	noLeaks(t)
	b := NewBus(nil)
	s := b.Subscribe(10)
	for i := range 5 {
		b.Publish(inst("VI_1", "backup", "master", "preempted", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := b.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown with a stuck subscriber returned nil")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	n := 0
	for range s.C() { // closed, possibly after the event the pump held
		n++
	}
	if n > 1 {
		t.Fatalf("%d events still delivered after the cut", n)
	}
}

func TestSubscriptionClose(t *testing.T) {
	noLeaks(t)
	b := NewBus(nil)
	defer b.Close()
	s := b.Subscribe(1)
	keep := b.Subscribe(10)
	b.Publish(inst("VI_1", "init", "backup", "startup", 100))
	s.Close() // while its pump is blocked sending
	if _, ok := <-s.C(); ok {
		// the event the pump held may not be delivered after Close; the
		// channel must be closed right after
		if _, ok := <-s.C(); ok {
			t.Fatal("channel open after Close")
		}
	}
	s.Close() // idempotent
	b.Publish(inst("VI_1", "backup", "master", "master_down_timer", 100))
	for want := uint64(1); want <= 2; want++ {
		if e := <-keep.C(); e.Seq != want {
			t.Fatalf("other subscriber got seq %d, want %d", e.Seq, want)
		}
	}
}

// A queue is allocated as events wait, not at its bound: it grows (16,
// 32, then the bound) keeping order across the ring's wrap, and at its
// bound the oldest go, as before.
func TestQueueGrowsOnDemand(t *testing.T) {
	s := &Subscription{b: &Bus{}, max: 40, wake: make(chan struct{}, 1)}
	var seq uint64
	push := func(k int) {
		for range k {
			seq++
			s.push(Event{Seq: seq})
		}
	}
	pop := func() uint64 {
		e := s.ring[s.head]
		s.ring[s.head] = Event{}
		s.head = (s.head + 1) % len(s.ring)
		s.n--
		return e.Seq
	}
	if s.ring != nil {
		t.Fatal("ring allocated before any event")
	}
	push(10)
	for want := uint64(1); want <= 6; want++ {
		if got := pop(); got != want {
			t.Fatalf("popped %d, want %d", got, want)
		}
	}
	push(20) // 24 waiting, from head 6 of 16: grows while wrapped
	if len(s.ring) != 32 || s.n != 24 {
		t.Fatalf("ring %d, %d waiting; want 32, 24", len(s.ring), s.n)
	}
	push(30) // 54 would wait: the bound is 40, the 14 oldest go
	if len(s.ring) != 40 || s.n != 40 || s.Dropped() != 14 || s.pending != 14 {
		t.Fatalf("ring %d, %d waiting, %d dropped; want 40, 40, 14", len(s.ring), s.n, s.Dropped())
	}
	for want := uint64(21); want <= 60; want++ {
		if got := pop(); got != want {
			t.Fatalf("popped %d, want %d", got, want)
		}
	}
}
