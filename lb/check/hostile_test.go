package check

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

// hostileServer serves, on every connection to a loopback listener (TLS
// if cfg is set), prefix and then filler over and over until the client
// goes away: a real server that never ends its status line, a header, the
// headers or its body.
func hostileServer(t *testing.T, cfg *tls.Config, prefix string, filler []byte) netip.AddrPort {
	return streamServer(t, cfg, func(c net.Conn, r *bufio.Reader) error {
		for { // the request, up to its empty line
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if line == "\r\n" {
				break
			}
		}
		_, err := c.Write([]byte(prefix))
		return err
	}, filler)
}

// streamServer runs start on every connection to a loopback listener (TLS
// if cfg is set) and then writes filler over and over until the client
// goes away.
func streamServer(t *testing.T, cfg *tls.Config, start func(net.Conn, *bufio.Reader) error, filler []byte) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if cfg != nil {
				c = tls.Server(c, cfg)
			}
			go func() {
				defer c.Close()
				// A bound for the server's side only, should a prober never
				// close its end.
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				if err := start(c, bufio.NewReader(c)); err != nil {
					return
				}
				for {
					if _, err := c.Write(filler); err != nil {
						return
					}
				}
			}()
		}
	}()
	return addrPort(t, l.Addr())
}

// testTLSConfig is a server configuration with httptest's certificate.
func testTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	srv := httptest.NewTLSServer(nil)
	cfg := srv.TLS.Clone()
	srv.Close()
	return cfg
}

// allocated runs f and returns the bytes it (and anything running
// meanwhile) allocated on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A real server that streams without end, at any point of its answer, costs
// an http or https probe a bounded amount of memory and time, on every
// protocol version: the probe fails (or, when the body is not needed,
// passes) long before its timeout, and allocates a few MiB at most. Before
// the header phase of HTTP/1.0 was bounded, an endless header line cost
// hundreds of MB within the timeout.
func TestHTTPHostileServer(t *testing.T) {
	const (
		timeout  = 5 * time.Second
		maxTook  = timeout / 2
		maxAlloc = 4 << 20
	)
	filler := bytes.Repeat([]byte("a"), 32<<10)
	lines := bytes.Repeat([]byte("X-Junk: a\r\n"), 3<<10)
	chunks := bytes.Repeat([]byte("400\r\n"+strings.Repeat("b", 0x400)+"\r\n"), 32)
	okSum := md5.Sum([]byte("ok"))
	digest := hex.EncodeToString(okSum[:])
	tlsCfg := testTLSConfig(t)
	tests := []struct {
		name   string
		prefix string
		filler []byte
		digest string
		regex  string
		want   Result
		detail string
		// detail11 is net/http's wording on the HTTP/1.1 path, if it differs.
		detail11 string
	}{
		{"endless status line", "HTTP/1.0 200 OK", filler, "", "", Failure,
			fmt.Sprintf("response headers longer than %d bytes", maxHeaderBytes), fmt.Sprintf("server response headers exceeded %d bytes", maxHeaderBytes)},
		{"endless header line", "HTTP/1.0 200 OK\r\nX-Junk: ", filler, "", "", Failure,
			fmt.Sprintf("response headers longer than %d bytes", maxHeaderBytes), fmt.Sprintf("server response headers exceeded %d bytes", maxHeaderBytes)},
		{"endless header lines", "HTTP/1.0 200 OK\r\n", lines, "", "", Failure,
			fmt.Sprintf("response headers longer than %d bytes", maxHeaderBytes), fmt.Sprintf("server response headers exceeded %d bytes", maxHeaderBytes)},
		// The status decides; the body is not read, nor drained.
		{"endless chunked body, status only", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", chunks, "", "", Success,
			"status 200", ""},
		{"endless body, status only", "HTTP/1.0 200 OK\r\n\r\n", filler, "", "", Success, "status 200", ""},
		// A digest reads the body up to its bound.
		{"endless body, digest", "HTTP/1.0 200 OK\r\n\r\n", filler, digest, "", Failure,
			fmt.Sprintf("body longer than %d bytes", maxBody), ""},
		{"endless body, regex", "HTTP/1.0 200 OK\r\n\r\n", filler, "", "zzz", Failure,
			fmt.Sprintf(`does not match regex "zzz" in the first %d bytes of a longer body`, maxRegexBody), ""},
		{"endless chunked body, digest", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", chunks, digest, "", Failure,
			fmt.Sprintf("body longer than %d bytes", maxBody), ""},
		{"endless trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Trailer: ", filler, digest, "", Failure,
			"suspiciously long trailer", ""},
	}
	for _, tt := range tests {
		for _, typ := range []Type{HTTP, HTTPS} {
			for _, version := range []string{"1.0", "1.0C", "1.1"} {
				name := fmt.Sprintf("%s %s %s", tt.name, typ, version)
				var cfg *tls.Config
				if typ == HTTPS {
					cfg = tlsCfg
				}
				s := Spec{Type: typ, Target: hostileServer(t, cfg, tt.prefix, tt.filler), HTTPVersion: version,
					Digest: tt.digest, Regex: tt.regex, Timeout: timeout, Interval: timeout}
				var o outcome
				start := time.Now()
				alloc := allocated(func() { o = probeOnce(t, s) })
				took := time.Since(start)
				detail := tt.detail
				if version == "1.1" && tt.detail11 != "" {
					detail = tt.detail11
				}
				expect(t, name, o, tt.want, detail)
				t.Logf("%s: %v %q in %v, %.1f MiB allocated", name, o.result, o.detail, took.Round(time.Millisecond), float64(alloc)/(1<<20))
				if took > maxTook {
					t.Errorf("%s: took %v, want under %v", name, took, maxTook)
				}
				if alloc > maxAlloc {
					t.Errorf("%s: allocated %.1f MiB, want under %d MiB", name, float64(alloc)/(1<<20), maxAlloc>>20)
				}
			}
		}
	}
}

