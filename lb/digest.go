package lb

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// TableDigest returns a stable digest of t's content (hex of the first 16
// bytes of a SHA-256): the same for equal tables in normal form, however
// their maps were filled, and across builds as long as this encoding is
// kept. The fleet gossips it to find directors that want different IPVS
// tables from the same config. Every field of Service, ServiceKey and Dest
// is written explicitly (digest_test.go fails when a field is added and
// not written here).
func TableDigest(t Table) string {
	t = t.normalIfNeeded()
	h := sha256.New()
	var b []byte
	for _, k := range t.Keys() {
		e := t[k]
		s := e.Service
		b = append(b[:0], 'S')
		b = appendServiceKey(b, s.Key)
		b = appendString(b, s.Scheduler)
		b = binary.AppendUvarint(b, uint64(s.SchedFlags))
		b = binary.AppendVarint(b, int64(s.Persistence))
		b = binary.AppendVarint(b, int64(s.PersistenceMask))
		b = appendBool(b, s.OnePacket)
		b = appendString(b, s.PE)
		b = binary.AppendUvarint(b, uint64(len(e.Dests)))
		h.Write(b) // a hash.Hash never returns an error
		for _, d := range e.SortedDests() {
			b = append(b[:0], 'D')
			b = appendString(b, d.Addr.String())
			b = binary.AppendUvarint(b, uint64(d.Port))
			b = binary.AppendUvarint(b, uint64(d.Forward))
			b = binary.AppendVarint(b, int64(d.Weight))
			b = binary.AppendUvarint(b, uint64(d.Upper))
			b = binary.AppendUvarint(b, uint64(d.Lower))
			b = binary.AppendUvarint(b, uint64(d.TunType))
			b = binary.AppendUvarint(b, uint64(d.TunPort))
			b = binary.AppendUvarint(b, uint64(d.TunCsum))
			h.Write(b) // a hash.Hash never returns an error
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func appendServiceKey(b []byte, k ServiceKey) []byte {
	b = binary.AppendUvarint(b, uint64(k.Family))
	b = binary.AppendUvarint(b, uint64(k.Protocol))
	b = appendString(b, k.Addr.String())
	b = binary.AppendUvarint(b, uint64(k.Port))
	return binary.AppendUvarint(b, uint64(k.FWMark))
}

// appendString writes s length-prefixed; addresses go as their text, which
// tells the zero address, IPv4, IPv6 and zones apart.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}
