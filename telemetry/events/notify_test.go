package events

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// recorder collects script results.
type recorder chan ScriptResult

func (r recorder) add(res ScriptResult) { r <- res }

func (r recorder) next(t *testing.T) ScriptResult {
	t.Helper()
	select {
	case res := <-r:
		return res
	case <-time.After(20 * time.Second):
		t.Fatal("no script result")
	}
	return ScriptResult{}
}

// A slow script does not delay Publish, and the scripts of later events
// wait for it: they run one at a time in Seq order.
func TestSlowScriptKeepsOrderAndNeverBlocksPublish(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	logf := filepath.Join(dir, "order")
	slow := script(t, dir, "slow", `sleep 1; echo "$VIGIL_EVENT_SEQ $VIGIL_HOOK" >> `+logf)
	fast := script(t, dir, "fast", `echo "$VIGIL_EVENT_SEQ $VIGIL_HOOK" >> `+logf)
	all := script(t, dir, "all", `echo "$VIGIL_EVENT_SEQ notify $*" >> `+logf)
	log, _ := testLogger(t)
	b := NewBus(log)
	defer b.Close()
	NewNotifier(b, log, NotifyConfig{Instances: map[string]ScriptSpec{
		"VI_1": {Master: []string{slow}, Backup: []string{fast}, Fault: []string{fast}, All: []string{all}},
	}})

	start := time.Now()
	b.Publish(inst("VI_1", "backup", "master", "master_down_timer", 100))
	b.Publish(inst("VI_1", "master", "backup", "higher_priority_advert", 100))
	b.Publish(inst("VI_1", "backup", "master", "preempted", 100))
	b.Publish(inst("VI_1", "master", "fault", "interface_down", 100))
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("4 Publish calls took %v", d)
	}
	waitFor(t, 15*time.Second, "8 script runs", func() bool { return len(lines(logf)) == 8 })
	want := []string{
		"1 master", "1 notify INSTANCE VI_1 MASTER 100",
		"2 backup", "2 notify INSTANCE VI_1 BACKUP 100",
		"3 master", "3 notify INSTANCE VI_1 MASTER 100",
		"4 fault", "4 notify INSTANCE VI_1 FAULT 100",
	}
	if got := lines(logf); !slices.Equal(got, want) {
		t.Fatalf("order:\n got %q\nwant %q", got, want)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("two 1 s scripts finished in %v: they overlapped", d)
	}
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	// A zombie is dead too (in a container nobody may reap it).
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, 5*time.Second, path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	for _, tc := range []struct {
		name, body string
	}{
		// dies on SIGTERM
		{"term", `sleep 60 & echo $! > $D/child; echo $$ > $D/leader; wait`},
		// ignores SIGTERM, leader and child: needs the SIGKILL
		{"ignores-term", `trap "" TERM; sleep 60 & echo $! > $D/child; echo $$ > $D/leader; while :; do sleep 1; done`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			dir := t.TempDir()
			s := script(t, dir, "hang", "D="+dir+"\n"+tc.body)
			log, lb := testLogger(t)
			b := NewBus(log)
			defer b.Close()
			rec := make(recorder, 10)
			NewNotifier(b, log, NotifyConfig{
				Instances: map[string]ScriptSpec{"VI_1": {Master: []string{s}, Timeout: 300 * time.Millisecond}},
				KillGrace: 200 * time.Millisecond,
				OnResult:  rec.add,
			})
			b.Publish(inst("VI_1", "backup", "master", "master_down_timer", 100))
			leader, child := readPid(t, filepath.Join(dir, "leader")), readPid(t, filepath.Join(dir, "child"))
			r := rec.next(t)
			if !r.TimedOut || r.Err == nil {
				t.Fatalf("result %+v", r)
			}
			if r.Duration < 300*time.Millisecond || r.Duration > 5*time.Second {
				t.Fatalf("duration %v", r.Duration)
			}
			waitFor(t, 5*time.Second, "the process group to die", func() bool { return !alive(leader) && !alive(child) })
			if !strings.Contains(lb.String(), "timed out") {
				t.Fatalf("timeout not logged")
			}
		})
	}
}

