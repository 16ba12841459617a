package events

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultDrainTimeout bounds how long Close lets subscribers drain.
const DefaultDrainTimeout = 5 * time.Second

// DefaultSinkBuffer is the queue length of the script and FIFO sinks.
const DefaultSinkBuffer = 1024

// Option configures a Bus.
type Option func(*Bus)

// WithDrainTimeout sets how long Close waits for subscribers to take what
// is queued before it cuts delivery short (default DefaultDrainTimeout).
func WithDrainTimeout(d time.Duration) Option {
	return func(b *Bus) {
		if d > 0 {
			b.drain = d
		}
	}
}

// Bus numbers the state changes of one node and hands them, in order, to
// every subscriber. It is safe for concurrent use.
type Bus struct {
	log   *slog.Logger
	drain time.Duration

	mu     sync.Mutex // held only for short, non-blocking work
	seq    uint64
	closed bool
	subs   []*Subscription
}

// NewBus returns a running bus. log may be nil.
func NewBus(log *slog.Logger, opts ...Option) *Bus {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bus{log: log, drain: DefaultDrainTimeout}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Publish numbers the event, stamps it with the current time if Time is
// zero, and queues it for every subscriber. It never blocks on a
// subscriber, does no I/O and does not log: the protocol path calls it
// with its own lock held. Events published after Close are discarded.
func (b *Bus) Publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.seq++
	e.Seq = b.seq
	e.Dropped = 0
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	for _, s := range b.subs {
		s.push(e)
	}
}

// LastSeq is the Seq of the latest published event (0 before the first).
func (b *Bus) LastSeq() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seq
}

// Subscribe returns a subscription that receives, in order, every event
// published from now on. At most buffer events wait for the reader (at
// least 1); when it falls further behind, the oldest waiting events are
// discarded and a KindDropped marker takes their place (see the package
// documentation). A reader that never reads delays nobody.
//
// The channel is closed after Close on the subscription, or after Close on
// the bus once the queued events have been taken (or the drain timeout
// passed). Subscribing to a closed bus gives a closed channel.
func (b *Bus) Subscribe(buffer int) *Subscription {
	s := b.attach(buffer, "subscriber")
	s.c = make(chan Event)
	go s.pump()
	return s
}

// attach registers a queue whose consumer is the caller's goroutine, which
// must call s.finish when it stops.
func (b *Bus) attach(buffer int, name string) *Subscription {
	if buffer < 1 {
		buffer = 1
	}
	s := &Subscription{
		b:     b,
		name:  name,
		max:   buffer,
		wake:  make(chan struct{}, 1),
		abort: make(chan struct{}),
		done:  make(chan struct{}),
	}
	b.mu.Lock()
	if b.closed {
		s.ended = true
	} else {
		b.subs = append(b.subs, s)
	}
	b.mu.Unlock()
	return s
}

// Close stops the bus: later Publish calls are discarded, subscribers get
// what is already queued, for up to the drain timeout, and then delivery
// stops (running scripts are killed). It returns when every subscriber's
// goroutine has ended. Calling it again waits the same way.
func (b *Bus) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), b.drain)
	defer cancel()
	_ = b.Shutdown(ctx)
}

// Shutdown is Close with the drain bounded by ctx instead of the drain
// timeout. It returns ctx.Err() if delivery had to be cut short.
func (b *Bus) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	subs := slices.Clone(b.subs)
	for _, s := range subs {
		s.end()
	}
	b.mu.Unlock()

	var err error
wait:
	for _, s := range subs {
		select {
		case <-s.done:
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		}
	}
	if err != nil {
		for _, s := range subs {
			select {
			case <-s.done:
			default:
				if n := s.Pending(); n > 0 {
					b.log.Warn("event delivery cut short at shutdown", "subscriber", s.name, "undelivered", n)
				}
				s.stop()
			}
		}
	}
	for _, s := range subs {
		<-s.done
	}
	b.mu.Lock()
	b.subs = slices.DeleteFunc(b.subs, func(s *Subscription) bool { return slices.Contains(subs, s) })
	b.mu.Unlock()
	return err
}

