package config

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/lb"
	"vigil/lb/check"
)

// lbDoc wraps virtual server YAML (one flow mapping per element) in a
// config with a node name.
func lbDoc(vss ...string) string {
	return "node: {name: lb1}\nlb:\n  virtual_servers:\n" + "    - " + strings.Join(vss, "\n    - ") + "\n"
}

const httpVS = `{name: http, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: "198.51.100.11:8080"}]}`

// The design's example compiles to the pure spec with keepalived's
// defaults where the design is silent (scheduler wlc, weight 1, quorum 1).
func TestLBCompile(t *testing.T) {
	c := mustParse(t, `node: {name: lb1}
lb:
  virtual_servers:
    - name: http
      address: 192.0.2.100:80
      protocol: tcp
      scheduler: wrr
      forward: nat
      persistence: 300s
      persistence_granularity: 24
      quorum: 2
      hysteresis: 1
      sorry_server: 198.51.100.9:80
      real_servers:
        - address: 198.51.100.11:8080
          weight: 3
          upper_threshold: 100
          lower_threshold: 10
          check: { type: http, path: /healthz, status: 200, interval: 2s, timeout: 1s, rise: 2, fall: 3 }
        - address: 198.51.100.12:8080
          inhibit_on_failure: true
          alpha: true
          check:
            - { type: tcp }
            - { type: exec, command: [/bin/true], dynamic: true }
    - name: dns
      address: "[2001:db8::53]:53"
      protocol: udp
      scheduler: sh
      scheduler_flags: [sh-port, sh-fallback]
      one_packet: true
      forward: dr
      check: { type: dns, query_type: a, query_name: example.org. }
      real_servers: [{address: "2001:db8::11"}, {address: "2001:db8::12", check: {type: ping}}]
    - name: marked
      fwmark: 7
      family: ipv6
      forward: tun
      real_servers: [{address: "203.0.113.5", check: {type: tcp, port: 443}}]
`)
	if len(c.LB.VirtualServers) != 3 {
		t.Fatalf("got %d virtual servers", len(c.LB.VirtualServers))
	}
	http := c.LB.VirtualServers[0]
	wantSpec := lb.VirtualServer{
		Name: "http",
		Service: lb.Service{
			Key:       lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80},
			Scheduler: "wrr", Persistence: 300 * time.Second, PersistenceMask: 24,
		},
		Reals: []lb.RealServer{
			{Dest: lb.Dest{Addr: netip.MustParseAddr("198.51.100.11"), Port: 8080, Weight: 3, Upper: 100, Lower: 10}},
			{Dest: lb.Dest{Addr: netip.MustParseAddr("198.51.100.12"), Port: 8080, Weight: 1}, Inhibit: true},
		},
		Quorum: 2, Hysteresis: 1,
		Sorry: &lb.Dest{Addr: netip.MustParseAddr("198.51.100.9"), Port: 80, Weight: 1},
	}
	if !reflect.DeepEqual(http.Spec, wantSpec) {
		t.Errorf("http spec:\n got %+v\nwant %+v", http.Spec, wantSpec)
	}
	hc := http.Reals[0].Checks[0]
	if hc.Type != "http" || hc.Path != "/healthz" || !reflect.DeepEqual(hc.Status, []check.StatusRange{{Lo: 200, Hi: 200}}) ||
		hc.Interval != 2*time.Second || hc.Timeout != time.Second || hc.Rise != 2 || hc.Fall != 3 ||
		hc.Target != netip.MustParseAddrPort("198.51.100.11:8080") {
		t.Errorf("http check: %+v", hc)
	}
	if r := http.Reals[1]; !r.Alpha || len(r.Checks) != 2 || r.Checks[0].Type != "tcp" || !r.Checks[1].Dynamic ||
		r.Checks[1].Target.Port() != 0 || http.Reals[0].Alpha {
		t.Errorf("second real server: %+v", r)
	}

	dns := c.LB.VirtualServers[1]
	if k := dns.Spec.Service; k.Key.Family != lb.IPv6 || k.Key.Protocol != lb.UDP || !k.OnePacket ||
		k.SchedFlags != lb.SchedFlag1|lb.SchedFlag2 || k.Scheduler != "sh" {
		t.Errorf("dns service: %+v", k)
	}
	// A real server without a port takes the service's; the virtual
	// server's check is the template for real servers without their own.
	if r := dns.Spec.Reals[0]; r.Port != 53 || r.Forward != lb.DR {
		t.Errorf("dns real server: %+v", r)
	}
	if ch := dns.Reals[0].Checks; len(ch) != 1 || ch[0].QType != "A" || ch[0].QName != "example.org." ||
		ch[0].Target != netip.MustParseAddrPort("[2001:db8::11]:53") {
		t.Errorf("dns template check: %+v", ch)
	}
	if ch := dns.Reals[1].Checks; len(ch) != 1 || ch[0].Type != "ping" {
		t.Errorf("own check replaces the template: %+v", ch)
	}

	m := c.LB.VirtualServers[2]
	if k := m.Spec.Service.Key; k.FWMark != 7 || k.Family != lb.IPv6 || k.Protocol != 0 || k.Addr.IsValid() {
		t.Errorf("fwmark key: %+v", k)
	}
	// A tunnelled real server may be of another family (keepalived allows it).
	if r := m.Spec.Reals[0]; r.Forward != lb.Tunnel || r.Port != 0 || m.Reals[0].Checks[0].Target.Port() != 443 {
		t.Errorf("fwmark real server: %+v %+v", r, m.Reals[0])
	}
}

