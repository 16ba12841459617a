package check

// Fuzz targets for every decoder of what a probed server sends: the
// HTTP/1.0 answer reader and the status/digest/regex verdict (http,
// https), the SMTP dialogue, the DNS answer check. Each is fed bytes
// without a network and checked for properties that hold for any input:
// no panic, bounded allocation and time, an error or a verdict, and the
// verdict agreeing with its definition. Seeds are real answers
// (testdata/replies: python's http.server, busybox httpd and Go's
// net/http captured on loopback) and the reply forms of common servers.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// heapAllocated is the bytes allocated on the heap so far. runtime/metrics
// reads it without stopping the world, so every fuzz input can afford it;
// it may count a few spans' free slots as allocated, which the bounds
// below allow for.
func heapAllocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// fuzzMaxTook bounds one input's decoding: generous for a loaded 2-core
// machine and the race detector, while a blow-up (quadratic in an input
// of megabytes, or a wait) is far beyond it.
const fuzzMaxTook = 5 * time.Second

// bounded runs f and fails t if it allocated more than maxAlloc bytes or
// took longer than fuzzMaxTook.
func bounded(t *testing.T, maxAlloc uint64, f func()) {
	t.Helper()
	a0, start := heapAllocated(), time.Now()
	f()
	took, alloc := time.Since(start), heapAllocated()-a0
	if alloc > maxAlloc {
		t.Fatalf("allocated %d bytes, want at most %d", alloc, maxAlloc)
	}
	if took > fuzzMaxTook {
		t.Fatalf("took %v, want at most %v", took, fuzzMaxTook)
	}
}

// replySeeds returns the captured answers in testdata/replies whose names
// start with prefix.
func replySeeds(f *testing.F, prefix string) [][]byte {
	f.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "replies", prefix+"*"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no seeds %s* in testdata/replies: %v", prefix, err)
	}
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// fuzzURLs are the pages the http fuzz targets judge answers against.
var fuzzURLs = func() []*httpURL {
	okMD5 := md5.Sum([]byte("ok"))
	healthySHA := sha256.Sum256([]byte("healthy\n"))
	var out []*httpURL
	for _, u := range []URL{
		{},
		{Status: []StatusRange{{200, 200}}, Digest: hex.EncodeToString(okMD5[:])},
		{Status: []StatusRange{{200, 399}}, Digest: hex.EncodeToString(healthySHA[:])},
		{Regex: `(?i)ok|healthy`},
		{Regex: `maint`, RegexNoMatch: true},
		{Status: []StatusRange{{200, 204}, {404, 404}}, Digest: hex.EncodeToString(okMD5[:]), Regex: `^ok$`},
	} {
		n, err := normalizeURL(u, "")
		if err != nil {
			panic(err)
		}
		hu := &httpURL{URL: n, url: "http://192.0.2.1" + n.Path}
		if n.Regex != "" {
			hu.re = regexp.MustCompile(n.Regex)
		}
		out = append(out, hu)
	}
	return out
}()

// wantVerdict is what verdict must say of an answer with status code and
// body, read to its end or to an error berr: its definition, written
// without bodySink and the read bounds' bookkeeping.
func wantVerdict(u *httpURL, code int, body []byte, berr error) Result {
	if !statusOK(u.Status, code) {
		return Failure
	}
	if u.Digest == "" && u.re == nil {
		return Success
	}
	limit := maxRegexBody
	if u.Digest != "" {
		limit = maxBody
	}
	if berr != nil && len(body) <= limit {
		return Failure // a read error within what the verdict reads
	}
	if u.Digest != "" {
		if len(body) > maxBody {
			return Failure
		}
		h := newDigest(u.Digest)
		h.Write(body)
		if hex.EncodeToString(h.Sum(nil)) != u.Digest {
			return Failure
		}
	}
	if u.re != nil && u.re.Match(body[:min(len(body), maxRegexBody)]) == u.RegexNoMatch {
		return Failure
	}
	return Success
}

