package events

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/internal/proc"
	"vigil/internal/proc/proctest"
)

// A notify script running as another user cannot be killed at its timeout
// when vigil lacks CAP_KILL (the shipped unit's bounding set did not have
// it). The kill errors are logged with what is missing, and the ordered
// queue goes on after the timeout and the kill grace: the next event's
// script runs while the stuck one is left to end by itself.
func TestUnkillableScriptDoesNotHoldTheQueue(t *testing.T) {
	if !proctest.WithoutCapKill(t) {
		return
	}
	uid, gid := proctest.Nobody(t)
	noLeaks(t)
	dir := proctest.SharedDir(t)
	pidf := filepath.Join(dir, "pid")
	hang := script(t, dir, "hang", `trap "" TERM; echo $$ > `+pidf+`; exec sleep 30`)
	marks := filepath.Join(dir, "marks")
	mark := script(t, dir, "mark", `echo "$VIGIL_NAME" >> `+marks)
	log, lb := testLogger(t)
	b := NewBus(log)
	defer b.Close()
	rec := make(recorder, 10)
	const timeout, grace = 300 * time.Millisecond, 300 * time.Millisecond
	NewNotifier(b, log, NotifyConfig{
		Instances: map[string]ScriptSpec{
			"VI_1": {Master: []string{hang}, User: "nobody", Timeout: timeout},
			"VI_2": {Master: []string{mark}},
		},
		KillGrace: grace,
		OnResult:  rec.add,
	})
	before := proc.ReadStats()
	b.Publish(inst("VI_1", "backup", "master", "master_down_timer", 100))
	b.Publish(inst("VI_2", "backup", "master", "master_down_timer", 100))
	pgid := readPid(t, pidf)
	t.Cleanup(func() { _ = proctest.KillGroupAs(uid, gid, pgid) }) // before noLeaks' check

	r1, r2 := rec.next(t), rec.next(t)
	t.Logf("VI_1: %v after %v; VI_2 started %v after VI_1", r1.Err, r1.Duration, r2.Started.Sub(r1.Started))
	if r1.Event.Name != "VI_1" || !r1.TimedOut || !r1.Abandoned || r1.ExitCode != -1 || r1.Err == nil ||
		!strings.Contains(r1.Err.Error(), "cannot kill its process group, left running") || !strings.Contains(r1.Err.Error(), "operation not permitted") {
		t.Fatalf("stuck script's result %+v", r1)
	}
	if r2.Event.Name != "VI_2" || r2.Err != nil {
		t.Fatalf("next script's result %+v", r2)
	}
	// The margin covers a loaded machine; the stuck script lives 30 s.
	if d := r2.Started.Sub(r1.Started); d > timeout+grace+3*time.Second {
		t.Errorf("the next script started %v after the stuck one, want within timeout %v + grace %v + 3s", d, timeout, grace)
	}
	if got := lines(marks); len(got) != 1 || got[0] != "VI_2" {
		t.Errorf("marks %q", got)
	}
	out := lb.String()
	for _, w := range []string{
		`msg="cannot signal the process group of a script"`, "signal=SIGTERM", "signal=SIGKILL", "errno=EPERM",
		"user=nobody", "pgid=" + strconv.Itoa(pgid), "program=" + hang, "name=VI_1", "hook=master", "needs CAP_KILL",
		"notify script could not be killed; left running",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q", w)
		}
	}
	if st := proc.ReadStats(); st.Abandoned != before.Abandoned+1 || st.Lingering != before.Lingering+1 {
		t.Errorf("stats %+v, before %+v", st, before)
	}

	if err := proctest.KillGroupAs(uid, gid, pgid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the stuck script to be reaped", func() bool { return proc.ReadStats().Lingering == before.Lingering })
}
