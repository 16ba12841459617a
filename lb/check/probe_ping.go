package check

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

type pingProber struct {
	s   Spec
	seq uint16
}

func (p *pingProber) probe(ctx context.Context) outcome {
	addr := p.s.Target.Addr()
	v4 := addr.Is4()
	network, proto, req := "udp6", 58, icmp.Type(ipv6.ICMPTypeEchoRequest)
	rawNet, local := "ip6:ipv6-icmp", "::"
	if v4 {
		network, proto, req, rawNet, local = "udp4", 1, ipv4.ICMPTypeEcho, "ip4:icmp", "0.0.0.0"
	}
	if p.s.Source.IsValid() {
		local = p.s.Source.String()
	}
	// Unprivileged datagram ICMP when net.ipv4.ping_group_range allows it;
	// raw otherwise (vigil runs as root).
	raw := false
	c, err := icmp.ListenPacket(network, local)
	if err != nil {
		if c, err = icmp.ListenPacket(rawNet, local); err != nil {
			return fail(Error, "icmp socket: %v", err)
		}
		raw = true
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	p.seq++
	id := rand.IntN(0xffff) // the kernel replaces it on datagram sockets
	msg := icmp.Message{Type: req, Body: &icmp.Echo{ID: id, Seq: int(p.seq), Data: []byte("vigil-check")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return fail(Error, "icmp marshal: %v", err)
	}
	var dst net.Addr = &net.UDPAddr{IP: addr.AsSlice(), Zone: addr.Zone()}
	if raw {
		dst = &net.IPAddr{IP: addr.AsSlice(), Zone: addr.Zone()}
	}
	start := time.Now()
	if _, err := c.WriteTo(b, dst); err != nil {
		return classify(ctx, "icmp send", err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return classify(ctx, "icmp echo reply", err)
		}
		if fromAddr(from) != addr.WithZone("") {
			continue
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil {
			continue
		}
		echo, isEcho := m.Body.(*icmp.Echo)
		if !isEcho || (m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply) {
			continue
		}
		// A raw socket sees every echo reply on the host: match ours.
		if echo.Seq != int(p.seq) || raw && echo.ID != id || !bytes.Equal(echo.Data, []byte("vigil-check")) {
			continue
		}
		return ok("echo reply in %v", time.Since(start).Round(time.Microsecond))
	}
}

func fromAddr(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.IPAddr:
		ip = a.IP
	}
	ad, _ := netip.AddrFromSlice(ip)
	return ad.Unmap()
}
