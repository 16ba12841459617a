package track

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"vigil/node/policy"
)

// ScriptSpec configures a script tracker (keepalived vrrp_script).
//
// Each run's exit status 0 is a success, anything else a failure: a non-zero
// exit, death by a signal, a timeout, and also a script that cannot be
// started at all — a missing or non-executable file, a bad interpreter, an
// unknown user (keepalived counts that as a success, its issue #2126; vigil
// does not). Detail carries the reason and the first bytes of the output.
//
// States: before its first result a script is in the init state, reported
// as Up unless InitFail (Update.Init is true). The first result settles the
// state at once, whatever Rise and Fall say (keepalived does the same).
// After that it takes Fall consecutive failures to go down and Rise
// consecutive successes to come back up; a result that agrees with the
// current state resets the count.
//
// Scheduling: the first run starts when the tracker starts, then one every
// Interval on a fixed grid (run k starts at start + k×Interval; no drift). A
// tick that finds the previous run still going is skipped: a script never
// runs twice at once. A run that outlives Timeout is a failure ("timeout"):
// its whole process group is killed with SIGKILL. When a run ends, whatever
// it left behind in its process group is killed too, so checks cannot pile
// up processes; a process that must outlive its check has to leave the
// group (setsid).
//
// Environment: runs start in "/" with stdin from /dev/null and a clean
// environment (PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin,
// and HOME, USER and LOGNAME of the user it runs as), not vigil's.
type ScriptSpec struct {
	Name string
	// Argv is the program and its arguments, run without a shell. The
	// program is an absolute path, or a name without a slash that is looked
	// up in vigil's PATH.
	Argv []string
	// Shell, if set, runs Command with /bin/sh -c instead of Argv.
	Shell   bool
	Command string
	// Interval between runs (default 1 s).
	Interval time.Duration
	// Timeout of a run (default Interval; at most Interval).
	Timeout time.Duration
	// Rise and Fall are the consecutive successes (failures) needed to come
	// up (go down); default 1.
	Rise, Fall int
	// InitFail starts the script down instead of up until its first result.
	InitFail bool
	// User is "user" or "user:group" (names or numeric ids) to run as; the
	// user's supplementary groups are set too. Empty: vigil's own user
	// (root). It is looked up at every run: an unknown user is a failed run.
	User string
}

// Script is a script tracker.
type Script struct {
	spec ScriptSpec
	argv []string
	log  *slog.Logger
}

// maxOutput is how much of a run's output is kept for Detail.
const maxOutput = 2048

// scriptPath is the PATH scripts run with.
const scriptPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// NewScript validates spec, fills in its defaults and returns the tracker.
// log may be nil.
func NewScript(spec ScriptSpec, log *slog.Logger) (*Script, error) {
	fail := func(format string, a ...any) (*Script, error) {
		return nil, fmt.Errorf("track: script %q: %s", spec.Name, fmt.Sprintf(format, a...))
	}
	if spec.Name == "" {
		return fail("empty name")
	}
	var argv []string
	switch {
	case spec.Shell && strings.TrimSpace(spec.Command) == "":
		return fail("shell set but command is empty")
	case spec.Shell && len(spec.Argv) > 0:
		return fail("both shell command and argv given")
	case spec.Shell:
		argv = []string{"/bin/sh", "-c", spec.Command}
	case len(spec.Argv) == 0 || spec.Argv[0] == "":
		return fail("no program given")
	case spec.Command != "":
		return fail("command given without shell: use argv")
	case strings.Contains(spec.Argv[0], "/") && !filepath.IsAbs(spec.Argv[0]):
		return fail("program %q: a path must be absolute (scripts run in /)", spec.Argv[0])
	default:
		argv = append([]string(nil), spec.Argv...)
	}
	if spec.Interval < 0 || spec.Timeout < 0 {
		return fail("negative interval or timeout")
	}
	if spec.Interval == 0 {
		spec.Interval = time.Second
	}
	if spec.Timeout == 0 {
		spec.Timeout = spec.Interval
	}
	if spec.Timeout > spec.Interval {
		return fail("timeout %v longer than interval %v", spec.Timeout, spec.Interval)
	}
	if spec.Rise < 0 || spec.Fall < 0 {
		return fail("negative rise or fall")
	}
	spec.Rise, spec.Fall = max(spec.Rise, 1), max(spec.Fall, 1)
	if spec.User != "" {
		name, group, _ := strings.Cut(spec.User, ":")
		if name == "" || strings.HasSuffix(spec.User, ":") && group == "" {
			return fail("bad user %q: want user or user:group", spec.User)
		}
	}
	return &Script{spec: spec, argv: argv, log: orDiscard(log).With("tracker", "script "+spec.Name)}, nil
}

