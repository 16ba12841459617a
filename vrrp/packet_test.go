package vrrp_test

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"vigil/vrrp"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(strings.ReplaceAll(s, " ", ""), "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	a4 = netip.MustParseAddr
)

// The vectors of the reference note (vrrp-spec-and-performance.md §2), with
// both IPv4 checksum forms recomputed there.
func TestVectors(t *testing.T) {
	type vec struct {
		name      string
		msg       string
		src, dst  string
		version   uint8
		vrid, pri uint8
		interval  time.Duration
		addrs     []string
		form      vrrp.ChecksumForm // the form the packet carries
		other     uint16            // checksum in the other IPv4 form (0 = n/a)
	}
	vecs := []vec{
		{
			// V1: VRRPv2 from a real tcpdump capture (gopacket's vrrp_test.go).
			name: "V1 v2", msg: "210164010001ba52c0a8000100000000 00000000",
			src: "192.168.0.30", dst: "224.0.0.18", version: 2, vrid: 1, pri: 100,
			interval: time.Second, addrs: []string{"192.168.0.1"}, form: vrrp.ChecksumMessageOnly,
		},
		{
			// V2: v3/IPv4 unicast, pseudo-header over the real destination
			// (keepalived #1175). Message-only would be 0xb09b.
			name: "V2 v3 unicast pseudo", msg: "3158c60100649c190ac34ce3",
			src: "10.1.0.3", dst: "10.1.0.1", version: 3, vrid: 88, pri: 198,
			interval: time.Second, addrs: []string{"10.195.76.227"}, form: vrrp.ChecksumPseudoHeader, other: 0xb09b,
		},
		{
			// V3: v3/IPv4 multicast, 3 VIPs, pseudo-header (keepalived #1490).
			name: "V3 v3 three VIPs", msg: "310296030064082db9cb70010a0000010a000801",
			src: "10.0.0.3", dst: "224.0.0.18", version: 3, vrid: 2, pri: 150,
			interval: time.Second, addrs: []string{"185.203.112.1", "10.0.0.1", "10.0.8.1"},
			form: vrrp.ChecksumPseudoHeader, other: 0xf2c6,
		},
		{
			// V4: RFC 9568 message-only form (keepalived auth_hmac_test.c).
			name: "V4 v3 message-only", msg: "3133c80100644402c0000264",
			src: "198.51.100.10", dst: "224.0.0.18", version: 3, vrid: 51, pri: 200,
			interval: time.Second, addrs: []string{"192.0.2.100"}, form: vrrp.ChecksumMessageOnly, other: 0x3935,
		},
		{
			// V5a: v3/IPv6, checksum computed by the Linux kernel.
			name: "V5a v3 IPv6 two addrs",
			msg:  "310764020064945afe80000000000000000000000000abcd20010db8000000000000000000000001",
			src:  "fe80::1", dst: "ff02::12", version: 3, vrid: 7, pri: 100,
			interval: time.Second, addrs: []string{"fe80::abcd", "2001:db8::1"}, form: vrrp.ChecksumPseudoHeader,
		},
		{
			name: "V5b v3 IPv6 one addr", msg: "310764010064c225fe80000000000000000000000000abcd",
			src: "fe80::1", dst: "ff02::12", version: 3, vrid: 7, pri: 100,
			interval: time.Second, addrs: []string{"fe80::abcd"}, form: vrrp.ChecksumPseudoHeader,
		},
	}
	for _, v := range vecs {
		t.Run(v.name, func(t *testing.T) {
			b := mustHex(t, v.msg)
			rx := vrrp.RxInfo{Src: a4(v.src), Dst: a4(v.dst), TTL: 255}
			d, err := vrrp.Decode(b, rx, v.form)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			a := d.Advert
			if a.Version != v.version || a.VRID != v.vrid || a.Priority != v.pri || a.Interval != v.interval {
				t.Errorf("fields = v%d vrid %d prio %d int %s", a.Version, a.VRID, a.Priority, a.Interval)
			}
			var want []netip.Addr
			for _, s := range v.addrs {
				want = append(want, a4(s))
			}
			if !slices.Equal(a.Addrs, want) {
				t.Errorf("addrs = %v, want %v", a.Addrs, want)
			}
			if d.Form != v.form || d.AlternateForm {
				t.Errorf("form = %v alternate=%v, want %v", d.Form, d.AlternateForm, v.form)
			}
			// Re-encode to the same bytes.
			out, err := a.Marshal(rx.Src, rx.Dst, v.form)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(out, b) {
				t.Errorf("re-encoded\n %x\nwant\n %x", out, b)
			}
			if v.other != 0 {
				otherForm := vrrp.ChecksumMessageOnly
				if v.form == vrrp.ChecksumMessageOnly {
					otherForm = vrrp.ChecksumPseudoHeader
				}
				o, err := a.Marshal(rx.Src, rx.Dst, otherForm)
				if err != nil {
					t.Fatal(err)
				}
				if a.Checksum != v.other {
					t.Errorf("%v checksum = %#04x, want %#04x", otherForm, a.Checksum, v.other)
				}
				// Dual accept: the other form verifies too, flagged as alternate
				// when we prefer v.form (RFC 5798 §5.2.8 vs RFC 9568).
				d2, err := vrrp.Decode(o, rx, v.form)
				if err != nil {
					t.Fatalf("Decode other form: %v", err)
				}
				if d2.Form != otherForm || !d2.AlternateForm {
					t.Errorf("other form decoded as %v alternate=%v", d2.Form, d2.AlternateForm)
				}
			}
		})
	}
}

