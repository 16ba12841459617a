package events

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"syscall"
	"time"
)

// FIFO formats.
const (
	FormatKeepalived = "keepalived" // INSTANCE "VI_1" MASTER 100
	FormatJSON       = "json"       // one JSONLine per event
)

// DefaultFIFOMode is the mode of a FIFO the sink creates (keepalived's).
const DefaultFIFOMode os.FileMode = 0o644

// fifoRetry is how often a writer waiting on a full FIFO looks again at the
// path (replaced?) and at shutdown.
const fifoRetry = 200 * time.Millisecond

// FIFOConfig configures a FIFO sink.
type FIFOConfig struct {
	Path   string
	Format string      // FormatKeepalived (default) or FormatJSON
	Mode   os.FileMode // when the sink creates the FIFO; DefaultFIFOMode when zero
	Buffer int         // queue length; DefaultSinkBuffer when zero
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
// The FIFO is created (mkfifo) when the path does not exist; a path that
// exists and is not a FIFO is an error. The sink opens it read-write and
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
// opens the FIFO now at the path, creating it if needed. The FIFO is left
// in place at Close.
type FIFO struct {
	log         *slog.Logger
	cfg         FIFOConfig
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
	if cfg.Mode == 0 {
		cfg.Mode = DefaultFIFOMode
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultSinkBuffer
	}
	f := &FIFO{log: log.With("sink", "fifo", "path", cfg.Path), cfg: cfg}
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

// open creates the FIFO if the path does not exist, checks that it is one
// and opens it; the previous file, if any, is closed on success.
func (f *FIFO) open() error {
	path := f.cfg.Path
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := syscall.Mkfifo(path, uint32(f.cfg.Mode.Perm())); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("notify fifo: mkfifo %s: %w", path, err)
		}
		_ = os.Chmod(path, f.cfg.Mode.Perm()) // exact mode, whatever the umask
		fi, err = os.Lstat(path)
	}
	if err != nil {
		return fmt.Errorf("notify fifo: %w", err)
	}
	if fi.Mode().Type() != fs.ModeNamedPipe {
		return fmt.Errorf("notify fifo: %s exists and is not a FIFO (%s)", path, typeName(fi.Mode()))
	}
	// O_RDWR: never blocks or fails for want of a reader, and no EPIPE
	// when a reader leaves. O_NONBLOCK: the runtime poller owns the fd, so
	// a write to a full pipe parks only this goroutine and honours write
	// deadlines.
	file, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("notify fifo: %w", err)
	}
	fi, err = file.Stat()
	if err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
		file.Close()
		return fmt.Errorf("notify fifo: %s is not a FIFO", path)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if f.file != nil {
		f.file.Close()
	}
	f.file, f.dev, f.ino = file, uint64(st.Dev), st.Ino
	f.warnedStale = false
	return nil
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
		var line []byte
		switch {
		case e.Kind == KindDropped:
			drops.add(e.Dropped)
			if f.cfg.Format != FormatJSON {
				continue
			}
			line = JSONLine(e)
		case f.cfg.Format == FormatJSON:
			line = JSONLine(e)
		default:
			s, ok := KeepalivedLine(e)
			if !ok {
				continue
			}
			line = []byte(s)
		}
		f.follow()
		f.write(line)
	}
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
