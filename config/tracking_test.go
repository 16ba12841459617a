package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// withVRRP adds vrrp-level lines (indented by two spaces) to a config made
// by inst or one.
func withVRRP(y string, lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("  " + l + "\n")
	}
	if !strings.Contains(y, "vrrp:\n") {
		return "vrrp:\n" + b.String() + y
	}
	return strings.Replace(y, "vrrp:\n", "vrrp:\n"+b.String(), 1)
}

const (
	chk   = "scripts: [{name: chk, command: [/bin/true], weight: -20}]"
	chk0  = "scripts: [{name: chk, command: [/bin/true]}]"
	maint = "files: [{name: maint, path: /etc/vigil/maint}]"
	nginx = "processes: [{name: nginx, process: nginx, weight: -50}]"
)

func TestTrackingAllKeys(t *testing.T) {
	c := mustParse(t, `
vrrp:
  script_user: nobody
  scripts:
    - name: chk_nginx
      command: [/bin/true, nginx]
      interval: 2s
      timeout: 1s
      rise: 2
      fall: 3
      weight: -20
      reverse: true
      user: root
      init_fail: true
    - {name: chk_db, command: "pidof mysqld || exit 1", shell: true}
    - {name: chk_path, command: "true"}
  files:
    - {name: maint, path: /etc/vigil/maint}
    - {name: maint2, path: /run/vigil/../maint2, weight: -2, reverse: true, init: 5}
  processes:
    - {name: nginx, process: nginx, args: "-g daemon off;", weight: -50, reverse: true, quorum: 2, delay: 500ms}
    - {name: sshd, process: sshd}
  sync_groups:
    - name: edge
      instances: [web, db]
      notify: {master: /bin/true, user: root, timeout: 3s}
      tracking_weight: true
  instances:
    - name: web
      interface: eth0
      vrid: 51
      vips: [192.0.2.100/24]
      track:
        interfaces: [eth1, {name: eth2, reverse: true}]
        scripts: [chk_nginx, {name: chk_db, reverse: false}]
        files: [maint, {name: maint2, weight: 0}]
        processes: [{name: sshd}]
      dont_track_primary: true
      notify:
        master: /bin/true
        backup: [/bin/true, backup, "two words"]
        fault: "true"
        all: [/bin/true]
      vmac: true
    - name: db
      interface: eth0
      vrid: 52
      vips: [192.0.2.110]
      track: {scripts: [{name: chk_path}], processes: [{name: nginx, weight: 0, reverse: false}]}
      vmac: vrrp-db
`)
	truePath := lookPath(t, "true")
	v := c.VRRP
	wantScripts := []Script{
		{Name: "chk_nginx", Argv: []string{"/bin/true", "nginx"}, Interval: 2 * time.Second, Timeout: time.Second,
			Rise: 2, Fall: 3, Weight: -20, Reverse: true, User: "root", InitFail: true},
		{Name: "chk_db", Argv: []string{"/bin/sh", "-c", "pidof mysqld || exit 1"}, Shell: true, Command: "pidof mysqld || exit 1",
			Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1, User: "nobody"},
		{Name: "chk_path", Argv: []string{truePath}, Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1, User: "nobody"},
	}
	if !reflect.DeepEqual(v.Scripts, wantScripts) {
		t.Errorf("scripts:\n got  %+v\n want %+v", v.Scripts, wantScripts)
	}
	wantFiles := []File{
		{Name: "maint", Path: "/etc/vigil/maint", Weight: 1},
		{Name: "maint2", Path: "/run/maint2", Weight: -2, Reverse: true, Init: 5},
	}
	if !reflect.DeepEqual(v.Files, wantFiles) {
		t.Errorf("files: %+v", v.Files)
	}
	wantProcs := []Process{
		{Name: "nginx", Process: "nginx", Args: "-g daemon off;", Weight: -50, Reverse: true, Quorum: 2, Delay: 500 * time.Millisecond},
		{Name: "sshd", Process: "sshd", Quorum: 1},
	}
	if !reflect.DeepEqual(v.Processes, wantProcs) {
		t.Errorf("processes: %+v", v.Processes)
	}
	wantGroups := []SyncGroup{{Name: "edge", Instances: []string{"web", "db"},
		Notify: Notify{Master: []string{"/bin/true"}, User: "root", Timeout: 3 * time.Second}, TrackingWeight: true}}
	if !reflect.DeepEqual(v.SyncGroups, wantGroups) {
		t.Errorf("sync groups: %+v", v.SyncGroups)
	}
	if v.ScriptUser != "nobody" {
		t.Errorf("script_user %q", v.ScriptUser)
	}

	web, db := v.Instances[0], v.Instances[1]
	// Weights and reverse resolve: the reference's own, else the object's.
	wantTrack := Track{
		Interfaces: []TrackRef{{Name: "eth1"}, {Name: "eth2", Reverse: true}},
		Scripts:    []TrackRef{{Name: "chk_nginx", Weight: -20, Reverse: true}, {Name: "chk_db"}},
		Files:      []TrackRef{{Name: "maint", Weight: 1}, {Name: "maint2", Weight: 0, WeightSet: true, Reverse: true}},
		Processes:  []TrackRef{{Name: "sshd"}},
	}
	if !reflect.DeepEqual(web.Track, wantTrack) {
		t.Errorf("track:\n got  %+v\n want %+v", web.Track, wantTrack)
	}
	wantNotify := Notify{
		Master: []string{"/bin/true"}, Backup: []string{"/bin/true", "backup", "two words"},
		Fault: []string{truePath}, All: []string{"/bin/true"}, User: "nobody", Timeout: 10 * time.Second,
	}
	if !reflect.DeepEqual(web.Notify, wantNotify) {
		t.Errorf("notify:\n got  %+v\n want %+v", web.Notify, wantNotify)
	}
	if !web.DontTrackPrimary || web.VMAC != "vrrp.51" || web.SyncGroup != "edge" {
		t.Errorf("web: %+v", web)
	}
	wantDB := Track{
		Scripts:   []TrackRef{{Name: "chk_path"}},
		Processes: []TrackRef{{Name: "nginx", WeightSet: true}},
	}
	if !reflect.DeepEqual(db.Track, wantDB) || db.VMAC != "vrrp-db" || db.DontTrackPrimary || db.SyncGroup != "edge" {
		t.Errorf("db: %+v", db)
	}
	if db.Notify.User != "nobody" || db.Notify.Timeout != 10*time.Second || db.Notify.Master != nil {
		t.Errorf("db notify defaults: %+v", db.Notify)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}
}

