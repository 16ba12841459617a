package fault

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"vigil/node"
	"vigil/test/netlab"
	"vigil/vrrp"
)

// These tests need no privileges: they check the checker's judgement and the attack packets on
// synthetic input, so that a checker that cannot fail, or a "bad checksum" flood that carries a
// good checksum, is caught here rather than trusted in the namespace runs.

var (
	macN1     = net.HardwareAddr{2, 0, 0, 0, 0, 0x11}
	macN2     = net.HardwareAddr{2, 0, 0, 0, 0, 0x12}
	testVIP   = netip.MustParseAddr("192.0.2.100")
	testGroup = Group{VRID: 51, Version: 3, Interval: 100 * time.Millisecond, LowestPriority: 100, VIPs: []netip.Addr{testVIP}}
)

func arpFrame(at time.Time, mac net.HardwareAddr, sender netip.Addr) netlab.Frame {
	f := make([]byte, 14+28)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac)
	f[12], f[13] = 0x08, 0x06
	p := f[14:]
	p[1], p[2], p[4], p[5], p[7] = 1, 0x08, 6, 4, 1 // Ethernet, IPv4, request
	copy(p[8:14], mac)
	copy(p[14:18], sender.AsSlice())
	copy(p[24:28], sender.AsSlice())
	return netlab.Frame{Time: at, Data: f}
}

func naFrame(at time.Time, mac net.HardwareAddr, target netip.Addr) netlab.Frame {
	f := make([]byte, 14+40+24)
	copy(f[0:6], []byte{0x33, 0x33, 0, 0, 0, 1})
	copy(f[6:12], mac)
	f[12], f[13] = 0x86, 0xdd
	p := f[14:]
	p[0] = 6 << 4
	p[5] = 24
	p[6], p[7] = protoICMPv6, 255
	p[40] = icmpv6NA
	copy(p[48:64], target.AsSlice())
	return netlab.Frame{Time: at, Data: f}
}

func TestAnnouncements(t *testing.T) {
	t0 := time.Unix(1000, 0)
	v6 := netip.MustParseAddr("2001:db8::100")
	frames := []netlab.Frame{arpFrame(t0, macN1, testVIP), {Time: t0, Data: []byte{1, 2, 3}}, naFrame(t0, macN2, v6)}
	got := Announcements(frames)
	if len(got) != 2 || got[0].Addr != testVIP || got[0].NA || got[0].SrcMAC.String() != macN1.String() ||
		got[1].Addr != v6 || !got[1].NA || got[1].SrcMAC.String() != macN2.String() {
		t.Fatalf("Announcements = %+v", got)
	}
}

func advertAt(at time.Time, mac net.HardwareAddr, prio int) netlab.VRRPFrame {
	return netlab.VRRPFrame{Time: at, SrcMAC: mac, Src: netip.MustParseAddr("192.0.2.11"), Version: 3, Type: 1, VRID: 51, Priority: prio}
}

