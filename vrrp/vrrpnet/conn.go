// Package vrrpnet carries VRRP adverts on raw IP protocol 112 sockets: one
// socket per (interface, address family), bound to the interface, joined to
// the VRRP group on that interface only, sending with TTL/Hop Limit 255 and
// multicast loopback off, and reporting for each received packet the source,
// destination and TTL the pure receive checks need.
package vrrpnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

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
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c := &Conn{ifi: ifi, family: family}
	switch family {
	case 4:
		pc, err := lc.ListenPacket(context.Background(), "ip4:112", "0.0.0.0")
		if err != nil {
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
			wrap("IP_PKTINFO", rc.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)),
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

// Read reads one packet into buf and returns the VRRP message (a sub-slice of
// buf) and what the receive checks need from the IP layer. A packet whose
// IPv4 total length disagrees with what arrived is returned with a
// vrrp.ReasonLength error.
func (c *Conn) Read(buf []byte) ([]byte, vrrp.RxInfo, error) {
	var rx vrrp.RxInfo
	if c.v4 != nil {
		h, p, cm, err := c.v4.ReadFrom(buf)
		if err != nil {
			return nil, rx, err
		}
		rx.Src, _ = netip.AddrFromSlice(h.Src.To4())
		rx.Dst, _ = netip.AddrFromSlice(h.Dst.To4())
		rx.TTL = h.TTL
		if cm != nil && cm.IfIndex != 0 && cm.IfIndex != c.ifi.Index {
			return nil, rx, fmt.Errorf("packet from interface index %d on a socket bound to %s", cm.IfIndex, c.ifi.Name)
		}
		if h.TotalLen != h.Len+len(p) {
			return nil, rx, &vrrp.RxError{Reason: vrrp.ReasonLength,
				Detail: fmt.Sprintf("IPv4 total length %d, received %d", h.TotalLen, h.Len+len(p))}
		}
		return p, rx, nil
	}
	n, cm, src, err := c.v6.ReadFrom(buf)
	if err != nil {
		return nil, rx, err
	}
	if ia, ok := src.(*net.IPAddr); ok {
		rx.Src, _ = netip.AddrFromSlice(ia.IP)
	}
	if cm != nil {
		rx.Dst, _ = netip.AddrFromSlice(cm.Dst)
		rx.TTL = cm.HopLimit
	}
	return buf[:n], rx, nil
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