func TestTrackingDefaults(t *testing.T) {
	c := mustParse(t, withVRRP(one("track: {scripts: [chk], files: [maint], processes: [nginx]}"),
		chk0, "files: [{name: maint, path: /m}]", "processes: [{name: nginx, process: nginx}]"))
	v := c.VRRP
	s := v.Scripts[0]
	if s.Interval != time.Second || s.Timeout != time.Second || s.Rise != 1 || s.Fall != 1 || s.Weight != 0 ||
		s.User != "" || s.Shell || s.InitFail || s.Reverse {
		t.Errorf("script defaults: %+v", s)
	}
	// timeout follows the interval
	c = mustParse(t, withVRRP(one("track: {scripts: [chk]}"), "scripts: [{name: chk, command: [/bin/true], interval: 5s}]"))
	if c.VRRP.Scripts[0].Timeout != 5*time.Second {
		t.Errorf("timeout: %v", c.VRRP.Scripts[0].Timeout)
	}
	if f := v.Files[0]; f != (File{Name: "maint", Path: "/m", Weight: 1}) {
		t.Errorf("file defaults: %+v", f)
	}
	if p := v.Processes[0]; p != (Process{Name: "nginx", Process: "nginx", Quorum: 1}) {
		t.Errorf("process defaults: %+v", p)
	}
	in := v.Instances[0]
	if in.Track.Files[0].Weight != 1 || in.Track.Scripts[0].Weight != 0 || in.VMAC != "" || in.SyncGroup != "" {
		t.Errorf("instance: %+v", in)
	}
	if !reflect.DeepEqual(in.Notify, Notify{Timeout: 10 * time.Second}) {
		t.Errorf("notify defaults: %+v", in.Notify)
	}
	// vmac: false is no virtual MAC.
	if c := mustParse(t, one("vmac: false")); c.VRRP.Instances[0].VMAC != "" {
		t.Errorf("vmac false: %q", c.VRRP.Instances[0].VMAC)
	}
	// An IPv6 instance has its own default macvlan name only if the IPv4
	// one with the same VRID is on another interface.
	c = mustParse(t, inst([]string{"vrid: 51", "vmac: true"}, []string{"vrid: 51", "vips: [fe80::51]", "vmac: vrrp6.51"}))
	if c.VRRP.Instances[0].VMAC != "vrrp.51" || c.VRRP.Instances[1].VMAC != "vrrp6.51" {
		t.Errorf("vmac: %+v", c.VRRP.Instances)
	}
}

