package nsdo

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary run the helper half of a test in a
// child process started with fewer capabilities.
const helperEnv = "NSDO_TEST_HELPER"

// requireRoot gates the tests that need root, as the network-namespace
// tests do (VIGIL_NETNS=1; test/netlab imports this package, so its
// Require cannot be used here).
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Getenv("VIGIL_NETNS") != "1" {
		t.Skip("set VIGIL_NETNS=1 (root) to run namespace tests")
	}
	if os.Geteuid() != 0 {
		t.Fatalf("VIGIL_NETNS=1 but not root (uid %d)", os.Geteuid())
	}
}

// inode returns the namespace inode of a handle.
func inode(t *testing.T, ns netns.NsHandle) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(ns), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// threadNS is the inode of the calling thread's network namespace.
func threadNS(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// The daemon runs without CAP_SYS_ADMIN (the systemd unit's bounding set),
// and setns(2) needs it even into the namespace the thread is already in:
// Do into the own namespace must not call it. The test runs itself again
// under setpriv with only NET_ADMIN and NET_RAW.
func TestDoOwnNamespaceWithoutSysAdmin(t *testing.T) {
	if os.Getenv(helperEnv) == "own" {
		ownNamespaceHelper(t)
		return
	}
	requireRoot(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) not found: %v", err)
	}
	caps := "-all,+net_admin,+net_raw"
	cmd := exec.Command(setpriv, "--bounding-set="+caps, "--inh-caps="+caps, "--ambient-caps="+caps, "--",
		os.Args[0], "-test.run=^TestDoOwnNamespaceWithoutSysAdmin$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"=own")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("helper under %s: %v\n%s", caps, err, out)
	}
}

func ownNamespaceHelper(t *testing.T) {
	// The premise: this process cannot setns, not even into its own namespace.
	runtime.LockOSThread()
	cur, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if err := netns.Set(cur); !errors.Is(err, unix.EPERM) {
		t.Fatalf("setns into the own namespace: %v, want EPERM (the test needs a process without CAP_SYS_ADMIN)", err)
	}
	runtime.UnlockOSThread()

	ran := false
	var in uint64
	err = Do(cur, func() error {
		ran = true
		in = threadNS(t)
		return nil
	})
	if err != nil || !ran {
		t.Fatalf("Do into the own namespace: ran %v, %v", ran, err)
	}
	if want := inode(t, cur); in != want {
		t.Fatalf("fn ran in namespace %d, want %d", in, want)
	}
	// fn's error is returned as is.
	boom := errors.New("boom")
	if err := Do(cur, func() error { return boom }); err != boom {
		t.Fatalf("Do returned %v, want fn's error", err)
	}
}

// Into another namespace Do still switches, and the thread comes back.
func TestDoOtherNamespace(t *testing.T) {
	requireRoot(t)
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	other, err := netns.New() // an anonymous namespace, gone with its last handle
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer other.Close()
	if err := netns.Set(orig); err != nil {
		t.Fatalf("back to the original namespace: %v (thread stays locked)", err)
	}
	runtime.UnlockOSThread()

	var in uint64
	if err := Do(other, func() error { in = threadNS(t); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := inode(t, other); in != want {
		t.Fatalf("fn ran in namespace %d, want %d", in, want)
	}
	if want := inode(t, orig); in == want {
		t.Fatal("fn ran in the original namespace")
	}
	// Threads that ran fn went back: a fresh Do into orig finds itself there.
	if err := Do(orig, func() error { in = threadNS(t); return nil }); err != nil || in != inode(t, orig) {
		t.Fatalf("Do into the original namespace: %v, ran in %d", err, in)
	}
}

// A closed handle is an error that names the namespace, not a silent run.
func TestDoBadHandle(t *testing.T) {
	err := Do(netns.None(), func() error { t.Error("fn ran"); return nil })
	if err == nil || !strings.Contains(err.Error(), "network namespace") {
		t.Fatalf("Do(None): %v", err)
	}
}