// checkVerdict fails t unless o is a verdict (success or failure, with a
// detail naming the page) equal to want.
func checkVerdict(t *testing.T, u *httpURL, o outcome, want Result) {
	t.Helper()
	if o.result != want || !strings.HasPrefix(o.detail, "GET "+u.Path+": ") {
		t.Fatalf("verdict %v %q, want %v with a detail naming GET %s", o.result, o.detail, want, u.Path)
	}
}

// headerLen is the length of data's status line and headers, up to and
// including the empty line that ends them (textproto's lines end in \n or
// \r\n); without one, more than data holds.
func headerLen(data []byte) int64 {
	for pos, first := 0, true; ; first = false {
		i := bytes.IndexByte(data[pos:], '\n')
		if i < 0 {
			return int64(len(data)) + 1
		}
		line := data[pos : pos+i]
		pos += i + 1
		if !first && (len(line) == 0 || string(line) == "\r") {
			return int64(pos)
		}
	}
}

var fuzzRequest, _ = http.NewRequest(http.MethodGet, "http://192.0.2.1/", nil)

// FuzzHTTP10Reply reads an HTTP/1.0 check's answer as get10 does, with a
// header limit of 1 to 65536 bytes, and judges it against one of
// fuzzURLs. Whatever the bytes: an answer whose status line and headers
// fit the limit reads exactly as net/http's unbounded ReadResponse reads
// it, and one that does not fails with the limit named.
func FuzzHTTP10Reply(f *testing.F) {
	for _, b := range replySeeds(f, "http-") {
		f.Add(uint16(maxHeaderBytes-1), uint8(0), b)
		f.Add(uint16(maxHeaderBytes-1), uint8(1), b)
		f.Add(uint16(80), uint8(3), b)
	}
	for _, s := range []string{
		"HTTP/1.0 200 OK\r\n\r\nok",
		"HTTP/1.0 200 OK\nContent-Length: 2\n\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\nok\r\n0\r\nX-T: 1\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nok",
		"HTTP/1.0 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
		"HTTP/1.0 200 OK\r\nContent-Length: -1\r\n\r\nok",
		"HTTP/1.0 204 No Content\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 5\r\n\r\nmaintenance",
		"ICY 200 OK\r\n\r\n",
		"HTTP/1.0 200\r\n\r\n",
		"HTTP/9.9 999 What\r\n\r\n",
		"",
	} {
		f.Add(uint16(maxHeaderBytes-1), uint8(5), []byte(s))
	}
	f.Fuzz(func(t *testing.T, limit uint16, sel uint8, data []byte) {
		lim := int64(limit) + 1
		u := fuzzURLs[int(sel)%len(fuzzURLs)]
		var resp *http.Response
		var err error
		var o outcome
		// Reading allocates a small multiple of what it reads (the header
		// map, the regex's copy of the body), never more.
		bounded(t, 2<<20+32*uint64(len(data)), func() {
			resp, err = readResponse10(bytes.NewReader(data), fuzzRequest, lim)
			if err == nil {
				o = u.verdict(context.Background(), resp.StatusCode, resp.Body)
			}
		})
		ref, rerr := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), fuzzRequest)
		hdr := headerLen(data)
		var tooLong *headersTooLong
		switch {
		case errors.As(err, &tooLong):
			if tooLong.limit != lim || int64(len(data)) < lim || hdr <= lim {
				t.Fatalf("%v with a limit of %d bytes, %d bytes of input, %d of them headers", err, lim, len(data), hdr)
			}
		case err == nil && hdr > lim:
			t.Fatalf("read %d bytes of headers with a limit of %d", hdr, lim)
		case err != nil:
			if rerr == nil || err.Error() != rerr.Error() {
				t.Fatalf("readResponse10: %v; net/http: %v", err, rerr)
			}
		default:
			if rerr != nil {
				t.Fatalf("readResponse10 read an answer net/http rejects: %v", rerr)
			}
			if resp.StatusCode != ref.StatusCode || !reflect.DeepEqual(resp.Header, ref.Header) {
				t.Fatalf("readResponse10 read %d %v; net/http %d %v", resp.StatusCode, resp.Header, ref.StatusCode, ref.Header)
			}
			body, berr := io.ReadAll(io.LimitReader(ref.Body, maxBody+1))
			checkVerdict(t, u, o, wantVerdict(u, ref.StatusCode, body, berr))
		}
	})
}

