package telemetry

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveLimits serves a telemetry listener on a loopback port with lim.
func serveLimits(t *testing.T, lim Limits, pprof bool) string {
	t.Helper()
	s, err := listen("127.0.0.1:0", NewRegistry(), slog.New(slog.DiscardHandler), pprof, lim)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s.Addr().String()
}

// get sends one keep-alive request on c and reads the answer, within
// timeout.
func get(c net.Conn, br *bufio.Reader, path string, timeout time.Duration) (*http.Response, error) {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: vigil\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, err
}

func testLimits() Limits {
	l := DefaultLimits
	l.MaxConns = 2
	return l
}

// Beyond MaxConns a connection is not served until one of the first ones
// closes; the first ones are served meanwhile.
func TestConnectionLimit(t *testing.T) {
	addr := serveLimits(t, testLimits(), false)
	var conns []net.Conn
	var readers []*bufio.Reader
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns, readers = append(conns, c), append(readers, bufio.NewReader(c))
		if resp, err := get(c, readers[i], "/healthz", 5*time.Second); err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection %d: %v %v", i, resp, err)
		}
	}
	extra, err := net.Dial("tcp", addr) // the kernel accepts it into the queue
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	xr := bufio.NewReader(extra)
	_, err = get(extra, xr, "/healthz", 500*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a third connection over a cap of 2 was answered: %v", err)
	}
	// The first two are still served.
	for i, c := range conns {
		if resp, err := get(c, readers[i], "/metrics", 5*time.Second); err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection %d while one waits: %v %v", i, resp, err)
		}
	}
	conns[0].Close()
	extra.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(xr, nil) // the request sent above
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the waiting connection after one closed: %v %v", resp, err)
	}
}

// An idle keep-alive connection is closed after IdleTimeout.
func TestIdleTimeout(t *testing.T) {
	lim := testLimits()
	lim.IdleTimeout = 300 * time.Millisecond
	addr := serveLimits(t, lim, false)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	if resp, err := get(c, br, "/healthz", 5*time.Second); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = br.ReadByte()
	if took := time.Since(start); err != io.EOF || took < 250*time.Millisecond || took > 3*time.Second {
		t.Fatalf("idle connection: %v after %v, want EOF after about %v", err, took, lim.IdleTimeout)
	}
}

// A request that has sent its headers but not finished them in
// ReadHeaderTimeout is dropped, so a slow client cannot hold a slot.
func TestSlowHeaders(t *testing.T) {
	lim := testLimits()
	lim.ReadHeaderTimeout = 300 * time.Millisecond
	addr := serveLimits(t, lim, false)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: vigil\r\n") // never ends
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(c)
	if took := time.Since(start); err != nil || took > 3*time.Second {
		t.Fatalf("slow headers: %v after %v, want the connection closed after about %v", err, took, lim.ReadHeaderTimeout)
	}
}

// Headers over MaxHeaderBytes get 431.
func TestMaxHeaderBytes(t *testing.T) {
	addr := serveLimits(t, testLimits(), false)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: vigil\r\nX-Big: "+strings.Repeat("a", 100<<10)+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("100 KiB of headers: %v %v, want 431", resp, err)
	}
}

// A CPU profile may run longer than the write and read timeouts (pprof's
// handler refuses one longer than the server's WriteTimeout, and cutting
// it at ReadTimeout would lose it); one beyond MaxProfile is refused.
func TestProfileOutlivesTimeouts(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 2 s")
	}
	lim := testLimits()
	lim.ReadTimeout, lim.WriteTimeout, lim.MaxProfile = time.Second, time.Second, 10*time.Second
	addr := serveLimits(t, lim, true)
	c := &http.Client{Timeout: 10 * time.Second}
	start := time.Now()
	resp, err := c.Get("http://" + addr + "/debug/pprof/profile?seconds=2")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(body) == 0 || time.Since(start) < 2*time.Second {
		t.Fatalf("2 s profile with 1 s timeouts: %d, %d bytes after %v, %v: %.200s", resp.StatusCode, len(body), time.Since(start), err, body)
	}
	resp, err = c.Get("http://" + addr + "/debug/pprof/profile?seconds=11")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "at most 10s") {
		t.Fatalf("profile beyond MaxProfile: %d %s", resp.StatusCode, body)
	}
	// Ordinary requests keep the short timeouts.
	if resp, err := c.Get("http://" + addr + "/metrics"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %v %v", resp, err)
	}
}
