package ipvsnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"vigil/lb"
)

// TestAvailableWithoutIPVS runs on hosts without IPVS (like the CI host):
// the error must say so and what to do, not pretend a handle works.
func TestAvailableWithoutIPVS(t *testing.T) {
	if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
		t.Skip("this kernel has IPVS; test/lbvm checks Available there")
	}
	err := Available()
	if !errors.Is(err, ErrNoIPVS) {
		t.Fatalf("Available() = %v, want ErrNoIPVS", err)
	}
	if _, err := Open(""); !errors.Is(err, ErrNoIPVS) {
		t.Fatalf("Open() = %v, want ErrNoIPVS", err)
	}
	t.Logf("error as reported: %v", err)
}

// kernelForm turns the attributes of a request into those of the
// kernel's dump of the same entry (ip_vs_genl_fill_service/_dest):
// addresses in 16 bytes, the HASHED flag set, the destination's family,
// tunnel settings and connection counts always present, and 64-bit
// counters with their pad attribute.
func kernelForm(t testing.TB, b []byte, c lb.Counters) []byte {
	t.Helper()
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		t.Fatal(err)
	}
	ae := netlink.NewAttributeEncoder()
	stats := func(n *netlink.AttributeEncoder) {
		n.Nested(svcAttrStats64, func(sn *netlink.AttributeEncoder) error {
			for i, v := range []uint64{c.Conns, c.InPkts, c.OutPkts, c.InBytes, c.OutBytes, c.CPS, c.InPPS, c.OutPPS, c.InBPS, c.OutBPS} {
				sn.Uint64(uint16(i+1), v)
			}
			sn.Bytes(11, nil) // IPVS_STATS_ATTR_PAD
			return nil
		})
	}
	for ad.Next() {
		typ := ad.Type()
		inner := ad.Bytes()
		ae.Nested(typ, func(n *netlink.AttributeEncoder) error {
			id, err := netlink.NewAttributeDecoder(inner)
			if err != nil {
				return err
			}
			tun := false
			for id.Next() {
				v := id.Bytes()
				switch {
				case typ == cmdAttrService && id.Type() == svcAttrAddr, typ == cmdAttrDest && id.Type() == destAttrAddr:
					v = append(append([]byte{}, v...), make([]byte, 16-len(v))...)
				case typ == cmdAttrService && id.Type() == svcAttrFlags:
					v = append([]byte{}, v...)
					binary.NativeEndian.PutUint32(v, binary.NativeEndian.Uint32(v)|svcHashed)
				case typ == cmdAttrDest && id.Type() == destAttrTunType:
					tun = true
				}
				n.Bytes(id.Type(), v)
			}
			if typ == cmdAttrDest {
				n.Uint32(destAttrActiveConns, 7)
				n.Uint32(destAttrInactConns, 3)
				if !tun {
					n.Uint8(destAttrTunType, 0)
					n.Bytes(destAttrTunPort, []byte{0, 0})
					n.Uint16(destAttrTunFlags, 0)
				}
			}
			stats(n)
			return id.Err()
		})
	}
	if err := ad.Err(); err != nil {
		t.Fatal(err)
	}
	out, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestServiceRoundTrip writes services as Apply does and reads them back
// from the kernel's form of the same attributes as a dump does.
func TestServiceRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    lb.Service
	}{
		{"plain", lb.Service{Key: lb.ServiceKey{Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 80}, Scheduler: "rr"}},
		{"persistent /24, one-packet, sh flags", lb.Service{Key: lb.ServiceKey{Protocol: lb.UDP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 53},
			Scheduler: "sh", SchedFlags: lb.SchedFlag1 | lb.SchedFlag2, Persistence: 300 * time.Second, PersistenceMask: 24, OnePacket: true}},
		{"ipv6 persistent /64", lb.Service{Key: lb.ServiceKey{Protocol: lb.TCP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 443},
			Scheduler: "wlc", Persistence: time.Minute, PersistenceMask: 64}},
		{"fwmark ipv6", lb.Service{Key: lb.ServiceKey{Family: lb.IPv6, FWMark: 9}, Scheduler: "mh", SchedFlags: lb.SchedFlag2}},
		{"sip persistence engine", lb.Service{Key: lb.ServiceKey{Protocol: lb.UDP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 5060},
			Scheduler: "rr", Persistence: time.Minute, PE: "sip"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, b, err := encodeOp(nil, lb.Op{Kind: lb.AddService, Service: tc.s})
			if err != nil {
				t.Fatal(err)
			}
			c := lb.Counters{Conns: 1 << 33, InPkts: 2, OutPkts: 3, InBytes: 4, OutBytes: 5, CPS: 6, InPPS: 7, OutPPS: 8, InBPS: 9, OutBPS: 10}
			back, bc, err := decodeService(kernelForm(t, b, c))
			if err != nil {
				t.Fatal(err)
			}
			if back != tc.s.Normal() {
				t.Errorf("round trip:\n got  %+v\n want %+v", back, tc.s.Normal())
			}
			if bc != c {
				t.Errorf("counters %+v, want %+v", bc, c)
			}
		})
	}
	if _, _, err := decodeService(nil); err == nil {
		t.Error("a message without a service decoded")
	}
}

