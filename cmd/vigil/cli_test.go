package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"vigil/config"
	"vigil/node/api"
	"vigil/telemetry"
	"vigil/test/netlab"
)

// run executes the CLI in-process and returns stdout and the exit code main
// would use.
func run(t *testing.T, args ...string) (string, int, string) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return out.String(), 0, ""
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return out.String(), ee.code, ee.msg
	}
	return out.String(), 1, err.Error()
}

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigValidateOK(t *testing.T) {
	out, code, msg := run(t, "config", "validate", "--config", "../../deploy/examples/vigil.yaml")
	if code != 0 || !strings.Contains(out, "OK (3 VRRP instances, 1 virtual servers)") {
		t.Fatalf("code %d, out %q, msg %q", code, out, msg)
	}
}

// Every problem is printed with its path and value, and the exit status is 1
// (keepalived -t style).
func TestConfigValidateAllErrors(t *testing.T) {
	p := write(t, `
vrrp:
  instances:
    - name: web
      interface: eth0
      vrid: 300
      prority: 150
      vips: [192.0.2.100/24]
    - name: db
      interface: eth0
      vrid: 52
      unicast: { peers: [] }
      vips: [192.0.2.102, 192.0.2.300]
    - name: db
      interface: eth0
      vrid: 52
      version: 2
      advert_interval: 100ms
      vips: [192.0.2.101]
    - name: v6
      interface: eth0
      vrid: 53
      version: 2
      vips: [2001:db8::1]
`)
	_, code, msg := run(t, "config", "validate", "--config", p)
	if code != 1 {
		t.Fatalf("exit %d, want 1; %s", code, msg)
	}
	for _, want := range []string{
		"vrrp.instances[0].vrid", "300",
		"vrrp.instances[0].prority: unknown key",
		"vrrp.instances[1].unicast.peers",
		"vrrp.instances[1].vips[1]", "192.0.2.300",
		"vrrp.instances[2].name", // duplicate name
		"vrrp.instances[2].advert_interval",
		"vrrp.instances[2].vrid", // VRID 52 twice on eth0 for IPv4
		"vrrp.instances[3].version",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if n := strings.Count(msg, "\n"); n < 6 {
		t.Errorf("expected one line per problem, got:\n%s", msg)
	}
}

func TestConfigValidateMissingFile(t *testing.T) {
	_, code, msg := run(t, "config", "validate", "--config", "/nonexistent/vigil.yaml")
	if code != 1 || !strings.Contains(msg, "/nonexistent/vigil.yaml") {
		t.Fatalf("code %d msg %q", code, msg)
	}
}

// run refuses an invalid configuration before touching anything.
func TestRunRejectsInvalidConfig(t *testing.T) {
	p := write(t, "vrrp: { instances: [ { name: x, interface: eth0, vrid: 0, vips: [192.0.2.100] } ] }\n")
	_, code, msg := run(t, "run", "--config", p)
	if code != 1 || !strings.Contains(msg, "vrrp.instances[0].vrid") {
		t.Fatalf("code %d msg %q", code, msg)
	}
}

func TestVersionJSON(t *testing.T) {
	out, code, _ := run(t, "version", "-o", "json")
	if code != 0 || !strings.Contains(out, `"vrrp_versions"`) {
		t.Fatalf("code %d out %q", code, out)
	}
	if _, code, _ := run(t, "version", "-o", "xml"); code != 2 {
		t.Fatalf("unknown format: exit %d, want 2", code)
	}
}

func TestDemoConfigIsValid(t *testing.T) {
	// The embedded demo config must always pass validation.
	cfg := renderDemoConfig(&demoNode{Name: "n1", Priority: 150, Interval: 100 * time.Millisecond})
	if strings.Contains(cfg, "{{") {
		t.Fatalf("unfilled placeholder in\n%s", cfg)
	}
	p := write(t, cfg)
	if _, code, msg := run(t, "config", "validate", "--config", p); code != 0 {
		t.Fatalf("demo config invalid: %s", msg)
	}
}

// vigil ipvs list refuses contradictory or unknown options before it
// touches the kernel, and on a kernel without IPVS (this host) says so.
func TestIPVSListUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		frag string
	}{
		{[]string{"ipvs", "list", "--stats", "--rate"}, 2, "at most one of --stats, --rate, --thresholds and --tun-info"},
		{[]string{"ipvs", "list", "-o", "yaml"}, 2, `unknown output format "yaml"`},
	} {
		_, code, msg := run(t, tc.args...)
		if code != tc.code || !strings.Contains(msg, tc.frag) {
			t.Errorf("%v: exit %d %q, want %d with %q", tc.args, code, msg, tc.code, tc.frag)
		}
	}
	if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
		return // a kernel with IPVS: the command would list it
	}
	_, code, msg := run(t, "ipvs", "list")
	if code != 1 || !strings.Contains(msg, "modprobe ip_vs") {
		t.Errorf("without IPVS: exit %d %q, want 1 and a hint to modprobe ip_vs", code, msg)
	}
}

