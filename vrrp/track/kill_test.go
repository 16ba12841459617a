package track

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"vigil/internal/testlog"

	"vigil/internal/proc"
	"vigil/internal/proc/proctest"
)

// A tracked script of another user that hangs cannot be killed at its
// timeout without CAP_KILL. The tracker still reports it down (instead of
// waiting as long as it lives, frozen at its last state), starts no second
// run next to it, and runs it again once it has ended.
func TestScriptUnkillableWithoutCapKill(t *testing.T) {
	if !proctest.WithoutCapKill(t) {
		return
	}
	uid, gid := proctest.Nobody(t)
	noLeaks(t)
	dir := proctest.SharedDir(t)
	flag, pidf, runs := filepath.Join(dir, "hang"), filepath.Join(dir, "pid"), filepath.Join(dir, "runs")
	writeFile(t, flag, "")
	lb := &testlog.Buffer{}
	s, err := NewScript(ScriptSpec{
		Name:  "chk",
		Shell: true,
		Command: `echo run >> ` + runs + `
if [ -e ` + flag + ` ]; then echo $$ > ` + pidf + `; exec sleep 30; fi`,
		User:     "nobody",
		Interval: 300 * time.Millisecond,
		Timeout:  200 * time.Millisecond,
	}, debugLogger(lb))
	if err != nil {
		t.Fatal(err)
	}
	before := proc.ReadStats()
	began := time.Now()
	r := run(t, s)
	u := r.wait(t, 8*time.Second, "down", isDown)
	took := time.Since(began)
	pid, err := os.ReadFile(pidf)
	if err != nil {
		t.Fatal(err)
	}
	pgid := strings.TrimSpace(string(pid))
	defer func() {
		if n, err := atoi(pgid); err == nil {
			_ = proctest.KillGroupAs(uid, gid, n)
		}
	}()
	t.Logf("down after %v: %s", took, u.Detail)
	// The margin covers a loaded machine; the script would hold the run 30 s.
	if want := 200*time.Millisecond + proc.DefaultKillWait + 3*time.Second; took > want {
		t.Errorf("down after %v, want within %v", took, want)
	}
	if !strings.HasPrefix(u.Detail, "timeout after 200ms; cannot kill its process group (operation not permitted), left running") {
		t.Errorf("detail %q", u.Detail)
	}
	out := lb.String()
	for _, w := range []string{`tracker="script chk"`, "cannot signal the process group of a script", "pgid=" + pgid, "user=nobody", "errno=EPERM", "needs CAP_KILL"} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q:\n%s", w, out)
		}
	}
	if st := proc.ReadStats(); st.Abandoned != before.Abandoned+1 {
		t.Errorf("abandoned %d, before %d", st.Abandoned, before.Abandoned)
	}

	// No second run while the first one lives.
	time.Sleep(1200 * time.Millisecond)
	if n := len(strings.Fields(readFile(t, runs))); n != 1 {
		t.Errorf("%d runs while the first could not be killed", n)
	}
	r.quiet(t, 0)

	// Once it has ended, the script runs again (and now passes).
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	n, _ := atoi(pgid)
	if err := proctest.KillGroupAs(uid, gid, n); err != nil {
		t.Fatal(err)
	}
	r.wait(t, 3*time.Second, "up", isUp)
}
