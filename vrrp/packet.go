package vrrp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// Protocol constants (RFC 3768 §5.2, RFC 5798 §5.1/§5.2).
const (
	IPProtocol      = 112 // IANA protocol number for VRRP
	TypeAdvert      = 1   // the only defined message type
	AuthNone        = 0   // RFC 3768 auth type 0
	AuthPass        = 1   // RFC 2338 simple text password; keepalived's "PASS"
	OwnerPriority   = 255 // address owner
	ResignPriority  = 0   // master stepping down
	DefaultPriority = 100
	RequiredTTL     = 255 // TTL / Hop Limit for multicast adverts (§5.1.1.3, §7.1)
	headerLen       = 8
	v2AuthLen       = 8
	// MaxV3Interval is the largest v3 Max Adver Int, in centiseconds (12 bits).
	MaxV3Interval = 0x0FFF
)

// Multicast groups (RFC 5798 §5.1.1.2 / §5.1.2.2).
var (
	GroupIPv4 = netip.MustParseAddr("224.0.0.18")
	GroupIPv6 = netip.MustParseAddr("ff02::12")
)

// ChecksumForm says how a VRRPv3-over-IPv4 checksum is computed. RFC 5798 §5.2.8
// was read two ways: keepalived, FRR, Wireshark and scapy include an IPv4
// pseudo-header; RFC 9568 and vendor routers sum the message only. IPv6 always
// uses the pseudo-header and v2 always sums the message only.
type ChecksumForm uint8

const (
	// ChecksumPseudoHeader is the RFC 5798 reading used by keepalived and FRR.
	ChecksumPseudoHeader ChecksumForm = iota
	// ChecksumMessageOnly is the RFC 9568 reading (keepalived's v3_checksum_as_v2).
	ChecksumMessageOnly
)

func (f ChecksumForm) String() string {
	switch f {
	case ChecksumPseudoHeader:
		return "pseudo_header"
	case ChecksumMessageOnly:
		return "message_only"
	}
	return fmt.Sprintf("checksum_form(%d)", uint8(f))
}

// Advert is one decoded VRRP advertisement.
type Advert struct {
	Version  uint8 // 2 or 3
	VRID     uint8
	Priority uint8
	// Interval is the advertisement interval carried in the packet. v2 carries
	// whole seconds, v3 centiseconds; both are converted to a Duration here.
	Interval time.Duration
	AuthType uint8   // v2 only
	AuthData [8]byte // v2 only; keepalived PASS puts the password here
	Addrs    []netip.Addr
	// Checksum is the value carried in the packet (set by Decode and Marshal).
	Checksum uint16
}

// Family returns 4 or 6, from the advertised addresses (0 if none).
func (a *Advert) Family() int {
	if len(a.Addrs) == 0 {
		return 0
	}
	if a.Addrs[0].Is4() {
		return 4
	}
	return 6
}

// Len returns the encoded length of a in bytes: 8 + n·addrlen, plus 8 bytes of
// authentication data for v2 (RFC 3768 §5.1, RFC 5798 §5.1).
func (a *Advert) Len() int {
	alen := 4
	if a.Family() == 6 {
		alen = 16
	}
	n := headerLen + alen*len(a.Addrs)
	if a.Version == 2 {
		n += v2AuthLen
	}
	return n
}

// IntervalField returns the wire value of the interval for a's version.
func (a *Advert) IntervalField() (uint16, error) {
	return IntervalField(a.Version, a.Interval)
}

// IntervalField converts d to the on-wire Adver Int for version v: whole
// seconds 1..255 for v2 (RFC 3768 §5.3.7), centiseconds 1..4095 for v3
// (RFC 5798 §5.2.7).
func IntervalField(v uint8, d time.Duration) (uint16, error) {
	switch v {
	case 2:
		if d%time.Second != 0 || d < time.Second || d > 255*time.Second {
			return 0, fmt.Errorf("v2 advert interval %s is not a whole number of seconds in 1s..255s", d)
		}
		return uint16(d / time.Second), nil
	case 3:
		cs := 10 * time.Millisecond
		if d%cs != 0 || d < cs || d > MaxV3Interval*cs {
			return 0, fmt.Errorf("v3 advert interval %s is not a multiple of 10ms in 10ms..40.95s", d)
		}
		return uint16(d / cs), nil
	}
	return 0, fmt.Errorf("VRRP version %d is not 2 or 3", v)
}

