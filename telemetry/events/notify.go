package events

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"vigil/internal/proc"
	"vigil/internal/safe"
)

// DefaultScriptTimeout is how long a notify script may run before its
// process group is killed (keepalived's script timeout default).
const DefaultScriptTimeout = 10 * time.Second

// DefaultKillGrace is the time between SIGTERM and SIGKILL for a script's
// process group after a timeout, and the most the notifier then waits for
// the group to end before it goes on without it (see ScriptResult.Abandoned).
const DefaultKillGrace = time.Second

// DefaultScriptPath is the PATH notify scripts run with.
const DefaultScriptPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// outputLimit bounds the output of a script kept for the log.
const outputLimit = 4096

// ScriptSpec is the notify configuration of one instance or sync group, as
// keepalived's notify_master/backup/fault/stop and notify. Each command is
// an argv, run with execve: no shell, argv[0] a path (or a name looked up
// in the daemon's PATH).
type ScriptSpec struct {
	Master []string // to=master
	Backup []string // to=backup
	Fault  []string // to=fault
	Stop   []string // to=init or stop: the instance stopped (shutdown, removed)
	// All runs for every change, after the state script, with keepalived's
	// four arguments appended: INSTANCE|GROUP, the name, MASTER|BACKUP|
	// FAULT|STOP and the priority (0 for a group).
	All []string
	// User is "user" or "user:group" (names or numbers) to run the scripts
	// as, with no supplementary groups. Empty: the daemon's user.
	User string
	// Timeout per script run; zero means DefaultScriptTimeout.
	Timeout time.Duration
}

// Validate reports what would keep the spec's scripts from running: an
// empty argv, a program that does not exist or is not executable, a user
// or group that does not exist, a negative timeout.
func (s ScriptSpec) Validate() error {
	var errs []error
	for _, h := range []struct {
		name string
		argv []string
	}{{"master", s.Master}, {"backup", s.Backup}, {"fault", s.Fault}, {"stop", s.Stop}, {"notify", s.All}} {
		if h.argv == nil {
			continue
		}
		if err := CheckCommand(h.argv); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h.name, err))
		}
	}
	if s.User != "" {
		if _, err := lookupUser(s.User); err != nil {
			errs = append(errs, fmt.Errorf("user: %w", err))
		}
	}
	if s.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: %v is negative", s.Timeout))
	}
	return errors.Join(errs...)
}

// CheckCommand reports whether argv can be executed: it is not empty and
// argv[0] is an executable regular file (looked up in PATH when it has no
// slash).
func CheckCommand(argv []string) error {
	if len(argv) == 0 || argv[0] == "" {
		return errors.New("empty command")
	}
	path := argv[0]
	if !strings.Contains(path, "/") {
		p, err := exec.LookPath(path)
		if err != nil {
			return fmt.Errorf("%q not found in PATH", path)
		}
		path = p
	}
	fi, err := os.Stat(path)
	if err != nil {
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			err = pe.Err
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", path)
	}
	return nil
}

// LBScripts are the notify commands of a virtual server and its real
// servers (keepalived quorum_up, quorum_down, notify_up, notify_down), run
// as given, without arguments; the VIGIL_* environment says what changed.
type LBScripts struct {
	QuorumUp, QuorumDown []string
	// RealServers are by real server, in keepalived's notation
	// (Event.RealServer).
	RealServers map[string]RSScripts
	User        string        // as ScriptSpec.User
	Timeout     time.Duration // as ScriptSpec.Timeout
}

// RSScripts are a real server's notify commands.
type RSScripts struct {
	Up, Down []string
}

