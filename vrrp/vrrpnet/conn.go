// Package vrrpnet carries VRRP adverts on raw IP protocol 112 sockets: one
// socket per (interface, address family), bound to the interface, joined to
// the VRRP group on that interface only, sending with TTL/Hop Limit 255 and
// multicast loopback off, and reporting for each received packet the source,
// destination and TTL the pure receive checks need.
package vrrpnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"vigil/vrrp"
)

// tosCS6 marks adverts as network control (DSCP CS6), as keepalived does.
const tosCS6 = 0xc0

// rcvBuf is the socket receive buffer: a host with a few hundred instances
// at 10 ms must not drop adverts in a scheduling hiccup.
const rcvBuf = 4 << 20

// Conn is a raw VRRP socket on one interface for one address family.
type Conn struct {
	ifi    *net.Interface
	family int
	v4     *ipv4.RawConn
	v6     *ipv6.PacketConn
	raw    syscall.RawConn // for recvmsg with kernel timestamps
	oob    []byte
	joined bool
}

// Listen opens the socket for ifname and family (4 or 6). With join, it joins
// the VRRP multicast group (224.0.0.18 or ff02::12) on that interface only.
func Listen(ifname string, family int, join bool) (*Conn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("vrrp socket: interface %q: %w", ifname, err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			// Bind to the device so only this interface's adverts arrive and
			// ours leave through it, whatever the routing table says.
			if serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname); serr != nil {
				serr = fmt.Errorf("SO_BINDTODEVICE %s: %w", ifname, serr)
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf); serr != nil {
				serr = fmt.Errorf("SO_RCVBUF: %w", serr)
				return
			}
			// Kernel receive timestamps: a backup's Master_Down_Timer
			// starts when the advert arrived, not when the process woke.
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); serr != nil {
				serr = fmt.Errorf("SO_TIMESTAMPNS: %w", serr)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c := &Conn{ifi: ifi, family: family, oob: make([]byte, 256)}
	switch family {
	case 4:
		pc, err := lc.ListenPacket(context.Background(), "ip4:112", "0.0.0.0")
		if err != nil {
			return nil, fmt.Errorf("vrrp socket on %s (IPv4): %w", ifname, err)
		}
		if c.raw, err = pc.(*net.IPConn).SyscallConn(); err != nil {
			pc.Close()
			return nil, fmt.Errorf("vrrp socket on %s (IPv4): %w", ifname, err)
		}
		rc, err := ipv4.NewRawConn(pc)
		if err != nil {
			pc.Close()
			return nil, fmt.Errorf("vrrp raw IPv4 socket on %s: %w", ifname, err)
		}
		c.v4 = rc
		err = errors.Join(
			wrap("IP_MULTICAST_IF", rc.SetMulticastInterface(ifi)),
			wrap("IP_MULTICAST_LOOP off", rc.SetMulticastLoopback(false)),
			wrap("IP_MULTICAST_TTL", rc.SetMulticastTTL(vrrp.RequiredTTL)),
		)
		if err == nil && join {
			err = wrap("join 224.0.0.18", rc.JoinGroup(ifi, &net.IPAddr{IP: vrrp.GroupIPv4.AsSlice()}))
		}
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("vrrp socket on %s (IPv4): %w", ifname, err)
		}
	case 6:
		pc, err := lc.ListenPacket(context.Background(), "ip6:112", "::")
		if err != nil {
			return nil, fmt.Errorf("vrrp socket on %s (IPv6): %w", ifname, err)
		}
		if c.raw, err = pc.(*net.IPConn).SyscallConn(); err != nil {
			pc.Close()
			return nil, fmt.Errorf("vrrp socket on %s (IPv6): %w", ifname, err)
		}
		p := ipv6.NewPacketConn(pc)
		c.v6 = p
		// The checksum is computed and verified in user space by package
		// vrrp (IPV6_CHECKSUM is left off) so that bad checksums are counted
		// rather than silently dropped by the kernel.
		err = errors.Join(
			wrap("IPV6_MULTICAST_IF", p.SetMulticastInterface(ifi)),
			wrap("IPV6_MULTICAST_LOOP off", p.SetMulticastLoopback(false)),
			wrap("IPV6_MULTICAST_HOPS", p.SetMulticastHopLimit(vrrp.RequiredTTL)),
			wrap("IPV6_UNICAST_HOPS", p.SetHopLimit(vrrp.RequiredTTL)),
			wrap("IPV6_TCLASS", p.SetTrafficClass(tosCS6)),
			wrap("IPV6_RECVPKTINFO/HOPLIMIT", p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true)),
		)
		if err == nil && join {
			err = wrap("join ff02::12", p.JoinGroup(ifi, &net.IPAddr{IP: vrrp.GroupIPv6.AsSlice()}))
		}
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("vrrp socket on %s (IPv6): %w", ifname, err)
		}
	default:
		return nil, fmt.Errorf("vrrp socket: address family %d is not 4 or 6", family)
	}
	c.joined = join
	return c, nil
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Interface returns the interface the socket is bound to.
func (c *Conn) Interface() *net.Interface { return c.ifi }

