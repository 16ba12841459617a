package check

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// tcpProber connects with a blocking connect(2) bounded by SO_SNDTIMEO on
// the worker's thread, bypassing net's poller: at thousands of checks per
// second the poller's registration and the extra getsockname/getpeername
// calls of net.Dial cost about a fifth of the CPU (see BenchmarkProbe). A
// worker stuck on a slow target holds one OS thread for up to Timeout; the
// worker pool bounds how many.
type tcpProber struct {
	target netip.AddrPort
	source netip.Addr
	mark   uint32
}

// prepare applies Source and FWMark to a raw socket.
func (p tcpProber) prepare(fd, family int) error {
	if p.mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(p.mark)); err != nil {
			return fmt.Errorf("fwmark %d: %w", p.mark, err)
		}
	}
	if p.source.IsValid() {
		var sa unix.Sockaddr = &unix.SockaddrInet6{Addr: p.source.As16()}
		if family == unix.AF_INET {
			sa = &unix.SockaddrInet4{Addr: p.source.As4()}
		}
		if err := unix.Bind(fd, sa); err != nil {
			return fmt.Errorf("bind %v: %w", p.source, err)
		}
	}
	return nil
}

func (tcpProber) selfTimed() {}

func (p tcpProber) probe(ctx context.Context) outcome {
	if p.target.Addr().Zone() != "" {
		return p.probeNet(ctx) // scoped IPv6: let net resolve the zone
	}
	timeout := time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return fail(Timeout, "connect: timeout")
	}
	var family int
	var sa unix.Sockaddr
	if a := p.target.Addr(); a.Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(p.target.Port()), Addr: a.As4()}
	} else {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(p.target.Port()), Addr: a.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail(Error, "tcp socket: %v", err)
	}
	if err := p.prepare(fd, family); err != nil {
		_ = unix.Close(fd)
		return fail(Error, "tcp socket: %v", err)
	}
	// SO_LINGER 0: close with RST, so a check rate of thousands per second
	// does not leave the prober's ports in TIME_WAIT.
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	tv := unix.NsecToTimeval(max(timeout, time.Microsecond).Nanoseconds())
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	deadline := time.Now().Add(timeout)
	if err = unix.Connect(fd, sa); err == unix.EINTR {
		// With SO_SNDTIMEO set a signal (SIGCHLD of an exec check, SIGPROF)
		// interrupts connect even under SA_RESTART; the handshake goes on.
		err = waitConnected(fd, deadline)
	}
	_ = unix.Close(fd)
	switch {
	case err == nil:
		return connected
	case err == unix.EINPROGRESS || err == unix.EAGAIN || err == unix.ETIMEDOUT:
		// SO_SNDTIMEO expired (EINPROGRESS), or the kernel gave up on SYNs.
		return fail(Timeout, "connect: timeout")
	}
	return fail(Failure, "connect: %v", err)
}

// waitConnected waits until the connect in progress on fd completes or
// deadline passes (EINPROGRESS), and returns its result.
func waitConnected(fd int, deadline time.Time) error {
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms <= 0 {
			return unix.EINPROGRESS
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n > 0 {
			break
		}
	}
	soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if soerr != 0 {
		return unix.Errno(soerr)
	}
	return nil
}

func (p tcpProber) probeNet(ctx context.Context) outcome {
	d := dialerFor("tcp", p.source, p.mark)
	c, err := d.DialContext(ctx, "tcp", p.target.String())
	if err != nil {
		return classify(ctx, "connect", err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
	return ok("connected")
}