// TestGoldenKeepalivedPcaps: every VRRP packet keepalived 2.2.7 sent in
// shared/testdata/keepalived-pcaps decodes, validates (checksum, TTL 255,
// version, type, count) and re-encodes to the same bytes.
func TestGoldenKeepalivedPcaps(t *testing.T) {
	files, _ := filepath.Glob("testdata/keepalived-pcaps/*.pcap")
	if len(files) != 5 {
		t.Fatalf("found %d golden pcaps, want 5", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			pkts := goldenAdverts(t, f)
			if len(pkts) < 8 {
				t.Fatalf("%d VRRP packets, want ≥ 8", len(pkts))
			}
			wantVersion := uint8(3)
			if strings.HasPrefix(filepath.Base(f), "v2") {
				wantVersion = 2
			}
			var zero, p150, p100 int
			for _, p := range pkts {
				d, err := vrrp.Decode(p.msg, p.rx, vrrp.ChecksumPseudoHeader)
				if err != nil {
					t.Fatalf("packet at %s: %v", p.at, err)
				}
				a := d.Advert
				if a.Version != wantVersion || a.VRID != 51 || a.Interval != time.Second || len(a.Addrs) != 1 {
					t.Errorf("packet at %s: v%d vrid %d interval %s addrs %v", p.at, a.Version, a.VRID, a.Interval, a.Addrs)
				}
				if d.AlternateForm {
					t.Errorf("keepalived's default v3/IPv4 form is the pseudo-header; got %v", d.Form)
				}
				switch a.Priority {
				case 0:
					zero++
				case 150:
					p150++
				case 100:
					p100++
				}
				out, err := a.Marshal(p.rx.Src, p.rx.Dst, d.Form)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(out, p.msg) {
					t.Errorf("packet at %s re-encoded\n %x\nwant\n %x", p.at, out, p.msg)
				}
			}
			// Each capture: n1 (150) master, resigns with priority 0, n2 (100)
			// takes over and resigns too.
			if zero != 2 || p150 == 0 || p100 == 0 {
				t.Errorf("priorities: %d×0, %d×150, %d×100", zero, p150, p100)
			}
		})
	}
}

type goldenPkt struct {
	at  time.Time
	msg []byte
	rx  vrrp.RxInfo
}

func goldenAdverts(t testing.TB, path string) []goldenPkt {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []goldenPkt
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		switch ip := pkt.NetworkLayer().(type) {
		case *layers.IPv4:
			if ip.Protocol != vrrp.IPProtocol {
				continue
			}
			src, _ := netip.AddrFromSlice(ip.SrcIP.To4())
			dst, _ := netip.AddrFromSlice(ip.DstIP.To4())
			out = append(out, goldenPkt{ci.Timestamp, ip.Payload, vrrp.RxInfo{Src: src, Dst: dst, TTL: int(ip.TTL)}})
		case *layers.IPv6:
			if ip.NextHeader != vrrp.IPProtocol {
				continue
			}
			src, _ := netip.AddrFromSlice(ip.SrcIP)
			dst, _ := netip.AddrFromSlice(ip.DstIP)
			out = append(out, goldenPkt{ci.Timestamp, ip.Payload, vrrp.RxInfo{Src: src, Dst: dst, TTL: int(ip.HopLimit)}})
		}
	}
	return out
}

