package check

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// probeOnce normalizes s and runs one probe with its timeout.
func probeOnce(t *testing.T, s Spec) outcome {
	t.Helper()
	n, err := s.Normalize()
	if err != nil {
		t.Fatalf("normalize %+v: %v", s, err)
	}
	p, err := newProber(n)
	if err != nil {
		t.Fatalf("prober: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.Timeout)
	defer cancel()
	return p.probe(ctx)
}

func expect(t *testing.T, name string, o outcome, want Result, detail string) {
	t.Helper()
	if o.result != want || !strings.Contains(o.detail, detail) {
		t.Errorf("%s: %v %q, want %v containing %q", name, o.result, o.detail, want, detail)
	}
}

func addrPort(t *testing.T, a net.Addr) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// closedPort returns a loopback port nothing listens on (for network).
func closedPort(t *testing.T, network string) netip.AddrPort {
	t.Helper()
	var a net.Addr
	if network == "tcp" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a = l.Addr()
		l.Close()
	} else {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a = c.LocalAddr()
		c.Close()
	}
	return addrPort(t, a)
}

// Timeouts in these tests are generous (seconds) because they bound
// loopback round trips that take microseconds: only a broken prober comes
// near them, even on a loaded 2-core machine.
const probeTimeout = 3 * time.Second

func TestTCP(t *testing.T) {
	for _, network := range []string{"127.0.0.1:0", "[::1]:0"} {
		l, err := net.Listen("tcp", network)
		if err != nil {
			t.Logf("%s: %v (skipped)", network, err)
			continue
		}
		defer l.Close()
		go acceptClose(l, nil)
		expect(t, "listening "+network, probeOnce(t, Spec{Type: TCP, Target: addrPort(t, l.Addr()), Timeout: probeTimeout, Interval: probeTimeout}), Success, "connected")
	}
	expect(t, "closed", probeOnce(t, Spec{Type: TCP, Target: closedPort(t, "tcp"), Timeout: probeTimeout, Interval: probeTimeout}), Failure, "refused")
}

func TestHTTP(t *testing.T) {
	var mu sync.Mutex
	var hosts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts = append(hosts, r.Host)
		mu.Unlock()
		switch r.URL.Path {
		case "/ok":
			fmt.Fprint(w, "healthy")
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/vh": // a virtual host of its own
			if r.Host != "www.example.com" {
				http.Error(w, "unknown host "+r.Host, http.StatusNotFound)
			}
		case "/slow":
			time.Sleep(2 * time.Second)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	target := addrPort(t, srv.Listener.Addr())
	md5ok := md5.Sum([]byte("healthy"))
	sha := sha256.Sum256([]byte("healthy"))
	base := Spec{Type: HTTP, Target: target, Timeout: probeTimeout, Interval: probeTimeout}
	with := func(f func(*Spec)) Spec { s := base; f(&s); return s }
	tests := []struct {
		name   string
		spec   Spec
		want   Result
		detail string
	}{
		{"ok", with(func(s *Spec) { s.Path = "/ok" }), Success, "status 200"},
		{"404 default range", with(func(s *Spec) { s.Path = "/missing" }), Failure, "status 404 not in [200-299]"},
		{"404 accepted", with(func(s *Spec) { s.Path = "/missing"; s.Status = []StatusRange{{404, 404}} }), Success, "status 404"},
		{"redirect not followed", with(func(s *Spec) { s.Path = "/moved" }), Failure, "status 302"},
		{"redirect accepted", with(func(s *Spec) { s.Path = "/moved"; s.Status = []StatusRange{{300, 399}} }), Success, "status 302"},
		{"md5 digest", with(func(s *Spec) { s.Path = "/ok"; s.Digest = hex.EncodeToString(md5ok[:]) }), Success, "digest matches"},
		{"sha256 digest", with(func(s *Spec) { s.Path = "/ok"; s.Digest = hex.EncodeToString(sha[:]) }), Success, "digest matches"},
		{"wrong digest", with(func(s *Spec) { s.Path = "/ok"; s.Digest = strings.Repeat("0", 32) }), Failure, "body digest " + hex.EncodeToString(md5ok[:])},
		{"timeout", with(func(s *Spec) { s.Path = "/slow"; s.Timeout = 200 * time.Millisecond }), Timeout, "timeout"},
		{"vhost", with(func(s *Spec) { s.Path = "/ok"; s.Host = "www.example.org" }), Success, "status 200"},
		{"refused", Spec{Type: HTTP, Target: closedPort(t, "tcp"), Timeout: probeTimeout, Interval: probeTimeout}, Failure, "refused"},
	}
	for _, tt := range tests {
		expect(t, tt.name, probeOnce(t, tt.spec), tt.want, tt.detail)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(strings.Join(hosts, " "), "www.example.org") {
		t.Errorf("virtual host never sent; hosts seen %v", hosts)
	}
}

func TestHTTPS(t *testing.T) {
	var mu sync.Mutex
	var sni []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	srv.TLS = &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		mu.Lock()
		sni = append(sni, h.ServerName)
		mu.Unlock()
		return nil, nil
	}}
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	target := addrPort(t, srv.Listener.Addr())
	lastSNI := func() string {
		mu.Lock()
		defer mu.Unlock()
		return sni[len(sni)-1]
	}
	base := Spec{Type: HTTPS, Target: target, Timeout: probeTimeout, Interval: probeTimeout}
	with := func(f func(*Spec)) Spec { s := base; f(&s); return s }
	// httptest's certificate names example.com, 127.0.0.1 and ::1.
	tests := []struct {
		name   string
		spec   Spec
		want   Result
		detail string
		sni    string
	}{
		{"no verify", base, Success, "status 200", ""},
		{"no verify, sni", with(func(s *Spec) { s.SNI = "anything.test" }), Success, "status 200", "anything.test"},
		{"sni from vhost", with(func(s *Spec) { s.Host = "example.com" }), Success, "status 200", "example.com"},
		{"verify, unknown CA", with(func(s *Spec) { s.TLSVerify = true }), Failure, "certificate", ""},
		{"verify, CA, IP name", with(func(s *Spec) { s.TLSVerify = true; s.CAFile = ca }), Success, "status 200", ""},
		{"verify, CA, sni", with(func(s *Spec) { s.TLSVerify = true; s.CAFile = ca; s.SNI = "example.com" }), Success, "status 200", "example.com"},
		{"verify, CA, wrong name", with(func(s *Spec) { s.TLSVerify = true; s.CAFile = ca; s.SNI = "wrong.test" }), Failure, "wrong.test", "wrong.test"},
	}
	for _, tt := range tests {
		expect(t, tt.name, probeOnce(t, tt.spec), tt.want, tt.detail)
		if got := lastSNI(); got != tt.sni {
			t.Errorf("%s: server saw SNI %q, want %q", tt.name, got, tt.sni)
		}
	}
}

func TestUDP(t *testing.T) {
	target := udpEcho(t, nil)
	closed := closedPort(t, "udp")
	// The silent cases wait for the whole timeout (no reply, no error is
	// how UDP_CHECK succeeds), so it is short here; a loopback ICMP error
	// or echo arrives in microseconds.
	const short = 300 * time.Millisecond
	tests := []struct {
		name   string
		spec   Spec
		want   Result
		detail string
	}{
		{"echo", Spec{Type: UDP, Target: target, Payload: "ping", RequireReply: true, Timeout: probeTimeout, Interval: probeTimeout}, Success, "reply of 4 bytes"},
		{"silent, reply required", Spec{Type: UDP, Target: target, Payload: "quiet", RequireReply: true, Timeout: short, Interval: probeTimeout}, Timeout, "timeout"},
		{"silent, no reply needed", Spec{Type: UDP, Target: target, Payload: "quiet", Timeout: short, Interval: probeTimeout}, Success, "no ICMP error"},
		{"reply matches", Spec{Type: UDP, Target: target, Payload: "\x01\x02\x03", Reply: "01XX03", Timeout: probeTimeout, Interval: probeTimeout}, Success, "reply of 3 bytes"},
		{"reply differs", Spec{Type: UDP, Target: target, Payload: "\x01\x02\x03", Reply: "02", Timeout: probeTimeout, Interval: probeTimeout}, Failure, "udp reply 010203 does not match 02"},
		{"reply too long", Spec{Type: UDP, Target: target, Payload: "abcdef", MaxReply: 4, Timeout: probeTimeout, Interval: probeTimeout}, Failure, "want at most 4"},
		{"reply too short", Spec{Type: UDP, Target: target, Payload: "ab", MinReply: 4, Timeout: probeTimeout, Interval: probeTimeout}, Failure, "want at least 4"},
		// Datagrams longer than the probe's default 1500-byte buffer are
		// judged by their whole length, not a truncated one.
		{"long reply, min", Spec{Type: UDP, Target: target, Payload: strings.Repeat("x", 2000), MinReply: 1800, Timeout: probeTimeout, Interval: probeTimeout}, Success, "udp reply of more than 1800 bytes"},
		{"long reply, max", Spec{Type: UDP, Target: target, Payload: strings.Repeat("x", 2000), MaxReply: 1800, Timeout: probeTimeout, Interval: probeTimeout}, Failure, "udp reply of more than 1801 bytes, want at most 1800"},
		{"long reply, max fits", Spec{Type: UDP, Target: target, Payload: strings.Repeat("x", 2000), MaxReply: 2000, Timeout: probeTimeout, Interval: probeTimeout}, Success, "udp reply of 2000 bytes"},
		{"port unreachable", Spec{Type: UDP, Target: closed, Payload: "x", Timeout: probeTimeout, Interval: probeTimeout}, Failure, "ICMP port unreachable"},
		{"port unreachable, reply required", Spec{Type: UDP, Target: closed, Payload: "x", RequireReply: true, Timeout: probeTimeout, Interval: probeTimeout}, Failure, "ICMP port unreachable"},
	}
	for _, tt := range tests {
		expect(t, tt.name, probeOnce(t, tt.spec), tt.want, tt.detail)
	}
}

// udpEcho serves a loopback UDP echo that stays silent for "quiet" and
// reports each sender's IP to seen if it is not nil.
func udpEcho(t *testing.T, seen chan<- string) netip.AddrPort {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if seen != nil {
				seen <- "udp " + from.(*net.UDPAddr).IP.String()
			}
			if string(buf[:n]) != "quiet" {
				_, _ = c.WriteTo(buf[:n], from)
			}
		}
	}()
	return addrPort(t, c.LocalAddr())
}

