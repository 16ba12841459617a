package netlab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The shipped unit parses, and gives the daemon at least what VRRP needs.
func TestShippedUnitPrivileges(t *testing.T) {
	p, err := UnitPrivileges()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"net_admin", "net_raw"} {
		if !strings.Contains(strings.Join(p.Bounding, " "), c) {
			t.Errorf("%s: bounding set %v lacks %s", p.Unit, p.Bounding, c)
		}
	}
	if _, err := CapMask(p.Bounding); err != nil {
		t.Error(err)
	}
}

func TestParseUnit(t *testing.T) {
	for _, tc := range []struct {
		name, unit string
		want       *Privileges
		err        string
	}{
		{"systemd's rules", `[Unit]
CapabilityBoundingSet=CAP_SYS_ADMIN
[Service]
# CapabilityBoundingSet=CAP_CHOWN
CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN
CapabilityBoundingSet=CAP_KILL \
  CAP_SETUID
AmbientCapabilities=CAP_SYS_TIME
AmbientCapabilities=
AmbientCapabilities=CAP_NET_RAW CAP_KILL
NoNewPrivileges=yes
[Install]
CapabilityBoundingSet=CAP_SYS_MODULE
`, &Privileges{Bounding: []string{"kill", "net_admin", "net_raw", "setuid"}, Ambient: []string{"kill", "net_raw"}, NoNewPrivileges: true}, ""},
		{"an empty assignment resets", "[Service]\nCapabilityBoundingSet=CAP_SYS_ADMIN\nCapabilityBoundingSet=\nCapabilityBoundingSet=CAP_NET_RAW\n",
			&Privileges{Bounding: []string{"net_raw"}}, ""},
		{"no bounding set", "[Service]\nAmbientCapabilities=CAP_NET_RAW\n", nil, "no CapabilityBoundingSet="},
		{"inverted", "[Service]\nCapabilityBoundingSet=~CAP_SYS_ADMIN\n", nil, "inverted"},
		{"ambient beyond the bounding set", "[Service]\nCapabilityBoundingSet=CAP_NET_RAW\nAmbientCapabilities=CAP_NET_ADMIN\n", nil, "lacks"},
		{"not a capability", "[Service]\nCapabilityBoundingSet=net_raw\n", nil, "not a capability name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseUnit(strings.NewReader(tc.unit))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v\nwant %+v", got, err, tc.want)
			}
		})
	}
	p := &Privileges{Bounding: []string{"net_admin", "net_raw"}, Ambient: []string{"net_raw"}, NoNewPrivileges: true}
	if got, want := strings.Join(p.SetprivArgs(), " "), "--bounding-set=-all,+net_admin,+net_raw --inh-caps=-all,+net_raw --ambient-caps=-all,+net_raw --no-new-privs"; got != want {
		t.Fatalf("setpriv %s, want %s", got, want)
	}
}

// capStatus returns the capability lines and NoNewPrivs of /proc/PID/status.
func capStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && (strings.HasPrefix(k, "Cap") || k == "NoNewPrivs") {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// A test lab starts `vigil run` (here a stand-in named vigil) under the unit's privileges:
// exactly its bounding, effective and ambient sets, as root; other programs, and a daemon
// started with FullPrivileges, keep the test's.
func TestDaemonRunsWithUnitPrivileges(t *testing.T) {
	l := NewForTest(t, testPrefix)
	n, err := l.AddNode("n1", netip.MustParsePrefix("192.0.2.11/24"))
	if err != nil {
		t.Fatal(err)
	}
	priv := l.DaemonPrivileges()
	if priv == nil {
		t.Fatal("a test lab has no daemon privileges")
	}
	bin := filepath.Join(l.Dir(), "vigil")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	bnd, err := CapMask(priv.Bounding)
	if err != nil {
		t.Fatal(err)
	}
	amb, err := CapMask(priv.Ambient)
	if err != nil {
		t.Fatal(err)
	}
	mine := capStatus(t, os.Getpid())
	hex := func(m uint64) string { return fmt.Sprintf("%016x", m) }
	nnp := "0"
	if priv.NoNewPrivileges {
		nnp = "1"
	}
	for _, tc := range []struct {
		what string
		opts StartOptions
		name string
		args []string
		want map[string]string
	}{
		{"vigil run", StartOptions{}, bin, []string{"run", "--config", "x"},
			map[string]string{"CapBnd": hex(bnd), "CapEff": hex(bnd), "CapPrm": hex(bnd), "CapInh": hex(amb), "CapAmb": hex(amb), "NoNewPrivs": nnp}},
		{"vigil run with FullPrivileges", StartOptions{FullPrivileges: true}, bin, []string{"run"}, mine},
		{"vigil, not run", StartOptions{}, bin, []string{"version"}, mine},
		{"another program", StartOptions{}, "sleep", []string{"30"}, mine},
	} {
		p, err := n.StartWith(tc.opts, tc.name, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		// Wait for the exec chain (ip, setpriv, sh) to reach sleep.
		var got map[string]string
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			comm, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Pid()) + "/comm")
			if strings.TrimSpace(string(comm)) == "sleep" {
				got = capStatus(t, p.Pid())
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: never exec'd sleep (comm %q):\n%s", tc.what, comm, p.Log())
			}
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: %s %s, want %s", tc.what, k, got[k], v)
			}
		}
		if err := p.Stop(2 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
}
