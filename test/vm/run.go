package vm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults for a zero Spec field.
const (
	DefaultTimeout  = 2 * time.Minute
	DefaultMemoryMB = 512
	DefaultCPUs     = 1
)

// Spec describes one VM run.
type Spec struct {
	// Files maps an absolute guest path to a host file copied there
	// (symlinks followed, permission bits kept). Static binaries only, or
	// bring their libraries along.
	Files map[string]string
	// Command is the argv run by init as root in /, with stdin from
	// /dev/null. Command[0] is an absolute guest path or a name on PATH.
	Command []string
	// Env adds KEY=value pairs to the command's environment.
	Env []string
	// Modules are extra kernel modules to modprobe before the command (the
	// default set is crc32c_generic, ip_vs and its schedulers, veth, dummy,
	// bridge, macvlan). A module that fails to load fails the run.
	Modules []string
	// Timeout bounds the VM from qemu's start, boot included; qemu is
	// killed when it expires. Zero means DefaultTimeout. Building the
	// cached image (first run after a kernel or harness change, ~2 s) comes
	// before and is bounded by ctx only.
	Timeout time.Duration
	// MemoryMB is the guest RAM; zero means DefaultMemoryMB. The initramfs
	// (about 50 MB plus Files) lives in it.
	MemoryMB int
	// CPUs is the number of virtual CPUs; zero means DefaultCPUs.
	CPUs int
	// Log, if set, receives the command's output as it arrives, for long
	// runs whose progress matters before they end.
	Log io.Writer
}

// Result is what came back from a run that reached its end marker.
type Result struct {
	// Output is the command's combined stdout and stderr.
	Output string
	// ExitCode is the command's exit status (128+n if killed by signal n).
	ExitCode int
	// Console is the serial console: kernel log and init's progress lines.
	Console string
	// Boot is the host-side time from starting qemu to the command's start.
	Boot time.Duration
	// GuestUptime is the guest kernel's uptime when the command started.
	GuestUptime time.Duration
	// Total is the host-side time from starting qemu to its exit.
	Total time.Duration
	// Kernel names the kernel version and how it was booted (the cached
	// uncompressed vmlinux, or the bzImage and why), for test logs.
	Kernel string
}

// Run boots the VM, runs spec.Command and returns its output and status.
// A non-zero exit status of the command is not an error; failing to boot,
// a failed init step, a timeout or a cancelled ctx is, and the error then
// carries the last console and output lines.
func Run(ctx context.Context, spec Spec) (Result, error) {
	if len(spec.Command) == 0 {
		return Result{}, errors.New("vm: Spec.Command is empty")
	}
	if spec.Timeout <= 0 {
		spec.Timeout = DefaultTimeout
	}
	if spec.MemoryMB <= 0 {
		spec.MemoryMB = DefaultMemoryMB
	}
	if spec.CPUs <= 0 {
		spec.CPUs = DefaultCPUs
	}
	t, err := findTools()
	if err != nil {
		return Result{}, err
	}
	k, err := FindKernel()
	if err != nil {
		return Result{}, err
	}
	// Parallel tests in one process build the image once: the rest wait
	// here and then find it in the cache.
	imageMu.Lock()
	image, note := bootImage(ctx, k, t)
	base, err := baseImage(ctx, k, t)
	imageMu.Unlock()
	if err != nil {
		return Result{}, err
	}
	dir, err := runDir()
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	nonce, err := newNonce()
	if err != nil {
		return Result{}, err
	}
	initrd := dir + "/initrd.cpio"
	if err := writeRunImage(initrd, base, spec, nonce); err != nil {
		return Result{}, err
	}
	res, err := boot(ctx, t, image, spec, dir, initrd, nonce)
	res.Kernel = k.Version + ": " + note
	return res, err
}

// runDir creates the directory for one run's initrd and console log under
// the cache root, named after this process. A test process killed outright
// cannot remove its run dir (a 35 MB initrd); the next Run removes the dirs
// of processes that no longer exist.
func runDir() (string, error) {
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	runs := filepath.Join(root, "runs")
	if err := os.MkdirAll(runs, 0o755); err != nil {
		return "", fmt.Errorf("vm: create %s: %w", runs, err)
	}
	entries, _ := os.ReadDir(runs)
	for _, e := range entries {
		pidStr, _, _ := strings.Cut(e.Name(), "-")
		if pid, err := strconv.Atoi(pidStr); err == nil && pid > 0 && syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(filepath.Join(runs, e.Name()))
		}
	}
	dir, err := os.MkdirTemp(runs, strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", fmt.Errorf("vm: create run dir: %w", err)
	}
	return dir, nil
}

func newNonce() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("vm: make run nonce: %w", err)
	}
	return hex.EncodeToString(b), nil
}

var imageMu sync.Mutex

