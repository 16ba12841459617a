package config

// Health checks of real servers: the check: key of virtual and real servers.

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"vigil/lb"
)

// Check is one health check of a real server.
type Check struct {
	Type string // tcp, http, https, udp, dns, ping, exec, file
	// Target is what a network check connects to: the real server's address
	// and port unless overridden by check.address / check.port. Port 0 for
	// ping, exec and file.
	Target netip.AddrPort

	// http, https
	Path      string   // default "/"
	Host      string   // Host header (virtual host); default the target
	SNI       string   // https: server name sent; default Host if it is a name
	Status    [][2]int // accepted status ranges; default 200-299
	Digest    string   // "md5:HEX" or "sha256:HEX" of the body; "" = not checked
	TLSVerify bool     // https: verify the certificate chain and name (default false, as keepalived)
	// HTTPVersion is the request's protocol (keepalived http_protocol):
	// "1.1" (vigil's default), "1.0" (keepalived's) or "1.0C" (1.0 with
	// Connection: close); "" means 1.1.
	HTTPVersion string
	// Regex (RE2) must match the body (its first MiB); with RegexNoMatch it
	// must not (keepalived regex, regex_no_match).
	Regex        string
	RegexNoMatch bool
	// URLs, when set, are the pages fetched instead of the single one
	// above (whose fields are then empty): up only when every one passes
	// (keepalived's several url {} blocks).
	URLs []URL

	// smtp
	HeloName string // HELO argument; default this host's name

	// udp
	Payload      []byte // sent as is; default one zero byte
	RequireReply bool   // up only on a reply; otherwise up unless an ICMP error comes back

	// dns
	QueryType string // default SOA, as keepalived
	QueryName string // default "."

	// exec
	Argv    []string // the command (shell: sh -c COMMAND)
	Command string   // as written, for messages
	Shell   bool
	User    string
	Dynamic bool // keepalived misc_dynamic: exit 2..255 = up with weight exit-2

	// file
	File string

	Interval   time.Duration // between checks; default DefaultCheckInterval
	Timeout    time.Duration // of one check; default min(DefaultCheckTimeout, Interval)
	RetryDelay time.Duration // after a failure, before the retry; default min(1s, Interval)
	Warmup     time.Duration // random delay up to this before the first check; default Interval
	Rise, Fall int           // consecutive successes to come up / failures to go down
}

// URL is one page an http or https check fetches.
type URL struct {
	Path         string   // default "/"
	Status       [][2]int // default 200-299
	Digest       string   // "md5:HEX" or "sha256:HEX"; "" = not checked
	Regex        string
	RegexNoMatch bool
	Host         string // this page's Host header (keepalived url virtualhost); "" = the check's
}

var checkHints = map[string]string{
	"connect_timeout":    `the key is "timeout"`,
	"delay_before_retry": `the key is "retry_delay"`,
	"delay_loop":         `the key is "interval"`,
	"retry":              `use "fall" (keepalived retry N = fall N+1)`,
	"status_code":        `the key is "status"`,
	"virtualhost":        `the key is "host"`,
	"url":                `use urls: [{path: ..., status: ..., digest: ..., regex: ...}], or path, status and digest directly for one page`,
	"misc_path":          `the key is "command"`,
	"misc_dynamic":       `the key is "dynamic"`,
	"connect_ip":         `the key is "address"`,
	"connect_port":       `the key is "port"`,
	"verify":             `the key is "tls_verify"`,
	"type_name":          `the key is "query_type"`,
}

var checkTypes = []string{"tcp", "http", "https", "udp", "dns", "ping", "exec", "file", "smtp"}