func TestGARPKeys(t *testing.T) {
	c := mustParse(t, withVRRP(inst(
		[]string{},
		[]string{"garp: {repeat: 2, delay: 1s}"},
		[]string{"garp: {lower_prio_repeat: 0, refresh: 1m, refresh_repeat: 3}"},
	), "garp: {repeat: 3, refresh: 10s}"))
	g := c.VRRP.GARP
	if g != (GARP{Repeat: 3, Delay: 5 * time.Second, Refresh: 10 * time.Second, RefreshRepeat: 1, LowerPrioRepeat: 3, LowerPrioDelay: 5 * time.Second}) {
		t.Errorf("vrrp.garp: %+v", g)
	}
	want := []GARP{
		g,
		// lower_prio_* follow the instance's own repeat and delay
		{Repeat: 2, Delay: time.Second, Refresh: 10 * time.Second, RefreshRepeat: 1, LowerPrioRepeat: 2, LowerPrioDelay: time.Second},
		{Repeat: 3, Delay: 5 * time.Second, Refresh: time.Minute, RefreshRepeat: 3, LowerPrioRepeat: 0, LowerPrioDelay: 5 * time.Second},
	}
	for i, w := range want {
		if got := c.VRRP.Instances[i].GARP; got != w {
			t.Errorf("instance %d: got %+v want %+v", i, got, w)
		}
	}
	// lower_prio_* set in vrrp.garp are inherited as they are.
	c = mustParse(t, withVRRP(one("garp: {repeat: 4}"), "garp: {lower_prio_repeat: 1, lower_prio_delay: 0s}"))
	if got := c.VRRP.Instances[0].GARP; got.LowerPrioRepeat != 1 || got.LowerPrioDelay != 0 || got.Repeat != 4 {
		t.Errorf("inherited lower_prio: %+v", got)
	}
}

func TestStrictDefaults(t *testing.T) {
	c := mustParse(t, withVRRP(inst(
		[]string{},
		[]string{"priority: 255"},
		[]string{"accept: true"},      // v3 Accept_Mode may be asked for (RFC 5798)
		[]string{"version: 2"},        // v2: no accept, no auth
		[]string{"garp: {repeat: 1}"}, // the strict values may be written
		[]string{"preempt_delay: 0s"}, // as may 0s
		[]string{"vips: [fe80::1, 2001:db8::1]"},
	), "strict: true"))
	v := c.VRRP
	if !v.Strict {
		t.Fatal("not strict")
	}
	wantG := GARP{Repeat: 1, RefreshRepeat: 1}
	if v.GARP != wantG {
		t.Errorf("strict garp: %+v", v.GARP)
	}
	accept := []bool{false, true, true, false, false, false, false}
	for i, in := range v.Instances {
		if in.Accept != accept[i] || !in.LowerPrioNoAdvert || in.GARP != wantG {
			t.Errorf("instance %d: accept %v lower_prio_no_advert %v garp %+v", i, in.Accept, in.LowerPrioNoAdvert, in.GARP)
		}
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}
}

func TestStrictConflicts(t *testing.T) {
	const p = "vrrp.instances[0]."
	cases := []struct {
		name, y, path, frag string
	}{
		{"unicast", one("unicast: {peers: [192.0.2.12]}"), p + "unicast", "conflicts with strict: true: VRRP sends its adverts by multicast"},
		{"auth", one("version: 2", "auth: {type: pass, password: x}"), p + "auth", "conflicts with strict: true: authentication"},
		{"preempt_delay", one("preempt_delay: 5s"), p + "preempt_delay", `"5s" conflicts with strict: true: preempt_delay`},
		{"v2 accept", one("version: 2", "accept: true"), p + "accept", "true conflicts with strict: true: VRRPv2 (RFC 3768) has no Accept_Mode"},
		{"lower_prio_no_advert", one("lower_prio_no_advert: false"), p + "lower_prio_no_advert", "false conflicts with strict: true: a master ignores lower-priority adverts"},
		{"garp repeat", "vrrp:\n  garp: {repeat: 5}\n", "vrrp.garp.repeat", "5 conflicts with strict: true: strict mode (RFC 5798) announces once"},
		{"garp delay", "vrrp:\n  garp: {delay: 5s}\n", "vrrp.garp.delay", "conflicts with strict: true"},
		{"garp refresh", "vrrp:\n  garp: {refresh: 60s}\n", "vrrp.garp.refresh", "conflicts with strict: true"},
		{"garp lower_prio_repeat", "vrrp:\n  garp: {lower_prio_repeat: 2}\n", "vrrp.garp.lower_prio_repeat", "use 0 or remove it"},
		{"garp lower_prio_delay", "vrrp:\n  garp: {lower_prio_delay: 1s}\n", "vrrp.garp.lower_prio_delay", "conflicts with strict: true"},
		{"instance garp", one("garp: {repeat: 3}"), p + "garp.repeat", "3 conflicts with strict: true"},
		{"ipv6 first vip", one("vips: [2001:db8::1, fe80::1]"), p + "vips[0]", `"2001:db8::1" conflicts with strict: true: the first IPv6 VIP must be link-local`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ve := mustFail(t, withVRRP(tc.y, "strict: true"))
			wantErr(t, ve, tc.path, tc.frag)
			if len(ve.Errors) != 1 {
				t.Errorf("want exactly one error, got:\n%v", ve)
			}
			// Without strict the same settings are fine.
			mustParse(t, tc.y)
		})
	}
	// Every conflict is reported, not just the first.
	ve := mustFail(t, withVRRP(one("unicast: {peers: [192.0.2.12]}", "preempt_delay: 1s", "lower_prio_no_advert: false"), "strict: true", "garp: {delay: 1s}"))
	if len(ve.Errors) != 4 {
		t.Errorf("want 4 errors:\n%v", ve)
	}
}

