package check

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"vigil/internal/proc"
)

// Result classifies one probe for observers and metrics.
type Result uint8

// Probe results.
const (
	Success Result = iota // the target answered as wanted
	Failure               // the target answered, wrongly (refused, bad status, exit 1, ...)
	Timeout               // no answer within Spec.Timeout
	Error                 // the probe could not be made (local error: socket, bad user, ...)
)

func (r Result) String() string {
	switch r {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Timeout:
		return "timeout"
	case Error:
		return "error"
	}
	return "result-" + strconv.Itoa(int(r))
}

// outcome is what one probe found.
type outcome struct {
	result Result
	detail string
	// weight is set (setWeight) by exec and file checks with Dynamic.
	weight    int
	setWeight bool
}

func ok(format string, a ...any) outcome {
	return outcome{result: Success, detail: fmt.Sprintf(format, a...)}
}

func fail(r Result, format string, a ...any) outcome {
	return outcome{result: r, detail: fmt.Sprintf(format, a...)}
}

// classify turns a network error into a result: deadline errors are
// timeouts, the rest failures.
func classify(ctx context.Context, what string, err error) outcome {
	var ne net.Error
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return fail(Timeout, "%s: timeout", what)
	}
	return fail(Failure, "%s: %v", what, err)
}

// prober runs one kind of probe; it is built once per deduplicated check
// and called from one worker at a time.
type prober interface {
	probe(ctx context.Context) outcome
}

func newProber(s Spec) (prober, error) {
	switch s.Type {
	case TCP:
		return tcpProber{s.Target, s.Source, s.FWMark}, nil
	case HTTP, HTTPS:
		return newHTTPProber(s)
	case UDP:
		return udpProber{s}, nil
	case DNS:
		return dnsProber{s}, nil
	case Ping:
		return &pingProber{s: s}, nil
	case SMTP:
		return smtpProber{s}, nil
	case Exec:
		return execProber{s}, nil
	case File:
		return fileProber{s}, nil
	}
	return nil, fmt.Errorf("check: unknown type %q", s.Type)
}

// tcpProber connects with a blocking connect(2) bounded by SO_SNDTIMEO on
// the worker's thread, bypassing net's poller: at thousands of checks per
// second the poller's registration and the extra getsockname/getpeername
// calls of net.Dial cost about a fifth of the CPU (see BenchmarkProbe). A
// worker stuck on a slow target holds one OS thread for up to Timeout; the
// worker pool bounds how many.
type tcpProber struct {
	target netip.AddrPort
	source netip.Addr
	mark   uint32
}

// prepare applies Source and FWMark to a raw socket.
func (p tcpProber) prepare(fd, family int) error {
	if p.mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(p.mark)); err != nil {
			return fmt.Errorf("fwmark %d: %w", p.mark, err)
		}
	}
	if p.source.IsValid() {
		var sa unix.Sockaddr = &unix.SockaddrInet6{Addr: p.source.As16()}
		if family == unix.AF_INET {
			sa = &unix.SockaddrInet4{Addr: p.source.As4()}
		}
		if err := unix.Bind(fd, sa); err != nil {
			return fmt.Errorf("bind %v: %w", p.source, err)
		}
	}
	return nil
}

func (tcpProber) selfTimed() {}

var connected = outcome{result: Success, detail: "connected"}

