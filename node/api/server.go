package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// SocketMode is the admin socket's permission: owner and group (the local
// admin group) may connect, nobody else.
const SocketMode os.FileMode = 0o660

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

	mu      sync.Mutex
	serving bool
	closed  bool
	once    sync.Once
}

// Listen binds the admin socket at path: it creates the directory (0750) if
// missing, removes a stale socket left by a crashed run, and refuses with
// ErrAlreadyRunning if a process answers on it. The socket's mode is 0660.
//
// The socket is bound under a temporary name, given its mode, then
// hard-linked into place: link(2) fails if the name exists, so two daemons
// starting together cannot both take it, and no client ever sees the
// socket with another mode.
func Listen(path string, log *slog.Logger) (*Server, error) {
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
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("admin socket %s: creating directory: %w", path, err)
	}
	if err := clearStale(path, log); err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d.tmp", filepath.Base(path), os.Getpid()))
	os.Remove(tmp) // ours from an earlier process with the same pid, if any
	if len(tmp) > 107 {
		tmp = path // no room for a temporary name: bind in place
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
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
	if err := os.Chmod(tmp, SocketMode); err != nil {
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
	return &Server{path: path, log: log, ln: ln, ident: fi}, nil
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
		Handler:           NewHandler(h, s.log),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	srv := s.srv
	s.mu.Unlock()

	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	s.log.Info("admin API listening", "socket", s.path)
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
