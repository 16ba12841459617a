package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The admin socket's permissions: the daemon's user alone, or with an admin
// group (Options.Group, vigil run --admin-group) that group too. Whoever
// can connect is also checked by peer credentials (SO_PEERCRED).
const (
	SocketMode      os.FileMode = 0o600
	GroupSocketMode os.FileMode = 0o660
)

// Options are the admin socket's optional settings.
type Options struct {
	// Group (a name or a numeric id), when set, may use the API besides
	// root and the daemon's user: the socket gets this group and
	// GroupSocketMode, and a client whose group or supplementary groups
	// include it is accepted.
	Group string
}

// refusalLogEvery bounds the log lines about refused clients: one per
// interval, with the number refused meanwhile, so a local user looping on
// the socket cannot flood the journal.
const refusalLogEvery = 10 * time.Second

// ErrAlreadyRunning means a live process answers on the socket path.
var ErrAlreadyRunning = errors.New("another vigil is running")

// Server is the admin API on a unix socket. Listen binds it; Serve serves
// it; Close stops it and removes the socket file.
type Server struct {
	path  string
	log   *slog.Logger
	ln    *net.UnixListener
	ident os.FileInfo // the socket file we created, to remove only ours
	srv   *http.Server
	gid   int // the admin group; -1 for none
	group string
	euid  int

	refusals refusalLog

	mu      sync.Mutex
	serving bool
	closed  bool
	once    sync.Once
}

// Listen is ListenWith without options: only root and the daemon's user
// may use the socket (mode 0600).
func Listen(path string, log *slog.Logger) (*Server, error) {
	return ListenWith(path, log, Options{})
}

// ListenWith binds the admin socket at path: it creates the directory (0750)
// if missing, removes a stale socket left by a crashed run, and refuses with
// ErrAlreadyRunning if a process answers on it. The socket's mode is
// SocketMode, or GroupSocketMode with opts.Group as its group (a directory
// it creates gets that group too).
//
// The socket is bound under a temporary name, given its mode, then
// hard-linked into place: link(2) fails if the name exists, so two daemons
// starting together cannot both take it, and no client ever sees the
// socket with another mode.
func ListenWith(path string, log *slog.Logger, opts Options) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	if path == "" {
		return nil, errors.New("admin socket: empty path")
	}
	// sun_path is 108 bytes with the terminating NUL.
	if len(path) > 107 {
		return nil, fmt.Errorf("admin socket %s: path longer than the 107 bytes a unix socket allows", path)
	}
	gid, mode := -1, SocketMode
	if opts.Group != "" {
		var err error
		if gid, err = lookupGroup(opts.Group); err != nil {
			return nil, fmt.Errorf("admin socket %s: admin group: %w", path, err)
		}
		mode = GroupSocketMode
	}
	dir := filepath.Dir(path)
	if err := makeDir(dir, gid, opts.Group, log); err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	if err := clearStale(path, log); err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d.tmp", filepath.Base(path), os.Getpid()))
	os.Remove(tmp) // ours from an earlier process with the same pid, if any
	if len(tmp) > 107 {
		tmp = path // no room for a temporary name: bind in place
	}
	var ln *net.UnixListener
	err := asGroup(gid, func() error {
		var err error
		ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
		return err
	})
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("admin socket %s: %w (the socket appeared while starting)", path, ErrAlreadyRunning)
		}
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	// We remove the file ourselves (under its final name) in Close.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*Server, error) {
		ln.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := setGroup(tmp, gid); err != nil {
		return fail(fmt.Errorf("admin socket %s: giving it group %s: %w", path, opts.Group, err))
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(fmt.Errorf("admin socket %s: setting mode: %w", path, err))
	}
	if tmp != path {
		err := os.Link(tmp, path)
		switch {
		case errors.Is(err, os.ErrExist):
			return fail(fmt.Errorf("admin socket %s: %w (the socket appeared while starting)", path, ErrAlreadyRunning))
		case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EOPNOTSUPP):
			// A filesystem without hard links: rename (checked free above).
			err = os.Rename(tmp, path)
		case err == nil:
			os.Remove(tmp)
		}
		if err != nil {
			return fail(fmt.Errorf("admin socket %s: %w", path, err))
		}
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(fmt.Errorf("admin socket %s: %w", path, err))
	}
	return &Server{path: path, log: log, ln: ln, ident: fi, gid: gid, group: opts.Group, euid: os.Geteuid()}, nil
}