func TestTrackingInvalid(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec.sh")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	script := func(kv string) string {
		return withVRRP(one("track: {scripts: [chk]}"), "scripts: [{name: chk, "+kv+"}]")
	}
	const s = "vrrp.scripts[0]."
	const p = "vrrp.instances[0]."
	cases := []struct {
		name, y, path, frag string
	}{
		// scripts
		{"script name missing", withVRRP("", "scripts: [{command: [/bin/true]}]"), s + "name", "required"},
		{"script name chars", withVRRP("", "scripts: [{name: chk nginx, command: [/bin/true]}]"), s + "name", `"chk nginx" is not a valid script name`},
		{"script name dup", withVRRP(one("track: {scripts: [chk]}"), "scripts: [{name: chk, command: [/bin/true]}, {name: chk, command: [/bin/true]}]"),
			"vrrp.scripts[1].name", `"chk" is already the name of vrrp.scripts[0]`},
		{"command missing", script("interval: 1s"), s + "command", "required: a list"},
		{"command missing path", script("command: [/nonexistent/chk_nginx, x]"), s + "command[0]", `"/nonexistent/chk_nginx" does not exist`},
		{"command string missing path", script("command: /nonexistent/chk"), s + "command", `"/nonexistent/chk" does not exist`},
		{"command not executable", script("command: [" + noexec + "]"), s + "command[0]", "is not executable"},
		{"command directory", script("command: [/etc]"), s + "command[0]", "is a directory"},
		{"command relative", script("command: [bin/check]"), s + "command[0]", "is a relative path"},
		{"command not in PATH", script("command: [no-such-program-vigil]"), s + "command[0]", "is not found in PATH"},
		{"command empty list", script("command: []"), s + "command", "is empty"},
		{"command empty string", script(`command: ""`), s + "command", "is empty"},
		{"command arg not string", script("command: [/bin/true, {a: 1}]"), s + "command[1]", "must be a string, not a mapping"},
		{"command arg number", script("command: [/bin/true, 5]"), s + "command[1]", `5 is not a string; quote it ("5")`},
		{"command spaces without shell", script(`command: "/usr/bin/pidof nginx"`), s + "command", "write the command as a list [/usr/bin/pidof, nginx], or set shell: true"},
		{"command list with shell", script("command: [/bin/true], shell: true"), s + "command", "must be one string with shell: true"},
		{"command shell empty", script(`command: " ", shell: true`), s + "command", "is empty"},
		{"command bool", script("command: true"), s + "command", "must be a list"},
		{"interval short", script("command: [/bin/true], interval: 5ms"), s + "interval", `"5ms" is out of range 10ms..24h`},
		{"interval no unit", script("command: [/bin/true], interval: 2"), s + "interval", "has no unit"},
		{"timeout over interval", script("command: [/bin/true], interval: 2s, timeout: 3s"), s + "timeout", `"3s" is longer than the interval (2s)`},
		{"timeout over default interval", script("command: [/bin/true], timeout: 2s"), s + "timeout", "longer than the interval (1s)"},
		{"timeout short", script("command: [/bin/true], timeout: 1ms"), s + "timeout", "too short"},
		{"rise 0", script("command: [/bin/true], rise: 0"), s + "rise", "0 is out of range 1..100"},
		{"fall 101", script("command: [/bin/true], fall: 101"), s + "fall", "101 is out of range 1..100"},
		{"weight 254", script("command: [/bin/true], weight: 254"), s + "weight", "254 is out of range -253..253"},
		{"weight -254", script("command: [/bin/true], weight: -254"), s + "weight", "-254 is out of range -253..253"},
		{"user unknown", script("command: [/bin/true], user: no-such-user-vigil"), s + "user", `names no user on this system ("no-such-user-vigil")`},
		{"group unknown", script(`command: [/bin/true], user: "nobody:no-such-group-vigil"`), s + "user", "names no group"},
		{"user syntax", script(`command: [/bin/true], user: "a:b:c"`), s + "user", "is not USER or USER:GROUP"},
		{"user empty group", script(`command: [/bin/true], user: "nobody:"`), s + "user", "has an empty group"},
		{"script keepalived key", script("script: /bin/true"), s + "script", `keepalived's script is "command" here`},
		{"script_user unknown", withVRRP("", "script_user: no-such-user-vigil"), "vrrp.script_user", "names no user"},
		// files
		{"file path missing", withVRRP(one("track: {files: [maint]}"), "files: [{name: maint}]"), "vrrp.files[0].path", "required"},
		{"file path relative", withVRRP(one("track: {files: [maint]}"), "files: [{name: maint, path: etc/maint}]"), "vrrp.files[0].path", "is not an absolute path"},
		{"file path dir", withVRRP(one("track: {files: [maint]}"), "files: [{name: maint, path: /etc/}]"), "vrrp.files[0].path", "names a directory"},
		{"file init", withVRRP(one("track: {files: [maint]}"), "files: [{name: maint, path: /m, init: 300}]"), "vrrp.files[0].init", "300 is out of range -254..254"},
		{"file weight", withVRRP(one("track: {files: [maint]}"), "files: [{name: maint, path: /m, weight: 300}]"), "vrrp.files[0].weight", "out of range -253..253"},
		{"file keepalived key", withVRRP(one("track: {files: [maint]}"), "files: [{name: maint, file: /m}]"), "vrrp.files[0].file", `the key is "path"`},
		// processes
		{"process missing", withVRRP(one("track: {processes: [p]}"), "processes: [{name: p}]"), "vrrp.processes[0].process", "required"},
		{"process path", withVRRP(one("track: {processes: [p]}"), "processes: [{name: p, process: /usr/sbin/nginx}]"), "vrrp.processes[0].process", `is a path: give the process name (nginx)`},
		{"process long", withVRRP(one("track: {processes: [p]}"), "processes: [{name: p, process: systemd-journald}]"), "vrrp.processes[0].process", `write "systemd-journal"`},
		{"process quorum", withVRRP(one("track: {processes: [p]}"), "processes: [{name: p, process: x, quorum: 0}]"), "vrrp.processes[0].quorum", "0 is out of range 1..65535"},
		{"process delay", withVRRP(one("track: {processes: [p]}"), "processes: [{name: p, process: x, delay: 2h}]"), "vrrp.processes[0].delay", "out of range 0s..1h"},
		// references
		{"unknown script", withVRRP(one("track: {scripts: [chk_ngnix]}"), "scripts: [{name: chk_nginx, command: [/bin/true]}]"),
			p + "track.scripts[0]", `"chk_ngnix" is not a defined script: define it under vrrp.scripts, or did you mean "chk_nginx"?`},
		{"unknown script none defined", one("track: {scripts: [chk]}"), p + "track.scripts[0]", `"chk" is not a defined script: define it under vrrp.scripts`},
		{"unknown file", withVRRP(one("track: {files: [{name: mnt}]}"), maint), p + "track.files[0]", `"mnt" is not a defined file`},
		{"unknown process", withVRRP(one("track: {processes: [apache]}"), nginx), p + "track.processes[0]", `"apache" is not a defined process: define it under vrrp.processes (defined: nginx)`},
		{"script is not a file", withVRRP(one("track: {files: [chk]}"), chk), p + "track.files[0]", "is not a defined file"},
		{"ref repeated", withVRRP(one("track: {scripts: [chk, {name: chk, weight: 2}]}"), chk), p + "track.scripts[1]", "repeats vrrp.instances[0].track.scripts[0]"},
		{"ref weight range", withVRRP(one("track: {scripts: [{name: chk, weight: -300}]}"), chk), p + "track.scripts[0].weight", "-300 is out of range -253..253"},
		{"ref no name", one("track: {interfaces: [{weight: 2}]}"), p + "track.interfaces[0].name", "required"},
		{"ref number", one("track: {interfaces: [5]}"), p + "track.interfaces[0]", "must be a interface name or a mapping"},
		{"ref unknown key", one("track: {interfaces: [{name: eth1, wieght: 2}]}"), p + "track.interfaces[0].wieght", `did you mean "weight"?`},
		{"iface name", one("track: {interfaces: [eth/1]}"), p + "track.interfaces[0]", "not a valid interface name"},
		{"iface repeated", one("track: {interfaces: [eth1, eth1]}"), p + "track.interfaces[1]", "repeats"},
		{"track key typo", one("track: {interface: [eth1]}"), p + "track.interface", `the key is "interfaces"`},
		{"track keepalived", one("track_interface: [eth1]"), p + "track_interface", "use track: {interfaces:"},
		// the address owner
		{"owner script weight", withVRRP(one("priority: 255", "track: {scripts: [chk]}"), chk), p + "track.scripts[0]",
			`"chk" is a script tracked with weight -20 (from vrrp.scripts[0].weight), but the address owner's priority (255) cannot change: its trackers need weight 0`},
		{"owner ref weight", one("priority: 255", "track: {interfaces: [{name: eth1, weight: 10}]}"), p + "track.interfaces[0]", "is an interface tracked with weight 10, but the address owner"},
		{"owner file default weight", withVRRP(one("priority: 255", "track: {files: [maint]}"), maint), p + "track.files[0]", "weight 1 (the default weight of a file)"},
		// notify
		{"notify string", one("notify: /bin/true"), p + "notify", "keepalived's generic notify script is notify: {all: COMMAND}"},
		{"notify missing path", one("notify: {master: /etc/vigil/no-such-notify.sh}"), p + "notify.master", `"/etc/vigil/no-such-notify.sh" does not exist`},
		{"notify spaces", one("notify: {backup: /bin/true backup}"), p + "notify.backup", "write the command as a list [/bin/true, backup]"},
		{"notify list missing", one("notify: {all: [/nonexistent/x, y]}"), p + "notify.all[0]", "does not exist"},
		{"notify not exec", one("notify: {fault: " + plain + "}"), p + "notify.fault", "is not executable"},
		{"notify timeout", one("notify: {timeout: 2h}"), p + "notify.timeout", "out of range 10ms..1h"},
		{"notify user", one("notify: {user: no-such-user-vigil}"), p + "notify.user", "names no user"},
		{"notify keepalived key", one("notify: {notify_master: /bin/true}"), p + "notify.notify_master", `the key is "master"`},
		{"notify hint", one("notify_master: /bin/true"), p + "notify_master", "use notify: {master: COMMAND}"},
		// vmac
		{"vmac empty", one(`vmac: ""`), p + "vmac", "is not a macvlan name"},
		{"vmac yes", one("vmac: yes"), p + "vmac", "is not a macvlan name"},
		{"vmac long", one("vmac: vrrp-verylongname"), p + "vmac", "longer than 15 bytes"},
		{"vmac number", one("vmac: 5"), p + "vmac", "must be true, false or the macvlan's name, not an integer"},
		{"vmac is interface", one("vmac: eth0"), p + "vmac", `is the interface of instance "i0"`},
		{"vmac keepalived", one("use_vmac: true"), p + "use_vmac", "use vmac: true"},
		// notify_fifo
		{"fifo relative", withVRRP("", "notify_fifo: run/fifo"), "vrrp.notify_fifo", "is not an absolute path"},
		{"fifo no dir", withVRRP("", "notify_fifo: /nonexistent/dir/fifo"), "vrrp.notify_fifo", "is in /nonexistent/dir, which is not an existing directory"},
		{"fifo regular file", withVRRP("", "notify_fifo: "+plain), "vrrp.notify_fifo", "exists and is not a FIFO"},
		// garp
		{"garp refresh short", one("garp: {refresh: 500ms}"), p + "garp.refresh", `"500ms" is out of range: use 0s (off) or 1s..1h`},
		{"garp refresh long", "vrrp: {garp: {refresh: 2h}}", "vrrp.garp.refresh", "1s..1h"},
		{"garp refresh_repeat", one("garp: {refresh_repeat: 0}"), p + "garp.refresh_repeat", "0 is out of range 1..100"},
		{"garp lower_prio_repeat", one("garp: {lower_prio_repeat: 101}"), p + "garp.lower_prio_repeat", "out of range 0..100"},
		{"garp lower_prio_delay", one("garp: {lower_prio_delay: 1001s}"), p + "garp.lower_prio_delay", "0s..1000s"},
		{"garp keepalived", one("garp_master_refresh: 60"), p + "garp_master_refresh", "use garp: {refresh: 60s}"},
		// strict itself
		{"strict type", "vrrp: {strict: maybe}", "vrrp.strict", `"maybe" is not true or false`},
	}
	// A keepalived key name also leaves the required key missing.
	more := map[string]bool{"script keepalived key": true, "file keepalived key": true}
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

func TestFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "events")
	if c := mustParse(t, withVRRP("", "notify_fifo: "+fifo)); c.VRRP.NotifyFIFO != fifo {
		t.Errorf("missing FIFO: %q", c.VRRP.NotifyFIFO)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip(err)
	}
	if c := mustParse(t, withVRRP("", "notify_fifo: "+fifo)); c.VRRP.NotifyFIFO != fifo {
		t.Errorf("existing FIFO: %q", c.VRRP.NotifyFIFO)
	}
}

func TestSyncGroups(t *testing.T) {
	two := func(a, b []string, group ...string) string {
		return withVRRP(inst(append([]string{"name: web"}, a...), append([]string{"name: db"}, b...)), group...)
	}
	const g = "vrrp.sync_groups[0]."
	cases := []struct {
		name, y, path, frag string
	}{
		{"unknown instance", two(nil, nil, "sync_groups: [{name: edge, instances: [web, dbb]}]"), g + "instances[1]", `"dbb" is not the name of an instance; did you mean "db"?`},
		{"one member", two(nil, nil, "sync_groups: [{name: edge, instances: [web]}]"), g + "instances", "has 1 instance(s): a sync group needs at least 2"},
		{"no members", two(nil, nil, "sync_groups: [{name: edge}]"), g + "instances", "required"},
		{"member repeated", two(nil, nil, "sync_groups: [{name: edge, instances: [web, db, web]}]"), g + "instances[2]", `"web" repeats vrrp.sync_groups[0].instances[0]`},
		{"two groups", withVRRP(inst([]string{"name: web"}, []string{"name: db"}, []string{"name: api"}),
			"sync_groups: [{name: a, instances: [web, db]}, {name: b, instances: [api, db]}]"),
			"vrrp.sync_groups[1].instances[1]", `"db" is already in a sync group (vrrp.sync_groups[0].instances[1]): an instance belongs to at most one`},
		{"group name dup", withVRRP(inst([]string{"name: a"}, []string{"name: b"}, []string{"name: c"}, []string{"name: d"}),
			"sync_groups: [{name: g, instances: [a, b]}, {name: g, instances: [c, d]}]"), "vrrp.sync_groups[1].name", `"g" is already the name of vrrp.sync_groups[0]`},
		{"member not a string", two(nil, nil, "sync_groups: [{name: edge, instances: [web, [db]]}]"), g + "instances[1]", "must be an instance name, not a list"},
		{"member weight", two([]string{"track: {scripts: [chk]}"}, nil, chk, "sync_groups: [{name: edge, instances: [web, db]}]"),
			"vrrp.instances[0].track.scripts[0]", `"chk" is a script tracked with weight -20 (from vrrp.scripts[0].weight), but instance "web" is in sync group "edge" (vrrp.sync_groups[0]), whose members change state together: trackers there need weight 0`},
		{"member iface weight", two(nil, []string{"track: {interfaces: [{name: eth1, weight: -10}]}"}, "sync_groups: [{name: edge, instances: [web, db]}]"),
			"vrrp.instances[1].track.interfaces[0]", "or set tracking_weight: true on the group"},
		{"group keepalived key", two(nil, nil, "sync_groups: [{name: edge, group: [web, db]}]"), g + "group", `keepalived's group is "instances" here`},
		{"group notify", two(nil, nil, "sync_groups: [{name: edge, instances: [web, db], notify: {fault: /nonexistent/n}}]"), g + "notify.fault", "does not exist"},
	}
	more := map[string]bool{"group keepalived key": true} // instances is then missing too
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ve := mustFail(t, tc.y)
			wantErr(t, ve, tc.path, tc.frag)
			if len(ve.Errors) != 1 && !more[tc.name] {
				t.Errorf("want exactly one error, got:\n%v", ve)
			}
		})
	}
	// Weight 0 trackers are fine in a group; tracking_weight allows others.
	mustParse(t, two([]string{"track: {scripts: [chk]}"}, nil, chk0, "sync_groups: [{name: edge, instances: [web, db]}]"))
	mustParse(t, two([]string{"track: {scripts: [chk]}"}, nil, chk, "sync_groups: [{name: edge, instances: [web, db], tracking_weight: true}]"))
	// A per-instance weight 0 overrides the script's.
	mustParse(t, two([]string{"track: {scripts: [{name: chk, weight: 0}]}"}, nil, chk, "sync_groups: [{name: edge, instances: [web, db]}]"))
	// An owner in a group is reported once, by the owner rule.
	ve := mustFail(t, two([]string{"priority: 255", "track: {scripts: [chk]}"}, nil, chk, "sync_groups: [{name: edge, instances: [web, db]}]"))
	if len(ve.Errors) != 1 || !hasErr(ve, "vrrp.instances[0].track.scripts[0]", "address owner") {
		t.Errorf("owner in group: %v", ve)
	}
}

