package ipvsnet

import (
	"encoding/binary"
	"net/netip"
)

// Appending netlink attributes (struct nlattr, include/uapi/linux/netlink.h):
// a native-endian u16 length (header included, padding not), a u16 type,
// the payload, then zeros up to a 4-byte boundary. The values the IPVS
// family reads as u8, u16 and u32 are native-endian; ports are big-endian.

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
