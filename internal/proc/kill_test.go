package proc

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"vigil/internal/testlog"

	"golang.org/x/sys/unix"

	"vigil/internal/proc/proctest"
)

func readPid(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				return pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Without CAP_KILL (the shipped unit's bounding set lacked it) a script
// running as another user cannot be killed at its timeout. Run logs the
// kill error, saying what is missing, and returns KillWait after the kill
// instead of waiting as long as the script lives; the script is reaped in
// the background when it ends.
func TestRunTimeoutWithoutCapKill(t *testing.T) {
	if !proctest.WithoutCapKill(t) {
		return
	}
	uid, gid := proctest.Nobody(t)
	dir := proctest.SharedDir(t)
	pidf := filepath.Join(dir, "pid")
	lb := &testlog.Buffer{}
	log := slog.New(slog.NewTextHandler(lb, nil))
	before := ReadStats()

	const timeout, killWait = 200 * time.Millisecond, 200 * time.Millisecond
	start := time.Now()
	r := Run(context.Background(), Cmd{
		Argv:    []string{"/bin/sh", "-c", `echo $$ > "$0"; echo started; exec sleep 30`, pidf},
		User:    "nobody",
		Timeout: timeout, KillWait: killWait, Log: log,
	})
	took := time.Since(start)
	pgid := readPid(t, pidf)
	defer proctest.KillGroupAs(uid, gid, pgid) // when an assertion fails before the kill below
	t.Logf("Run returned after %v: %s", took, r.Detail())
	// The margin covers a loaded machine; the script would hold Run 30 s.
	if took > timeout+killWait+3*time.Second {
		t.Errorf("Run returned after %v, want within timeout %v + kill wait %v + 3s", took, timeout, killWait)
	}
	if !r.TimedOut || !r.Abandoned || !errors.Is(r.KillErr, unix.EPERM) || r.Reaped == nil {
		t.Fatalf("result %+v", r)
	}
	if want := "timeout after 200ms; cannot kill its process group (operation not permitted), left running: started"; r.Detail() != want {
		t.Errorf("detail %q, want %q", r.Detail(), want)
	}
	out := lb.String()
	for _, w := range []string{
		`msg="cannot signal the process group of a script"`, "program=/bin/sh", "pgid=" + strconv.Itoa(pgid),
		"user=nobody", "signal=SIGKILL", "errno=EPERM", "needs CAP_KILL", "no longer waiting for it",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q:\n%s", w, out)
		}
	}
	st := ReadStats()
	if st.KillFailures != before.KillFailures+1 || st.Abandoned != before.Abandoned+1 || st.Lingering != before.Lingering+1 {
		t.Errorf("stats %+v, before %+v", st, before)
	}
	select {
	case <-r.Reaped:
		t.Fatal("reported reaped while the script still runs")
	default:
	}

	if err := proctest.KillGroupAs(uid, gid, pgid); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Reaped:
	case <-time.After(5 * time.Second):
		t.Fatal("the abandoned script was not reaped after it ended")
	}
	waitUntil(t, 5*time.Second, "lingering back to before", func() bool { return ReadStats().Lingering == before.Lingering })
	waitUntil(t, 5*time.Second, "the log of the end", func() bool { return strings.Contains(lb.String(), "abandoned script ended at last") })
}

// After a script of another user exits, killing what it left in its group
// fails without CAP_KILL even when nothing is left (the leader's zombie is
// still in the group): that is not reported. Live leftovers are.
func TestRunLeftoversWithoutCapKill(t *testing.T) {
	if !proctest.WithoutCapKill(t) {
		return
	}
	uid, gid := proctest.Nobody(t)
	dir := proctest.SharedDir(t)
	lb := &testlog.Buffer{}
	log := slog.New(slog.NewTextHandler(lb, nil))

	r := Run(context.Background(), Cmd{Argv: []string{"/bin/sh", "-c", "exit 0"}, User: "nobody", Log: log})
	if !r.Exited() || r.Exit != 0 {
		t.Fatalf("result %+v", r)
	}
	if out := lb.String(); out != "" {
		t.Errorf("a clean exit logged:\n%s", out)
	}

	pidf := filepath.Join(dir, "pid")
	before := ReadStats()
	r = Run(context.Background(), Cmd{
		Argv: []string{"/bin/sh", "-c", `sleep 30 >/dev/null 2>&1 & echo $$ > "$0"; exit 0`, pidf},
		User: "nobody", Log: log,
	})
	pgid := readPid(t, pidf)
	defer func() {
		if err := proctest.KillGroupAs(uid, gid, pgid); err != nil {
			t.Errorf("the leftover: %v", err)
		}
	}()
	if !r.Exited() || r.Exit != 0 {
		t.Fatalf("result %+v", r)
	}
	out := lb.String()
	for _, w := range []string{"cannot kill the processes a script left behind", "pgid=" + strconv.Itoa(pgid), "user=nobody", "errno=EPERM", "needs CAP_KILL"} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q:\n%s", w, out)
		}
	}
	if st := ReadStats(); st.KillFailures != before.KillFailures+1 {
		t.Errorf("kill failures %d, before %d", st.KillFailures, before.KillFailures)
	}
}