// NotifyConfig is what the Notifier runs.
type NotifyConfig struct {
	Instances      map[string]ScriptSpec // by instance name
	Groups         map[string]ScriptSpec // by sync-group name
	VirtualServers map[string]LBScripts  // by virtual server name
	// Env is added to every script's environment ("KEY=value"), before the
	// VIGIL_* variables, which win on a clash.
	Env []string
	// Buffer is the queue length (DefaultSinkBuffer when zero); see the
	// package documentation for what happens beyond it. NewNotifier only.
	Buffer int
	// KillGrace is the time between SIGTERM and SIGKILL for a timed out
	// script's process group; zero means DefaultKillGrace.
	KillGrace time.Duration
	// OnResult, when set, is called after every script run (from the
	// notifier's goroutine; it delays the next script while it runs). A
	// panic in it is recovered, logged and counted; that event's remaining
	// scripts are skipped, later events' run.
	OnResult func(ScriptResult)
}

// ScriptResult describes one script run.
type ScriptResult struct {
	Event    Event
	Hook     string // master, backup, fault, stop, or notify (the generic one)
	Argv     []string
	Started  time.Time
	Duration time.Duration
	ExitCode int  // -1 when it did not start or was killed by a signal
	TimedOut bool // killed after its timeout
	Killed   bool // killed because delivery stopped (Close, drain timeout)
	// Abandoned: the process group could not be killed (no CAP_KILL for a
	// script of another user) or did not end after SIGKILL. The notifier
	// stopped waiting for it, so that it does not hold the scripts of later
	// events; it is reaped in the background when it ends. ExitCode is -1.
	Abandoned bool
	// Err is nil on exit status 0; otherwise why the run failed: it could
	// not be executed, it exited non-zero, it was killed.
	Err    error
	Output string // the last 4 KiB of stdout and stderr together
}

// Notifier runs notify scripts for the events of a bus, one at a time in
// Seq order (see the package documentation for why). For each event it
// runs the state script of the instance or group (to master: Master, to
// backup: Backup, to fault: Fault, to init or stop: Stop), then All with
// keepalived's arguments. A script that cannot be executed, exits non-zero
// or times out is logged with the reason, and the next one runs.
//
// Scripts run in their own process group, with stdin from /dev/null, in /,
// and this environment (nothing else is inherited from the daemon):
//
//	PATH               DefaultScriptPath
//	HOME USER LOGNAME  of ScriptSpec.User, when set
//	(NotifyConfig.Env)
//	VIGIL_EVENT_SEQ    the event's Seq
//	VIGIL_EVENT_TIME   the event's time, RFC 3339 with nanoseconds, UTC
//	VIGIL_KIND         instance or group
//	VIGIL_NAME         the instance or group name
//	VIGIL_INSTANCE     the name, for instance events
//	VIGIL_GROUP        the name, for group events
//	VIGIL_STATE        MASTER, BACKUP, FAULT or STOP (keepalived's names)
//	VIGIL_FROM         previous state: init, backup, master, fault
//	VIGIL_TO           new state: init, backup, master, fault (or stop)
//	VIGIL_REASON       why (master_down_timer, shutdown, ...)
//	VIGIL_PRIORITY     the priority (for an instance its effective priority)
//	VIGIL_HOOK         master, backup, fault, stop or notify
//	VIGIL_VRID         the VRID, when known
//	VIGIL_INTERFACE    the interface, when known
//	VIGIL_MASTER       the address of the master followed, when known
type Notifier struct {
	log *slog.Logger
	sub *Subscription

	mu  sync.Mutex
	cfg NotifyConfig
}

// NewNotifier subscribes a notifier to b and starts it. log may be nil.
func NewNotifier(b *Bus, log *slog.Logger, cfg NotifyConfig) *Notifier {
	if log == nil {
		log = b.log
	}
	buf := cfg.Buffer
	if buf <= 0 {
		buf = DefaultSinkBuffer
	}
	n := &Notifier{log: log.With("sink", "notify"), cfg: cfg}
	n.sub = b.attach(buf, "notify scripts")
	go n.run()
	return n
}

// Update replaces the scripts (and Env, KillGrace, OnResult) for the events
// whose scripts have not started yet, as on a configuration reload.
func (n *Notifier) Update(cfg NotifyConfig) {
	n.mu.Lock()
	n.cfg = cfg
	n.mu.Unlock()
}

// Close stops the notifier now: a running script's process group is
// killed and queued events are dropped. Bus.Close drains it instead.
func (n *Notifier) Close() { n.sub.Close() }

