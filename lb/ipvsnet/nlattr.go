package ipvsnet

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Netlink attributes, appended and read in place (struct nlattr,
// include/uapi/linux/netlink.h): a native-endian u16 length (header
// included, padding not), a u16 type, the payload, then zeros up to a
// 4-byte boundary. The values the IPVS family reads as u8, u16 and u32
// are native-endian; ports are big-endian.

const nlaNested = 0x8000 // NLA_F_NESTED

func attrHdr(b []byte, typ uint16, n int) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+n))
	return binary.NativeEndian.AppendUint16(b, typ)
}

// attrPad pads a payload of n bytes just appended to b.
func attrPad(b []byte, n int) []byte {
	return append(b, make([]byte, (4-n%4)%4)...)
}

func attrU8(b []byte, typ uint16, v uint8) []byte {
	return attrPad(append(attrHdr(b, typ, 1), v), 1)
}

func attrU16(b []byte, typ uint16, v uint16) []byte {
	return attrPad(binary.NativeEndian.AppendUint16(attrHdr(b, typ, 2), v), 2)
}

func attrBE16(b []byte, typ uint16, v uint16) []byte {
	return attrPad(binary.BigEndian.AppendUint16(attrHdr(b, typ, 2), v), 2)
}

func attrU32(b []byte, typ uint16, v uint32) []byte {
	return binary.NativeEndian.AppendUint32(attrHdr(b, typ, 4), v)
}

// attrU32Pair is a struct of two u32 (struct ip_vs_flags: flags, mask).
func attrU32Pair(b []byte, typ uint16, v, w uint32) []byte {
	return binary.NativeEndian.AppendUint32(binary.NativeEndian.AppendUint32(attrHdr(b, typ, 8), v), w)
}

// attrString is a NUL-terminated string.
func attrString(b []byte, typ uint16, s string) []byte {
	return attrPad(append(append(attrHdr(b, typ, len(s)+1), s...), 0), len(s)+1)
}

// appendAddr appends an address as the kernel takes it: 4 bytes for IPv4 (an
// IPv4-mapped IPv6 address included), 16 for IPv6.
func appendAddr(b []byte, typ uint16, a netip.Addr) []byte {
	if a = a.Unmap(); a.Is4() {
		v := a.As4()
		return append(attrHdr(b, typ, 4), v[:]...)
	}
	v := a.As16()
	return append(attrHdr(b, typ, 16), v[:]...)
}

// nestStart begins a nested attribute at the end of b; nestEnd, given the
// length b had before, fills in its header once its attributes follow.
func nestStart(b []byte) []byte { return append(b, 0, 0, 0, 0) }

func nestEnd(b []byte, at int, typ uint16) []byte {
	binary.NativeEndian.PutUint16(b[at:], uint16(len(b)-at))
	binary.NativeEndian.PutUint16(b[at+2:], typ|nlaNested)
	return b
}

// attrs reads netlink attributes in place. mdlayher/netlink's
// AttributeDecoder copies every value it reads (29 allocations for one
// destination), and a dump of 10,000 destinations runs every 30 s and for
// every /metrics scrape; this reads the same TLV layout (struct nlattr:
// length, type, value padded to 4 bytes) without a copy. Values are valid
// as long as the buffer is.
type attrs struct {
	b   []byte
	typ uint16
	val []byte
	err error
}

// nlaTypeMask drops NLA_F_NESTED and NLA_F_NET_BYTEORDER from a type.
const nlaTypeMask = 0x3fff

func (a *attrs) Next() bool {
	if a.err != nil || len(a.b) == 0 {
		return false
	}
	if len(a.b) < 4 {
		a.err = fmt.Errorf("attribute header of %d bytes", len(a.b))
		return false
	}
	l := int(binary.NativeEndian.Uint16(a.b))
	if l < 4 || l > len(a.b) {
		a.err = fmt.Errorf("attribute length %d of %d bytes left", l, len(a.b))
		return false
	}
	a.typ, a.val = binary.NativeEndian.Uint16(a.b[2:])&nlaTypeMask, a.b[4:l]
	a.b = a.b[min(len(a.b), (l+3)&^3):]
	return true
}

func (a *attrs) Type() uint16  { return a.typ }
func (a *attrs) Bytes() []byte { return a.val }
func (a *attrs) Err() error    { return a.err }

// String is a NUL-terminated string value.
func (a *attrs) String() string { return string(bytes.TrimRight(a.val, "\x00")) }

func (a *attrs) fixed(n int) []byte {
	if len(a.val) != n {
		if a.err == nil {
			a.err = fmt.Errorf("attribute %d has %d bytes, want %d", a.typ, len(a.val), n)
		}
		return make([]byte, n)
	}
	return a.val
}

func (a *attrs) Uint8() uint8   { return a.fixed(1)[0] }
func (a *attrs) Uint16() uint16 { return binary.NativeEndian.Uint16(a.fixed(2)) }
func (a *attrs) Uint32() uint32 { return binary.NativeEndian.Uint32(a.fixed(4)) }
func (a *attrs) Uint64() uint64 { return binary.NativeEndian.Uint64(a.fixed(8)) }

// nested returns the attributes nested in b's attribute typ (the one an
// IPVS message carries), which is called name in errors.
func nested(b []byte, typ uint16, name string) (*attrs, error) {
	top := attrs{b: b}
	for top.Next() {
		if top.Type() == typ {
			return &attrs{b: top.Bytes()}, nil
		}
	}
	if err := top.Err(); err != nil {
		return nil, fmt.Errorf("decode attributes: %w", err)
	}
	return nil, fmt.Errorf("message without %s", name)
}