func (p tcpProber) probe(ctx context.Context) outcome {
	if p.target.Addr().Zone() != "" {
		return p.probeNet(ctx) // scoped IPv6: let net resolve the zone
	}
	timeout := time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return fail(Timeout, "connect: timeout")
	}
	var family int
	var sa unix.Sockaddr
	if a := p.target.Addr(); a.Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(p.target.Port()), Addr: a.As4()}
	} else {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(p.target.Port()), Addr: a.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail(Error, "tcp socket: %v", err)
	}
	if err := p.prepare(fd, family); err != nil {
		_ = unix.Close(fd)
		return fail(Error, "tcp socket: %v", err)
	}
	// SO_LINGER 0: close with RST, so a check rate of thousands per second
	// does not leave the prober's ports in TIME_WAIT.
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	tv := unix.NsecToTimeval(max(timeout, time.Microsecond).Nanoseconds())
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	deadline := time.Now().Add(timeout)
	if err = unix.Connect(fd, sa); err == unix.EINTR {
		// With SO_SNDTIMEO set a signal (SIGCHLD of an exec check, SIGPROF)
		// interrupts connect even under SA_RESTART; the handshake goes on.
		err = waitConnected(fd, deadline)
	}
	_ = unix.Close(fd)
	switch {
	case err == nil:
		return connected
	case err == unix.EINPROGRESS || err == unix.EAGAIN || err == unix.ETIMEDOUT:
		// SO_SNDTIMEO expired (EINPROGRESS), or the kernel gave up on SYNs.
		return fail(Timeout, "connect: timeout")
	}
	return fail(Failure, "connect: %v", err)
}

// waitConnected waits until the connect in progress on fd completes or
// deadline passes (EINPROGRESS), and returns its result.
func waitConnected(fd int, deadline time.Time) error {
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms <= 0 {
			return unix.EINPROGRESS
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n > 0 {
			break
		}
	}
	soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if soerr != 0 {
		return unix.Errno(soerr)
	}
	return nil
}

// dialerFor returns a dialer for network ("tcp" or "udp") probes from
// source (if valid) with packets marked mark (if not 0). TCP keepalive is
// off: a probe's connection lives for microseconds and setting it costs
// three syscalls.
func dialerFor(network string, source netip.Addr, mark uint32) *net.Dialer {
	d := &net.Dialer{KeepAlive: -1}
	if source.IsValid() {
		if network == "udp" {
			d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(source, 0))
		} else {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(source, 0))
		}
	}
	if mark != 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
			})
			if err == nil && serr != nil {
				err = fmt.Errorf("fwmark %d: %w", mark, serr)
			}
			return err
		}
	}
	return d
}

