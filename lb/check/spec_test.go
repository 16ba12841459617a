package check

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

var lo4 = netip.MustParseAddrPort("127.0.0.1:8080")

func TestNormalizeDefaults(t *testing.T) {
	// Defaults follow keepalived's (reference 1.7, 1.8): delay_loop 60 s,
	// connect_timeout 5 s, retry 1 (DNS 3, MISC 0) → Fall retry+1,
	// delay_before_retry 1 s (HTTP/SSL 3 s, DNS delay_loop), status 200-299,
	// DNS SOA ".", warmup up to delay_loop, start up.
	tests := []struct {
		in                Spec
		interval, timeout time.Duration
		retry, jitter     time.Duration
		rise, fall        int
		check             func(Spec) bool
	}{
		{Spec{Type: TCP, Target: lo4}, DefaultInterval, DefaultTimeout, time.Second, DefaultInterval, 1, 2, nil},
		{Spec{Type: HTTP, Target: netip.AddrPortFrom(lo4.Addr(), 0)}, DefaultInterval, DefaultTimeout, 3 * time.Second, DefaultInterval, 1, 2,
			func(s Spec) bool {
				return s.Target.Port() == 80 && s.Path == "/" && len(s.Status) == 1 && s.Status[0] == StatusRange{200, 299}
			}},
		{Spec{Type: HTTPS, Target: lo4, Host: "www.example.org:8443"}, DefaultInterval, DefaultTimeout, 3 * time.Second, DefaultInterval, 1, 2,
			func(s Spec) bool { return s.SNI == "www.example.org" }},
		{Spec{Type: HTTPS, Target: lo4, Host: "192.0.2.1"}, DefaultInterval, DefaultTimeout, 3 * time.Second, DefaultInterval, 1, 2,
			func(s Spec) bool { return s.SNI == "" }},
		{Spec{Type: DNS, Target: netip.AddrPortFrom(lo4.Addr(), 0), Interval: 10 * time.Second}, 10 * time.Second, DefaultTimeout, 10 * time.Second, 10 * time.Second, 1, 4,
			func(s Spec) bool { return s.QType == "SOA" && s.QName == "." && s.Target.Port() == 53 }},
		{Spec{Type: Exec, Argv: []string{"/bin/true"}, Interval: 2 * time.Second}, 2 * time.Second, 2 * time.Second, time.Second, 2 * time.Second, 1, 1, nil},
		{Spec{Type: Ping, Target: lo4, Interval: 500 * time.Millisecond, Jitter: NoJitter}, 500 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond, NoJitter, 1, 2,
			func(s Spec) bool { return s.Target.Port() == 0 }},
	}
	for _, tt := range tests {
		s, err := tt.in.Normalize()
		if err != nil {
			t.Errorf("%+v: %v", tt.in, err)
			continue
		}
		if s.Interval != tt.interval || s.Timeout != tt.timeout || s.RetryDelay != tt.retry || s.Jitter != tt.jitter || s.Rise != tt.rise || s.Fall != tt.fall {
			t.Errorf("%s: interval %v timeout %v retry %v jitter %v rise %d fall %d; want %v %v %v %v %d %d",
				tt.in.Type, s.Interval, s.Timeout, s.RetryDelay, s.Jitter, s.Rise, s.Fall, tt.interval, tt.timeout, tt.retry, tt.jitter, tt.rise, tt.fall)
		}
		if tt.check != nil && !tt.check(s) {
			t.Errorf("%s: normalized %+v", tt.in.Type, s)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		in   Spec
		want string // the error names the field and value
	}{
		{Spec{}, `type "": required`},
		{Spec{Type: "ldap", Target: lo4}, `type "ldap": unknown`},
		{Spec{Type: TCP}, "target (none): address required"},
		{Spec{Type: TCP, Target: netip.AddrPortFrom(lo4.Addr(), 0)}, "target 127.0.0.1:0: port required"},
		{Spec{Type: HTTP, Target: lo4, Path: "healthz"}, `path "healthz": must start with /`},
		{Spec{Type: HTTP, Target: lo4, Status: []StatusRange{{300, 200}}}, "status 300-200"},
		{Spec{Type: HTTP, Target: lo4, Digest: "abc"}, `digest "abc": want 32 hex digits (md5) or 64 (sha256)`},
		{Spec{Type: HTTP, Target: lo4, TLSVerify: true}, "only for https"},
		{Spec{Type: DNS, Target: lo4, QType: "BOGUS"}, `qtype "BOGUS": unknown DNS type`},
		{Spec{Type: Exec, Argv: []string{"check.sh"}}, "argv [check.sh]: want an absolute program path"},
		{Spec{Type: Exec, Argv: []string{"/bin/true"}, User: "nobody:"}, `user "nobody:"`},
		{Spec{Type: File, FilePath: "rel"}, `file "rel": path must be absolute`},
		{Spec{Type: TCP, Target: lo4, Interval: time.Second, Timeout: 2 * time.Second}, "timeout 2s: longer than interval 1s"},
		{Spec{Type: TCP, Target: lo4, Interval: time.Second, RetryDelay: 2 * time.Second}, "retry_delay 2s: longer than interval 1s"},
		{Spec{Type: TCP, Target: lo4, Interval: -time.Second}, "interval -1s: negative"},
		{Spec{Type: TCP, Target: lo4, Jitter: -2}, "jitter -2ns: negative"},
		{Spec{Type: TCP, Target: lo4, Fall: -1}, "rise/fall 0/-1: negative"},
		{Spec{Type: TCP, Target: lo4, Dynamic: true}, "dynamic true: only for exec and file"},
		{Spec{Type: UDP, Target: lo4, Reply: "0g"}, `reply "0g": want pairs of hex digits or X`},
		{Spec{Type: UDP, Target: lo4, Reply: "012"}, `reply "012"`},
		{Spec{Type: UDP, Target: lo4, MinReply: 10, MaxReply: 5}, "min/max_reply 10/5"},
		{Spec{Type: Exec, Argv: []string{"/bin/true"}, Source: lo4.Addr()}, "source 127.0.0.1: only for network checks"},
		{Spec{Type: Ping, Target: lo4, FWMark: 3}, "fwmark 3: only for tcp, http, https, udp, dns and smtp"},
	}
	for _, tt := range tests {
		err := tt.in.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want it to contain %q", tt.in, err, tt.want)
		}
	}
}

