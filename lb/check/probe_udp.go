package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

type udpProber struct{ s Spec }

func (p udpProber) probe(ctx context.Context) outcome {
	// A connected socket, so the kernel reports an ICMP port unreachable
	// for the target as ECONNREFUSED on the next read.
	c, err := dialerFor("udp", p.s.Source, p.s.FWMark).DialContext(ctx, "udp", p.s.Target.String())
	if err != nil {
		return fail(Error, "udp socket: %v", err)
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	if _, err := c.Write([]byte(p.s.Payload)); err != nil {
		return classify(ctx, "udp send", err)
	}
	// The buffer holds a whole Ethernet-sized reply, and one byte more than
	// MinReply and MaxReply need to be judged; MSG_TRUNC says when a reply
	// was longer (a datagram carries at most 64 KiB).
	buf := make([]byte, min(max(1500, p.s.MinReply, p.s.MaxReply+1), 64<<10))
	var n, flags int
	if uc, isUDP := c.(*net.UDPConn); isUDP {
		n, _, flags, _, err = uc.ReadMsgUDP(buf, nil)
	} else {
		n, err = c.Read(buf)
	}
	switch {
	case err == nil:
		return p.judge(buf[:n], flags&unix.MSG_TRUNC != 0)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fail(Failure, "udp: ICMP port unreachable")
	case !p.s.RequireReply && classify(ctx, "", err).result == Timeout:
		return ok("udp: no reply and no ICMP error")
	}
	return classify(ctx, "udp reply", err)
}

// judge checks a udp reply against Reply, MinReply and MaxReply; b is
// its start when truncated.
func (p udpProber) judge(b []byte, truncated bool) outcome {
	size := fmt.Sprintf("%d bytes", len(b))
	if truncated {
		size = "more than " + size
	}
	switch {
	case len(b) < p.s.MinReply:
		return fail(Failure, "udp reply of %s, want at least %d", size, p.s.MinReply)
	case p.s.MaxReply > 0 && len(b) > p.s.MaxReply:
		return fail(Failure, "udp reply of %s, want at most %d", size, p.s.MaxReply)
	case !replyMatches(p.s.Reply, b):
		return fail(Failure, "udp reply %x does not match %s", b[:min(len(b), 32)], p.s.Reply)
	}
	return ok("udp reply of %s", size)
}

// replyMatches reports whether b starts with pattern: lower-case hex
// digits, x matching any digit (keepalived's require_reply).
func replyMatches(pattern string, b []byte) bool {
	if len(pattern)/2 > len(b) {
		return false
	}
	const digits = "0123456789abcdef"
	for i := range len(pattern) {
		nibble := b[i/2] >> 4
		if i%2 == 1 {
			nibble = b[i/2] & 0xf
		}
		if c := pattern[i]; c != 'x' && c != digits[nibble] {
			return false
		}
	}
	return true
}
