// Package safe recovers panics at the goroutine boundaries where vigil runs
// untrusted input (packets, probe replies, API requests) or user programs
// (scripts, notify hooks). A recovered panic is logged once with its stack
// and counted by component (vigil_panics_recovered_total), and the caller
// decides what the component does next: a probe counts as failed, a reader
// goes on with the next packet. A panic elsewhere still ends the process:
// there the state cannot be trusted.
package safe

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"sync"
)

var (
	mu     sync.Mutex
	counts = map[string]uint64{}
)

// Recover must be deferred directly (defer safe.Recover(...)); it stops a
// panic of the goroutine it is deferred in, logs it with the stack under
// component, counts it, and then calls after (if not nil) with the value.
// Without a panic it does nothing.
func Recover(log *slog.Logger, component string, after func(v any)) {
	v := recover()
	if v == nil {
		return
	}
	record(log, component, v, debug.Stack())
	if after != nil {
		after(v)
	}
}

// Go runs fn on a new goroutine that recovers (see Recover); after is
// called on a panic.
func Go(log *slog.Logger, component string, fn func(), after func(v any)) {
	go func() {
		defer Recover(log, component, after)
		fn()
	}()
}

// Call runs fn and returns a recovered panic as an error (nil without one),
// for callers that turn a panic into a failed result.
func Call(log *slog.Logger, component string, fn func()) (err error) {
	defer Recover(log, component, func(v any) { err = fmt.Errorf("%s: panic: %v", component, v) })
	fn()
	return nil
}

func record(log *slog.Logger, component string, v any, stack []byte) {
	mu.Lock()
	counts[component]++
	mu.Unlock()
	if log == nil {
		log = slog.Default()
	}
	log.Error("recovered from a panic", "component", component, "panic", fmt.Sprint(v), "stack", string(stack))
}

// Count is one component's number of recovered panics.
type Count struct {
	Component string
	Panics    uint64
}

// Counts returns the recovered panics per component, sorted by component.
func Counts() []Count {
	mu.Lock()
	defer mu.Unlock()
	out := make([]Count, 0, len(counts))
	for c, n := range counts {
		out = append(out, Count{c, n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Component < out[j].Component })
	return out
}

// Panics returns the recovered panics of one component.
func Panics(component string) uint64 {
	mu.Lock()
	defer mu.Unlock()
	return counts[component]
}