// Check defaults are lb/check's (keepalived's): see also TestCheckDefaults
// for every type.
func TestLBCheckDefaults(t *testing.T) {
	c := mustParse(t, lbDoc(`{name: web, address: "192.0.2.100:443", protocol: tcp, real_servers: [{address: "198.51.100.11", check: {type: https}}]}`))
	ch := c.LB.VirtualServers[0].Reals[0].Checks[0]
	want := Check{Type: "https", Target: netip.MustParseAddrPort("198.51.100.11:443"), Path: "/",
		Status: []check.StatusRange{{Lo: 200, Hi: 299}}, HTTPVersion: "1.1", Interval: check.DefaultInterval, Timeout: check.DefaultTimeout,
		RetryDelay: 3 * time.Second, Jitter: check.DefaultInterval, Rise: 1, Fall: 2}
	if !reflect.DeepEqual(ch, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", ch, want)
	}
	if vs := c.LB.VirtualServers[0].Spec; vs.Service.Scheduler != "wlc" || vs.Quorum != 1 || vs.Reals[0].Weight != 1 {
		t.Errorf("service defaults: %+v", vs)
	}
	c = mustParse(t, lbDoc(`{name: u, address: "192.0.2.100:53", protocol: udp, real_servers: [{address: "198.51.100.11", check: {type: udp}}]}`))
	if ch := c.LB.VirtualServers[0].Reals[0].Checks[0]; ch.Payload != "\x00" || ch.RequireReply {
		t.Errorf("udp defaults: %+v", ch)
	}
}