// vigil config validate refuses what the config would read wrongly or not
// at all (keys differing only in case, a second document, an oversize
// file) with exit 1 and the place; an empty file is valid (exit 0) but
// warned of, since a reload to it is refused.
func TestConfigValidateAmbiguousFiles(t *testing.T) {
	const inst = "vrrp:\n  instances:\n    - name: web\n      interface: eth0\n      vrid: 51\n      vips: [192.0.2.100/24]\n"
	huge := filepath.Join(t.TempDir(), "huge.yaml")
	if err := os.WriteFile(huge, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, 100<<20); err != nil { // sparse
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		code       int
		frags      []string // in the message (exit 1) or the output (exit 0)
	}{
		{"case-duplicate keys", write(t, inst+"      preempt: true\n      Preempt: false\n"), 1, []string{
			"1 problem:", `vrrp.instances[0].preempt: keys "preempt" (line 7) and "Preempt" (line 8) differ only in case`}},
		{"case-duplicate sections", write(t, "VRRP: {instances: []}\n"+inst), 1, []string{
			`vrrp: keys "VRRP" (line 1) and "vrrp" (line 2) differ only in case`}},
		{"second document", write(t, inst+"---\nvrrp: {instances: []}\n"), 1, []string{
			"line 7: a second YAML document starts here"}},
		{"oversize file", huge, 1, []string{
			huge, "configuration file too large: 104857600 bytes, the limit is 67108864 bytes (64 MiB)"}},
		{"empty file", write(t, ""), 0, []string{
			"warning: the configuration has no VRRP instances and no virtual servers: a reload to it is refused",
			"node.allow_empty: true", "OK (0 VRRP instances, 0 virtual servers)"}},
		{"file cut after instances:", write(t, "node: {name: lb1}\nvrrp:\n  instances:\n"), 0, []string{
			"warning: vrrp.instances: is empty (line 3); the file may be truncated",
			"warning: the configuration has no VRRP instances and no virtual servers"}},
		{"empty on purpose", write(t, "node: {allow_empty: true}\n"), 0, []string{"OK (0 VRRP instances, 0 virtual servers)"}},
		{"capitalised key", write(t, inst+"      Preempt: false\n"), 0, []string{
			`warning: vrrp.instances[0].preempt: written "Preempt" (line 7); keys are lower case`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code, msg := run(t, "config", "validate", "--config", tc.path)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; out %q msg %q", code, tc.code, out, msg)
			}
			text := msg
			if code == 0 {
				text = out
			}
			for _, f := range tc.frags {
				if !strings.Contains(text, f) {
					t.Errorf("%q not in:\n%s", f, text)
				}
			}
			if tc.name == "empty on purpose" && strings.Contains(out, "warning") {
				t.Errorf("warned although node.allow_empty is set:\n%s", out)
			}
		})
	}
}

// --admin-group (declared by addAdminFlags on vigil run) reaches the admin
// socket: mode 0660 with that group instead of 0600.
func TestAdminGroupFlag(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: gives the socket another group")
	}
	t.Cleanup(func() { adminGroup = "" })
	cmd := &cobra.Command{}
	addAdminFlags(cmd)
	if err := cmd.Flags().Parse([]string{"--admin-group", "nogroup"}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "admin.sock")
	a, err := listenAdmin(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o660 || st.Gid != 65534 {
		t.Fatalf("socket mode %v gid %d, want 0660 gid 65534 (nogroup)", fi.Mode().Perm(), st.Gid)
	}
}