func TestDNS(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch {
		case q.Name == "." && q.Qtype == dns.TypeSOA:
			rr, _ := dns.NewRR(". 60 IN SOA ns.example. admin.example. 1 60 60 60 60")
			m.Answer = append(m.Answer, rr)
		case q.Name == "www.example.":
			if q.Qtype == dns.TypeA {
				rr, _ := dns.NewRR("www.example. 60 IN A 192.0.2.1")
				m.Answer = append(m.Answer, rr)
			}
		case q.Name == "broken.example.":
			m.Rcode = dns.RcodeServerFailure
		case q.Name == "silent.example.":
			return
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: mux, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	defer srv.Shutdown()
	<-started
	target := addrPort(t, pc.LocalAddr())
	spec := func(qt, qn string) Spec {
		return Spec{Type: DNS, Target: target, QType: qt, QName: qn, Timeout: probeTimeout, Interval: probeTimeout}
	}
	silent := spec("A", "silent.example")
	silent.Timeout = 300 * time.Millisecond
	tests := []struct {
		name   string
		spec   Spec
		want   Result
		detail string
	}{
		{"default SOA .", spec("", ""), Success, "dns SOA .: 1 answers"},
		{"A", spec("a", "www.example"), Success, "dns A www.example."},
		{"no AAAA", spec("AAAA", "www.example"), Failure, "no AAAA answer"},
		{"nxdomain", spec("A", "nope.example"), Failure, "rcode NXDOMAIN"},
		{"servfail", spec("A", "broken.example"), Failure, "rcode SERVFAIL"},
		{"no answer", silent, Timeout, "timeout"},
	}
	for _, tt := range tests {
		expect(t, tt.name, probeOnce(t, tt.spec), tt.want, tt.detail)
	}
}

func TestPing(t *testing.T) {
	for _, a := range []string{"127.0.0.1", "::1"} {
		s := Spec{Type: Ping, Target: netip.AddrPortFrom(netip.MustParseAddr(a), 0), Timeout: probeTimeout, Interval: probeTimeout}
		o := probeOnce(t, s)
		if o.result == Error && a == "::1" {
			t.Logf("ping ::1: %s (no IPv6 loopback here?)", o.detail)
			continue
		}
		if o.result == Error && strings.Contains(o.detail, "permitted") {
			t.Skipf("ping %s: %s (needs root or net.ipv4.ping_group_range)", a, o.detail)
		}
		expect(t, "ping "+a, o, Success, "echo reply")
	}
}

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "check.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExec(t *testing.T) {
	tests := []struct {
		body    string
		dynamic bool
		want    Result
		weight  int
		set     bool
	}{
		{"exit 0", false, Success, 0, false},
		{"exit 1", false, Failure, 0, false},
		{"exit 7", false, Failure, 0, false},
		{"exit 0", true, Success, 0, false},
		{"exit 1", true, Failure, 0, false},
		{"exit 2", true, Success, 0, true},
		{"exit 42", true, Success, 40, true},
		{"exit 255", true, Success, 253, true},
		{"kill -KILL $$", true, Failure, 0, false},
	}
	for _, tt := range tests {
		o := probeOnce(t, Spec{Type: Exec, Argv: []string{script(t, tt.body)}, Dynamic: tt.dynamic, Timeout: probeTimeout, Interval: probeTimeout})
		if o.result != tt.want || o.weight != tt.weight || o.setWeight != tt.set {
			t.Errorf("%q dynamic=%v: %v weight %d set %v (%s), want %v %d %v", tt.body, tt.dynamic, o.result, o.weight, o.setWeight, o.detail, tt.want, tt.weight, tt.set)
		}
	}
	o := probeOnce(t, Spec{Type: Exec, Argv: []string{"/nonexistent/check"}, Timeout: probeTimeout, Interval: probeTimeout})
	expect(t, "missing program", o, Error, "no such file")
}

func TestExecTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	// The script leaves a grandchild in its process group, then hangs.
	p := script(t, "sleep 60 & echo $! > "+pidFile+"; exec sleep 60")
	start := time.Now()
	o := probeOnce(t, Spec{Type: Exec, Argv: []string{p}, Dynamic: true, Timeout: 300 * time.Millisecond, Interval: time.Second})
	expect(t, "timeout", o, Timeout, "timeout after 300ms, process group killed")
	if o.setWeight {
		t.Error("a killed script set a weight")
	}
	// Bound is loose: the kill is immediate; only a missed kill waits 60 s.
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("probe took %v", took)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// The orphan is reaped by init (or a subreaper) some time after the
	// kill; wait for it generously.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := syscall.Kill(pid, 0)
		st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if errors.Is(err, syscall.ESRCH) || strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still alive after the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state")
	tests := []struct {
		content string // "-" = no file
		weight  int
		dynamic bool
		want    Result
		w       int
		set     bool
	}{
		{"-", 0, false, Failure, 0, false},
		{"", 0, false, Success, 0, false},
		{"0\n", 0, false, Success, 0, false},
		{"1\n", 0, false, Failure, 0, false},
		{" 5 \nignored", 2, true, Success, 10, true},
		{"-3", 1, true, Failure, 0, false},
		{"abc", 1, false, Failure, 0, false},
	}
	for _, tt := range tests {
		_ = os.Remove(p)
		if tt.content != "-" {
			if err := os.WriteFile(p, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		o := probeOnce(t, Spec{Type: File, FilePath: p, Weight: tt.weight, Dynamic: tt.dynamic})
		if o.result != tt.want || o.weight != tt.w || o.setWeight != tt.set {
			t.Errorf("file %q weight %d dynamic %v: %v %d %v (%s), want %v %d %v", tt.content, tt.weight, tt.dynamic, o.result, o.weight, o.setWeight, o.detail, tt.want, tt.w, tt.set)
		}
	}
}

func TestExecAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running as another user needs root")
	}
	// The script lives in a directory nobody can read (t.TempDir is 0700
	// root), so give it one of its own.
	dir, err := os.MkdirTemp("", "vigil-check-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "check.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n[ \"$(id -u)\" = 65534 ] && exit 12\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := probeOnce(t, Spec{Type: Exec, Argv: []string{p}, User: "nobody", Dynamic: true, Timeout: probeTimeout, Interval: probeTimeout})
	if o.result != Success || o.weight != 10 {
		t.Errorf("as nobody: %v weight %d (%s), want success with weight 10", o.result, o.weight, o.detail)
	}
	o = probeOnce(t, Spec{Type: Exec, Argv: []string{p}, User: "no-such-user-vigil", Timeout: probeTimeout, Interval: probeTimeout})
	expect(t, "unknown user", o, Error, "cannot run as")
}

func TestSourceAndMark(t *testing.T) {
	// 127.0.0.2 is loopback too: probes from it never leave the host.
	src := netip.MustParseAddr("127.0.0.2")
	var mark uint32
	if os.Geteuid() == 0 {
		mark = 7 // SO_MARK needs CAP_NET_ADMIN
	}
	seen := make(chan string, 4)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			seen <- "tcp " + c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Close()
		}
	}()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, _, _ := net.SplitHostPort(r.RemoteAddr)
		seen <- "http " + h
	}))
	defer web.Close()
	udp := udpEcho(t, seen)
	for _, s := range []Spec{
		{Type: TCP, Target: addrPort(t, l.Addr())},
		{Type: HTTP, Target: addrPort(t, web.Listener.Addr())},
		{Type: UDP, Target: udp, Payload: "x", RequireReply: true},
	} {
		s.Source, s.FWMark, s.Timeout, s.Interval = src, mark, probeTimeout, probeTimeout
		expect(t, string(s.Type)+" from "+src.String(), probeOnce(t, s), Success, "")
		select {
		case got := <-seen:
			if want := string(s.Type) + " " + src.String(); got != want {
				t.Errorf("server saw %q, want %q", got, want)
			}
		case <-time.After(probeTimeout):
			t.Errorf("%s: server saw nothing", s.Type)
		}
	}
	// A source that is not a local address fails at bind, before sending.
	s := Spec{Type: TCP, Target: addrPort(t, l.Addr()), Source: netip.MustParseAddr("192.0.2.1"), Timeout: probeTimeout, Interval: probeTimeout}
	expect(t, "foreign source", probeOnce(t, s), Error, "bind 192.0.2.1")
	if err := (Spec{Type: TCP, Target: lo4, Source: netip.MustParseAddr("::1")}).Validate(); err == nil || !strings.Contains(err.Error(), "source ::1: family differs") {
		t.Errorf("mixed families: %v", err)
	}
}

