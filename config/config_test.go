package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"vigil/vrrp"
)

// TestMain keeps VIGIL_* variables of the calling environment out of the
// tests; the env tests set their own with t.Setenv.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "VIGIL_") {
			os.Unsetenv(k)
		}
	}
	os.Exit(m.Run())
}

// inst renders a config with one instance per argument. Each argument is a
// list of "key: value" lines that override (or, as "-key", remove) the base
// instance's keys.
func inst(instances ...[]string) string {
	var b strings.Builder
	b.WriteString("vrrp:\n  instances:\n")
	for i, kvs := range instances {
		base := [][2]string{
			{"name", "i" + string(rune('0'+i))},
			{"interface", "eth0"},
			{"vrid", "51"},
			{"vips", "[192.0.2.100/24]"},
		}
		if i > 0 {
			base[2][1] = string(rune('0'+i)) + "0"
			base[3][1] = "[198.51.100." + string(rune('0'+i)) + "/24]"
		}
		for _, kv := range kvs {
			if k, ok := strings.CutPrefix(kv, "-"); ok {
				for j := range base {
					if base[j][0] == k {
						base = append(base[:j], base[j+1:]...)
						break
					}
				}
				continue
			}
			k, v, _ := strings.Cut(kv, ":")
			v = strings.TrimSpace(v)
			found := false
			for j := range base {
				if base[j][0] == k {
					base[j][1], found = v, true
				}
			}
			if !found {
				base = append(base, [2]string{k, v})
			}
		}
		for j, kv := range base {
			if j == 0 {
				b.WriteString("    - ")
			} else {
				b.WriteString("      ")
			}
			b.WriteString(kv[0] + ": " + kv[1] + "\n")
		}
	}
	return b.String()
}

func one(kvs ...string) string { return inst(kvs) }

func mustParse(t *testing.T, y string) *Config {
	t.Helper()
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror:\n%v", y, err)
	}
	return c
}

func mustFail(t *testing.T, y string) *ValidationError {
	t.Helper()
	c, err := Parse([]byte(y))
	if err == nil {
		t.Fatalf("Parse accepted:\n%s\nconfig: %+v", y, c)
	}
	if c != nil {
		t.Errorf("Parse returned a config with an error")
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error is %T, not *ValidationError: %v", err, err)
	}
	return ve
}

// hasErr reports whether ve holds an error at exactly path whose text
// contains frag.
func hasErr(ve *ValidationError, path, frag string) bool {
	for _, fe := range ve.Errors {
		if fe.Path == path && strings.Contains(fe.Error(), frag) {
			return true
		}
	}
	return false
}

func wantErr(t *testing.T, ve *ValidationError, path, frag string) {
	t.Helper()
	if !hasErr(ve, path, frag) {
		t.Errorf("no error at %q containing %q; got:\n%v", path, frag, ve)
	}
}

// defGARP is keepalived's GARP defaults.
var defGARP = GARP{
	Repeat: 5, Delay: 5 * time.Second, RefreshRepeat: 1,
	LowerPrioRepeat: 5, LowerPrioDelay: 5 * time.Second,
}

func TestMinimalDefaults(t *testing.T) {
	y := one()
	c := mustParse(t, y)
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte(y))
	want := &Config{
		Node: Node{Name: host},
		VRRP: VRRP{
			GARP: defGARP,
			Instances: []Instance{{
				Name:           "i0",
				Interface:      "eth0",
				VRID:           51,
				Priority:       100,
				Version:        3,
				AdvertInterval: time.Second,
				Preempt:        true,
				Accept:         true,
				Checksum:       vrrp.ChecksumPseudoHeader,
				AuthType:       vrrp.AuthNone,
				VIPs:           []VIP{{Prefix: netip.MustParsePrefix("192.0.2.100/24"), Dev: "eth0"}},
				GARP:           defGARP,
				Notify:         Notify{Timeout: 10 * time.Second},
			}},
		},
		LB:        LB{OnStop: OnStopRemove, ForeignServices: ForeignKeep},
		Telemetry: Telemetry{Listen: "127.0.0.1:9730", LogLevel: "info", LogFormat: "text"},
		Fleet:     Fleet{Config: FleetIgnore, StateDir: DefaultStateDir},
		Hash:      hex.EncodeToString(sum[:]),
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if c.VRRP.Instances[0].Family() != 4 {
		t.Errorf("Family() = %d", c.VRRP.Instances[0].Family())
	}
}

func TestEmptyDocument(t *testing.T) {
	c := mustParse(t, "")
	if len(c.VRRP.Instances) != 0 || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "no VRRP instances") {
		t.Errorf("got %+v", c)
	}
	// Sections left empty (every line commented out) are null in YAML.
	mustParse(t, "node:\nvrrp:\ntelemetry:\n")
}

