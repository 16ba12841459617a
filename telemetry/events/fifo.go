package events

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"vigil/internal/safe"
)

// FIFO formats.
const (
	FormatKeepalived = "keepalived" // INSTANCE "VI_1" MASTER 100
	FormatJSON       = "json"       // one JSONLine per event
)

// DefaultFIFOMode is the FIFO's mode: only its owner, root, may read the
// events or write lines into the stream.
const DefaultFIFOMode os.FileMode = 0o600

// DefaultFIFOGroupMode is the FIFO's mode when FIFOConfig.Group is set: a
// consumer running as a member of that group may read it.
const DefaultFIFOGroupMode os.FileMode = 0o660

// fifoOpenTries bounds the retries when the path changes between the checks
// and the open.
const fifoOpenTries = 3

// Test hooks, nil in production: testHookFIFOBeforeOpen runs between the
// checks of the path and the open (tests replace the path there);
// testHookFIFODeliver runs before each event's line is written (tests
// panic there).
var (
	testHookFIFOBeforeOpen func(path string)
	testHookFIFODeliver    func(Event)
)

// fifoRetry is how often a writer waiting on a full FIFO looks again at the
// path (replaced?) and at shutdown.
const fifoRetry = 200 * time.Millisecond

// FIFOConfig configures a FIFO sink.
type FIFOConfig struct {
	Path   string
	Format string // FormatKeepalived (default) or FormatJSON
	// Group is a group name or numeric gid (vrrp.notify_fifo_group) that
	// may read the FIFO: it gets that group and mode DefaultFIFOGroupMode.
	// Empty: no group access; the FIFO gets vigil's own group and mode
	// DefaultFIFOMode.
	Group string
	// Mode overrides the mode; it may give the owner and the group access,
	// never other users (at most 0660).
	Mode   os.FileMode
	Buffer int // queue length; DefaultSinkBuffer when zero
}

// FIFO writes one line per event to a named pipe, in Seq order, as
// keepalived's notify_fifo does:
//
//	INSTANCE "VI_1" MASTER 100
//	GROUP "edge" BACKUP 0
//
// (type, quoted name, MASTER|BACKUP|FAULT|STOP, priority; 0 for a group),
// or, with FormatJSON, one JSON object per line (see JSONLine), where a gap
// in the stream is a {"kind":"dropped","dropped":N} line. The keepalived
// format has no gap line; a gap is only logged.
//
// The FIFO is created (mkfifo) when the path does not exist. Whoever reads
// it sees every event and whoever may write it can inject lines, so it is
// the daemon's alone: mode 0600 (or 0660 with FIFOConfig.Group for a
// consumer running as another user). A path that exists must be a FIFO
// owned by root (or by the daemon's own user when it does not run as
// root): a symbolic link, another kind of file or a FIFO of another user is
// refused, with the owner in the error; an accepted one is brought to the
// wanted mode and group through the opened descriptor, so a path swapped
// after the checks is never changed, and the descriptor is checked to be
// the file that was checked. A directory that every user may write to
// without the sticky bit (where anyone can swap the FIFO) is logged as a
// warning.
//
// The sink opens the FIFO read-write and
// non-blocking, as keepalived does: the open never waits for a reader, a
// write never fails because no reader is attached (no SIGPIPE/EPIPE), and
// lines written while no reader is attached wait in the pipe (64 KiB on
// Linux) for the next one. Readers may come and go: each reads on from
// where the previous one stopped. When the pipe is full (no reader for a
// long time, or a slow one), the sink's goroutine waits and its queue
// absorbs the events, then drops the oldest (see the package
// documentation); Publish is never delayed. If the path is removed or
// replaced by another FIFO (as keepalived's sample reader does when it
// created the FIFO itself), the sink notices before the next write and
// opens the FIFO now at the path, creating it if needed, with the checks
// above: a replacement that fails them (another user's FIFO) is logged and
// the sink goes on writing to the FIFO it has. The FIFO is left in place at
// Close.
type FIFO struct {
	log         *slog.Logger
	cfg         FIFOConfig
	gid         int // the FIFO's group
	sub         *Subscription
	file        *os.File
	dev         uint64
	ino         uint64
	stuck       bool // the last write is waiting for room in the pipe
	warnedStale bool // logged that the path cannot be reopened
}

