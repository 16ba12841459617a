package track

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"vigil/vrrp/policy"
)

// FileSpec configures a file tracker (keepalived track_file): the value is
// an integer read from the file, which the node multiplies by the weight.
//
// Parsing: the first line of the file (it must end within the first 4 KiB), with
// surrounding white space removed, must be a base-10 integer with an
// optional sign ("42", "-10", "+3"; "010" is ten, not octal).
//   - an empty first line (or an empty file) is 0, as in keepalived;
//   - a missing file, one that cannot be read, that is not a regular file,
//     or whose first line is not such a number is the Init value, and Detail
//     says why. keepalived reads "12abc" as 12 and "abc" as 0 (strtol); vigil
//     treats contents it cannot parse like a missing file, so that a typo
//     falls back to the configured default instead of to an arbitrary
//     number;
//   - values beyond ±MaxFileValue are clamped to it (with a weight of 1 or
//     more, anything past ±254 already saturates the priority).
//
// The file is watched through inotify on its directory, so writes, atomic
// replacement by rename, deletion and re-creation are all seen; events are
// debounced by 10 ms and the file is read once they stop. The file is also
// re-read every 5 s as a safety net (a symlink's target changing is only
// seen then), and a directory that does not exist yet is looked for every
// second. Files are always Up: the value carries the signal.
type FileSpec struct {
	Name string
	// Path is the absolute path of the file.
	Path string
	// Init is the value while the file is missing, unreadable or not a
	// number.
	Init int
}

// MaxFileValue bounds a file's value.
const MaxFileValue = 1_000_000

const (
	fileDebounce = 10 * time.Millisecond
	fileResync   = 5 * time.Second
	fileRetry    = time.Second
	fileMaxRead  = 4096
)

// File is a file tracker.
type File struct {
	spec FileSpec
	log  *slog.Logger
}

// NewFile validates spec and returns the tracker. log may be nil.
func NewFile(spec FileSpec, log *slog.Logger) (*File, error) {
	if spec.Name == "" {
		return nil, fmt.Errorf("track: file %q: empty name", spec.Path)
	}
	if !filepath.IsAbs(spec.Path) {
		return nil, fmt.Errorf("track: file %q: path %q is not absolute", spec.Name, spec.Path)
	}
	spec.Path = filepath.Clean(spec.Path)
	if spec.Path == "/" {
		return nil, fmt.Errorf("track: file %q: path is the root directory", spec.Name)
	}
	spec.Init = clampValue(int64(spec.Init))
	return &File{spec: spec, log: orDiscard(log).With("tracker", "file "+spec.Name)}, nil
}

func (f *File) Kind() policy.Kind { return policy.KindFile }
func (f *File) Name() string      { return f.spec.Name }

// Spec returns the normalized spec.
func (f *File) Spec() FileSpec { return f.spec }

func (f *File) Initial() Update {
	return Update{Kind: policy.KindFile, Name: f.spec.Name, Up: true, Value: f.spec.Init, Init: true,
		Detail: fmt.Sprintf("init: not read yet, init value %d", f.spec.Init)}
}

// Run watches the file until ctx ends.
func (f *File) Run(ctx context.Context, emit func(Update)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("track: file %q: inotify: %w", f.spec.Name, err)
	}
	defer w.Close()
	dir := filepath.Dir(f.spec.Path)

	watching := false
	watch := func() {
		if err := w.Add(dir); err != nil {
			if watching || !errors.Is(err, fs.ErrNotExist) {
				f.log.Warn("cannot watch the file's directory; retrying every second", "dir", dir, "err", err)
			}
			watching = false
			return
		}
		watching = true
	}

	var last *Update
	publish := func() {
		v, detail := readValue(f.spec.Path, f.spec.Init)
		if last != nil && last.Value == v && last.Detail == detail {
			return
		}
		if last != nil && last.Value != v {
			f.log.Info("file value changed", "path", f.spec.Path, "from", last.Value, "to", v, "detail", detail)
		}
		u := Update{Up: true, Value: v, Detail: detail, At: time.Now()}
		last = &u
		emit(u)
	}

	watch() // before the first read, so that no change falls in between
	publish()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	tick := time.NewTicker(fileRetry)
	defer tick.Stop()
	sinceResync := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return fmt.Errorf("track: file %q: inotify watcher closed", f.spec.Name)
			}
			name := filepath.Clean(ev.Name)
			switch {
			case name == f.spec.Path:
				debounce.Reset(fileDebounce)
			case name == dir && ev.Has(fsnotify.Remove|fsnotify.Rename):
				// The directory went away and its watch with it.
				f.log.Warn("the file's directory was removed or renamed; looking for it every second", "dir", dir)
				watching = false
				_ = w.Remove(dir)
				debounce.Reset(fileDebounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return fmt.Errorf("track: file %q: inotify watcher closed", f.spec.Name)
			}
			// An overflow loses events: read the file again.
			f.log.Warn("inotify error; re-reading the file", "err", err)
			debounce.Reset(fileDebounce)
		case <-debounce.C:
			publish()
		case <-tick.C:
			sinceResync += fileRetry
			if !watching {
				watch()
				publish()
			} else if sinceResync >= fileResync {
				sinceResync = 0
				publish()
			}
		}
	}
}

// readValue reads the file's value (see FileSpec).
func readValue(path string, init int) (int, string) {
	bad := func(why string) (int, string) {
		return init, fmt.Sprintf("%s; init value %d", why, init)
	}
	// O_NONBLOCK: opening a FIFO must not hang the tracker.
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return bad("missing")
		}
		return bad("unreadable: " + errText(err))
	}
	defer fh.Close()
	if st, err := fh.Stat(); err != nil {
		return bad("unreadable: " + errText(err))
	} else if !st.Mode().IsRegular() {
		return bad("not a regular file")
	}
	buf := make([]byte, fileMaxRead)
	n, err := io.ReadFull(fh, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return bad("unreadable: " + errText(err))
	}
	line, _, found := strings.Cut(string(buf[:n]), "\n")
	if !found && n == fileMaxRead {
		return bad(fmt.Sprintf("first line longer than %d bytes", fileMaxRead))
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return 0, "empty: value 0"
	}
	short := line
	if len(short) > 32 {
		short = short[:32] + "..."
	}
	v, err := strconv.ParseInt(line, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return bad(fmt.Sprintf("not a number: %q", short))
	}
	c := clampValue(v)
	if int64(c) != v {
		return c, fmt.Sprintf("value %s clamped to %d", short, c)
	}
	return c, fmt.Sprintf("value %d", c)
}

func clampValue(v int64) int {
	return int(max(-MaxFileValue, min(MaxFileValue, v)))
}

// errText is err without the path, which logs already carry.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
