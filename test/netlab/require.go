package netlab

import (
	"os"
)

// EnvNetNS is the environment variable that turns on the root-only network-namespace tests.
const EnvNetNS = "VIGIL_NETNS"

// EnvInVM is set to 1 in the IPVS test VM (test/vm), where labs start vigil with root's full
// privileges.
const EnvInVM = "VIGIL_IN_VM"

// TB is the part of testing.TB the test helpers use (a *testing.T or *testing.B fits); unlike
// testing.TB it can be faked, so Require's own test can watch it skip.
type TB interface {
	Helper()
	Skip(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	Failed() bool
}

// Require gates a root-only network-namespace test: it skips the test unless VIGIL_NETNS=1, and
// fails it (a required tier must not silently skip) when VIGIL_NETNS=1 but the process is not root
// or iproute2's `ip` is missing.
func Require(t TB) {
	t.Helper()
	if os.Getenv(EnvNetNS) != "1" {
		t.Skip("set " + EnvNetNS + "=1 (root) to run network-namespace tests")
		return
	}
	if os.Geteuid() != 0 {
		t.Fatalf("%s=1 but not running as root (uid %d): network-namespace tests need root; run them with sudo or unset %s",
			EnvNetNS, os.Geteuid(), EnvNetNS)
		return
	}
	if _, err := IPPath(); err != nil {
		t.Fatalf("%s=1 but %v; run test/deps.sh", EnvNetNS, err)
	}
}

// NewForTest is Require, then Cleanup(prefix) of a crashed earlier run, then New(prefix); the lab
// is closed when the test ends. When the test failed, the logs of the lab's processes are written
// to the test log and the lab's directory (logs, captures) is kept and named.
//
// The vigil daemons the lab starts run with the privileges of the shipped systemd unit
// (UnitPrivileges: its capability bounding set, ambient set and no_new_privs, through setpriv),
// so a feature that needs more fails in the tests as it would in production; not in the test VM
// ($VIGIL_IN_VM=1).
func NewForTest(t TB, prefix string) *Lab {
	t.Helper()
	Require(t)
	var priv *Privileges
	if os.Getenv(EnvInVM) != "1" { // the test VM has neither the unit file nor util-linux
		var err error
		if priv, err = UnitPrivileges(); err != nil {
			t.Fatalf("%v", err)
			return nil
		}
	}
	prefix, err := Tagged(prefix)
	if err != nil {
		t.Fatalf("%v", err)
		return nil
	}
	if err := Cleanup(prefix); err != nil {
		t.Fatalf("netlab: remove leftovers of an earlier run: %v", err)
		return nil
	}
	l, err := New(prefix)
	if err != nil {
		t.Fatalf("%v", err)
		return nil
	}
	l.SetDaemonPrivileges(priv)
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range l.Processes() {
				t.Logf("netlab: log of %s %v (pid %d) on node %s:\n%s", p.Name, p.Args, p.Pid(), p.Node().Name, p.LogTail(16<<10))
			}
		}
		// VIGIL_LAB_KEEP=1 keeps a passing run's files too: the daemons'
		// logs of a benchmark, read afterwards.
		if t.Failed() || os.Getenv("VIGIL_LAB_KEEP") != "" {
			l.KeepFiles = true
			t.Logf("netlab: keeping lab directory %s", l.Dir())
		}
		if err := l.Close(); err != nil {
			t.Errorf("netlab: close lab %s: %v", prefix, err)
		}
	})
	return l
}