// The generic script gets keepalived's arguments, appended to its own.
func TestGenericScriptArgv(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	all := script(t, dir, "all", `printf '%s\n' "$@" > `+dir+`/argv.$VIGIL_EVENT_SEQ`)
	rec := make(recorder, 10)
	b := NewBus(nil)
	defer b.Close()
	spec := ScriptSpec{All: []string{all, "fixed arg"}}
	NewNotifier(b, nil, NotifyConfig{
		Instances: map[string]ScriptSpec{"VI_1": spec, "my inst": spec},
		Groups:    map[string]ScriptSpec{"edge": spec},
		OnResult:  rec.add,
	})
	b.Publish(inst("VI_1", "backup", "master", "master_down_timer", 100))
	b.Publish(Event{Kind: KindGroup, Name: "edge", From: "master", To: "backup", Reason: "sync_group", Priority: 77})
	b.Publish(inst("VI_1", "master", "fault", "tracker_fault", 90))
	b.Publish(inst("my inst", "backup", "init", "shutdown", 254))
	b.Publish(Event{Kind: KindGroup, Name: "edge", From: "backup", To: "stop", Reason: "shutdown"})
	want := [][]string{
		{"fixed arg", "INSTANCE", "VI_1", "MASTER", "100"},
		{"fixed arg", "GROUP", "edge", "BACKUP", "0"},
		{"fixed arg", "INSTANCE", "VI_1", "FAULT", "90"},
		{"fixed arg", "INSTANCE", "my inst", "STOP", "254"},
		{"fixed arg", "GROUP", "edge", "STOP", "0"},
	}
	for i, w := range want {
		r := rec.next(t)
		if r.Err != nil || r.Hook != "notify" {
			t.Fatalf("run %d: %+v", i, r)
		}
		if got := lines(filepath.Join(dir, fmt.Sprintf("argv.%d", i+1))); !slices.Equal(got, w) {
			t.Fatalf("event %d: argv %q, want %q", i+1, got, w)
		}
		if !slices.Equal(r.Argv, append([]string{all}, w...)) {
			t.Fatalf("event %d: result argv %q", i+1, r.Argv)
		}
	}
}

