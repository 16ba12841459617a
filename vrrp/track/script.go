package track

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"vigil/internal/proc"
	"vigil/internal/safe"
	"vigil/vrrp/policy"
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
// group (setsid). A group that cannot be killed (a script of another user
// while vigil lacks CAP_KILL) is logged; its run fails a second after the
// kill, and every tick fails without starting another run until it has
// ended. A panic in the runner is logged and counted as a failed run.
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
	// runFn runs the script once: runOnce, or a test double.
	runFn func(context.Context) runResult
}

// maxOutput is how much of a run's output is kept for Detail.
const maxOutput = 2048

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
	sc := &Script{spec: spec, argv: argv, log: orDiscard(log).With("tracker", "script "+spec.Name)}
	sc.runFn = sc.runOnce
	return sc, nil
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
	// lingering, when not nil, is the run's process group that could not
	// be killed; it is closed when the group has ended.
	lingering <-chan struct{}
}

// Run schedules the script until ctx ends (see ScriptSpec).
func (s *Script) Run(ctx context.Context, emit func(Update)) error {
	h := hysteresis{rise: s.spec.Rise, fall: s.spec.Fall, up: !s.spec.InitFail, init: true}
	results := make(chan runResult, 1)
	var wg sync.WaitGroup
	defer wg.Wait() // a run in progress is killed through ctx
	running := false
	var lingering <-chan struct{} // a run that could not be killed, still going
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	observe := func(r runResult) {
		was := h
		if r.ok {
			s.log.Debug("script succeeded", "detail", r.detail)
		} else {
			s.log.Debug("script failed", "detail", r.detail)
		}
		if !h.observe(r.ok) {
			return
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
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			now := time.Now()
			switch {
			case running:
				s.log.Warn("previous run still going; skipping this run", "interval", s.spec.Interval)
			case lingering != nil && !isClosed(lingering):
				// Another run next to one that cannot be killed would
				// pile up processes; the check is failing meanwhile.
				observe(runResult{detail: "a previous run could not be killed and is still running", at: now})
			default:
				lingering = nil
				running = true
				wg.Add(1)
				go func() {
					defer wg.Done()
					results <- s.runSafe(ctx)
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
			if r.lingering != nil {
				lingering = r.lingering
			}
			observe(r)
		}
	}
}

// runSafe runs the script once; a panic in the runner is a failed run.
func (s *Script) runSafe(ctx context.Context) (r runResult) {
	defer safe.Recover(s.log, "script", func(v any) {
		r = runResult{detail: fmt.Sprintf("the script runner failed: panic: %v", v), at: time.Now()}
	})
	return s.runFn(ctx)
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// runOnce runs the script once (see internal/proc for how).
func (s *Script) runOnce(ctx context.Context) runResult {
	r := proc.Run(ctx, proc.Cmd{Argv: s.argv, User: s.spec.User, Timeout: s.spec.Timeout, MaxOutput: maxOutput, Log: s.log})
	res := runResult{ok: r.Exited() && r.Exit == 0, detail: r.Detail(), at: time.Now()}
	if r.Abandoned {
		res.lingering = r.Reaped
	}
	return res
}
