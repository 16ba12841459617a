package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
)

// transport is memberlist's transport on a real network: UDP packets and
// TCP streams on one address and port, as memberlist's NetTransport does
// them, but for one thing. NetTransport reads every packet into a new
// 64 kB buffer (allocated and zeroed, then kept alive by the packet until
// memberlist has handled it); this one reads into one buffer it reuses
// and hands memberlist a copy of the packet's own size. In a 50-member
// rollout on two cores (BenchmarkRollout, three members profiled for 20 s
// each during the pushes) NetTransport's allocation was 10.4 % of the
// members' CPU and drove most of the collector's work (30 %), idle fleets
// included. It also sends to an address without resolving it anew for
// every packet. memberlist has no option for either, so vigil carries
// this much of a transport; the protocol on the wire is memberlist's.
type transport struct {
	log     *slog.Logger
	tcp     *net.TCPListener
	udp     *net.UDPConn
	bind    netip.Addr
	port    int
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{} // closed by Shutdown
	stop    sync.Once
	wg      sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

// maxPacket is the largest UDP payload a packet can carry (what
// NetTransport reads too).
const maxPacket = 65536

// udpReceiveBuffer is the socket receive buffer asked for, halved until
// the kernel takes it: bursts of a push's reports reach a member at once.
const udpReceiveBuffer = 2 << 20

// newTransport listens on bind (an IP address; "" is 0.0.0.0) and port,
// TCP and UDP; port 0 takes the TCP listener's port for both.
func newTransport(bind string, port int, log *slog.Logger) (*transport, error) {
	if log == nil {
		log = slog.Default()
	}
	addr := netip.IPv4Unspecified()
	if bind != "" {
		a, err := netip.ParseAddr(bind)
		if err != nil {
			return nil, fmt.Errorf("gossip: bind address %q: %w", bind, err)
		}
		addr = a.Unmap()
	}
	t := &transport{log: log, bind: addr, packets: make(chan *memberlist.Packet), streams: make(chan net.Conn), done: make(chan struct{})}
	tcp, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(addr, uint16(port))))
	if err != nil {
		return nil, fmt.Errorf("gossip: TCP listener on %s: %w", netip.AddrPortFrom(addr, uint16(port)), err)
	}
	t.tcp = tcp
	t.port = tcp.Addr().(*net.TCPAddr).Port
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, uint16(t.port))))
	if err != nil {
		tcp.Close()
		return nil, fmt.Errorf("gossip: UDP listener on %s: %w", netip.AddrPortFrom(addr, uint16(t.port)), err)
	}
	t.udp = udp
	for size := udpReceiveBuffer; size > 0; size /= 2 {
		if udp.SetReadBuffer(size) == nil {
			break
		}
	}
	t.wg.Add(2)
	go t.acceptStreams()
	go t.readPackets()
	return t, nil
}

// Port is the port the transport listens on (the kernel's choice for 0).
func (t *transport) Port() int { return t.port }

// FinalAdvertiseAddr is the address and port other members reach this one
// at: the configured ones, else the bound address (a private address of
// this host's when bound to all) and port.
func (t *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, 0, fmt.Errorf("gossip: advertise address %q: %w", ip, err)
		}
		return net.IP(a.Unmap().AsSlice()), port, nil
	}
	if !t.bind.IsUnspecified() {
		return net.IP(t.bind.AsSlice()), t.port, nil
	}
	private, err := sockaddr.GetPrivateIP()
	if err != nil {
		return nil, 0, fmt.Errorf("gossip: finding an address to advertise: %w", err)
	}
	a, err := netip.ParseAddr(private)
	if err != nil {
		return nil, 0, errors.New("gossip: no private IP address to advertise; set gossip.advertise")
	}
	return net.IP(a.AsSlice()), t.port, nil
}

// WriteTo sends a packet to addr ("ip:port").
func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends a packet to a member.
func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	ap, err := netip.ParseAddrPort(a.Addr)
	if err != nil {
		// Not a literal address (a join by host name): resolved.
		ua, rerr := net.ResolveUDPAddr("udp", a.Addr)
		if rerr != nil {
			return time.Time{}, rerr
		}
		ap = ua.AddrPort()
	}
	_, err = t.udp.WriteToUDPAddrPort(b, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	return time.Now(), err
}

// PacketCh delivers the packets received.
func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// DialTimeout opens a stream to addr.
func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream to a member.
func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", a.Addr)
}

// StreamCh delivers the streams accepted.
func (t *transport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown closes the listeners and waits for their goroutines; a second
// call does nothing.
func (t *transport) Shutdown() error {
	t.stop.Do(func() {
		close(t.done)
		t.tcp.Close()
		t.udp.Close()
		t.wg.Wait()
	})
	return nil
}

// closed reports whether Shutdown began (errors then mean closed sockets).
func (t *transport) closed() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// readPackets reads packets into one buffer and hands memberlist copies.
func (t *transport) readPackets() {
	defer t.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, from, err := t.udp.ReadFromUDP(buf)
		at := time.Now()
		if err != nil {
			if t.closed() {
				return
			}
			t.log.Error("gossip: reading a UDP packet", "err", err)
			continue
		}
		if n < 1 {
			t.log.Debug("gossip: empty UDP packet ignored", "from", from.String())
			continue
		}
		select {
		case t.packets <- &memberlist.Packet{Buf: slices.Clone(buf[:n]), From: from, Timestamp: at}:
		case <-t.done:
			return
		}
	}
}

// acceptStreams accepts TCP streams; accept errors back off up to 1 s.
func (t *transport) acceptStreams() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		conn, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.closed() {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Error("gossip: accepting a TCP stream", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-t.done:
				return
			}
			continue
		}
		delay = 0
		select {
		case t.streams <- conn:
		case <-t.done:
			conn.Close()
			return
		}
	}
}
