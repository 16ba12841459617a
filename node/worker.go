package node

import (
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
}

func newWorker() *worker { return &worker{done: make(chan struct{})} }

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
			return
		}
		w.mu.Unlock()
		for _, f := range q {
			f()
		}
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