// Marshal encodes a for transmission from src to dst, computing the checksum in
// the given form (the form only matters for v3 over IPv4). The addresses must
// all be of one family, which is also the family of src and dst.
func (a *Advert) Marshal(src, dst netip.Addr, form ChecksumForm) ([]byte, error) {
	b := make([]byte, a.Len())
	if err := a.encode(b); err != nil {
		return nil, err
	}
	if a.Version == 3 && (src.Is6() != (a.Family() == 6) || dst.Is6() != (a.Family() == 6)) {
		return nil, fmt.Errorf("source %s / destination %s are not of the advert's address family", src, dst)
	}
	cs := computeChecksum(b, a.Version, src, dst, form)
	binary.BigEndian.PutUint16(b[6:8], cs)
	a.Checksum = cs
	return b, nil
}

func (a *Advert) encode(b []byte) error {
	if a.Version != 2 && a.Version != 3 {
		return fmt.Errorf("VRRP version %d is not 2 or 3", a.Version)
	}
	if len(a.Addrs) == 0 || len(a.Addrs) > 255 {
		return fmt.Errorf("advert must carry 1..255 addresses, has %d", len(a.Addrs))
	}
	six := a.Addrs[0].Is6()
	if six && a.Version == 2 {
		return fmt.Errorf("VRRPv2 cannot carry IPv6 address %s", a.Addrs[0])
	}
	for _, ad := range a.Addrs {
		if !ad.IsValid() || ad.Is6() != six {
			return fmt.Errorf("advert address %s is not of the advert's family", ad)
		}
	}
	iv, err := a.IntervalField()
	if err != nil {
		return err
	}
	b[0] = a.Version<<4 | TypeAdvert
	b[1] = a.VRID
	b[2] = a.Priority
	b[3] = uint8(len(a.Addrs))
	if a.Version == 2 {
		b[4] = a.AuthType
		b[5] = uint8(iv)
	} else {
		// The 4 reserved bits are sent as zero (RFC 5798 §5.2.6).
		binary.BigEndian.PutUint16(b[4:6], iv&MaxV3Interval)
	}
	off := headerLen
	for _, ad := range a.Addrs {
		s := ad.AsSlice()
		off += copy(b[off:], s)
	}
	if a.Version == 2 {
		copy(b[off:], a.AuthData[:])
	}
	return nil
}

// computeChecksum returns the checksum for message b (whose checksum field is
// ignored) in the given form.
func computeChecksum(b []byte, version uint8, src, dst netip.Addr, form ChecksumForm) uint16 {
	var sum uint32
	if version == 3 && (src.Is6() || form == ChecksumPseudoHeader) {
		sum = pseudoHeaderSum(src, dst, len(b))
	}
	sum += sumBytes(b[:6])
	sum += sumBytes(b[8:])
	return ^fold(sum)
}

// pseudoHeaderSum sums the RFC 8200 §8.1 IPv6 pseudo-header or, for IPv4, the
// RFC 768-style one (src, dst, zero, protocol, length). One's-complement
// addition does not care where zero bytes sit inside words, so the 12-byte IPv4
// layout and Wireshark's IPv6-style layout give the same sum.
func pseudoHeaderSum(src, dst netip.Addr, length int) uint32 {
	s := src.AsSlice()
	d := dst.AsSlice()
	sum := sumBytes(s) + sumBytes(d)
	sum += uint32(length>>16) + uint32(length&0xffff)
	sum += IPProtocol
	return sum
}

func sumBytes(b []byte) uint32 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// checksumOK reports whether the checksum carried in b verifies in form.
func checksumOK(b []byte, version uint8, src, dst netip.Addr, form ChecksumForm) bool {
	return computeChecksum(b, version, src, dst, form) == binary.BigEndian.Uint16(b[6:8])
}
