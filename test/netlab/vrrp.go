package netlab

import (
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
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

// VRRPFrames returns the VRRP packets (IPv4 or IPv6, protocol 112, optionally VLAN-tagged) among
// frames, in order. Frames that are not VRRP, are fragments, or are too short to hold a VRRP
// header are skipped.
func VRRPFrames(frames []Frame) []VRRPFrame {
	var (
		eth     layers.Ethernet
		dot1q   layers.Dot1Q
		ip4     layers.IPv4
		ip6     layers.IPv6
		decoded []gopacket.LayerType
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &dot1q, &ip4, &ip6)
	parser.IgnoreUnsupported = true
	var out []VRRPFrame
	for _, f := range frames {
		decoded = decoded[:0]
		if err := parser.DecodeLayers(f.Data, &decoded); err != nil {
			continue // truncated or malformed
		}
		v := VRRPFrame{Time: f.Time}
		var payload []byte
		for _, lt := range decoded {
			switch lt {
			case layers.LayerTypeEthernet:
				v.SrcMAC = append(net.HardwareAddr(nil), eth.SrcMAC...)
				v.DstMAC = append(net.HardwareAddr(nil), eth.DstMAC...)
			case layers.LayerTypeIPv4:
				if ip4.Protocol != ProtoVRRP || ip4.FragOffset != 0 || ip4.Flags&layers.IPv4MoreFragments != 0 {
					continue
				}
				v.Src, _ = netip.AddrFromSlice(ip4.SrcIP)
				v.Dst, _ = netip.AddrFromSlice(ip4.DstIP)
				v.TTL = int(ip4.TTL)
				payload = ip4.Payload
			case layers.LayerTypeIPv6:
				if ip6.NextHeader != ProtoVRRP {
					continue
				}
				v.Src, _ = netip.AddrFromSlice(ip6.SrcIP)
				v.Dst, _ = netip.AddrFromSlice(ip6.DstIP)
				v.TTL = int(ip6.HopLimit)
				payload = ip6.Payload
			}
		}
		if len(payload) < 8 || !v.Src.IsValid() || !v.Dst.IsValid() {
			continue
		}
		v.Src, v.Dst = v.Src.Unmap(), v.Dst.Unmap()
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
		out = append(out, v)
	}
	return out
}