func TestAllKeys(t *testing.T) {
	c := mustParse(t, `
node: {name: lb-1.example}
vrrp:
  garp: {repeat: 2, delay: 0s, interval: 10ms}
  instances:
    - name: web
      interface: eth0
      vrid: 51
      priority: 150
      version: 3
      advert_interval: 250ms
      preempt: true
      preempt_delay: 30s
      accept: false
      checksum: message_only
      lower_prio_no_advert: true
      unicast: {source: 192.0.2.11, peers: [192.0.2.12, 192.0.2.13], min_ttl: 64}
      vips: [192.0.2.100, {address: 192.0.2.101/24, dev: eth1, label: "eth1:web"}, {address: 192.0.2.102, label: eth0}]
      garp: {delay: 2s}
telemetry: {listen: ":9100", log_level: debug, log_format: json}
`)
	in := c.VRRP.Instances[0]
	want := Instance{
		Name: "web", Interface: "eth0", VRID: 51, Priority: 150, Version: 3,
		AdvertInterval: 250 * time.Millisecond, PreemptDelay: 30 * time.Second,
		Preempt: true, Accept: false, LowerPrioNoAdvert: true,
		Checksum: vrrp.ChecksumMessageOnly,
		Unicast: &Unicast{
			Source: netip.MustParseAddr("192.0.2.11"),
			Peers:  []netip.Addr{netip.MustParseAddr("192.0.2.12"), netip.MustParseAddr("192.0.2.13")},
			MinTTL: 64,
		},
		VIPs: []VIP{
			{Prefix: netip.MustParsePrefix("192.0.2.100/32"), Dev: "eth0"},
			{Prefix: netip.MustParsePrefix("192.0.2.101/24"), Dev: "eth1", Label: "eth1:web"},
			{Prefix: netip.MustParsePrefix("192.0.2.102/32"), Dev: "eth0", Label: "eth0"},
		},
		// delay from the instance, the rest from vrrp.garp; the lower
		// priority burst follows the instance's own repeat and delay
		GARP: GARP{Repeat: 2, Delay: 2 * time.Second, Interval: 10 * time.Millisecond,
			RefreshRepeat: 1, LowerPrioRepeat: 2, LowerPrioDelay: 2 * time.Second},
		Notify: Notify{Timeout: 10 * time.Second},
	}
	if !reflect.DeepEqual(in, want) {
		t.Errorf("got  %+v\nwant %+v", in, want)
	}
	if c.Node.Name != "lb-1.example" || c.Telemetry != (Telemetry{Listen: ":9100", LogLevel: "debug", LogFormat: "json"}) {
		t.Errorf("node/telemetry: %+v %+v", c.Node, c.Telemetry)
	}
	if c.VRRP.GARP != (GARP{Repeat: 2, Interval: 10 * time.Millisecond, RefreshRepeat: 1, LowerPrioRepeat: 2}) {
		t.Errorf("vrrp.garp: %+v", c.VRRP.GARP)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}
	if mustParse(t, "telemetry: {listen: \"\"}").Telemetry.Listen != "" {
		t.Errorf(`listen: "" does not disable`)
	}
}