// A rejected configuration makes `vigil config reload` exit 1 with every
// problem: the unit's ExecReload= runs it, so `systemctl reload` fails.
// The daemon side is the real reloader (it rejects before touching the
// node).
func TestConfigReloadRejectedExitCode(t *testing.T) {
	p := write(t, "vrrp: { instances: [ { name: x, interface: eth0, vrid: 0, vips: [192.0.2.100] } ] }\n")
	rl := &reloader{path: p, loader: &config.Loader{}, log: slog.New(slog.DiscardHandler),
		metrics: telemetry.NewRegistry().NewConfigMetrics("")}
	sock := filepath.Join(t.TempDir(), "admin.sock")
	srv, err := api.Listen(sock, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(context.Background(), api.Handlers{Reload: rl.handler})
	}()
	t.Cleanup(func() { srv.Close(); <-done })
	_, code, msg := run(t, "config", "reload", "--socket", sock)
	if code != 1 || !strings.Contains(msg, "nothing was applied") || !strings.Contains(msg, "vrrp.instances[0].vrid") {
		t.Fatalf("exit %d: %q", code, msg)
	}
}

// unitExecs returns the vigil command lines of the shipped unit's Exec*=
// settings, with ${VIGIL_SOCKET} and $DAEMON_ARGS as systemd would expand
// them (the unit's Environment=, no /etc/default/vigil).
func unitExecs(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/systemd/vigil.service")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	out := map[string][]string{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if k == "Environment" {
			ek, ev, _ := strings.Cut(v, "=")
			env[ek] = ev
		}
		if !strings.HasPrefix(k, "Exec") || !strings.HasPrefix(v, "/usr/sbin/vigil ") {
			continue
		}
		var args []string
		for _, f := range strings.Fields(v)[1:] {
			if f == "$DAEMON_ARGS" {
				continue
			}
			for ek, ev := range env {
				f = strings.ReplaceAll(f, "${"+ek+"}", ev)
			}
			if strings.Contains(f, "$") {
				t.Fatalf("%s: %q: a variable the unit does not set", k, f)
			}
			args = append(args, f)
		}
		out[k] = args
	}
	return out
}

// The unit and the CLI agree: each vigil command line of the unit names an
// existing command and flags, ExecReload= is the synchronous
// `vigil config reload` (not a signal, which cannot fail the job), and it
// talks to the socket ExecStart= serves.
func TestUnitMatchesCLI(t *testing.T) {
	execs := unitExecs(t)
	for _, k := range []string{"ExecStartPre", "ExecStart", "ExecReload"} {
		args, ok := execs[k]
		if !ok {
			t.Fatalf("the unit has no vigil %s=", k)
		}
		root := newRootCmd()
		cmd, rest, err := root.Find(args)
		if err != nil || cmd == root {
			t.Fatalf("%s=%v: no such command: %v", k, args, err)
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Fatalf("%s=%v: %v", k, args, err)
		}
		if len(cmd.Flags().Args()) != 0 {
			t.Fatalf("%s=%v: stray arguments %v", k, args, cmd.Flags().Args())
		}
	}
	reload, start := strings.Join(execs["ExecReload"], " "), strings.Join(execs["ExecStart"], " ")
	if !strings.HasPrefix(reload, "config reload --socket ") {
		t.Fatalf("ExecReload= is %q, want the synchronous vigil config reload --socket", reload)
	}
	sock := strings.TrimPrefix(reload, "config reload --socket ")
	if !strings.Contains(start, "--admin-socket "+sock) {
		t.Fatalf("ExecReload= uses socket %s, ExecStart= %q serves another", sock, start)
	}
}

// execEnv makes the test binary run the CLI on the arguments after "--"
// (see TestMain): the tests run it as a process with other privileges.
const execEnv = "VIGIL_CLI_TEST_EXEC"