// Normalize's errors are *SpecError, naming the field (a page's with its
// index) so a configuration can point at its key.
func TestSpecErrorField(t *testing.T) {
	for _, tt := range []struct {
		in    Spec
		field string
	}{
		{Spec{Type: TCP, Target: lo4, Interval: time.Second, Timeout: 2 * time.Second}, "timeout"},
		{Spec{Type: HTTP, Target: lo4, URLs: []URL{{}, {Path: "x"}}}, "urls[1].path"},
		{Spec{Type: HTTPS, Target: lo4, Digest: "abc"}, "digest"},
		{Spec{Type: DNS, Target: lo4, QType: "BOGUS"}, "qtype"},
	} {
		_, err := tt.in.Normalize()
		var se *SpecError
		if !errors.As(err, &se) || se.Field != tt.field || se.Type != tt.in.Type {
			t.Errorf("%+v: %#v, want field %q of %s", tt.in, err, tt.field, tt.in.Type)
		}
	}
}

func TestParseStatus(t *testing.T) {
	// keepalived status_code: a code, a range lo-hi, or a list of them.
	tests := []struct {
		in   string
		want string
		err  bool
	}{
		{"200", "200", false},
		{"200-299", "200-299", false},
		{"200,301-302 404", "200 301-302 404", false},
		{"", "", true},
		{"99", "", true},
		{"600", "", true},
		{"300-200", "", true},
		{"2xx", "", true},
	}
	for _, tt := range tests {
		got, err := ParseStatus(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("ParseStatus(%q) error %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if got := strings.TrimSpace(sprint(got)); err == nil && got != tt.want {
			t.Errorf("ParseStatus(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	if !statusOK([]StatusRange{{200, 204}, {301, 301}}, 301) || statusOK([]StatusRange{{200, 204}}, 205) {
		t.Error("statusOK ranges are not inclusive and exact")
	}
}

func sprint(rs []StatusRange) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.String() + " ")
	}
	return b.String()
}