func TestStateScriptSelection(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	logf := filepath.Join(dir, "log")
	mk := func(name string) []string {
		return []string{script(t, dir, name, `echo "$VIGIL_EVENT_SEQ `+name+` $1" >> `+logf), "arg"}
	}
	b := NewBus(nil)
	defer b.Close()
	NewNotifier(b, nil, NotifyConfig{Instances: map[string]ScriptSpec{
		"VI_1": {Master: mk("m"), Backup: mk("b"), Fault: mk("f"), Stop: mk("s")},
	}})
	b.Publish(inst("VI_1", "init", "backup", "startup", 100))
	b.Publish(inst("VI_1", "backup", "master", "master_down_timer", 100))
	b.Publish(inst("VI_1", "master", "fault", "interface_down", 100))
	b.Publish(inst("VI_1", "fault", "backup", "fault_cleared", 100))
	b.Publish(inst("VI_2", "backup", "master", "preempted", 100)) // no spec: nothing
	b.Publish(inst("VI_1", "backup", "init", "shutdown", 100))
	want := []string{"1 b arg", "2 m arg", "3 f arg", "4 b arg", "6 s arg"}
	waitFor(t, 10*time.Second, "5 runs", func() bool { return len(lines(logf)) >= 5 })
	b.Close()
	if got := lines(logf); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestScriptEnvironment(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	envf := filepath.Join(dir, "env.out")
	s := script(t, dir, "dump-env", `env | LC_ALL=C sort > `+envf)
	rec := make(recorder, 10)
	b := NewBus(nil)
	defer b.Close()
	NewNotifier(b, nil, NotifyConfig{
		Instances: map[string]ScriptSpec{"VI_1": {Master: []string{s}}},
		Groups:    map[string]ScriptSpec{"edge": {Fault: []string{s}}},
		Env:       []string{"EXTRA=yes", "VIGIL_STATE=overridden?"},
		OnResult:  rec.add,
	})
	at := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.UTC)
	e := inst("VI_1", "backup", "master", "master_down_timer", 150)
	e.Time, e.VRID, e.Interface, e.Master = at, 51, "eth0", netip.MustParseAddr("192.0.2.11")
	b.Publish(e)
	if r := rec.next(t); r.Err != nil {
		t.Fatal(r.Err)
	}
	env := lines(envf)
	want := []string{
		"EXTRA=yes",
		"PATH=" + DefaultScriptPath,
		"VIGIL_EVENT_SEQ=1",
		"VIGIL_EVENT_TIME=2025-06-07T08:09:10.123456789Z",
		"VIGIL_FROM=backup",
		"VIGIL_HOOK=master",
		"VIGIL_INSTANCE=VI_1",
		"VIGIL_INTERFACE=eth0",
		"VIGIL_KIND=instance",
		"VIGIL_MASTER=192.0.2.11",
		"VIGIL_NAME=VI_1",
		"VIGIL_PRIORITY=150",
		"VIGIL_REASON=master_down_timer",
		"VIGIL_STATE=MASTER",
		"VIGIL_TO=master",
		"VIGIL_VRID=51",
	}
	// sh itself adds PWD (and maybe SHLVL, _); ignore those.
	env = slices.DeleteFunc(env, func(s string) bool {
		return strings.HasPrefix(s, "PWD=") || strings.HasPrefix(s, "SHLVL=") || strings.HasPrefix(s, "_=") || strings.HasPrefix(s, "OLDPWD=")
	})
	if !slices.Equal(env, want) {
		t.Fatalf("environment:\n got %q\nwant %q", env, want)
	}

	b.Publish(Event{Kind: KindGroup, Name: "edge", From: "master", To: "fault", Reason: "tracker_fault", Priority: 0})
	if r := rec.next(t); r.Err != nil {
		t.Fatal(r.Err)
	}
	env = lines(envf)
	for _, w := range []string{"VIGIL_GROUP=edge", "VIGIL_KIND=group", "VIGIL_STATE=FAULT", "VIGIL_HOOK=fault", "VIGIL_EVENT_SEQ=2"} {
		if !slices.Contains(env, w) {
			t.Errorf("group env lacks %s: %q", w, env)
		}
	}
	for _, v := range env {
		if strings.HasPrefix(v, "VIGIL_INSTANCE=") || strings.HasPrefix(v, "VIGIL_VRID=") || strings.HasPrefix(v, "VIGIL_MASTER=") {
			t.Errorf("group env has %s", v)
		}
	}
}

// A script that cannot be executed is logged with the reason, and the
// scripts after it still run.
func TestUnrunnableScriptIsLoggedAndLaterOnesRun(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	logf := filepath.Join(dir, "log")
	good := script(t, dir, "good", `echo "$VIGIL_EVENT_SEQ $VIGIL_HOOK" >> `+logf)
	noexec := filepath.Join(dir, "noexec")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\ntrue\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	failing := script(t, dir, "failing", `echo "it broke" >&2; exit 3`)
	log, lb := testLogger(t)
	rec := make(recorder, 20)
	b := NewBus(log)
	defer b.Close()
	NewNotifier(b, log, NotifyConfig{
		Instances: map[string]ScriptSpec{"VI_1": {
			Master: []string{"/nonexistent/notify.sh"},
			Backup: []string{noexec},
			Fault:  []string{failing},
			All:    []string{good},
		}},
		OnResult: rec.add,
	})
	b.Publish(inst("VI_1", "backup", "master", "master_down_timer", 100))
	b.Publish(inst("VI_1", "master", "backup", "higher_priority_advert", 100))
	b.Publish(inst("VI_1", "backup", "fault", "tracker_fault", 100))

	var errs []error
	for range 6 {
		r := rec.next(t)
		if r.Hook != "notify" {
			errs = append(errs, r.Err)
			if r.Err == nil {
				t.Fatalf("%s script succeeded: %+v", r.Hook, r)
			}
		}
	}
	if !errors.Is(errs[0], os.ErrNotExist) || !errors.Is(errs[1], os.ErrPermission) {
		t.Fatalf("errors %v", errs)
	}
	if got, want := lines(logf), []string{"1 notify", "2 notify", "3 notify"}; !slices.Equal(got, want) {
		t.Fatalf("later scripts: got %q, want %q", got, want)
	}
	out := lb.String()
	for _, w := range []string{
		"notify script could not be executed", "/nonexistent/notify.sh", "no such file or directory",
		"permission denied", "notify script failed", "exit_code=3", "it broke",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q", w)
		}
	}
}

func TestScriptRunsAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change user")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	daemon, err := user.LookupGroup("daemon")
	if err != nil {
		t.Skip("no group daemon")
	}
	noLeaks(t)
	// t.TempDir's parent is private to root; nobody must reach the script.
	dir, err := os.MkdirTemp("", "vigil-events-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	idf := filepath.Join(dir, "id.out")
	s := script(t, dir, "id", `echo "$(id -u) $(id -g) $(id -G) $USER $HOME" > `+idf)
	rec := make(recorder, 10)
	b := NewBus(nil)
	defer b.Close()
	NewNotifier(b, nil, NotifyConfig{
		Instances: map[string]ScriptSpec{
			"VI_1": {Master: []string{s}, User: "nobody"},
			"VI_2": {Master: []string{s}, User: "nobody:daemon"},
			"VI_3": {Master: []string{s}, User: "no-such-user-here"},
		},
		OnResult: rec.add,
	})
	b.Publish(inst("VI_1", "backup", "master", "preempted", 100))
	if r := rec.next(t); r.Err != nil {
		t.Fatal(r.Err, r.Output)
	}
	want := fmt.Sprintf("%s %s %s nobody %s", nobody.Uid, nobody.Gid, nobody.Gid, nobody.HomeDir)
	if got := lines(idf); len(got) != 1 || got[0] != want {
		t.Fatalf("id: got %q, want %q", got, want)
	}
	b.Publish(inst("VI_2", "backup", "master", "preempted", 100))
	if r := rec.next(t); r.Err != nil {
		t.Fatal(r.Err)
	}
	want = fmt.Sprintf("%s %s %s nobody %s", nobody.Uid, daemon.Gid, daemon.Gid, nobody.HomeDir)
	if got := lines(idf); len(got) != 1 || got[0] != want {
		t.Fatalf("id: got %q, want %q", got, want)
	}
	b.Publish(inst("VI_3", "backup", "master", "preempted", 100))
	if r := rec.next(t); r.Err == nil || !strings.Contains(r.Err.Error(), "no-such-user-here") {
		t.Fatalf("unknown user: %v", r.Err)
	}
}

// A notifier that falls behind skips the oldest events, logs it, and still
// runs the scripts of the latest state.
func TestNotifierOverflowKeepsLatest(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	logf := filepath.Join(dir, "log")
	slow := script(t, dir, "slow", `sleep 0.5; echo "$VIGIL_EVENT_SEQ" >> `+logf)
	log, lb := testLogger(t)
	b := NewBus(log)
	defer b.Close()
	NewNotifier(b, log, NotifyConfig{Instances: map[string]ScriptSpec{"VI_1": {All: []string{slow}}}, Buffer: 2})
	for i := range 20 {
		to := []string{"master", "backup"}[i%2]
		b.Publish(inst("VI_1", "x", to, "preempted", 100))
	}
	waitFor(t, 10*time.Second, "the last event's script", func() bool {
		l := lines(logf)
		return len(l) > 0 && l[len(l)-1] == "20"
	})
	if got := lines(logf); len(got) > 4 {
		t.Fatalf("ran %d scripts with a buffer of 2: %q", len(got), got)
	}
	if !strings.Contains(lb.String(), "notify scripts fell behind") {
		t.Fatal("overflow not logged")
	}
}