func TestMain(m *testing.M) {
	if os.Getenv(execEnv) == "1" {
		for i, a := range os.Args {
			if a == "--" {
				os.Args = append([]string{"vigil"}, os.Args[i+1:]...)
				break
			}
		}
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// `vigil config validate` under the bounding set of the old unit (NET_ADMIN
// and NET_RAW only) warns that a script with user: nobody needs SETUID,
// SETGID and KILL, naming the script's path; under the shipped unit's set
// (read from the unit) and with all of root's capabilities it warns about
// nothing.
func TestValidateWarnsAboutCapabilities(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs the CLI with fewer capabilities (setpriv)")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux): %v", err)
	}
	unit, err := netlab.UnitPrivileges()
	if err != nil {
		t.Fatal(err)
	}
	p := write(t, `vrrp:
  scripts: [{name: chk, command: [/bin/true], user: nobody}]
  instances:
    - {name: web, interface: eth0, vrid: 51, vips: [192.0.2.100/24], track: {scripts: [chk]}}
`)
	validate := func(priv []string) string {
		t.Helper()
		args := append(append(append([]string{}, priv...), os.Args[0], "-test.run=^$", "--"), "config", "validate", "--config", p)
		name := args[0]
		if len(priv) > 0 {
			name, args = setpriv, append([]string{"--inh-caps=-all", "--ambient-caps=-all"}, args...)
		} else {
			args = args[1:]
		}
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), execEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "OK (1 VRRP instances") {
			t.Fatalf("%v: %v\n%s", priv, err, out)
		}
		return string(out)
	}
	old := validate([]string{"--bounding-set=-all,+net_admin,+net_raw"})
	for _, c := range []string{"CAP_KILL", "CAP_SETGID", "CAP_SETUID"} {
		want := "warning: " + c + " missing (not in this process's effective set nor in its bounding set); needed by vrrp.scripts[0]: script chk run as nobody"
		if !strings.Contains(old, want) {
			t.Errorf("old unit's set: no %q in\n%s", want, old)
		}
	}
	if n := strings.Count(old, "warning: "); n != 3 {
		t.Errorf("old unit's set: %d warnings, want 3:\n%s", n, old)
	}
	bounding := "--bounding-set=-all"
	for _, c := range unit.Bounding {
		bounding += ",+" + c
	}
	for what, out := range map[string]string{"the unit's set": validate([]string{bounding}), "root": validate(nil)} {
		if strings.Contains(out, "warning") {
			t.Errorf("%s: %s", what, out)
		}
	}
}

// vigil config render --node prints one node's configuration from a fleet document, and
// validate --fleet checks every node, placing a problem in FILE[NODE] (issue 14).
func TestFleetDocumentCommands(t *testing.T) {
	example := filepath.Join("..", "..", "deploy", "examples", "fleet-lvs-dr.yaml")
	out, code, msg := run(t, "config", "render", "--node", "lb2", example)
	if code != 0 || !strings.Contains(out, "name: lb2") || !strings.Contains(out, "interface: ens3") || !strings.Contains(out, "priority: 120") {
		t.Fatalf("render: exit %d %q:\n%s", code, msg, out)
	}
	out, code, msg = run(t, "config", "validate", "--fleet", example)
	if code != 0 || strings.Count(out, ": OK (") != 3 {
		t.Fatalf("validate --fleet: exit %d %q:\n%s", code, msg, out)
	}
	bad := filepath.Join(t.TempDir(), "fleet.yaml")
	doc := "vrrp:\n  instances:\n    - { name: a, interface: eth0, vrid: 1, priority: 100, vips: [192.0.2.100/24] }\n" +
		"nodes:\n  n1: {}\n  n2: { vrrp: { instances: [ { name: a, vrid: 300 } ] } }\n"
	if err := os.WriteFile(bad, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code, msg = run(t, "config", "validate", "--fleet", bad)
	if code != 1 || !strings.Contains(out, "n1: OK") || !strings.Contains(out, bad+"[n2]:") || !strings.Contains(msg, "invalid for n2") {
		t.Fatalf("validate --fleet of a bad node: exit %d %q:\n%s", code, msg, out)
	}
	if _, code, _ = run(t, "config", "render", "--node", "n9", bad); code != 1 {
		t.Fatalf("render of an unknown node: exit %d", code)
	}
	if _, code, _ = run(t, "config", "render", bad); code != 2 {
		t.Fatalf("render without --node: exit %d", code)
	}
}
