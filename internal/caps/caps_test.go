package caps

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"vigil/config"
)

const instance = `
    - name: web
      interface: eth0
      vrid: 51
      vips: [192.0.2.100/24]
`

func parse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	return cfg
}

// need is a Need without its words, for comparing.
type need struct {
	Cap  Cap
	Path string
}

func needsOf(ns []Need) []need {
	var out []need
	for _, n := range ns {
		out = append(out, need{n.Cap, n.Path})
	}
	return out
}

var base = []need{{NetRaw, "vrrp.instances[0]"}, {NetAdmin, "vrrp.instances[0].vips"}}

func with(extra ...need) []need { return append(append([]need{}, base...), extra...) }

func asUser(path string) []need {
	return []need{{SetGID, path}, {SetUID, path}, {Kill, path}}
}

func TestNeeds(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []need
	}{
		{"an instance: raw sockets and addresses", "vrrp:\n  instances:" + instance, base},
		{"vmac", "vrrp:\n  instances:" + instance + "      vmac: true\n", with(need{NetAdmin, "vrrp.instances[0].vmac"})},
		{"accept false", "vrrp:\n  instances:" + instance + "      accept: false\n", with(need{NetAdmin, "vrrp.instances[0].accept"})},
		{"notify FIFO with a group", "vrrp:\n  notify_fifo: /run/vigil/n.fifo\n  notify_fifo_group: \"65534\"\n  instances:" + instance,
			with(need{Chown, "vrrp.notify_fifo_group"})},
		{"notify FIFO without a group", "vrrp:\n  notify_fifo: /run/vigil/n.fifo\n  instances:" + instance, base},
		{"tracked script as nobody", `vrrp:
  scripts: [{name: chk, command: [/bin/true], user: nobody}]
  instances:` + instance + "      track: {scripts: [chk]}\n",
			with(asUser("vrrp.scripts[0]")...)},
		{"a script nothing tracks does not run", `vrrp:
  scripts: [{name: chk, command: [/bin/true], user: nobody}]
  instances:` + instance, base},
		{"script without a user runs as the daemon", `vrrp:
  scripts: [{name: chk, command: [/bin/true]}]
  instances:` + instance + "      track: {scripts: [chk]}\n", base},
		{"script_user applies to scripts and notify", `vrrp:
  script_user: nobody
  scripts: [{name: chk, command: [/bin/true]}]
  instances:` + instance + "      track: {scripts: [chk]}\n      notify: {master: [/bin/true]}\n",
			with(append(asUser("vrrp.instances[0].notify"), asUser("vrrp.scripts[0]")...)...)},
		{"notify as root: setgroups only", "vrrp:\n  instances:" + instance + "      notify: {master: [/bin/true], user: root}\n",
			with(need{SetGID, "vrrp.instances[0].notify"})},
		{"a user but no notify command", "vrrp:\n  instances:" + instance + "      notify: {user: nobody}\n", base},
		{"tracked process", `vrrp:
  processes: [{name: nginx, process: nginx}]
  instances:` + instance + "      track: {processes: [nginx]}\n",
			with(need{NetAdmin, "vrrp.processes[0]"})},
		{"sync group notify", `vrrp:
  instances:` + instance + `    - {name: db, interface: eth0, vrid: 52, vips: [192.0.2.101/24]}
  sync_groups: [{name: g, instances: [web, db], notify: {fault: [/bin/true], user: nobody}}]
`, append(with(need{NetRaw, "vrrp.instances[1]"}, need{NetAdmin, "vrrp.instances[1].vips"}), asUser("vrrp.sync_groups[0].notify")...)},
		{"virtual server, exec and ping checks, notify", `lb:
  virtual_servers:
    - name: http
      address: 192.0.2.100:80
      protocol: tcp
      notify: {quorum_down: [/bin/true], user: nobody}
      real_servers:
        - address: 198.51.100.11:80
          check: [{type: exec, command: [/bin/true], user: nobody}, {type: ping}]
        - address: 198.51.100.12:80
          check: {type: tcp}
`, append(append([]need{{NetAdmin, "lb.virtual_servers[0]"}}, asUser("lb.virtual_servers[0].real_servers[0].check[0]")...),
			append([]need{{NetRaw, "lb.virtual_servers[0].real_servers[0].check[1]"}}, asUser("lb.virtual_servers[0].notify")...)...)},
		{"metrics on a privileged port", "telemetry: {listen: \"127.0.0.1:80\"}\nvrrp:\n  instances:" + instance,
			with(need{NetBindService, "telemetry.listen"})},
		{"metrics on the default port", "telemetry: {listen: \"127.0.0.1:9730\"}\nvrrp:\n  instances:" + instance, base},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := needsOf(Needs(parse(t, tc.yaml)))
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("needs\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func set(cs ...Cap) Set {
	var s Set
	for _, c := range cs {
		s |= 1 << c
	}
	return s
}

// The old unit (NET_ADMIN, NET_RAW) against a config with a script as
// nobody: one warning per missing capability, naming the path and the
// feature; the unit's set now: none.
func TestCheck(t *testing.T) {
	cfg := parse(t, `vrrp:
  scripts: [{name: chk, command: [/bin/true], user: nobody}]
  instances:`+instance+"      track: {scripts: [chk]}\n      notify: {master: [/bin/true], user: nobody}\n")
	old := set(NetAdmin, NetRaw)
	ws := Check(Needs(cfg), old, old)
	var caps []Cap
	for _, w := range ws {
		caps = append(caps, w.Cap)
		if !w.Bounding || len(w.Needs) != 2 {
			t.Errorf("%v: bounding %v, %d needs, want true and 2", w.Cap, w.Bounding, len(w.Needs))
		}
		s := w.String()
		for _, want := range []string{w.Cap.String() + " missing (not in this process's effective set nor in its bounding set); needed by ",
			"vrrp.instances[0].notify: notify commands of instance web run as nobody",
			"vrrp.scripts[0]: script chk run as nobody", "CapabilityBoundingSet="} {
			if !strings.Contains(s, want) {
				t.Errorf("warning %q lacks %q", s, want)
			}
		}
	}
	if !reflect.DeepEqual(caps, []Cap{Kill, SetGID, SetUID}) {
		t.Fatalf("warnings for %v, want KILL, SETGID, SETUID", caps)
	}
	unit := set(NetAdmin, NetRaw, SetUID, SetGID, Kill)
	if ws := Check(Needs(cfg), unit, unit); len(ws) != 0 {
		t.Fatalf("the unit's set: %v", ws)
	}
	// In the bounding set but not effective (dropped by hand): said so.
	if ws := Check(Needs(cfg), old, unit); len(ws) != 3 || ws[0].Bounding || strings.Contains(ws[0].String(), "bounding") {
		t.Fatalf("effective only: %v", ws)
	}
}

// Many uses of one capability name the first three and count the rest.
func TestWarningListsFew(t *testing.T) {
	var ns []Need
	for i := range 5 {
		ns = append(ns, Need{Cap: NetAdmin, Path: fmt.Sprintf("lb.virtual_servers[%d]", i), Feature: "IPVS"})
	}
	ws := Check(ns, 0, 0)
	if len(ws) != 1 || !strings.Contains(ws[0].String(), "lb.virtual_servers[2]: IPVS; and 2 more") || strings.Contains(ws[0].String(), "[3]") {
		t.Fatalf("%v", ws)
	}
}

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		in       string
		eff, bnd Set
		err      string
	}{
		{"Name:\tvigil\nCapInh:\t0000000000000000\nCapPrm:\t00000000000030e0\nCapEff:\t00000000000030e0\nCapBnd:\t00000000000030e0\nCapAmb:\t00000000000030e0\n",
			set(Kill, SetGID, SetUID, NetAdmin, NetRaw), set(Kill, SetGID, SetUID, NetAdmin, NetRaw), ""},
		{"CapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\n", 0, 1<<41 - 1, ""},
		{"CapEff:\t00000000000030e0\n", 0, 0, "no CapEff and CapBnd"},
		{"CapEff:\txyz\nCapBnd:\t0\n", 0, 0, `CapEff: "xyz"`},
	} {
		eff, bnd, err := parseStatus([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || eff != tc.eff || bnd != tc.bnd {
			t.Errorf("%q: %x %x %v, want %x %x", tc.in, eff, bnd, err, tc.eff, tc.bnd)
		}
	}
}

func TestSystemFilter(t *testing.T) {
	ns := []Need{{Cap: NetBindService, Port: 80}, {Cap: NetRaw, Ping: true}, {Cap: NetRaw}}
	for _, tc := range []struct {
		sys  system
		want int
	}{
		{system{unprivPort: 1024}, 3},
		{system{unprivPort: 80}, 2},
		{system{unprivPort: 1024, ping: true}, 2},
		{system{unprivPort: 0, ping: true}, 1},
	} {
		if got := tc.sys.filter(ns); len(got) != tc.want {
			t.Errorf("%+v: %v, want %d needs", tc.sys, got, tc.want)
		}
	}
	for _, tc := range []struct {
		rng    string
		groups []int
		want   bool
	}{
		{"1\t0\n", []int{0}, false}, // the kernel's default: nobody
		{"0\t2147483647\n", []int{0}, true},
		{"100 200", []int{0, 150}, true},
		{"100 200", []int{0, 99}, false},
		{"garbage", []int{0}, false},
	} {
		if got := pingAllowed(tc.rng, tc.groups); got != tc.want {
			t.Errorf("pingAllowed(%q, %v) = %v", tc.rng, tc.groups, got)
		}
	}
}
