// Package proc runs a health or tracking script once, the way vigil runs
// every external program: in its own process group, from "/", with a clean
// environment, optionally as another user, with its output capped, and with
// the whole group killed when the run ends, times out or is cancelled. It is
// shared by vrrp/track (vrrp_script) and lb/check (MISC_CHECK).
package proc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Path is the PATH programs run with.
const Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Cmd is one run of a program.
type Cmd struct {
	// Argv is the program and its arguments, run without a shell.
	Argv []string
	// User is "user" or "user:group" (names or numeric ids) to run as, with
	// the user's supplementary groups. Empty: vigil's own user. It is looked
	// up at every run, so an unknown user is a failed run, not a config error.
	User string
	// Timeout bounds the run; when it passes the process group is killed.
	// Zero means no bound but ctx.
	Timeout time.Duration
	// MaxOutput is how many bytes of combined stdout and stderr are kept
	// (default 2048).
	MaxOutput int
	// KillWait is how long Run waits for the process group to end after
	// killing it (timeout or ctx) before it gives up waiting: the run is
	// then reported, and the group is left to end by itself and reaped in
	// the background (see Abandoned). Zero means DefaultKillWait.
	KillWait time.Duration
	// Log receives kill failures and the rare unexpected wait error;
	// slog.Default() when nil.
	Log *slog.Logger
}

// DefaultKillWait is Cmd.KillWait's default.
const DefaultKillWait = time.Second

// Result is the outcome of one run.
type Result struct {
	// StartErr is set when the program could not be started at all (bad
	// path, not executable, unknown user); nothing ran.
	StartErr error
	// TimedOut: the run outlived Cmd.Timeout and its group was killed.
	TimedOut bool
	// Stopped: ctx ended during the run and its group was killed.
	Stopped bool
	// Exit is the exit status, or -1 when the program died by a signal or
	// did not run.
	Exit int
	// Signal is the signal that killed the program, if one did.
	Signal syscall.Signal
	// WaitErr is any other error from waiting for the program.
	WaitErr error
	// KillErr is set when killing the process group at a timeout or stop
	// failed (typically EPERM: a script of another user, and no CAP_KILL).
	KillErr error
	// Abandoned: the process group did not end within KillWait of the
	// kill, so Run stopped waiting for it. It is reaped in the background;
	// Reaped is closed then.
	Abandoned bool
	Reaped    <-chan struct{}
	// Output is the start of the output on one line (see OneLine).
	Output string
	// Timeout is the bound that applied, for Detail.
	Timeout time.Duration
}

// Exited reports whether the program ran to a normal exit, so Exit is
// meaningful.
func (r Result) Exited() bool {
	return r.StartErr == nil && !r.TimedOut && !r.Stopped && r.Signal == 0 && r.WaitErr == nil && r.Exit >= 0
}

// Detail describes the result in one line for logs and status output.
func (r Result) Detail() string {
	out := r.Output
	if out != "" {
		out = ": " + out
	}
	switch {
	case r.StartErr != nil:
		return r.StartErr.Error()
	case r.Stopped && r.Abandoned:
		return "stopped; " + r.notKilled()
	case r.Stopped:
		return "stopped"
	case r.TimedOut && r.Abandoned:
		return fmt.Sprintf("timeout after %v; %s%s", r.Timeout, r.notKilled(), out)
	case r.TimedOut:
		return fmt.Sprintf("timeout after %v, process group killed%s", r.Timeout, out)
	case r.Signal != 0:
		return fmt.Sprintf("killed by signal %v%s", r.Signal, out)
	case r.WaitErr != nil:
		return fmt.Sprintf("%v%s", r.WaitErr, out)
	}
	return fmt.Sprintf("exit status %d%s", r.Exit, out)
}

// notKilled says why an abandoned run's group is still there.
func (r Result) notKilled() string {
	if r.KillErr != nil {
		return fmt.Sprintf("cannot kill its process group (%v), left running", unwrapErrno(r.KillErr))
	}
	return "its process group did not end after SIGKILL, left running"
}