// FuzzHTTPVerdict judges any status and body, as both protocol paths do
// once the answer is read, against its definition (wantVerdict).
func FuzzHTTPVerdict(f *testing.F) {
	for i := range fuzzURLs {
		for _, b := range []string{"ok", "healthy\n", "<p>maintenance</p>", ""} {
			f.Add(200, uint8(i), []byte(b))
		}
		f.Add(404, uint8(i), []byte("ok"))
		f.Add(302, uint8(i), []byte("healthy\n"))
	}
	f.Fuzz(func(t *testing.T, code int, sel uint8, body []byte) {
		u := fuzzURLs[int(sel)%len(fuzzURLs)]
		var o outcome
		bounded(t, 2<<20+4*uint64(len(body)), func() { o = u.verdict(context.Background(), code, bytes.NewReader(body)) })
		checkVerdict(t, u, o, wantVerdict(u, code, body, nil))
	})
}

// smtpSeeds are transcripts of a server's side of the check's dialogue
// (greeting, answer to HELO, answer to QUIT) in the forms real servers
// use, and ways of getting them wrong.
var smtpSeeds = []string{
	"220 mail.example.org ESMTP Postfix (Debian/GNU)\r\n250 mail.example.org\r\n221 2.0.0 Bye\r\n",
	"220 mx.example.org ESMTP Exim 4.96 Sun, 06 Dec 2026 07:00:00 +0000\r\n250 mx.example.org Hello checker.example.org [192.0.2.10]\r\n221 mx.example.org closing connection\r\n",
	"220 EX01.example.org Microsoft ESMTP MAIL Service ready at Sun, 6 Dec 2026 07:00:00 +0000\r\n250 EX01.example.org Hello [192.0.2.10]\r\n221 2.0.0 Service closing transmission channel\r\n",
	"220-mx.example.org ESMTP\r\n220-no UCE\r\n220 ready\r\n250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n221 bye\r\n",
	"220 mx ready\n250 hi\n221 bye\n",
	"220 mx ready\r\n250 hi\r\n",
	"554 5.3.2 no service here\r\n",
	"421-mx.example.org busy\r\n421 try later\r\n",
	"220 mx\r\n550 5.7.1 not you\r\n221 bye\r\n",
	"220-a\r\n554 b\r\n",
	"SSH-2.0-OpenSSH_9.6\r\n",
	"220",
	"",
}

const fuzzHelo = "checker.example.org"

// wantSMTP is the smtp check's verdict on a server's side of the dialogue,
// by definition: a 220 reply, then a 250 reply, each one line or several
// lines of one code ("250-a", "250 b"), among the first maxSMTPReply
// bytes; lines end in \n or \r\n, or where the bytes end before that
// bound (a line the bound cuts is none).
func wantSMTP(data []byte) Result {
	lines := strings.Split(string(data[:min(len(data), maxSMTPReply)]), "\n")
	if lines[len(lines)-1] == "" || len(data) >= maxSMTPReply {
		lines = lines[:len(lines)-1] // nothing, or a line the bound cut
	}
	isCode := func(s string) bool {
		return len(s) == 3 && s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9'
	}
	reply := func(want string) bool {
		for {
			if len(lines) == 0 {
				return false
			}
			line := strings.TrimSuffix(lines[0], "\r")
			lines = lines[1:]
			if len(line) < 3 || !isCode(line[:3]) || len(line) > 3 && line[3] != ' ' && line[3] != '-' || line[:3] != want {
				return false
			}
			if len(line) == 3 || line[3] == ' ' {
				return true
			}
		}
	}
	if reply("220") && reply("250") {
		return Success
	}
	return Failure
}

