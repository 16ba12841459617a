package nslab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// captureStartTimeout bounds the wait for tcpdump's "listening on" line; captureStopTimeout the
// wait for it to exit after SIGINT.
const (
	captureStartTimeout = 10 * time.Second
	captureStopTimeout  = 5 * time.Second
)

// FilterVRRP is a BPF filter for VRRP over IPv4 and IPv6. (libpcap's "vrrp" keyword matches IPv4
// only.)
const FilterVRRP = "ip proto 112 or ip6 proto 112"

// Frame is one captured Ethernet frame with its capture timestamp (kernel time, as libpcap sets it).
type Frame struct {
	Time time.Time
	Data []byte
}

// Capture is a tcpdump writing what crosses the lab's bridge to a pcap file.
type Capture struct {
	lab    *Lab
	path   string
	filter string
	cmd    *exec.Cmd
	ready  chan struct{}
	done   chan struct{}
	err    error // tcpdump's exit, set before done is closed

	mu     sync.Mutex
	stderr bytes.Buffer

	haltOnce sync.Once
	halted   bool // true when SIGINT was not enough
	stopOnce sync.Once
	frames   []Frame
	stopErr  error
}

// StartCapture starts tcpdump on br0 in the switch namespace, writing every frame that matches
// the BPF filter (empty: everything; e.g. FilterVRRP, "icmp or icmp6", "arp") to a
// pcap file in the lab's directory, packet-buffered, with the kernel's nanosecond timestamps. It
// returns once tcpdump is capturing (its "listening on" line).
func (l *Lab) StartCapture(filter string) (*Capture, error) {
	if l.isClosed() {
		return nil, ErrClosed
	}
	bin, err := IPPath()
	if err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	tcpdump, err := tcpdumpPath()
	if err != nil {
		return nil, fmt.Errorf("netlab: capture: %w", err)
	}
	path := filepath.Join(l.dir, fmt.Sprintf("capture-%d.pcap", l.nextSeq()))
	args := []string{"netns", "exec", l.SwitchNS, tcpdump,
		"-i", Bridge, "-n", "-U", "--immediate-mode", "--time-stamp-precision=nano",
		"-Z", "root", "-w", path}
	if strings.TrimSpace(filter) != "" {
		args = append(args, filter)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = l.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("netlab: capture: %w", err)
	}
	c := &Capture{lab: l, path: path, filter: filter, cmd: cmd, ready: make(chan struct{}), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("netlab: start tcpdump in namespace %s: %w", l.SwitchNS, err)
	}
	go c.watch(stderr)
	l.mu.Lock()
	closed := l.closed
	if !closed {
		l.captures = append(l.captures, c)
	}
	l.mu.Unlock()
	if closed {
		c.halt()
		return nil, ErrClosed
	}
	timer := time.NewTimer(captureStartTimeout)
	defer timer.Stop()
	select {
	case <-c.ready:
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("netlab: tcpdump in namespace %s (filter %q) exited before capturing: %v: %s",
			l.SwitchNS, filter, c.err, strings.TrimSpace(c.Stderr()))
	case <-timer.C:
		c.halt()
		return nil, fmt.Errorf("netlab: tcpdump in namespace %s (filter %q) not capturing after %v: %s",
			l.SwitchNS, filter, captureStartTimeout, strings.TrimSpace(c.Stderr()))
	}
}

// watch collects tcpdump's stderr, signals ready on "listening on", and records its exit.
func (c *Capture) watch(r io.Reader) {
	sc := bufio.NewScanner(r)
	readyClosed := false
	for sc.Scan() {
		line := sc.Text()
		c.mu.Lock()
		c.stderr.WriteString(line)
		c.stderr.WriteByte('\n')
		c.mu.Unlock()
		if !readyClosed && strings.Contains(line, "listening on") {
			close(c.ready)
			readyClosed = true
		}
	}
	_, _ = io.Copy(io.Discard, r) // after a scanner error, keep the pipe drained
	c.err = c.cmd.Wait()
	close(c.done)
}

// Path is the pcap file being written.
func (c *Capture) Path() string { return c.path }

// Filter is the BPF filter the capture was started with.
func (c *Capture) Filter() string { return c.filter }

// Stderr is what tcpdump wrote to stderr so far (after Stop: its packet and drop counts).
func (c *Capture) Stderr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

// halt stops tcpdump: SIGINT (it flushes and closes the file), SIGKILL to its group when that is
// not enough.
func (c *Capture) halt() {
	c.haltOnce.Do(func() {
		select {
		case <-c.done:
			return
		default:
		}
		_ = c.cmd.Process.Signal(os.Interrupt)
		timer := time.NewTimer(captureStopTimeout)
		defer timer.Stop()
		select {
		case <-c.done:
			return
		case <-timer.C:
		}
		c.halted = true
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-c.done:
		case <-time.After(killWait):
		}
	})
}

// Stop stops tcpdump and returns the frames it captured. It may be called more than once.
func (c *Capture) Stop() ([]Frame, error) {
	c.stopOnce.Do(func() {
		c.halt()
		var tcpdumpErr error
		select {
		case <-c.done:
			if c.err != nil && !c.halted {
				tcpdumpErr = fmt.Errorf("netlab: tcpdump (filter %q) failed: %w: %s", c.filter, c.err, strings.TrimSpace(c.Stderr()))
			}
		default:
			tcpdumpErr = fmt.Errorf("netlab: tcpdump (filter %q) did not exit", c.filter)
		}
		// After a kill the last record may be cut short: keep what is whole.
		frames, err := readPcapFile(c.path, c.halted || tcpdumpErr != nil)
		c.frames = frames
		c.stopErr = errors.Join(tcpdumpErr, err)
	})
	return c.frames, c.stopErr
}

// Frames returns the frames captured so far without stopping the capture (a record being written
// at that moment is left out).
func (c *Capture) Frames() ([]Frame, error) {
	return readPcapFile(c.path, true)
}

// ReadPcap reads a classic pcap file of Ethernet frames (such as the golden keepalived captures in
// testdata/keepalived-pcaps, or a Capture's file) into frames, in file order. pcapng files are
// refused with an error saying so.
func ReadPcap(path string) ([]Frame, error) {
	return readPcapFile(path, false)
}

func readPcapFile(path string, tolerant bool) ([]Frame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("netlab: read pcap: %w", err)
	}
	defer f.Close()
	frames, err := readPcap(f, tolerant)
	if err != nil {
		return frames, fmt.Errorf("netlab: read pcap %s: %w", path, err)
	}
	return frames, nil
}

// readPcap parses classic pcap data. tolerant accepts data cut short (a file being written): an
// incomplete file header or last record is left out.
func readPcap(r io.Reader, tolerant bool) ([]Frame, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var p PcapParser
	frames, err := p.Feed(data)
	if err == nil && !tolerant {
		err = p.End()
	}
	return frames, err
}