func TestWaitConnected(t *testing.T) {
	// The path a signal during connect takes: a non-blocking connect, then
	// waitConnected on its result.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go acceptClose(l, nil)
	open := addrPort(t, l.Addr())
	closed := closedPort(t, "tcp")
	for _, tt := range []struct {
		target netip.AddrPort
		want   error
	}{{open, nil}, {closed, syscall.ECONNREFUSED}} {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = syscall.Connect(fd, &syscall.SockaddrInet4{Port: int(tt.target.Port()), Addr: tt.target.Addr().As4()})
		if err == syscall.EINPROGRESS {
			err = waitConnected(fd, time.Now().Add(probeTimeout))
		}
		syscall.Close(fd)
		if !errors.Is(err, tt.want) && err != tt.want {
			t.Errorf("%v: %v, want %v", tt.target, err, tt.want)
		}
	}
}

func TestTCPTimeout(t *testing.T) {
	// A listener that never accepts, with its accept queue full: the kernel
	// drops further SYNs, so a connect hangs until SO_SNDTIMEO ends it. All
	// on loopback.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	target := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*syscall.SockaddrInet4).Port))
	for range 3 { // fill the queue (backlog 0 holds one)
		c, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(c)
		_ = syscall.Connect(c, sa)
	}
	start := time.Now()
	o := probeOnce(t, Spec{Type: TCP, Target: target, Timeout: 300 * time.Millisecond, Interval: time.Second})
	expect(t, "full accept queue", o, Timeout, "timeout")
	// Loose bound: SO_SNDTIMEO ends it at 300ms; without it connect would
	// retry SYNs for minutes.
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("probe took %v", took)
	}
}

