package router

import (
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"vigil/internal/safe"
)

// job kinds: what a queued job does to the instance's addresses, so that
// leaving master can drop the work of the mastership that ended.
type jobKind uint8

const (
	// jobOther always runs, in order (an in-place VIP removal, say).
	jobOther jobKind = iota
	// jobMaster belongs to a mastership: adding its VIPs, announcing them.
	// Leaving master drops the ones still queued.
	jobMaster
	// jobLowerPrio is the re-announcement of a master that heard a lower
	// priority; at most one waits at a time.
	jobLowerPrio
	// jobRelease removes the VIPs on leaving master: it goes ahead of
	// everything queued.
	jobRelease
)

type job struct {
	kind jobKind
	fn   func()
}

// worker runs an instance's slow actions (netlink, announcements) in order,
// off the protocol path, and the caller never blocks. Its queue stays short
// whatever arrives: a lower-priority re-announcement is queued only when
// none waits, and leaving master drops the queued work of the mastership
// and puts the release first, so a flood of adverts can neither grow it
// nor delay the VIPs' removal (issue 11 item 2: 2,000 lower-priority
// adverts once queued 2,000 bursts, and the VIPs stayed 25 s after the
// node became backup). Its goroutine exists only while there is work: a
// node with hundreds of instances keeps no idle goroutine (and stack) per
// instance.
type worker struct {
	mu      sync.Mutex
	q       []job
	running bool
	closed  bool
	done    chan struct{} // closed once close was called and the queue ran dry
	doneSet bool
	bursts  *burstMemory // nil in tests
	log     *slog.Logger // nil: slog.Default
	// after runs after every job on the worker's goroutine (tests).
	after func()
}

func newWorker(b *burstMemory) *worker { return &worker{done: make(chan struct{}), bursts: b} }

// push queues f to run in order; after close it is dropped.
func (w *worker) push(f func()) { w.pushJob(jobOther, f) }

// pushJob queues f as a job of the given kind (see jobKind).
func (w *worker) pushJob(kind jobKind, f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	switch kind {
	case jobLowerPrio:
		for _, j := range w.q {
			if j.kind == jobLowerPrio {
				return // one is waiting: it announces the same addresses
			}
		}
		w.q = append(w.q, job{kind, f})
	case jobRelease:
		w.q = slices.DeleteFunc(w.q, func(j job) bool { return j.kind == jobMaster || j.kind == jobLowerPrio })
		w.q = slices.Insert(w.q, 0, job{kind, f})
	default:
		w.q = append(w.q, job{kind, f})
	}
	if !w.running {
		w.running = true
		w.bursts.begin()
		go w.run()
	}
}

// pending returns the number of queued jobs (tests, status).
func (w *worker) pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.q)
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

// run takes one job at a time, so a release pushed while a job runs comes
// next.
func (w *worker) run() {
	for {
		w.mu.Lock()
		if len(w.q) == 0 {
			w.q = nil // let a burst's backing array go
			w.running = false
			if w.closed {
				w.finishLocked()
			}
			w.mu.Unlock()
			w.bursts.end()
			return
		}
		j := w.q[0]
		w.q[0] = job{}
		w.q = w.q[1:]
		w.mu.Unlock()
		// A panic in netlink or announcement code must not end the worker
		// with its queue stuck: the job is logged and counted, the next
		// one runs.
		_ = safe.Call(w.log, "vrrp_worker", j.fn)
		if w.after != nil {
			w.after()
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