// OpenFIFO creates (if needed) and opens the FIFO, then subscribes it to b.
// log may be nil.
func OpenFIFO(b *Bus, log *slog.Logger, cfg FIFOConfig) (*FIFO, error) {
	if log == nil {
		log = b.log
	}
	if cfg.Path == "" {
		return nil, errors.New("notify fifo: empty path")
	}
	switch cfg.Format {
	case "":
		cfg.Format = FormatKeepalived
	case FormatKeepalived, FormatJSON:
	default:
		return nil, fmt.Errorf("notify fifo %s: unknown format %q (want %q or %q)", cfg.Path, cfg.Format, FormatKeepalived, FormatJSON)
	}
	gid := os.Getegid()
	if cfg.Group != "" {
		g, err := lookupGroup(cfg.Group)
		if err != nil {
			return nil, fmt.Errorf("notify fifo %s: group %q: %w", cfg.Path, cfg.Group, err)
		}
		gid = g
	}
	switch {
	case cfg.Mode == 0 && cfg.Group != "":
		cfg.Mode = DefaultFIFOGroupMode
	case cfg.Mode == 0:
		cfg.Mode = DefaultFIFOMode
	case cfg.Mode&^0o660 != 0:
		return nil, fmt.Errorf("notify fifo %s: mode %#o: other users must get no access and no special bits (at most 0660)", cfg.Path, uint32(cfg.Mode))
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultSinkBuffer
	}
	f := &FIFO{log: log.With("sink", "fifo", "path", cfg.Path), cfg: cfg, gid: gid}
	if err := f.open(); err != nil {
		return nil, err
	}
	f.sub = b.attach(cfg.Buffer, "fifo "+cfg.Path)
	go f.run()
	return f, nil
}

// Path is the FIFO's path.
func (f *FIFO) Path() string { return f.cfg.Path }

// Close stops the sink now (queued lines are dropped) and closes the FIFO.
// Bus.Close drains it instead.
func (f *FIFO) Close() { f.sub.Close() }

// lookupGroup resolves a group name or a numeric gid. A number is taken as
// it is, even without an entry in the group database.
func lookupGroup(spec string) (int, error) {
	g, err := user.LookupGroup(spec)
	if err == nil {
		return strconv.Atoi(g.Gid)
	}
	if n, nerr := strconv.ParseUint(spec, 10, 31); nerr == nil {
		return int(n), nil
	}
	return 0, fmt.Errorf("%w (want a group name or a numeric gid)", err)
}

// errFIFOChanged: the path changed between the checks and the open.
var errFIFOChanged = errors.New("changed while it was being opened")

// open creates the FIFO if the path does not exist, checks it (see FIFO),
// opens it and brings it to the wanted mode and group; the previous file,
// if any, is closed on success.
func (f *FIFO) open() error {
	var file *os.File
	var st *syscall.Stat_t
	var err error
	for range fifoOpenTries {
		if file, st, err = f.openOnce(); !errors.Is(err, errFIFOChanged) {
			break
		}
	}
	if err != nil {
		return err
	}
	if f.file != nil {
		f.file.Close()
	}
	f.file, f.dev, f.ino = file, uint64(st.Dev), st.Ino
	f.warnedStale = false
	f.checkDir()
	return nil
}