func TestVMACNames(t *testing.T) {
	// The same VRID on two interfaces: the default names collide.
	ve := mustFail(t, inst([]string{"vmac: true"}, []string{"vrid: 51", "interface: eth1", "vmac: true"}))
	wantErr(t, ve, "vrrp.instances[1].vmac", `"vrrp.51" is already the virtual MAC interface of instance "i0" (vrrp.instances[0]); each instance needs its own macvlan (vmac: true names it vrrp.<VRID>; give it a name of its own, vmac: NAME)`)
	// A name that is another instance's interface.
	ve = mustFail(t, inst([]string{}, []string{"interface: eth1", "vmac: eth0"}))
	wantErr(t, ve, "vrrp.instances[1].vmac", `"eth0" is the interface of instance "i0" (vrrp.instances[0])`)
	// Named apart, both are fine.
	c := mustParse(t, inst([]string{"vmac: true"}, []string{"vrid: 51", "interface: eth1", "vmac: vrrp1.51"}))
	if c.VRRP.Instances[1].VMAC != "vrrp1.51" {
		t.Error(c.VRRP.Instances[1].VMAC)
	}
}

func TestTrackingWarnings(t *testing.T) {
	c := mustParse(t, withVRRP(one(), chk, maint, nginx))
	want := []string{
		`vrrp.scripts[0]: script "chk" is not tracked by any instance, so it is not watched`,
		`vrrp.files[0]: file "maint" is not tracked by any instance, so it is not watched`,
		`vrrp.processes[0]: process "nginx" is not tracked by any instance, so it is not watched`,
	}
	if !reflect.DeepEqual(c.Warnings, want) {
		t.Errorf("warnings: %q", c.Warnings)
	}
	// Strict mode turns the IPv6 link-local warning into an error (above);
	// without it, it stays a warning.
	c = mustParse(t, one("vips: [2001:db8::1]"))
	if len(c.Warnings) != 1 {
		t.Errorf("warnings: %q", c.Warnings)
	}
}