func (n *Notifier) run() {
	defer n.sub.finish()
	drops := dropLog{log: n.log, msg: "notify scripts fell behind: oldest events skipped, their scripts not run"}
	defer drops.flush()
	for {
		e, ok := n.sub.next()
		if !ok {
			return
		}
		if e.Kind == KindDropped {
			drops.add(e.Dropped)
			continue
		}
		// A panic (in OnResult, or a bug here) costs this event's
		// remaining scripts, not the daemon or the later events.
		_ = safe.Call(n.log, "notify", func() { n.handle(e) })
	}
}

func (n *Notifier) handle(e Event) {
	n.mu.Lock()
	cfg := n.cfg
	n.mu.Unlock()
	var spec ScriptSpec
	var found bool
	switch e.Kind {
	case KindInstance:
		spec, found = cfg.Instances[e.Name]
	case KindGroup:
		spec, found = cfg.Groups[e.Name]
	case KindVirtualServer, KindRealServer:
		n.handleLB(cfg, e)
		return
	}
	if !found {
		return
	}
	state := KeepalivedState(e)
	var hook string
	var argv []string
	switch state {
	case "MASTER":
		hook, argv = "master", spec.Master
	case "BACKUP":
		hook, argv = "backup", spec.Backup
	case "FAULT":
		hook, argv = "fault", spec.Fault
	case "STOP":
		hook, argv = "stop", spec.Stop
	default:
		n.log.Debug("no notify state for event", "kind", e.Kind, "name", e.Name, "to", e.To, "seq", e.Seq)
		return
	}
	if len(argv) > 0 {
		n.runOne(cfg, spec, e, hook, argv)
	}
	if len(spec.All) > 0 && !n.sub.aborted() {
		n.runOne(cfg, spec, e, "notify", append(append([]string(nil), spec.All...), KeepalivedArgs(e)...))
	}
}

func (n *Notifier) runOne(cfg NotifyConfig, spec ScriptSpec, e Event, hook string, argv []string) {
	if n.sub.aborted() {
		return
	}
	r := n.exec(cfg, spec, e, hook, argv)
	attrs := []any{"kind", e.Kind, "name", e.Name, "seq", e.Seq, "hook", hook, "argv", r.Argv, "duration", r.Duration}
	switch {
	case r.Abandoned:
		n.log.Error("notify script could not be killed; left running, later scripts go on", append(attrs, "timed_out", r.TimedOut, "err", r.Err, "output", r.Output)...)
	case r.Killed:
		n.log.Warn("notify script killed at shutdown", append(attrs, "output", r.Output)...)
	case r.TimedOut:
		n.log.Error("notify script timed out; its process group was killed", append(attrs, "timeout", timeoutOf(spec), "output", r.Output)...)
	case r.Err != nil && r.ExitCode == -1 && r.Started.IsZero():
		n.log.Error("notify script could not be executed", append(attrs, "err", r.Err)...)
	case r.Err != nil:
		n.log.Warn("notify script failed", append(attrs, "exit_code", r.ExitCode, "err", r.Err, "output", r.Output)...)
	default:
		n.log.Debug("notify script ran", attrs...)
	}
	if cfg.OnResult != nil {
		cfg.OnResult(r)
	}
}

func timeoutOf(spec ScriptSpec) time.Duration {
	if spec.Timeout > 0 {
		return spec.Timeout
	}
	return DefaultScriptTimeout
}