func TestInvalid(t *testing.T) {
	const p = "vrrp.instances[0]."
	cases := []struct {
		name string
		y    string
		path string
		frag string
	}{
		// name
		{"name missing", one("-name"), p + "name", "required"},
		{"name chars", one("name: web server"), p + "name", `"web server" is not a valid instance name`},
		{"name too long", one("name: " + strings.Repeat("a", 65)), p + "name", "1..64"},
		{"name not a string", one("name: 12"), p + "name", `12 is not a string; quote it ("12")`},
		// interface
		{"interface missing", one("-interface"), p + "interface", "required"},
		{"interface long", one("interface: abcdefghijklmnop"), p + "interface", "longer than 15 bytes"},
		{"interface slash", one("interface: eth/0"), p + "interface", "'/'"},
		{"interface space", one(`interface: "eth 0"`), p + "interface", "white space"},
		{"interface dot", one(`interface: "."`), p + "interface", "not a valid interface name"},
		{"interface dotdot", one(`interface: ".."`), p + "interface", "not a valid interface name"},
		{"interface colon", one(`interface: "eth0:1"`), p + "interface", "address label"},
		{"interface empty", one(`interface: ""`), p + "interface", "empty"},
		// vrid
		{"vrid missing", one("-vrid"), p + "vrid", "required"},
		{"vrid 0", one("vrid: 0"), p + "vrid", "0 is out of range 1..255"},
		{"vrid 300", one("vrid: 300"), p + "vrid", "300 is out of range 1..255"},
		{"vrid word", one("vrid: fifty"), p + "vrid", `"fifty" is not an integer`},
		{"vrid float", one("vrid: 5.5"), p + "vrid", "5.5 is not an integer"},
		{"vrid list", one("vrid: [1]"), p + "vrid", "must be an integer, not a list"},
		{"vrid null", one("vrid:"), p + "vrid", "has no value"},
		// priority
		{"priority 0", one("priority: 0"), p + "priority", "reserved for a master that resigns"},
		{"priority 256", one("priority: 256"), p + "priority", "256 is out of range 1..255"},
		{"priority negative", one("priority: -1"), p + "priority", "-1 is out of range 1..255"},
		// version
		{"version 4", one("version: 4"), p + "version", "4 is not a VRRP version"},
		{"ipv6 v2", one("version: 2", "vips: [2001:db8::1]"), p + "version", "IPv6 instances need version 3"},
		// advert_interval
		{"interval no unit", one("advert_interval: 1"), p + "advert_interval", "1 has no unit"},
		{"interval string no unit", one(`advert_interval: "2"`), p + "advert_interval", `"2" has no unit`},
		{"interval garbage", one("advert_interval: soon"), p + "advert_interval", `"soon" is not a duration`},
		{"v3 interval 5ms", one("advert_interval: 5ms"), p + "advert_interval", "multiple of 10ms in 10ms..40.95s"},
		{"v3 interval 15ms", one("advert_interval: 15ms"), p + "advert_interval", "multiple of 10ms"},
		{"v3 interval 41s", one("advert_interval: 41s"), p + "advert_interval", `"41s" is not a multiple of 10ms in 10ms..40.95s`},
		{"v3 interval 0", one("advert_interval: 0s"), p + "advert_interval", "10ms..40.95s"},
		{"v2 interval 1500ms", one("version: 2", "advert_interval: 1500ms"), p + "advert_interval", "whole number of seconds in 1s..255s"},
		{"v2 interval 256s", one("version: 2", "advert_interval: 256s"), p + "advert_interval", "1s..255s"},
		// preempt
		{"preempt word", one("preempt: maybe"), p + "preempt", `"maybe" is not true or false`},
		{"preempt_delay range", one("preempt_delay: 1001s"), p + "preempt_delay", `"1001s" is out of range 0s..1000s`},
		{"preempt_delay negative", one("preempt_delay: -1s"), p + "preempt_delay", "out of range"},
		{"preempt_delay without preempt", one("preempt: false", "preempt_delay: 5s"), p + "preempt_delay", "is set but preempt is false"},
		// accept
		{"accept type", one("accept: 1"), p + "accept", "not true or false"},
		// checksum
		{"checksum value", one("checksum: both"), p + "checksum", `"both" is not a checksum form`},
		{"checksum on v2", one("version: 2", "checksum: message_only"), p + "checksum", "VRRPv3 over IPv4 only"},
		{"checksum on ipv6", one("checksum: pseudo_header", "vips: [fe80::1]"), p + "checksum", "IPv6 always includes the pseudo-header"},
		// unicast
		{"unicast empty peers", one("unicast: {source: 192.0.2.11, peers: []}"), p + "unicast.peers", "is empty: unicast needs at least one peer"},
		{"unicast no peers", one("unicast: {source: 192.0.2.11}"), p + "unicast.peers", "required"},
		{"unicast null", one("unicast:"), p + "unicast.peers", "required"},
		{"unicast min_ttl 0", one("unicast: {peers: [192.0.2.12], min_ttl: 0}"), p + "unicast.min_ttl", "is out of range 1..255"},
		{"unicast min_ttl 256", one("unicast: {peers: [192.0.2.12], min_ttl: 256}"), p + "unicast.min_ttl", "is out of range 1..255"},
		{"unicast scalar", one("unicast: 192.0.2.12"), p + "unicast", "must be a mapping"},
		{"unicast peers scalar", one("unicast: {peers: 192.0.2.12}"), p + "unicast.peers", "write [192.0.2.12] for one element"},
		{"unicast bad peer", one("unicast: {peers: [192.0.2.300]}"), p + "unicast.peers[0]", `"192.0.2.300" is not an IP address`},
		{"unicast multicast peer", one("unicast: {peers: [224.0.0.18]}"), p + "unicast.peers[0]", "multicast"},
		{"unicast dup peer", one("unicast: {peers: [192.0.2.12, 192.0.2.12]}"), p + "unicast.peers[1]", "repeats vrrp.instances[0].unicast.peers[0]"},
		{"unicast source is peer", one("unicast: {source: 192.0.2.12, peers: [192.0.2.12]}"), p + "unicast.peers[0]", "is the unicast source"},
		{"unicast source family", one("unicast: {source: 2001:db8::1, peers: [192.0.2.12]}"), p + "unicast.source", "is IPv6 but the instance's VIPs are IPv4"},
		{"unicast peer family", one("unicast: {peers: [2001:db8::2]}"), p + "unicast.peers[0]", "is IPv6 but the instance's VIPs are IPv4"},
		{"unicast source multicast", one("unicast: {source: 224.0.0.1, peers: [192.0.2.12]}"), p + "unicast.source", "multicast"},
		{"unicast peer zone", one("unicast: {peers: [\"fe80::1%eth0\"]}", "vips: [fe80::9]"), p + "unicast.peers[0]", "has a zone"},
		{"unicast peer prefix", one("unicast: {peers: [192.0.2.12/24]}"), p + "unicast.peers[0]", "no prefix length"},
		{"unicast typo", one("unicast: {peer: [192.0.2.12]}"), p + "unicast.peer", `unknown key; did you mean "peers"?`},
		// auth
		{"auth on v3", one("auth: {type: pass, password: x}"), p + "auth", "VRRPv2 only"},
		{"auth type missing", one("version: 2", "auth: {password: x}"), p + "auth.type", "required"},
		{"auth type ah", one("version: 2", "auth: {type: ah, password: x}"), p + "auth.type", "not supported"},
		{"auth type bad", one("version: 2", "auth: {type: md5}"), p + "auth.type", `"md5" is not an auth type`},
		{"auth pass no password", one("version: 2", "auth: {type: pass}"), p + "auth.password", "required with type pass"},
		{"auth password long", one("version: 2", "auth: {type: pass, password: 123456789}"), p + "auth.password", "must be a string"},
		{"auth password 9", one("version: 2", `auth: {type: pass, password: "123456789"}`), p + "auth.password", "is 9 bytes long: a VRRPv2 password is 1..8 bytes"},
		{"auth password empty", one("version: 2", `auth: {type: pass, password: ""}`), p + "auth.password", "is 0 bytes long"},
		{"auth none with password", one("version: 2", "auth: {type: none, password: x}"), p + "auth.password", "auth type is none"},
		// vips
		{"vips missing", one("-vips"), p + "vips", "required"},
		{"vips empty", one("vips: []"), p + "vips", "is empty"},
		{"vips too many", one("vips: [" + manyVIPs(256) + "]"), p + "vips", "has 256 addresses"},
		{"vip bad", one("vips: [192.0.2.1/24, 192.0.2.2, 192.0.2.300/24]"), p + "vips[2]", `"192.0.2.300/24" is not an IP address or prefix`},
		{"vip bad prefix len", one("vips: [192.0.2.1/33]"), p + "vips[0]", "not an IP address or prefix"},
		{"vip mixed family", one("vips: [192.0.2.1, 2001:db8::1]"), p + "vips[1]", "is IPv6 but the instance's first VIP is IPv4"},
		{"vip dup", one("vips: [192.0.2.1/24, 192.0.2.1/32]"), p + "vips[1]", "repeats the address of vrrp.instances[0].vips[0]"},
		{"vip dup map", one("vips: [192.0.2.1/24, {address: 192.0.2.1, dev: eth1}]"), p + "vips[1]", `"192.0.2.1/32" repeats the address of vrrp.instances[0].vips[0]`},
		{"vip multicast", one("vips: [224.0.0.5]"), p + "vips[0]", "multicast"},
		{"vip unspecified", one("vips: [0.0.0.0]"), p + "vips[0]", "unspecified"},
		{"vip loopback", one("vips: [127.0.0.2]"), p + "vips[0]", "loopback"},
		{"vip mapped", one(`vips: ["::ffff:192.0.2.1"]`), p + "vips[0]", "IPv4-mapped"},
		{"vip zone", one(`vips: ["fe80::1%eth0"]`), p + "vips[0]", "has a zone"},
		{"vip int", one("vips: [5]"), p + "vips[0]", "must be an address"},
		{"vip map no address", one("vips: [{dev: eth1}]"), p + "vips[0].address", "required"},
		{"vip map bad address", one("vips: [{address: nope}]"), p + "vips[0].address", `"nope" is not an IP address or prefix`},
		{"vip map bad dev", one("vips: [{address: 192.0.2.1, dev: eth/1}]"), p + "vips[0].dev", "'/'"},
		{"vip label other dev", one(`vips: [{address: 192.0.2.1, dev: eth1, label: "eth0:x"}]`), p + "vips[0].label", `start with "eth1:"`},
		{"vip label default dev", one(`vips: [{address: 192.0.2.1, label: "eth1:x"}]`), p + "vips[0].label", `must be the interface name "eth0"`},
		{"vip label long", one(`vips: [{address: 192.0.2.1, label: "eth0:abcdefghijk"}]`), p + "vips[0].label", "longer than 15"},
		{"vip label ipv6", one(`vips: [{address: "2001:db8::1", label: "eth0:x"}]`), p + "vips[0].label", "IPv4 addresses only"},
		{"vip map typo", one("vips: [{addr: 192.0.2.1}]"), p + "vips[0].addr", `unknown key; the key is "address"`},
		{"vips scalar", one("vips: 192.0.2.1"), p + "vips", "must be a list"},
		// garp
		{"garp repeat 0", one("garp: {repeat: 0}"), p + "garp.repeat", "0 is out of range 1..100"},
		{"garp repeat 101", one("garp: {repeat: 101}"), p + "garp.repeat", "out of range 1..100"},
		{"garp delay", one("garp: {delay: 1001s}"), p + "garp.delay", "0s..1000s"},
		{"garp interval", one("garp: {interval: 2s}"), p + "garp.interval", "0s..1s"},
		{"garp delay no unit", one("garp: {delay: 5}"), p + "garp.delay", "has no unit"},
		{"vrrp garp", "vrrp: {garp: {repeat: 200}}", "vrrp.garp.repeat", "out of range 1..100"},
		// unknown and later keys
		{"typo", one("prority: 100"), p + "prority", `unknown key; did you mean "priority"?`},
		{"unknown", one("colour: blue"), p + "colour", "unknown key"},
		{"keepalived name", one("virtual_router_id: 51"), p + "virtual_router_id", `"vrid" here`},
		{"keepalived state", one("state: MASTER"), p + "state", "no initial state"},
		{"gossip without keyring", "gossip: {bind: 192.0.2.11:7946}", "gossip.keyring", "gossip without a keyring is refused"},
		{"keepalived track_script", one("track_script: [chk]"), p + "track_script", "use track: {scripts: [NAME, ...]}"},
		{"keepalived vrrp_script", "vrrp: {vrrp_script: chk}", "vrrp.vrrp_script", `the list "scripts" here`},
		{"top unknown", "nodes: {name: x}", "nodes", `unknown key; did you mean "node"?`},
		{"node unknown", "node: {nmae: x}", "node.nmae", `did you mean "name"?`},
		{"telemetry unknown", "telemetry: {lsiten: x}", "telemetry.lsiten", `did you mean "listen"?`},
		// sections of the wrong kind
		{"node scalar", "node: lb1", "node", `"lb1" must be a mapping`},
		{"vrrp list", "vrrp: [1]", "vrrp", "must be a mapping (key: value pairs), not a list"},
		{"instances map", "vrrp: {instances: {name: x}}", "vrrp.instances", "must be a list, not a mapping"},
		{"instance scalar", "vrrp: {instances: [web]}", "vrrp.instances[0]", `"web" must be a mapping`},
		// node
		{"node name", "node: {name: \"lb 1\"}", "node.name", "not a valid node name"},
		{"node name empty", "node: {name: \"\"}", "node.name", "not a valid node name"},
		// telemetry
		{"listen no port", "telemetry: {listen: 127.0.0.1}", "telemetry.listen", "is not host:port"},
		{"listen bad port", "telemetry: {listen: \"127.0.0.1:http\"}", "telemetry.listen", "no valid port"},
		{"listen port 0", "telemetry: {listen: \":0\"}", "telemetry.listen", "no valid port"},
		{"log level", "telemetry: {log_level: verbose}", "telemetry.log_level", `"verbose" is not a log level`},
		{"log format", "telemetry: {log_format: xml}", "telemetry.log_format", `"xml" is not a log format`},
	}
	// A misspelt required key is also reported as missing.
	more := map[string]bool{"unicast typo": true, "vip map typo": true}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ve := mustFail(t, tc.y)
			wantErr(t, ve, tc.path, tc.frag)
			if len(ve.Errors) != 1 && !more[tc.name] {
				t.Errorf("want exactly one error, got:\n%v", ve)
			}
		})
	}
}

