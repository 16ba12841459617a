package vrrp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Reason names why a received packet was discarded, or what was odd about one
// that was accepted. The string forms are the `reason` label values of
// vigil_vrrp_packet_errors_total; they follow the RFC 6527 counter set where
// one exists.
type Reason uint8

const (
	ReasonNone Reason = iota
	// Discards (RFC 3768 §7.1, RFC 5798/9568 §7.1 and the checks every real
	// implementation adds).
	ReasonTTL            // multicast advert with TTL/Hop Limit ≠ 255 (§7.1 step 1)
	ReasonVersion        // version not 2/3, v2 over IPv6, or not the configured version (§7.1 step 2)
	ReasonLength         // shorter than a header, or not exactly 8+n·addrlen(+8) bytes (§7.1 step 3)
	ReasonType           // type ≠ 1 (§5.2.2)
	ReasonAddressCount   // count 0 (RFC 9568 erratum 8299; RFC 5798 §5.2.5 says minimum 1)
	ReasonChecksum       // checksum wrong in every accepted form (§7.1 step 4)
	ReasonVRID           // VRID not configured on the receiving interface (§7.1 step 5)
	ReasonOwner          // the local router is the address owner (§7.1 step 5)
	ReasonAuthType       // v2 auth type differs from the configured one (RFC 3768 §7.1 step 6)
	ReasonAuthFailure    // v2 PASS data differs from the configured password
	ReasonAdvertInterval // v2 Adver Int differs from the configured one (RFC 3768 §7.1 step 8)
	ReasonIntervalZero   // interval 0 (RFC 9568 erratum 8301)
	ReasonAddressList    // address list differs from the configured VIPs
	ReasonMode           // multicast advert to a unicast instance or the reverse (keepalived)
	ReasonUnknownPeer    // unicast advert from an address that is not a configured peer
	ReasonOwnAddress     // our own advert came back
	ReasonFamily         // address family of the packet differs from the instance's
	// Notices: the advert is processed, but the event is worth a counter.
	ReasonIntervalMismatch // v3 interval differs from ours (RFC 9568 §7.1: log, not drop)
	ReasonNotLinkLocal     // v3/IPv6 first address is not link-local (RFC 9568 erratum 8300: log)
	numReasons
)

