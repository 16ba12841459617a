package track

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"vigil/internal/safe"
	"vigil/vrrp/policy"
)

// connRead reads the process connector: (*procConn).read, or a test double.
var connRead = (*procConn).read

// ArgMatch says how a process tracker compares command-line arguments.
type ArgMatch string

const (
	// ArgsAny ignores the arguments (the default when Args is empty).
	ArgsAny ArgMatch = ""
	// ArgsExact wants the process's arguments (argv[1:]) to be Args,
	// exactly; with no Args, a process without arguments (the default when
	// Args is not empty).
	ArgsExact ArgMatch = "exact"
	// ArgsPrefix wants the process's first arguments to be Args (keepalived
	// param_match initial).
	ArgsPrefix ArgMatch = "prefix"
)

// ProcessSpec configures a process tracker (keepalived vrrp_track_process).
//
// Matching: a process matches when its name — /proc/PID/comm, the kernel's
// copy of the executable's base name truncated to 15 characters, as
// `ps -o comm` and `pgrep -x` show it — equals Process exactly, and its
// arguments match Args per ArgMatch. Arguments are compared element by
// element with argv[1:] from /proc/PID/cmdline (no joining on spaces, so an
// argument that contains a space is one element); argv[0] is never compared,
// as the name already is. Zombies do not count. Only processes (thread
// group leaders) count, not threads; children forked by a matching process
// count too while they keep its name (nginx workers, for example).
//
// The tracker is up while at least Quorum matching processes run. Coming up
// is reported at once; going down only after the count stayed below Quorum
// for Delay (0: at once). The first observation settles the state at once
// (before it the tracker is in the init state, reported down).
//
// Events: the kernel's process-event connector (netlink, CN_IDX_PROC; root
// before Linux 6.6, any user since; only in the initial user, PID and
// network namespaces) tells of every fork, exec, name change and exit as it
// happens, and the process concerned is re-checked in /proc; /proc is
// scanned in full at start, after the connector overflowed, and every 10 s
// as a safety net. Without the connector (in a container, a kernel without
// CONFIG_PROC_EVENTS, not root on an older kernel) /proc is scanned every
// second instead, which a log line says at start.
type ProcessSpec struct {
	Name string
	// Process is the process name to match (at most 15 characters).
	Process  string
	Args     []string
	ArgMatch ArgMatch
	// Quorum is how many matching processes make the tracker up (default 1).
	Quorum int
	// Delay is how long the count must stay below Quorum before the tracker
	// is reported down.
	Delay time.Duration
}

const (
	procPoll   = time.Second      // /proc scan interval without the connector
	procResync = 10 * time.Second // safety scan interval with it
	commMax    = 15               // TASK_COMM_LEN - 1
)

// Process is a process tracker.
type Process struct {
	spec ProcessSpec
	log  *slog.Logger
	proc string // /proc, replaceable by tests

	noConnector bool // tests: exercise the /proc polling fallback
}

// NewProcess validates spec, fills in its defaults and returns the tracker.
// log may be nil.
func NewProcess(spec ProcessSpec, log *slog.Logger) (*Process, error) {
	fail := func(format string, a ...any) (*Process, error) {
		return nil, fmt.Errorf("track: process %q: %s", spec.Name, fmt.Sprintf(format, a...))
	}
	switch {
	case spec.Name == "":
		return fail("empty name")
	case spec.Process == "":
		return fail("no process name to match")
	case len(spec.Process) > commMax:
		return fail("process name %q is longer than %d characters: the kernel truncates names to %d, match %q",
			spec.Process, commMax, commMax, spec.Process[:commMax])
	case strings.ContainsAny(spec.Process, "/\n\x00"):
		return fail("process name %q contains '/', a newline or NUL: give the name, not a path", spec.Process)
	case spec.Quorum < 0:
		return fail("negative quorum")
	case spec.Delay < 0:
		return fail("negative delay")
	}
	switch spec.ArgMatch {
	case ArgsAny:
		if len(spec.Args) > 0 {
			spec.ArgMatch = ArgsExact
		}
	case ArgsExact, ArgsPrefix:
	default:
		return fail("unknown argument match %q (want exact or prefix)", spec.ArgMatch)
	}
	spec.Quorum = max(spec.Quorum, 1)
	spec.Args = slices.Clone(spec.Args)
	return &Process{spec: spec, log: orDiscard(log).With("tracker", "process "+spec.Name), proc: "/proc"}, nil
}

func (p *Process) Kind() policy.Kind { return policy.KindProcess }
func (p *Process) Name() string      { return p.spec.Name }

// Spec returns the normalized spec.
func (p *Process) Spec() ProcessSpec { return p.spec }

func (p *Process) Initial() Update {
	return Update{Kind: policy.KindProcess, Name: p.spec.Name, Init: true, Detail: "init: not scanned yet, assumed down"}
}

