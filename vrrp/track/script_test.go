package track

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHysteresis(t *testing.T) {
	// Results as a string: '+' success, '-' failure; want: the state after
	// each result, 'U' up or 'D' down, '*' marking a reported change.
	tests := []struct {
		name       string
		rise, fall int
		initUp     bool
		results    string
		want       string
	}{
		{"first success settles up", 3, 3, false, "+", "U*"},
		{"first failure settles down", 3, 3, true, "-", "D*"},
		{"first result settles even when init agrees", 2, 2, true, "+", "U*"},
		{"fall 2", 1, 2, true, "+--", "U* U D*"},
		{"fall interrupted", 1, 2, true, "+-+-+--", "U* U U U U U D*"},
		{"rise 3", 3, 1, true, "---+++", "D* D D D D U*"},
		{"rise interrupted", 3, 1, true, "-++-+++", "D* D D D D D U*"},
		{"rise 1 fall 1 flaps", 1, 1, true, "+-+-", "U* D* U* D*"},
		{"stable up", 2, 2, true, "++++", "U* U U U"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hysteresis{rise: tt.rise, fall: tt.fall, up: tt.initUp, init: true}
			var got []string
			for _, r := range tt.results {
				changed := h.observe(r == '+')
				s := "D"
				if h.up {
					s = "U"
				}
				if changed {
					s += "*"
				}
				got = append(got, s)
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("got %q, want %q", g, tt.want)
			}
		})
	}
}