func manyVIPs(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).Next().String()
	}
	return strings.Join(s, ", ")
}

func TestPasswordNeverEchoed(t *testing.T) {
	for _, y := range []string{
		one("version: 2", `auth: {type: pass, password: "toolongsecret"}`),
		one("version: 2", `auth: {type: pass, password: 12345}`),
	} {
		ve := mustFail(t, y)
		if s := ve.Error(); strings.Contains(s, "toolongsecret") || strings.Contains(s, "12345") {
			t.Errorf("password in error: %s", s)
		}
	}
}

func TestMultipleErrors(t *testing.T) {
	y := inst(
		[]string{"vrid: 300", "priority: 0", "prority: 5", "vips: [192.0.2.1, 192.0.2.300/24]"},
		[]string{"-interface", "advert_interval: 1"},
	) + "telemetry: {log_level: loud}\n"
	ve := mustFail(t, y)
	want := []string{
		"vrrp.instances[0].vrid: 300 is out of range 1..255",
		"vrrp.instances[0].priority: 0 is reserved",
		`vrrp.instances[0].vips[1]: "192.0.2.300/24" is not an IP address or prefix`,
		`vrrp.instances[0].prority: unknown key`, // unknown keys close each mapping
		"vrrp.instances[1].interface: required",
		"vrrp.instances[1].advert_interval: 1 has no unit",
		`telemetry.log_level: "loud" is not a log level`,
	}
	if len(ve.Errors) != len(want) {
		t.Errorf("got %d errors, want %d:\n%v", len(ve.Errors), len(want), ve)
	}
	lines := strings.Split(ve.Error(), "\n")
	for i, w := range want {
		if i >= len(lines) || !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: want prefix %q; all:\n%v", i, w, ve)
		}
	}
	// errors.As reaches the individual FieldErrors.
	var fe FieldError
	if !errors.As(error(ve), &fe) || fe.Path != "vrrp.instances[0].vrid" || fe.Value != "300" {
		t.Errorf("errors.As FieldError: %+v", fe)
	}
}