// Run follows the processes until ctx ends.
func (p *Process) Run(ctx context.Context, emit func(Update)) error {
	var events <-chan procEvent
	if p.noConnector {
		p.log.Info("process connector not used; scanning /proc every second", "interval", procPoll)
	} else if cn, err := openProcConnector(ctx); err != nil {
		p.log.Warn("process connector unavailable; scanning /proc every second instead", "err", err, "interval", procPoll)
	} else {
		ch := make(chan procEvent, 256)
		done := make(chan struct{})
		go func() {
			defer close(done)
			// A panic reading the connector ends only the connector
			// (read closes ch): Run goes on scanning /proc.
			defer safe.Recover(p.log, "tracker", nil)
			connRead(cn, ctx, ch)
		}()
		defer func() { cn.close(); <-done }()
		events = ch
	}
	interval := procPoll
	if events != nil {
		interval = procResync
	}

	st := procState{p: p, emit: emit, pids: map[int]bool{}}
	if err := st.scan(); err != nil {
		return fmt.Errorf("track: process %q: %w", p.spec.Name, err)
	}
	st.settle()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	delay := time.NewTimer(time.Hour)
	delay.Stop()
	defer delay.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				// The connector failed for good: poll from now on.
				p.log.Warn("process connector failed; scanning /proc every second instead", "interval", procPoll)
				events = nil
				tick.Reset(procPoll)
				if err := st.scan(); err != nil {
					p.log.Warn("scanning /proc", "err", err)
				}
				break
			}
			if ev.overflow {
				p.log.Warn("process events lost (receive buffer overflow); rescanning /proc")
				if err := st.scan(); err != nil {
					p.log.Warn("scanning /proc", "err", err)
				}
				break
			}
			st.check(ev.pid)
		case <-tick.C:
			if err := st.scan(); err != nil {
				p.log.Warn("scanning /proc", "err", err)
			}
		case <-delay.C:
			st.delayArmed = false
			st.report(true)
		}
		if st.count() >= p.spec.Quorum {
			if st.delayArmed {
				delay.Stop()
				st.delayArmed = false
			}
			st.report(false)
		} else if st.up && !st.delayArmed {
			if p.spec.Delay <= 0 {
				st.report(false)
			} else {
				st.delayArmed = true
				delay.Reset(p.spec.Delay)
			}
		}
	}
}

// procState is what Run knows about the matching processes.
type procState struct {
	p          *Process
	emit       func(Update)
	pids       map[int]bool
	up         bool
	delayArmed bool
}

func (s *procState) count() int { return len(s.pids) }

// settle reports the first observation.
func (s *procState) settle() {
	s.up = s.count() >= s.p.spec.Quorum
	s.p.log.Info("process tracker settled", "up", s.up, "running", s.count(), "quorum", s.p.spec.Quorum)
	s.emit(Update{Up: s.up, Detail: s.detail(), At: time.Now()})
}

// report emits the state the count gives if it differs from the last one
// reported. Going down is only reported once the delay expired (expired) or
// when there is no delay; Run arranges that.
func (s *procState) report(expired bool) {
	up := s.count() >= s.p.spec.Quorum
	if up == s.up {
		return
	}
	s.up = up
	if up {
		s.p.log.Info("process tracker up", "running", s.count(), "quorum", s.p.spec.Quorum)
	} else {
		s.p.log.Warn("process tracker down", "running", s.count(), "quorum", s.p.spec.Quorum, "after_delay", expired)
	}
	s.emit(Update{Up: up, Detail: s.detail(), At: time.Now()})
}

func (s *procState) detail() string {
	return fmt.Sprintf("%d running (quorum %d)", s.count(), s.p.spec.Quorum)
}

// scan replaces the set of matching processes with a full scan of /proc.
func (s *procState) scan() error {
	d, err := os.Open(s.p.proc)
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("reading %s: %w", s.p.proc, err)
	}
	pids := map[int]bool{}
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil || pid <= 0 {
			continue
		}
		if s.p.matches(pid) {
			pids[pid] = true
		}
	}
	s.pids = pids
	return nil
}

// check re-examines one process after an event about it.
func (s *procState) check(pid int) {
	if pid <= 0 {
		return
	}
	if s.p.matches(pid) {
		s.pids[pid] = true
	} else {
		delete(s.pids, pid)
	}
}

// matches tells whether pid is a live process that matches the spec.
func (p *Process) matches(pid int) bool {
	dir := p.proc + "/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return false
	}
	comm, state, ok := parseStat(stat)
	if !ok || comm != p.spec.Process || state == 'Z' || state == 'X' || state == 'x' {
		return false
	}
	if p.spec.ArgMatch == ArgsAny {
		return true
	}
	cmdline, err := os.ReadFile(dir + "/cmdline")
	if err != nil {
		return false
	}
	return argsMatch(parseCmdline(cmdline), p.spec.Args, p.spec.ArgMatch)
}

// parseStat returns the name and state from /proc/PID/stat:
// "pid (comm) S ...", where comm may itself contain spaces and parentheses.
func parseStat(b []byte) (comm string, state byte, ok bool) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open || end+2 >= len(b) {
		return "", 0, false
	}
	return string(b[open+1 : end]), b[end+2], true
}

// parseCmdline splits /proc/PID/cmdline (NUL-terminated arguments).
func parseCmdline(b []byte) []string {
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// argsMatch compares argv[1:] with want.
func argsMatch(argv, want []string, how ArgMatch) bool {
	var args []string
	if len(argv) > 1 {
		args = argv[1:]
	}
	switch how {
	case ArgsExact:
		return slices.Equal(args, want)
	case ArgsPrefix:
		return len(args) >= len(want) && slices.Equal(args[:len(want)], want)
	}
	return true
}
