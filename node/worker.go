package node

import (
	"sync"
	"time"
)

// worker runs an instance's slow actions (netlink, announcements) in order,
// off the protocol loop. Its queue is unbounded so the loop never blocks; a
// VRRP instance produces a handful of items per state change.
type worker struct {
	mu     sync.Mutex
	q      []func()
	closed bool
	wake   chan struct{}
	done   chan struct{}
}

func newWorker() *worker {
	return &worker{wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (w *worker) push(f func()) {
	w.mu.Lock()
	if !w.closed {
		w.q = append(w.q, f)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// close lets the worker finish what is queued, then exit.
func (w *worker) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) run() {
	defer close(w.done)
	for {
		w.mu.Lock()
		q, closed := w.q, w.closed
		w.q = nil
		w.mu.Unlock()
		for _, f := range q {
			f()
		}
		if closed && len(q) == 0 {
			return
		}
		if len(q) == 0 {
			<-w.wake
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