var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// runScript is /vigil/run, sourced by init: plain shell assignments and a
// function, every value single-quoted, so no argument is ever re-parsed.
func runScript(spec Spec, nonce string) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "VIGIL_NONCE=%s\n", shQuote(nonce))
	for _, m := range spec.Modules {
		if !envKey.MatchString(strings.ReplaceAll(m, "-", "_")) {
			return nil, fmt.Errorf("vm: Spec.Modules: %q is not a module name", m)
		}
	}
	fmt.Fprintf(&b, "VIGIL_MODULES=%s\n", shQuote(strings.Join(spec.Modules, " ")))
	for _, kv := range spec.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || !envKey.MatchString(k) {
			return nil, fmt.Errorf("vm: Spec.Env: %q is not KEY=value", kv)
		}
		fmt.Fprintf(&b, "export %s\n", shQuote(kv))
	}
	q := make([]string, len(spec.Command))
	for i, a := range spec.Command {
		q[i] = shQuote(a)
	}
	fmt.Fprintf(&b, "vigil_command() {\n\t%s\n}\n", strings.Join(q, " "))
	return b.Bytes(), nil
}

func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writeRunImage writes the cached base archive followed by one with this
// run's script and files: the kernel unpacks concatenated archives in
// order, later entries replacing earlier ones.
func writeRunImage(dst, base string, spec Spec, nonce string) error {
	script, err := runScript(spec, nonce)
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("vm: create initrd: %w", err)
	}
	defer out.Close()
	in, err := os.Open(base)
	if err != nil {
		return fmt.Errorf("vm: open cached initramfs: %w", err)
	}
	_, err = io.Copy(out, in)
	in.Close()
	if err != nil {
		return fmt.Errorf("vm: copy cached initramfs: %w", err)
	}
	w := newCPIOWriter(out)
	if err := w.Bytes("vigil/run", 0o644, script); err != nil {
		return fmt.Errorf("vm: write run script: %w", err)
	}
	guests := make([]string, 0, len(spec.Files))
	for g := range spec.Files {
		guests = append(guests, g)
	}
	sort.Strings(guests)
	for _, g := range guests {
		if !path.IsAbs(g) || path.Clean(g) != g || g == "/" {
			return fmt.Errorf("vm: Spec.Files: guest path %q is not a clean absolute file path", g)
		}
		if err := w.File(g, spec.Files[g]); err != nil {
			return fmt.Errorf("vm: add %s as %s: %w", spec.Files[g], g, err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("vm: write run archive: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("vm: write initrd: %w", err)
	}
	return nil
}

// kernelArgs: console on ttyS0 for diagnostics, at the default log level
// (the full boot log costs under 0.1 s and is what explains a hang);
// panic=-1 with qemu's -no-reboot turns a dying init into a prompt qemu exit
// instead of a hang; the i8042 options skip probing a keyboard controller
// that only costs boot time under TCG.
const kernelArgs = "console=ttyS0 panic=-1 i8042.noaux i8042.nokbd i8042.nopnp mitigations=off"

func qemuArgs(image string, spec Spec, dir, initrd string) []string {
	return []string{
		// TCG only: KVM is present on the CI machine but hangs.
		"-accel", "tcg",
		"-machine", "pc",
		// "max" gives the guest RDRAND, so its RNG is ready at once.
		"-cpu", "max",
		"-smp", strconv.Itoa(spec.CPUs),
		"-m", strconv.Itoa(spec.MemoryMB),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", image,
		"-initrd", initrd,
		"-append", kernelArgs,
		// ttyS0: console to a file; ttyS1: command output to our pipe.
		"-serial", "file:" + dir + "/console.log",
		"-serial", "stdio",
	}
}

// marker is what the output reader found on ttyS1.
type marker struct {
	mu       sync.Mutex
	out      bytes.Buffer // command output so far (markers removed)
	started  time.Time
	uptime   time.Duration
	exited   bool
	code     int
	initFail string
}

// read consumes ttyS1 until EOF (qemu gone). Markers are recognised only
// as whole lines with this run's nonce.
func (m *marker) read(r io.Reader, nonce string, log io.Writer, sawEnd chan<- struct{}) {
	br := bufio.NewReaderSize(r, 64<<10)
	startP, exitP, failP := "VIGIL-VM-START "+nonce+" ", "VIGIL-VM-EXIT "+nonce+" ", "VIGIL-VM-INITFAIL "+nonce+" "
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			text := strings.TrimRight(line, "\r\n")
			m.mu.Lock()
			switch {
			case strings.HasPrefix(text, startP):
				m.started = time.Now()
				if f, perr := strconv.ParseFloat(strings.TrimPrefix(text, startP), 64); perr == nil {
					m.uptime = time.Duration(f * float64(time.Second))
				}
			case strings.HasPrefix(text, exitP) || strings.HasPrefix(text, failP):
				if c, ok := strings.CutPrefix(text, exitP); ok {
					m.code, _ = strconv.Atoi(c)
					m.exited = true
				} else {
					m.initFail = strings.TrimPrefix(text, failP)
				}
				// init prints a newline before the marker so it starts a
				// line even after output without one; drop that newline.
				b := m.out.Bytes()
				if len(b) > 0 && b[len(b)-1] == '\n' {
					m.out.Truncate(len(b) - 1)
				}
				select {
				case sawEnd <- struct{}{}:
				default:
				}
			default:
				if strings.HasSuffix(line, "\r\n") {
					line = line[:len(line)-2] + "\n"
				}
				m.out.WriteString(line)
				if log != nil {
					io.WriteString(log, line)
				}
			}
			m.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// exitGrace is how long qemu may take to power off after the end marker
// before it is killed: the result is complete by then either way.
const exitGrace = 5 * time.Second

func boot(ctx context.Context, t tools, image string, spec Spec, dir, initrd, nonce string) (Result, error) {
	runCtx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()

	pr, pw, err := os.Pipe()
	if err != nil {
		return Result{}, fmt.Errorf("vm: create output pipe: %w", err)
	}
	defer pr.Close()
	var stderr bytes.Buffer
	cmd := exec.Command(t.qemu, qemuArgs(image, spec, dir, initrd)...)
	cmd.Stdout = pw
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	// If this test process dies without cleaning up, the kernel kills qemu:
	// a TCG guest left behind would eat a core of a 2-core machine. The
	// signal fires when the forking thread exits, so the thread is kept
	// locked to the goroutine that waits for qemu (below) until it exits.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

	startErr := make(chan error, 1)
	waitErr := make(chan error, 1)
	start := time.Now()
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			startErr <- err
			return
		}
		startErr <- nil
		waitErr <- cmd.Wait()
	}()
	if err := <-startErr; err != nil {
		pw.Close()
		return Result{}, fmt.Errorf("vm: start %s: %w", t.qemu, err)
	}
	pw.Close() // qemu holds the write end now; EOF on pr means qemu is gone

	var m marker
	sawEnd := make(chan struct{}, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		m.read(pr, nonce, spec.Log, sawEnd)
	}()

	var (
		werr     error
		grace    <-chan time.Time
		stopped  error // why we killed qemu, if we did
		finished bool
	)
	for !finished {
		select {
		case <-sawEnd:
			grace = time.After(exitGrace)
		case <-grace:
			cmd.Process.Kill()
			grace = nil
		case <-runCtx.Done():
			stopped = runCtx.Err()
			if ctx.Err() != nil {
				stopped = ctx.Err()
			}
			cmd.Process.Kill()
			werr = <-waitErr
			finished = true
		case werr = <-waitErr:
			finished = true
		}
	}
	<-readDone
	total := time.Since(start)
	console, _ := os.ReadFile(dir + "/console.log")

	m.mu.Lock()
	res := Result{
		Output:      m.out.String(),
		ExitCode:    m.code,
		Console:     string(console),
		GuestUptime: m.uptime,
		Total:       total,
	}
	if !m.started.IsZero() {
		res.Boot = m.started.Sub(start)
	}
	exited, initFail, started := m.exited, m.initFail, !m.started.IsZero()
	m.mu.Unlock()

	diag := func() string {
		s := "\n--- last console lines (ttyS0) ---\n" + lastLines(res.Console, 25)
		if started {
			s += "\n--- last output lines (ttyS1) ---\n" + lastLines(res.Output, 25)
		}
		if e := strings.TrimSpace(stderr.String()); e != "" {
			s += "\n--- qemu stderr ---\n" + lastLines(e, 10)
		}
		return s
	}
	switch {
	case exited:
		// The end marker arrived: the result is complete even if qemu had
		// to be killed afterwards (or the deadline hit during power-off).
		return res, nil
	case initFail != "":
		return res, fmt.Errorf("vm: guest init failed at step %q%s", initFail, diag())
	case stopped != nil:
		phase := "while booting (the command had not started)"
		if started {
			phase = "while the command was running"
		}
		if errors.Is(stopped, context.DeadlineExceeded) && ctx.Err() == nil {
			return res, fmt.Errorf("vm: timed out after %v %s; qemu killed: %w%s", spec.Timeout, phase, stopped, diag())
		}
		return res, fmt.Errorf("vm: cancelled %s; qemu killed: %w%s", phase, stopped, diag())
	default:
		return res, fmt.Errorf("vm: qemu exited (%v) without the end marker%s", describeExit(werr), diag())
	}
}

func describeExit(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "(empty)"
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// limitedWriter keeps the first n bytes and drops the rest, so a qemu that
// spams stderr cannot grow the test's memory without bound.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.n -= k
		l.w.Write(p[:k])
	}
	return len(p), nil
}