func TestJudgeWire(t *testing.T) {
	heal := time.Unix(1000, 0)
	ms := func(n int) time.Time { return heal.Add(time.Duration(n) * time.Millisecond) }
	names := map[string]string{macN1.String(): "n1", macN2.String(): "n2"}
	base := func() wireCase {
		wc := wireCase{Group: testGroup, Heal: heal, Master: "n1", HoldFrom: ms(400), End: ms(1000), Names: names}
		// n2 was master until 300 ms after the heal; n1 from 350 ms on, announcing at 360 ms.
		for at := -500; at <= 300; at += 100 {
			wc.Adverts = append(wc.Adverts, advertAt(ms(at), macN2, 100))
		}
		for at := 350; at <= 1000; at += 100 {
			wc.Adverts = append(wc.Adverts, advertAt(ms(at), macN1, 150))
		}
		wc.Anns = []Announcement{{Time: ms(360), SrcMAC: macN1, Addr: testVIP}, {Time: ms(-400), SrcMAC: macN2, Addr: testVIP}}
		return wc
	}
	gr, errs := judgeWire(base())
	if len(errs) != 0 || gr.WireOne != 300*time.Millisecond || gr.HoldAdverts != 6 || gr.Announcements != 1 || len(gr.Stray) != 0 ||
		gr.MasterFirst != 350*time.Millisecond || gr.Silence != 100*time.Millisecond {
		t.Fatalf("clean case: %+v %v", gr, errs)
	}

	// A delayed burst from n2 a second after it released the address is stray.
	wc := base()
	wc.Anns = append(wc.Anns, Announcement{Time: ms(1300), SrcMAC: macN2, Addr: testVIP})
	if gr, errs := judgeWire(wc); len(gr.Stray) != 1 || !strings.Contains(errors.Join(errs...).Error(), "stray") {
		t.Fatalf("stray GARP not reported: %+v %v", gr, errs)
	}
	// An announcement from a MAC that is no member's is stray too.
	wc = base()
	wc.Anns = append(wc.Anns, Announcement{Time: ms(500), SrcMAC: net.HardwareAddr{2, 9, 9, 9, 9, 9}, Addr: testVIP})
	if gr, _ := judgeWire(wc); len(gr.Stray) != 1 {
		t.Fatalf("unknown sender not reported: %+v", gr)
	}
	// n2 advertising past the bound (2 × 360.9 ms), during the hold: two masters.
	wc = base()
	wc.Adverts = append(wc.Adverts, advertAt(ms(800), macN2, 100))
	if gr, errs := judgeWire(wc); gr.WireOne != 800*time.Millisecond || len(errs) != 2 {
		t.Fatalf("late second master: %+v %v", gr, errs)
	}
	// A priority-0 advert is a resignation, not a master.
	wc = base()
	wc.Adverts = append(wc.Adverts, advertAt(ms(800), macN2, 0))
	if _, errs := judgeWire(wc); len(errs) != 0 {
		t.Fatalf("priority 0 counted as a master: %v", errs)
	}
	// A master that went quiet while its state held.
	wc = base()
	wc.Adverts = wc.Adverts[:len(wc.Adverts)-6]
	if _, errs := judgeWire(wc); len(errs) != 1 || !strings.Contains(errs[0].Error(), "sent 0 adverts") {
		t.Fatalf("silent master: %v", errs)
	}
}

func TestJudgeState(t *testing.T) {
	st := func(state string) *node.Status {
		return &node.Status{Instances: []node.InstanceStatus{{VRID: 51, Family: "ipv4", State: state}}}
	}
	other := netip.MustParseAddr("192.0.2.11")
	for _, tc := range []struct {
		name   string
		views  []nodeView
		master string
	}{
		{"one master", []nodeView{
			{name: "n1", admin: true, status: st("master"), addrs: []netip.Addr{other, testVIP}},
			{name: "n2", admin: true, status: st("backup")},
		}, "n1"},
		{"two masters", []nodeView{
			{name: "n1", admin: true, status: st("master"), addrs: []netip.Addr{testVIP}},
			{name: "n2", admin: true, status: st("master")},
		}, ""},
		{"VIP on the backup", []nodeView{
			{name: "n1", admin: true, status: st("master"), addrs: []netip.Addr{testVIP}},
			{name: "n2", admin: true, status: st("backup"), addrs: []netip.Addr{testVIP}},
		}, ""},
		{"master without its VIP", []nodeView{
			{name: "n1", admin: true, status: st("master")},
			{name: "n2", admin: true, status: st("backup")},
		}, ""},
		{"status unreadable", []nodeView{
			{name: "n1", admin: true, status: st("master"), addrs: []netip.Addr{testVIP}},
			{name: "n2", admin: true, statusErr: errors.New("refused")},
		}, ""},
		{"no admin socket: the holder", []nodeView{{name: "k1", addrs: []netip.Addr{testVIP}}, {name: "k2"}}, "k1"},
		{"no admin socket: two holders", []nodeView{{name: "k1", addrs: []netip.Addr{testVIP}}, {name: "k2", addrs: []netip.Addr{testVIP}}}, ""},
	} {
		m, why := judgeState(testGroup, tc.views)
		if m != tc.master || (m == "") == (why == "") {
			t.Errorf("%s: master %q, problem %q", tc.name, m, why)
		}
	}
}

