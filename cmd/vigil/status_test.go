package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"vigil/node"
	"vigil/node/api"
)

type fakeStatus struct{ st node.Status }

func (f fakeStatus) Status() node.Status { return f.st }

func statusSample(now time.Time) node.Status {
	return node.Status{
		Node: "lb1", Version: "1.2.3", Revision: "0123456789abcdef0123", ConfigPath: "/etc/vigil/vigil.yaml",
		ConfigHash: "fedcba9876543210fedcba", StartedAt: now.Add(-3*time.Hour - 2*time.Minute),
		Instances: []node.InstanceStatus{
			{Name: "web", Interface: "eth0", VRID: 51, Family: "ipv4", Version: 3, Mode: "multicast", Source: "192.0.2.11",
				State: "master", BasePriority: 150, EffectivePriority: 150, Master: "192.0.2.11", MasterPriority: 150,
				AdvertInterval: 1, MasterAdvertInterval: 1, MasterDownInterval: 3.414, Preempt: true, Accept: true,
				VIPs: []node.VIPStatus{{Address: "192.0.2.100/24", Dev: "eth0"}, {Address: "192.0.2.101/24", Dev: "eth0"}}, LastTransition: now.Add(-192 * time.Second), LastReason: "master_down_timer"},
			{Name: "db", Interface: "eth1", VRID: 52, Family: "ipv6", Version: 3, Mode: "unicast", Peers: []string{"2001:db8::12"},
				Source: "fe80::1", State: "backup", BasePriority: 100, EffectivePriority: 80, Master: "fe80::2", MasterPriority: 120,
				AdvertInterval: 0.1, MasterAdvertInterval: 0.2, MasterDownInterval: 0.7, Preempt: true,
				VIPs: []node.VIPStatus{{Address: "2001:db8::100/64", Dev: "eth1"}}, LastTransition: now.Add(-1500 * time.Millisecond), LastReason: "higher_priority_advert"},
			{Name: "mgmt", Interface: "eth2", VRID: 53, Family: "ipv4", Version: 2, Mode: "multicast", Source: "198.51.100.1",
				State: "fault", Fault: "interface_down", BasePriority: 90, EffectivePriority: 90, AdvertInterval: 1,
				VIPs: []node.VIPStatus{{Address: "198.51.100.100/24", Dev: "eth2"}}, LastTransition: now.Add(-50 * time.Hour), LastReason: "interface_down"},
		},
	}
}

// serveStatus runs the admin API with a fake status on a socket in a
// temporary directory.
func serveStatus(t *testing.T, st node.Status) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.sock")
	srv, err := api.Listen(path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(context.Background(), api.Handlers{Status: fakeStatus{st}})
	}()
	t.Cleanup(func() { srv.Close(); <-done })
	return path
}