func (s *Script) Kind() policy.Kind { return policy.KindScript }
func (s *Script) Name() string      { return s.spec.Name }

// Spec returns the normalized spec (defaults filled in).
func (s *Script) Spec() ScriptSpec { return s.spec }

func (s *Script) Initial() Update {
	d := "init: no result yet, assumed up"
	if s.spec.InitFail {
		d = "init: no result yet, assumed down (init_fail)"
	}
	return Update{Kind: policy.KindScript, Name: s.spec.Name, Up: !s.spec.InitFail, Init: true, Detail: d}
}

// hysteresis applies rise and fall to a series of results.
type hysteresis struct {
	rise, fall int
	up, init   bool
	count      int // consecutive results against the current state
}

// observe records a result and reports whether the state changed (leaving
// init counts as a change).
func (h *hysteresis) observe(ok bool) bool {
	if h.init {
		h.init, h.up, h.count = false, ok, 0
		return true
	}
	if ok == h.up {
		h.count = 0
		return false
	}
	h.count++
	need := h.rise
	if h.up {
		need = h.fall
	}
	if h.count < need {
		return false
	}
	h.up, h.count = ok, 0
	return true
}

// runResult is the outcome of one run.
type runResult struct {
	ok     bool
	detail string
	at     time.Time
}

// Run schedules the script until ctx ends (see ScriptSpec).
func (s *Script) Run(ctx context.Context, emit func(Update)) error {
	h := hysteresis{rise: s.spec.Rise, fall: s.spec.Fall, up: !s.spec.InitFail, init: true}
	results := make(chan runResult, 1)
	var wg sync.WaitGroup
	defer wg.Wait() // a run in progress is killed through ctx
	running := false
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			now := time.Now()
			if running {
				s.log.Warn("previous run still going; skipping this run", "interval", s.spec.Interval)
			} else {
				running = true
				wg.Add(1)
				go func() {
					defer wg.Done()
					results <- s.runOnce(ctx)
				}()
			}
			next = next.Add(s.spec.Interval)
			if !next.After(now) { // fell behind (a stalled machine): keep the grid, skip the missed ticks
				missed := now.Sub(next)/s.spec.Interval + 1
				next = next.Add(missed * s.spec.Interval)
			}
			timer.Reset(time.Until(next))
		case r := <-results:
			running = false
			if ctx.Err() != nil {
				return nil
			}
			was := h
			if r.ok {
				s.log.Debug("script succeeded", "detail", r.detail)
			} else {
				s.log.Debug("script failed", "detail", r.detail)
			}
			if !h.observe(r.ok) {
				continue
			}
			switch {
			case was.init:
				s.log.Info("script settled", "up", h.up, "detail", r.detail)
			case h.up:
				s.log.Info("script up", "rise", s.spec.Rise, "detail", r.detail)
			default:
				s.log.Warn("script down", "fall", s.spec.Fall, "detail", r.detail)
			}
			emit(Update{Up: h.up, Detail: r.detail, At: r.at})
		}
	}
}