// Run runs c once and kills its process group when it ends, times out or
// ctx ends. When the group cannot be killed (see Result.Abandoned), Run
// returns KillWait after the kill instead of waiting for it.
func Run(ctx context.Context, c Cmd) Result {
	r := Result{Exit: -1, Timeout: c.Timeout}
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		r.StartErr = errors.New("no program given")
		return r
	}
	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + Path}
	attr := &syscall.SysProcAttr{Setpgid: true}
	if c.User != "" {
		cred, u, err := LookupCredential(c.User)
		if err != nil {
			r.StartErr = fmt.Errorf("cannot run as %q: %w", c.User, err)
			return r
		}
		attr.Credential = cred
		cmd.Env = append(cmd.Env, "HOME="+u.HomeDir, "USER="+u.Username, "LOGNAME="+u.Username)
	} else if u, err := user.Current(); err == nil {
		cmd.Env = append(cmd.Env, "HOME="+u.HomeDir, "USER="+u.Username, "LOGNAME="+u.Username)
	}
	cmd.SysProcAttr = attr
	maxOut := c.MaxOutput
	if maxOut <= 0 {
		maxOut = 2048
	}
	out := &capped{max: maxOut}
	cmd.Stdout, cmd.Stderr = out, out
	// Bounds the wait for output when a process that left the group still
	// holds the pipe.
	cmd.WaitDelay = 500 * time.Millisecond
	if err := cmd.Start(); err != nil {
		r.StartErr = fmt.Errorf("cannot execute %s: %w", c.Argv[0], unwrapExecErr(err))
		return r
	}
	pgid := cmd.Process.Pid
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	exited := make(chan error, 1)
	go func() { exited <- WaitExited(pgid) }()

	var timeout <-chan time.Time
	if c.Timeout > 0 {
		timer := time.NewTimer(c.Timeout)
		defer timer.Stop()
		timeout = timer.C
	}
	killWait := c.KillWait
	if killWait <= 0 {
		killWait = DefaultKillWait
	}
	// kill ends the group and waits for the leader, at most killWait.
	kill := func() (ended bool) {
		r.KillErr = SignalGroup(log, c.Argv[0], c.User, pgid, unix.SIGKILL)
		t := time.NewTimer(killWait)
		defer t.Stop()
		select {
		case <-exited:
			return true
		case <-t.C:
			return false
		}
	}
	ended := true
	select {
	case err := <-exited:
		if err != nil {
			log.Warn("waiting for program", "program", c.Argv[0], "err", err)
		}
	case <-timeout:
		r.TimedOut = true
		ended = kill()
	case <-ctx.Done():
		ended = kill()
	}
	if ctx.Err() != nil && !r.TimedOut {
		r.Stopped = true
	}
	if !ended {
		// Waiting on would hold the caller (a tracker, a checker) for as
		// long as the group lives; reap it in the background instead.
		reaped := make(chan struct{})
		go func() {
			defer close(reaped)
			<-exited
			_ = unix.Kill(-pgid, unix.SIGKILL)
			_ = cmd.Wait()
		}()
		r.Abandoned, r.Reaped = true, reaped
		r.Output = out.text()
		Linger(log, c.Argv[0], c.User, pgid, reaped)
		return r
	}
	// The leader is a zombie still (not reaped), so the group id cannot have
	// been reused: kill what is left of the group, then reap.
	killLeftovers(log, c.Argv[0], c.User, pgid)
	err := cmd.Wait()
	r.Output = out.text()
	switch {
	case r.Stopped, r.TimedOut:
	case err == nil || errors.Is(err, exec.ErrWaitDelay):
		r.Exit = 0
	default:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				r.Signal = ws.Signal()
			} else {
				r.Exit = ee.ExitCode()
			}
		} else {
			r.WaitErr = err
		}
	}
	return r
}

// WaitExited waits until pid has exited without reaping it.
func WaitExited(pid int) error {
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

// LookupCredential resolves "user" or "user:group" (names or numeric ids).
func LookupCredential(spec string) (*syscall.Credential, *user.User, error) {
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

func (c *capped) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return OneLine(c.buf, c.cut)
}

// OneLine renders output on one line: valid UTF-8, control characters and
// newlines replaced, trimmed, "..." appended when cut.
func OneLine(b []byte, cut bool) string {
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