// lookupGroup resolves a group name or numeric id.
func lookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		if id, nerr := strconv.ParseUint(name, 10, 31); nerr == nil {
			return int(id), nil // a numeric id needs no entry in /etc/group
		}
		return -1, fmt.Errorf("group %q: %w", name, err)
	}
	id, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("group %q: gid %q: %w", name, g.Gid, err)
	}
	return id, nil
}

// makeDir creates the socket's directory (0750, with the admin group when
// there is one). An existing directory is left as it is, with a warning
// when the admin group could not reach a socket in it.
func makeDir(dir string, gid int, group string, log *slog.Logger) error {
	fi, err := os.Stat(dir)
	if err == nil {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if gid >= 0 && ok {
			search := fi.Mode().Perm()&0o001 != 0 || (int(st.Gid) == gid && fi.Mode().Perm()&0o010 != 0)
			if !search {
				log.Warn("members of the admin group cannot reach the admin socket: its directory is not searchable by them",
					"directory", dir, "mode", fi.Mode().Perm().String(), "admin_group", group)
			}
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("directory %s: %w", dir, err)
	}
	if err := asGroup(gid, func() error { return os.MkdirAll(dir, 0o750) }); err != nil {
		return fmt.Errorf("creating directory %s: %w", dir, err)
	}
	if err := setGroup(dir, gid); err != nil {
		return fmt.Errorf("giving directory %s group %s: %w", dir, group, err)
	}
	return nil
}

// asGroup runs fn with the admin group as the filesystem gid of its thread
// (setfsgid(2) is per thread), so the files fn creates get that group
// without chown, which would need CAP_CHOWN: changing the fsgid needs
// CAP_SETGID, which the systemd unit grants for scripts' users. Without it
// the files keep the daemon's group and setGroup tries chown instead. gid
// -1 runs fn as is.
func asGroup(gid int, fn func() error) error {
	if gid < 0 {
		return fn()
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		prev, _ := unix.SetfsgidRetGid(gid)
		err := fn()
		unix.SetfsgidRetGid(prev)
		// setfsgid reports nothing: read it back (-1 changes nothing). A
		// thread that kept the group stays locked and ends with this
		// goroutine.
		if cur, _ := unix.SetfsgidRetGid(-1); cur == prev {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// setGroup makes sure path has group gid (no-op for -1): asGroup gave it
// when the process may change its fsgid; otherwise chown, which works for
// an owner in the group or with CAP_CHOWN.
func setGroup(path string, gid int) error {
	if gid < 0 {
		return nil
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Gid) == gid {
		return nil
	}
	if err := os.Lchown(path, -1, gid); err != nil {
		return fmt.Errorf("%w (needs CAP_SETGID or CAP_CHOWN, or a daemon user in the group)", err)
	}
	return nil
}

// clearStale removes a socket file at path that nothing listens on. A live
// socket is never touched; neither is a file that is not a socket.
func clearStale(path string, log *slog.Logger) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin socket %s: %w", path, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("admin socket %s: exists and is not a socket (%s); remove it or choose another --admin-socket", path, fi.Mode().Type())
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("admin socket %s: %w (it answers on this socket); stop it first or give this one another --admin-socket", path, ErrAlreadyRunning)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// Busy (backlog full), permission denied...: something may be
		// there; do not guess.
		return fmt.Errorf("admin socket %s: cannot tell whether another vigil is running: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("admin socket %s: removing the stale socket: %w", path, err)
	}
	log.Warn("removed a stale admin socket left by an earlier run", "path", path)
	return nil
}

// Path returns the socket path.
func (s *Server) Path() string { return s.path }

// Serve serves h until ctx ends or Close is called, then shuts down (giving
// requests in flight up to 2 s) and removes the socket.
func (s *Server) Serve(ctx context.Context, h Handlers) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	if s.serving {
		s.mu.Unlock()
		return errors.New("admin socket: Serve called twice")
	}
	s.serving = true
	s.srv = &http.Server{
		Handler:           s.authorize(NewHandler(h, s.log)),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, peerKey{}, s.peerOf(c))
		},
	}
	srv := s.srv
	s.mu.Unlock()

	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	if s.gid >= 0 {
		s.log.Info("admin API listening", "socket", s.path, "mode", GroupSocketMode.String(), "admin_group", s.group)
	} else {
		s.log.Info("admin API listening", "socket", s.path, "mode", SocketMode.String())
	}
	err := srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		err = nil
	}
	s.Close() // after a Serve error, still remove the socket
	if err != nil {
		return fmt.Errorf("admin API on %s: %w", s.path, err)
	}
	return nil
}

