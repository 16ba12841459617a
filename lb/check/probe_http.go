package check

import (
	"bufio"
	"cmp"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
)

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