func TestMiscDynamic(t *testing.T) {
	// keepalived MISC_CHECK: exit 0 up, else down; misc_dynamic: 0 up,
	// 1 down, 2-255 up with weight exit-2.
	tests := []struct {
		exit    int
		dynamic bool
		want    Result
		weight  int
		set     bool
	}{
		{0, false, Success, 0, false},
		{1, false, Failure, 0, false},
		{2, false, Failure, 0, false},
		{0, true, Success, 0, false},
		{1, true, Failure, 0, false},
		{2, true, Success, 0, true},
		{12, true, Success, 10, true},
		{255, true, Success, 253, true},
	}
	for _, tt := range tests {
		r, w, set := miscDynamic(tt.exit, tt.dynamic)
		if r != tt.want || w != tt.weight || set != tt.set {
			t.Errorf("miscDynamic(%d, %v) = %v %d %v, want %v %d %v", tt.exit, tt.dynamic, r, w, set, tt.want, tt.weight, tt.set)
		}
	}
}

func TestFileOutcome(t *testing.T) {
	// keepalived FILE_CHECK: weight 0 → non-zero value is down; otherwise
	// value×weight drives the state, and with dynamic the weight.
	tests := []struct {
		v, weight int
		dynamic   bool
		want      Result
		w         int
		set       bool
	}{
		{0, 0, false, Success, 0, false},
		{1, 0, false, Failure, 0, false},
		{-1, 0, false, Failure, 0, false},
		{5, 2, false, Success, 0, false},
		{-5, 2, false, Failure, 0, false},
		{5, -1, false, Failure, 0, false},
		{5, 2, true, Success, 10, true},
		{0, 3, true, Success, 0, true},
		{100000, 1, true, Success, maxWeight, true},
	}
	for _, tt := range tests {
		o := fileOutcome(tt.v, tt.weight, tt.dynamic)
		if o.result != tt.want || o.weight != tt.w || o.setWeight != tt.set {
			t.Errorf("fileOutcome(%d, %d, %v) = %v %d %v, want %v %d %v", tt.v, tt.weight, tt.dynamic, o.result, o.weight, o.setWeight, tt.want, tt.w, tt.set)
		}
	}
}

func TestRiseFall(t *testing.T) {
	// '+' success, '-' failure; want: state after each result, 'U' or 'D',
	// '*' marking a change. keepalived: down after retry+1 consecutive
	// failures (Fall 2 = retry 1), up on the first success (Rise 1).
	tests := []struct {
		name       string
		rise, fall int
		alpha      bool
		results    string
		want       string
	}{
		{"keepalived default", 1, 2, false, "+--+-+--+", "UUD*U*UUUD*U*"},
		{"retry 0", 1, 1, false, "+-+", "UD*U*"},
		{"alpha starts down", 1, 2, true, "-+", "DU*"},
		{"rise 3", 3, 2, false, "--++-+++", "UD*DDDDDU*"},
		{"interrupted fall", 1, 3, false, "--+--+---", "UUUUUUUUD*"},
	}
	for _, tt := range tests {
		p := &probe{spec: Spec{Rise: tt.rise, Fall: tt.fall}, st: Status{Up: !tt.alpha}}
		var got strings.Builder
		for _, r := range tt.results {
			ch := p.observe(r == '+')
			if p.st.Up {
				got.WriteByte('U')
			} else {
				got.WriteByte('D')
			}
			if ch {
				got.WriteByte('*')
			}
		}
		if got.String() != tt.want {
			t.Errorf("%s: %q gave %q, want %q", tt.name, tt.results, got.String(), tt.want)
		}
	}
}

func TestKeyDedup(t *testing.T) {
	a := Spec{Type: HTTP, Target: netip.MustParseAddrPort("127.0.0.1:80")}
	// The same check written with its defaults spelled out, and with an
	// IPv4-mapped target, probes the same thing.
	b := Spec{Type: HTTP, Target: netip.MustParseAddrPort("[::ffff:127.0.0.1]:80"), Path: "/", Status: []StatusRange{{200, 299}}, Interval: DefaultInterval}
	c := a
	c.Path = "/other"
	d := a
	d.Fall = 3 // different hysteresis: its own state, so its own probe
	ka, _ := a.Key()
	kb, _ := b.Key()
	kc, _ := c.Key()
	kd, _ := d.Key()
	if ka != kb {
		t.Errorf("same check, different keys:\n%s\n%s", ka, kb)
	}
	if ka == kc || ka == kd {
		t.Error("different checks share a key")
	}
	if _, err := (Spec{}).Key(); err == nil {
		t.Error("Key of an invalid spec: no error")
	}
}

