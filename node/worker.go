package node

import (
	"runtime/debug"
	"sync"
	"time"
)

// worker runs an instance's slow actions (netlink, announcements) in order,
// off the protocol path. Its queue is unbounded so the caller never blocks
// (a VRRP instance produces a handful of items per state change), and its
// goroutine exists only while there is work: a node with hundreds of
// instances keeps no idle goroutine (and stack) per instance.
type worker struct {
	mu      sync.Mutex
	q       []func()
	running bool
	closed  bool
	done    chan struct{} // closed once close was called and the queue ran dry
	doneSet bool
	bursts  *burstMemory // nil in tests
}

func newWorker(b *burstMemory) *worker { return &worker{done: make(chan struct{}), bursts: b} }

// push queues f; after close it is dropped.
func (w *worker) push(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.q = append(w.q, f)
	if !w.running {
		w.running = true
		w.bursts.begin()
		go w.run()
	}
}

// close lets the worker finish what is queued; done is closed after that.
func (w *worker) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if !w.running {
		w.finishLocked()
	}
}

func (w *worker) finishLocked() {
	if !w.doneSet {
		w.doneSet = true
		close(w.done)
	}
}

func (w *worker) run() {
	for {
		w.mu.Lock()
		q := w.q
		w.q = nil
		if len(q) == 0 {
			w.running = false
			if w.closed {
				w.finishLocked()
			}
			w.mu.Unlock()
			w.bursts.end()
			return
		}
		w.mu.Unlock()
		for _, f := range q {
			f()
		}
	}
}

// burstMemory hands the memory of a burst of worker runs back to the
// kernel once the burst is over. When hundreds of instances change state at
// once (a node becoming master of everything) their workers' stacks, netlink
// messages and announcement buffers briefly grow the heap several times
// over the few MB a steady node needs; the Go runtime would return that
// memory only gradually, leaving RSS high for minutes. A forced release a
// second after the last worker went idle costs one GC of a small heap.
type burstMemory struct {
	mu      sync.Mutex
	active  int       // workers running now
	runs    int       // worker runs since the last release
	last    time.Time // last release
	pending *time.Timer
	release func() // debug.FreeOSMemory; replaceable in tests
}

// Tuning: bursts smaller than burstRuns are left to the runtime, and
// releases are at least burstGap apart so a flapping node does not force a
// GC per flap.
const (
	burstRuns   = 32
	burstSettle = time.Second
	burstGap    = 30 * time.Second
)

func newBurstMemory() *burstMemory { return &burstMemory{release: debug.FreeOSMemory} }

func (b *burstMemory) begin() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.active++
	b.runs++
	if b.pending != nil { // the burst goes on
		b.pending.Stop()
		b.pending = nil
	}
	b.mu.Unlock()
}

func (b *burstMemory) end() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.active--
	if b.active > 0 || b.runs < burstRuns || b.pending != nil {
		return
	}
	wait := burstSettle
	if since := time.Since(b.last); since < burstGap {
		wait = max(wait, burstGap-since)
	}
	b.pending = time.AfterFunc(wait, func() {
		b.mu.Lock()
		if b.active > 0 || b.pending == nil {
			b.mu.Unlock()
			return
		}
		b.pending = nil
		b.runs = 0
		b.last = time.Now()
		b.mu.Unlock()
		b.release()
	})
}

// stop cancels a pending release (the node is shutting down).
func (b *burstMemory) stop() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending != nil {
		b.pending.Stop()
		b.pending = nil
	}
}

// logLimiter allows one log line per key per period (RFC 9568 §7.1 asks
// for rate-limited logging of discards).
type logLimiter struct {
	mu     sync.Mutex
	period time.Duration
	last   map[string]time.Time
}

func newLogLimiter(period time.Duration) *logLimiter {
	return &logLimiter{period: period, last: map[string]time.Time{}}
}

func (l *logLimiter) allow(key string) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.period {
		return false
	}
	if len(l.last) > 4096 {
		// Bound memory under a flood of distinct sources.
		clear(l.last)
	}
	l.last[key] = now
	return true
}