func TestNewScriptValidation(t *testing.T) {
	bad := []ScriptSpec{
		{Argv: []string{"/bin/true"}},
		{Name: "x"},
		{Name: "x", Argv: []string{""}},
		{Name: "x", Argv: []string{"./check.sh"}},
		{Name: "x", Shell: true},
		{Name: "x", Shell: true, Command: "true", Argv: []string{"/bin/true"}},
		{Name: "x", Command: "true"},
		{Name: "x", Argv: []string{"/bin/true"}, Interval: time.Second, Timeout: 2 * time.Second},
		{Name: "x", Argv: []string{"/bin/true"}, Timeout: 2 * time.Second}, // default interval 1s
		{Name: "x", Argv: []string{"/bin/true"}, Interval: -1},
		{Name: "x", Argv: []string{"/bin/true"}, Rise: -1},
		{Name: "x", Argv: []string{"/bin/true"}, User: ":grp"},
		{Name: "x", Argv: []string{"/bin/true"}, User: "nobody:"},
	}
	for _, spec := range bad {
		if _, err := NewScript(spec, nil); err == nil {
			t.Errorf("NewScript(%+v) accepted", spec)
		} else if !strings.Contains(err.Error(), "script") {
			t.Errorf("error %q does not name the tracker kind", err)
		}
	}
	s, err := NewScript(ScriptSpec{Name: "x", Argv: []string{"/bin/true"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sp := s.Spec()
	if sp.Interval != time.Second || sp.Timeout != time.Second || sp.Rise != 1 || sp.Fall != 1 {
		t.Errorf("defaults: %+v", sp)
	}
	if u := s.Initial(); !u.Up || !u.Init {
		t.Errorf("initial without init_fail: %+v", u)
	}
	s, _ = NewScript(ScriptSpec{Name: "x", Argv: []string{"/bin/true"}, InitFail: true}, nil)
	if u := s.Initial(); u.Up || !u.Init {
		t.Errorf("initial with init_fail: %+v", u)
	}
}

// stateScript writes a script that exits with the number in DIR/state and
// logs each result to DIR/log.
func stateScript(t *testing.T) (dir, script string) {
	dir = t.TempDir()
	writeFile(t, filepath.Join(dir, "state"), "0\n")
	// Shell builtins only: no fork beyond the script's own, so that runs
	// stay well within a 20 ms timeout on a slow machine under -race.
	script = writeScript(t, dir, "check.sh", `read r < "`+dir+`/state"
echo "$r" >> "`+dir+`/log"
echo "result $r"
exit "$r"
`)
	return dir, script
}

func TestScriptSuccessAndFailure(t *testing.T) {
	noLeaks(t)
	dir, script := stateScript(t)
	s, err := NewScript(ScriptSpec{Name: "chk", Argv: []string{script}, Interval: 20 * time.Millisecond}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, s)
	u := r.wait(t, 2*time.Second, "settled up", isUp)
	if u.Detail != "exit status 0: result 0" {
		t.Errorf("detail %q", u.Detail)
	}
	writeFile(t, filepath.Join(dir, "state"), "3\n")
	u = r.wait(t, 2*time.Second, "down", isDown)
	if u.Detail != "exit status 3: result 3" {
		t.Errorf("detail %q", u.Detail)
	}
	writeFile(t, filepath.Join(dir, "state"), "0\n")
	r.wait(t, 2*time.Second, "up again", isUp)
}

// countResults counts the lines of DIR/log equal to want after the first n
// lines.
func countResults(t *testing.T, dir string, from int, want string) (matching, total int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines[min(from, len(lines)):] {
		if l == want {
			matching++
		}
	}
	return matching, len(lines)
}

func TestScriptRiseFall(t *testing.T) {
	noLeaks(t)
	dir, script := stateScript(t)
	const rise, fall = 3, 2
	// 100 ms, not less: the counts below compare the script's own runs with
	// the verdicts, and a run that times out on a loaded machine (the
	// timeout is the interval) counts as a failure the script never wrote.
	s, err := NewScript(ScriptSpec{Name: "chk", Argv: []string{script}, Interval: 100 * time.Millisecond, Rise: rise, Fall: fall}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, s)
	r.wait(t, 2*time.Second, "settled up", isUp) // the first result settles, whatever rise says
	for round := 0; round < 2; round++ {
		_, before := countResults(t, dir, 0, "")
		writeFile(t, filepath.Join(dir, "state"), "1\n")
		r.wait(t, 2*time.Second, "down", isDown)
		// The down needs `fall` failures; one more run may have logged since.
		if n, _ := countResults(t, dir, before, "1"); n < fall || n > fall+1 {
			t.Errorf("round %d: down after %d failures, want %d", round, n, fall)
		}
		_, before = countResults(t, dir, 0, "")
		writeFile(t, filepath.Join(dir, "state"), "0\n")
		r.wait(t, 2*time.Second, "up", isUp)
		if n, _ := countResults(t, dir, before, "0"); n < rise || n > rise+1 {
			t.Errorf("round %d: up after %d successes, want %d", round, n, rise)
		}
	}
	// Flapping shorter than fall changes nothing.
	writeFile(t, filepath.Join(dir, "state"), "1\n")
	waitResults(t, dir, "1", 1)
	writeFile(t, filepath.Join(dir, "state"), "0\n")
	r.quiet(t, 200*time.Millisecond)
}

// waitResults waits until DIR/log ends with n lines equal to want.
func waitResults(t *testing.T, dir, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(dir, "log"))
		if strings.HasSuffix(string(b), strings.Repeat(want+"\n", n)) {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("script did not log %d×%q", n, want)
}

func TestScriptInitFail(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	script := writeScript(t, dir, "slow.sh", "sleep 0.2\nexit 0\n")
	s, err := NewScript(ScriptSpec{Name: "chk", Argv: []string{script}, Interval: time.Second, InitFail: true, Rise: 5}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(testLog(t), s)
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := m.State(s.Kind(), s.Name()); u.Up || !u.Init {
		t.Fatalf("before the first result: %+v", u)
	}
	out := make(chan Update, 10)
	stop := runManager(t, m, out)
	defer stop()
	select {
	case <-m.Ready():
		t.Fatal("ready before the first result")
	case <-time.After(50 * time.Millisecond):
	}
	select {
	case u := <-out:
		if !u.Up || u.Init {
			t.Errorf("first update %+v, want up (the first result settles despite rise 5)", u)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no update")
	}
	select {
	case <-m.Ready():
	case <-time.After(time.Second):
		t.Fatal("not ready after the first result")
	}
}

func TestScriptExecFailureIsFailure(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec.sh")
	writeFile(t, noexec, "#!/bin/sh\nexit 0\n") // 0644
	badInterp := filepath.Join(dir, "badinterp.sh")
	if err := os.WriteFile(badInterp, []byte("#!/nonexistent/interpreter\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		spec ScriptSpec
		want string
	}{
		{"missing", ScriptSpec{Argv: []string{filepath.Join(dir, "missing.sh")}}, "cannot execute " + filepath.Join(dir, "missing.sh") + ": no such file or directory"},
		{"not executable", ScriptSpec{Argv: []string{noexec}}, "permission denied"},
		{"bad interpreter", ScriptSpec{Argv: []string{badInterp}}, "no such file or directory"},
		{"not in PATH", ScriptSpec{Argv: []string{"vigil-no-such-program"}}, "executable file not found"},
		{"unknown user", ScriptSpec{Argv: []string{"/bin/true"}, User: "vigil-no-such-user"}, `cannot run as "vigil-no-such-user"`},
		{"shell: command not found", ScriptSpec{Shell: true, Command: "vigil-no-such-program --x"}, "exit status 127"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Name = "chk"
			tt.spec.Interval = 50 * time.Millisecond
			s, err := NewScript(tt.spec, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			r := run(t, s)
			u := r.wait(t, 2*time.Second, "down", func(u Update) bool { return !u.Init })
			if u.Up {
				t.Fatalf("a script that cannot run counted as success: %s", fmtUpdate(u))
			}
			if !strings.Contains(u.Detail, tt.want) {
				t.Errorf("detail %q, want it to contain %q", u.Detail, tt.want)
			}
		})
	}
}

func TestScriptTimeoutKillsProcessGroup(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	script := writeScript(t, dir, "hang.sh", `sleep 100 &
echo $! > "`+pidFile+`"
echo started
wait
`)
	s, err := NewScript(ScriptSpec{Name: "hang", Argv: []string{script}, Interval: 300 * time.Millisecond, Timeout: 150 * time.Millisecond}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, s)
	start := time.Now()
	u := r.wait(t, 2*time.Second, "down", isDown)
	if el := time.Since(start); el < 140*time.Millisecond {
		t.Errorf("down after %v, before the timeout", el)
	}
	if !strings.HasPrefix(u.Detail, "timeout after 150ms") || !strings.Contains(u.Detail, "started") {
		t.Errorf("detail %q", u.Detail)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if !waitGone(pid, 2*time.Second) {
		t.Errorf("the script's child %d (sleep 100) survived the timeout", pid)
	}
}

// waitGone waits until pid does not exist or is a zombie.
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		if _, st, ok := parseStat(b); ok && (st == 'Z' || st == 'X') {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

func TestScriptLeftoversKilled(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	// Exits at once, leaving a background child in its process group.
	script := writeScript(t, dir, "bg.sh", `sleep 100 >/dev/null 2>&1 &
echo $! > "`+pidFile+`"
exit 0
`)
	s, err := NewScript(ScriptSpec{Name: "bg", Argv: []string{script}, Interval: time.Second}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, s)
	r.wait(t, 2*time.Second, "up", isUp)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if !waitGone(pid, 2*time.Second) {
		t.Errorf("the script's leftover child %d survived", pid)
	}
}

func TestScriptNeverOverlaps(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	script := writeScript(t, dir, "slow.sh", `d=$(dirname "$0")
if [ -e "$d/running" ]; then echo overlap >> "$d/log"; fi
touch "$d/running"
echo start >> "$d/log"
sleep 0.15
rm -f "$d/running"
`)
	s, err := NewScript(ScriptSpec{Name: "slow", Argv: []string{script}, Interval: 20 * time.Millisecond}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	s.spec.Timeout = 5 * time.Second // beyond the interval, which NewScript refuses: runs outlive ticks
	r := run(t, s)
	r.wait(t, 2*time.Second, "up", isUp)
	time.Sleep(time.Second)
	b, _ := os.ReadFile(filepath.Join(dir, "log"))
	log := string(b)
	if strings.Contains(log, "overlap") {
		t.Fatalf("two runs at once:\n%s", log)
	}
	// ~1.15 s of 150 ms runs that start on a 20 ms grid: 6 to 7 runs, not 57.
	if n := strings.Count(log, "start"); n < 4 || n > 9 {
		t.Errorf("%d runs in ~1.15s of a 150ms script every 20ms", n)
	}
}

func TestScriptNoDrift(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	// Each run stamps its start and then takes 20 ms, so a scheduler that
	// counted the interval from the end of a run would fall ≥ 20 ms behind
	// the grid per run (≥ 600 ms over the test); process start-up jitter on
	// a loaded machine is tens of milliseconds, which the bound below allows.
	// Runs that time out under load still stamp their start: the test looks
	// only at the starts, not at the tracker's state.
	script := writeScript(t, dir, "stamp.sh", `date +%s%N >> "$(dirname "$0")/log"; sleep 0.02`+"\n")
	const interval = 100 * time.Millisecond
	s, err := NewScript(ScriptSpec{Name: "stamp", Argv: []string{script}, Interval: interval}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	time.Sleep(30 * interval)
	b, _ := os.ReadFile(filepath.Join(dir, "log"))
	var starts []int64
	for _, l := range strings.Fields(string(b)) {
		v, err := strconv.ParseInt(l, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, v)
	}
	if len(starts) < 10 {
		t.Fatalf("only %d runs in %v of %v intervals", len(starts), 30*interval, interval)
	}
	// Starts jitter with the machine's load (and ticks are skipped when a
	// run overlaps the next one), but stay on the grid first + k×interval.
	// Unwrap each start's offset from the grid step by step: a scheduler
	// that counts the interval from the end of each run drifts by the run
	// time at every step, and the offsets grow; on the grid they only
	// jitter. Compare the median offsets of the first and last thirds.
	cum := make([]float64, len(starts))
	for i := 1; i < len(starts); i++ {
		d := float64(starts[i] - starts[i-1])
		cum[i] = cum[i-1] + d - math.Round(d/float64(interval))*float64(interval)
	}
	third := len(cum) / 3
	early, late := median(cum[:third]), median(cum[len(cum)-third:])
	// Drift only ever makes runs late; early is jitter of the first runs.
	if d := time.Duration(late - early); d > 200*time.Millisecond {
		t.Errorf("drift of %v over %d runs", d, len(cum))
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func TestScriptOutputCapped(t *testing.T) {
	noLeaks(t)
	s, err := NewScript(ScriptSpec{Name: "loud", Shell: true, Command: "head -c 100000 /dev/zero | tr '\\0' 'x'; printf '\\001\\n'; exit 2"}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, s)
	u := r.wait(t, 2*time.Second, "down", isDown)
	if len(u.Detail) > maxOutput+100 || !strings.HasPrefix(u.Detail, "exit status 2: xxx") || !strings.HasSuffix(u.Detail, "...") {
		t.Errorf("detail (%d bytes) %.80q...%q", len(u.Detail), u.Detail, u.Detail[max(0, len(u.Detail)-20):])
	}
}

func TestScriptUser(t *testing.T) {
	requireRoot(t)
	noLeaks(t)
	s, err := NewScript(ScriptSpec{Name: "id", Shell: true, Command: "id -u; id -g; id -G; echo $HOME $USER", User: "nobody:nogroup"}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, s)
	u := r.wait(t, 2*time.Second, "up", isUp)
	if !strings.HasPrefix(u.Detail, "exit status 0: 65534 | 65534 | 65534 | ") || !strings.HasSuffix(u.Detail, " nobody") {
		t.Errorf("as nobody:nogroup: %q", u.Detail)
	}
	// Numeric ids, and no root supplementary group leaks in.
	s, err = NewScript(ScriptSpec{Name: "id", Shell: true, Command: "id -u; id -G", User: "65534"}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	r = run(t, s)
	u = r.wait(t, 2*time.Second, "up", isUp)
	if groups, ok := strings.CutPrefix(u.Detail, "exit status 0: 65534 | "); !ok || groups != "65534" {
		t.Errorf("as 65534: %q", u.Detail)
	}
}