func (f *FIFO) openOnce() (*os.File, *syscall.Stat_t, error) {
	path := f.cfg.Path
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		// 0600 until the descriptor gets the group and then the mode: no
		// moment with access for the wrong group.
		if err := syscall.Mkfifo(path, 0o600); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, nil, fmt.Errorf("notify fifo: mkfifo %s: %w", path, err)
		}
		fi, err = os.Lstat(path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("notify fifo: %w", err)
	}
	if fi.Mode().Type() != fs.ModeNamedPipe {
		what := "remove it or choose another path"
		if fi.Mode()&fs.ModeSymlink != 0 {
			what = "a link could send the events anywhere; remove it (vigil creates the FIFO) or name the FIFO itself"
		}
		return nil, nil, fmt.Errorf("notify fifo: %s exists and is not a FIFO (%s): %s", path, typeName(fi.Mode()), what)
	}
	checked := fi.Sys().(*syscall.Stat_t)
	if err := f.checkOwner(checked); err != nil {
		return nil, nil, err
	}
	if testHookFIFOBeforeOpen != nil {
		testHookFIFOBeforeOpen(path)
	}
	// O_RDWR: never blocks or fails for want of a reader, and no EPIPE
	// when a reader leaves. O_NONBLOCK: the runtime poller owns the fd, so
	// a write to a full pipe parks only this goroutine and honours write
	// deadlines. O_NOFOLLOW: a symbolic link swapped in after the checks
	// is not followed.
	file, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if errors.Is(err, syscall.ELOOP) || errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("notify fifo: %s %w", path, errFIFOChanged)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("notify fifo: %w", err)
	}
	// The descriptor decides: it must be the FIFO that was checked.
	fi, err = file.Stat()
	if err != nil {
		file.Close()
		return nil, nil, fmt.Errorf("notify fifo: %s: %w", path, err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Type() != fs.ModeNamedPipe || st.Dev != checked.Dev || st.Ino != checked.Ino {
		file.Close()
		return nil, nil, fmt.Errorf("notify fifo: %s %w", path, errFIFOChanged)
	}
	if err := f.checkOwner(st); err != nil {
		file.Close()
		return nil, nil, err
	}
	// Group first, then mode: the group bits never apply to the old group.
	if int(st.Gid) != f.gid {
		if err := file.Chown(-1, f.gid); err != nil {
			file.Close()
			return nil, nil, fmt.Errorf("notify fifo: set the group of %s to %d: %w", path, f.gid, err)
		}
	}
	if os.FileMode(st.Mode&0o7777) != f.cfg.Mode {
		if err := file.Chmod(f.cfg.Mode); err != nil {
			file.Close()
			return nil, nil, fmt.Errorf("notify fifo: set the mode of %s to %#o: %w", path, uint32(f.cfg.Mode), err)
		}
	}
	return file, st, nil
}

// checkOwner accepts a FIFO owned by root, or by the daemon's own user
// (a daemon not running as root creates its FIFO as that user).
func (f *FIFO) checkOwner(st *syscall.Stat_t) error {
	if st.Uid == 0 || int(st.Uid) == os.Geteuid() {
		return nil
	}
	owner := strconv.FormatUint(uint64(st.Uid), 10)
	if u, err := user.LookupId(owner); err == nil {
		owner = u.Username + " (uid " + owner + ")"
	} else {
		owner = "uid " + owner
	}
	return fmt.Errorf("notify fifo: %s is owned by %s, not root: whoever owns it can read the events and inject lines; remove it (vigil creates its own) or chown it to root", f.cfg.Path, owner)
}

// checkDir warns when every user may replace the FIFO: its directory is
// writable by others and has no sticky bit.
func (f *FIFO) checkDir() {
	dir := filepath.Dir(f.cfg.Path)
	fi, err := os.Stat(dir)
	if err != nil {
		return
	}
	if m := fi.Mode(); m.Perm()&0o002 != 0 && m&fs.ModeSticky == 0 {
		f.log.Warn("notify fifo's directory is writable by every user and has no sticky bit: anyone can replace the FIFO; use a directory only root can write to, such as /run/vigil",
			"dir", dir, "mode", fmt.Sprintf("%#o", uint32(m.Perm())))
	}
}

func typeName(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return m.Type().String()
}

// follow reopens the FIFO when the path no longer names the file we hold:
// removed (recreate it) or replaced by another FIFO.
func (f *FIFO) follow() {
	fi, err := os.Lstat(f.cfg.Path)
	if err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && uint64(st.Dev) == f.dev && st.Ino == f.ino {
			return
		}
	}
	if err := f.open(); err != nil {
		if !f.warnedStale {
			f.log.Error("notify fifo was replaced and cannot be reopened; still writing to the old one", "err", err)
			f.warnedStale = true
		}
		return
	}
	f.log.Info("notify fifo was replaced; writing to the new one")
}

func (f *FIFO) run() {
	defer f.sub.finish()
	defer func() { f.file.Close() }() // f.file changes when the FIFO is replaced
	drops := dropLog{log: f.log, msg: "notify fifo fell behind: oldest events dropped"}
	defer drops.flush()
	for {
		e, ok := f.sub.next()
		if !ok {
			return
		}
		// A panic (a bug) costs this event's line, not the daemon or the
		// later lines.
		_ = safe.Call(f.log, "fifo", func() { f.deliver(e, &drops) })
	}
}

// deliver writes e's line, if it has one.
func (f *FIFO) deliver(e Event, drops *dropLog) {
	if testHookFIFODeliver != nil {
		testHookFIFODeliver(e)
	}
	var line []byte
	switch {
	case e.Kind == KindDropped:
		drops.add(e.Dropped)
		if f.cfg.Format != FormatJSON {
			return
		}
		line = JSONLine(e)
	case f.cfg.Format == FormatJSON:
		line = JSONLine(e)
	default:
		s, ok := KeepalivedLine(e)
		if !ok {
			return
		}
		line = []byte(s)
	}
	f.follow()
	f.write(line)
}

// write writes one whole line, waiting as long as the pipe is full; it
// gives up only when delivery is aborted.
func (f *FIFO) write(line []byte) {
	wrote := false // part of the line is in the current file: finish there
	for len(line) > 0 {
		if f.sub.aborted() {
			return
		}
		_ = f.file.SetWriteDeadline(time.Now().Add(fifoRetry))
		n, err := f.file.Write(line)
		line = line[n:]
		wrote = wrote || n > 0
		if err == nil {
			break
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if !f.stuck {
				f.stuck = true
				f.log.Warn("notify fifo is full (no reader, or a slow one); waiting, events queue up")
			}
			if !wrote {
				f.follow()
			}
			continue
		}
		f.log.Error("notify fifo write failed; reopening", "err", err)
		if err := f.open(); err != nil {
			f.log.Error("notify fifo reopen failed", "err", err)
			select {
			case <-f.sub.abort:
				return
			case <-time.After(fifoRetry):
			}
		}
		wrote = false
	}
	if f.stuck {
		f.stuck = false
		f.log.Info("notify fifo is being read again")
	}
}
