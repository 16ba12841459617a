package kaimport_test

import (
	"bytes"
	"strings"
	"testing"

	"vigil/config"
	"vigil/config/kaimport"
	"vigil/internal/kaconf"
)

// translate parses a keepalived snippet and translates it.
func translate(t *testing.T, conf string) *kaimport.Result {
	t.Helper()
	f, err := kaconf.ParseBytes("t.conf", []byte(conf), kaconf.Options{ConfigID: "lb1", Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	res, err := kaimport.Translate(f, kaimport.Options{NodeName: "lb1"})
	if err != nil {
		t.Fatalf("Translate: %v", err)
	}
	return res
}

// plainYAML is the document without comments, each line trimmed: what a
// fragment is compared with.
func plainYAML(b []byte) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.Index(l, " # "); i >= 0 {
			l = l[:i]
		}
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func report(r *kaimport.Result) string {
	var b bytes.Buffer
	_ = r.Report(&b)
	return b.String()
}

// An instance around a body, for the VRRP cases.
func inst(body string) string {
	return "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n virtual_ipaddress {\n  192.0.2.100/24\n }\n" + body + "\n}\n"
}

// A virtual server around real servers and checks, for the LVS cases.
func vs(head, body string) string {
	return "virtual_server " + head + " {\n" + body + "\n}\n"
}

// TestFamilies checks each keyword family: the YAML fragment it becomes,
// what is reported dropped, what is noted as translated. The rule each
// case follows is named in it (keepalived.conf(5) of keepalived 2.2.7
// unless said otherwise). Every document must also pass vigil's own
// validation.
func TestFamilies(t *testing.T) {
	cases := []struct {
		name    string
		conf    string
		want    []string // fragments of the comment-free YAML (lines trimmed)
		absent  []string // must not appear in it
		dropped []string // "LINE: keyword" prefixes of dropped entries ("t.conf:" added)
		notes   []string // substrings of the notes
	}{
		{
			name: "state MASTER without priority is the owner (vrrp_instance: state, priority)",
			conf: inst(" state MASTER"),
			want: []string{"priority: 255"}, notes: []string{"state MASTER without priority", "not an election result"},
		},
		{
			name: "no version: keepalived's vrrp_version default 2 is written (global_defs: vrrp_version)",
			conf: inst(""),
			want: []string{"version: 2"}, notes: []string{"keepalived's default is VRRPv2"},
		},
		{
			name: "vrrp_version 3 applies to every instance (global_defs: vrrp_version)",
			conf: "global_defs {\n vrrp_version 3\n}\n" + inst(" advert_int 0.123"),
			want: []string{"version: 3", "advert_interval: 120ms"}, notes: []string{"VRRPv3 advertises multiples of 10ms"},
		},
		{
			name: "IPv6 instances are always version 3 (vrrp_instance: version)",
			conf: "vrrp_instance V6 {\n interface eth0\n virtual_router_id 5\n virtual_ipaddress {\n  fe80::5/64\n  2001:db8::5/64\n }\n}\n",
			want: []string{"vips: ['fe80::5/64', '2001:db8::5/64']"}, absent: []string{"version:"},
		},
		{
			name: "v2 advert_int is rounded to whole seconds, as keepalived does (vrrp_instance: advert_int)",
			conf: inst(" advert_int 2.6"),
			want: []string{"advert_interval: 3s"}, notes: []string{"advert_int 2.6 is 3s"},
		},
		{
			name: "nopreempt and preempt_delay (vrrp_instance: nopreempt, preempt_delay)",
			conf: inst(" state BACKUP\n nopreempt\n preempt_delay 5"),
			want: []string{"preempt: false"}, absent: []string{"preempt_delay"},
			dropped: []string{"9: preempt_delay"},
		},
		{
			name:   "nopreempt is cleared with state MASTER (keepalived: nopreempt will not work with initial state MASTER)",
			conf:   inst(" state MASTER\n priority 150\n nopreempt"),
			absent: []string{"preempt: false"}, dropped: []string{"9: nopreempt"},
		},
		{
			name: "PASS authentication, first 8 bytes (vrrp_instance: authentication)",
			conf: inst(" authentication {\n  auth_type PASS\n  auth_pass 123456789\n }"),
			want: []string{"auth: {type: pass, password: \"12345678\"}"}, notes: []string{"keepalived uses the first 8"},
		},
		{
			name:   "AH authentication is dropped (vrrp_instance: authentication, auth_type AH)",
			conf:   inst(" authentication {\n  auth_type AH\n  auth_pass x\n }"),
			absent: []string{"auth:"}, dropped: []string{"7: authentication"},
		},
		{
			name:   "authentication with version 3 is dropped (RFC 5798 has none)",
			conf:   inst(" version 3\n authentication {\n  auth_type PASS\n  auth_pass x\n }"),
			absent: []string{"auth:"}, dropped: []string{"8: authentication"},
		},
		{
			name: "unicast peers and min_ttl (vrrp_instance: unicast_src_ip, unicast_peer)",
			conf: inst(" unicast_src_ip 192.0.2.11\n unicast_peer {\n  192.0.2.12 min_ttl 250\n  192.0.2.13\n }"),
			want: []string{"source: 192.0.2.11", "peers: [192.0.2.12, 192.0.2.13]", "min_ttl: 250"},
		},
		{
			name: "unicast_ttl is what the peers send: vigil accepts from it up (vrrp_instance: unicast_ttl)",
			conf: inst(" unicast_ttl 64\n unicast_peer {\n  192.0.2.12\n }"),
			want: []string{"min_ttl: 64"},
		},
		{
			name:    "virtual_ipaddress dev and label; excluded addresses are dropped (vrrp_instance: virtual_ipaddress)",
			conf:    "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n virtual_ipaddress {\n  192.0.2.100\n  192.0.2.101/24 dev eth1 label eth1:x\n }\n virtual_ipaddress_excluded {\n  192.0.2.200\n }\n}\n",
			want:    []string{"- 192.0.2.100", "- {address: 192.0.2.101/24, dev: eth1, label: 'eth1:x'}"},
			dropped: []string{"8: virtual_ipaddress_excluded"},
		},
		{
			name: "track_script weight override, reverse and track_interface (vrrp_instance: track_script, track_interface)",
			conf: "vrrp_script chk {\n script \"/usr/bin/test -e /tmp\"\n weight -10\n}\n" +
				inst(" track_script {\n  chk weight 20 reverse\n }\n track_interface {\n  eth1 weight -5\n  eth0\n }"),
			want:    []string{"scripts: [{name: chk, weight: 20, reverse: true}]", "interfaces: [{name: eth1, weight: -5}]", "weight: -10"},
			dropped: []string{"16: track_interface eth0"},
		},
		{
			name: "a vrrp_script timeout longer than its interval is the interval (vrrp_script: interval, timeout; vigil ends a run before the next)",
			conf: "vrrp_script chk {\n script \"/usr/bin/test -e /tmp\"\n interval 2\n timeout 5\n}\n" + inst(" track_script {\n  chk\n }"),
			want: []string{"interval: 2s", "timeout: 2s"}, absent: []string{"timeout: 5s"},
			notes: []string{"timeout is longer than the interval", "the timeout is the interval, 2s"},
		},
		{
			name: "without an interval, the timeout is at most vigil's default interval, 1s (vrrp_script: timeout)",
			conf: "vrrp_script chk {\n script \"/usr/bin/test -e /tmp\"\n timeout 3\n}\n" + inst(" track_script {\n  chk\n }"),
			want: []string{"timeout: 1s"}, absent: []string{"timeout: 3s"},
			notes: []string{"longer than the default interval (1s)"},
		},
		{
			name: "a timeout within the interval is kept (vrrp_script: interval, timeout)",
			conf: "vrrp_script chk {\n script \"/usr/bin/test -e /tmp\"\n interval 5\n timeout 2\n}\n" + inst(" track_script {\n  chk\n }"),
			want: []string{"interval: 5s", "timeout: 2s"},
		},
		{
			name: "sync group members track with weight 0 and take the group's trackers (vrrp_sync_group)",
			conf: "vrrp_script chk {\n script \"/usr/bin/test -e /tmp\"\n weight -10\n}\n" +
				"vrrp_sync_group G {\n group {\n  A\n  B\n }\n track_script {\n  chk\n }\n}\n" +
				"vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n" +
				"vrrp_instance B {\n interface eth1\n virtual_router_id 2\n virtual_ipaddress {\n  192.0.2.2\n }\n}\n",
			want:  []string{"instances: [A, B]", "scripts: [{name: chk, weight: 0}]"},
			notes: []string{"of sync group G is tracked by each member", "keepalived sets the weights of sync group members to 0"},
		},
		{
			name: "sync_group_tracking_weight keeps the weights (vrrp_sync_group)",
			conf: "vrrp_script chk {\n script \"/usr/bin/test -e /tmp\"\n weight -10\n}\n" +
				"vrrp_sync_group G {\n group {\n  A\n  B\n }\n sync_group_tracking_weight\n}\n" +
				"vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  192.0.2.1\n }\n track_script {\n  chk\n }\n}\n" +
				"vrrp_instance B {\n interface eth1\n virtual_router_id 2\n virtual_ipaddress {\n  192.0.2.2\n }\n}\n",
			want: []string{"tracking_weight: true", "scripts: [chk]"},
		},
		{
			name: "the address owner tracks with weight 0 (track_file: weight 0 must be set for the owner)",
			conf: "track_file f {\n file /run/f\n}\n" + inst(" priority 255\n track_file {\n  f\n }"),
			want: []string{"files: [{name: f, weight: 0}]"}, notes: []string{"the address owner's priority cannot change"},
		},
		{
			name:  "vrrp_track_process: default weight 1, name from a path, delay (vrrp_track_process)",
			conf:  "vrrp_track_process p {\n process /usr/sbin/haproxy -f /etc/haproxy.cfg\n fork_delay 2\n}\n" + inst(" track_process {\n  p\n }"),
			want:  []string{"process: haproxy", "args: -f /etc/haproxy.cfg", "weight: 1", "delay: 2s"},
			notes: []string{"keepalived's default for a tracked process is 1"},
		},
		{
			name: "notify scripts split into argv, with their user (vrrp_instance: notify_master, notify)",
			conf: inst(" notify_master \"/usr/bin/logger -t ka 'VI 1 up'\" nobody\n notify /usr/bin/logger"),
			want: []string{"master: [/usr/bin/logger, -t, ka, VI 1 up]", "all: [/usr/bin/logger]", "user: nobody"},
		},
		{
			name: "use_vmac (vrrp_instance: use_vmac)",
			conf: inst(" use_vmac"),
			want: []string{"vmac: true"},
		},
		{
			name: "global GARP settings and vrrp_min_garp (global_defs: vrrp_garp_*, vrrp_min_garp)",
			conf: "global_defs {\n vrrp_min_garp\n vrrp_garp_master_refresh 60\n vrrp_garp_interval 0.001\n}\n" + inst(""),
			want: []string{"repeat: 1", "delay: 0s", "refresh: 60s", "interval: 1ms"},
		},
		{
			name:    "notify FIFOs are vigil's one FIFO (global_defs: notify_fifo, vrrp_notify_fifo, lvs_notify_fifo)",
			conf:    "global_defs {\n vrrp_notify_fifo /run/ka-vrrp.fifo\n lvs_notify_fifo /run/ka-lvs.fifo\n}\n" + inst(""),
			want:    []string{"notify_fifo: /run/ka-vrrp.fifo"},
			dropped: []string{"3: lvs_notify_fifo"}, notes: []string{"vigil's one FIFO carries VRRP lines and LVS lines"},
		},
		{
			name: "LVS globals (global_defs: lvs_sync_daemon, lvs_flush, lvs_timeouts, rs_init_notifies)",
			conf: "global_defs {\n lvs_sync_daemon eth1 VI_1 id 9 port 9000\n lvs_flush\n lvs_timeouts tcp 900 udp 60\n rs_init_notifies\n}\n" + inst("") +
				vs("192.0.2.100 80", " protocol TCP\n real_server 198.51.100.1 80 {\n TCP_CHECK {\n }\n }"),
			want:    []string{"sync_daemon: {interface: eth1, instance: VI_1, sync_id: 9}", "foreign_services: remove", "timeouts: {tcp: 900s, udp: 60s}", "rs_init_notifies: true"},
			dropped: []string{"2: lvs_sync_daemon port"},
		},
		{
			name:  "no protocol: keepalived 2.2 defaults to UDP (check_data.c: no protocol set - defaulting to UDP)",
			conf:  vs("192.0.2.100 53", " real_server 198.51.100.1 53 {\n UDP_CHECK {\n payload 0a0b\n require_reply\n }\n }"),
			want:  []string{"protocol: udp", "payload: 0a0b", "require_reply: true", "max_reply: 255"},
			notes: []string{"keepalived 2.2 uses UDP"},
		},
		{
			name:  "legacy aliases and timing inheritance (virtual_server: lb_algo, lb_kind, nb_get_retry, delay_loop)",
			conf:  vs("192.0.2.100 80", " lb_algo wrr\n lb_kind DR\n protocol TCP\n delay_loop 7\n connect_timeout 3\n real_server 198.51.100.1 80 {\n nb_get_retry 2\n TCP_CHECK {\n  delay_before_retry 1\n }\n }"),
			want:  []string{"scheduler: wrr", "forward: dr", "interval: 7s", "timeout: 3s", "retry_delay: 1s", "fall: 3"},
			notes: []string{"lb_algo is keepalived's legacy name", "lb_kind is keepalived's legacy name", "nb_get_retry is keepalived's legacy name"},
		},
		{
			name:  "HTTP_GET: HTTP/1.0 and 60 s are keepalived's defaults, written out (HTTP_GET: http_protocol; delay_loop)",
			conf:  vs("192.0.2.100 80", " protocol TCP\n real_server 198.51.100.1 80 {\n HTTP_GET {\n  url {\n   path /h\n   status_code 200-299 404\n  }\n }\n }"),
			want:  []string{"type: http", "path: /h", "status: [200-299, 404]", "http_protocol: \"1.0\"", "interval: 60s", "timeout: 5s"},
			notes: []string{"keepalived's checks speak HTTP/1.0", "keepalived checks every 60s", "keepalived waits 5s"},
		},
		{
			name: "SSL_GET with several urls and a virtualhost (SSL_GET: url, virtualhost)",
			conf: vs("192.0.2.100 443", " protocol TCP\n real_server 198.51.100.1 443 {\n SSL_GET {\n  url {\n   path /a\n  }\n  url {\n   path /b\n   virtualhost b.example.com\n  }\n  virtualhost a.example.com\n }\n }"),
			want: []string{"type: https", "- {path: /a}", "- {path: /b, host: b.example.com}", "host: a.example.com"},
		},
		{
			name: "MISC_CHECK (MISC_CHECK: misc_path, misc_timeout, misc_dynamic, user)",
			conf: vs("192.0.2.100 80", " protocol TCP\n real_server 198.51.100.1 80 {\n MISC_CHECK {\n  misc_path \"/usr/bin/test -e /tmp\"\n  misc_timeout 4\n  misc_dynamic\n  user nobody\n }\n }"),
			want: []string{"type: exec", "command: [/usr/bin/test, -e, /tmp]", "timeout: 4s", "dynamic: true", "user: nobody"},
		},
		{
			name: "DNS, SMTP and PING checks (DNS_CHECK: type, name; SMTP_CHECK: helo_name; PING_CHECK)",
			conf: vs("192.0.2.100 25", " protocol TCP\n real_server 198.51.100.1 25 {\n DNS_CHECK {\n  type MX\n  name example.com\n  connect_port 53\n }\n SMTP_CHECK {\n  helo_name lb.example.com\n }\n PING_CHECK {\n }\n }"),
			want: []string{"type: dns", "query_type: MX", "query_name: example.com", "port: 53", "type: smtp", "helo_name: lb.example.com", "type: ping"},
		},
		{
			name: "FILE_CHECK reads its track_file (FILE_CHECK: track_file, weight, dynamic)",
			conf: "track_file rs1 {\n file /run/rs1\n weight 2\n}\n" +
				vs("192.0.2.100 80", " protocol TCP\n real_server 198.51.100.1 80 {\n FILE_CHECK {\n  track_file rs1\n  dynamic\n }\n }"),
			want: []string{"type: file", "file: /run/rs1", "weight: 2", "dynamic: true"},
		},
		{
			name: "virtual_server_group ranges and fwmark services (virtual_server_group; virtual_server fwmark)",
			conf: "virtual_server_group G {\n 192.0.2.10-12 80\n}\n" + vs("group G", " protocol TCP\n real_server 198.51.100.1 80 {\n weight 2\n }") +
				vs("fwmark 3", " ip_family inet6\n persistence_timeout 60\n persistence_granularity 64\n real_server 2001:db8::1 80 {\n }"),
			want: []string{"addresses: ['192.0.2.10-12:80']", "fwmark: 3", "family: ipv6", "persistence: 60s", "persistence_granularity: 64"},
		},
		{
			name: "sorry server with its method, quorum notifiers, alpha and omega (virtual_server)",
			conf: vs("192.0.2.100 80", " protocol TCP\n alpha\n omega\n quorum 2\n hysteresis 1\n quorum_down \"/usr/bin/logger down\"\n sorry_server 198.51.100.9 8080\n sorry_server_lvs_method NAT\n real_server 198.51.100.1 80 {\n uthreshold 100\n lthreshold 10\n }"),
			want: []string{"sorry_server: {address: '198.51.100.9:8080', forward: nat}", "quorum: 2", "hysteresis: 1", "alpha: true", "omega: true",
				"quorum_down: [/usr/bin/logger, down]", "upper_threshold: 100", "lower_threshold: 10"},
		},
		{
			name:  "direct routing keeps the service port; checks use the real server's (lvs_method DR)",
			conf:  vs("192.0.2.100 80", " protocol TCP\n lvs_method DR\n real_server 198.51.100.1 8080 {\n TCP_CHECK {\n }\n }"),
			want:  []string{"address: 198.51.100.1:80", "port: 8080"},
			notes: []string{"direct routing keeps the service's port 80"},
		},
		{
			name:    "unknown and unsupported blocks are reported, never silently ignored",
			conf:    "static_ipaddress {\n 192.0.2.1/24 dev eth0\n}\nmystery_block {\n}\n" + inst(" virtual_routes {\n  198.51.100.0/24 via 192.0.2.1\n }"),
			dropped: []string{"1: static_ipaddress", "4: mystery_block", "12: virtual_routes"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := translate(t, c.conf)
			y := plainYAML(res.YAML)
			rep := report(res)
			for _, w := range c.want {
				if !strings.Contains(y, w) {
					t.Errorf("YAML lacks %q:\n%s", w, res.YAML)
				}
			}
			for _, a := range c.absent {
				if strings.Contains(y, a) {
					t.Errorf("YAML has %q:\n%s", a, res.YAML)
				}
			}
			for _, d := range c.dropped {
				if !strings.Contains(rep, "t.conf:"+d+":") {
					t.Errorf("report lacks dropped %q:\n%s", d, rep)
				}
			}
			if len(c.dropped) == 0 && !res.Complete() {
				t.Errorf("unexpected dropped keywords:\n%s", rep)
			}
			for _, n := range c.notes {
				if !strings.Contains(rep, n) {
					t.Errorf("report lacks note %q:\n%s", n, rep)
				}
			}
			if _, err := config.Parse(res.YAML); err != nil {
				t.Errorf("not valid for vigil:\n%v\n%s", err, res.YAML)
			}
		})
	}
}

// TestTranslateNil: a nil file is an error, not a panic.
func TestTranslateNil(t *testing.T) {
	if _, err := kaimport.Translate(nil, kaimport.Options{}); err == nil {
		t.Fatal("Translate(nil) returned no error")
	}
}

// TestNodeName: --node-name wins over router_id; a router_id vigil cannot
// use is dropped, and the host name is left to vigil (keepalived's
// router_id defaults to the host name too).
func TestNodeName(t *testing.T) {
	f, err := kaconf.ParseBytes("t.conf", []byte("global_defs {\n router_id \"a b\"\n}\n"+inst("")), kaconf.Options{ConfigID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := kaimport.Translate(f, kaimport.Options{})
	if strings.Contains(string(res.YAML), "node:") || !strings.Contains(report(res), "t.conf:2: router_id:") {
		t.Errorf("router_id \"a b\": want no node.name and a dropped entry; got\n%s\n%s", res.YAML, report(res))
	}
	res, _ = kaimport.Translate(f, kaimport.Options{NodeName: "lb9"})
	if !strings.Contains(plainYAML(res.YAML), "name: lb9") {
		t.Errorf("--node-name lb9 not used:\n%s", res.YAML)
	}
}