// Each class's frame is what it says: decoded by the VRRP codec, the packet-level classes fail
// with their reason, the rest pass the codec (the instance's checks reject them) and differ from
// a good advert only where the class says.
func TestClassesFrames(t *testing.T) {
	tg := &Target{
		Attacker: net.HardwareAddr{2, 0, 0, 0, 0, 0x99},
		Nodes: []TargetNode{{Addr: netip.MustParseAddr("192.0.2.11"), MAC: macN1},
			{Addr: netip.MustParseAddr("192.0.2.12"), MAC: macN2}},
		V3:      TargetInstance{VRID: 51, Interval: 100 * time.Millisecond, VIP: testVIP},
		V2:      TargetInstance{VRID: 52, Interval: time.Second, VIP: netip.MustParseAddr("192.0.2.101")},
		V2Pass:  "s3cret",
		Unicast: TargetInstance{VRID: 53, Interval: 100 * time.Millisecond, VIP: netip.MustParseAddr("192.0.2.102")},
	}
	want := map[string]vrrp.Reason{
		"checksum": vrrp.ReasonChecksum, "ttl": vrrp.ReasonTTL, "version": vrrp.ReasonVersion,
		"length": vrrp.ReasonLength, "invalid_type": vrrp.ReasonType, "address_count": vrrp.ReasonLength,
		"interval_zero": vrrp.ReasonIntervalZero,
		// The codec passes these; the receiving instance (or the VRID lookup) rejects them.
		"vrid": vrrp.ReasonNone, "auth_failure": vrrp.ReasonNone, "advert_interval": vrrp.ReasonNone,
		"unknown_peer": vrrp.ReasonNone, "own_address": vrrp.ReasonNone, "lower_priority": vrrp.ReasonNone,
	}
	classes := Classes()
	if len(classes) != len(want) {
		t.Fatalf("%d classes, the test knows %d", len(classes), len(want))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range classes {
		for i := range 4 {
			f := c.Frame(tg, i, rng)
			vf := netlab.VRRPFrames([]netlab.Frame{{Data: f}})
			if len(vf) != 1 {
				t.Fatalf("%s: frame %d is not a VRRP frame: %x", c.Name, i, f)
			}
			v := vf[0]
			if ipHeaderSum(f[14:34]) != 0xffff {
				t.Errorf("%s: bad IPv4 header checksum", c.Name)
			}
			d, err := vrrp.Decode(v.Payload, vrrp.RxInfo{Src: v.Src, Dst: v.Dst, TTL: v.TTL}, vrrp.ChecksumPseudoHeader)
			var rxe *vrrp.RxError
			got := vrrp.ReasonNone
			if errors.As(err, &rxe) {
				got = rxe.Reason
			} else if err != nil {
				t.Fatalf("%s: %v", c.Name, err)
			}
			if got != want[c.Name] {
				t.Errorf("%s: codec says %v (%v), want %v", c.Name, got, err, want[c.Name])
				continue
			}
			wantPrio := int(attackPriority(i))
			if c.Valid {
				wantPrio = 1
			}
			if v.Priority != wantPrio {
				t.Errorf("%s: frame %d priority %d, want %d", c.Name, i, v.Priority, wantPrio)
			}
			if err != nil {
				continue
			}
			switch c.Name {
			case "vrid":
				if d.Advert.VRID != 99 {
					t.Errorf("vrid: VRID %d", d.Advert.VRID)
				}
			case "auth_failure", "advert_interval":
				pass := string(d.Advert.AuthData[:len(tg.V2Pass)])
				if d.Advert.Version != 2 || d.Advert.VRID != 52 || (c.Name == "auth_failure") == (pass == tg.V2Pass) ||
					(c.Name == "advert_interval") != (d.Advert.Interval == 2*time.Second) {
					t.Errorf("%s: %+v", c.Name, d.Advert)
				}
			case "unknown_peer":
				if v.Dst != tg.Nodes[(i/2)%2].Addr || v.Src == tg.Nodes[0].Addr || v.Src == tg.Nodes[1].Addr || d.Advert.VRID != 53 {
					t.Errorf("unknown_peer: %s -> %s VRID %d", v.Src, v.Dst, d.Advert.VRID)
				}
			case "own_address":
				if n := tg.Nodes[(i/2)%2]; v.Src != n.Addr || v.DstMAC.String() != n.MAC.String() || v.Dst != vrrp.GroupIPv4 {
					t.Errorf("own_address: %s -> %s via %s", v.Src, v.Dst, v.DstMAC)
				}
			}
		}
	}
}

func ipHeaderSum(h []byte) uint16 { return fold16(sum16(h)) }
