package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"vigil/lb"
	"vigil/lb/check"
)

// Health checks of real servers: the check: key of virtual and real servers.

// Check is one health check of a real server: lb/check's Spec, which
// the configuration decodes into and normalizes, so that the probes get
// exactly what the file says with lb/check's defaults (keepalived's)
// filled in. The YAML keys are those of deploy/examples/vigil.yaml.
type Check = check.Spec

// URL is one page an http or https check fetches.
type URL = check.URL

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
	"misc_timeout":       `the key is "timeout"`,
	"connect_ip":         `the key is "address"`,
	"connect_port":       `the key is "port"`,
	"bindto":             `the key is "source"`,
	"verify":             `the key is "tls_verify"`,
	"type_name":          `the key is "query_type"`,
	"track_file":         `the key is "file", the path of the file`,
	"min_reply_length":   `the key is "min_reply"`,
	"max_reply_length":   `the key is "max_reply"`,
	"sni_name":           `the key is "sni"`,
}

var checkTypes = []string{"tcp", "http", "https", "udp", "dns", "ping", "exec", "file", "smtp"}

// network are the check types that send packets, which source and (but
// ping) fwmark apply to.
var network = []string{"tcp", "http", "https", "udp", "dns", "smtp", "ping"}

// check decodes one check as written: its Target holds only the address
// and port it overrides, and the defaults are left to lb/check's
// Normalize; finish completes it per real server.
func (d *decoder) check(o *object) (Check, bool) {
	errs := len(d.errs)
	var c Check
	typ := getString(o, "type")
	d.required(typ.St, typ.path(), strings.Join(checkTypes, ", "))
	if typ.ok() {
		if slices.Contains(checkTypes, typ.V) {
			c.Type = check.Type(typ.V)
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

	iv := getDuration(o, "interval")
	if iv.ok() {
		if iv.V < 10*time.Millisecond || iv.V > 24*time.Hour {
			iv.reject(d, "is out of range 10ms..24h")
		} else {
			c.Interval = iv.V
		}
	}
	// Longer than the interval: checked here against a given one, by
	// Normalize against the default.
	if t := getDuration(o, "timeout"); t.ok() {
		switch {
		case t.V < time.Millisecond:
			t.reject(d, "is too short: use 1ms or more")
		case c.Interval > 0 && t.V > c.Interval:
			t.reject(d, "is longer than the interval (%s): a check must end before the next is due", c.Interval)
		default:
			c.Timeout = t.V
		}
	}
	if r := getDuration(o, "retry_delay"); r.ok() {
		// 0 is the default, as it always was (the scheduler needs a delay).
		if r.V < 0 || c.Interval > 0 && r.V > c.Interval {
			r.reject(d, "is out of range 0..interval (%s)", c.Interval)
		} else {
			c.RetryDelay = r.V
		}
	}
	if w := getDuration(o, "warmup"); w.ok() {
		switch {
		case w.V < 0 || w.V > 24*time.Hour:
			w.reject(d, "is out of range 0..24h")
		case w.V == 0:
			c.Jitter = check.NoJitter // keepalived warmup 0
		default:
			c.Jitter = w.V
		}
	}
	for _, k := range [...]struct {
		key string
		v   *int
	}{{"rise", &c.Rise}, {"fall", &c.Fall}} {
		if f := getInt(o, k.key); f.ok() {
			if f.V < 1 || f.V > 100 {
				f.reject(d, "is out of range 1..100")
			} else {
				*k.v = int(f.V)
			}
		}
	}

	only := func(key string, types ...string) bool {
		if _, present := o.get(key); !present {
			return false
		}
		if !slices.Contains(types, string(c.Type)) {
			if c.Type != "" {
				d.fail(o.sub(key), "is not used by a %s check (only %s)", c.Type, strings.Join(types, ", "))
			}
			return false
		}
		return true
	}
	if only("source", network...) {
		if a := getString(o, "source"); a.ok() {
			if v, msg := parseHost(a.V); msg != "" {
				a.reject(d, "%s", msg)
			} else {
				c.Source = v
			}
		}
	}
	if only("fwmark", "tcp", "http", "https", "udp", "dns", "smtp") {
		if m := getInt(o, "fwmark"); m.ok() {
			if m.V < 1 || m.V > 0xffffffff {
				m.reject(d, "is out of range 1..4294967295")
			} else {
				c.FWMark = uint32(m.V)
			}
		}
	}
	web := c.Type == check.HTTP || c.Type == check.HTTPS
	if only("urls", "http", "https") {
		c.URLs = d.urls(o)
	}
	if len(c.URLs) == 0 {
		for _, k := range pageKeys {
			only(k, "http", "https")
		}
		if web {
			u := d.page(o)
			c.Path, c.Status, c.Digest, c.Regex, c.RegexNoMatch = u.Path, u.Status, u.Digest, u.Regex, u.RegexNoMatch
		}
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
	if only("ca", "https") {
		c.CAFile = d.absPath(o, "ca")
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
	d.udpKeys(o, &c, only)
	if only("query_type", "dns") {
		if q := getString(o, "query_type"); q.ok() {
			switch u := strings.ToUpper(q.V); u {
			case "A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA", "PTR", "SRV":
				c.QType = u
			default:
				q.reject(d, "is not a query type: use A, AAAA, NS, CNAME, SOA, MX, TXT, PTR or SRV")
			}
		}
	}
	if only("query_name", "dns") {
		c.QName = getString(o, "query_name").or("")
	}
	if o.has("command") || o.has("shell") || o.has("user") {
		if only("command", "exec") {
			shell := getBool(o, "shell").or(false)
			argv, cmd := d.command(o, "command", shell, true)
			if shell && argv != nil {
				argv = []string{"/bin/sh", "-c", cmd}
			}
			c.Argv = argv
		}
		if only("shell", "exec") && !o.has("command") {
			d.fail(o.sub("command"), "required for an exec check")
		}
		if only("user", "exec") {
			if u := getString(o, "user"); u.ok() && u.V != "" {
				if msg := d.userProblem(u.V); msg != "" {
					u.reject(d, "%s", msg)
				} else {
					c.User = u.V
				}
			}
		}
	} else if c.Type == check.Exec {
		d.fail(o.sub("command"), "required for an exec check")
	}
	if only("dynamic", "exec", "file") {
		c.Dynamic = getBool(o, "dynamic").or(false)
	}
	if only("file", "file") {
		c.FilePath = d.absPath(o, "file")
	} else if c.Type == check.File {
		d.fail(o.sub("file"), "required for a file check: the path whose value (0 = down) decides")
	}
	if only("weight", "file") {
		if w := getInt(o, "weight"); w.ok() {
			if w.V < -maxWeight || w.V > maxWeight {
				w.reject(d, "is out of range -%d..%d", maxWeight, maxWeight)
			} else {
				c.Weight = int(w.V)
			}
		}
	}
	return c, len(d.errs) == errs
}

// absPath reads a key that holds an absolute path; "" when absent.
func (d *decoder) absPath(o *object, key string) string {
	f := getString(o, key)
	if f.ok() && !strings.HasPrefix(f.V, "/") {
		f.reject(d, "must be an absolute path")
	}
	return f.V
}

// udpKeys reads what a udp check sends and what reply it wants.
func (d *decoder) udpKeys(o *object, c *Check, only func(string, ...string) bool) {
	if only("payload", "udp") {
		if pl := getString(o, "payload"); pl.ok() {
			b, err := hex.DecodeString(strings.ReplaceAll(pl.V, " ", ""))
			if err != nil || len(b) == 0 || len(b) > 1400 {
				pl.reject(d, "is not 1..1400 bytes in hex (e.g. \"0a0b\")")
			}
			c.Payload = string(b)
		}
	}
	if only("require_reply", "udp") {
		c.RequireReply = getBool(o, "require_reply").or(false)
	}
	if only("reply", "udp") {
		if r := getString(o, "reply"); r.ok() {
			if h := strings.ReplaceAll(r.V, " ", ""); h == "" || len(h)%2 != 0 || strings.Trim(strings.ToLower(h), "0123456789abcdefx") != "" {
				r.reject(d, `is not pairs of hex digits or X (any digit), e.g. "01XX7f"`)
			} else {
				c.Reply = h
			}
		}
	}
	for _, k := range [...]struct {
		key string
		v   *int
	}{{"min_reply", &c.MinReply}, {"max_reply", &c.MaxReply}} {
		if !only(k.key, "udp") {
			continue
		}
		if n := getInt(o, k.key); n.ok() {
			if n.V < 0 || n.V > 65535 {
				n.reject(d, "is out of range 0..65535 bytes")
			} else {
				*k.v = int(n.V)
			}
		}
	}
}

// specKeys maps the field names of lb/check's errors to the keys they
// come from, where the two differ.
var specKeys = map[string]string{
	"target": "address", "qtype": "query_type", "qname": "query_name", "argv": "command",
	"jitter": "warmup", "rise/fall": "fall", "min/max_reply": "max_reply", "sni/tls_verify/ca": "sni",
	"path/status/digest/regex": "path", "urls/regex": "urls", "retry_delay": "retry_delay",
}

// finish completes a decoded check for real server rs and normalizes it
// (lb/check's defaults and rules): the target is the real server's
// address and port unless the check gave its own, and alpha is the real
// server's. at names the check in a message (built only then).
func (d *decoder) finish(c *Check, rs lb.RealServer, alpha bool, at func() string) bool {
	ip, port := c.Target.Addr(), c.Target.Port()
	if !ip.IsValid() {
		ip = rs.Addr
	}
	if port == 0 {
		port = rs.Port
	}
	switch c.Type {
	case check.TCP, check.HTTP, check.HTTPS, check.UDP, check.SMTP:
		if port == 0 && c.Type == check.SMTP {
			port = 25
		}
		if port == 0 {
			d.fail(at()+".port", "required: the real server %s has no port (fwmark or port-0 service); give the port to check", rs.Addr)
			return false
		}
	case check.DNS:
		if port == 0 {
			port = 53
		}
	case check.Ping, check.Exec, check.File:
		// exec and file keep the real server's address: checks of several
		// real servers with one command are probes of their own.
		port = 0
	}
	c.Target = netip.AddrPortFrom(ip, port)
	c.Alpha = alpha
	n, err := c.Normalize()
	if err != nil {
		p := at()
		var se *check.SpecError
		if errors.As(err, &se) {
			key := se.Field
			if k, ok := specKeys[key]; ok {
				key = k
			}
			d.fail(p+"."+key, "%s %s", se.Value, se.Why)
		} else {
			d.fail(p, "%v", err)
		}
		return false
	}
	*c = n
	return true
}

// pageKeys are the keys of one page of an http check; with urls they go
// in each url.
var pageKeys = []string{"path", "status", "digest", "regex", "regex_no_match"}

// page reads one page's keys from o; lb/check fills in the defaults.
func (d *decoder) page(o *object) URL {
	var u URL
	if p := getString(o, "path"); p.ok() {
		if !strings.HasPrefix(p.V, "/") {
			p.reject(d, "must start with /")
		}
		u.Path = p.V
	}
	if o.has("status") {
		u.Status = d.statusRanges(o)
	}
	if g := getString(o, "digest"); g.ok() {
		if hexDigest, msg := parseDigest(g.V); msg != "" {
			g.reject(d, "%s", msg)
		} else {
			u.Digest = hexDigest
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

// statusRanges reads status: 200 | "200-299" | [200, "300-399"].
func (d *decoder) statusRanges(o *object) []check.StatusRange {
	raw, _ := o.get("status")
	p := o.sub("status")
	items, isList := raw.([]any)
	if !isList {
		items = []any{raw}
	}
	var out []check.StatusRange
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

func parseStatus(raw any) (check.StatusRange, bool) {
	if n, ok := toInt(raw); ok {
		return check.StatusRange{Lo: int(n), Hi: int(n)}, n >= 100 && n <= 599
	}
	s, ok := raw.(string)
	if !ok {
		return check.StatusRange{}, false
	}
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b := a
	var err2 error
	if isRange {
		b, err2 = strconv.Atoi(strings.TrimSpace(hi))
	}
	if err1 != nil || err2 != nil || a < 100 || b > 599 || a > b {
		return check.StatusRange{}, false
	}
	return check.StatusRange{Lo: a, Hi: b}, true
}

// parseDigest accepts "md5:HEX", "sha256:HEX" or bare HEX (32 digits = MD5
// as keepalived's genhash prints it, 64 = SHA-256) and returns the hex
// digits, lower case: their number tells lb/check the algorithm.
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
	return h, ""
}
