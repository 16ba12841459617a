package ipvsnet

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"

	"vigil/lb"
)

// showAttrs renders encoded attributes as "type=hex" with nested ones in
// braces, for comparing the wire form with what include/uapi/linux/ip_vs.h
// and the kernel's parser (ip_vs_genl_parse_service/_dest) expect.
func showAttrs(t *testing.T, b []byte) string { return attrsAt(t, b, true) }

func attrsAt(t *testing.T, b []byte, top bool) string {
	t.Helper()
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for ad.Next() {
		if top && (ad.Type() == cmdAttrService || ad.Type() == cmdAttrDest) {
			parts = append(parts, fmt.Sprintf("%d{%s}", ad.Type(), attrsAt(t, ad.Bytes(), false)))
			continue
		}
		parts = append(parts, fmt.Sprintf("%d=%s", ad.Type(), hex.EncodeToString(ad.Bytes())))
	}
	if err := ad.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(parts, " ")
}

// The requests Apply batches, attribute by attribute (little-endian host):
// AF, protocol, a 4- or 16-byte address and a big-endian port name a
// service; new and updated services add the scheduler, flags with an
// all-ones mask, the timeout and the netmask (network order for IPv4, a
// prefix length for IPv6); destination requests add the destination, and
// all its settings except for a delete.
func TestEncodeOp(t *testing.T) {
	v4 := lb.Service{Key: lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80},
		Scheduler: "wrr", Persistence: 300 * time.Second, PersistenceMask: 24}
	v6 := lb.Service{Key: lb.ServiceKey{Family: lb.IPv6, FWMark: 7}, Scheduler: "sh", SchedFlags: lb.SchedFlag2}
	d := lb.Dest{Addr: netip.MustParseAddr("198.51.100.11"), Port: 8080, Forward: lb.DR, Weight: 3, Upper: 100, Lower: 50}
	d6 := lb.Dest{Addr: netip.MustParseAddr("2001:db8::11"), Port: 443, Forward: lb.Tunnel, Weight: 1}
	sip := lb.Service{Key: lb.ServiceKey{Family: lb.IPv4, Protocol: lb.UDP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 5060},
		Scheduler: "rr", Persistence: time.Minute, PE: "sip"}
	gue := lb.Dest{Addr: netip.MustParseAddr("198.51.100.11"), Port: 8080, Forward: lb.Tunnel, Weight: 1, TunType: lb.GUE, TunPort: 6080, TunCsum: lb.RemCsum}
	for _, tc := range []struct {
		op   lb.Op
		cmd  uint8
		want string
	}{
		{lb.Op{Kind: lb.AddService, Service: v4}, cmdNewService,
			"1{1=0200 2=0600 3=c0000264 4=0050 6=77727200 7=01000000ffffffff 8=2c010000 9=ffffff00}"},
		{lb.Op{Kind: lb.UpdateService, Service: v6}, cmdSetService,
			"1{1=0a00 5=07000000 6=736800 7=10000000ffffffff 8=00000000 9=80000000}"},
		{lb.Op{Kind: lb.DelService, Service: v4}, cmdDelService,
			"1{1=0200 2=0600 3=c0000264 4=0050}"},
		{lb.Op{Kind: lb.AddDest, Service: v4, Dest: d}, cmdNewDest,
			"1{1=0200 2=0600 3=c0000264 4=0050} 2{1=c633640b 2=1f90 3=03000000 4=03000000 5=64000000 6=32000000}"},
		{lb.Op{Kind: lb.UpdateDest, Service: v6, Dest: d6}, cmdSetDest,
			"1{1=0a00 5=07000000} 2{1=20010db8000000000000000000000011 2=01bb 3=02000000 4=01000000 5=00000000 6=00000000}"},
		{lb.Op{Kind: lb.DelDest, Service: v4, Dest: d}, cmdDelDest,
			"1{1=0200 2=0600 3=c0000264 4=0050} 2{1=c633640b 2=1f90}"},
		// PE_NAME (11) "sip\0" after the netmask.
		{lb.Op{Kind: lb.AddService, Service: sip}, cmdNewService,
			"1{1=0200 2=1100 3=c0000264 4=13c4 6=727200 7=01000000ffffffff 8=3c000000 9=ffffffff 11=73697000}"},
		// gue: TUN_TYPE (13) 1, TUN_PORT (14) 6080 big-endian, TUN_FLAGS
		// (15) remcsum 2.
		{lb.Op{Kind: lb.AddDest, Service: v4, Dest: gue}, cmdNewDest,
			"1{1=0200 2=0600 3=c0000264 4=0050} 2{1=c633640b 2=1f90 3=02000000 4=01000000 5=00000000 6=00000000 13=01 14=17c0 15=0200}"},
		// An IPv6 destination of an IPv4 service: ADDR_FAMILY (11)
		// AF_INET6, on a delete too (the kernel looks it up by family).
		{lb.Op{Kind: lb.DelDest, Service: v4, Dest: d6}, cmdDelDest,
			"1{1=0200 2=0600 3=c0000264 4=0050} 2{1=20010db8000000000000000000000011 2=01bb 11=0a00}"},
	} {
		cmd, b, err := encodeOp(nil, tc.op)
		if err != nil {
			t.Fatalf("%s: %v", tc.op, err)
		}
		if got := showAttrs(t, b); cmd != tc.cmd || got != tc.want {
			t.Errorf("%s:\n got cmd %d %s\nwant cmd %d %s", tc.op, cmd, got, tc.cmd, tc.want)
		}
		// The service and destination are nested attributes, flagged
		// NLA_F_NESTED as the kernel's strict validation expects.
		for at := 0; at+4 <= len(b); {
			n, typ := binary.NativeEndian.Uint16(b[at:]), binary.NativeEndian.Uint16(b[at+2:])
			if typ&nlaNested == 0 {
				t.Errorf("%s: top-level attribute %d not flagged nested", tc.op, typ)
			}
			at += (int(n) + 3) &^ 3
		}
		// Appending keeps what the buffer held.
		if _, b2, _ := encodeOp([]byte("pre"), tc.op); string(b2[:3]) != "pre" || string(b2[3:]) != string(b) {
			t.Errorf("%s: appended to a buffer, the result differs", tc.op)
		}
	}
	if _, _, err := encodeOp(nil, lb.Op{Kind: lb.AddDest, Service: v4, Dest: lb.Dest{Addr: d.Addr, Port: 1, Weight: 70000}}); err == nil {
		t.Error("weight 70000 encoded")
	}
}

// BenchmarkEncodeAddDest is the encoding of one add-dest request, of which
// a cold start of 1,000 × 10 sends 10,000.
func BenchmarkEncodeAddDest(b *testing.B) {
	op := lb.Op{Kind: lb.AddDest,
		Service: lb.Service{Key: lb.ServiceKey{Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 80}, Scheduler: "wrr"},
		Dest:    lb.Dest{Addr: netip.MustParseAddr("198.51.100.1"), Port: 8080, Forward: lb.NAT, Weight: 3}}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if _, buf, err = encodeOp(buf[:0], op); err != nil {
			b.Fatal(err)
		}
	}
}