func TestLBInvalid(t *testing.T) {
	vs := "lb.virtual_servers[0]"
	rs := vs + ".real_servers[0]"
	cases := []struct{ name, y, path, frag string }{
		{"no protocol", `{name: a, address: "192.0.2.100:80", real_servers: [{address: 198.51.100.11}]}`,
			vs + ".protocol", "no silent UDP default"},
		{"bad protocol", `{name: a, address: "192.0.2.100:80", protocol: icmp, real_servers: [{address: 198.51.100.11}]}`,
			vs + ".protocol", `"icmp" is not a protocol`},
		{"no address", `{name: a, protocol: tcp, real_servers: [{address: 198.51.100.11}]}`,
			vs + ".address", "required: ADDRESS:PORT (or addresses: [...], or fwmark: N)"},
		{"address and fwmark", `{name: a, address: "192.0.2.100:80", fwmark: 1, protocol: tcp, real_servers: [{address: 198.51.100.11}]}`,
			vs, "give one of address, addresses or fwmark"},
		{"no port", `{name: a, address: "192.0.2.100", protocol: tcp, real_servers: [{address: 198.51.100.11}]}`,
			vs + ".address", "has no port"},
		{"port 0 not persistent", `{name: a, address: "192.0.2.100:0", protocol: tcp, real_servers: [{address: 198.51.100.11}]}`,
			vs + ".address", "only for persistent services"},
		{"fwmark protocol", `{name: a, fwmark: 3, protocol: tcp, real_servers: [{address: 198.51.100.11}]}`,
			vs + ".protocol", "not used by a fwmark service"},
		{"family without fwmark", `{name: a, address: "192.0.2.100:80", protocol: tcp, family: ipv6, real_servers: [{address: 198.51.100.11}]}`,
			vs + ".family", "only for fwmark"},
		{"scheduler", `{name: a, address: "192.0.2.100:80", protocol: tcp, scheduler: roundrobin, real_servers: [{address: 198.51.100.11}]}`,
			vs + ".scheduler", `"roundrobin" is not an IPVS scheduler`},
		{"sh flag on rr", `{name: a, address: "192.0.2.100:80", protocol: tcp, scheduler: rr, scheduler_flags: [sh-port], real_servers: [{address: 198.51.100.11}]}`,
			vs + ".scheduler_flags[0]", "is for the sh scheduler"},
		{"one packet tcp", `{name: a, address: "192.0.2.100:80", protocol: tcp, one_packet: true, real_servers: [{address: 198.51.100.11}]}`,
			vs + ".one_packet", "needs protocol udp"},
		{"granularity alone", `{name: a, address: "192.0.2.100:80", protocol: tcp, persistence_granularity: 24, real_servers: [{address: 198.51.100.11}]}`,
			vs + ".persistence_granularity", "needs persistence"},
		{"persistence fraction", `{name: a, address: "192.0.2.100:80", protocol: tcp, persistence: 1500ms, real_servers: [{address: 198.51.100.11}]}`,
			vs + ".persistence", "whole number of seconds"},
		{"hysteresis", `{name: a, address: "192.0.2.100:80", protocol: tcp, quorum: 2, hysteresis: 2, real_servers: [{address: 198.51.100.11}]}`,
			vs + ".hysteresis", "less than quorum"},
		{"no real servers", `{name: a, address: "192.0.2.100:80", protocol: tcp}`,
			vs + ".real_servers", "at least one real server"},
		{"family mismatch", `{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: "2001:db8::1"}]}`,
			rs + ".address", "only tunnelled real servers may differ"},
		{"dr port change", `{name: a, address: "192.0.2.100:80", protocol: tcp, forward: dr, real_servers: [{address: "198.51.100.11:8080"}]}`,
			rs + ".address", "direct routing cannot change the port"},
		{"weight", `{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: 198.51.100.11, weight: -1}]}`,
			rs + ".weight", "out of range 0..65535"},
		{"thresholds", `{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: 198.51.100.11, upper_threshold: 5, lower_threshold: 9}]}`,
			rs + ".lower_threshold", "above upper_threshold"},
		{"forward", `{name: a, address: "192.0.2.100:80", protocol: tcp, forward: snat, real_servers: [{address: 198.51.100.11}]}`,
			vs + ".forward", "not a forwarding method"},
		{"keepalived lb_kind", `{name: a, address: "192.0.2.100:80", protocol: tcp, lb_kind: DR, real_servers: [{address: 198.51.100.11}]}`,
			vs + ".lb_kind", `"forward" here`},
		{"keepalived TCP_CHECK", `{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: 198.51.100.11, TCP_CHECK: {}}]}`,
			rs + ".tcp_check", "use check: {type: tcp}"},
		{"check type", `{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: 198.51.100.11, check: {type: ldap}}]}`,
			rs + ".check.type", `"ldap" is not a check type`},
		{"check no type", `{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: 198.51.100.11, check: {path: /}}]}`,
			rs + ".check.type", "required"},
		{"check key of other type", `{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: 198.51.100.11, check: {type: tcp, path: /x}}]}`,
			rs + ".check.path", "not used by a tcp check"},
		{"check timeout", `{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: 198.51.100.11, check: {type: tcp, interval: 1s, timeout: 2s}}]}`,
			rs + ".check.timeout", "longer than the interval"},
		{"check status", `{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: 198.51.100.11, check: {type: http, status: "300-200"}}]}`,
			rs + ".check.status", "not an HTTP status or range"},
		{"check digest", `{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: 198.51.100.11, check: {type: http, digest: "md5:abc"}}]}`,
			rs + ".check.digest", "32 hex digits of md5"},
		{"check exec no command", `{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: 198.51.100.11, check: {type: exec}}]}`,
			rs + ".check.command", "required for an exec check"},
		{"check file relative", `{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: 198.51.100.11, check: {type: file, file: up}}]}`,
			rs + ".check.file", "absolute path"},
		{"check keepalived retry", `{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: 198.51.100.11, check: {type: tcp, retry: 3}}]}`,
			rs + ".check.retry", "keepalived retry N = fall N+1"},
		{"check tcp without port", `{name: a, fwmark: 1, real_servers: [{address: 198.51.100.11, check: {type: tcp}}]}`,
			rs + ".check.port", "has no port"},
		{"tunnel without tun", `{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: 198.51.100.11, tunnel: {type: gre}}]}`,
			rs + ".tunnel", "needs forward: tun"},
		{"gue without port", `{name: a, address: "192.0.2.100:80", protocol: tcp, forward: tun, tunnel: {type: gue}, real_servers: [{address: 198.51.100.11}]}`,
			vs + ".tunnel.port", "required for gue"},
		{"port on gre", `{name: a, address: "192.0.2.100:80", protocol: tcp, forward: tun, real_servers: [{address: 198.51.100.11, tunnel: {type: gre, port: 5}}]}`,
			rs + ".tunnel.port", "for gue tunnels only"},
		{"remcsum on gre", `{name: a, address: "192.0.2.100:80", protocol: tcp, forward: tun, real_servers: [{address: 198.51.100.11, tunnel: {type: gre, checksum: remcsum}}]}`,
			rs + ".tunnel.checksum", "gue tunnels only"},
		{"checksum on ipip", `{name: a, address: "192.0.2.100:80", protocol: tcp, forward: tun, real_servers: [{address: 198.51.100.11, tunnel: {checksum: csum}}]}`,
			rs + ".tunnel.checksum", "ipip has none"},
		{"tunnel type", `{name: a, address: "192.0.2.100:80", protocol: tcp, forward: tun, real_servers: [{address: 198.51.100.11, tunnel: {type: vxlan}}]}`,
			rs + ".tunnel.type", "is not one of ipip, gue, gre"},
		{"persistence engine alone", `{name: a, address: "192.0.2.100:5060", protocol: udp, persistence_engine: sip, real_servers: [{address: 198.51.100.11}]}`,
			vs + ".persistence_engine", "needs persistence"},
		{"persistence engine name", `{name: a, address: "192.0.2.100:5060", protocol: udp, persistence: 60s, persistence_engine: h323, real_servers: [{address: 198.51.100.11}]}`,
			vs + ".persistence_engine", "the kernel has sip"},
		{"ha_suspend fwmark", `{name: a, fwmark: 3, ha_suspend: true, real_servers: [{address: 198.51.100.11}]}`,
			vs + ".ha_suspend", "needs an address to watch"},
		{"template check unknown key once", `{name: a, address: "192.0.2.100:80", protocol: tcp, check: {type: tcp, bogus: 1}, real_servers: [{address: 198.51.100.11}, {address: 198.51.100.12}]}`,
			vs + ".check.bogus", "unknown key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ve := mustFail(t, lbDoc(tc.y))
			wantErr(t, ve, tc.path, tc.frag)
			if len(ve.Errors) != 1 {
				t.Errorf("want exactly one error, got:\n%v", ve)
			}
		})
	}
}