// Close drains the queue (the STOP scripts of a shutdown run), and cuts a
// script that outlives the drain timeout.
func TestCloseRunsQueuedStopScripts(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	logf := filepath.Join(dir, "log")
	stop := script(t, dir, "stop", `sleep 0.2; echo "$VIGIL_NAME $VIGIL_STATE" >> `+logf)
	b := NewBus(nil)
	spec := ScriptSpec{Stop: []string{stop}}
	NewNotifier(b, nil, NotifyConfig{Instances: map[string]ScriptSpec{"VI_1": spec, "VI_2": spec}, Groups: map[string]ScriptSpec{"edge": spec}})
	b.Publish(inst("VI_1", "master", "init", "shutdown", 100))
	b.Publish(inst("VI_2", "backup", "init", "shutdown", 100))
	b.Publish(Event{Kind: KindGroup, Name: "edge", From: "master", To: "stop", Reason: "shutdown"})
	b.Close()
	if got, want := lines(logf), []string{"VI_1 STOP", "VI_2 STOP", "edge STOP"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}

	b2 := NewBus(nil, WithDrainTimeout(300*time.Millisecond))
	hang := script(t, dir, "hang", `echo $$ > `+dir+`/pid; exec sleep 60`)
	rec := make(recorder, 10)
	NewNotifier(b2, nil, NotifyConfig{Instances: map[string]ScriptSpec{"VI_1": {Stop: []string{hang}}}, OnResult: rec.add, KillGrace: 100 * time.Millisecond})
	b2.Publish(inst("VI_1", "master", "init", "shutdown", 100))
	pid := readPid(t, filepath.Join(dir, "pid"))
	start := time.Now()
	b2.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %v", d)
	}
	if r := rec.next(t); r.Err == nil || r.TimedOut {
		t.Fatalf("result %+v", r)
	}
	waitFor(t, 5*time.Second, "the script to die", func() bool { return !alive(pid) })
}

