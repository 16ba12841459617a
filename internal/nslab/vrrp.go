package nslab

import (
	"encoding/binary"
	"net"
	"net/netip"
	"time"
)

// ProtoVRRP is VRRP's IP protocol number.
const ProtoVRRP = 112

// VRRPFrame is a VRRP packet found in a captured frame, with the few fields tests check decoded;
// Payload holds the whole VRRP message for a real decoder.
type VRRPFrame struct {
	Time     time.Time
	SrcMAC   net.HardwareAddr
	DstMAC   net.HardwareAddr
	Src, Dst netip.Addr
	TTL      int // IPv4 TTL or IPv6 hop limit
	Version  int // 2 or 3
	Type     int // 1 = advertisement
	VRID     int
	Priority int
	// CountAddrs is the message's address count field.
	CountAddrs int
	// Interval is the advertisement interval: whole seconds in v2, centiseconds in v3.
	Interval time.Duration
	// Payload is the VRRP message: the IP payload without Ethernet padding.
	Payload []byte
}

// EtherTypes the decoder follows.
const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100 // 802.1Q tag
	etherTypeQinQ = 0x88a8 // 802.1ad service tag
)

// VRRPFrames returns the VRRP packets (IPv4 or IPv6, protocol 112, behind any number of 802.1Q or
// 802.1ad VLAN tags) among frames, in order. Frames that are not VRRP, are IPv4 fragments, carry
// IPv6 extension headers, or are too short to hold a VRRP header are skipped. A packet cut short
// by the capture's snapshot length keeps the bytes that were captured.
func VRRPFrames(frames []Frame) []VRRPFrame {
	var out []VRRPFrame
	for _, f := range frames {
		if v, ok := decodeVRRP(f); ok {
			out = append(out, v)
		}
	}
	return out
}

// decodeVRRP decodes an Ethernet frame carrying a VRRP packet.
func decodeVRRP(f Frame) (VRRPFrame, bool) {
	d := f.Data
	if len(d) < 14 {
		return VRRPFrame{}, false
	}
	v := VRRPFrame{Time: f.Time}
	dst, src := d[0:6], d[6:12]
	etherType := binary.BigEndian.Uint16(d[12:14])
	d = d[14:]
	for etherType == etherTypeVLAN || etherType == etherTypeQinQ {
		if len(d) < 4 {
			return VRRPFrame{}, false
		}
		etherType = binary.BigEndian.Uint16(d[2:4])
		d = d[4:]
	}
	var payload []byte
	switch etherType {
	case etherTypeIPv4:
		if len(d) < 20 || d[0]>>4 != 4 || d[9] != ProtoVRRP {
			return VRRPFrame{}, false
		}
		hlen, total := int(d[0]&0x0f)*4, int(binary.BigEndian.Uint16(d[2:4]))
		if hlen < 20 || total < hlen || hlen > len(d) {
			return VRRPFrame{}, false
		}
		// More-fragments flag or a fragment offset: a piece of a packet.
		if binary.BigEndian.Uint16(d[6:8])&0x3fff != 0 {
			return VRRPFrame{}, false
		}
		v.Src = netip.AddrFrom4([4]byte(d[12:16]))
		v.Dst = netip.AddrFrom4([4]byte(d[16:20]))
		v.TTL = int(d[8])
		payload = d[hlen:min(total, len(d))] // without the options, or Ethernet's padding
	case etherTypeIPv6:
		// VRRP must follow the fixed header directly: VRRP speakers send no extension headers, so
		// a frame with one (hop-by-hop, fragment, ...) is not decoded.
		if len(d) < 40 || d[0]>>4 != 6 || d[6] != ProtoVRRP {
			return VRRPFrame{}, false
		}
		plen := int(binary.BigEndian.Uint16(d[4:6]))
		v.Src = netip.AddrFrom16([16]byte(d[8:24])).Unmap()
		v.Dst = netip.AddrFrom16([16]byte(d[24:40])).Unmap()
		v.TTL = int(d[7])
		payload = d[40:min(40+plen, len(d))]
	default:
		return VRRPFrame{}, false
	}
	if len(payload) < 8 {
		return VRRPFrame{}, false
	}
	v.DstMAC = append(net.HardwareAddr(nil), dst...)
	v.SrcMAC = append(net.HardwareAddr(nil), src...)
	v.setPayload(payload)
	return v, true
}

// setPayload stores the VRRP message (at least 8 bytes) and decodes its
// header fields.
func (v *VRRPFrame) setPayload(payload []byte) {
	v.Payload = append([]byte(nil), payload...)
	v.Version = int(payload[0] >> 4)
	v.Type = int(payload[0] & 0x0f)
	v.VRID = int(payload[1])
	v.Priority = int(payload[2])
	v.CountAddrs = int(payload[3])
	if v.Version == 2 {
		v.Interval = time.Duration(payload[5]) * time.Second
	} else {
		v.Interval = time.Duration(binary.BigEndian.Uint16(payload[4:6])&0x0fff) * 10 * time.Millisecond
	}
}