// Names and services are unique; every problem is reported at once.
func TestLBCrossChecks(t *testing.T) {
	ve := mustFail(t, lbDoc(httpVS, httpVS,
		`{name: other, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: 198.51.100.11}, {address: "198.51.100.11:80"}]}`))
	wantErr(t, ve, "lb.virtual_servers[1].name", `"http" is already the name of lb.virtual_servers[0]`)
	wantErr(t, ve, "lb.virtual_servers[2].real_servers[1].address", "198.51.100.11:80 is already a real server at lb.virtual_servers[2].real_servers[0]")
	// In a long list too (found by a map there), naming the first one.
	var rs []string
	for i := range 40 {
		rs = append(rs, fmt.Sprintf("{address: \"198.51.100.%d:80\"}", 1+i))
	}
	rs = append(rs, `{address: "198.51.100.3:80"}`, `{address: "198.51.100.40:80"}`)
	ve = mustFail(t, lbDoc(`{name: long, address: "192.0.2.100:80", protocol: tcp, real_servers: [`+strings.Join(rs, ", ")+`]}`))
	wantErr(t, ve, "lb.virtual_servers[0].real_servers[40].address", "198.51.100.3:80 is already a real server at lb.virtual_servers[0].real_servers[2]")
	wantErr(t, ve, "lb.virtual_servers[0].real_servers[41].address", "198.51.100.40:80 is already a real server at lb.virtual_servers[0].real_servers[39]")
	// The same service under two names.
	ve = mustFail(t, lbDoc(httpVS, strings.Replace(httpVS, "name: http", "name: http2", 1)))
	wantErr(t, ve, "lb.virtual_servers[1]", "tcp 192.0.2.100:80 is already configured at lb.virtual_servers[0]")
}

// An instance can track a virtual server's quorum (the seed's rule: the
// master whose service fails gives up the VIP); weight 0, the default, is
// FAULT, and an unknown name is an error naming the list to look in.
func TestTrackVirtualServer(t *testing.T) {
	doc := lbDoc(httpVS) + one("track: {virtual_servers: [http, {name: http2, weight: -20}]}")
	ve := mustFail(t, doc)
	wantErr(t, ve, "vrrp.instances[0].track.virtual_servers[1]", `"http2" is not a virtual server: name one of lb.virtual_servers`)
	c := mustParse(t, lbDoc(httpVS, strings.Replace(strings.Replace(httpVS, "name: http", "name: http2", 1), ":80", ":81", 1))+
		one("track: {virtual_servers: [http, {name: http2, weight: -20}]}"))
	got := c.VRRP.Instances[0].Track.VirtualServers
	want := []TrackRef{{Name: "http"}, {Name: "http2", Weight: -20, WeightSet: true}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("track refs %+v, want %+v", got, want)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}
	// Tracking a virtual server with ha_suspend would never recover: a
	// warning says so.
	c = mustParse(t, lbDoc(strings.Replace(httpVS, "protocol: tcp", "protocol: tcp, ha_suspend: true", 1))+one("track: {virtual_servers: [http]}"))
	if w := strings.Join(c.Warnings, "\n"); !strings.Contains(w, `vrrp.instances[0].track.virtual_servers: "http" has ha_suspend`) {
		t.Errorf("warnings: %q", c.Warnings)
	}
}

