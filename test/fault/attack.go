package fault

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"vigil/test/netlab"
	"vigil/vrrp"
)

// Target describes the pair an attacker floods: a master and a backup sharing three virtual
// routers, so that every class of invalid advert has an instance it is invalid for.
type Target struct {
	Attacker net.HardwareAddr // the attacker's MAC (the Ethernet source of every frame)
	// Nodes are the pair's addresses and MACs.
	Nodes []TargetNode
	// V3 is a VRRPv3 multicast instance.
	V3 TargetInstance
	// V2 is a VRRPv2 multicast instance with PASS authentication (V2Pass) and a whole-second
	// interval.
	V2     TargetInstance
	V2Pass string
	// Unicast is a VRRPv3 instance whose adverts go between the nodes' addresses.
	Unicast TargetInstance
}

// TargetNode is one node of the attacked pair.
type TargetNode struct {
	Addr netip.Addr
	MAC  net.HardwareAddr
}

// TargetInstance is one virtual router of the attacked pair.
type TargetInstance struct {
	VRID     int
	Interval time.Duration
	VIP      netip.Addr
}

// Class is one kind of advert an attacker floods.
type Class struct {
	Name string // short name, vigil's discard reason where one fits
	What string // what is wrong with the advert
	// Valid marks the class of well-formed adverts (the lower-priority flood): they pass every
	// receive check and test what a master does with them.
	Valid bool
	// Frame returns the i-th Ethernet frame of the flood.
	Frame func(t *Target, i int, rng *rand.Rand) []byte
}

// Invalid adverts alternate between priority 254, which would depose the master if it were
// accepted, and priority 0, which would make the backup take over after Skew_Time.
func attackPriority(i int) uint8 {
	if i%2 == 0 {
		return 254
	}
	return 0
}

