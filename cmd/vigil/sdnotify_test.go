package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"vigil/internal/testlog"
)

// notifySocket stands in for systemd's NOTIFY_SOCKET: a real unixgram
// socket the code under test sends to.
func notifySocket(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

// pings counts the datagrams received during d; each must be WATCHDOG=1.
func pings(t *testing.T, c *net.UnixConn, d time.Duration) int {
	t.Helper()
	n := 0
	buf := make([]byte, 256)
	end := time.Now().Add(d)
	for {
		c.SetReadDeadline(end)
		m, err := c.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return n
			}
			t.Fatal(err)
		}
		if string(buf[:m]) != "WATCHDOG=1" {
			t.Fatalf("received %q, want WATCHDOG=1", buf[:m])
		}
		n++
	}
}

// Pings arrive at half the interval while the liveness check answers;
// they stop while it fails or blocks past its bound (systemd then kills
// the daemon), come back when it answers again, and a last one goes out
// when the context ends.
func TestWatchdogPingsOnlyWhileAlive(t *testing.T) {
	c := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "400000") // ping every 200 ms, the check bounded to 100 ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	const (
		answers = iota
		fails
		blocks
	)
	var mode atomic.Int32
	var calls atomic.Int32
	alive := func(ctx context.Context) error {
		calls.Add(1)
		switch mode.Load() {
		case fails:
			return errors.New("event loop wedged")
		case blocks:
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	logs := &testlog.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startWatchdog(ctx, slog.New(slog.NewTextHandler(logs, nil)), alive)

	// Margins for a loaded machine: 7 or 8 expected in each 1.5 s.
	if n := pings(t, c, 1500*time.Millisecond); n < 3 || n > 10 {
		t.Fatalf("%d pings in 1.5 s while alive, want about 7", n)
	}
	for _, m := range []int32{fails, blocks} {
		mode.Store(m)
		pings(t, c, 600*time.Millisecond) // one may have been on its way
		if n := pings(t, c, time.Second); n != 0 {
			t.Fatalf("mode %d: %d pings in 1 s, want none", m, n)
		}
		mode.Store(answers)
		if n := pings(t, c, 1500*time.Millisecond); n < 3 {
			t.Fatalf("after mode %d: %d pings in 1.5 s once alive again, want about 7", m, n)
		}
	}
	if n := strings.Count(logs.String(), "does not answer"); n != 2 {
		t.Fatalf("%d 'does not answer' lines for 2 episodes:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "no answer within 100ms") {
		t.Fatalf("the blocked check is not reported as such:\n%s", logs)
	}
	// The last ping at the end, then none.
	pings(t, c, 50*time.Millisecond)
	mode.Store(fails)
	pings(t, c, 600*time.Millisecond)
	cancel()
	if n := pings(t, c, 600*time.Millisecond); n != 1 {
		t.Fatalf("%d pings when the context ended, want the last one", n)
	}
	before := calls.Load()
	if n := pings(t, c, 500*time.Millisecond); n != 0 || calls.Load() != before {
		t.Fatalf("after the end: %d pings, %d more checks", n, calls.Load()-before)
	}
}

// No watchdog, one meant for another process, or a malformed one: no ping.
func TestWatchdogOff(t *testing.T) {
	for _, tc := range []struct{ usec, pid, log string }{
		{"", "", ""},
		{"400000", "1", ""},
		{"soon", "", "want a positive number of microseconds"},
		{"0", "", "want a positive number of microseconds"},
	} {
		c := notifySocket(t)
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		logs := &testlog.Buffer{}
		ctx, cancel := context.WithCancel(context.Background())
		startWatchdog(ctx, slog.New(slog.NewTextHandler(logs, nil)), func(context.Context) error { return nil })
		n := pings(t, c, 500*time.Millisecond)
		cancel()
		if n != 0 || !strings.Contains(logs.String(), tc.log) {
			t.Fatalf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %d pings, log %q", tc.usec, tc.pid, n, logs)
		}
	}
}
