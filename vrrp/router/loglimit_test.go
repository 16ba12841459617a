package router

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
	"vigil/internal/testlog"
)

func TestLogLimiterPerKey(t *testing.T) {
	l := newLogLimiter(nil, time.Hour)
	if !l.allow("k", "a") || l.allow("k", "a") || !l.allow("k", "b") || !l.allow("other", "a") {
		t.Fatal("limiter must allow the first line per key and drop repeats within the period")
	}
}

// Spoofed sources make every key new; the budget still bounds the lines per
// period and one summary says how many were held back (issue 11 item 9).
func TestLogLimiterBudgetAndSummary(t *testing.T) {
	var buf testlog.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLogLimiter(log, 50*time.Millisecond)
	l.now = func() time.Time { return now }
	allowed := 0
	for i := range 20000 {
		if l.allow("discarded VRRP packet", fmt.Sprintf("eth0 checksum 198.51.100.%d:%d", i%250, i)) {
			allowed++
		}
	}
	if allowed != logBudget {
		t.Fatalf("%d lines allowed for 20,000 distinct sources in one period, want the budget %d", allowed, logBudget)
	}
	// The summaries (one per period of the real clock that saw
	// suppressions) account for every line held back.
	suppressed := func() (total int) {
		for _, line := range strings.Split(buf.String(), "\n") {
			var n int
			if i := strings.Index(line, `by_kind="discarded VRRP packet: `); i >= 0 {
				fmt.Sscanf(line[i+len(`by_kind="discarded VRRP packet: `):], "%d", &n)
			}
			total += n
		}
		return total
	}
	deadline := time.Now().Add(5 * time.Second)
	for suppressed() < 20000-logBudget && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := suppressed(); n != 20000-logBudget {
		t.Fatalf("summaries report %d suppressed lines, want %d:\n%s", n, 20000-logBudget, buf.String())
	}
	// The next period has a fresh budget.
	now = now.Add(time.Second)
	if !l.allow("discarded VRRP packet", "eth0 checksum 198.51.100.1:new") {
		t.Fatal("a new period did not refill the budget")
	}
}
