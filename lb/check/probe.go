package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Result classifies one probe for observers and metrics.
type Result uint8

// Probe results.
const (
	Success Result = iota // the target answered as wanted
	Failure               // the target answered, wrongly (refused, bad status, exit 1, ...)
	Timeout               // no answer within Spec.Timeout
	Error                 // the probe could not be made (local error: socket, bad user, ...)
)

func (r Result) String() string {
	switch r {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Timeout:
		return "timeout"
	case Error:
		return "error"
	}
	return "result-" + strconv.Itoa(int(r))
}

// outcome is what one probe found.
type outcome struct {
	result Result
	detail string
	// weight is set (setWeight) by exec and file checks with Dynamic.
	weight    int
	setWeight bool
}

func ok(format string, a ...any) outcome {
	return outcome{result: Success, detail: fmt.Sprintf(format, a...)}
}

func fail(r Result, format string, a ...any) outcome {
	return outcome{result: r, detail: fmt.Sprintf(format, a...)}
}

// classify turns a network error into a result: deadline errors are
// timeouts, the rest failures.
func classify(ctx context.Context, what string, err error) outcome {
	var ne net.Error
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return fail(Timeout, "%s: timeout", what)
	}
	return fail(Failure, "%s: %v", what, err)
}

// prober runs one kind of probe; it is built once per deduplicated check
// and called from one worker at a time.
type prober interface {
	probe(ctx context.Context) outcome
}

func newProber(s Spec) (prober, error) {
	switch s.Type {
	case TCP:
		return tcpProber{s.Target, s.Source, s.FWMark}, nil
	case HTTP, HTTPS:
		return newHTTPProber(s)
	case UDP:
		return udpProber{s}, nil
	case DNS:
		return dnsProber{s}, nil
	case Ping:
		return &pingProber{s: s}, nil
	case SMTP:
		return smtpProber{s}, nil
	case Exec:
		return execProber{s}, nil
	case File:
		return fileProber{s}, nil
	}
	return nil, fmt.Errorf("check: unknown type %q", s.Type)
}

var connected = outcome{result: Success, detail: "connected"}

// dialerFor returns a dialer for network ("tcp" or "udp") probes from
// source (if valid) with packets marked mark (if not 0). TCP keepalive is
// off: a probe's connection lives for microseconds and setting it costs
// three syscalls.
func dialerFor(network string, source netip.Addr, mark uint32) *net.Dialer {
	d := &net.Dialer{KeepAlive: -1}
	if source.IsValid() {
		if network == "udp" {
			d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(source, 0))
		} else {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(source, 0))
		}
	}
	if mark != 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
			})
			if err == nil && serr != nil {
				err = fmt.Errorf("fwmark %d: %w", mark, serr)
			}
			return err
		}
	}
	return d
}