func TestNextTick(t *testing.T) {
	o := time.Unix(1000, 0)
	iv := time.Second
	tests := []struct {
		now, want time.Duration // offsets from origin
	}{
		{-500 * time.Millisecond, 0},
		{0, time.Second},
		{999 * time.Millisecond, time.Second},
		{time.Second, 2 * time.Second},
		{5500 * time.Millisecond, 6 * time.Second}, // missed ticks are skipped, grid kept
	}
	for _, tt := range tests {
		if got := nextTick(o, iv, o.Add(tt.now)).Sub(o); got != tt.want {
			t.Errorf("nextTick at %v = %v, want %v", tt.now, got, tt.want)
		}
	}
}

func TestReplyMatches(t *testing.T) {
	// keepalived UDP_CHECK require_reply: hex with X wildcards, matched
	// against the start of the reply.
	tests := []struct {
		pattern string
		reply   []byte
		want    bool
	}{
		{"", []byte{}, true},
		{"", []byte{1}, true},
		{"01", []byte{1, 2}, true},
		{"0102", []byte{1, 2}, true},
		{"010203", []byte{1, 2}, false},
		{"x1", []byte{0xf1}, true},
		{"x1", []byte{0xf2}, false},
		{"xxff", []byte{0, 0xff}, true},
		{"7f", []byte{0x7e}, false},
	}
	for _, tt := range tests {
		if got := replyMatches(tt.pattern, tt.reply); got != tt.want {
			t.Errorf("replyMatches(%q, %x) = %v, want %v", tt.pattern, tt.reply, got, tt.want)
		}
	}
	s, err := Spec{Type: UDP, Target: lo4, Reply: "01XX"}.Normalize()
	if err != nil || s.Reply != "01xx" || !s.RequireReply {
		t.Errorf("Reply normalized to %q, RequireReply %v, err %v", s.Reply, s.RequireReply, err)
	}
}