// TestDestRoundTrip is TestServiceRoundTrip for destinations: every
// forwarding method, tunnel encapsulations, and a tunnelled destination
// of the other family than its service.
func TestDestRoundTrip(t *testing.T) {
	v4 := lb.Service{Key: lb.ServiceKey{Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 80}}
	a4, a6 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8::1")
	dests := []lb.Dest{
		{Addr: a4, Port: 8080, Forward: lb.NAT, Weight: 65535, Upper: 100, Lower: 10},
		{Addr: a4, Port: 8080, Forward: lb.DR, Weight: 1},
		{Addr: a4, Port: 8080, Forward: lb.Local, Weight: 1},
		{Addr: a4, Port: 8080, Forward: lb.Tunnel, Weight: 1},
		{Addr: a4, Port: 8080, Forward: lb.Tunnel, Weight: 1, TunType: lb.GUE, TunPort: 6080, TunCsum: lb.RemCsum},
		{Addr: a4, Port: 8080, Forward: lb.Tunnel, Weight: 1, TunType: lb.GRE, TunCsum: lb.Csum},
		{Addr: a6, Port: 8080, Forward: lb.Tunnel, Weight: 2},
	}
	for _, d := range dests {
		_, b, err := encodeOp(nil, lb.Op{Kind: lb.AddDest, Service: v4, Dest: d})
		if err != nil {
			t.Fatal(err)
		}
		// A GET_DEST answer holds the destination alone.
		full := kernelForm(t, b, lb.Counters{Conns: 5})
		ad, _ := netlink.NewAttributeDecoder(full)
		var destOnly []byte
		for ad.Next() {
			if ad.Type() == cmdAttrDest {
				ae := netlink.NewAttributeEncoder()
				ae.Bytes(cmdAttrDest, ad.Bytes())
				destOnly, _ = ae.Encode()
			}
		}
		back, c, err := decodeDest(destOnly, lb.IPv4)
		if err != nil || back != d {
			t.Errorf("%+v: round trip %+v, %v", d, back, err)
		}
		if c.ActiveConns != 7 || c.InactConns != 3 || c.Conns != 5 {
			t.Errorf("%+v: counters %+v", d, c)
		}
	}
	if _, err := kernelDest(lb.Dest{Addr: a4, Weight: 65536}); err == nil {
		t.Error("weight 65536 accepted (above what ipvsadm accepts)")
	}
	if kd, _ := kernelDest(lb.Dest{Addr: a4, Forward: lb.DR}); kd.fwd != connFDRoute {
		t.Errorf("DR as %#x", kd.fwd)
	}
}

func TestParseInfo(t *testing.T) {
	v, n, err := parseInfo("IP Virtual Server version 1.2.1 (size=4096)")
	if v != "1.2.1" || n != 4096 || err != nil {
		t.Errorf("parseInfo = %q %d %v", v, n, err)
	}
	if _, _, err := parseInfo("garbage"); err == nil {
		t.Error("garbage parsed")
	}
}

// attrs reads what mdlayher/netlink's encoder writes (padding, a nested
// attribute with NLA_F_NESTED), and refuses truncated or overlong input
// and values of the wrong size.
func TestAttrs(t *testing.T) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint8(1, 7)
	ae.String(2, "wrr") // 4 bytes with the NUL, then no padding; "sh" would pad
	ae.Bytes(3, []byte{1, 2, 3, 4, 5})
	ae.Nested(4, func(n *netlink.AttributeEncoder) error { n.Uint64(1, 1<<40); return nil })
	ae.Uint16(5, 9)
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	a := attrs{b: b}
	var got []string
	for a.Next() {
		switch a.Type() {
		case 1:
			got = append(got, fmt.Sprint(a.Uint8()))
		case 2:
			got = append(got, a.String())
		case 3:
			got = append(got, fmt.Sprint(a.Bytes()))
		case 4:
			in := attrs{b: a.Bytes()}
			for in.Next() {
				got = append(got, fmt.Sprint(in.Type(), "=", in.Uint64()))
			}
		case 5:
			got = append(got, fmt.Sprint(a.Uint16()))
		}
	}
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
	if want := "7 wrr [1 2 3 4 5] 1=1099511627776 9"; strings.Join(got, " ") != want {
		t.Errorf("read %q, want %q", strings.Join(got, " "), want)
	}
	for name, bad := range map[string][]byte{
		"short header":    {8, 0},
		"length below 4":  {2, 0, 1, 0},
		"length too long": {12, 0, 1, 0, 0, 0, 0, 0},
	} {
		a := attrs{b: bad}
		for a.Next() {
		}
		if a.Err() == nil {
			t.Errorf("%s: no error", name)
		}
	}
	wrong := attrs{b: []byte{6, 0, 1, 0, 1, 2, 0, 0}}
	if wrong.Next() && wrong.Uint32() == 0 && wrong.Err() == nil {
		t.Error("a 2-byte value read as uint32 without an error")
	}
}

