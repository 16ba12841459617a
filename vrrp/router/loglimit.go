package router

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// logLimiter bounds the log lines that packets can cause (discarded
// adverts, odd adverts, send errors). RFC 9568 §7.1 asks for rate-limited
// logging of discards; a per-source limit alone does not bound anything
// when the sources are spoofed: 20,000 bad adverts from random sources once
// gave 19,996 lines in 2 s, and under journald's rate limit those would
// have pushed the state-change lines out (issue 11 item 9). So a line must
// pass two limits: one per key (kind, device, reason, peer) per period, and
// a budget for all keys together per period. What the budget holds back is
// counted by kind and reported in one summary line at the end of the
// period.
type logLimiter struct {
	log    *slog.Logger
	period time.Duration
	budget int // lines per period, all keys together
	now    func() time.Time

	mu         sync.Mutex
	last       map[string]time.Time
	start      time.Time      // of the budget's current period
	used       int            // lines let through in it
	suppressed map[string]int // held back by the budget since the last summary, by kind
	summary    *time.Timer    // pending summary
}

// logBudget is how many packet-caused lines may be written per period,
// whatever their keys: enough to see what is going on, far below journald's
// default 10,000 lines per 30 s per service.
const logBudget = 20

func newLogLimiter(log *slog.Logger, period time.Duration) *logLimiter {
	return &logLimiter{log: log, period: period, budget: logBudget, now: time.Now,
		last: map[string]time.Time{}, suppressed: map[string]int{}}
}

// allow reports whether a line of this kind ("discarded VRRP packet") and
// key may be written now.
func (l *logLimiter) allow(kind, key string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := kind + "\x00" + key
	if t, ok := l.last[k]; ok && now.Sub(t) < l.period {
		return false // the same line a moment ago: nothing new to say
	}
	if now.Sub(l.start) >= l.period {
		l.start, l.used = now, 0
	}
	if l.used >= l.budget {
		l.suppressed[kind]++
		if l.summary == nil && l.log != nil {
			l.summary = time.AfterFunc(l.period-now.Sub(l.start), l.summarise)
		}
		return false
	}
	l.used++
	if len(l.last) > 4096 {
		// Bound memory under a flood of distinct sources.
		clear(l.last)
	}
	l.last[k] = now
	return true
}

// summarise writes how many lines the budget held back, by kind.
func (l *logLimiter) summarise() {
	l.mu.Lock()
	counts := l.suppressed
	l.suppressed = map[string]int{}
	l.summary = nil
	l.mu.Unlock()
	if len(counts) == 0 {
		return
	}
	total := 0
	var parts []string
	for _, kind := range slices.Sorted(maps.Keys(counts)) {
		total += counts[kind]
		parts = append(parts, fmt.Sprintf("%s: %d", kind, counts[kind]))
	}
	l.log.Warn("log lines suppressed", "count", total, "period", l.period, "budget", l.budget,
		"by_kind", strings.Join(parts, ", "), "hint", "the counters (vigil_vrrp_packet_errors_total) count every one")
}

// stop cancels a pending summary (the node stops) and writes it at once.
func (l *logLimiter) stop() {
	l.mu.Lock()
	t := l.summary
	l.mu.Unlock()
	if t != nil && t.Stop() {
		l.summarise()
	}
}
