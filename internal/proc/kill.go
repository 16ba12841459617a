package proc

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// KillHint is logged with a kill(2) that failed with EPERM: without
// CAP_KILL vigil can signal only processes of its own user.
const KillHint = "signalling another user's processes needs CAP_KILL: give vigil CAP_KILL " +
	"(the unit's CapabilityBoundingSet and AmbientCapabilities), or run the script as vigil's own user"

var (
	killFailures atomic.Uint64
	abandoned    atomic.Uint64
	lingering    atomic.Int64
)

// Stats counts, since the start, what went wrong ending scripts' process
// groups (for metrics).
type Stats struct {
	// KillFailures: kill(2) of a process group failed (other than for a
	// group that had already ended).
	KillFailures uint64
	// Abandoned: runs whose group did not end after the kill, so vigil
	// stopped waiting for them and went on (see Result.Abandoned).
	Abandoned uint64
	// Lingering: of the abandoned runs, how many still run.
	Lingering int64
}

// ReadStats returns the counters.
func ReadStats() Stats {
	return Stats{KillFailures: killFailures.Load(), Abandoned: abandoned.Load(), Lingering: lingering.Load()}
}

// who is the user attribute of kill logs.
func who(user string) string {
	if user == "" {
		return "(vigil's own)"
	}
	return user
}

// SignalGroup sends sig to the process group pgid of a script (program,
// run as user; "" is vigil's own user). A failure is logged at error level
// with the script, pgid, user and errno (with KillHint for EPERM), counted
// in Stats, and returned; a group that has already ended (ESRCH) is not a
// failure.
func SignalGroup(log *slog.Logger, program, user string, pgid int, sig syscall.Signal) error {
	err := unix.Kill(-pgid, sig)
	if err == nil || errors.Is(err, unix.ESRCH) {
		return nil
	}
	killFailures.Add(1)
	logKillError(log, "cannot signal the process group of a script", program, user, pgid, sig, err)
	return fmt.Errorf("kill %s to process group %d of %s: %w", unix.SignalName(sig), pgid, program, err)
}

func logKillError(log *slog.Logger, msg, program, user string, pgid int, sig syscall.Signal, err error) {
	if log == nil {
		log = slog.Default()
	}
	attrs := []any{"program", program, "pgid", pgid, "user", who(user), "signal", unix.SignalName(sig), "err", err}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		attrs = append(attrs, "errno", unix.ErrnoName(errno))
	}
	if errors.Is(err, unix.EPERM) {
		attrs = append(attrs, "hint", KillHint)
	}
	log.Error(msg, attrs...)
}

// killLeftovers kills what is left in a script's process group once its
// leader has exited (it must not be reaped yet, so the group id cannot be
// reused). The leader's zombie alone makes kill(2) fail with EPERM when the
// script ran as another user and vigil lacks CAP_KILL, so that error is
// reported only when the group has live members.
func killLeftovers(log *slog.Logger, program, user string, pgid int) {
	err := unix.Kill(-pgid, unix.SIGKILL)
	if err == nil || errors.Is(err, unix.ESRCH) {
		return
	}
	left := groupMembers(pgid, pgid)
	if errors.Is(err, unix.EPERM) && len(left) == 0 {
		return
	}
	killFailures.Add(1)
	logKillError(log, "cannot kill the processes a script left behind in its process group", program, user, pgid, unix.SIGKILL, err)
}

// groupMembers lists the live processes of process group pgid but skip
// (from /proc; nil if it cannot be read).
func groupMembers(pgid, skip int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == skip {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold anything, so
		// count fields after its last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		if len(f) < 3 || f[0][0] == 'Z' || f[0][0] == 'X' {
			continue
		}
		if g, err := strconv.Atoi(string(f[2])); err == nil && g == pgid {
			out = append(out, pid)
		}
	}
	return out
}

// Linger records that vigil stopped waiting for the process group of a
// script it could not end (program, run as user, group pgid): it is logged
// and counted (Stats.Abandoned, Stats.Lingering), and reaped is closed by
// whoever still waits for the group, when it has ended at last.
func Linger(log *slog.Logger, program, user string, pgid int, reaped <-chan struct{}) {
	if log == nil {
		log = slog.Default()
	}
	abandoned.Add(1)
	lingering.Add(1)
	log.Error("script's process group did not end after the kill; no longer waiting for it, it is reaped when it ends",
		"program", program, "pgid", pgid, "user", who(user))
	go func() {
		<-reaped
		lingering.Add(-1)
		log.Info("abandoned script ended at last", "program", program, "pgid", pgid, "user", who(user))
	}()
}

// unwrapErrno returns the errno inside err, or err.
func unwrapErrno(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
