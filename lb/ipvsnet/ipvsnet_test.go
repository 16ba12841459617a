package ipvsnet

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/moby/ipvs"

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

// TestServiceConversion round-trips services through the kernel form and
// pins the encodings the kernel and moby/ipvs disagree on.
func TestServiceConversion(t *testing.T) {
	for _, tc := range []struct {
		name        string
		s           lb.Service
		wantFlags   uint32
		wantNetmask [4]byte // as moby/ipvs will put it on the wire
		wantTimeout uint32
	}{
		{"plain", lb.Service{Key: lb.ServiceKey{Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 80}, Scheduler: "rr"},
			0, [4]byte{255, 255, 255, 255}, 0},
		{"persistent /24, one-packet, sh flags", lb.Service{Key: lb.ServiceKey{Protocol: lb.UDP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 53},
			Scheduler: "sh", SchedFlags: lb.SchedFlag1 | lb.SchedFlag2, Persistence: 300 * time.Second, PersistenceMask: 24, OnePacket: true},
			0x1 | 0x4 | 0x8 | 0x10, [4]byte{255, 255, 255, 0}, 300},
		{"ipv6 persistent /64", lb.Service{Key: lb.ServiceKey{Protocol: lb.TCP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 443},
			Scheduler: "wlc", Persistence: time.Minute, PersistenceMask: 64}, 0x1, [4]byte{}, 60},
		{"fwmark ipv6", lb.Service{Key: lb.ServiceKey{Family: lb.IPv6, FWMark: 9}, Scheduler: "mh", SchedFlags: lb.SchedFlag2}, 0x10, [4]byte{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := toService(tc.s)
			if err != nil {
				t.Fatal(err)
			}
			if ks.Flags != tc.wantFlags || ks.Timeout != tc.wantTimeout {
				t.Errorf("flags %#x timeout %d, want %#x %d", ks.Flags, ks.Timeout, tc.wantFlags, tc.wantTimeout)
			}
			if tc.s.Key.Family == lb.IPv6 || tc.s.Key.Addr.Is6() {
				want := uint32(128)
				if tc.s.PersistenceMask != 0 {
					want = uint32(tc.s.PersistenceMask)
				}
				if ks.Netmask != want {
					t.Errorf("IPv6 netmask %d, want prefix length %d", ks.Netmask, want)
				}
			} else {
				var wire [4]byte
				// moby/ipvs writes Netmask in native byte order.
				binary.NativeEndian.PutUint32(wire[:], ks.Netmask)
				if wire != tc.wantNetmask {
					t.Errorf("netmask on the wire %v, want %v", wire, tc.wantNetmask)
				}
			}
			// The kernel adds HASHED and returns IPv4 in 4 bytes.
			dumped := *ks
			dumped.Flags |= svcHashed
			if dumped.Address != nil {
				dumped.Address = net.IP(dumped.Address).To16()
			}
			back, err := fromService(&dumped)
			if err != nil {
				t.Fatal(err)
			}
			if back != tc.s.Normal() {
				t.Errorf("round trip:\n got  %+v\n want %+v", back, tc.s.Normal())
			}
		})
	}
}

func TestDestConversion(t *testing.T) {
	for _, f := range []lb.Forward{lb.NAT, lb.DR, lb.Tunnel, lb.Local} {
		d := lb.Dest{Addr: netip.MustParseAddr("198.51.100.1"), Port: 8080, Forward: f, Weight: 65535, Upper: 100, Lower: 10}
		kd, err := toDest(lb.IPv4, d)
		if err != nil {
			t.Fatal(err)
		}
		kd.Address = kd.Address.To16()
		back, err := fromDest(kd)
		if err != nil || back != d {
			t.Errorf("%s: round trip %+v, %v; want %+v", f, back, err, d)
		}
	}
	if _, err := toDest(lb.IPv4, lb.Dest{Addr: netip.MustParseAddr("198.51.100.1"), Weight: 65536}); err == nil {
		t.Error("weight 65536 accepted; a dump would read it back as 0")
	}
	if kd, _ := toDest(lb.IPv4, lb.Dest{Addr: netip.MustParseAddr("198.51.100.1"), Forward: lb.DR}); kd.ConnectionFlags != ipvs.ConnectionFlagDirectRoute {
		t.Errorf("DR as %#x", kd.ConnectionFlags)
	}
	if _, err := fromService(&ipvs.Service{AddressFamily: syscall.AF_UNIX}); err == nil {
		t.Error("a service of family AF_UNIX was accepted")
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