func TestValidateURLs(t *testing.T) {
	h := func(f func(*Spec)) Spec { s := Spec{Type: HTTP, Target: lo4}; f(&s); return s }
	tests := []struct {
		name string
		in   Spec
		want string // "" = valid
	}{
		{"urls", h(func(s *Spec) { s.URLs = []URL{{Path: "/a"}, {Path: "/b", Regex: "ok", RegexNoMatch: true}} }), ""},
		{"single regex", h(func(s *Spec) { s.Regex = "(?i)ok" }), ""},
		{"bad regex in urls", h(func(s *Spec) { s.URLs = []URL{{Path: "/a", Regex: "ok"}, {Path: "/b", Regex: "a("}} }),
			`check http: urls[1].regex "a(": error parsing regexp: missing closing )`},
		{"bad single regex", h(func(s *Spec) { s.Regex = "[z-a]" }), `check http: regex "[z-a]": error parsing regexp: invalid character class range`},
		{"PCRE-only syntax", h(func(s *Spec) { s.URLs = []URL{{Regex: `(?<=a)b`}} }), `urls[0].regex "(?<=a)b": error parsing regexp`},
		// keepalived ignores regex_no_match without a regex (with a log
		// line); vigil refuses it.
		{"no_match without regex in urls", h(func(s *Spec) { s.URLs = []URL{{Path: "/"}, {RegexNoMatch: true}} }), "urls[1].regex_no_match true: needs a regex"},
		{"no_match without regex", h(func(s *Spec) { s.RegexNoMatch = true }), "regex_no_match true: needs a regex"},
		{"bad path in urls", h(func(s *Spec) { s.URLs = []URL{{}, {}, {Path: "x"}} }), `urls[2].path "x": must start with /`},
		{"bad status in urls", h(func(s *Spec) { s.URLs = []URL{{Status: []StatusRange{{200, 700}}}} }), "urls[0].status 200-700"},
		{"bad digest in urls", h(func(s *Spec) { s.URLs = []URL{{Digest: "xyz"}} }), `urls[0].digest "xyz": want 32 hex digits`},
		{"urls and path", h(func(s *Spec) { s.Path = "/"; s.URLs = []URL{{}} }), "path/status/digest/regex with urls: set them in each url instead"},
		{"urls and status", h(func(s *Spec) { s.Status = []StatusRange{{200, 200}}; s.URLs = []URL{{}} }), "path/status/digest/regex with urls"},
		{"urls and regex", h(func(s *Spec) { s.Regex = "ok"; s.URLs = []URL{{}} }), "path/status/digest/regex with urls"},
		{"urls on tcp", Spec{Type: TCP, Target: lo4, URLs: []URL{{}}}, "check tcp: urls/regex (set): only for http and https"},
		{"regex on dns", Spec{Type: DNS, Target: lo4, Regex: "x"}, "urls/regex (set): only for http and https"},
	}
	for _, tt := range tests {
		err := tt.in.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: Validate = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestNormalizeURLs(t *testing.T) {
	in := Spec{Type: HTTPS, Target: lo4, URLs: []URL{{}, {Path: "/b", Status: []StatusRange{{200, 200}}, Digest: strings.Repeat("AB", 16), Regex: "ok"}}}
	s, err := in.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := []URL{
		{Path: "/", Status: []StatusRange{{200, 299}}},
		{Path: "/b", Status: []StatusRange{{200, 200}}, Digest: strings.Repeat("ab", 16), Regex: "ok"},
	}
	if fmt.Sprint(s.URLs) != fmt.Sprint(want) {
		t.Errorf("normalized urls %v, want %v", s.URLs, want)
	}
	// The single-page fields stay unset: URLs say what is fetched.
	if s.Path != "" || s.Status != nil {
		t.Errorf("with urls, path %q status %v were defaulted", s.Path, s.Status)
	}
	// The caller's slice is not changed.
	if in.URLs[0].Path != "" || in.URLs[1].Digest != strings.Repeat("AB", 16) {
		t.Errorf("Normalize changed its input: %v", in.URLs)
	}
	// URLs are part of the dedup key; equal URLs share one probe.
	again, _ := in.Key()
	k, _ := Spec{Type: HTTPS, Target: lo4, URLs: []URL{{Path: "/"}, {Path: "/b", Status: []StatusRange{{200, 200}}, Digest: strings.Repeat("ab", 16), Regex: "ok"}}}.Key()
	other := in
	other.URLs = []URL{{}, {Path: "/b", Status: []StatusRange{{200, 200}}, Digest: strings.Repeat("ab", 16), Regex: "ok", RegexNoMatch: true}}
	ko, _ := other.Key()
	if again != k || k == ko {
		t.Errorf("keys: same urls equal %v, different regex_no_match differs %v", again == k, k != ko)
	}
}

func TestSMTPSpec(t *testing.T) {
	s, err := Spec{Type: SMTP, Target: netip.AddrPortFrom(lo4.Addr(), 0), FWMark: 5}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	if s.Target.Port() != 25 || s.HeloName != defaultHelo() || s.HeloName == "" || s.Fall != 2 || s.RetryDelay != time.Second || s.Timeout != DefaultTimeout {
		t.Errorf("smtp defaults: port %d helo %q fall %d retry %v timeout %v", s.Target.Port(), s.HeloName, s.Fall, s.RetryDelay, s.Timeout)
	}
	if h, err := os.Hostname(); err == nil && heloOK(h) && defaultHelo() != h {
		t.Errorf("default HELO name %q, want the host name %q", defaultHelo(), h)
	}
	for _, tt := range []struct {
		in   Spec
		want string // "" = valid
	}{
		{Spec{Type: SMTP, Target: lo4, HeloName: "lb1.example.org"}, ""},
		{Spec{Type: SMTP, Target: lo4, HeloName: "[192.0.2.1]"}, ""},
		{Spec{Type: SMTP}, "check smtp: target (none): address required"},
		{Spec{Type: SMTP, Target: lo4, HeloName: "two words"}, `check smtp: helo_name "two words": want a host name or address literal`},
		{Spec{Type: SMTP, Target: lo4, HeloName: "x\r\nMAIL FROM:<a@b>"}, `helo_name "x\r\nMAIL FROM:<a@b>": want a host name`},
		{Spec{Type: SMTP, Target: lo4, HeloName: strings.Repeat("a", 256)}, "helo_name"},
		{Spec{Type: TCP, Target: lo4, HeloName: "lb1"}, `check tcp: helo_name "lb1": only for smtp`},
		{Spec{Type: SMTP, Target: lo4, URLs: []URL{{}}}, "urls/regex (set): only for http and https"},
	} {
		err := tt.in.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.in, err, tt.want)
		}
	}
}
