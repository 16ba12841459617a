package nslab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// cmdTimeout bounds every short helper command (ip, sh) the lab runs itself.
const cmdTimeout = 15 * time.Second

// CmdError is the error of a command that failed: the command line, its combined output and the
// underlying error (usually an *exec.ExitError).
type CmdError struct {
	Args   []string
	Output []byte
	Err    error
}

func (e *CmdError) Error() string {
	out := strings.TrimSpace(string(e.Output))
	if out == "" {
		out = "(no output)"
	}
	return fmt.Sprintf("`%s`: %v: %s", strings.Join(e.Args, " "), e.Err, out)
}

func (e *CmdError) Unwrap() error { return e.Err }

var (
	ipOnce sync.Once
	ipBin  string
	ipErr  error
)

// IPPath returns the path of iproute2's `ip`, found in PATH or in /usr/sbin, /sbin.
func IPPath() (string, error) {
	ipOnce.Do(func() {
		if p, err := exec.LookPath("ip"); err == nil {
			ipBin = p
			return
		}
		for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
			if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				ipBin = p
				return
			}
		}
		ipErr = errors.New("iproute2's `ip` not found in PATH nor in /usr/sbin or /sbin (Debian package iproute2)")
	})
	return ipBin, ipErr
}

func tcpdumpPath() (string, error) {
	if p, err := exec.LookPath("tcpdump"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/tcpdump", "/usr/sbin/tcpdump", "/sbin/tcpdump"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("tcpdump not found in PATH nor in /usr/bin, /usr/sbin (Debian package tcpdump)")
}

// runCmd runs name with args, returning the combined output and, on failure, a *CmdError.
func runCmd(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	return execCmd(ctx, stdin, false, name, args...)
}

// execCmd runs name with args and returns its combined output, or its standard output alone when
// stdoutOnly is set; on failure, a *CmdError with both.
func execCmd(ctx context.Context, stdin []byte, stdoutOnly bool, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 2 * time.Second
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stdout
	if stdoutOnly {
		cmd.Stderr = &stderr
	}
	err := cmd.Run()
	out := stdout.Bytes()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%w)", err, ctxErr)
		}
		return out, &CmdError{Args: append([]string{name}, args...), Output: append(bytes.Clone(out), stderr.Bytes()...), Err: err}
	}
	return out, nil
}

// ip runs `ip args...` with the default timeout.
func ip(args ...string) ([]byte, error) { return ipRun(false, args...) }

// ipJSON runs `ip -j args...` with the default timeout and returns its standard output only: ip
// prints warnings to stderr beside its JSON, such as "Peer netns reference is invalid" while
// some namespace is being deleted.
func ipJSON(args ...string) ([]byte, error) { return ipRun(true, append([]string{"-j"}, args...)...) }

func ipRun(stdoutOnly bool, args ...string) ([]byte, error) {
	bin, err := IPPath()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	return execCmd(ctx, nil, stdoutOnly, bin, args...)
}

// nsExec runs `ip netns exec ns name args...` with the default timeout.
func nsExec(ns string, name string, args ...string) ([]byte, error) {
	bin, err := IPPath()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	return runCmd(ctx, nil, bin, append([]string{"netns", "exec", ns, name}, args...)...)
}

// nsSetup runs one shell in namespace ns that writes the sysctls (key/value pairs, keys with
// dots: "net.ipv6.conf.eth0.accept_dad") in order, then runs the ip commands as one `ip -batch`.
// Every exec of ip costs tens of milliseconds (it switches mount namespaces), so a node is set up
// with few of them. Keys, values and commands are built by this package from validated names.
func nsSetup(ns string, kv []string, cmds [][]string) error {
	if len(kv)%2 != 0 {
		return errors.New("netlab: nsSetup needs sysctl key/value pairs")
	}
	bin, err := IPPath()
	if err != nil {
		return err
	}
	var script strings.Builder
	script.WriteString("set -e\n")
	for i := 0; i < len(kv); i += 2 {
		fmt.Fprintf(&script, "echo %s > /proc/sys/%s\n", kv[i+1], strings.ReplaceAll(kv[i], ".", "/"))
	}
	if len(cmds) > 0 {
		fmt.Fprintf(&script, "exec %s -batch - <<'NETLAB_EOF'\n%sNETLAB_EOF\n", bin, batch(cmds))
	}
	_, err = nsExec(ns, "sh", "-c", script.String())
	return err
}

// ipBatch runs the ip commands in namespace ns as one `ip -n ns -batch -`.
func ipBatch(ns string, cmds [][]string) error {
	bin, err := IPPath()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	in := batch(cmds)
	if _, err := runCmd(ctx, []byte(in), bin, "-n", ns, "-batch", "-"); err != nil {
		return fmt.Errorf("%w; batch:\n%s", err, in)
	}
	return nil
}

func batch(cmds [][]string) string {
	var b strings.Builder
	for _, c := range cmds {
		b.WriteString(strings.Join(c, " "))
		b.WriteByte('\n')
	}
	return b.String()
}

// Poll calls cond every interval until it returns true or an error, or timeout passes.
func Poll(timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ok, err := cond()
		if err == nil && ok {
			return nil
		}
		lastErr = err
		if time.Now().After(deadline) {
			if lastErr != nil {
				return fmt.Errorf("timed out after %v: %w", timeout, lastErr)
			}
			return fmt.Errorf("timed out after %v", timeout)
		}
		time.Sleep(interval)
	}
}