// FuzzSMTPReplies holds the smtp check's dialogue with a server whose side
// is data, then data+tail. Whatever the bytes: the verdict wantSMTP gives
// (no timeout or local error), within a fixed allocation however long the input (what is
// read is capped at maxSMTPReply), only HELO and QUIT sent, success only
// after a 220 greeting, and a success that data's complete lines decided
// stays one whatever follows them.
func FuzzSMTPReplies(f *testing.F) {
	for _, s := range smtpSeeds {
		f.Add([]byte(s), []byte("250 more\r\n"))
	}
	f.Add([]byte("220-"+strings.Repeat("x", 2*maxSMTPReply)), []byte{})
	// A 250 line that the bound cuts is no reply (it once passed).
	f.Add([]byte("220 mx\r\n250 "+strings.Repeat("x", maxSMTPReply)), []byte{})
	f.Fuzz(func(t *testing.T, data, tail []byte) {
		p := smtpProber{Spec{HeloName: fuzzHelo}}
		converse := func(in []byte) (outcome, string) {
			var sent bytes.Buffer
			var o outcome
			bounded(t, 1<<20, func() { o = p.converse(context.Background(), bytes.NewReader(in), &sent) })
			return o, sent.String()
		}
		o, sent := converse(data)
		if want := wantSMTP(data); o.result != want {
			t.Fatalf("%v %q, want %v", o.result, o.detail, want)
		}
		switch o.result {
		case Success:
			if !bytes.HasPrefix(data, []byte("220")) || !strings.HasPrefix(o.detail, "HELO "+fuzzHelo+": 250") ||
				sent != "HELO "+fuzzHelo+"\r\nQUIT\r\n" {
				t.Fatalf("success %q after sending %q", o.detail, sent)
			}
		case Failure:
			if o.detail == "" {
				t.Fatal("failure without a detail")
			}
			switch sent {
			case "", "QUIT\r\n", "HELO " + fuzzHelo + "\r\n", "HELO " + fuzzHelo + "\r\nQUIT\r\n":
			default:
				t.Fatalf("failure %q after sending %q", o.detail, sent)
			}
		default:
			t.Fatalf("%v %q: want a verdict", o.result, o.detail)
		}
		if o.result == Success && bytes.HasSuffix(data, []byte("\n")) {
			longer := append(append([]byte{}, data...), tail...)
			if o2, _ := converse(longer); o2.result != Success {
				t.Fatalf("success on %q but %v %q with %q after it", data, o2.result, o2.detail, tail)
			}
		}
	})
}

// dnsSpecs are the queries the dns fuzz target judges answers to.
var dnsSpecs = []Spec{
	{Type: DNS, QType: "SOA", QName: "."},
	{Type: DNS, QType: "A", QName: "www.example."},
	{Type: DNS, QType: "AAAA", QName: "www.example."},
	{Type: DNS, QType: "MX", QName: "example."},
}