func TestCrossInstance(t *testing.T) {
	t.Run("duplicate name", func(t *testing.T) {
		ve := mustFail(t, inst([]string{"name: web"}, []string{"name: web"}))
		wantErr(t, ve, "vrrp.instances[1].name", `"web" is already the name of vrrp.instances[0]`)
	})
	t.Run("duplicate vrid", func(t *testing.T) {
		ve := mustFail(t, inst([]string{"name: web"}, []string{"name: api", "vrid: 51"}))
		wantErr(t, ve, "vrrp.instances[1].vrid", `51 is already used by instance "web" (vrrp.instances[0]) on eth0 for IPv4`)
		if !strings.Contains(ve.Error(), "api") && !strings.Contains(ve.Error(), "instances[1]") {
			t.Errorf("second instance not named: %v", ve)
		}
	})
	t.Run("duplicate vip", func(t *testing.T) {
		ve := mustFail(t, inst([]string{"name: web"}, []string{"name: api", "vips: [192.0.2.7, 192.0.2.100/32]"}))
		wantErr(t, ve, "vrrp.instances[1].vips[1]", `"192.0.2.100/32" is also a VIP of instance "web" (vrrp.instances[0].vips[0])`)
	})
	t.Run("same vrid other family or interface", func(t *testing.T) {
		c := mustParse(t, inst(
			[]string{"vrid: 51"},
			[]string{"vrid: 51", "vips: [2001:db8::1]"},
			[]string{"vrid: 51", "interface: eth1"},
		))
		if len(c.VRRP.Instances) != 3 {
			t.Fatal(len(c.VRRP.Instances))
		}
	})
}