// Close stops the server (if serving) and removes the socket file, if it is
// still the one we created. It is safe to call more than once.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		srv := s.srv
		s.mu.Unlock()
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := srv.Shutdown(ctx); err != nil {
				srv.Close()
			}
			cancel()
		}
		s.ln.Close()
		if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.ident) {
			if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("removing the admin socket", "path", s.path, "err", err)
			}
		}
	})
	return nil
}

// peer is a client's credentials as the kernel recorded them at connect
// time (SO_PEERCRED, SO_PEERGROUPS): what it cannot forge.
type peer struct {
	pid, uid, gid int
	groups        []uint32 // read only when there is an admin group
	err           error
}

type peerKey struct{}

func (s *Server) peerOf(c net.Conn) peer {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{err: fmt.Errorf("not a unix socket connection (%T)", c)}
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return peer{err: err}
	}
	var p peer
	cerr := rc.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			p.err = fmt.Errorf("SO_PEERCRED: %w", err)
			return
		}
		p.pid, p.uid, p.gid = int(cred.Pid), int(cred.Uid), int(cred.Gid)
		if s.gid >= 0 && p.gid != s.gid {
			if p.groups, err = peerGroups(int(fd)); err != nil {
				p.err = fmt.Errorf("SO_PEERGROUPS: %w", err)
			}
		}
	})
	if cerr != nil {
		p.err = cerr
	}
	return p
}

// peerGroups reads the supplementary groups of a unix socket's peer.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 64)
	for {
		n := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		if errno == unix.ERANGE && int(n/4) > len(buf) {
			buf = make([]uint32, n/4) // the kernel says how many there are
			continue
		}
		if errno != 0 {
			return nil, errno
		}
		return buf[:n/4], nil
	}
}

// allowed: root, the daemon's own user, and members of the admin group.
func (s *Server) allowed(p peer) bool {
	if p.err != nil {
		return false
	}
	if p.uid == 0 || p.uid == s.euid {
		return true
	}
	if s.gid < 0 {
		return false
	}
	if p.gid == s.gid {
		return true
	}
	for _, g := range p.groups {
		if int(g) == s.gid {
			return true
		}
	}
	return false
}

// CodeForbidden is the error code of a client the daemon does not serve.
const CodeForbidden = "forbidden"

// authorize answers 403 to a client that is neither root, the daemon's
// user nor in the admin group, and closes its connection.
func (s *Server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := r.Context().Value(peerKey{}).(peer)
		if s.allowed(p) {
			next.ServeHTTP(w, r)
			return
		}
		s.refusals.note(s.log, p, r)
		msg := fmt.Sprintf("uid %d may not use the admin API: only root and the daemon's user may", p.uid)
		if s.gid >= 0 {
			msg = fmt.Sprintf("uid %d may not use the admin API: only root, the daemon's user and members of group %s may", p.uid, s.group)
		}
		if p.err != nil {
			msg = "cannot identify the client: " + p.err.Error()
		}
		w.Header().Set("Connection", "close")
		WriteError(w, &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: msg})
	})
}

// refusalLog rate-limits the log lines about refused clients.
type refusalLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (l *refusalLog) note(log *slog.Logger, p peer, r *http.Request) {
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < refusalLogEvery {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	args := []any{"uid", p.uid, "gid", p.gid, "pid", p.pid, "method", r.Method, "path", r.URL.Path}
	if p.err != nil {
		args = append(args, "err", p.err)
	}
	if n > 0 {
		args = append(args, "refused_since_last_line", n)
	}
	log.Warn("admin API: refused a client that is not allowed", args...)
}