// dnsSeeds are replies as DNS servers send them, packed by miekg/dns.
func dnsSeeds(f *testing.F) [][]byte {
	f.Helper()
	reply := func(qname string, qtype uint16, rcode int, rrs ...string) []byte {
		q := new(dns.Msg)
		q.SetQuestion(qname, qtype)
		q.RecursionDesired = true
		m := new(dns.Msg)
		m.SetRcode(q, rcode)
		m.Compress = true
		for _, s := range rrs {
			rr, err := dns.NewRR(s)
			if err != nil {
				f.Fatal(err)
			}
			m.Answer = append(m.Answer, rr)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	edns := func(b []byte) []byte {
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			f.Fatal(err)
		}
		m.SetEdns0(1232, true)
		out, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		return out
	}
	soa := reply(".", dns.TypeSOA, dns.RcodeSuccess, ". 86400 IN SOA a.root-servers.net. nstld.verisign-grs.com. 2026120600 1800 900 604800 86400")
	return [][]byte{
		soa,
		edns(soa),
		reply("www.example.", dns.TypeA, dns.RcodeSuccess, "www.example. 300 IN CNAME web.example.", "web.example. 300 IN A 192.0.2.1", "web.example. 300 IN A 192.0.2.2"),
		reply("www.example.", dns.TypeAAAA, dns.RcodeSuccess, "www.example. 300 IN AAAA 2001:db8::1"),
		reply("example.", dns.TypeMX, dns.RcodeSuccess, "example. 300 IN MX 10 mail.example."),
		reply("www.example.", dns.TypeAAAA, dns.RcodeSuccess),
		reply("nope.example.", dns.TypeA, dns.RcodeNameError),
		// RFC 6604: the answers of a chain that ends in a name that does
		// not exist come with its NXDOMAIN.
		reply("www.example.", dns.TypeA, dns.RcodeNameError, "www.example. 300 IN CNAME gone.example.", "www.example. 300 IN A 192.0.2.1"),
		reply("broken.example.", dns.TypeA, dns.RcodeServerFailure),
		reply("www.example.", dns.TypeA, dns.RcodeRefused),
	}
}

// FuzzDNSReply decodes a reply as the dns check's client does
// (miekg/dns's Unpack) and judges it. Whatever the bytes: an error or a
// verdict, within an allocation bounded by the input's size; success
// exactly when the rcode is NOERROR and an answer has the query's type;
// and the verdict the same after the message is packed and read again
// (where it is).
func FuzzDNSReply(f *testing.F) {
	for _, b := range dnsSeeds(f) {
		for i := range dnsSpecs {
			f.Add(uint8(i), b)
		}
	}
	f.Fuzz(func(t *testing.T, sel uint8, data []byte) {
		p := dnsProber{dnsSpecs[int(sel)%len(dnsSpecs)]}
		var m dns.Msg
		var err error
		var o outcome
		bounded(t, 1<<20+512*uint64(len(data)), func() {
			if err = m.Unpack(data); err == nil {
				o = p.verdict(&m)
			}
		})
		if err != nil {
			return // the probe fails with this error
		}
		want := dns.StringToType[p.s.QType]
		hasAnswer := false
		for _, rr := range m.Answer {
			hasAnswer = hasAnswer || rr.Header().Rrtype == want
		}
		prefix := fmt.Sprintf("dns %s %s: ", p.s.QType, p.s.QName)
		switch {
		case !strings.HasPrefix(o.detail, prefix) || strings.HasSuffix(o.detail, "rcode "):
			t.Fatalf("detail %q does not name the query (and rcode)", o.detail)
		case (o.result == Success) != (m.Rcode == dns.RcodeSuccess && hasAnswer):
			t.Fatalf("%v %q for rcode %d with answers %v", o.result, o.detail, m.Rcode, m.Answer)
		case o.result != Success && o.result != Failure:
			t.Fatalf("%v %q: want a verdict", o.result, o.detail)
		}
		// Not every decodable message packs again, nor decodes once
		// repacked: miekg/dns packs the empty names of an RR that came
		// with no rdata (RFC 2136) as nothing, yet counts 20 bytes of SOA
		// rdata (testdata/fuzz/FuzzDNSReply/54f2ba5d338e6674). The probe
		// decodes a reply once; the verdict must agree where both decode.
		packed, err := m.Pack()
		if err != nil {
			return
		}
		var again dns.Msg
		if err := again.Unpack(packed); err != nil {
			return
		}
		if o2 := p.verdict(&again); o2.result != o.result {
			t.Fatalf("verdict %v %q, after repacking %v %q", o.result, o.detail, o2.result, o2.detail)
		}
	})
}