// The connection-sync daemon follows a VRRP instance; its sync id defaults
// to the instance's VRID so two clusters on one LAN do not mix.
func TestLBSyncDaemon(t *testing.T) {
	c := mustParse(t, strings.Replace(lbDoc(httpVS), "lb:\n", "lb:\n  sync_daemon: {interface: eth0, instance: i0}\n", 1)+one())
	sd := c.LB.SyncDaemon
	if sd == nil || sd.Interface != "eth0" || sd.Instance != "i0" || sd.SyncID != 51 {
		t.Fatalf("sync daemon %+v", sd)
	}
	c = mustParse(t, strings.Replace(lbDoc(httpVS), "lb:\n", "lb:\n  sync_daemon: {interface: eth0, instance: i0, sync_id: 7}\n", 1)+one())
	if c.LB.SyncDaemon.SyncID != 7 {
		t.Fatalf("sync id %d, want 7", c.LB.SyncDaemon.SyncID)
	}
	ve := mustFail(t, strings.Replace(lbDoc(httpVS), "lb:\n", "lb:\n  sync_daemon: {interface: eth0, instance: nope, sync_id: 300}\n", 1)+one())
	wantErr(t, ve, "lb.sync_daemon.instance", `"nope" is not a VRRP instance`)
	wantErr(t, ve, "lb.sync_daemon.sync_id", "out of range 0..255")

	// A tunnelled real server of the other family is fine alone, refused
	// with a sync daemon: the kernel would refuse it (EINVAL).
	mixed := `{name: mixed, address: "192.0.2.100:81", protocol: tcp, forward: tun, real_servers: [{address: "[2001:db8::24]:8090"}]}`
	mustParse(t, lbDoc(httpVS, mixed)+one())
	ve = mustFail(t, strings.Replace(lbDoc(httpVS, mixed), "lb:\n", "lb:\n  sync_daemon: {interface: eth0, instance: i0}\n", 1)+one())
	wantErr(t, ve, "lb.sync_daemon", `virtual server "mixed": its real server [2001:db8::24]:8090 is not of the service's address family`)
}

// lb.on_stop, lb.foreign_services and lb.timeouts: keepalived's -I,
// lvs_flush / lvs_flush_on_stop and lvs_timeouts, with their defaults.
func TestLBTableOwnership(t *testing.T) {
	with := func(extra string) string {
		return strings.Replace(lbDoc(httpVS), "lb:\n", "lb:\n"+extra, 1) + one()
	}
	c := mustParse(t, with(""))
	if c.LB.OnStop != OnStopRemove || c.LB.ForeignServices != ForeignKeep || c.LB.Timeouts != (Timeouts{}) {
		t.Fatalf("defaults: on_stop %q, foreign_services %q, timeouts %+v", c.LB.OnStop, c.LB.ForeignServices, c.LB.Timeouts)
	}
	if c.LB.RSInitNotifies {
		t.Fatal("rs_init_notifies on by default")
	}
	c = mustParse(t, with("  on_stop: keep\n  foreign_services: remove\n  timeouts: {tcp: 15m, tcp_fin: 120s, udp: 300s}\n  rs_init_notifies: true\n"))
	if !c.LB.RSInitNotifies {
		t.Fatal("rs_init_notifies: true not taken")
	}
	if c.LB.OnStop != OnStopKeep || c.LB.ForeignServices != ForeignRemove ||
		c.LB.Timeouts != (Timeouts{TCP: 15 * time.Minute, TCPFin: 2 * time.Minute, UDP: 5 * time.Minute}) {
		t.Fatalf("set: on_stop %q, foreign_services %q, timeouts %+v", c.LB.OnStop, c.LB.ForeignServices, c.LB.Timeouts)
	}
	ve := mustFail(t, with("  on_stop: flush\n  foreign_services: delete\n  timeouts: {tcp: 1500ms, udp: 5, tcpfin: 1s}\n  lvs_flush: true\n  rs_init_notifies: sometimes\n"))
	wantErr(t, ve, "lb.rs_init_notifies", "")
	wantErr(t, ve, "lb.on_stop", "is not one of remove, keep")
	wantErr(t, ve, "lb.foreign_services", "is not one of keep, remove")
	wantErr(t, ve, "lb.timeouts.tcp", "whole seconds")
	wantErr(t, ve, "lb.timeouts.udp", "has no unit")
	wantErr(t, ve, "lb.timeouts.tcpfin", `the key is "tcp_fin"`)
	wantErr(t, ve, "lb.lvs_flush", "use foreign_services: remove")
}