// The bad inputs the issue lists, as `vigil config validate` sees them.
func TestIssueBadInput(t *testing.T) {
	cases := []struct {
		name, y, want string
	}{
		{"unknown tracker", withVRRP(one("track: {scripts: [chk_nginx]}"), chk),
			`vrrp.instances[0].track.scripts[0]: "chk_nginx" is not a defined script: define it under vrrp.scripts`},
		{"duplicate vrid", inst([]string{"name: web"}, []string{"name: api", "vrid: 51"}),
			`vrrp.instances[1].vrid: 51 is already used by instance "web" (vrrp.instances[0]) on eth0 for IPv4`},
		{"script path", withVRRP(one("track: {scripts: [chk]}"), "scripts: [{name: chk, command: [/usr/local/bin/no-such-check, nginx]}]"),
			`vrrp.scripts[0].command[0]: "/usr/local/bin/no-such-check" does not exist`},
		{"owner negative weight", withVRRP(one("priority: 255", "track: {scripts: [chk]}"), chk),
			`vrrp.instances[0].track.scripts[0]: "chk" is a script tracked with weight -20`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "vigil.yaml")
			if err := os.WriteFile(f, []byte(tc.y), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(f)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Load: %v", err)
			}
			// Each problem's line starts with its place in the file.
			if want := "config " + f + ": 1 problem:\n" + f + ":"; !strings.HasPrefix(err.Error(), want) ||
				!regexp.MustCompile(`^\d+:\d+: `+regexp.QuoteMeta(tc.want)).MatchString(strings.TrimPrefix(err.Error(), want)) {
				t.Errorf("got:\n%v\nwant prefix:\n%sLINE:COL: %s", err, want, tc.want)
			}
		})
	}
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, msg := execProblem(name)
	if msg != "" {
		t.Fatalf("%s: %s", name, msg)
	}
	return p
}