func TestStatusTable(t *testing.T) {
	sock := serveStatus(t, statusSample(time.Now()))
	out, code, msg := run(t, "status", "--socket", sock)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	for _, want := range []string{
		"Node:     lb1", "Version:  1.2.3 (revision 0123456789ab)", "/etc/vigil/vigil.yaml (sha256 fedcba987654)",
		"NAME", "INTERFACE", "VRID", "FAMILY", "STATE", "PRIORITY", "MASTER", "INTERVAL", "LAST TRANSITION", "REASON", "FAULT", "VIPS",
		"web", "eth0", "51", "ipv4", "MASTER", "150/150", "192.0.2.11 (150, self)", "1s", "3m12s ago", "master_down_timer", "192.0.2.100/24", "192.0.2.101/24",
		"db", "eth1", "52", "ipv6", "BACKUP", "100/80", "fe80::2 (120)", "100ms (master 200ms)", "higher_priority_advert", "2001:db8::100/64",
		"mgmt", "FAULT", "interface_down", "2d2h ago",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	// Columns line up: every row's VIPS cell starts where the header's does.
	lines := strings.Split(out, "\n")
	var hdr string
	for _, l := range lines {
		if strings.HasPrefix(l, "NAME") {
			hdr = l
		}
	}
	col := strings.Index(hdr, "VIPS")
	for _, vip := range []string{"192.0.2.100/24", "192.0.2.101/24", "2001:db8::100/64", "198.51.100.100/24"} {
		for _, l := range lines {
			if i := strings.Index(l, vip); i >= 0 && i != col {
				t.Errorf("%s at column %d, header VIPS at %d:\n%s", vip, i, col, out)
			}
		}
	}
	t.Logf("\n%s", out)
}

// printStatus with a fixed clock: the whole table, as an operator sees it.
func TestPrintStatusGolden(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := statusSample(now)
	st.StartedAt = time.Time{}
	var b bytes.Buffer
	if err := printStatus(&b, &st, now); err != nil {
		t.Fatal(err)
	}
	want := `Node:     lb1
Version:  1.2.3 (revision 0123456789ab)
Config:   /etc/vigil/vigil.yaml (sha256 fedcba987654)

NAME  INTERFACE  VRID  FAMILY  STATE   PRIORITY  MASTER                  INTERVAL              LAST TRANSITION  REASON                  FAULT           VIPS
web   eth0       51    ipv4    MASTER  150/150   192.0.2.11 (150, self)  1s                    3m12s ago        master_down_timer       -               192.0.2.100/24
                                                                                                                                                        192.0.2.101/24
db    eth1       52    ipv6    BACKUP  100/80    fe80::2 (120)           100ms (master 200ms)  1.5s ago         higher_priority_advert  -               2001:db8::100/64
mgmt  eth2       53    ipv4    FAULT   90/90     -                       1s                    2d2h ago         interface_down          interface_down  198.51.100.100/24
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	printStatus(&b, &node.Status{Node: "lb1"}, now)
	if !strings.Contains(b.String(), "No VRRP instances configured.") {
		t.Fatalf("empty node:\n%s", b.String())
	}
}

// -o json prints exactly the daemon's /v1/status document.
func TestStatusJSON(t *testing.T) {
	st := statusSample(time.Now().UTC())
	sock := serveStatus(t, st)
	out, code, msg := run(t, "status", "--socket", sock, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	want, _ := json.MarshalIndent(st, "", "  ")
	if out != string(want)+"\n" {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
	var back node.Status
	if err := json.Unmarshal([]byte(out), &back); err != nil || back.Instances[1].Master != "fe80::2" {
		t.Fatalf("%v %+v", err, back)
	}
}

// VIGIL_SOCKET replaces the default socket; --socket wins over it.
func TestStatusSocketEnv(t *testing.T) {
	sock := serveStatus(t, statusSample(time.Now()))
	t.Setenv("VIGIL_SOCKET", sock)
	if _, code, msg := run(t, "status", "-o", "json"); code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	if _, code, _ := run(t, "status", "--socket", filepath.Join(t.TempDir(), "none.sock")); code != 1 {
		t.Fatalf("--socket did not override VIGIL_SOCKET: exit %d", code)
	}
}

func TestStatusNotRunning(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "admin.sock")
	_, code, msg := run(t, "status", "--socket", missing)
	if code != 1 || msg != "vigil status: vigil is not running (no socket at "+missing+")" {
		t.Fatalf("exit %d: %q", code, msg)
	}
	// A socket file nothing listens on (a crashed daemon's).
	stale := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	_, code, msg = run(t, "status", "--socket", stale)
	if code != 1 || !strings.Contains(msg, "vigil is not running") || !strings.Contains(msg, "stale socket") {
		t.Fatalf("exit %d: %q", code, msg)
	}
	// A regular file.
	file := filepath.Join(t.TempDir(), "admin.sock")
	os.WriteFile(file, nil, 0o600)
	if _, code, msg = run(t, "status", "--socket", file); code != 1 || !strings.Contains(msg, "not a socket") {
		t.Fatalf("exit %d: %q", code, msg)
	}
}

// A daemon that accepts but never answers: a timeout, exit 1.
func TestStatusTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, code, msg := run(t, "status", "--socket", path, "--timeout", "200ms")
	if code != 1 || !strings.Contains(msg, "did not answer") {
		t.Fatalf("exit %d: %q", code, msg)
	}
}

// An API error is shown with its message and code.
func TestStatusAPIError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	srv, err := api.Listen(path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go srv.Serve(context.Background(), api.Handlers{}) // no status source: 501
	_, code, msg := run(t, "status", "--socket", path)
	if code != 1 || !strings.Contains(msg, "501") || !strings.Contains(msg, "not_implemented") {
		t.Fatalf("exit %d: %q", code, msg)
	}
}

func TestStatusPermissionMessage(t *testing.T) {
	path := serveStatus(t, node.Status{})
	err := dialError(path, &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)}, time.Second)
	if !strings.Contains(err.Error(), "permission denied on "+path) || !strings.Contains(err.Error(), "mode -rw-------") {
		t.Fatalf("%v", err)
	}
	if os.Geteuid() == 0 {
		return // root connects regardless of the mode
	}
	os.Chmod(path, 0o600)
	defer os.Chmod(path, 0o660)
	_, code, msg := run(t, "status", "--socket", path)
	if code != 1 || !strings.Contains(msg, "permission denied") {
		t.Fatalf("exit %d: %q", code, msg)
	}
}

func TestStatusUsage(t *testing.T) {
	for _, args := range [][]string{
		{"status", "-o", "xml"},
		{"status", "extra"},
		{"status", "--no-such-flag"},
	} {
		if _, code, msg := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, msg)
		}
	}
}

func TestAgo(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 350 * time.Millisecond: "350ms", 1500 * time.Millisecond: "1.5s", 42*time.Second + 400*time.Millisecond: "42s",
		3*time.Minute + 12*time.Second: "3m12s", 5*time.Hour + 7*time.Minute + 20*time.Second: "5h7m",
		2 * time.Hour: "2h0m", 76 * time.Hour: "3d4h",
	} {
		if got := ago(d); got != want {
			t.Errorf("ago(%s) = %q, want %q", d, got, want)
		}
	}
}

// The virtual servers section: quorum as live/needed weight, one row per
// check, a lost quorum and its sorry server called out.
func TestPrintVirtualServersGolden(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := node.Status{Node: "lb1", VirtualServers: []node.VirtualServerStatus{
		{Name: "web", Service: "tcp 192.0.2.100:80", Scheduler: "rr", Quorum: 1, QuorumUp: true, LiveWeight: 1, Reals: []node.RealServerStatus{
			{Address: "198.51.100.11:8080", Forward: "nat", Weight: 1, Up: true, Checks: []node.CheckStatus{
				{Type: "http", Up: true, Detail: "GET /health: status 200"}, {Type: "tcp", Up: true, Detail: "connected"}}},
			{Address: "198.51.100.12:8080", Forward: "nat", Weight: 1, Up: false, Checks: []node.CheckStatus{
				{Type: "http", Up: false, Detail: "connection refused"}}},
		}},
		{Name: "quo", Service: "tcp 192.0.2.100:82", Scheduler: "wlc", Quorum: 2, LiveWeight: 1, Sorry: "198.51.100.9:8080", Reals: []node.RealServerStatus{
			{Address: "198.51.100.11:8080", Forward: "dr", Weight: 1, Up: true}}},
	}}
	var b bytes.Buffer
	if err := printStatus(&b, &st, now); err != nil {
		t.Fatal(err)
	}
	want := `Node:     lb1
Version:  
Config:    (sha256 )

No VRRP instances configured.

VIRTUAL SERVER  SERVICE                 QUORUM                              REAL SERVER             STATE  WEIGHT  CHECK      DETAIL
web             tcp 192.0.2.100:80 rr   1/1 up                              198.51.100.11:8080 nat  up     1       http up    GET /health: status 200
                                                                                                                   tcp up     connected
                                                                            198.51.100.12:8080 nat  DOWN   1       http down  connection refused
quo             tcp 192.0.2.100:82 wlc  1/2 LOST (sorry 198.51.100.9:8080)  198.51.100.11:8080 dr   up     1       -          no checks
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