// Several pages per http check (keepalived's url {} blocks), a body regex
// and its inversion, and the smtp check with its HELO name and port 25 for
// a portless real server.
func TestLBCheckPagesAndSMTP(t *testing.T) {
	c := mustParse(t, lbDoc(`{name: web, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: "198.51.100.11:8080", check: {type: http,
      urls: [{path: /healthz, status: 204}, {path: /, regex: "(?i)welcome", digest: "md5:0123456789abcdef0123456789abcdef", host: www.example.com}, {path: /maint, regex: maintenance, regex_no_match: true}]}}]}`,
		`{name: one, address: "192.0.2.100:81", protocol: tcp, real_servers: [{address: "198.51.100.11:8080", check: {type: https, path: /x, regex: "ok$"}}]}`,
		`{name: mail, fwmark: 25, persistence: 60s, real_servers: [{address: 198.51.100.12, check: {type: smtp, helo_name: lb1.example.org}}]}`))
	ch := c.LB.VirtualServers[0].Reals[0].Checks[0]
	want := []URL{
		{Path: "/healthz", Status: []check.StatusRange{{Lo: 204, Hi: 204}}},
		{Path: "/", Status: []check.StatusRange{{Lo: 200, Hi: 299}}, Digest: "0123456789abcdef0123456789abcdef", Regex: "(?i)welcome", Host: "www.example.com"},
		{Path: "/maint", Status: []check.StatusRange{{Lo: 200, Hi: 299}}, Regex: "maintenance", RegexNoMatch: true},
	}
	if !reflect.DeepEqual(ch.URLs, want) || ch.Path != "" || ch.Status != nil {
		t.Errorf("urls: %+v (path %q status %v)", ch.URLs, ch.Path, ch.Status)
	}
	if one := c.LB.VirtualServers[1].Reals[0].Checks[0]; one.Path != "/x" || one.Regex != "ok$" || one.RegexNoMatch || one.URLs != nil {
		t.Errorf("single page with regex: %+v", one)
	}
	if m := c.LB.VirtualServers[2].Reals[0].Checks[0]; m.Type != "smtp" || m.HeloName != "lb1.example.org" || m.Target != netip.MustParseAddrPort("198.51.100.12:25") {
		t.Errorf("smtp: %+v", m)
	}

	vs := "lb.virtual_servers[0].real_servers[0].check"
	bad := func(chk string) string {
		return lbDoc(`{name: web, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: "198.51.100.11:8080", check: ` + chk + `}]}`)
	}
	ve := mustFail(t, bad(`{type: http, path: /a, urls: [{path: /b, regex: "a(", status_code: 200}, {regex_no_match: true}]}`))
	wantErr(t, ve, vs+".path", "with urls, set it in each url")
	wantErr(t, ve, vs+".urls[0].regex", "is not a regular expression")
	wantErr(t, ve, vs+".urls[0].status_code", `the key is "status"`)
	wantErr(t, ve, vs+".urls[1].regex_no_match", "needs regex")
	ve = mustFail(t, bad(`{type: tcp, regex: x, urls: [{path: /}]}`))
	wantErr(t, ve, vs+".regex", "is not used by a tcp check")
	wantErr(t, ve, vs+".urls", "is not used by a tcp check")
	ve = mustFail(t, bad(`{type: http, urls: []}`))
	wantErr(t, ve, vs+".urls", "is empty")
	ve = mustFail(t, bad(`{type: smtp, helo_name: "two words"}`))
	wantErr(t, ve, vs+".helo_name", "is not a HELO name")
	ve = mustFail(t, bad(`{type: http, helo_name: a}`))
	wantErr(t, ve, vs+".helo_name", "is not used by a http check")
}