// BenchmarkDecodeDest is the decoding of one destination of a dump (the
// kernel's form, with 64-bit counters): a dump of 10,000 destinations
// runs every 30 s and for /metrics.
func BenchmarkDecodeDest(b *testing.B) {
	v4 := lb.Service{Key: lb.ServiceKey{Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 80}}
	d := lb.Dest{Addr: netip.MustParseAddr("198.51.100.1"), Port: 8080, Forward: lb.NAT, Weight: 3}
	_, raw, err := encodeOp(nil, lb.Op{Kind: lb.AddDest, Service: v4, Dest: d})
	if err != nil {
		b.Fatal(err)
	}
	full := kernelForm(b, raw, lb.Counters{Conns: 5})
	n, err := nested(full, cmdAttrDest, "dest")
	if err != nil {
		b.Fatal(err)
	}
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(cmdAttrDest, n.b)
	msg, _ := ae.Encode()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := decodeDest(msg, lb.IPv4); err != nil {
			b.Fatal(err)
		}
	}
}

// dumpAnswers passes this dump's answers on, skips other requests', ends at
// NLMSG_DONE or NLMSG_ERROR with their errno, and after an answer the
// caller refuses keeps reading to the end (the kernel would otherwise still
// be dumping when the next request comes).
func TestDumpAnswers(t *testing.T) {
	msg := func(seq uint32, typ uint16, data ...byte) syscall.NetlinkMessage {
		return syscall.NetlinkMessage{Header: syscall.NlMsghdr{Seq: seq, Type: typ}, Data: data}
	}
	errno := func(e int32) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(e)) }
	genl := func(payload byte) []byte { return []byte{0, 0, 0, 0, payload} } // genl header + one byte
	const data = 0x10                                                        // any family type
	var got []byte
	each := func(b []byte) error {
		got = append(got, b...)
		if b[0] == 9 {
			return errors.New("refused")
		}
		return nil
	}
	for _, tc := range []struct {
		name    string
		batches [][]syscall.NetlinkMessage
		want    string // the payloads passed on
		err     string
	}{
		{"two answers then done", [][]syscall.NetlinkMessage{{msg(7, data, genl(1)...), msg(7, data, genl(2)...)}, {msg(7, unix.NLMSG_DONE, errno(0)...)}}, "\x01\x02", ""},
		{"another request's answers skipped", [][]syscall.NetlinkMessage{{msg(6, data, genl(5)...), msg(6, unix.NLMSG_DONE, errno(0)...), msg(7, data, genl(1)...), msg(7, unix.NLMSG_DONE, errno(0)...)}}, "\x01", ""},
		{"refused", [][]syscall.NetlinkMessage{{msg(7, unix.NLMSG_ERROR, errno(-int32(unix.ESRCH))...)}}, "", "no such process"},
		{"dump failed at its end", [][]syscall.NetlinkMessage{{msg(7, data, genl(1)...), msg(7, unix.NLMSG_DONE, errno(-int32(unix.EMSGSIZE))...)}}, "\x01", "message too long"},
		{"caller refuses, reading goes on", [][]syscall.NetlinkMessage{{msg(7, data, genl(9)...), msg(7, data, genl(2)...)}, {msg(7, unix.NLMSG_DONE, errno(0)...)}}, "\x09", "refused"},
		{"short answer", [][]syscall.NetlinkMessage{{msg(7, data, 1, 2)}, {msg(7, unix.NLMSG_DONE, errno(0)...)}}, "", "answer of 2 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			var eachErr, err error
			done := false
			for i, b := range tc.batches {
				if done, err = dumpAnswers(b, 7, each, &eachErr); done != (i == len(tc.batches)-1) {
					t.Fatalf("batch %d: done %v", i, done)
				}
			}
			if string(got) != tc.want {
				t.Errorf("passed on %q, want %q", got, tc.want)
			}
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("error %v, want %q", err, tc.err)
			}
		})
	}
}