// Classes lists the flood's classes: twelve kinds of invalid advert and the valid lower-priority
// advert.
func Classes() []Class {
	v3 := func(t *Target, i int, rng *rand.Rand, edit func(msg []byte) []byte, ttl uint8) []byte {
		src := randomSource(rng, t)
		msg := advert(3, t.V3.VRID, attackPriority(i), t.V3.Interval, t.V3.VIP, "")
		msg = edit(msg)
		setChecksum(msg, 3, src, vrrp.GroupIPv4)
		return ipv4Frame(t.Attacker, multicastMAC, src, vrrp.GroupIPv4, ttl, rng, msg)
	}
	keep := func(msg []byte) []byte { return msg }
	return []Class{
		{Name: "checksum", What: "VRRPv3 checksum corrupted", Frame: func(t *Target, i int, rng *rand.Rand) []byte {
			f := v3(t, i, rng, keep, 255)
			f[14+20+7] ^= 0xff // the checksum's low byte (Ethernet, IPv4, then VRRP bytes 6-7)
			return f
		}},
		{Name: "ttl", What: "TTL 254 on a multicast advert", Frame: func(t *Target, i int, rng *rand.Rand) []byte {
			return v3(t, i, rng, keep, 254)
		}},
		{Name: "version", What: "version 1", Frame: func(t *Target, i int, rng *rand.Rand) []byte {
			return v3(t, i, rng, func(m []byte) []byte { m[0] = 1<<4 | vrrp.TypeAdvert; return m }, 255)
		}},
		{Name: "length", What: "truncated: 10 of the 12 bytes", Frame: func(t *Target, i int, rng *rand.Rand) []byte {
			return v3(t, i, rng, func(m []byte) []byte { return m[:len(m)-2] }, 255)
		}},
		{Name: "invalid_type", What: "type 2", Frame: func(t *Target, i int, rng *rand.Rand) []byte {
			return v3(t, i, rng, func(m []byte) []byte { m[0] = 3<<4 | 2; return m }, 255)
		}},
		{Name: "address_count", What: "address count 2, one address carried", Frame: func(t *Target, i int, rng *rand.Rand) []byte {
			return v3(t, i, rng, func(m []byte) []byte { m[3] = 2; return m }, 255)
		}},
		{Name: "vrid", What: "VRID 99, configured on no node", Frame: func(t *Target, i int, rng *rand.Rand) []byte {
			return v3(t, i, rng, func(m []byte) []byte { m[1] = 99; return m }, 255)
		}},
		{Name: "interval_zero", What: "VRRPv3 advert interval 0", Frame: func(t *Target, i int, rng *rand.Rand) []byte {
			return v3(t, i, rng, func(m []byte) []byte { m[4], m[5] = 0, 0; return m }, 255)
		}},
		{Name: "auth_failure", What: "VRRPv2 PASS with the wrong password", Frame: func(t *Target, i int, rng *rand.Rand) []byte {
			src := randomSource(rng, t)
			msg := advert(2, t.V2.VRID, attackPriority(i), t.V2.Interval, t.V2.VIP, "wr0ng")
			setChecksum(msg, 2, src, vrrp.GroupIPv4)
			return ipv4Frame(t.Attacker, multicastMAC, src, vrrp.GroupIPv4, 255, rng, msg)
		}},
		{Name: "advert_interval", What: "VRRPv2 interval 2 s where 1 s is configured", Frame: func(t *Target, i int, rng *rand.Rand) []byte {
			src := randomSource(rng, t)
			msg := advert(2, t.V2.VRID, attackPriority(i), 2*t.V2.Interval, t.V2.VIP, t.V2Pass)
			setChecksum(msg, 2, src, vrrp.GroupIPv4)
			return ipv4Frame(t.Attacker, multicastMAC, src, vrrp.GroupIPv4, 255, rng, msg)
		}},
		{Name: "unknown_peer", What: "unicast advert from an address that is not a peer", Frame: func(t *Target, i int, rng *rand.Rand) []byte {
			src := randomSource(rng, t)
			dst := t.Nodes[(i/2)%len(t.Nodes)] // both priorities reach both nodes
			msg := advert(3, t.Unicast.VRID, attackPriority(i), t.Unicast.Interval, t.Unicast.VIP, "")
			setChecksum(msg, 3, src, dst.Addr)
			return ipv4Frame(t.Attacker, dst.MAC, src, dst.Addr, 255, rng, msg)
		}},
		{Name: "own_address", What: "from the receiver's own address (sent to its MAC only)", Frame: func(t *Target, i int, rng *rand.Rand) []byte {
			// Sent to the multicast group but to one node's MAC, so that no other node sees an
			// advert from a valid peer.
			dst := t.Nodes[(i/2)%len(t.Nodes)]
			msg := advert(3, t.V3.VRID, attackPriority(i), t.V3.Interval, t.V3.VIP, "")
			setChecksum(msg, 3, dst.Addr, vrrp.GroupIPv4)
			return ipv4Frame(t.Attacker, dst.MAC, dst.Addr, vrrp.GroupIPv4, 255, rng, msg)
		}},
		{Name: "lower_priority", What: "valid VRRPv3 adverts at priority 1", Valid: true, Frame: func(t *Target, i int, rng *rand.Rand) []byte {
			src := randomSource(rng, t)
			msg := advert(3, t.V3.VRID, 1, t.V3.Interval, t.V3.VIP, "")
			setChecksum(msg, 3, src, vrrp.GroupIPv4)
			return ipv4Frame(t.Attacker, multicastMAC, src, vrrp.GroupIPv4, 255, rng, msg)
		}},
	}
}

// multicastMAC is 224.0.0.18's Ethernet group address.
var multicastMAC = net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0x12}

// advert encodes a VRRP advert with one address (checksum left zero); a non-empty pass makes a v2
// PASS advert.
func advert(version int, vrid int, prio uint8, interval time.Duration, vip netip.Addr, pass string) []byte {
	msg := make([]byte, 8, 8+16+8)
	msg[0] = uint8(version)<<4 | vrrp.TypeAdvert
	msg[1] = uint8(vrid)
	msg[2] = prio
	msg[3] = 1
	if version == 2 {
		msg[5] = uint8(interval / time.Second)
		if pass != "" {
			msg[4] = vrrp.AuthPass
		}
	} else {
		binary.BigEndian.PutUint16(msg[4:6], uint16(interval/(10*time.Millisecond)))
	}
	msg = append(msg, vip.AsSlice()...)
	if version == 2 {
		var auth [8]byte
		copy(auth[:], pass)
		msg = append(msg, auth[:]...)
	}
	return msg
}