func TestUnknownKeyPaths(t *testing.T) {
	ve := mustFail(t, inst([]string{}, []string{"prority: 1", "garp: {rpeat: 2}"}))
	wantErr(t, ve, "vrrp.instances[1].prority", "vrrp.instances[1].prority: unknown key")
	wantErr(t, ve, "vrrp.instances[1].garp.rpeat", "unknown key")
	// Keys are case-insensitive (viper lower-cases them), also inside lists.
	c := mustParse(t, one("Priority: 120"))
	if c.VRRP.Instances[0].Priority != 120 {
		t.Errorf("Priority: %d", c.VRRP.Instances[0].Priority)
	}
}

func TestYAMLSyntax(t *testing.T) {
	for _, tc := range []struct{ y, frag string }{
		{"node:\n  name: lb1\nvrrp: {instances: [\n", "line 3"},
		{"a: b: c\n", "line 1: mapping values are not allowed"},
		{"node:\n\tname: x\n", "line 2"},
		{"node: {name: a}\nnode: {name: b}\n", `line 2: mapping key "node" already defined at line 1`},
		{"- a\n- b\n", "the document must be a mapping"},
	} {
		ve := mustFail(t, tc.y)
		if len(ve.Errors) == 0 || !strings.Contains(ve.Errors[0].Msg, tc.frag) || ve.Errors[0].Path != "" {
			t.Errorf("%q: want %q, got %v", tc.y, tc.frag, ve)
		}
	}
}

func TestEnvOverride(t *testing.T) {
	t.Setenv("VIGIL_NODE_NAME", "lb-env")
	t.Setenv("VIGIL_TELEMETRY_LOG_LEVEL", "debug")
	t.Setenv("VIGIL_VRRP_GARP_REPEAT", "3")
	t.Setenv("VIGIL_VRRP_GARP_DELAY", "1s")
	for _, y := range []string{
		"node: {name: lb-file}\n" + one(),
		one(),                         // no node section at all
		"node:\ntelemetry:\n" + one(), // empty sections
	} {
		c := mustParse(t, y)
		if c.Node.Name != "lb-env" {
			t.Errorf("node.name = %q", c.Node.Name)
		}
		if c.Telemetry.LogLevel != "debug" {
			t.Errorf("log_level = %q", c.Telemetry.LogLevel)
		}
		want := GARP{Repeat: 3, Delay: time.Second, RefreshRepeat: 1, LowerPrioRepeat: 3, LowerPrioDelay: time.Second}
		if c.VRRP.GARP != want || c.VRRP.Instances[0].GARP != want {
			t.Errorf("garp = %+v / %+v", c.VRRP.GARP, c.VRRP.Instances[0].GARP)
		}
	}
	t.Setenv("VIGIL_VRRP_GARP_REPEAT", "lots")
	ve := mustFail(t, one())
	wantErr(t, ve, "vrrp.garp.repeat", `"lots" is not an integer (set by $VIGIL_VRRP_GARP_REPEAT)`)
	if EnvVar("telemetry.log_format") != "VIGIL_TELEMETRY_LOG_FORMAT" {
		t.Error(EnvVar("telemetry.log_format"))
	}
	// Every key the environment may override actually takes effect.
	t.Setenv("VIGIL_VRRP_GARP_REPEAT", "")
	fifo := filepath.Join(t.TempDir(), "events")
	keyring := writeTestKeyring(t, 0o600, testKey(1))
	vals := map[string]string{
		"gossip.bind": "192.0.2.11:7000", "gossip.advertise": "[2001:db8::11]:7001",
		"gossip.keyring": keyring, "gossip.cluster": "edge-env",
		"node.name": "n2", "vrrp.strict": "false",
		"vrrp.garp.repeat": "9", "vrrp.garp.delay": "3s", "vrrp.garp.interval": "20ms",
		"vrrp.garp.refresh": "30s", "vrrp.garp.refresh_repeat": "2",
		"vrrp.garp.lower_prio_repeat": "4", "vrrp.garp.lower_prio_delay": "1s",
		"vrrp.script_user": "nobody", "vrrp.notify_fifo": fifo, "vrrp.notify_fifo_group": "0",
		"telemetry.listen": "[::1]:9000", "telemetry.log_level": "warn", "telemetry.log_format": "json",
		"telemetry.pprof": "true",
	}
	for _, k := range EnvKeys() {
		if _, ok := vals[k]; !ok {
			t.Errorf("no test value for %s", k)
		}
		t.Setenv(EnvVar(k), vals[k])
	}
	c := mustParse(t, "")
	wantGARP := GARP{Repeat: 9, Delay: 3 * time.Second, Interval: 20 * time.Millisecond,
		Refresh: 30 * time.Second, RefreshRepeat: 2, LowerPrioRepeat: 4, LowerPrioDelay: time.Second}
	if c.Node.Name != "n2" || c.VRRP.GARP != wantGARP || c.VRRP.Strict ||
		c.VRRP.ScriptUser != "nobody" || c.VRRP.NotifyFIFO != fifo || c.VRRP.NotifyFIFOGroup != "0" ||
		c.Telemetry != (Telemetry{Listen: "[::1]:9000", LogLevel: "warn", LogFormat: "json", Pprof: true}) {
		t.Errorf("env: %+v", c)
	}
	if g := c.Gossip; g == nil || g.Bind != netip.MustParseAddrPort("192.0.2.11:7000") ||
		g.Advertise != netip.MustParseAddrPort("[2001:db8::11]:7001") || g.Keyring != keyring || g.Cluster != "edge-env" {
		t.Errorf("env gossip: %+v", c.Gossip)
	}
	// strict from the environment changes the defaults, and a conflicting
	// value from the environment names its variable.
	t.Setenv("VIGIL_VRRP_STRICT", "true")
	ve = mustFail(t, one())
	wantErr(t, ve, "vrrp.garp.repeat", `"9" conflicts with strict: true`)
	if !strings.Contains(ve.Error(), "$VIGIL_VRRP_GARP_REPEAT") {
		t.Errorf("variable not named: %v", ve)
	}
	for _, k := range EnvKeys() {
		if strings.HasPrefix(k, "vrrp.garp.") {
			t.Setenv(EnvVar(k), "")
		}
	}
	c = mustParse(t, one())
	if !c.VRRP.Strict || c.VRRP.GARP.Repeat != 1 || !c.VRRP.Instances[0].LowerPrioNoAdvert {
		t.Errorf("strict from env: %+v", c.VRRP)
	}
}