var reasonNames = [...]string{
	ReasonNone:             "none",
	ReasonTTL:              "ttl",
	ReasonVersion:          "version",
	ReasonLength:           "length",
	ReasonType:             "invalid_type",
	ReasonAddressCount:     "address_count",
	ReasonChecksum:         "checksum",
	ReasonVRID:             "vrid",
	ReasonOwner:            "owner",
	ReasonAuthType:         "auth_type",
	ReasonAuthFailure:      "auth_failure",
	ReasonAdvertInterval:   "advert_interval",
	ReasonIntervalZero:     "interval_zero",
	ReasonAddressList:      "address_list",
	ReasonMode:             "mode",
	ReasonUnknownPeer:      "unknown_peer",
	ReasonOwnAddress:       "own_address",
	ReasonFamily:           "family",
	ReasonIntervalMismatch: "interval_mismatch",
	ReasonNotLinkLocal:     "not_link_local",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Reasons lists every reason, for drivers that pre-create counters.
func Reasons() []Reason {
	rs := make([]Reason, 0, numReasons-1)
	for r := ReasonNone + 1; r < numReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// RxError is returned for a discarded packet.
type RxError struct {
	Reason Reason
	Detail string
}

func (e *RxError) Error() string {
	if e.Detail == "" {
		return "vrrp: discarded advert: " + e.Reason.String()
	}
	return "vrrp: discarded advert: " + e.Reason.String() + ": " + e.Detail
}

func rxErr(r Reason, format string, args ...any) error {
	return &RxError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// RxInfo is what the driver knows about a received packet besides the VRRP
// message itself, taken from the IP header or ancillary data.
type RxInfo struct {
	Src netip.Addr
	Dst netip.Addr
	TTL int // IPv4 TTL or IPv6 Hop Limit
}

// Decoded is the outcome of Decode for a packet that passed.
type Decoded struct {
	Advert Advert
	// Form is the checksum form that verified. For v3 over IPv4 it may differ
	// from the preferred one (a peer using the other reading).
	Form ChecksumForm
	// AlternateForm is set when the packet verified only in the non-preferred
	// form; only ever set for v3 over IPv4.
	AlternateForm bool
}

// Decode runs the packet-level receive checks of RFC 3768 §7.1 and RFC 5798 /
// RFC 9568 §7.1 that need no instance state, cheapest first: TTL (multicast
// only, as keepalived), version, type, count, exact length, checksum (for v3
// over IPv4 the preferred form first, then the other), interval ≠ 0. Each
// failure returns an *RxError with its own Reason.
func Decode(b []byte, rx RxInfo, prefer ChecksumForm) (Decoded, error) {
	var d Decoded
	err := DecodeTo(&d, b, rx, prefer)
	return d, err
}

// DecodeTo is Decode into d, reusing d.Advert.Addrs' storage: a receive loop
// that keeps one Decoded allocates nothing per packet. d is overwritten, so
// nothing may keep d.Advert.Addrs past the next call (Instance.Receive does
// not).
func DecodeTo(d *Decoded, b []byte, rx RxInfo, prefer ChecksumForm) error {
	addrs := d.Advert.Addrs[:0]
	*d = Decoded{}
	if !rx.Src.IsValid() || !rx.Dst.IsValid() || rx.Src.Is4() != rx.Dst.Is4() {
		return rxErr(ReasonFamily, "source %s and destination %s", rx.Src, rx.Dst)
	}
	if rx.Dst.IsMulticast() && rx.TTL != RequiredTTL {
		return rxErr(ReasonTTL, "TTL/hop limit %d, want %d", rx.TTL, RequiredTTL)
	}
	if len(b) < headerLen {
		return rxErr(ReasonLength, "%d bytes is shorter than the %d-byte header", len(b), headerLen)
	}
	version := b[0] >> 4
	if version != 2 && version != 3 {
		return rxErr(ReasonVersion, "version %d", version)
	}
	six := rx.Src.Is6()
	if six && version == 2 {
		return rxErr(ReasonVersion, "VRRPv2 over IPv6")
	}
	if t := b[0] & 0x0f; t != TypeAdvert {
		return rxErr(ReasonType, "type %d", t)
	}
	count := int(b[3])
	if count == 0 {
		return rxErr(ReasonAddressCount, "count is 0")
	}
	alen := 4
	if six {
		alen = 16
	}
	want := headerLen + count*alen
	if version == 2 {
		want += v2AuthLen
	}
	if len(b) != want {
		// This is also what rejects CARP (36 bytes, 0x21, "count" 7) and
		// Cisco's MD5-authenticated v2 adverts.
		return rxErr(ReasonLength, "%d bytes, want %d for v%d with %d addresses", len(b), want, version, count)
	}
	switch {
	case version == 2:
		if !checksumOK(b, 2, rx.Src, rx.Dst, ChecksumMessageOnly) {
			return rxErr(ReasonChecksum, "v2 checksum %#04x", binary.BigEndian.Uint16(b[6:8]))
		}
		d.Form = ChecksumMessageOnly
	case six:
		if !checksumOK(b, 3, rx.Src, rx.Dst, ChecksumPseudoHeader) {
			return rxErr(ReasonChecksum, "v3/IPv6 checksum %#04x", binary.BigEndian.Uint16(b[6:8]))
		}
		d.Form = ChecksumPseudoHeader
	default:
		other := ChecksumMessageOnly
		if prefer == ChecksumMessageOnly {
			other = ChecksumPseudoHeader
		}
		switch {
		case checksumOK(b, 3, rx.Src, rx.Dst, prefer):
			d.Form = prefer
		case checksumOK(b, 3, rx.Src, rx.Dst, other):
			d.Form, d.AlternateForm = other, true
		default:
			return rxErr(ReasonChecksum, "v3/IPv4 checksum %#04x matches neither form", binary.BigEndian.Uint16(b[6:8]))
		}
	}
	a := &d.Advert
	a.Version = version
	a.VRID = b[1]
	a.Priority = b[2]
	a.Checksum = binary.BigEndian.Uint16(b[6:8])
	if version == 2 {
		a.AuthType = b[4]
		if b[5] == 0 {
			return rxErr(ReasonIntervalZero, "v2 Adver Int is 0")
		}
		a.Interval = time.Duration(b[5]) * time.Second
		copy(a.AuthData[:], b[headerLen+count*4:])
	} else {
		// Only the low 12 bits are the interval; the reserved nibble is ignored
		// on receive (RFC 5798 §5.2.6; FRR fixed exactly this leak in 2026).
		iv := binary.BigEndian.Uint16(b[4:6]) & MaxV3Interval
		if iv == 0 {
			return rxErr(ReasonIntervalZero, "v3 Max Adver Int is 0")
		}
		a.Interval = time.Duration(iv) * 10 * time.Millisecond
	}
	a.Addrs = slices.Grow(addrs, count)[:count]
	off := headerLen
	for i := range a.Addrs {
		if six {
			a.Addrs[i] = netip.AddrFrom16([16]byte(b[off : off+16]))
		} else {
			a.Addrs[i] = netip.AddrFrom4([4]byte(b[off : off+4]))
		}
		off += alen
	}
	return nil
}
