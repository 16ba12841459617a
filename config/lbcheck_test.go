package config

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"vigil/lb/check"
)

// TestCheckDefaults: what each check type gets from a minimal entry, all
// lb/check's: vigil's interval (5s) and timeout (2s), keepalived's for the
// rest (retry 1 and delay_before_retry 1s, with DNS retry 3 and a retry
// delay of the interval, MISC retry 0 and misc_timeout the interval,
// HTTP/SSL delay_before_retry 3s), through the whole load.
func TestCheckDefaults(t *testing.T) {
	const iv, sec = check.DefaultInterval, time.Second
	rs := netip.MustParseAddr("198.51.100.11")
	at := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(rs, port) }
	cases := []struct {
		check string
		want  Check
	}{
		{`{type: tcp}`, Check{Type: check.TCP, Target: at(8080), Interval: iv, Timeout: check.DefaultTimeout, RetryDelay: sec, Jitter: iv, Rise: 1, Fall: 2}},
		{`{type: http}`, Check{Type: check.HTTP, Target: at(8080), Path: "/", Status: []check.StatusRange{{Lo: 200, Hi: 299}}, HTTPVersion: "1.1",
			Interval: iv, Timeout: check.DefaultTimeout, RetryDelay: 3 * sec, Jitter: iv, Rise: 1, Fall: 2}},
		{`{type: https}`, Check{Type: check.HTTPS, Target: at(8080), Path: "/", Status: []check.StatusRange{{Lo: 200, Hi: 299}}, HTTPVersion: "1.1",
			Interval: iv, Timeout: check.DefaultTimeout, RetryDelay: 3 * sec, Jitter: iv, Rise: 1, Fall: 2}},
		{`{type: udp}`, Check{Type: check.UDP, Target: at(8080), Payload: "\x00", Interval: iv, Timeout: check.DefaultTimeout, RetryDelay: sec, Jitter: iv, Rise: 1, Fall: 2}},
		{`{type: dns}`, Check{Type: check.DNS, Target: at(8080), QType: "SOA", QName: ".", Interval: iv, Timeout: check.DefaultTimeout, RetryDelay: iv, Jitter: iv, Rise: 1, Fall: 4}},
		{`{type: ping}`, Check{Type: check.Ping, Target: at(0), Interval: iv, Timeout: check.DefaultTimeout, RetryDelay: sec, Jitter: iv, Rise: 1, Fall: 2}},
		{`{type: exec, command: [/bin/true]}`, Check{Type: check.Exec, Target: at(0), Argv: []string{"/bin/true"}, Interval: iv, Timeout: iv, RetryDelay: sec, Jitter: iv, Rise: 1, Fall: 1}},
		{`{type: file, file: /run/up}`, Check{Type: check.File, Target: at(0), FilePath: "/run/up", Interval: iv, Timeout: check.DefaultTimeout, RetryDelay: sec, Jitter: iv, Rise: 1, Fall: 2}},
	}
	for _, tc := range cases {
		t.Run(string(tc.want.Type), func(t *testing.T) {
			c := mustParse(t, lbDoc(`{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: "198.51.100.11:8080", check: `+tc.check+`}]}`))
			if got := c.LB.VirtualServers[0].Reals[0].Checks[0]; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s:\n got %+v\nwant %+v", tc.check, got, tc.want)
			}
		})
	}
	t.Run("smtp", func(t *testing.T) {
		c := mustParse(t, lbDoc(`{name: a, fwmark: 1, real_servers: [{address: "198.51.100.11", check: {type: smtp}}]}`))
		got := c.LB.VirtualServers[0].Reals[0].Checks[0]
		if got.HeloName == "" || got.Target != at(25) {
			t.Errorf("smtp: %+v", got)
		}
		got.HeloName = "" // this host's name
		want := Check{Type: check.SMTP, Target: at(25), Interval: iv, Timeout: check.DefaultTimeout, RetryDelay: sec, Jitter: iv, Rise: 1, Fall: 2}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("smtp:\n got %+v\nwant %+v", got, want)
		}
	})
}