func TestNotifierUpdateAndClose(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	logf := filepath.Join(dir, "log")
	a := script(t, dir, "a", `echo "a $VIGIL_EVENT_SEQ" >> `+logf)
	c := script(t, dir, "c", `echo "c $VIGIL_EVENT_SEQ" >> `+logf)
	b := NewBus(nil)
	defer b.Close()
	n := NewNotifier(b, nil, NotifyConfig{Instances: map[string]ScriptSpec{"VI_1": {Master: []string{a}}}})
	b.Publish(inst("VI_1", "backup", "master", "preempted", 100))
	waitFor(t, 5*time.Second, "a", func() bool { return len(lines(logf)) == 1 })
	n.Update(NotifyConfig{Instances: map[string]ScriptSpec{"VI_1": {Master: []string{c}}}})
	b.Publish(inst("VI_1", "backup", "master", "preempted", 100))
	waitFor(t, 5*time.Second, "c", func() bool { return len(lines(logf)) == 2 })
	n.Close()
	b.Publish(inst("VI_1", "backup", "master", "preempted", 100))
	time.Sleep(100 * time.Millisecond)
	if got, want := lines(logf), []string{"a 1", "c 2"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestScriptSpecValidate(t *testing.T) {
	dir := t.TempDir()
	good := script(t, dir, "good", "true")
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("x"), 0o644)
	if err := (ScriptSpec{Master: []string{good}, All: []string{"true"}, User: "root", Timeout: time.Second}).Validate(); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	err := ScriptSpec{
		Master: []string{"/nonexistent/x"},
		Backup: []string{noexec},
		Fault:  []string{},
		Stop:   []string{dir},
		All:    []string{"no-such-command-anywhere"},
		User:   "no-such-user-here:root",
	}.Validate()
	if err == nil {
		t.Fatal("invalid spec accepted")
	}
	for _, w := range []string{
		"master: /nonexistent/x: no such file or directory",
		"backup: " + noexec + " is not executable",
		"fault: empty command",
		"stop: " + dir + " is not a regular file",
		`notify: "no-such-command-anywhere" not found in PATH`,
		"user: ",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

// Virtual and real server changes run keepalived's quorum_up/quorum_down
// and notify_up/notify_down commands, as given (no arguments added), with
// the VIGIL_* environment naming the service and the real server; a real
// server without commands runs nothing.
func TestLBScripts(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	s := script(t, dir, "rec", `echo "$VIGIL_HOOK $VIGIL_KIND $VIGIL_VIRTUAL_SERVER $VIGIL_SERVICE $VIGIL_REAL_SERVER $VIGIL_STATE args=$#" >> `+out)
	rec := make(recorder, 10)
	b := NewBus(nil)
	defer b.Close()
	NewNotifier(b, nil, NotifyConfig{
		VirtualServers: map[string]LBScripts{"web": {QuorumUp: []string{s}, QuorumDown: []string{s},
			RealServers: map[string]RSScripts{"[198.51.100.11]:tcp:8080": {Up: []string{s}, Down: []string{s}}}}},
		OnResult: rec.add,
	})
	svc := "[192.0.2.100]:tcp:80"
	b.Publish(Event{Kind: KindRealServer, Name: "web", Service: svc, RealServer: "[198.51.100.12]:tcp:8080", From: StateUp, To: StateDown}) // no commands
	b.Publish(Event{Kind: KindRealServer, Name: "web", Service: svc, RealServer: "[198.51.100.11]:tcp:8080", From: StateUp, To: StateDown})
	b.Publish(Event{Kind: KindVirtualServer, Name: "web", Service: svc, From: StateUp, To: StateDown})
	b.Publish(Event{Kind: KindRealServer, Name: "web", Service: svc, RealServer: "[198.51.100.11]:tcp:8080", From: StateDown, To: StateUp})
	b.Publish(Event{Kind: KindVirtualServer, Name: "web", Service: svc, From: StateDown, To: StateUp})
	for range 4 {
		if r := rec.next(t); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	want := []string{
		"notify_down real_server web [192.0.2.100]:tcp:80 [198.51.100.11]:tcp:8080 DOWN args=0",
		"quorum_down virtual_server web [192.0.2.100]:tcp:80  DOWN args=0",
		"notify_up real_server web [192.0.2.100]:tcp:80 [198.51.100.11]:tcp:8080 UP args=0",
		"quorum_up virtual_server web [192.0.2.100]:tcp:80  UP args=0",
	}
	if got := lines(out); !slices.Equal(got, want) {
		t.Fatalf("scripts ran:\n got %q\nwant %q", got, want)
	}
}

// keepalived's lvs_notify_fifo lines for virtual and real servers.
func TestKeepalivedLineLB(t *testing.T) {
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{Event{Kind: KindVirtualServer, Name: "web", Service: "[192.0.2.100]:tcp:80", To: StateDown}, "VS [192.0.2.100]:tcp:80 DOWN\n"},
		{Event{Kind: KindVirtualServer, Name: "m", Service: "FWM 7", To: StateUp}, "VS FWM 7 UP\n"},
		{Event{Kind: KindRealServer, Name: "web", Service: "[2001:db8::1]:udp:53", RealServer: "[2001:db8::11]:udp:5353", To: StateUp}, "RS [2001:db8::11]:udp:5353 [2001:db8::1]:udp:53 UP\n"},
	} {
		if got, ok := KeepalivedLine(tc.e); !ok || got != tc.want {
			t.Errorf("KeepalivedLine(%+v) = %q, %v; want %q", tc.e, got, ok, tc.want)
		}
	}
}