// Subscription is one ordered stream of events. See Bus.Subscribe.
type Subscription struct {
	b    *Bus
	name string // for logs

	// guarded by b.mu
	ring    []Event // grows up to max as events wait (a start's burst), never shrinks
	max     int
	head, n int
	pending uint64 // discarded since the last marker
	ended   bool   // nothing more will be queued

	dropped   atomic.Uint64 // total discarded
	wake      chan struct{} // capacity 1: something was queued or the stream ended
	abort     chan struct{} // closed: stop delivering now
	abortOnce sync.Once
	done      chan struct{} // closed when the consumer goroutine has ended
	doneOnce  sync.Once
	c         chan Event // Subscribe only
}

// C is the channel events arrive on. It is closed when the subscription
// ends.
func (s *Subscription) C() <-chan Event { return s.c }

// Dropped is how many events this subscription has had to discard so far.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Pending is how many events wait in the subscription's queue.
func (s *Subscription) Pending() int {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.n
}

// Close ends the subscription at once: queued events are discarded and C
// is closed. It returns when the subscription's goroutine has ended.
func (s *Subscription) Close() {
	s.b.mu.Lock()
	s.end()
	s.b.subs = slices.DeleteFunc(s.b.subs, func(o *Subscription) bool { return o == s })
	s.b.mu.Unlock()
	s.stop()
	<-s.done
}

// push queues e; b.mu is held.
func (s *Subscription) push(e Event) {
	if s.ended {
		return
	}
	if s.n == len(s.ring) && len(s.ring) < s.max {
		// Grown on demand: most queues never hold more than a few events,
		// and 1,024 allocated up front are 200 kB of heap for each.
		ring := make([]Event, min(s.max, max(16, 2*len(s.ring))))
		for i := range s.n {
			ring[i] = s.ring[(s.head+i)%len(s.ring)]
		}
		s.ring, s.head = ring, 0
	}
	if s.n == len(s.ring) {
		// Full: the oldest undelivered event goes, the marker will say so.
		s.ring[s.head] = Event{}
		s.head = (s.head + 1) % len(s.ring)
		s.n--
		s.pending++
		s.dropped.Add(1)
	}
	s.ring[(s.head+s.n)%len(s.ring)] = e
	s.n++
	s.signal()
}

// end marks the stream as complete; b.mu is held.
func (s *Subscription) end() {
	s.ended = true
	s.signal()
}

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Subscription) stop() { s.abortOnce.Do(func() { close(s.abort) }) }

func (s *Subscription) finish() { s.doneOnce.Do(func() { close(s.done) }) }

func (s *Subscription) aborted() bool {
	select {
	case <-s.abort:
		return true
	default:
		return false
	}
}

// next waits for the next event or marker; ok is false when the stream has
// ended (and is drained) or delivery was aborted.
func (s *Subscription) next() (e Event, ok bool) {
	for {
		if s.aborted() {
			return Event{}, false
		}
		s.b.mu.Lock()
		if s.pending > 0 {
			e = Event{Kind: KindDropped, Time: time.Now(), Dropped: s.pending}
			s.pending = 0
			s.b.mu.Unlock()
			return e, true
		}
		if s.n > 0 {
			e = s.ring[s.head]
			s.ring[s.head] = Event{}
			s.head = (s.head + 1) % len(s.ring)
			s.n--
			s.b.mu.Unlock()
			return e, true
		}
		ended := s.ended
		s.b.mu.Unlock()
		if ended {
			return Event{}, false
		}
		select {
		case <-s.wake:
		case <-s.abort:
			return Event{}, false
		}
	}
}

// pump moves events from the queue to the channel of a Subscribe caller.
func (s *Subscription) pump() {
	defer s.finish()
	defer close(s.c)
	for {
		e, ok := s.next()
		if !ok {
			return
		}
		select {
		case s.c <- e:
		case <-s.abort:
			return
		}
	}
}

// dropLogInterval is the least time between two "fell behind" log lines of
// one sink; drops in between are summed into the next line.
const dropLogInterval = 10 * time.Second

// dropLog logs a sink's dropped events without flooding the log.
type dropLog struct {
	log     *slog.Logger
	msg     string
	last    time.Time
	pending uint64
	total   uint64
}

func (d *dropLog) add(n uint64) {
	d.pending += n
	d.total += n
	if time.Since(d.last) >= dropLogInterval {
		d.flush()
	}
}

func (d *dropLog) flush() {
	if d.pending == 0 {
		return
	}
	d.log.Error(d.msg, "dropped", d.pending, "dropped_total", d.total)
	d.pending = 0
	d.last = time.Now()
}