// sorry_server_inhibit (keepalived): only with a sorry server.
// Tunnel encapsulations (keepalived "lvs_method TUN type gue port N
// csum"): a virtual server's applies to its tunnelled real servers and
// sorry server unless one gives its own; a tunnelled real server may be of
// the other family. persistence_engine sets the service's PE.
func TestLBTunnelsAndPE(t *testing.T) {
	c := mustParse(t, lbDoc(`{name: a, address: "192.0.2.100:5060", protocol: udp, persistence: 60s, persistence_engine: sip,
		forward: tun, tunnel: {type: gue, port: 6080, checksum: remcsum}, sorry_server: "198.51.100.9",
		real_servers: [{address: 198.51.100.11}, {address: "2001:db8::12", tunnel: {type: gre, checksum: csum}},
		  {address: 198.51.100.13, tunnel: {}}, {address: 198.51.100.14, forward: nat}]}`))
	vs := c.LB.VirtualServers[0].Spec
	if vs.Service.PE != "sip" {
		t.Errorf("PE %q, want sip", vs.Service.PE)
	}
	want := []lb.Dest{
		{Addr: netip.MustParseAddr("198.51.100.11"), Port: 5060, Forward: lb.Tunnel, Weight: 1, TunType: lb.GUE, TunPort: 6080, TunCsum: lb.RemCsum},
		{Addr: netip.MustParseAddr("2001:db8::12"), Port: 5060, Forward: lb.Tunnel, Weight: 1, TunType: lb.GRE, TunCsum: lb.Csum},
		{Addr: netip.MustParseAddr("198.51.100.13"), Port: 5060, Forward: lb.Tunnel, Weight: 1}, // tunnel: {} is ipip
		{Addr: netip.MustParseAddr("198.51.100.14"), Port: 5060, Forward: lb.NAT, Weight: 1},
	}
	for i, w := range want {
		if got := vs.Reals[i].Dest; got != w {
			t.Errorf("real server %d: %+v, want %+v", i, got, w)
		}
	}
	if s := *vs.Sorry; s.TunType != lb.GUE || s.TunPort != 6080 || s.Forward != lb.Tunnel {
		t.Errorf("sorry server %+v, want the virtual server's gue tunnel", s)
	}
}

func TestLBHASuspend(t *testing.T) {
	c := mustParse(t, lbDoc(`{name: a, address: "192.0.2.100:80", protocol: tcp, ha_suspend: true, real_servers: [{address: 198.51.100.11}]}`,
		`{name: b, address: "192.0.2.100:81", protocol: tcp, real_servers: [{address: 198.51.100.11}]}`))
	if !c.LB.VirtualServers[0].HASuspend || c.LB.VirtualServers[1].HASuspend {
		t.Fatalf("ha_suspend: %v, %v", c.LB.VirtualServers[0].HASuspend, c.LB.VirtualServers[1].HASuspend)
	}
}

func TestLBSorryInhibit(t *testing.T) {
	c := mustParse(t, lbDoc(`{name: a, address: "192.0.2.100:80", protocol: tcp, sorry_server: "198.51.100.9:80", sorry_server_inhibit: true, real_servers: [{address: 198.51.100.11}]}`))
	if vs := c.LB.VirtualServers[0].Spec; !vs.SorryInhibit || vs.Sorry == nil {
		t.Fatalf("sorry inhibit: %+v", vs)
	}
	ve := mustFail(t, lbDoc(`{name: a, address: "192.0.2.100:80", protocol: tcp, sorry_server_inhibit: true, real_servers: [{address: 198.51.100.11}]}`))
	wantErr(t, ve, "lb.virtual_servers[0].sorry_server_inhibit", "needs sorry_server")
}

// notify: {quorum_up, quorum_down, user, timeout} on a virtual server and
// notify_up / notify_down on a real server (keepalived's names).
func TestLBNotify(t *testing.T) {
	c := mustParse(t, lbDoc(`{name: a, address: "192.0.2.100:80", protocol: tcp, notify: {quorum_up: /bin/true, quorum_down: [/bin/echo, lost], timeout: 3s},
      real_servers: [{address: 198.51.100.11, notify_up: /bin/true, notify_down: [/bin/echo, rs, down]}]}`))
	vs := c.LB.VirtualServers[0]
	if !slices.Equal(vs.Notify.QuorumUp, []string{"/bin/true"}) || !slices.Equal(vs.Notify.QuorumDown, []string{"/bin/echo", "lost"}) || vs.Notify.Timeout != 3*time.Second {
		t.Errorf("virtual server notify: %+v", vs.Notify)
	}
	if rs := vs.Reals[0]; !slices.Equal(rs.NotifyUp, []string{"/bin/true"}) || !slices.Equal(rs.NotifyDown, []string{"/bin/echo", "rs", "down"}) {
		t.Errorf("real server notify: %+v", rs)
	}
	if d := mustParse(t, lbDoc(httpVS)).LB.VirtualServers[0].Notify; d.Timeout != DefaultNotifyTimeout || d.QuorumUp != nil {
		t.Errorf("default notify: %+v", d)
	}
	ve := mustFail(t, lbDoc(`{name: a, address: "192.0.2.100:80", protocol: tcp, quorum_up: /bin/true, notify: {up: /bin/true, quorum_down: "/bin/echo lost"},
      real_servers: [{address: 198.51.100.11, notify_down: /nonexistent/script}]}`))
	vp := "lb.virtual_servers[0]"
	wantErr(t, ve, vp+".quorum_up", "use notify: {quorum_up: COMMAND}")
	wantErr(t, ve, vp+".notify.up", `the key is "quorum_up"`)
	wantErr(t, ve, vp+".notify.quorum_down", "has white space")
	wantErr(t, ve, vp+".real_servers[0].notify_down", "does not exist")
}