func TestHTTPURLs(t *testing.T) {
	// A body longer than the regex bound, with a marker across the bound:
	// the searched part ends in "NEE".
	big := strings.Repeat("x", maxRegexBody-3) + "NEEDLE" + strings.Repeat("y", 1000)
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		switch r.URL.Path {
		case "/a":
			fmt.Fprint(w, "alpha healthy")
		case "/b":
			fmt.Fprint(w, "beta\nready")
		case "/maint":
			fmt.Fprint(w, "<p>maintenance mode</p>")
		case "/err":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/big":
			// Two chunks, so the client's reads do not line up with the
			// bound.
			fmt.Fprint(w, big[:1000])
			w.(http.Flusher).Flush()
			fmt.Fprint(w, big[1000:])
		case "/vh": // a virtual host of its own
			if r.Host != "www.example.com" {
				http.Error(w, "unknown host "+r.Host, http.StatusNotFound)
			}
		case "/slow":
			time.Sleep(2 * time.Second)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	fetched := func() []string {
		mu.Lock()
		defer mu.Unlock()
		p := paths
		paths = nil
		return p
	}
	md5b := md5.Sum([]byte("beta\nready"))
	shaBig := sha256.Sum256([]byte(big))
	urls := func(u ...URL) Spec {
		return Spec{Type: HTTP, Target: addrPort(t, srv.Listener.Addr()), URLs: u, Timeout: probeTimeout, Interval: probeTimeout}
	}
	single := func(path, re string, noMatch bool) Spec {
		return Spec{Type: HTTP, Target: addrPort(t, srv.Listener.Addr()), Path: path, Regex: re, RegexNoMatch: noMatch, Timeout: probeTimeout, Interval: probeTimeout}
	}
	slow := urls(URL{Path: "/a"}, URL{Path: "/slow"})
	slow.Timeout = 300 * time.Millisecond // one budget for both URLs
	bigScope := fmt.Sprintf("in the first %d bytes of a longer body", maxRegexBody)
	tests := []struct {
		name    string
		spec    Spec
		want    Result
		detail  string
		fetched string // paths the server saw, in order
	}{
		{"all pass", urls(URL{Path: "/a"}, URL{Path: "/b", Regex: `bet.\nready$`}), Success,
			"2 urls: urls[0] GET /a: status 200; urls[1] GET /b: status 200, regex matches", "/a /b"},
		{"second status fails", urls(URL{Path: "/a"}, URL{Path: "/err"}), Failure,
			"urls[1] GET /err: status 500 not in [200-299]", "/a /err"},
		{"first failure stops", urls(URL{Path: "/err"}, URL{Path: "/a"}), Failure,
			"urls[0] GET /err: status 500", "/err"},
		{"per-url status", urls(URL{Path: "/err", Status: []StatusRange{{500, 503}}}, URL{Path: "/a"}), Success,
			"urls[0] GET /err: status 500; urls[1] GET /a: status 200", "/err /a"},
		{"regex does not match", urls(URL{Path: "/a"}, URL{Path: "/b", Regex: "^ready"}), Failure,
			`urls[1] GET /b: body does not match regex "^ready"`, "/a /b"},
		{"multiline flag", urls(URL{Path: "/a"}, URL{Path: "/b", Regex: "(?m)^ready"}), Success,
			"urls[1] GET /b: status 200, regex matches", "/a /b"},
		{"regex_no_match fails on a match", urls(URL{Path: "/a", Regex: "healthy"}, URL{Path: "/maint", Regex: "maint[a-z]+", RegexNoMatch: true}), Failure,
			`urls[1] GET /maint: body matches regex "maint[a-z]+" (regex_no_match)`, "/a /maint"},
		{"regex_no_match passes", urls(URL{Path: "/a", Regex: "maintenance", RegexNoMatch: true}, URL{Path: "/b"}), Success,
			"urls[0] GET /a: status 200, regex does not match (regex_no_match)", "/a /b"},
		{"digest and regex", urls(URL{Path: "/a"}, URL{Path: "/b", Digest: hex.EncodeToString(md5b[:]), Regex: "beta"}), Success,
			"urls[1] GET /b: status 200, digest matches, regex matches", "/a /b"},
		{"digest fails, regex would pass", urls(URL{Path: "/a"}, URL{Path: "/b", Digest: strings.Repeat("0", 64), Regex: "beta"}), Failure,
			"urls[1] GET /b: body digest ", "/a /b"},
		// keepalived's per-url virtualhost: the page's Host replaces the
		// check's, for that page only.
		{"per-url host", func() Spec {
			sp := urls(URL{Path: "/a"}, URL{Path: "/vh", Host: "www.example.com"})
			sp.Host = "other.example.com"
			return sp
		}(), Success, "urls[1] GET /vh: status 200", "/a /vh"},
		{"check host without the page's", func() Spec {
			sp := urls(URL{Path: "/vh"})
			sp.Host = "other.example.com"
			return sp
		}(), Failure, "GET /vh: status 404", "/vh"},
		{"timeout in second url", slow, Timeout,
			"urls[1] GET /slow: timeout", "/a /slow"},
		{"single form regex", single("/a", "(?i)ALPHA", false), Success, "GET /a: status 200, regex matches", "/a"},
		{"single form regex_no_match", single("/maint", "maintenance", true), Failure,
			`GET /maint: body matches regex "maintenance" (regex_no_match)`, "/maint"},
		// The regex searches the first maxRegexBody bytes only, and says so.
		{"past the regex bound", single("/big", "NEEDLE", false), Failure,
			`GET /big: body does not match regex "NEEDLE" ` + bigScope, "/big"},
		{"within the regex bound", single("/big", "^xxx", false), Success, "regex matches " + bigScope, "/big"},
		{"no_match past the bound", single("/big", "NEEDLE", true), Success, "regex does not match " + bigScope, "/big"},
		// The digest still covers the whole body.
		{"digest of a long body", urls(URL{Path: "/big", Digest: hex.EncodeToString(shaBig[:]), Regex: "^x+NEE$"}, URL{Path: "/a"}), Success,
			"urls[0] GET /big: status 200, digest matches, regex matches " + bigScope, "/big /a"},
	}
	for _, tt := range tests {
		fetched()
		expect(t, tt.name, probeOnce(t, tt.spec), tt.want, tt.detail)
		if got := strings.Join(fetched(), " "); got != tt.fetched {
			t.Errorf("%s: server saw %q, want %q", tt.name, got, tt.fetched)
		}
	}
}

func TestHTTPSURLs(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "page "+r.URL.Path)
	}))
	defer srv.Close()
	spec := func(u ...URL) Spec {
		return Spec{Type: HTTPS, Target: addrPort(t, srv.Listener.Addr()), URLs: u, Timeout: probeTimeout, Interval: probeTimeout}
	}
	expect(t, "https urls", probeOnce(t, spec(URL{Path: "/x", Regex: "page /x"}, URL{Path: "/y", Regex: "page /x", RegexNoMatch: true})),
		Success, "urls[1] GET /y: status 200, regex does not match")
	expect(t, "https second url fails", probeOnce(t, spec(URL{Path: "/x", Regex: "page /x"}, URL{Path: "/y", Regex: "page /x"})),
		Failure, `urls[1] GET /y: body does not match regex "page /x"`)
}