// check decodes one check. Its Target holds only the address and port it
// overrides; target completes it per real server.
func (d *decoder) check(o *object) (Check, bool) {
	errs := len(d.errs)
	var c Check
	typ := getString(o, "type")
	d.required(typ.St, typ.path(), strings.Join(checkTypes, ", "))
	if typ.ok() {
		if slices.Contains(checkTypes, typ.V) {
			c.Type = typ.V
		} else {
			typ.reject(d, "is not a check type: use %s", strings.Join(checkTypes, ", "))
		}
	}
	var ip netip.Addr
	var port uint16
	if a := getString(o, "address"); a.ok() {
		if v, msg := parseHost(a.V); msg != "" {
			a.reject(d, "%s", msg)
		} else {
			ip = v
		}
	}
	if p := getInt(o, "port"); p.ok() {
		if p.V < 1 || p.V > 65535 {
			p.reject(d, "is out of range 1..65535")
		} else {
			port = uint16(p.V)
		}
	}
	c.Target = netip.AddrPortFrom(ip, port)

	c.Interval = DefaultCheckInterval
	iv := getDuration(o, "interval")
	if iv.ok() {
		if iv.V < 10*time.Millisecond || iv.V > 24*time.Hour {
			iv.reject(d, "is out of range 10ms..24h")
		} else {
			c.Interval = iv.V
		}
	}
	c.Timeout = min(DefaultCheckTimeout, c.Interval)
	if t := getDuration(o, "timeout"); t.ok() {
		switch {
		case t.V < time.Millisecond:
			t.reject(d, "is too short: use 1ms or more")
		case t.V > c.Interval:
			t.reject(d, "is longer than the interval (%s): a check must end before the next is due", c.Interval)
		default:
			c.Timeout = t.V
		}
	}
	c.RetryDelay = min(time.Second, c.Interval)
	if r := getDuration(o, "retry_delay"); r.ok() {
		if r.V < 0 || r.V > c.Interval {
			r.reject(d, "is out of range 0..interval (%s)", c.Interval)
		} else {
			c.RetryDelay = r.V
		}
	}
	c.Warmup = c.Interval
	if w := getDuration(o, "warmup"); w.ok() {
		if w.V < 0 || w.V > 24*time.Hour {
			w.reject(d, "is out of range 0..24h")
		} else {
			c.Warmup = w.V
		}
	}
	c.Rise = d.count(o, "rise")
	c.Fall = DefaultCheckFall
	if f := getInt(o, "fall"); f.ok() {
		if f.V < 1 || f.V > 100 {
			f.reject(d, "is out of range 1..100")
		} else {
			c.Fall = int(f.V)
		}
	}

	only := func(key string, types ...string) bool {
		if _, present := o.get(key); !present {
			return false
		}
		if !slices.Contains(types, c.Type) {
			if c.Type != "" {
				d.fail(o.sub(key), "is not used by a %s check (only %s)", c.Type, strings.Join(types, ", "))
			}
			return false
		}
		return true
	}
	web := c.Type == "http" || c.Type == "https"
	if only("urls", "http", "https") {
		c.URLs = d.urls(o)
	}
	if len(c.URLs) == 0 {
		var u URL
		for _, k := range pageKeys {
			only(k, "http", "https")
		}
		if web {
			u = d.page(o)
		}
		c.Path, c.Status, c.Digest, c.Regex, c.RegexNoMatch = u.Path, u.Status, u.Digest, u.Regex, u.RegexNoMatch
	}
	if only("host", "http", "https") {
		c.Host = getString(o, "host").or("")
	}
	if only("sni", "https") {
		c.SNI = getString(o, "sni").or("")
	}
	if only("tls_verify", "https") {
		c.TLSVerify = getBool(o, "tls_verify").or(false)
	}
	if only("http_protocol", "http", "https") {
		raw, _ := o.get("http_protocol")
		// YAML reads 1.0 and 1.1 as numbers.
		switch v := fmt.Sprint(raw); v {
		case "1", "1.0":
			c.HTTPVersion = "1.0"
		case "1.0C", "1.0c":
			c.HTTPVersion = "1.0C"
		case "1.1":
			c.HTTPVersion = "1.1"
		default:
			d.bad(o.sub("http_protocol"), raw, "is not an HTTP protocol: use 1.0 (keepalived's default), 1.0C (1.0 with Connection: close) or 1.1 (the default)")
		}
	}
	if only("helo_name", "smtp") {
		if h := getString(o, "helo_name"); h.ok() {
			if h.V == "" || len(h.V) > 255 || strings.ContainsFunc(h.V, func(r rune) bool { return r <= ' ' || r > '~' }) {
				h.reject(d, "is not a HELO name: 1..255 printable ASCII characters, no spaces")
			} else {
				c.HeloName = h.V
			}
		}
	}
	if only("payload", "udp") {
		if pl := getString(o, "payload"); pl.ok() {
			b, err := hex.DecodeString(strings.ReplaceAll(pl.V, " ", ""))
			if err != nil || len(b) == 0 || len(b) > 1400 {
				pl.reject(d, "is not 1..1400 bytes in hex (e.g. \"0a0b\")")
			}
			c.Payload = b
		}
	}
	if c.Type == "udp" && len(c.Payload) == 0 {
		c.Payload = []byte{0}
	}
	if only("require_reply", "udp") {
		c.RequireReply = getBool(o, "require_reply").or(false)
	}
	if only("query_type", "dns") {
		if q := getString(o, "query_type"); q.ok() {
			switch u := strings.ToUpper(q.V); u {
			case "A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA", "PTR", "SRV":
				c.QueryType = u
			default:
				q.reject(d, "is not a query type: use A, AAAA, NS, CNAME, SOA, MX, TXT, PTR or SRV")
			}
		}
	}
	if only("query_name", "dns") {
		c.QueryName = getString(o, "query_name").or("")
	}
	if c.Type == "dns" {
		if c.QueryType == "" {
			c.QueryType = "SOA"
		}
		if c.QueryName == "" {
			c.QueryName = "."
		}
	}
	if o.has("command") || o.has("shell") || o.has("user") || o.has("dynamic") {
		if only("command", "exec") {
			c.Shell = getBool(o, "shell").or(false)
			c.Argv, c.Command = d.command(o, "command", c.Shell, true)
		}
		if only("shell", "exec") && !o.has("command") {
			d.fail(o.sub("command"), "required for an exec check")
		}
		if only("user", "exec") {
			if u := getString(o, "user"); u.ok() && u.V != "" {
				if msg := userProblem(u.V); msg != "" {
					u.reject(d, "%s", msg)
				} else {
					c.User = u.V
				}
			}
		}
		if only("dynamic", "exec") {
			c.Dynamic = getBool(o, "dynamic").or(false)
		}
	} else if c.Type == "exec" {
		d.fail(o.sub("command"), "required for an exec check")
	}
	if only("file", "file") {
		if f := getString(o, "file"); f.ok() {
			if !strings.HasPrefix(f.V, "/") {
				f.reject(d, "must be an absolute path")
			}
			c.File = f.V
		}
	} else if c.Type == "file" {
		d.fail(o.sub("file"), "required for a file check: the path whose value (0 = down) decides")
	}
	return c, len(d.errs) == errs
}