// Negative vectors (reference §2 "Negative vectors to derive"): each
// mutation fails with its own reason.
func TestDecodeRejects(t *testing.T) {
	v1 := "210164010001ba52c0a8000100000000 00000000" // v2
	v4 := "3133c80100644402c0000264"                  // v3 message-only
	v5 := "310764010064c225fe80000000000000000000000000abcd"
	rx4 := vrrp.RxInfo{Src: a4("192.168.0.30"), Dst: vrrp.GroupIPv4, TTL: 255}
	rxv4 := vrrp.RxInfo{Src: a4("198.51.100.10"), Dst: vrrp.GroupIPv4, TTL: 255}
	rx6 := vrrp.RxInfo{Src: a4("fe80::1"), Dst: vrrp.GroupIPv6, TTL: 255}
	// fix recomputes the checksum after a mutation so that only the intended
	// check can fail.
	type tc struct {
		name   string
		msg    string
		rx     vrrp.RxInfo
		mutate func([]byte) []byte
		fix    bool
		want   vrrp.Reason
	}
	cases := []tc{
		{"TTL 254 (§7.1 step 1)", v1, vrrp.RxInfo{Src: rx4.Src, Dst: rx4.Dst, TTL: 254}, nil, false, vrrp.ReasonTTL},
		{"hop limit 64 (§7.1 step 1)", v5, vrrp.RxInfo{Src: rx6.Src, Dst: rx6.Dst, TTL: 64}, nil, false, vrrp.ReasonTTL},
		{"truncated to 4 bytes (§7.1 step 3)", v1, rx4, func(b []byte) []byte { return b[:4] }, false, vrrp.ReasonLength},
		{"version 4", v4, rxv4, func(b []byte) []byte { b[0] = 0x41; return b }, true, vrrp.ReasonVersion},
		{"version 1", v4, rxv4, func(b []byte) []byte { b[0] = 0x11; return b }, true, vrrp.ReasonVersion},
		{"v2 over IPv6", v5, rx6, func(b []byte) []byte { b[0] = 0x21; return b }, true, vrrp.ReasonVersion},
		{"type 2 (§5.2.2)", v4, rxv4, func(b []byte) []byte { b[0] = 0x32; return b }, true, vrrp.ReasonType},
		{"count 0 (erratum 8299)", v4, rxv4, func(b []byte) []byte { b[3] = 0; return b[:8] }, true, vrrp.ReasonAddressCount},
		{"count 2 with one address", v4, rxv4, func(b []byte) []byte { b[3] = 2; return b }, true, vrrp.ReasonLength},
		{"8 extra bytes", v4, rxv4, func(b []byte) []byte { return append(b, 0, 0, 0, 0, 0, 0, 0, 0) }, true, vrrp.ReasonLength},
		{"v2 without auth data", v1, rx4, func(b []byte) []byte { return b[:12] }, false, vrrp.ReasonLength},
		// CARP: 36 bytes, 0x21, "count" byte 7 — fails only the exact length.
		{"CARP-shaped 36 bytes", v1, rx4, func(b []byte) []byte {
			c := make([]byte, 36)
			c[0], c[1], c[2], c[3] = 0x21, 1, 0, 7
			return c
		}, true, vrrp.ReasonLength},
		// Cisco MD5: auth type 254 and a 30-byte trailer (50 bytes).
		{"Cisco MD5 trailer", v1, rx4, func(b []byte) []byte { b[4] = 254; return append(b, make([]byte, 30)...) }, true, vrrp.ReasonLength},
		{"bad checksum v2 (§7.1 step 4)", v1, rx4, func(b []byte) []byte { b[7] ^= 1; return b }, false, vrrp.ReasonChecksum},
		{"bad checksum v3/IPv4", v4, rxv4, func(b []byte) []byte { b[2] ^= 0x80; return b }, false, vrrp.ReasonChecksum},
		{"bad checksum v3/IPv6", v5, rx6, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, false, vrrp.ReasonChecksum},
		{"v3 IPv6 checksum over another source", v5, vrrp.RxInfo{Src: a4("fe80::2"), Dst: rx6.Dst, TTL: 255}, nil, false, vrrp.ReasonChecksum},
		{"v3 interval 0 (erratum 8301)", v4, rxv4, func(b []byte) []byte { b[4], b[5] = 0, 0; return b }, true, vrrp.ReasonIntervalZero},
		{"v3 interval 0 with reserved bits set", v4, rxv4, func(b []byte) []byte { b[4], b[5] = 0xf0, 0; return b }, true, vrrp.ReasonIntervalZero},
		{"v2 interval 0", v1, rx4, func(b []byte) []byte { b[5] = 0; return b }, true, vrrp.ReasonIntervalZero},
		{"families differ", v4, vrrp.RxInfo{Src: rxv4.Src, Dst: vrrp.GroupIPv6, TTL: 255}, nil, false, vrrp.ReasonFamily},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := mustHex(t, c.msg)
			if c.mutate != nil {
				b = c.mutate(b)
			}
			if c.fix {
				fixChecksum(b, c.rx)
			}
			_, err := vrrp.Decode(b, c.rx, vrrp.ChecksumMessageOnly)
			var rxe *vrrp.RxError
			if !errors.As(err, &rxe) {
				t.Fatalf("Decode = %v, want reason %v", err, c.want)
			}
			if rxe.Reason != c.want {
				t.Fatalf("reason = %v (%v), want %v", rxe.Reason, err, c.want)
			}
		})
	}
}