// setChecksum writes msg's checksum: over the message alone for v2, with the IPv4 pseudo-header
// for v3 (RFC 5798 §5.2.8 as keepalived reads it; vigil accepts both readings).
func setChecksum(msg []byte, version int, src, dst netip.Addr) {
	msg[6], msg[7] = 0, 0
	var sum uint32
	if version == 3 {
		sum = sum16(src.AsSlice()) + sum16(dst.AsSlice()) + uint32(len(msg)) + vrrp.IPProtocol
	}
	binary.BigEndian.PutUint16(msg[6:8], ^fold16(sum+sum16(msg)))
}

func sum16(b []byte) uint32 {
	var s uint32
	for ; len(b) >= 2; b = b[2:] {
		s += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func fold16(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// ipv4Frame wraps a VRRP message in IPv4 (protocol 112, DSCP CS6 as VRRP speakers send) and
// Ethernet.
func ipv4Frame(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, ttl uint8, rng *rand.Rand, msg []byte) []byte {
	f := make([]byte, 14+20+len(msg))
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	h := f[14:34]
	h[0] = 0x45
	h[1] = 0xc0
	binary.BigEndian.PutUint16(h[2:4], uint16(20+len(msg)))
	binary.BigEndian.PutUint16(h[4:6], uint16(rng.Uint32()))
	h[8] = ttl
	h[9] = vrrp.IPProtocol
	copy(h[12:16], src.AsSlice())
	copy(h[16:20], dst.AsSlice())
	binary.BigEndian.PutUint16(h[10:12], ^fold16(sum16(h)))
	copy(f[34:], msg)
	return f
}

// spoofNets are where spoofed sources come from: the IPv4 documentation ranges.
var spoofNets = [][3]byte{{192, 0, 2}, {198, 51, 100}, {203, 0, 113}}

// randomSource returns a random documentation address that is none of the pair's.
func randomSource(rng *rand.Rand, t *Target) netip.Addr {
	for {
		n := spoofNets[rng.IntN(len(spoofNets))]
		a := netip.AddrFrom4([4]byte{n[0], n[1], n[2], byte(1 + rng.IntN(254))})
		taken := false
		for _, tn := range t.Nodes {
			taken = taken || tn.Addr == a
		}
		if !taken {
			return a
		}
	}
}

// Injector sends raw Ethernet frames from a node's interface (an AF_PACKET socket opened in the
// node's namespace): sources, TTLs and lengths are whatever the frame says.
type Injector struct {
	fd      int
	ifindex int
}

// NewInjector opens the socket on dev in n's namespace.
func NewInjector(n *netlab.Node, dev string) (*Injector, error) {
	j := &Injector{fd: -1}
	err := n.Do(func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		j.ifindex = ifi.Index
		// Protocol 0: this socket only sends, so the kernel queues nothing to it.
		j.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fault: packet socket on %s in %s: %w", dev, n.NS, err)
	}
	return j, nil
}

// Send sends one frame.
func (j *Injector) Send(frame []byte) error {
	if len(frame) < 14 {
		return errors.New("fault: frame shorter than an Ethernet header")
	}
	sa := &unix.SockaddrLinklayer{Ifindex: j.ifindex, Halen: 6}
	copy(sa.Addr[:], frame[0:6])
	return unix.Sendto(j.fd, frame, 0, sa)
}

// Flood sends count frames at rate per second (paced from the start, so a late loop catches up),
// and returns how many were sent and how long it took.
func (j *Injector) Flood(count, rate int, frame func(i int) []byte) (int, time.Duration, error) {
	start := time.Now()
	step := time.Second / time.Duration(rate)
	sent := 0
	var errs []error
	for i := 0; i < count; i++ {
		if d := time.Until(start.Add(time.Duration(i) * step)); d > 0 {
			time.Sleep(d)
		}
		if err := j.Send(frame(i)); err != nil {
			if len(errs) < 3 {
				errs = append(errs, err)
			}
			continue
		}
		sent++
	}
	var err error
	if len(errs) > 0 {
		err = fmt.Errorf("fault: %d of %d frames not sent: %w", count-sent, count, errors.Join(errs...))
	}
	return sent, time.Since(start), err
}

// Close closes the socket.
func (j *Injector) Close() error {
	if j.fd < 0 {
		return nil
	}
	err := unix.Close(j.fd)
	j.fd = -1
	return err
}