// exec runs one script to completion, timeout or abort.
func (n *Notifier) exec(cfg NotifyConfig, spec ScriptSpec, e Event, hook string, argv []string) (r ScriptResult) {
	r = ScriptResult{Event: e, Hook: hook, Argv: argv, ExitCode: -1}
	env := []string{"PATH=" + DefaultScriptPath}
	attr := &syscall.SysProcAttr{Setpgid: true}
	if spec.User != "" {
		u, err := lookupUser(spec.User)
		if err != nil {
			r.Err = fmt.Errorf("user %q: %w", spec.User, err)
			return r
		}
		// Switching needs CAP_SETUID/CAP_SETGID; running as ourselves
		// needs nothing, so a non-root daemon can name its own user.
		if int(u.cred.Uid) != os.Geteuid() || int(u.cred.Gid) != os.Getegid() {
			attr.Credential = &u.cred
		}
		env = append(env, "HOME="+u.home, "USER="+u.name, "LOGNAME="+u.name)
	}
	env = append(env, cfg.Env...)
	env = append(env, scriptEnv(e, hook)...)

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = attr
	out := &tailBuffer{max: outputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	// A background child that keeps our stdout open must not hold us.
	cmd.WaitDelay = time.Second

	if err := cmd.Start(); err != nil {
		r.Err = err
		return r
	}
	r.Started = time.Now()
	pgid := cmd.Process.Pid
	var waitErr error
	waited := make(chan struct{}) // closed when cmd.Wait has returned
	go func() {
		waitErr = cmd.Wait()
		close(waited)
	}()
	g := group{
		log:  n.log.With("kind", e.Kind, "name", e.Name, "seq", e.Seq, "hook", hook),
		prog: argv[0], user: spec.User, pgid: pgid, waited: waited,
	}

	timer := time.NewTimer(timeoutOf(spec))
	defer timer.Stop()
	ended := true
	select {
	case <-waited:
	case <-timer.C:
		r.TimedOut = true
		ended = g.kill(cfg.KillGrace)
	case <-n.sub.abort:
		r.Killed = true
		ended = g.kill(cfg.KillGrace)
	}
	r.Duration = time.Since(r.Started)
	r.Output = out.String()
	var err error
	if ended {
		err = waitErr
		r.ExitCode = cmd.ProcessState.ExitCode()
		if err == nil && (r.TimedOut || r.Killed) {
			err = errors.New("killed")
		}
	} else {
		// cmd.Wait still runs (and reaps the group's leader when it ends):
		// leave cmd and its ProcessState to it.
		r.Abandoned = true
		err = g.notKilled()
		proc.Linger(g.log, g.prog, g.user, pgid, waited)
	}
	switch {
	case r.TimedOut:
		err = fmt.Errorf("timed out after %v: %w", timeoutOf(spec), err)
	case r.Killed:
		err = fmt.Errorf("killed at shutdown: %w", err)
	}
	r.Err = err
	return r
}

// group is a running script's process group.
type group struct {
	log        *slog.Logger
	prog, user string
	pgid       int
	waited     <-chan struct{} // closed when the leader has been reaped
	killErr    error
}

// kill ends the group: SIGTERM, then, when the leader has exited or grace
// has passed, SIGKILL for whatever is left. It reports whether the leader
// has ended; when it has not within grace of the SIGKILL (or at once when
// the SIGKILL failed), the caller goes on without it. Kill failures are
// logged (see proc.SignalGroup).
func (g *group) kill(grace time.Duration) (ended bool) {
	if grace <= 0 {
		grace = DefaultKillGrace
	}
	g.killErr = proc.SignalGroup(g.log, g.prog, g.user, g.pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-g.waited:
		ended = true
	case <-t.C:
	}
	// The leader is reaped when ended: the group may be reused only once
	// all its members are gone, so this SIGKILL reaches leftovers or
	// nothing (ESRCH).
	if err := proc.SignalGroup(g.log, g.prog, g.user, g.pgid, syscall.SIGKILL); err != nil {
		g.killErr = err
		if !ended {
			return false // waiting longer would not help
		}
	}
	if ended {
		return true
	}
	t.Reset(grace)
	select {
	case <-g.waited:
		return true
	case <-t.C:
		return false
	}
}

// notKilled is the error of a group that kill gave up on.
func (g *group) notKilled() error {
	if g.killErr != nil {
		return fmt.Errorf("cannot kill its process group, left running: %w", g.killErr)
	}
	return errors.New("its process group did not end after SIGKILL, left running")
}

// handleLB runs a virtual or real server's script for e, if it has one.
func (n *Notifier) handleLB(cfg NotifyConfig, e Event) {
	vs, ok := cfg.VirtualServers[e.Name]
	if !ok {
		return
	}
	up := e.To == StateUp
	var hook string
	var argv []string
	switch {
	case e.Kind == KindVirtualServer && up:
		hook, argv = "quorum_up", vs.QuorumUp
	case e.Kind == KindVirtualServer:
		hook, argv = "quorum_down", vs.QuorumDown
	case up:
		hook, argv = "notify_up", vs.RealServers[e.RealServer].Up
	default:
		hook, argv = "notify_down", vs.RealServers[e.RealServer].Down
	}
	if len(argv) > 0 {
		n.runOne(cfg, ScriptSpec{User: vs.User, Timeout: vs.Timeout}, e, hook, argv)
	}
}

func scriptEnv(e Event, hook string) []string {
	env := []string{
		"VIGIL_EVENT_SEQ=" + strconv.FormatUint(e.Seq, 10),
		"VIGIL_EVENT_TIME=" + e.Time.UTC().Format(time.RFC3339Nano),
		"VIGIL_KIND=" + e.Kind,
		"VIGIL_NAME=" + e.Name,
		"VIGIL_STATE=" + KeepalivedState(e),
		"VIGIL_FROM=" + e.From,
		"VIGIL_TO=" + e.To,
		"VIGIL_REASON=" + e.Reason,
		"VIGIL_PRIORITY=" + strconv.Itoa(e.Priority),
		"VIGIL_HOOK=" + hook,
	}
	switch e.Kind {
	case KindGroup:
		env = append(env, "VIGIL_GROUP="+e.Name)
	case KindVirtualServer, KindRealServer:
		env = append(env, "VIGIL_VIRTUAL_SERVER="+e.Name, "VIGIL_SERVICE="+e.Service)
		if e.RealServer != "" {
			env = append(env, "VIGIL_REAL_SERVER="+e.RealServer)
		}
	default:
		env = append(env, "VIGIL_INSTANCE="+e.Name)
	}
	if e.VRID != 0 {
		env = append(env, "VIGIL_VRID="+strconv.Itoa(e.VRID))
	}
	if e.Interface != "" {
		env = append(env, "VIGIL_INTERFACE="+e.Interface)
	}
	if e.Master.IsValid() {
		env = append(env, "VIGIL_MASTER="+e.Master.String())
	}
	return env
}

type scriptUser struct {
	name, home string
	cred       syscall.Credential
}

// lookupUser resolves "user" or "user:group", by name or number.
func lookupUser(spec string) (scriptUser, error) {
	uname, gname, hasGroup := strings.Cut(spec, ":")
	if uname == "" {
		return scriptUser{}, errors.New("empty user name")
	}
	u, err := user.Lookup(uname)
	if err != nil {
		if _, nerr := strconv.ParseUint(uname, 10, 32); nerr != nil {
			return scriptUser{}, err
		}
		if u, err = user.LookupId(uname); err != nil {
			return scriptUser{}, err
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return scriptUser{}, fmt.Errorf("user %s: uid %q: %w", uname, u.Uid, err)
	}
	gidStr := u.Gid
	if hasGroup {
		if gname == "" {
			return scriptUser{}, errors.New("empty group name")
		}
		g, err := user.LookupGroup(gname)
		if err != nil {
			if _, nerr := strconv.ParseUint(gname, 10, 32); nerr != nil {
				return scriptUser{}, err
			}
			if g, err = user.LookupGroupId(gname); err != nil {
				return scriptUser{}, err
			}
		}
		gidStr = g.Gid
	}
	gid, err := strconv.ParseUint(gidStr, 10, 32)
	if err != nil {
		return scriptUser{}, fmt.Errorf("group %q: %w", gidStr, err)
	}
	return scriptUser{
		name: u.Username,
		home: u.HomeDir,
		cred: syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
	}, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
	cut bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
		t.cut = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimRight(string(t.b), "\n")
	if t.cut {
		s = "…" + s
	}
	return s
}