func (p tcpProber) probeNet(ctx context.Context) outcome {
	d := dialerFor("tcp", p.source, p.mark)
	c, err := d.DialContext(ctx, "tcp", p.target.String())
	if err != nil {
		return classify(ctx, "connect", err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
	return ok("connected")
}

type httpProber struct {
	s      Spec
	urls   []httpURL
	client *http.Client
	// For HTTP/1.0 requests, which net/http does not send: how the client
	// dials and its TLS settings.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	tls  *tls.Config
}

// httpURL is one page to fetch, ready to probe.
type httpURL struct {
	URL
	url string         // absolute
	re  *regexp.Regexp // nil without Regex
}

func newHTTPProber(s Spec) (*httpProber, error) {
	tr := &http.Transport{
		// A check tests a fresh connection each time, as keepalived does.
		DisableKeepAlives:      true,
		DisableCompression:     true, // the digest is of the body as sent
		Proxy:                  nil,
		DialContext:            dialerFor("tcp", s.Source, s.FWMark).DialContext,
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
	if s.Type == HTTPS {
		tc := &tls.Config{ServerName: s.SNI, InsecureSkipVerify: !s.TLSVerify}
		if s.TLSVerify && s.SNI == "" {
			tc.ServerName = s.Target.Addr().String()
		}
		if s.CAFile != "" {
			pem, err := os.ReadFile(s.CAFile)
			if err != nil {
				return nil, fmt.Errorf("check https %s: ca: %w", s.Target, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("check https %s: ca %s: no PEM certificates", s.Target, s.CAFile)
			}
			tc.RootCAs = pool
		}
		tr.TLSClientConfig = tc
		// Without SNI Go would send none for an IP target anyway; the name
		// goes only where the spec asks.
	}
	urls := s.URLs
	if len(urls) == 0 {
		urls = []URL{{Path: s.Path, Status: s.Status, Digest: s.Digest, Regex: s.Regex, RegexNoMatch: s.RegexNoMatch}}
	}
	p := &httpProber{
		s: s, dial: tr.DialContext, tls: tr.TLSClientConfig,
		client: &http.Client{
			Transport: tr,
			// A redirect is a status to judge, not to follow (keepalived
			// does not follow either).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	for i, u := range urls {
		hu := httpURL{URL: u, url: string(s.Type) + "://" + s.Target.String() + u.Path}
		if u.Regex != "" {
			re, err := regexp.Compile(u.Regex)
			if err != nil { // Normalize compiled it already
				return nil, fmt.Errorf("check %s %s: urls[%d].regex %q: %w", s.Type, s.Target, i, u.Regex, err)
			}
			hu.re = re
		}
		p.urls = append(p.urls, hu)
	}
	return p, nil
}

// probe fetches the URLs in order and stops at the first that fails. With
// several URLs each detail names the URL by its index in Spec.URLs.
func (p *httpProber) probe(ctx context.Context) outcome {
	if len(p.urls) == 1 {
		return p.get(ctx, &p.urls[0])
	}
	passed := make([]string, 0, len(p.urls))
	for i := range p.urls {
		o := p.get(ctx, &p.urls[i])
		o.detail = fmt.Sprintf("urls[%d] %s", i, o.detail)
		if o.result != Success {
			return o
		}
		passed = append(passed, o.detail)
	}
	return ok("%d urls: %s", len(p.urls), strings.Join(passed, "; "))
}

// get fetches one URL and judges its status, digest and regex.
func (p *httpProber) get(ctx context.Context, u *httpURL) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.url, nil)
	if err != nil {
		return fail(Error, "request %s: %v", u.url, err)
	}
	if h := cmp.Or(u.Host, p.s.Host); h != "" {
		req.Host = h
	}
	req.Header.Set("User-Agent", "vigil-check")
	var resp *http.Response
	if p.s.HTTPVersion == "1.0" || p.s.HTTPVersion == "1.0C" {
		resp, err = p.get10(ctx, req)
	} else {
		resp, err = p.client.Do(req)
	}
	if err != nil {
		return classify(ctx, "GET "+u.Path, err)
	}
	defer resp.Body.Close()
	return u.verdict(ctx, resp.StatusCode, resp.Body)
}

// verdict judges an answer to u: its status and, if u asks, its body's
// digest and regex. It reads no more of body than they need: nothing
// without either, the first maxRegexBody bytes for a regex alone, at most
// maxBody+1 bytes for a digest. ctx only classifies a read error (timeout
// or not).
func (u *httpURL) verdict(ctx context.Context, code int, body io.Reader) outcome {
	if !statusOK(u.Status, code) {
		return fail(Failure, "GET %s: status %d not in %v", u.Path, code, u.Status)
	}
	if u.Digest == "" && u.re == nil {
		return ok("GET %s: status %d", u.Path, code)
	}
	// One pass over the body feeds the hash (all of it, up to maxBody) and
	// keeps the start for the regex (up to maxRegexBody); without a digest
	// no more than the regex needs is read.
	sink := &bodySink{keep: u.re != nil}
	limit := int64(maxRegexBody)
	if u.Digest != "" {
		sink.h = newDigest(u.Digest)
		limit = maxBody
	}
	n, err := io.Copy(sink, io.LimitReader(body, limit+1))
	if err != nil {
		return classify(ctx, "GET "+u.Path+": body", err)
	}
	var passed []string
	if sink.h != nil {
		if n > maxBody {
			return fail(Failure, "GET %s: body longer than %d bytes", u.Path, maxBody)
		}
		if got := hex.EncodeToString(sink.h.Sum(nil)); got != u.Digest {
			return fail(Failure, "GET %s: body digest %s, want %s", u.Path, got, u.Digest)
		}
		passed = append(passed, "digest matches")
	}
	if u.re != nil {
		var scope string
		if n > maxRegexBody {
			scope = fmt.Sprintf(" in the first %d bytes of a longer body", maxRegexBody)
		}
		switch matched := u.re.Match(sink.buf); {
		case matched && u.RegexNoMatch:
			return fail(Failure, "GET %s: body matches regex %q%s (regex_no_match)", u.Path, u.Regex, scope)
		case !matched && !u.RegexNoMatch:
			return fail(Failure, "GET %s: body does not match regex %q%s", u.Path, u.Regex, scope)
		case matched:
			passed = append(passed, "regex matches"+scope)
		default:
			passed = append(passed, "regex does not match"+scope+" (regex_no_match)")
		}
	}
	return ok("GET %s: status %d, %s", u.Path, code, strings.Join(passed, ", "))
}

// get10 sends req as HTTP/1.0 (keepalived's http_protocol 1.0, or 1.0C
// with Connection: close) on a fresh connection and reads the answer; the
// body's Close closes the connection.
func (p *httpProber) get10(ctx context.Context, req *http.Request) (*http.Response, error) {
	conn, err := p.dial(ctx, "tcp", p.s.Target.String())
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	if p.s.Type == HTTPS {
		tc := tls.Client(conn, p.tls.Clone())
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: %s\r\n", req.URL.RequestURI(), cmp.Or(req.Host, req.URL.Host), req.Header.Get("User-Agent"))
	if p.s.HTTPVersion == "1.0C" {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		conn.Close()
		return nil, err
	}
	resp, err := readResponse10(conn, req, maxHeaderBytes)
	if err != nil {
		conn.Close()
		return nil, err
	}
	resp.Body = connBody{resp.Body, conn}
	return resp, nil
}

// readResponse10 reads the answer to req from r, its status line and
// headers bounded together by limit bytes as net/http's transport bounds
// them on the HTTP/1.1 path (MaxResponseHeaderBytes); longer ones fail
// with a *headersTooLong. The body is bounded by what reads it (verdict).
func readResponse10(r io.Reader, req *http.Request, limit int64) (*http.Response, error) {
	hr := &headerReader{r: r, left: limit, limit: limit}
	resp, err := http.ReadResponse(bufio.NewReader(hr), req)
	if err != nil {
		if hr.refused {
			// The parser needed more than the limit; the error it reports
			// may be of the line the limit cut ("missing colon").
			return nil, &headersTooLong{limit}
		}
		return nil, err
	}
	// What the bufio.Reader read ahead of the body counted against the
	// headers, as in net/http's transport; the body is not limited here.
	hr.body = true
	return resp, nil
}

// headersTooLong is the error of an answer whose status line and headers
// are longer than the limit.
type headersTooLong struct{ limit int64 }

func (e *headersTooLong) Error() string {
	return fmt.Sprintf("response headers longer than %d bytes", e.limit)
}

// headerReader passes through at most left bytes of r until body is set,
// then fails with *headersTooLong and notes that it refused.
type headerReader struct {
	r       io.Reader
	left    int64
	limit   int64
	body    bool
	refused bool
}

func (h *headerReader) Read(p []byte) (int, error) {
	if h.body {
		return h.r.Read(p)
	}
	if h.left <= 0 {
		h.refused = true
		return 0, &headersTooLong{h.limit}
	}
	if int64(len(p)) > h.left {
		p = p[:h.left]
	}
	n, err := h.r.Read(p)
	h.left -= int64(n)
	return n, err
}

// connBody is a body read from conn; closing it closes conn.
type connBody struct {
	io.ReadCloser
	conn net.Conn
}

// Close closes the connection without draining the body (http.Response's
// body would read a chunked one to its end): a check has read what it
// judges, and a server that streams on must not hold the probe until its
// timeout.
func (c connBody) Close() error {
	return c.conn.Close()
}

// bodySink hashes what is written to it (h, if set) and keeps the first
// maxRegexBody bytes (if keep).
type bodySink struct {
	h    hash.Hash
	keep bool
	buf  []byte
}

func (b *bodySink) Write(p []byte) (int, error) {
	if b.h != nil {
		b.h.Write(p)
	}
	if room := maxRegexBody - len(b.buf); b.keep && room > 0 {
		keep := p[:min(room, len(p))]
		if len(b.buf)+len(keep) > cap(b.buf) {
			// Double, up to the bound: append grows large slices by about
			// 1.25×, which allocates some five times the bound in all.
			buf := make([]byte, len(b.buf), min(max(2*cap(b.buf), len(b.buf)+len(keep), 4<<10), maxRegexBody))
			copy(buf, b.buf)
			b.buf = buf
		}
		b.buf = append(b.buf, keep...)
	}
	return len(p), nil
}

// newDigest picks the hash by the digest's length: 32 hex digits are MD5
// (keepalived's genhash), 64 SHA-256.
func newDigest(hexDigest string) hash.Hash {
	if len(hexDigest) == 32 {
		return md5.New()
	}
	return sha256.New()
}

func statusOK(ranges []StatusRange, code int) bool {
	for _, r := range ranges {
		if code >= r.Lo && code <= r.Hi {
			return true
		}
	}
	return false
}

type udpProber struct{ s Spec }

func (p udpProber) probe(ctx context.Context) outcome {
	// A connected socket, so the kernel reports an ICMP port unreachable
	// for the target as ECONNREFUSED on the next read.
	c, err := dialerFor("udp", p.s.Source, p.s.FWMark).DialContext(ctx, "udp", p.s.Target.String())
	if err != nil {
		return fail(Error, "udp socket: %v", err)
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	if _, err := c.Write([]byte(p.s.Payload)); err != nil {
		return classify(ctx, "udp send", err)
	}
	// The buffer holds a whole Ethernet-sized reply, and one byte more than
	// MinReply and MaxReply need to be judged; MSG_TRUNC says when a reply
	// was longer (a datagram carries at most 64 KiB).
	buf := make([]byte, min(max(1500, p.s.MinReply, p.s.MaxReply+1), 64<<10))
	var n, flags int
	if uc, isUDP := c.(*net.UDPConn); isUDP {
		n, _, flags, _, err = uc.ReadMsgUDP(buf, nil)
	} else {
		n, err = c.Read(buf)
	}
	switch {
	case err == nil:
		return p.judge(buf[:n], flags&unix.MSG_TRUNC != 0)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fail(Failure, "udp: ICMP port unreachable")
	case !p.s.RequireReply && classify(ctx, "", err).result == Timeout:
		return ok("udp: no reply and no ICMP error")
	}
	return classify(ctx, "udp reply", err)
}

// judge checks a udp reply against Reply, MinReply and MaxReply; b is
// its start when truncated.
func (p udpProber) judge(b []byte, truncated bool) outcome {
	size := fmt.Sprintf("%d bytes", len(b))
	if truncated {
		size = "more than " + size
	}
	switch {
	case len(b) < p.s.MinReply:
		return fail(Failure, "udp reply of %s, want at least %d", size, p.s.MinReply)
	case p.s.MaxReply > 0 && len(b) > p.s.MaxReply:
		return fail(Failure, "udp reply of %s, want at most %d", size, p.s.MaxReply)
	case !replyMatches(p.s.Reply, b):
		return fail(Failure, "udp reply %x does not match %s", b[:min(len(b), 32)], p.s.Reply)
	}
	return ok("udp reply of %s", size)
}

// replyMatches reports whether b starts with pattern: lower-case hex
// digits, x matching any digit (keepalived's require_reply).
func replyMatches(pattern string, b []byte) bool {
	if len(pattern)/2 > len(b) {
		return false
	}
	const digits = "0123456789abcdef"
	for i := range len(pattern) {
		nibble := b[i/2] >> 4
		if i%2 == 1 {
			nibble = b[i/2] & 0xf
		}
		if c := pattern[i]; c != 'x' && c != digits[nibble] {
			return false
		}
	}
	return true
}

type dnsProber struct{ s Spec }

func (p dnsProber) probe(ctx context.Context) outcome {
	m := new(dns.Msg)
	m.SetQuestion(p.s.QName, dns.StringToType[p.s.QType])
	m.RecursionDesired = true
	c := &dns.Client{Net: "udp", Dialer: dialerFor("udp", p.s.Source, p.s.FWMark)}
	if d, ok := ctx.Deadline(); ok {
		c.Timeout = time.Until(d)
	}
	r, _, err := c.ExchangeContext(ctx, m, p.s.Target.String())
	if err != nil {
		return classify(ctx, "dns "+p.s.QType+" "+p.s.QName, err)
	}
	return p.verdict(r)
}

// verdict judges a reply to the check's query (the client matched its
// ID): up with rcode NOERROR and an answer of the query's type.
func (p dnsProber) verdict(r *dns.Msg) outcome {
	if r.Rcode != dns.RcodeSuccess {
		name, known := dns.RcodeToString[r.Rcode]
		if !known { // an extended rcode (EDNS) without a name
			name = strconv.Itoa(r.Rcode)
		}
		return fail(Failure, "dns %s %s: rcode %s", p.s.QType, p.s.QName, name)
	}
	want := dns.StringToType[p.s.QType]
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == want {
			return ok("dns %s %s: %d answers", p.s.QType, p.s.QName, len(r.Answer))
		}
	}
	return fail(Failure, "dns %s %s: no %s answer", p.s.QType, p.s.QName, p.s.QType)
}

// smtpProber is keepalived's SMTP_CHECK: connect, a 220 greeting, HELO
// answered with 250, then QUIT. Replies may span lines ("220-...",
// "220 ..."). The server has proved itself once HELO is accepted, so what
// it answers to QUIT (or whether it answers before the timeout) is only
// noted in the detail.
type smtpProber struct{ s Spec }

// maxSMTPReply bounds what an smtp probe reads from a server in all.
const maxSMTPReply = 64 << 10

var errReplyTooLong = fmt.Errorf("replies longer than %d bytes", maxSMTPReply)

func (p smtpProber) probe(ctx context.Context) outcome {
	c, err := dialerFor("tcp", p.s.Source, p.s.FWMark).DialContext(ctx, "tcp", p.s.Target.String())
	if err != nil {
		return classify(ctx, "connect", err)
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	// Cancellation ends a read or write in progress.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	return p.converse(ctx, c, c)
}

// converse holds the check's dialogue with a server that is read from
// from (at most maxSMTPReply bytes in all) and written to on to. ctx only
// classifies an I/O error (timeout or not).
func (p smtpProber) converse(ctx context.Context, from io.Reader, to io.Writer) outcome {
	cr := &cappedReader{r: from, n: maxSMTPReply}
	tr := textproto.NewReader(bufio.NewReader(cr))
	read := func(want int) (int, string, error) {
		code, msg, err := readReply(tr, want)
		if cr.refused {
			// The cap cut the last line read, and bufio's ReadLine passed
			// the piece on as a line: it is no reply.
			return 0, "", errReplyTooLong
		}
		return code, msg, err
	}
	w := textproto.NewWriter(bufio.NewWriter(to))
	if _, _, err := read(220); err != nil {
		return p.refused(ctx, w, "greeting", 220, err)
	}
	if err := w.PrintfLine("HELO %s", p.s.HeloName); err != nil {
		return classify(ctx, "HELO", err)
	}
	code, msg, err := read(250)
	if err != nil {
		return p.refused(ctx, w, "HELO "+p.s.HeloName, 250, err)
	}
	o := ok("HELO %s: %d %s", p.s.HeloName, code, firstLine(msg))
	if err := w.PrintfLine("QUIT"); err != nil {
		o.detail += "; " + classify(ctx, "QUIT", err).detail
	} else if _, _, err := read(221); err != nil {
		o.detail += "; " + smtpReplyFailure(ctx, "QUIT", 221, err).detail
	}
	return o
}

// refused judges a failed reply to what (want expected) and, when the
// server did answer with another code, says QUIT before closing, as RFC
// 5321 asks of a client turned away.
func (p smtpProber) refused(ctx context.Context, w *textproto.Writer, what string, want int, err error) outcome {
	var te *textproto.Error
	if errors.As(err, &te) {
		_ = w.PrintfLine("QUIT")
	}
	return smtpReplyFailure(ctx, what, want, err)
}

// smtpReplyFailure describes a reply that was not the wanted one.
func smtpReplyFailure(ctx context.Context, what string, want int, err error) outcome {
	var te *textproto.Error
	switch {
	case errors.As(err, &te):
		return fail(Failure, "%s: %d %s, want %d", what, te.Code, firstLine(te.Msg), want)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fail(Failure, "%s: connection closed", what)
	}
	return classify(ctx, what, err)
}

// readReply reads one SMTP reply, one line or several ("250-a", "250 b"),
// and returns its code and text (lines joined by \n). A code other than
// want is a *textproto.Error. Unlike textproto's ReadResponse, a line that
// is not a reply ends the read at once (a banner such as "SSH-2.0-..."
// would have it wait for a last line until the timeout).
func readReply(r *textproto.Reader, want int) (int, string, error) {
	code := 0
	var text []string
	for {
		line, err := r.ReadLine()
		if err != nil {
			return 0, "", err
		}
		c, convErr := strconv.Atoi(line[:min(3, len(line))])
		if len(line) < 3 || convErr != nil || c < 200 || c > 599 || len(line) > 3 && line[3] != ' ' && line[3] != '-' {
			return 0, "", textproto.ProtocolError(fmt.Sprintf("not an SMTP reply: %q", firstLine(line)))
		}
		if code != 0 && c != code {
			return 0, "", textproto.ProtocolError(fmt.Sprintf("reply %d continued with code %d", code, c))
		}
		code = c
		if len(line) > 4 {
			text = append(text, line[4:])
		}
		if len(line) == 3 || line[3] == ' ' {
			break
		}
	}
	msg := strings.Join(text, "\n")
	if code != want {
		return code, msg, &textproto.Error{Code: code, Msg: msg}
	}
	return code, msg, nil
}

// firstLine is the first line of a reply's text, shortened for a detail.
func firstLine(msg string) string {
	line, _, _ := strings.Cut(msg, "\n")
	if len(line) > 120 {
		line = line[:120] + "..."
	}
	return line
}

// cappedReader reads at most n bytes, then fails with errReplyTooLong and
// notes that it refused.
type cappedReader struct {
	r       io.Reader
	n       int
	refused bool
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.refused = true
		return 0, errReplyTooLong
	}
	n, err := c.r.Read(p[:min(len(p), c.n)])
	c.n -= n
	return n, err
}

type pingProber struct {
	s   Spec
	seq uint16
}

func (p *pingProber) probe(ctx context.Context) outcome {
	addr := p.s.Target.Addr()
	v4 := addr.Is4()
	network, proto, req := "udp6", 58, icmp.Type(ipv6.ICMPTypeEchoRequest)
	rawNet, local := "ip6:ipv6-icmp", "::"
	if v4 {
		network, proto, req, rawNet, local = "udp4", 1, ipv4.ICMPTypeEcho, "ip4:icmp", "0.0.0.0"
	}
	if p.s.Source.IsValid() {
		local = p.s.Source.String()
	}
	// Unprivileged datagram ICMP when net.ipv4.ping_group_range allows it;
	// raw otherwise (vigil runs as root).
	raw := false
	c, err := icmp.ListenPacket(network, local)
	if err != nil {
		if c, err = icmp.ListenPacket(rawNet, local); err != nil {
			return fail(Error, "icmp socket: %v", err)
		}
		raw = true
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	p.seq++
	id := rand.IntN(0xffff) // the kernel replaces it on datagram sockets
	msg := icmp.Message{Type: req, Body: &icmp.Echo{ID: id, Seq: int(p.seq), Data: []byte("vigil-check")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return fail(Error, "icmp marshal: %v", err)
	}
	var dst net.Addr = &net.UDPAddr{IP: addr.AsSlice(), Zone: addr.Zone()}
	if raw {
		dst = &net.IPAddr{IP: addr.AsSlice(), Zone: addr.Zone()}
	}
	start := time.Now()
	if _, err := c.WriteTo(b, dst); err != nil {
		return classify(ctx, "icmp send", err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return classify(ctx, "icmp echo reply", err)
		}
		if fromAddr(from) != addr.WithZone("") {
			continue
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil {
			continue
		}
		echo, isEcho := m.Body.(*icmp.Echo)
		if !isEcho || (m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply) {
			continue
		}
		// A raw socket sees every echo reply on the host: match ours.
		if echo.Seq != int(p.seq) || raw && echo.ID != id || !bytes.Equal(echo.Data, []byte("vigil-check")) {
			continue
		}
		return ok("echo reply in %v", time.Since(start).Round(time.Microsecond))
	}
}

func fromAddr(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.IPAddr:
		ip = a.IP
	}
	ad, _ := netip.AddrFromSlice(ip)
	return ad.Unmap()
}

type execProber struct{ s Spec }

func (p execProber) probe(ctx context.Context) outcome {
	r := proc.Run(ctx, proc.Cmd{Argv: p.s.Argv, User: p.s.User})
	o := outcome{detail: r.Detail()}
	switch {
	case r.StartErr != nil:
		o.result = Error
	case r.TimedOut || ctx.Err() != nil:
		// The context carries Spec.Timeout; a killed script changes no
		// weight (keepalived #2720 counted one).
		o.result = Timeout
		o.detail = fmt.Sprintf("timeout after %v, process group killed", p.s.Timeout)
	case !r.Exited():
		o.result = Failure
	default:
		o.result, o.weight, o.setWeight = miscDynamic(r.Exit, p.s.Dynamic)
	}
	return o
}

// miscDynamic maps an exit status as keepalived's MISC_CHECK does: 0 up,
// anything else down; with misc_dynamic, 0 up, 1 down, 2-255 up with the
// real server's weight set to status-2.
func miscDynamic(status int, dynamic bool) (Result, int, bool) {
	switch {
	case status == 0:
		return Success, 0, false
	case !dynamic || status == 1 || status < 0 || status > 255:
		return Failure, 0, false
	}
	return Success, status - 2, true
}

type fileProber struct{ s Spec }

func (p fileProber) probe(context.Context) outcome {
	v, err := readFileValue(p.s.FilePath)
	if err != nil {
		return fail(Failure, "%v", err)
	}
	return fileOutcome(v, p.s.Weight, p.s.Dynamic)
}

// fileOutcome maps a file's value (see Spec.Weight).
func fileOutcome(v, weight int, dynamic bool) outcome {
	if weight == 0 {
		if v != 0 {
			return fail(Failure, "value %d", v)
		}
		return ok("value 0")
	}
	w := v * weight
	if w < 0 {
		return fail(Failure, "value %d × weight %d < 0", v, weight)
	}
	o := ok("value %d × weight %d = %d", v, weight, w)
	if dynamic {
		o.weight, o.setWeight = min(w, maxWeight), true
	}
	return o
}

// maxWeight is the largest IPVS weight vigil sets.
const maxWeight = 65535

// readFileValue reads the integer on the first line of a file; an empty
// file is 0, as in keepalived. Unlike keepalived's strtol, text that is not
// a number is an error (down), not 0.
func readFileValue(path string) (int, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0) // a FIFO must not block a worker
	if err != nil {
		return 0, fmt.Errorf("file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return 0, fmt.Errorf("file %s: %w", path, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(line, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("file %s: value %q: not an integer", path, line)
	}
	return int(v), nil
}