func TestVIPForms(t *testing.T) {
	c := mustParse(t, one(`vips: [192.0.2.100/24, { address: 192.0.2.101/24, dev: eth1, label: "eth1:web" }, {address: 192.0.2.102}]`))
	want := []VIP{
		{Prefix: netip.MustParsePrefix("192.0.2.100/24"), Dev: "eth0"},
		{Prefix: netip.MustParsePrefix("192.0.2.101/24"), Dev: "eth1", Label: "eth1:web"},
		{Prefix: netip.MustParsePrefix("192.0.2.102/32"), Dev: "eth0"},
	}
	if got := c.VRRP.Instances[0].VIPs; !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
	c = mustParse(t, one("vips: [fe80::1, 2001:db8::1]"))
	in := &c.VRRP.Instances[0]
	if in.Family() != 6 || in.VIPs[1].Prefix != netip.MustParsePrefix("2001:db8::1/128") || in.Version != 3 {
		t.Errorf("ipv6: %+v", in)
	}
}

func TestV2AuthCompiles(t *testing.T) {
	c := mustParse(t, one("version: 2", "auth: {type: PASS, password: s3cret}", "advert_interval: 3s"))
	in := &c.VRRP.Instances[0]
	if in.AuthType != vrrp.AuthPass || in.AuthPassword != "s3cret" {
		t.Fatalf("auth: %d %q", in.AuthType, in.AuthPassword)
	}
	vc := in.VRRP(netip.MustParseAddr("192.0.2.11"))
	want := [8]byte{'s', '3', 'c', 'r', 'e', 't', 0, 0}
	if vc.AuthType != vrrp.AuthPass || vc.AuthData != want {
		t.Errorf("AuthData = %q", vc.AuthData)
	}
	if err := vc.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	// The advert carries the padded password, as keepalived sends it.
	inst, err := vrrp.NewInstance(vc)
	if err != nil {
		t.Fatal(err)
	}
	if a := inst.Advert(vc.Priority); a.AuthData != want || a.Interval != 3*time.Second {
		t.Errorf("advert: %+v", a)
	}
}