// An smtp probe reads at most maxSMTPReply bytes of a server that never
// ends a reply line or a multi-line reply, in its greeting or its answer
// to HELO: it fails at once, with little allocated.
func TestSMTPHostileServer(t *testing.T) {
	const (
		timeout  = 5 * time.Second
		maxTook  = timeout / 2
		maxAlloc = 4 << 20
	)
	greet := func(greeting string, afterHelo bool) func(net.Conn, *bufio.Reader) error {
		return func(c net.Conn, r *bufio.Reader) error {
			if _, err := c.Write([]byte(greeting)); err != nil || !afterHelo {
				return err
			}
			_, err := r.ReadString('\n')
			return err
		}
	}
	long := fmt.Sprintf("replies longer than %d bytes", maxSMTPReply)
	tests := []struct {
		name   string
		start  func(net.Conn, *bufio.Reader) error
		filler []byte
		detail string
	}{
		{"endless greeting line", greet("220 ", false), bytes.Repeat([]byte("x"), 32<<10), "greeting: " + long},
		{"endless multi-line greeting", greet("", false), bytes.Repeat([]byte("220-mx.example.org\r\n"), 2<<10), "greeting: " + long},
		{"endless HELO reply line", greet("220 mx\r\n250 ", true), bytes.Repeat([]byte("x"), 32<<10), "HELO localhost: " + long},
		{"endless multi-line HELO reply", greet("220 mx\r\n", true), bytes.Repeat([]byte("250-PIPELINING\r\n"), 2<<10), "HELO localhost: " + long},
	}
	for _, tt := range tests {
		s := Spec{Type: SMTP, Target: streamServer(t, nil, tt.start, tt.filler), HeloName: "localhost", Timeout: timeout, Interval: timeout}
		var o outcome
		start := time.Now()
		alloc := allocated(func() { o = probeOnce(t, s) })
		took := time.Since(start)
		expect(t, tt.name, o, Failure, tt.detail)
		t.Logf("%s: %v %q in %v, %.1f MiB allocated", tt.name, o.result, o.detail, took.Round(time.Millisecond), float64(alloc)/(1<<20))
		if took > maxTook {
			t.Errorf("%s: took %v, want under %v", tt.name, took, maxTook)
		}
		if alloc > maxAlloc {
			t.Errorf("%s: allocated %.1f MiB, want under %d MiB", tt.name, float64(alloc)/(1<<20), maxAlloc>>20)
		}
	}
}
