// Package proctest helps tests of code that kills the scripts it runs: it
// runs a test again in a child process that lacks CAP_KILL, as vigil does
// under a unit that does not grant it, so that killing a script of another
// user fails with the EPERM a real deployment meets. For tests only.
package proctest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const envChild = "VIGIL_PROCTEST_NO_CAP_KILL"

// capKill is CAP_KILL's bit in /proc/PID/status's capability masks.
const capKill = 5

// WithoutCapKill runs the calling top-level test again in a child process
// started by setpriv with CAP_KILL dropped from its bounding (and so
// effective) set, and reports false once the child passed (the child's
// output is logged; its failure fails t). In that child it returns true,
// after checking that CAP_KILL is really gone: the test then does its work.
// It skips the test when not root (it runs scripts as another user) or
// without setpriv.
//
//	if !proctest.WithoutCapKill(t) {
//		return
//	}
func WithoutCapKill(t *testing.T) bool {
	t.Helper()
	if os.Getenv(envChild) == "1" {
		if hasCap(t, capKill) {
			t.Fatal("proctest: the child process still has CAP_KILL")
		}
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs a script as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--bounding-set", "-kill", "--inh-caps", "-kill", "--",
		exe, "-test.run", "^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envChild+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("the test without CAP_KILL:\n%s", out)
	if err != nil {
		t.Fatalf("the test failed without CAP_KILL: %v", err)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatal("the test did not run in the child process")
	}
	return false
}

// hasCap reports whether the process has capability bit c in its
// effective set.
func hasCap(t *testing.T, c uint) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return m&(1<<c) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}

// Nobody returns the uid and gid of the user nobody, skipping the test
// when there is none.
func Nobody(t *testing.T) (uid, gid uint32) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid64, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid64, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("nobody: uid %q gid %q", u.Uid, u.Gid)
	}
	return uint32(uid64), uint32(gid64)
}

// SharedDir returns a new directory that every user may use (mode 0777,
// under os.TempDir, whose parents other users can reach, unlike
// t.TempDir's), removed when the test ends.
func SharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vigil-proctest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// KillGroupAs sends SIGKILL to process group pgid with kill(1) (procps'
// or util-linux's: a shell's builtin may not take a process group) running
// as uid:gid: a process without CAP_KILL can still end another user's
// processes that way. A group that has already ended is an error too.
func KillGroupAs(uid, gid uint32, pgid int) error {
	kill, err := exec.LookPath("kill")
	if err != nil {
		return fmt.Errorf("kill process group %d: no kill(1): %w", pgid, err)
	}
	cmd := exec.Command(kill, "-KILL", "--", "-"+strconv.Itoa(pgid))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kill process group %d as uid %d: %w: %s", pgid, uid, err, bytes.TrimSpace(out))
	}
	return nil
}
