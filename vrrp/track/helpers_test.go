package track

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"vigil/internal/testlog"
)

// recorder collects what a tracker emits.
type recorder struct {
	mu   sync.Mutex
	ups  []Update
	next int // first update not consumed by wait
	wake chan struct{}
}

func newRecorder() *recorder { return &recorder{wake: make(chan struct{}, 1)} }

func (r *recorder) emit(u Update) {
	if u.At.IsZero() {
		u.At = time.Now()
	}
	r.mu.Lock()
	r.ups = append(r.ups, u)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *recorder) all() []Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Update(nil), r.ups...)
}

// wait consumes updates until one satisfies ok and returns it; it fails the
// test after timeout.
func (r *recorder) wait(t *testing.T, timeout time.Duration, what string, ok func(Update) bool) Update {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		for r.next < len(r.ups) {
			u := r.ups[r.next]
			r.next++
			if ok(u) {
				r.mu.Unlock()
				return u
			}
		}
		r.mu.Unlock()
		select {
		case <-r.wake:
		case <-deadline:
			t.Fatalf("no update %s within %v; got %s", what, timeout, fmtUpdates(r.all()))
			return Update{}
		}
	}
}

// quiet fails the test if an update arrives within d.
func (r *recorder) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next < len(r.ups) {
		t.Fatalf("unexpected updates: %s", fmtUpdates(r.ups[r.next:]))
	}
}

func fmtUpdates(us []Update) string {
	var b strings.Builder
	for _, u := range us {
		b.WriteString("\n\t")
		b.WriteString(fmtUpdate(u))
	}
	return b.String()
}

func fmtUpdate(u Update) string {
	s := "down"
	if u.Up {
		s = "up"
	}
	if u.Init {
		s += " (init)"
	}
	return fmt.Sprintf("%s %s value=%d %s", u.At.Format("15:04:05.000"), s, u.Value, u.Detail)
}

func isUp(u Update) bool   { return u.Up && !u.Init }
func isDown(u Update) bool { return !u.Up && !u.Init }

// run runs tr until the test ends; Run must return nil.
func run(t *testing.T, tr Tracker) *recorder {
	t.Helper()
	r := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- tr.Run(ctx, r.emit) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return within 5s of cancel")
		}
	})
	return r
}

// noLeaks fails the test if goroutines started during it outlive it. Call
// it first, so that its cleanup runs last.
func noLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			t.Errorf("goroutine leak: %d before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// writeScript writes an executable shell script into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func debugLogger(l *testlog.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func atoi(s string) (int, error) { return strconv.Atoi(strings.TrimSpace(s)) }
