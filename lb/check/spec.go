// Package check runs vigil's real-server health checks (keepalived's
// checker child): tcp, http, https, udp, dns, ping, smtp (SMTP_CHECK), exec
// (MISC_CHECK) and file (FILE_CHECK) probes, scheduled by one [Scheduler] on
// a drift-free grid, deduplicated so identical checks probe once, with
// rise/fall hysteresis. [View] turns the results into an [lb.Health].
//
// The package does not import telemetry: drivers observe probes through
// [Observer] and state changes through [Scheduler.Changes].
package check

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Type is a checker type.
type Type string

// The checker types.
const (
	TCP   Type = "tcp"   // keepalived TCP_CHECK: connect established = up
	HTTP  Type = "http"  // HTTP_GET
	HTTPS Type = "https" // SSL_GET
	UDP   Type = "udp"   // UDP_CHECK
	DNS   Type = "dns"   // DNS_CHECK
	SMTP  Type = "smtp"  // SMTP_CHECK
	Ping  Type = "ping"  // PING_CHECK
	Exec  Type = "exec"  // MISC_CHECK
	File  Type = "file"  // FILE_CHECK
)

// NoJitter disables the random start delay (keepalived "warmup 0").
const NoJitter time.Duration = -1

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Lo, Hi int }

func (r StatusRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// ParseStatus parses keepalived's status_code forms: "200", "200-299" and
// comma or space separated lists of them ("200,301-302").
func ParseStatus(s string) ([]StatusRange, error) {
	var out []StatusRange
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		lo, hi, isRange := strings.Cut(f, "-")
		if !isRange {
			hi = lo
		}
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		r := StatusRange{l, h}
		if err1 != nil || err2 != nil || r.check() != nil {
			return nil, fmt.Errorf("status %q: %q is not a code 100-599 or a range of them", s, f)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("status %q: empty", s)
	}
	return out, nil
}

func (r StatusRange) check() error {
	if r.Lo < 100 || r.Hi > 599 || r.Lo > r.Hi {
		return fmt.Errorf("status range %d-%d: want 100 <= lo <= hi <= 599", r.Lo, r.Hi)
	}
	return nil
}

// URL is one page an http or https check fetches (keepalived url block).
type URL struct {
	// Path is the request path (default "/"); it must start with /.
	Path string
	// Status lists the accepted status codes (default 200-299).
	Status []StatusRange
	// Digest, if set, is the hex digest the body must have: 32 hex digits
	// are MD5 (keepalived digest), 64 SHA-256. The whole body is hashed; a
	// body longer than 8 MiB fails.
	Digest string
	// Regex, if set, is a regular expression (Go regexp, RE2 syntax) the
	// body must match somewhere (keepalived regex). Only the first 1 MiB
	// of the body is searched; the result detail says when a body was
	// longer. Flags go inline: (?i) caseless, (?s) dotall, (?m) multiline.
	Regex string
	// RegexNoMatch inverts Regex: the body must not match (keepalived
	// regex_no_match). It needs Regex.
	RegexNoMatch bool
	// Host, if set, is this page's Host header in place of the check's
	// (keepalived's per-url virtualhost).
	Host string
}

// The bounds on what an http or https probe reads of an answer.
const (
	maxBody      = 8 << 20 // for a digest: longer bodies fail
	maxRegexBody = 1 << 20 // for a regex: the rest is not searched
	// maxHeaderBytes bounds the status line and headers together, on every
	// protocol version (net/http's MaxResponseHeaderBytes for 1.1): a
	// health endpoint sends a few hundred bytes, and a hostile server that
	// never ends its headers must not cost the director more than this per
	// probe in flight (with net/http's default, 10 MiB, one such probe
	// allocated 50-90 MiB).
	maxHeaderBytes = 64 << 10
)

// SpecError is what Normalize returns for an invalid Spec: the field at
// fault, so that a configuration can point at the key it came from.
type SpecError struct {
	Type Type
	// Field names the field as lowercase configuration words ("timeout",
	// "urls[1].path", "qtype"); a pair ("rise/fall") when two fields
	// conflict.
	Field string
	Value string // the value as printed in the message
	Why   string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("check %s: %s %s: %s", e.Type, e.Field, e.Value, e.Why)
}

// normalizeURL validates u and fills in its defaults; field names in
// errors start with prefix ("" for the single-page form, "urls[i]." for
// URLs).
func normalizeURL(u URL, prefix string) (URL, error) {
	bad := func(field string, v any, why string) (URL, error) {
		return URL{}, &SpecError{Field: prefix + field, Value: fmt.Sprint(v), Why: why}
	}
	if u.Path == "" {
		u.Path = "/"
	}
	if !strings.HasPrefix(u.Path, "/") {
		return bad("path", strconv.Quote(u.Path), "must start with /")
	}
	if len(u.Status) == 0 {
		u.Status = []StatusRange{{200, 299}}
	}
	for _, r := range u.Status {
		if err := r.check(); err != nil {
			return bad("status", r, err.Error())
		}
	}
	if u.Digest != "" {
		u.Digest = strings.ToLower(u.Digest)
		if _, err := hex.DecodeString(u.Digest); err != nil || (len(u.Digest) != 32 && len(u.Digest) != 64) {
			return bad("digest", strconv.Quote(u.Digest), "want 32 hex digits (md5) or 64 (sha256)")
		}
	}
	if u.Regex != "" {
		if _, err := regexp.Compile(u.Regex); err != nil {
			return bad("regex", strconv.Quote(u.Regex), err.Error())
		}
	} else if u.RegexNoMatch {
		return bad("regex_no_match", true, "needs a regex")
	}
	if u.Host != "" {
		if _, _, err := splitHost(u.Host); err != nil {
			return bad("host", strconv.Quote(u.Host), err.Error())
		}
	}
	return u, nil
}

// Spec configures one health check. Zero values take the defaults named in
// each field's comment, which follow keepalived's where it has one.
//
// Rise and fall: keepalived marks a checker down after retry+1 consecutive
// failures, the retries spaced by delay_before_retry, and up on the first
// success. vigil says the same with Fall = retry+1 (so the default Fall 2 is
// keepalived's default retry 1) and RetryDelay, and adds Rise (default 1,
// keepalived's behaviour) for services that flap. While a check is up and
// failing, the next probe comes RetryDelay after the failure instead of on
// the next interval tick; the grid resumes after it.
type Spec struct {
	// Type is the checker; required.
	Type Type
	// Target is the address probed (keepalived connect_ip/connect_port).
	// Required for tcp, http, https, udp, dns, smtp (port defaults: http 80,
	// https 443, dns 53, smtp 25) and ping (port ignored); unused by exec and
	// file.
	Target netip.AddrPort
	// Source is the local address probes are sent from (keepalived bindto);
	// default the kernel's choice. Same family as Target; network types only.
	Source netip.Addr
	// FWMark marks probe packets (SO_MARK, keepalived fwmark) for policy
	// routing; 0 is none. tcp, http, https, udp, dns and smtp only.
	FWMark uint32

	// Path is the HTTP(S) request path (default "/"). Path, Status, Digest,
	// Regex and RegexNoMatch describe the one page an http or https check
	// fetches when URLs is empty; with URLs they must be unset.
	Path string
	// Host is the virtual host sent as the Host header (keepalived
	// virtualhost); default the target address.
	Host string
	// SNI is the TLS server name for https (keepalived sni_name); default
	// Host when Host is a name, else none.
	SNI string
	// Status lists the accepted HTTP status codes (default 200-299).
	Status []StatusRange
	// Digest, if set, is the hex digest the response body must have: 32
	// hex digits are MD5 (keepalived's digest, from genhash), 64 are SHA-256.
	Digest string
	// Regex and RegexNoMatch: see [URL].
	Regex        string
	RegexNoMatch bool
	// URLs are the pages an http or https check fetches, as keepalived's
	// url blocks: the check is up only when every one passes. They are
	// fetched in order on fresh connections within one Timeout, and the
	// first that fails decides the result. Empty: the one page is Path,
	// Status, Digest, Regex and RegexNoMatch.
	URLs []URL
	// TLSVerify verifies the server's certificate chain and name for https
	// (default off, as keepalived: a checker tests liveness, not identity).
	TLSVerify bool
	// CAFile is a PEM file of roots for TLSVerify (default the system's).
	CAFile string
	// HTTPVersion is the request's protocol (keepalived http_protocol):
	// "1.1" (the default) or "" sends HTTP/1.1 with Connection: close;
	// "1.0" sends HTTP/1.0 (keepalived's default) and "1.0C" HTTP/1.0 with
	// Connection: close. Each sends Host. On every version an answer whose
	// status line and headers exceed 64 KiB fails the check.
	HTTPVersion string

	// Payload is what a udp check sends (default one zero byte).
	Payload string
	// RequireReply makes a udp check need a reply datagram; without it a
	// udp check succeeds unless an ICMP error (port unreachable) comes back
	// before the timeout, as keepalived's UDP_CHECK.
	RequireReply bool
	// Reply, if set, is the start a udp reply must have (keepalived
	// require_reply): hex digits, X matching any digit ("01XX7f"). It
	// implies RequireReply.
	Reply string
	// MinReply and MaxReply bound a udp reply's length in bytes (keepalived
	// min_reply_length, max_reply_length); 0 is no bound (keepalived's
	// default maximum is 255).
	MinReply, MaxReply int

	// QType is the DNS query type (default SOA, keepalived's).
	QType string
	// QName is the DNS query name (default ".").
	QName string

	// HeloName is the name an smtp check sends in HELO (keepalived
	// helo_name, default smtpchecker.keepalived.org); default this host's
	// name, or "localhost" if that is not a usable name.
	HeloName string

	// Argv is the exec check's program and arguments, run without a shell
	// (absolute path). Required for exec.
	Argv []string
	// User runs the exec check as "user" or "user:group" (default root).
	User string
	// Dynamic is keepalived's misc_dynamic for exec (exit 0 up, 1 down,
	// 2-255 up with weight exit-2) and dynamic for file (the value sets the
	// weight); see Status.Weight.
	Dynamic bool

	// FilePath is the file a file check reads (absolute). Required for file.
	FilePath string
	// Weight multiplies a file's value (keepalived FILE_CHECK weight).
	// 0: the value 0 is up, anything else down. Otherwise value×Weight < 0
	// is down, ≥ 0 up; with Dynamic the product is the real server's weight.
	Weight int

	// Interval is the time between probes (keepalived delay_loop; default
	// 60 s).
	Interval time.Duration
	// Timeout bounds one probe (keepalived connect_timeout, default 5 s;
	// exec: misc_timeout, default Interval); at most Interval.
	Timeout time.Duration
	// Rise is the consecutive successes that bring a down check up
	// (default 1).
	Rise int
	// Fall is the consecutive failures that take an up check down
	// (default retry+1 with keepalived's retry defaults: 2; dns 4; exec 1).
	Fall int
	// RetryDelay spaces the probes of a failing up check (keepalived
	// delay_before_retry: default 1 s; http/https 3 s; dns Interval), at
	// most Interval.
	RetryDelay time.Duration
	// Jitter is the largest random delay before the first probe (keepalived
	// warmup; default Interval, spreading checks over the interval);
	// NoJitter for none.
	Jitter time.Duration
	// Alpha starts the check down until Rise successes (keepalived alpha:
	// until the first success, which is Rise's default); by default it
	// starts up.
	Alpha bool
}

// Normalize validates s and returns it with its defaults filled in.
func (s Spec) Normalize() (Spec, error) {
	bad := func(field string, v any, why string) (Spec, error) {
		return Spec{}, &SpecError{Type: s.Type, Field: field, Value: fmt.Sprint(v), Why: why}
	}
	// urlErr gives a page's error the check's type.
	urlErr := func(err error) (Spec, error) {
		if se, ok := err.(*SpecError); ok {
			se.Type = s.Type
		}
		return Spec{}, err
	}
	needTarget := func(defPort uint16) (Spec, error) {
		if !s.Target.Addr().IsValid() {
			return bad("target", "(none)", "address required")
		}
		if s.Target.Port() == 0 {
			if defPort == 0 {
				return bad("target", s.Target, "port required")
			}
			s.Target = netip.AddrPortFrom(s.Target.Addr(), defPort)
		}
		s.Target = netip.AddrPortFrom(s.Target.Addr().Unmap(), s.Target.Port())
		return s, nil
	}
	var err error
	switch s.Type {
	case TCP:
		s, err = needTarget(0)
	case UDP:
		if s, err = needTarget(0); err != nil {
			return s, err
		}
		if s.Payload == "" {
			s.Payload = "\x00"
		}
		if s.Reply != "" {
			if len(s.Reply)%2 != 0 || strings.Trim(strings.ToLower(s.Reply), "0123456789abcdefx") != "" {
				return bad("reply", strconv.Quote(s.Reply), "want pairs of hex digits or X")
			}
			s.Reply = strings.ToLower(s.Reply)
			s.RequireReply = true
		}
		if s.MinReply < 0 || s.MaxReply < 0 || s.MaxReply != 0 && s.MaxReply < s.MinReply {
			return bad("min/max_reply", fmt.Sprintf("%d/%d", s.MinReply, s.MaxReply), "want 0 <= min <= max (max 0: none)")
		}
		if s.MinReply > 0 || s.MaxReply > 0 {
			s.RequireReply = true
		}
	case HTTP, HTTPS:
		def := uint16(80)
		if s.Type == HTTPS {
			def = 443
		}
		if s, err = needTarget(def); err != nil {
			return s, err
		}
		if len(s.URLs) == 0 {
			u, err := normalizeURL(URL{Path: s.Path, Status: s.Status, Digest: s.Digest, Regex: s.Regex, RegexNoMatch: s.RegexNoMatch}, "")
			if err != nil {
				return urlErr(err)
			}
			s.Path, s.Status, s.Digest = u.Path, u.Status, u.Digest
		} else {
			if s.Path != "" || len(s.Status) > 0 || s.Digest != "" || s.Regex != "" || s.RegexNoMatch {
				return bad("path/status/digest/regex", "with urls", "set them in each url instead")
			}
			s.URLs = slices.Clone(s.URLs)
			for i := range s.URLs {
				if s.URLs[i], err = normalizeURL(s.URLs[i], fmt.Sprintf("urls[%d].", i)); err != nil {
					return urlErr(err)
				}
			}
		}
		if s.Type == HTTPS && s.SNI == "" && s.Host != "" {
			if h, _, err := splitHost(s.Host); err == nil {
				if _, err := netip.ParseAddr(h); err != nil {
					s.SNI = h
				}
			}
		}
		if s.Type == HTTP && (s.SNI != "" || s.TLSVerify || s.CAFile != "") {
			return bad("sni/tls_verify/ca", s.SNI, "only for https")
		}
		if s.CAFile != "" && !filepath.IsAbs(s.CAFile) {
			return bad("ca", strconv.Quote(s.CAFile), "path must be absolute")
		}
		switch s.HTTPVersion {
		case "", "1.1":
			s.HTTPVersion = "1.1"
		case "1.0", "1.0C":
		default:
			return bad("http_protocol", strconv.Quote(s.HTTPVersion), "want 1.0, 1.0C or 1.1")
		}
	case DNS:
		if s, err = needTarget(53); err != nil {
			return s, err
		}
		if s.QType == "" {
			s.QType = "SOA"
		}
		s.QType = strings.ToUpper(s.QType)
		if _, ok := dns.StringToType[s.QType]; !ok {
			return bad("qtype", strconv.Quote(s.QType), "unknown DNS type")
		}
		if s.QName == "" {
			s.QName = "."
		}
		if _, ok := dns.IsDomainName(s.QName); !ok {
			return bad("qname", strconv.Quote(s.QName), "not a domain name")
		}
		s.QName = dns.Fqdn(s.QName)
	case SMTP:
		if s, err = needTarget(25); err != nil {
			return s, err
		}
		if s.HeloName == "" {
			s.HeloName = defaultHelo()
		}
		if !heloOK(s.HeloName) {
			return bad("helo_name", strconv.Quote(s.HeloName), "want a host name or address literal (printable ASCII without spaces, at most 255)")
		}
	case Ping:
		if !s.Target.Addr().IsValid() {
			return bad("target", "(none)", "address required")
		}
		s.Target = netip.AddrPortFrom(s.Target.Addr().Unmap(), 0)
	case Exec:
		if len(s.Argv) == 0 || !filepath.IsAbs(s.Argv[0]) {
			return bad("argv", s.Argv, "want an absolute program path first")
		}
		if s.User != "" {
			name, group, hasGroup := strings.Cut(s.User, ":")
			if name == "" || hasGroup && group == "" {
				return bad("user", strconv.Quote(s.User), "want user or user:group")
			}
		}
	case File:
		if !filepath.IsAbs(s.FilePath) {
			return bad("file", strconv.Quote(s.FilePath), "path must be absolute")
		}
	case "":
		return bad("type", `""`, "required (tcp, http, https, udp, dns, ping, smtp, exec or file)")
	default:
		return bad("type", strconv.Quote(string(s.Type)), "unknown (tcp, http, https, udp, dns, ping, smtp, exec or file)")
	}
	if err != nil {
		return s, err
	}
	for name, d := range map[string]time.Duration{"interval": s.Interval, "timeout": s.Timeout, "retry_delay": s.RetryDelay} {
		if d < 0 {
			return bad(name, d, "negative")
		}
	}
	if s.Jitter < 0 && s.Jitter != NoJitter {
		return bad("jitter", s.Jitter, "negative (use NoJitter for none)")
	}
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Interval < time.Millisecond {
		return bad("interval", s.Interval, "below 1ms")
	}
	if s.Timeout == 0 {
		s.Timeout = min(DefaultTimeout, s.Interval)
		if s.Type == Exec {
			s.Timeout = s.Interval
		}
	}
	if s.Timeout > s.Interval {
		return bad("timeout", s.Timeout, fmt.Sprintf("longer than interval %v", s.Interval))
	}
	if s.RetryDelay == 0 {
		switch s.Type {
		case HTTP, HTTPS:
			s.RetryDelay = 3 * time.Second
		case DNS:
			s.RetryDelay = s.Interval
		default:
			s.RetryDelay = time.Second
		}
		s.RetryDelay = min(s.RetryDelay, s.Interval)
	}
	if s.RetryDelay > s.Interval {
		return bad("retry_delay", s.RetryDelay, fmt.Sprintf("longer than interval %v", s.Interval))
	}
	if s.Jitter == 0 {
		s.Jitter = s.Interval
	}
	if s.Rise < 0 || s.Fall < 0 {
		return bad("rise/fall", fmt.Sprintf("%d/%d", s.Rise, s.Fall), "negative")
	}
	if s.Rise == 0 {
		s.Rise = 1
	}
	if s.Fall == 0 {
		switch s.Type {
		case DNS:
			s.Fall = 4 // keepalived DNS_CHECK retry 3
		case Exec:
			s.Fall = 1 // keepalived MISC_CHECK retry 0
		default:
			s.Fall = 2 // keepalived retry 1
		}
	}
	if (len(s.URLs) > 0 || s.Regex != "" || s.RegexNoMatch) && s.Type != HTTP && s.Type != HTTPS {
		return bad("urls/regex", "(set)", "only for http and https")
	}
	if s.HeloName != "" && s.Type != SMTP {
		return bad("helo_name", strconv.Quote(s.HeloName), "only for smtp")
	}
	if s.Dynamic && s.Type != Exec && s.Type != File {
		return bad("dynamic", true, "only for exec and file")
	}
	if s.Source.IsValid() {
		s.Source = s.Source.Unmap()
		switch {
		case s.Type == Exec || s.Type == File:
			return bad("source", s.Source, "only for network checks")
		case s.Source.Is4() != s.Target.Addr().Is4():
			return bad("source", s.Source, fmt.Sprintf("family differs from target %v", s.Target.Addr()))
		}
	}
	if s.FWMark != 0 && (s.Type == Exec || s.Type == File || s.Type == Ping) {
		return bad("fwmark", s.FWMark, "only for tcp, http, https, udp, dns and smtp")
	}
	return s, nil
}

// The interval and timeout are vigil's, not keepalived's (delay_loop 60 s,
// connect_timeout 5 s): a minute of forwarding to a dead server is rarely
// what an operator wants, so vigil checks every 5 s and gives a probe 2 s.
// Every other default in Normalize (fall, retry delay, an exec check's
// timeout) is keepalived's.
const (
	DefaultInterval = 5 * time.Second
	DefaultTimeout  = 2 * time.Second
)

// Validate reports whether s is a valid check, naming the field and value
// that are not.
func (s Spec) Validate() error {
	_, err := s.Normalize()
	return err
}

// Key identifies what a check probes and how. Checks with the same Key
// (normalized specs equal in every field, defaults filled in) are probed
// once and share one state, which fans out to every owner — the usual case
// of one real server in several virtual servers. Checks of one target that
// differ in any field, even only Rise or Fall, are separate probes.
type Key string

// key returns the key of a normalized spec.
func (s Spec) key() Key {
	// %#v of the normalized spec is deterministic (no maps) and covers every
	// field, so adding a field cannot silently merge different checks.
	return Key(fmt.Sprintf("%#v", s))
}

// Key returns s's dedup key; s is normalized first.
func (s Spec) Key() (Key, error) {
	n, err := s.Normalize()
	if err != nil {
		return "", err
	}
	return n.key(), nil
}

// defaultHelo is the HELO name of an smtp check without one: this host's
// name if it is a usable one.
func defaultHelo() string {
	if h, err := os.Hostname(); err == nil && heloOK(h) {
		return h
	}
	return "localhost"
}

// heloOK reports whether name can follow HELO on a command line: a host
// name or an address literal ("[192.0.2.1]"), so printable ASCII without
// spaces, and not so long a server would refuse the line.
func heloOK(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for i := range len(name) {
		if name[i] <= ' ' || name[i] > '~' {
			return false
		}
	}
	return true
}

var errNoHost = errors.New("empty host")

// splitHost splits "name[:port]" or "[v6]:port".
func splitHost(h string) (host, port string, err error) {
	if h == "" {
		return "", "", errNoHost
	}
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", "", fmt.Errorf("host %q: missing ]", h)
		}
		return h[1:end], strings.TrimPrefix(h[end+1:], ":"), nil
	}
	if strings.Count(h, ":") == 1 {
		host, port, _ = strings.Cut(h, ":")
		return host, port, nil
	}
	return h, "", nil
}