// Every option of lb/check's Spec can be set from the file.
func TestCheckAllKeys(t *testing.T) {
	doc := lbDoc(`{name: a, address: "192.0.2.100:80", protocol: udp, alpha: true, real_servers: [
	  {address: "198.51.100.11:53", check: [
	    {type: udp, source: 198.51.100.1, fwmark: 7, payload: "0102", reply: "01XX", min_reply: 2, max_reply: 64,
	     interval: 10s, timeout: 1s, retry_delay: 2s, warmup: 0s, rise: 2, fall: 3},
	    {type: https, port: 8443, address: 198.51.100.12, ca: /etc/ssl/ca.pem, tls_verify: true, sni: www.example.org, host: www.example.org,
	     http_protocol: 1.0C, path: /h, status: 204, digest: "sha256:` + sha256Hex + `", regex: ok},
	    {type: dns, query_type: aaaa, query_name: example.org},
	    {type: file, file: /run/w, weight: -2, dynamic: true},
	    {type: exec, command: "test -f /run/up", shell: true, user: "nobody:nogroup", dynamic: true}]}]}`)
	c := mustParse(t, doc)
	ch := c.LB.VirtualServers[0].Reals[0].Checks
	if len(ch) != 5 {
		t.Fatalf("%d checks", len(ch))
	}
	u := ch[0]
	if u.Source != netip.MustParseAddr("198.51.100.1") || u.FWMark != 7 || u.Payload != "\x01\x02" || u.Reply != "01xx" || !u.RequireReply ||
		u.MinReply != 2 || u.MaxReply != 64 || u.Interval != 10*time.Second || u.Timeout != time.Second || u.RetryDelay != 2*time.Second ||
		u.Jitter != check.NoJitter || u.Rise != 2 || u.Fall != 3 || !u.Alpha {
		t.Errorf("udp: %+v", u)
	}
	h := ch[1]
	if h.Target != netip.MustParseAddrPort("198.51.100.12:8443") || h.CAFile != "/etc/ssl/ca.pem" || !h.TLSVerify || h.SNI != "www.example.org" ||
		h.Host != "www.example.org" || h.HTTPVersion != "1.0C" || h.Path != "/h" || h.Digest != sha256Hex || h.Regex != "ok" ||
		!reflect.DeepEqual(h.Status, []check.StatusRange{{Lo: 204, Hi: 204}}) {
		t.Errorf("https: %+v", h)
	}
	if d := ch[2]; d.QType != "AAAA" || d.QName != "example.org." {
		t.Errorf("dns: %+v", d)
	}
	if f := ch[3]; f.FilePath != "/run/w" || f.Weight != -2 || !f.Dynamic {
		t.Errorf("file: %+v", f)
	}
	if e := ch[4]; !reflect.DeepEqual(e.Argv, []string{"/bin/sh", "-c", "test -f /run/up"}) || e.User != "nobody:nogroup" || !e.Dynamic {
		t.Errorf("exec: %+v", e)
	}
}

const sha256Hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Problems lb/check's Normalize finds are reported at the key they come
// from; keys a type does not use are refused.
func TestCheckSpecErrors(t *testing.T) {
	p := "lb.virtual_servers[0].real_servers[0].check"
	for _, tc := range []struct{ check, path, frag string }{
		{`{type: tcp, source: "2001:db8::1"}`, p + ".source", "family differs from target"},
		{`{type: tcp, timeout: 90s}`, p + ".timeout", "longer than interval 5s"},
		{`{type: udp, min_reply: 9, max_reply: 4}`, p + ".max_reply", "want 0 <= min <= max"},
		{`{type: ping, fwmark: 3}`, p + ".fwmark", "is not used by a ping check"},
		{`{type: tcp, weight: 2}`, p + ".weight", "is not used by a tcp check"},
		{`{type: http, ca: /x}`, p + ".ca", "is not used by a http check"},
		{`{type: udp, reply: "0g"}`, p + ".reply", "pairs of hex digits"},
		{`{type: file, file: /x, weight: 300}`, p + ".weight", "out of range -253..253"},
	} {
		ve := mustFail(t, lbDoc(`{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: "198.51.100.11:8080", check: `+tc.check+`}]}`))
		wantErr(t, ve, tc.path, tc.frag)
	}
}
