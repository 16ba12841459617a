package nslab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// ErrKilled is wrapped by Process.Stop's error when the process ignored SIGTERM and was killed.
var ErrKilled = errors.New("did not exit after SIGTERM; killed")

var errNotDead = errors.New("process survived SIGKILL")

// killWait bounds the wait for a process after SIGKILL.
const killWait = 5 * time.Second

// StartOptions are optional settings for Node.StartWith.
type StartOptions struct {
	// Env is added to the starting process's environment ("KEY=value").
	Env []string
	// Dir is the working directory (default: the lab's directory).
	Dir string
	// FullPrivileges starts a vigil daemon with the starting process's own privileges (root's) instead of
	// the lab's daemon privileges (see Lab.SetDaemonPrivileges).
	FullPrivileges bool
}

// Process is a command running in the background in a node's namespace, in its own process group,
// with stdout and stderr going to a log file in the lab's directory.
type Process struct {
	// Name and Args are the command as given to Start.
	Name string
	Args []string

	node    *Node
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // cmd.Wait's result, set before done is closed
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Start runs `ip netns exec NS name args...` in the background (iproute2 execs the command, so the
// process is the command itself). Stop it with Stop, or let Lab.Close do it.
func (n *Node) Start(name string, args ...string) (*Process, error) {
	return n.StartWith(StartOptions{}, name, args...)
}

// StartWith is Start with options. A `vigil run` command (a program named vigil, first
// argument run) runs under the lab's daemon privileges when it has some: test labs give it the
// systemd unit's (see test/netlab.NewForTest), through setpriv, unless opts.FullPrivileges.
func (n *Node) StartWith(opts StartOptions, name string, args ...string) (*Process, error) {
	l := n.lab
	if l.isClosed() {
		return nil, ErrClosed
	}
	bin, err := IPPath()
	if err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	if _, err := exec.LookPath(name); err != nil {
		return nil, fmt.Errorf("netlab: node %s: start %s: %w", n.Name, name, err)
	}
	base := unsafeChars.ReplaceAllString(filepath.Base(name), "_")
	logPath := filepath.Join(l.dir, fmt.Sprintf("%s-%s-%d.log", n.Name, base, l.nextSeq()))
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("netlab: node %s: create log for %s: %w", n.Name, name, err)
	}
	defer logFile.Close() // the child has its own copy
	argv := []string{"netns", "exec", n.NS}
	if priv := l.DaemonPrivileges(); priv != nil && !opts.FullPrivileges && isVigilDaemon(name, args) {
		// After ip netns exec, which needs CAP_SYS_ADMIN itself; setpriv execs vigil, so the
		// process keeps one pid throughout.
		sp, err := exec.LookPath("setpriv")
		if err != nil {
			return nil, fmt.Errorf("netlab: node %s: start %s under the unit's privileges: %w (util-linux)", n.Name, name, err)
		}
		argv = append(append(append(argv, sp), priv.SetprivArgs()...), "--")
	}
	argv = append(append(argv, name), args...)
	cmd := exec.Command(bin, argv...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Dir = opts.Dir
	if cmd.Dir == "" {
		cmd.Dir = l.dir
	}
	if len(opts.Env) > 0 {
		cmd.Env = append(os.Environ(), opts.Env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &Process{Name: name, Args: args, node: n, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("netlab: node %s: start %s: %w", n.Name, name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := l.register(p); err != nil {
		// The lab was closed meanwhile: do not leave the process behind.
		p.killGroup()
		<-p.done
		return nil, err
	}
	return p, nil
}

// Pid is the process id of the command.
func (p *Process) Pid() int {
	if p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Node is the node the process runs on.
func (p *Process) Node() *Node { return p.node }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process (only the process, not its group). It returns
// os.ErrProcessDone when the process has exited.
func (p *Process) Signal(sig os.Signal) error {
	if p.Exited() {
		return os.ErrProcessDone
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("netlab: signal %v to %s (pid %d) on node %s: %w", sig, p.Name, p.Pid(), p.node.Name, err)
	}
	return nil
}

// Wait waits for the process to exit and returns its status as exec.Cmd.Wait does.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM, waits up to timeout for the process to exit, then SIGKILLs its whole process
// group; anything left in its group when it exits is SIGKILLed too. It returns nil when
// the process exited with status 0 or died of the SIGTERM, an error wrapping ErrKilled when it had
// to be killed, and an error with the exit status (wrapping *exec.ExitError) otherwise. Stop may be
// called more than once and after the process exited by itself.
func (p *Process) Stop(timeout time.Duration) error {
	if p.Exited() {
		// Exited earlier: its process group id may be anyone's by now; Lab.Close sweeps the
		// namespace for what it left.
		return p.result()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		p.killGroup()
		return p.result()
	case <-timer.C:
	}
	p.killGroup()
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
		return fmt.Errorf("netlab: %s (pid %d) on node %s %w after %v", p.Name, p.Pid(), p.node.Name, ErrKilled, timeout)
	case <-time.After(killWait):
		return fmt.Errorf("netlab: %s (pid %d) on node %s: %w for %v", p.Name, p.Pid(), p.node.Name, errNotDead, killWait)
	}
}

func (p *Process) killGroup() { _ = syscall.Kill(-p.Pid(), syscall.SIGKILL) }

func (p *Process) result() error {
	err := p.err
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	return fmt.Errorf("netlab: %s (pid %d) on node %s: %w", p.Name, p.Pid(), p.node.Name, err)
}

// LogPath is the file that receives the process's stdout and stderr.
func (p *Process) LogPath() string { return p.logPath }

// Log returns what the process wrote to stdout and stderr so far (for failure messages).
func (p *Process) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(log %s unavailable: %v)", p.logPath, err)
	}
	return string(b)
}

// LogLines returns the last n lines of the log (for failure messages).
func (p *Process) LogLines(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LogTail returns at most max bytes from the end of the log, starting at a line boundary.
func (p *Process) LogTail(max int) string {
	s := p.Log()
	if len(s) <= max {
		return s
	}
	s = s[len(s)-max:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "...\n" + s
}