// pageKeys are the keys of one page of an http check; with urls they go
// in each url.
var pageKeys = []string{"path", "status", "digest", "regex", "regex_no_match"}

// page reads one page's keys from o, with their defaults.
func (d *decoder) page(o *object) URL {
	var u URL
	if p := getString(o, "path"); p.ok() {
		if !strings.HasPrefix(p.V, "/") {
			p.reject(d, "must start with /")
		}
		u.Path = p.V
	}
	if u.Path == "" {
		u.Path = "/"
	}
	if o.has("status") {
		u.Status = d.statusRanges(o)
	}
	if len(u.Status) == 0 {
		u.Status = [][2]int{{200, 299}}
	}
	if g := getString(o, "digest"); g.ok() {
		if norm, msg := parseDigest(g.V); msg != "" {
			g.reject(d, "%s", msg)
		} else {
			u.Digest = norm
		}
	}
	if r := getString(o, "regex"); r.ok() {
		if _, err := regexp.Compile(r.V); err != nil {
			r.reject(d, "is not a regular expression (RE2 syntax: no lookaround or backreferences): %v", err)
		} else {
			u.Regex = r.V
		}
	}
	if n := getBool(o, "regex_no_match"); n.ok() {
		if !o.has("regex") {
			n.reject(d, "needs regex: the pattern the body must not match")
		}
		u.RegexNoMatch = n.V
	}
	return u
}