// addresses: keepalived's virtual_server_group: several services, one set
// of real servers, checks and quorum; IPv4 ranges of the last byte.
func TestLBAddressesGroup(t *testing.T) {
	c := mustParse(t, lbDoc(`{name: g, addresses: ["192.0.2.100:80", "192.0.2.110-112:80"], protocol: tcp, real_servers: [{address: 198.51.100.11}]}`,
		`{name: h, address: "192.0.2.100:81", protocol: udp, real_servers: [{address: 198.51.100.11}]}`))
	g := c.LB.VirtualServers[0].Spec
	var keys []string
	for _, k := range g.Keys() {
		keys = append(keys, k.String())
	}
	if want := "[tcp 192.0.2.100:80 tcp 192.0.2.110:80 tcp 192.0.2.111:80 tcp 192.0.2.112:80]"; fmt.Sprint(keys) != want {
		t.Errorf("group keys %v, want %s", keys, want)
	}
	if g.Reals[0].Port != 80 {
		t.Errorf("real server port %d, want the group's 80", g.Reals[0].Port)
	}
	vs := "lb.virtual_servers[0]"
	for _, tc := range []struct{ y, path, frag string }{
		{`{name: g, addresses: ["192.0.2.100:80", "192.0.2.101:81"], protocol: tcp, real_servers: [{address: 198.51.100.11}]}`, vs + ".addresses[1]", "must have the family and port of 192.0.2.100:80"},
		{`{name: g, addresses: ["192.0.2.100:80", "[2001:db8::1]:80"], protocol: tcp, real_servers: [{address: 198.51.100.11}]}`, vs + ".addresses[1]", "must have the family and port"},
		{`{name: g, addresses: ["192.0.2.100-99:80"], protocol: tcp, real_servers: [{address: 198.51.100.11}]}`, vs + ".addresses[0]", "range ends at 99"},
		{`{name: g, addresses: ["192.0.2.100:80", "192.0.2.99-101:80"], protocol: tcp, real_servers: [{address: 198.51.100.11}]}`, vs + ".addresses[1]", "lists 192.0.2.100:80 again"},
		{`{name: g, addresses: [], protocol: tcp, real_servers: [{address: 198.51.100.11}]}`, vs + ".addresses", "is empty"},
		{`{name: g, addresses: ["192.0.2.100:80"], address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: 198.51.100.11}]}`, vs, "give one of address, addresses or fwmark"},
		{`{name: g, addresses: ["192.0.2.100:80"], real_servers: [{address: 198.51.100.11}]}`, vs + ".protocol", "required"},
	} {
		wantErr(t, mustFail(t, lbDoc(tc.y)), tc.path, tc.frag)
	}
	// A group member may not be another virtual server's service.
	ve := mustFail(t, lbDoc(`{name: a, address: "192.0.2.101:80", protocol: tcp, real_servers: [{address: 198.51.100.11}]}`,
		`{name: g, addresses: ["192.0.2.100-101:80"], protocol: tcp, real_servers: [{address: 198.51.100.11}]}`))
	wantErr(t, ve, "lb.virtual_servers[1]", "tcp 192.0.2.101:80 is already configured at lb.virtual_servers[0]")
}

// http_protocol (keepalived's): YAML reads 1.0 and 1.1 as numbers; 1.0C
// is 1.0 with Connection: close; only http and https checks take it.
func TestLBCheckHTTPProtocol(t *testing.T) {
	check := func(c string) string {
		return lbDoc(`{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: "198.51.100.11:8080", check: ` + c + `}]}`)
	}
	for in, want := range map[string]string{"1.0": "1.0", `"1.0"`: "1.0", "1.0C": "1.0C", "1.1": "1.1", "": "1.1"} {
		c := `{type: http}`
		if in != "" {
			c = `{type: http, http_protocol: ` + in + `}`
		}
		got := mustParse(t, check(c)).LB.VirtualServers[0].Reals[0].Checks[0].HTTPVersion
		if got != want {
			t.Errorf("http_protocol %s: %q, want %q", in, got, want)
		}
	}
	rs := "lb.virtual_servers[0].real_servers[0].check.http_protocol"
	wantErr(t, mustFail(t, check(`{type: http, http_protocol: 2}`)), rs, "is not an HTTP protocol")
	wantErr(t, mustFail(t, check(`{type: tcp, http_protocol: 1.0}`)), rs, "is not used by a tcp check")
}