// fixChecksum rewrites the checksum of a (possibly malformed) message in the
// form its version and family use, so a test isolates one check.
func fixChecksum(b []byte, rx vrrp.RxInfo) {
	if len(b) < 8 {
		return
	}
	b[6], b[7] = 0, 0
	var sum uint32
	if rx.Src.Is6() {
		for _, x := range [][]byte{rx.Src.AsSlice(), rx.Dst.AsSlice()} {
			for i := 0; i < len(x); i += 2 {
				sum += uint32(x[i])<<8 | uint32(x[i+1])
			}
		}
		sum += uint32(len(b)) + vrrp.IPProtocol
	}
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	cs := ^uint16(sum)
	b[6], b[7] = byte(cs>>8), byte(cs)
}

// The reserved nibble of v3 is sent as zero and ignored on receive (RFC 5798
// §5.2.6); FRR's 2026 fix was about it leaking into the learned interval.
func TestReservedBitsIgnored(t *testing.T) {
	b := mustHex(t, "3133c80100644402c0000264")
	b[4] |= 0xf0
	rx := vrrp.RxInfo{Src: a4("198.51.100.10"), Dst: vrrp.GroupIPv4, TTL: 255}
	fixChecksum(b, rx)
	d, err := vrrp.Decode(b, rx, vrrp.ChecksumMessageOnly)
	if err != nil {
		t.Fatal(err)
	}
	if d.Advert.Interval != time.Second {
		t.Fatalf("interval %s, want 1s", d.Advert.Interval)
	}
}

// Decode checks the TTL of multicast adverts only: a unicast advert's TTL is
// checked by Instance.Check against the instance's unicast floor
// (TestUnicastTTL), since keepalived peers may be configured to send lower.
func TestUnicastTTLNotCheckedByDecode(t *testing.T) {
	b := mustHex(t, "3158c60100649c190ac34ce3")
	_, err := vrrp.Decode(b, vrrp.RxInfo{Src: a4("10.1.0.3"), Dst: a4("10.1.0.1"), TTL: 63}, vrrp.ChecksumPseudoHeader)
	if err != nil {
		t.Fatal(err)
	}
}

func TestMarshalRejects(t *testing.T) {
	src, dst := a4("192.0.2.11"), vrrp.GroupIPv4
	cases := []struct {
		name string
		a    vrrp.Advert
	}{
		{"no addresses", vrrp.Advert{Version: 3, VRID: 1, Priority: 100, Interval: time.Second}},
		{"v2 sub-second", vrrp.Advert{Version: 2, VRID: 1, Priority: 100, Interval: 500 * time.Millisecond, Addrs: []netip.Addr{a4("192.0.2.100")}}},
		{"v3 5ms", vrrp.Advert{Version: 3, VRID: 1, Priority: 100, Interval: 5 * time.Millisecond, Addrs: []netip.Addr{a4("192.0.2.100")}}},
		{"v3 over 40.95s", vrrp.Advert{Version: 3, VRID: 1, Priority: 100, Interval: 41 * time.Second, Addrs: []netip.Addr{a4("192.0.2.100")}}},
		{"mixed families", vrrp.Advert{Version: 3, VRID: 1, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{a4("192.0.2.100"), a4("2001:db8::1")}}},
		{"v2 IPv6", vrrp.Advert{Version: 2, VRID: 1, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{a4("2001:db8::1")}}},
		{"version 4", vrrp.Advert{Version: 4, VRID: 1, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{a4("192.0.2.100")}}},
	}
	for _, c := range cases {
		if _, err := c.a.Marshal(src, dst, vrrp.ChecksumPseudoHeader); err == nil {
			t.Errorf("%s: Marshal succeeded", c.name)
		}
	}
}