// urls reads a check's urls: a list of pages, each with pageKeys.
func (d *decoder) urls(o *object) []URL {
	list, lp, st := getList(o, "urls")
	if st != good {
		return nil
	}
	for _, k := range pageKeys {
		if o.has(k) {
			d.fail(o.sub(k), "is set for the whole check and in urls: with urls, set it in each url")
			o.get(k)
		}
	}
	if len(list) == 0 {
		d.fail(lp, "is empty: list the pages to fetch, or use path")
		return nil
	}
	out := make([]URL, 0, len(list))
	for i, raw := range list {
		uo, ok := d.object(index(lp, i), raw)
		if !ok {
			continue
		}
		u := d.page(uo)
		if h := getString(uo, "host"); h.ok() {
			if h.V == "" {
				h.reject(d, "is empty: leave it out to send the check's host")
			}
			u.Host = h.V
		}
		out = append(out, u)
		uo.unknown(nil, map[string]string{"status_code": `the key is "status"`, "virtualhost": `the key is "host"`})
	}
	return out
}

// target completes c's Target for real server rs: the real server's
// address and port unless the check gave its own. at names the check in a
// message (built only then).
func (d *decoder) target(c *Check, rs lb.RealServer, at func() string) bool {
	ip, port := c.Target.Addr(), c.Target.Port()
	if !ip.IsValid() {
		ip = rs.Addr
	}
	if port == 0 {
		port = rs.Port
	}
	switch c.Type {
	case "tcp", "http", "https", "udp", "smtp":
		if port == 0 && c.Type == "smtp" {
			port = 25
		}
		if port == 0 {
			d.fail(at()+".port", "required: the real server %s has no port (fwmark or port-0 service); give the port to check", rs.Addr)
			return false
		}
	case "dns":
		if port == 0 {
			port = 53
		}
	case "ping", "exec", "file":
		port = 0
	}
	c.Target = netip.AddrPortFrom(ip, port)
	return true
}

// statusRanges reads status: 200 | "200-299" | [200, "300-399"].
func (d *decoder) statusRanges(o *object) [][2]int {
	raw, _ := o.get("status")
	p := o.sub("status")
	items, isList := raw.([]any)
	if !isList {
		items = []any{raw}
	}
	var out [][2]int
	for i, it := range items {
		ip := p
		if isList {
			ip = index(p, i)
		}
		r, ok := parseStatus(it)
		if !ok {
			d.bad(ip, it, `is not an HTTP status or range: use 200, "200-299" or a list of them`)
			continue
		}
		out = append(out, r)
	}
	return out
}

func parseStatus(raw any) ([2]int, bool) {
	if n, ok := toInt(raw); ok {
		return [2]int{int(n), int(n)}, n >= 100 && n <= 599
	}
	s, ok := raw.(string)
	if !ok {
		return [2]int{}, false
	}
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b := a
	var err2 error
	if isRange {
		b, err2 = strconv.Atoi(strings.TrimSpace(hi))
	}
	if err1 != nil || err2 != nil || a < 100 || b > 599 || a > b {
		return [2]int{}, false
	}
	return [2]int{a, b}, true
}

// parseDigest accepts "md5:HEX", "sha256:HEX" or bare HEX (32 digits = MD5
// as keepalived's genhash prints it, 64 = SHA-256) and returns "alg:hex".
func parseDigest(s string) (string, string) {
	alg, h, has := strings.Cut(strings.ToLower(strings.TrimSpace(s)), ":")
	if !has {
		alg, h = "", alg
		switch len(h) {
		case 32:
			alg = "md5"
		case 64:
			alg = "sha256"
		}
	}
	want := map[string]int{"md5": 32, "sha256": 64}[alg]
	if want == 0 {
		return "", `is not a digest: use "md5:HEX" (keepalived genhash) or "sha256:HEX"`
	}
	if _, err := hex.DecodeString(h); err != nil || len(h) != want {
		return "", fmt.Sprintf("is not %d hex digits of %s", want, alg)
	}
	return alg + ":" + h, ""
}