// Packet is one received packet.
type Packet struct {
	Msg []byte      // the VRRP message, a sub-slice of the caller's buffer
	Rx  vrrp.RxInfo // source, destination, TTL / hop limit
	// At is when the kernel received the packet, on Go's monotonic clock
	// (from SO_TIMESTAMPNS); the read time if the kernel gave none.
	At time.Time
}

// Read reads one packet into buf. It allocates nothing. A packet whose IPv4
// total length disagrees with what arrived is returned with a
// vrrp.ReasonLength error.
func (c *Conn) Read(buf []byte) (Packet, error) {
	var n, oobn int
	var from unix.Sockaddr
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		n, oobn, _, from, rerr = unix.Recvmsg(int(fd), buf, c.oob, 0)
		return rerr != unix.EAGAIN && rerr != unix.EWOULDBLOCK
	})
	now := time.Now()
	if err == nil {
		err = rerr
	}
	if err != nil {
		return Packet{}, fmt.Errorf("reading from the VRRP socket on %s: %w", c.ifi.Name, err)
	}
	p := Packet{At: now}
	var kernelNs int64
	var dst6 netip.Addr
	hop := -1
	for cm := c.oob[:oobn]; len(cm) >= unix.CmsgSpace(0); {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&cm[0]))
		hlen := int(h.Len)
		if hlen < unix.CmsgLen(0) || hlen > len(cm) {
			break
		}
		data := cm[unix.CmsgLen(0):hlen]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= 16:
			sec := int64(binary.NativeEndian.Uint64(data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(data[8:16]))
			kernelNs = sec*1e9 + nsec
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= 20:
			dst6 = netip.AddrFrom16([16]byte(data[0:16]))
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_HOPLIMIT && len(data) >= 4:
			hop = int(int32(binary.NativeEndian.Uint32(data[0:4])))
		}
		sp := unix.CmsgSpace(hlen - unix.CmsgLen(0))
		if sp > len(cm) {
			break
		}
		cm = cm[sp:]
	}
	if kernelNs != 0 {
		// The timestamp is CLOCK_REALTIME; carry its age over to the
		// monotonic reading. A wall-clock step makes the age nonsense, so
		// only plausible ages are used.
		if age := now.Sub(time.Unix(0, kernelNs)); age >= 0 && age < time.Second {
			p.At = now.Add(-age)
		}
	}
	if c.family == 4 {
		// Raw IPv4 sockets deliver the IP header.
		if n < ipv4.HeaderLen || buf[0]>>4 != 4 {
			return p, &vrrp.RxError{Reason: vrrp.ReasonLength, Detail: fmt.Sprintf("%d bytes is not an IPv4 packet", n)}
		}
		hl := int(buf[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(buf[2:4]))
		p.Rx.Src = netip.AddrFrom4([4]byte(buf[12:16]))
		p.Rx.Dst = netip.AddrFrom4([4]byte(buf[16:20]))
		p.Rx.TTL = int(buf[8])
		if hl < ipv4.HeaderLen || hl > n || total != n {
			return p, &vrrp.RxError{Reason: vrrp.ReasonLength,
				Detail: fmt.Sprintf("IPv4 header length %d, total length %d, received %d", hl, total, n)}
		}
		p.Msg = buf[hl:n]
		return p, nil
	}
	if sa, ok := from.(*unix.SockaddrInet6); ok {
		p.Rx.Src = netip.AddrFrom16(sa.Addr)
	}
	p.Rx.Dst, p.Rx.TTL = dst6, hop
	p.Msg = buf[:n]
	return p, nil
}

// Write sends one VRRP message from src to dst (the group or a unicast
// peer) with TTL/Hop Limit 255 (RFC 5798 §5.1.1.3 / §5.1.2.3).
func (c *Conn) Write(msg []byte, src, dst netip.Addr) error {
	if c.v4 != nil {
		h := &ipv4.Header{
			Version:  ipv4.Version,
			Len:      ipv4.HeaderLen,
			TOS:      tosCS6,
			TotalLen: ipv4.HeaderLen + len(msg),
			TTL:      vrrp.RequiredTTL,
			Protocol: vrrp.IPProtocol,
			Src:      src.AsSlice(),
			Dst:      dst.AsSlice(),
		}
		if err := c.v4.WriteTo(h, msg, nil); err != nil {
			return fmt.Errorf("send advert %s → %s on %s: %w", src, dst, c.ifi.Name, err)
		}
		return nil
	}
	cm := &ipv6.ControlMessage{Src: src.AsSlice(), IfIndex: c.ifi.Index, HopLimit: vrrp.RequiredTTL}
	to := &net.IPAddr{IP: dst.AsSlice()}
	if dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() {
		to.Zone = c.ifi.Name
	}
	if _, err := c.v6.WriteTo(msg, cm, to); err != nil {
		return fmt.Errorf("send advert %s → %s on %s: %w", src, dst, c.ifi.Name, err)
	}
	return nil
}

// Close closes the socket; a blocked Read returns an error.
func (c *Conn) Close() error {
	if c.v4 != nil {
		return c.v4.Close()
	}
	return c.v6.Close()
}