// Intervals round-trip through the wire units: whole seconds for v2 (RFC 3768
// §5.3.7), centiseconds 1..4095 for v3 (RFC 5798 §5.2.7).
func TestIntervalField(t *testing.T) {
	for _, c := range []struct {
		v    uint8
		d    time.Duration
		want uint16
		ok   bool
	}{
		{2, time.Second, 1, true}, {2, 255 * time.Second, 255, true}, {2, 256 * time.Second, 0, false},
		{2, 1500 * time.Millisecond, 0, false}, {3, 10 * time.Millisecond, 1, true},
		{3, 40950 * time.Millisecond, 4095, true}, {3, 15 * time.Millisecond, 0, false}, {3, 0, 0, false},
	} {
		got, err := vrrp.IntervalField(c.v, c.d)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("IntervalField(v%d, %s) = %d, %v", c.v, c.d, got, err)
		}
	}
}

// Differential check of the v2 path against gopacket's VRRPv2 decoder (it
// validates little, so only field extraction is compared).
func TestGopacketV2Differential(t *testing.T) {
	for _, f := range []string{"testdata/keepalived-pcaps/v2-ipv4.pcap", "testdata/keepalived-pcaps/v2-ipv4-authpass.pcap"} {
		for _, p := range goldenAdverts(t, f) {
			var g layers.VRRPv2
			if err := g.DecodeFromBytes(p.msg, gopacket.NilDecodeFeedback); err != nil {
				t.Fatal(err)
			}
			d, err := vrrp.Decode(p.msg, p.rx, vrrp.ChecksumPseudoHeader)
			if err != nil {
				t.Fatal(err)
			}
			a := d.Advert
			if a.VRID != g.VirtualRtrID || a.Priority != g.Priority || a.AuthType != uint8(g.AuthType) ||
				a.Interval != time.Duration(g.AdverInt)*time.Second || a.Checksum != g.Checksum ||
				len(a.Addrs) != int(g.CountIPAddr) || a.Addrs[0].String() != g.IPAddress[0].String() {
				t.Errorf("%s: ours %+v, gopacket %+v", f, a, g)
			}
		}
	}
}

func TestPassAuthInGolden(t *testing.T) {
	for _, p := range goldenAdverts(t, "testdata/keepalived-pcaps/v2-ipv4-authpass.pcap") {
		d, err := vrrp.Decode(p.msg, p.rx, vrrp.ChecksumPseudoHeader)
		if err != nil {
			t.Fatal(err)
		}
		if d.Advert.AuthType != vrrp.AuthPass || string(d.Advert.AuthData[:6]) != "s3cret" {
			t.Fatalf("auth %d %q", d.Advert.AuthType, d.Advert.AuthData)
		}
	}
}

// DecodeTo reuses the address storage: no allocation per packet once warm,
// and a shorter packet after a longer one leaves no stale addresses.
func TestDecodeToReuse(t *testing.T) {
	two := mustHex(t, "310764020064945afe80000000000000000000000000abcd20010db8000000000000000000000001")
	one := mustHex(t, "310764010064c225fe80000000000000000000000000abcd")
	rx := vrrp.RxInfo{Src: a4("fe80::1"), Dst: vrrp.GroupIPv6, TTL: 255}
	var d vrrp.Decoded
	if err := vrrp.DecodeTo(&d, two, rx, vrrp.ChecksumPseudoHeader); err != nil || len(d.Advert.Addrs) != 2 {
		t.Fatalf("%v %v", err, d.Advert.Addrs)
	}
	if err := vrrp.DecodeTo(&d, one, rx, vrrp.ChecksumPseudoHeader); err != nil || len(d.Advert.Addrs) != 1 ||
		d.Advert.Addrs[0] != a4("fe80::abcd") || d.Advert.Checksum != 0xc225 {
		t.Fatalf("%v %+v", err, d.Advert)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := vrrp.DecodeTo(&d, two, rx, vrrp.ChecksumPseudoHeader); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("DecodeTo allocated %v times per packet", allocs)
	}
}
