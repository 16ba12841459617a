package vrrp_test

import (
	"net/netip"
	"slices"
	"testing"

	"vigil/vrrp"
)

// FuzzDecode feeds arbitrary messages to Decode. The first byte selects the
// path (v2/v3 over IPv4, v3 over IPv6), multicast or unicast, and whether the
// checksum is fixed up first so the fuzzer gets past it (FRR's lesson). On
// every accepted input the invariants of the reference's §4.5 must hold.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		"210164010001ba52c0a8000100000000 00000000",
		"3158c60100649c190ac34ce3",
		"310296030064082db9cb70010a0000010a000801",
		"3133c80100644402c0000264",
		"310764020064945afe80000000000000000000000000abcd20010db8000000000000000000000001",
		"310764010064c225fe80000000000000000000000000abcd",
	}
	for i, s := range seeds {
		b := mustHex(f, s)
		sel := byte(0)
		if len(b) > 30 || i == 5 {
			sel = 2
		}
		f.Add(sel, b)
		f.Add(sel|4, b) // with checksum fix-up
	}
	f.Fuzz(func(t *testing.T, sel byte, b []byte) {
		rx := vrrp.RxInfo{Src: netip.MustParseAddr("192.0.2.11"), Dst: vrrp.GroupIPv4, TTL: 255}
		if sel&2 != 0 {
			rx = vrrp.RxInfo{Src: netip.MustParseAddr("fe80::11"), Dst: vrrp.GroupIPv6, TTL: 255}
		}
		if sel&1 != 0 {
			// Unicast path: the TTL is not checked there.
			if rx.Src.Is4() {
				rx.Dst = netip.MustParseAddr("192.0.2.12")
			} else {
				rx.Dst = netip.MustParseAddr("fe80::12")
			}
			rx.TTL = int(sel >> 4)
		}
		msg := slices.Clone(b)
		if sel&4 != 0 {
			fixChecksum(msg, rx)
		}
		prefer := vrrp.ChecksumPseudoHeader
		if sel&8 != 0 {
			prefer = vrrp.ChecksumMessageOnly
		}
		d, err := vrrp.Decode(msg, rx, prefer)
		if err != nil {
			return
		}
		a := d.Advert
		alen := 4
		if rx.Src.Is6() {
			alen = 16
		}
		want := 8 + alen*len(a.Addrs)
		if a.Version == 2 {
			want += 8
		}
		if len(msg) != want || len(a.Addrs) == 0 || int(msg[3]) != len(a.Addrs) {
			t.Fatalf("accepted %d bytes with %d addresses", len(msg), len(a.Addrs))
		}
		if d.AlternateForm && (a.Version != 3 || rx.Src.Is6()) {
			t.Fatal("alternate checksum form outside v3/IPv4")
		}
		if a.Interval <= 0 {
			t.Fatal("accepted a zero interval")
		}
		// Re-encoding in the matched form decodes to the same fields.
		out, err := a.Marshal(rx.Src, rx.Dst, d.Form)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		d2, err := vrrp.Decode(out, rx, d.Form)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		b2 := d2.Advert
		if b2.Version != a.Version || b2.VRID != a.VRID || b2.Priority != a.Priority || b2.Interval != a.Interval ||
			b2.AuthType != a.AuthType || b2.AuthData != a.AuthData || !slices.Equal(b2.Addrs, a.Addrs) {
			t.Fatalf("round trip changed fields: %+v → %+v", a, b2)
		}
		// Apart from v3's reserved nibble (sent as zero) the bytes are equal.
		m := slices.Clone(msg)
		if a.Version == 3 {
			m[4] &= 0x0f
		}
		m[6], m[7], out[6], out[7] = 0, 0, 0, 0
		if !slices.Equal(m, out) {
			t.Fatalf("re-encoded bytes differ:\n %x\n %x", m, out)
		}
	})
}
