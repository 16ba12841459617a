package safe

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func countOf(component string) uint64 {
	for _, c := range Counts() {
		if c.Component == component {
			if c.Panics != Panics(component) {
				panic("Counts and Panics disagree")
			}
			return c.Panics
		}
	}
	return 0
}

func TestRecoverLogsCountsAndCallsAfter(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var got any
	func() {
		defer Recover(log, "test-recover", func(v any) { got = v })
		panic("boom")
	}()
	if got != "boom" {
		t.Fatalf("after got %v, want boom", got)
	}
	if n := countOf("test-recover"); n != 1 {
		t.Fatalf("count = %d, want 1", n)
	}
	out := buf.String()
	if !strings.Contains(out, "recovered from a panic") || !strings.Contains(out, "component=test-recover") || !strings.Contains(out, "safe_test.go") {
		t.Fatalf("log line lacks message, component or stack: %s", out)
	}
}

func TestCallReturnsPanicAsError(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if err := Call(log, "test-call", func() {}); err != nil {
		t.Fatalf("no panic: err = %v", err)
	}
	err := Call(log, "test-call", func() { var m map[string]int; m["x"] = 1 })
	if err == nil || !strings.Contains(err.Error(), "test-call: panic:") {
		t.Fatalf("err = %v, want a panic error", err)
	}
	if n := countOf("test-call"); n != 1 {
		t.Fatalf("count = %d, want 1", n)
	}
}

func TestGoRecovers(t *testing.T) {
	done := make(chan any)
	Go(slog.New(slog.DiscardHandler), "test-go", func() { panic(42) }, func(v any) { done <- v })
	if v := <-done; v != 42 {
		t.Fatalf("after got %v", v)
	}
}