func TestVRRPCompile(t *testing.T) {
	c := mustParse(t, `
vrrp:
  instances:
    - name: web
      interface: eth0
      vrid: 51
      priority: 150
      advert_interval: 100ms
      preempt_delay: 10s
      accept: false
      lower_prio_no_advert: true
      unicast: {source: 192.0.2.11, peers: [192.0.2.12]}
      vips: [192.0.2.100/24, {address: 192.0.2.101/24, dev: eth1}]
    - name: web6
      interface: eth0
      vrid: 51
      vips: [fe80::51, 2001:db8::100/64]
`)
	primary := netip.MustParseAddr("192.0.2.99")
	got := c.VRRP.Instances[0].VRRP(primary)
	want := vrrp.Config{
		Name: "web", VRID: 51, Version: 3, Priority: 150,
		AdvertInterval: 100 * time.Millisecond, Preempt: true, PreemptDelay: 10 * time.Second,
		Accept: false, LowerPrioNoAdvert: true,
		VIPs:    []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("192.0.2.101")},
		Primary: netip.MustParseAddr("192.0.2.11"), // the unicast source wins
		Unicast: true,
		Peers:   []netip.Addr{netip.MustParseAddr("192.0.2.12")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	// Fresh slices: the compiled config cannot alias the loaded one.
	got.Peers[0] = netip.Addr{}
	got.VIPs[0] = netip.Addr{}
	if c.VRRP.Instances[0].Unicast.Peers[0] != netip.MustParseAddr("192.0.2.12") || !c.VRRP.Instances[0].VIPs[0].Prefix.IsValid() {
		t.Error("VRRP() aliases the config")
	}

	ll := netip.MustParseAddr("fe80::2")
	v6 := c.VRRP.Instances[1].VRRP(ll)
	if v6.Primary != ll || v6.Unicast || v6.Family() != 6 || v6.Version != 3 || len(v6.VIPs) != 2 {
		t.Errorf("v6: %+v", v6)
	}
	if err := v6.Validate(); err != nil {
		t.Errorf("Validate v6: %v", err)
	}
}

func TestWarnings(t *testing.T) {
	c := mustParse(t, one("priority: 255", "preempt: false", "accept: false"))
	if len(c.Warnings) != 2 ||
		!strings.HasPrefix(c.Warnings[0], "vrrp.instances[0].preempt: ignored for the address owner") ||
		!strings.HasPrefix(c.Warnings[1], "vrrp.instances[0].accept: false is ignored") {
		t.Errorf("warnings: %q", c.Warnings)
	}
	c = mustParse(t, one("vips: [2001:db8::1]"))
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "link-local") {
		t.Errorf("warnings: %q", c.Warnings)
	}
	c = mustParse(t, one("unicast: {source: 192.0.2.100, peers: [192.0.2.12]}"))
	if len(c.Warnings) != 1 || !strings.HasPrefix(c.Warnings[0], "vrrp.instances[0].unicast.source: 192.0.2.100 is also vrrp.instances[0].vips[0]") {
		t.Errorf("warnings: %q", c.Warnings)
	}
	// Warnings travel with errors too.
	ve := mustFail(t, one("priority: 255", "preempt: false", "vrid: 0"))
	if len(ve.Warnings) != 1 {
		t.Errorf("warnings with errors: %q", ve.Warnings)
	}
}

func TestLoad(t *testing.T) {
	c, err := Load(filepath.Join("..", "deploy", "examples", "vigil.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Node.Name != "lb1" || len(c.VRRP.Instances) != 3 || c.Path == "" || len(c.Hash) != 64 {
		t.Errorf("example: %+v", c)
	}
	for i := range c.VRRP.Instances {
		in := &c.VRRP.Instances[i]
		primary := netip.MustParseAddr("192.0.2.11")
		if in.Family() == 6 {
			primary = netip.MustParseAddr("fe80::11")
		}
		if vc := in.VRRP(primary); vc.Validate() != nil {
			err := vc.Validate()
			t.Errorf("%s: %v", in.Name, err)
		}
	}
	if len(c.Warnings) != 0 {
		t.Errorf("example warnings: %q", c.Warnings)
	}
	// The example shows every issue-3 key.
	v := &c.VRRP
	if len(v.Scripts) != 2 || len(v.Files) != 1 || len(v.Processes) != 1 || len(v.SyncGroups) != 1 ||
		v.Scripts[0].Argv[0] != "/usr/bin/pidof" || !v.Scripts[1].Shell || v.Scripts[0].User != "nobody" {
		t.Errorf("example trackers: %+v", v)
	}
	if web := &v.Instances[0]; web.SyncGroup != "edge" || len(web.Track.Scripts) != 1 || web.Notify.All == nil {
		t.Errorf("example web: %+v", web)
	}
	if db := &v.Instances[1]; db.Track.Scripts[0].Weight != -20 || db.Track.Processes[0].Weight != -50 {
		t.Errorf("example db: %+v", db.Track)
	}
	if v.Instances[2].VMAC != "vrrp6.51" {
		t.Errorf("example web6 vmac %q", v.Instances[2].VMAC)
	}

	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(one("vrid: 0")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.File != bad {
		t.Fatalf("bad file: %v", err)
	}
	// The problem's line starts with its place in the file: the value 0.
	if want := "config " + bad + ": 1 problem:\n" + bad + ":5:13: vrrp.instances[0].vrid: 0 is out of range 1..255"; err.Error() != want {
		t.Errorf("Error():\n%s\nwant:\n%s", err, want)
	}
}

func TestDurations(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{{"1s", time.Second}, {"100ms", 100 * time.Millisecond}, {"1m30s", 90 * time.Second}, {"0", 0}, {`"0s"`, 0}} {
		c := mustParse(t, one("preempt_delay: "+tc.v))
		if got := c.VRRP.Instances[0].PreemptDelay; got != tc.want {
			t.Errorf("%s: %v", tc.v, got)
		}
	}
}

// Parse uses a fresh viper per call, so concurrent loads are safe.
func TestConcurrentParse(t *testing.T) {
	y := []byte(one("priority: 120"))
	done := make(chan error)
	for range 8 {
		go func() {
			c, err := Parse(y)
			if err == nil && c.VRRP.Instances[0].Priority != 120 {
				err = errors.New("wrong priority")
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