// smtpServer serves a scripted SMTP responder on loopback: greeting is
// sent on connect ("" = say nothing, ever), helo answers HELO ("" = close
// the connection instead), QUIT gets 221. Each connection's commands are
// sent to the returned channel, joined by spaces, when it ends.
func smtpServer(t *testing.T, greeting, helo string) (netip.AddrPort, <-chan string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cmds := make(chan string, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var seen []string
				defer func() { cmds <- strings.Join(seen, " ") }()
				_, _ = io.WriteString(c, greeting)
				r := textproto.NewReader(bufio.NewReader(c))
				for {
					line, err := r.ReadLine()
					if err != nil {
						return
					}
					seen = append(seen, line)
					switch verb, _, _ := strings.Cut(line, " "); verb {
					case "HELO":
						if helo == "" {
							return
						}
						_, _ = io.WriteString(c, helo)
					case "QUIT":
						_, _ = io.WriteString(c, "221 2.0.0 bye\r\n")
						return
					default:
						_, _ = io.WriteString(c, "502 5.5.2 what?\r\n")
					}
				}
			}()
		}
	}()
	return addrPort(t, l.Addr()), cmds
}

func TestSMTP(t *testing.T) {
	const helo = "checker.example.org"
	tests := []struct {
		name            string
		greeting, reply string
		timeout         time.Duration
		want            Result
		detail          string
		cmds            string // what the server saw
	}{
		{"good server", "220 mx.example.org ESMTP\r\n", "250 mx.example.org\r\n", probeTimeout, Success,
			"HELO checker.example.org: 250 mx.example.org", "HELO checker.example.org QUIT"},
		{"multi-line replies", "220-mx.example.org ESMTP\r\n220-no UCE\r\n220 ready\r\n", "250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n", probeTimeout, Success,
			"HELO checker.example.org: 250 mx.example.org", "HELO checker.example.org QUIT"},
		{"554 greeting", "554 5.3.2 no service here\r\n", "250 ok\r\n", probeTimeout, Failure,
			"greeting: 554 5.3.2 no service here, want 220", "QUIT"},
		{"multi-line 421 greeting", "421-mx.example.org busy\r\n421 try later\r\n", "250 ok\r\n", probeTimeout, Failure,
			"greeting: 421 mx.example.org busy, want 220", "QUIT"},
		{"HELO rejected", "220 mx.example.org\r\n", "550 5.7.1 not you\r\n", probeTimeout, Failure,
			"HELO checker.example.org: 550 5.7.1 not you, want 250", "HELO checker.example.org QUIT"},
		{"closed after HELO", "220 mx.example.org\r\n", "", probeTimeout, Failure,
			"HELO checker.example.org: connection closed", "HELO checker.example.org"},
		{"not SMTP", "SSH-2.0-OpenSSH_9.6\r\n", "250 ok\r\n", probeTimeout, Failure, `greeting: not an SMTP reply: "SSH-2.0-OpenSSH_9.6"`, ""},
		{"silent server", "", "", 300 * time.Millisecond, Timeout, "greeting: timeout", ""},
	}
	for _, tt := range tests {
		target, cmds := smtpServer(t, tt.greeting, tt.reply)
		start := time.Now()
		o := probeOnce(t, Spec{Type: SMTP, Target: target, HeloName: helo, Timeout: tt.timeout, Interval: probeTimeout})
		expect(t, tt.name, o, tt.want, tt.detail)
		if tt.want == Success && strings.Contains(o.detail, "QUIT") {
			t.Errorf("%s: QUIT not answered: %s", tt.name, o.detail)
		}
		if took := time.Since(start); took > tt.timeout+time.Second {
			t.Errorf("%s: probe took %v with timeout %v", tt.name, took, tt.timeout)
		}
		select {
		case got := <-cmds:
			if got != tt.cmds {
				t.Errorf("%s: server saw %q, want %q", tt.name, got, tt.cmds)
			}
		case <-time.After(probeTimeout):
			t.Errorf("%s: connection still open after the probe", tt.name)
		}
	}
	o := probeOnce(t, Spec{Type: SMTP, Target: closedPort(t, "tcp"), Timeout: probeTimeout, Interval: probeTimeout})
	expect(t, "connection refused", o, Failure, "connect: ")
	expect(t, "connection refused", o, Failure, "refused")
}