// runOnce runs the script once and kills its process group when it ends,
// times out or ctx ends.
func (s *Script) runOnce(ctx context.Context) runResult {
	res := func(ok bool, format string, a ...any) runResult {
		return runResult{ok: ok, detail: fmt.Sprintf(format, a...), at: time.Now()}
	}
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + scriptPath}
	attr := &syscall.SysProcAttr{Setpgid: true}
	if s.spec.User != "" {
		cred, u, err := lookupCredential(s.spec.User)
		if err != nil {
			return res(false, "cannot run as %q: %v", s.spec.User, err)
		}
		attr.Credential = cred
		cmd.Env = append(cmd.Env, "HOME="+u.HomeDir, "USER="+u.Username, "LOGNAME="+u.Username)
	} else if u, err := user.Current(); err == nil {
		cmd.Env = append(cmd.Env, "HOME="+u.HomeDir, "USER="+u.Username, "LOGNAME="+u.Username)
	}
	cmd.SysProcAttr = attr
	out := &capped{max: maxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	// Bounds the wait for output when a process that left the group still
	// holds the pipe.
	cmd.WaitDelay = 500 * time.Millisecond
	if err := cmd.Start(); err != nil {
		return res(false, "cannot execute %s: %v", s.argv[0], unwrapExecErr(err))
	}
	pgid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- waitExited(pgid) }()

	timer := time.NewTimer(s.spec.Timeout)
	defer timer.Stop()
	timedOut := false
	select {
	case err := <-exited:
		if err != nil {
			s.log.Warn("waiting for script", "err", err)
		}
	case <-timer.C:
		timedOut = true
		_ = unix.Kill(-pgid, unix.SIGKILL)
		<-exited
	case <-ctx.Done():
		_ = unix.Kill(-pgid, unix.SIGKILL)
		<-exited
	}
	// The leader is a zombie still (not reaped), so the group id cannot have
	// been reused: kill what is left of the group, then reap.
	_ = unix.Kill(-pgid, unix.SIGKILL)
	err := cmd.Wait()
	output := out.text()
	if output != "" {
		output = ": " + output
	}
	switch {
	case ctx.Err() != nil:
		return res(false, "stopped")
	case timedOut:
		return res(false, "timeout after %v, process group killed%s", s.spec.Timeout, output)
	case err == nil || errors.Is(err, exec.ErrWaitDelay):
		return res(true, "exit status 0%s", output)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return res(false, "killed by signal %v%s", ws.Signal(), output)
		}
		return res(false, "exit status %d%s", ee.ExitCode(), output)
	}
	return res(false, "%v%s", err, output)
}

// waitExited waits until pid has exited without reaping it.
func waitExited(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return err
		}
	}
}

// unwrapExecErr drops os/exec's "fork/exec PATH:" prefix, which repeats the
// path.
func unwrapExecErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// lookupCredential resolves "user" or "user:group" (names or numeric ids).
func lookupCredential(spec string) (*syscall.Credential, *user.User, error) {
	name, group, hasGroup := strings.Cut(spec, ":")
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.ParseUint(name, 10, 32); nerr != nil {
			return nil, nil, err
		}
		if u, err = user.LookupId(name); err != nil {
			return nil, nil, err
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("user %q: uid %q: %w", name, u.Uid, err)
	}
	gidStr := u.Gid
	if hasGroup {
		g, err := user.LookupGroup(group)
		if err != nil {
			if _, nerr := strconv.ParseUint(group, 10, 32); nerr != nil {
				return nil, nil, err
			}
			if g, err = user.LookupGroupId(group); err != nil {
				return nil, nil, err
			}
		}
		gidStr = g.Gid
	}
	gid, err := strconv.ParseUint(gidStr, 10, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("user %q: gid %q: %w", name, gidStr, err)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil && uint32(g) != cred.Gid {
				cred.Groups = append(cred.Groups, uint32(g))
			}
		}
	}
	return cred, u, nil
}

// capped keeps the first max bytes written to it.
type capped struct {
	mu  sync.Mutex
	buf []byte
	max int
	cut bool
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.max - len(c.buf)
	if len(p) > room {
		c.cut = true
	}
	if room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// text is the output on one line: valid UTF-8, control characters and
// newlines replaced, trimmed, "..." when cut.
func (c *capped) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return oneLine(c.buf, c.cut)
}

func oneLine(b []byte, cut bool) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 && (cut && len(b) < utf8.UTFMax) {
			break // a character cut by the cap
		}
		b = b[n:]
		switch {
		case r == '\n':
			sb.WriteString(" | ")
		case r == utf8.RuneError, unicode.IsControl(r):
			sb.WriteRune(' ')
		default:
			sb.WriteRune(r)
		}
	}
	s := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(sb.String()), "|"))
	if cut {
		s += " ..."
	}
	return s
}
