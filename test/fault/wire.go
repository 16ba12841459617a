package fault

import (
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"vigil/test/netlab"
)

// Announcement is a frame that tells the segment which MAC address holds an IP address: an ARP
// packet (request or reply, gratuitous or not) whose sender IP is the address, or an ICMPv6
// neighbour advertisement whose target is the address.
type Announcement struct {
	Time   time.Time
	SrcMAC net.HardwareAddr // the Ethernet source: the node that sent it
	Addr   netip.Addr
	NA     bool // an IPv6 neighbour advertisement (else ARP)
}

const (
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
	protoICMPv6   = 58
	icmpv6NA      = 136
)

// Announcements returns the ARP packets and neighbour advertisements among frames, in order.
// Capture with FilterAll to have them.
func Announcements(frames []netlab.Frame) []Announcement {
	var out []Announcement
	for _, f := range frames {
		if a, ok := decodeAnnouncement(f); ok {
			out = append(out, a)
		}
	}
	return out
}

func decodeAnnouncement(f netlab.Frame) (Announcement, bool) {
	d := f.Data
	if len(d) < 14 {
		return Announcement{}, false
	}
	a := Announcement{Time: f.Time, SrcMAC: append(net.HardwareAddr(nil), d[6:12]...)}
	switch binary.BigEndian.Uint16(d[12:14]) {
	case etherTypeARP:
		p := d[14:]
		// Ethernet/IPv4 ARP only: hardware type 1, protocol 0x0800, lengths 6 and 4.
		if len(p) < 28 || binary.BigEndian.Uint16(p[0:2]) != 1 || binary.BigEndian.Uint16(p[2:4]) != 0x0800 ||
			p[4] != 6 || p[5] != 4 {
			return Announcement{}, false
		}
		a.Addr = netip.AddrFrom4([4]byte(p[14:18]))
		return a, true
	case etherTypeIPv6:
		p := d[14:]
		// Neighbour advertisements carry no extension headers (RFC 4861 §7.1.2 wants hop limit
		// 255, and nobody inserts one on a link).
		if len(p) < 40+24 || p[0]>>4 != 6 || p[6] != protoICMPv6 || p[40] != icmpv6NA {
			return Announcement{}, false
		}
		a.Addr = netip.AddrFrom16([16]byte(p[48:64]))
		a.NA = true
		return a, true
	}
	return Announcement{}, false
}