func TestSMTPCancel(t *testing.T) {
	// Stopping vigil cancels the context: a probe waiting on a silent
	// server returns at once, not at its timeout.
	target, _ := smtpServer(t, "", "")
	n, err := Spec{Type: SMTP, Target: target, Timeout: time.Minute, Interval: time.Minute}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	p, err := newProber(n)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.Timeout)
	defer cancel()
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	o := p.probe(ctx)
	expect(t, "cancelled", o, Timeout, "greeting: timeout")
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("cancelled probe took %v", took)
	}
}

func TestSMTPReplyBound(t *testing.T) {
	// A server that never ends its greeting line cannot make the probe
	// buffer without bound.
	target, _ := smtpServer(t, "220-"+strings.Repeat("x", 2*maxSMTPReply), "250 ok\r\n")
	o := probeOnce(t, Spec{Type: SMTP, Target: target, Timeout: probeTimeout, Interval: probeTimeout})
	expect(t, "endless line", o, Failure, fmt.Sprintf("greeting: replies longer than %d bytes", maxSMTPReply))
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		in   string
		want int
		code int
		text string
		err  string // "" = none
	}{
		{"220 mx ready\r\n", 220, 220, "mx ready", ""},
		{"220\r\n", 220, 220, "", ""},
		{"220-a\r\n220-b\r\n220 c\r\nEXTRA\r\n", 220, 220, "a\nb\nc", ""},
		{"554 go away\r\n", 220, 554, "go away", "go away"}, // a *textproto.Error
		{"220-a\r\n554 b\r\n", 220, 0, "", "reply 220 continued with code 554"},
		{"SSH-2.0-x\r\n", 220, 0, "", `not an SMTP reply: "SSH-2.0-x"`},
		{"22\r\n", 220, 0, "", "not an SMTP reply"},
		{"220x\r\n", 220, 0, "", "not an SMTP reply"},
		{"099 odd\r\n", 220, 0, "", "not an SMTP reply"},
		{"220-a\r\n", 220, 0, "", "EOF"},
	}
	for _, tt := range tests {
		code, text, err := readReply(textproto.NewReader(bufio.NewReader(strings.NewReader(tt.in))), tt.want)
		if code != tt.code || text != tt.text || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("readReply(%q, %d) = %d %q %v, want %d %q %q", tt.in, tt.want, code, text, err, tt.code, tt.text, tt.err)
		}
		var te *textproto.Error
		if isCode := errors.As(err, &te); isCode != (tt.code != 0 && tt.code != tt.want) || isCode && te.Code != tt.code {
			t.Errorf("readReply(%q, %d): error %#v, want a *textproto.Error only for another code", tt.in, tt.want, err)
		}
	}
}

