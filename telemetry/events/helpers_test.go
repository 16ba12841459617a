package events

import (
	"bufio"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"vigil/internal/testlog"
)

// noLeaks fails the test if goroutines started during it are still running
// once its cleanups (registered after this call) have run.
func noLeaks(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= base {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d running, %d before the test\n%s", n, base, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func testLogger(t *testing.T) (*slog.Logger, *testlog.Buffer) {
	lb := &testlog.Buffer{}
	h := slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", lb.String())
		}
	})
	return slog.New(h), lb
}

// script writes an executable /bin/sh script and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lines reads a file's lines ("" when it does not exist yet).
func lines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// fifoReader reads lines from a FIFO into a channel until closed.
type fifoReader struct {
	f     *os.File
	lines chan string
	done  chan struct{}
}

func openReader(t *testing.T, path string) *fifoReader {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := &fifoReader{f: f, lines: make(chan string, 100000), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
	}()
	t.Cleanup(r.close)
	return r
}

func (r *fifoReader) close() {
	r.f.Close()
	<-r.done
}

// next returns the next n lines or fails after a timeout.
func (r *fifoReader) next(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case l := <-r.lines:
			out = append(out, l)
		case <-timeout:
			t.Fatalf("got %d lines, want %d: %q", len(out), n, out)
		}
	}
	return out
}

// none checks that no line arrives for a short while.
func (r *fifoReader) none(t *testing.T) {
	t.Helper()
	select {
	case l := <-r.lines:
		t.Fatalf("unexpected line %q", l)
	case <-time.After(100 * time.Millisecond):
	}
}

func inst(name, from, to, reason string, prio int) Event {
	return Event{Kind: KindInstance, Name: name, From: from, To: to, Reason: reason, Priority: prio}
}