// keepalived's http_protocol: 1.0 sends HTTP/1.0 (keepalived's default),
// 1.0C adds Connection: close, 1.1 (vigil's default) is net/http's HTTP/1.1
// with Connection: close; each sends Host and is judged the same way
// (status, digest, regex), over TLS too.
func TestHTTPProtocol(t *testing.T) {
	type seen struct{ proto, conn, host string }
	var mu sync.Mutex
	var last seen
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		last = seen{r.Proto, r.Header.Get("Connection"), r.Host}
		mu.Unlock()
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "legacy ok")
	})
	srv, tsrv := httptest.NewServer(h), httptest.NewTLSServer(h)
	defer srv.Close()
	defer tsrv.Close()
	sum := md5.Sum([]byte("legacy ok"))
	for _, tc := range []struct {
		version, path string
		tls           bool
		want          Result
		seen          seen
	}{
		{"1.0", "/", false, Success, seen{"HTTP/1.0", "", "www.example.com"}},
		{"1.0C", "/", false, Success, seen{"HTTP/1.0", "close", "www.example.com"}},
		{"", "/", false, Success, seen{"HTTP/1.1", "close", "www.example.com"}},
		{"1.0", "/missing", false, Failure, seen{"HTTP/1.0", "", "www.example.com"}},
		{"1.0C", "/", true, Success, seen{"HTTP/1.0", "close", "www.example.com"}},
	} {
		name := fmt.Sprintf("%q %s tls %v", tc.version, tc.path, tc.tls)
		s := Spec{Type: HTTP, Target: addrPort(t, srv.Listener.Addr()), Path: tc.path, Host: "www.example.com",
			Digest: hex.EncodeToString(sum[:]), HTTPVersion: tc.version, Timeout: probeTimeout, Interval: probeTimeout}
		if tc.tls {
			s.Type, s.Target = HTTPS, addrPort(t, tsrv.Listener.Addr())
		}
		o := probeOnce(t, s)
		if o.result != tc.want {
			t.Errorf("%s: %v %q, want %v", name, o.result, o.detail, tc.want)
		}
		mu.Lock()
		if last != tc.seen {
			t.Errorf("%s: the server saw %+v, want %+v", name, last, tc.seen)
		}
		mu.Unlock()
	}
	if _, err := (Spec{Type: HTTP, Target: addrPort(t, srv.Listener.Addr()), HTTPVersion: "2"}).Normalize(); err == nil {
		t.Error("http_protocol 2 accepted")
	}
}
