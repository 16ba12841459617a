package nslab

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
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
)

// Tests in this file need no privileges.

// goldenDir finds the keepalived golden captures: the repository's copy, or shared/ beside the
// clone.
func goldenDir(t *testing.T) string {
	t.Helper()
	for _, d := range []string{
		os.Getenv("VIGIL_KEEPALIVED_PCAPS"),
		filepath.Join("..", "..", "vrrp", "testdata", "keepalived-pcaps"),
		filepath.Join("..", "..", "..", "shared", "testdata", "keepalived-pcaps"),
	} {
		if d == "" {
			continue
		}
		if m, _ := filepath.Glob(filepath.Join(d, "*.pcap")); len(m) > 0 {
			return d
		}
	}
	t.Fatal("keepalived golden captures not found (vrrp/testdata/keepalived-pcaps or ../shared/testdata/keepalived-pcaps; or set VIGIL_KEEPALIVED_PCAPS)")
	return ""
}

func TestGoldenKeepalivedPcaps(t *testing.T) {
	dir := goldenDir(t)
	n1v4, n2v4 := netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("192.0.2.12")
	cases := []struct {
		file       string
		version    int
		v6         bool
		unicast    bool
		payloadLen int
	}{
		{"v2-ipv4.pcap", 2, false, false, 20},
		{"v2-ipv4-authpass.pcap", 2, false, false, 20},
		{"v3-ipv4.pcap", 3, false, false, 12},
		{"v3-ipv6.pcap", 3, true, false, 24},
		{"v3-ipv4-unicast.pcap", 3, false, true, 12},
	}
	wantPrio := []int{150, 150, 150, 0, 100, 100, 100, 0}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			frames, err := ReadPcap(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			vf := VRRPFrames(frames)
			if len(frames) <= len(vf) {
				t.Errorf("%d frames, %d VRRP: want other traffic (RS, ARP/NA) too", len(frames), len(vf))
			}
			var prios []int
			for _, f := range vf {
				prios = append(prios, f.Priority)
			}
			if !slices.Equal(prios, wantPrio) {
				t.Fatalf("priorities %v, want %v", prios, wantPrio)
			}
			for i, f := range vf {
				if f.Version != tc.version || f.Type != 1 || f.VRID != 51 || f.TTL != 255 || f.CountAddrs != 1 || f.Interval != time.Second {
					t.Errorf("advert %d: version %d type %d vrid %d ttl %d count %d interval %v; want %d 1 51 255 1 1s",
						i, f.Version, f.Type, f.VRID, f.TTL, f.CountAddrs, f.Interval, tc.version)
				}
				if len(f.Payload) != tc.payloadLen {
					t.Errorf("advert %d: payload %d bytes, want %d (no Ethernet padding)", i, len(f.Payload), tc.payloadLen)
				}
				if f.Payload[0]>>4 != byte(tc.version) || f.Payload[1] != 51 {
					t.Errorf("advert %d: payload starts % x", i, f.Payload[:4])
				}
				if f.Time.IsZero() || (i > 0 && f.Time.Before(vf[i-1].Time)) {
					t.Errorf("advert %d: time %v not after %v", i, f.Time, vf[i-1].Time)
				}
				// Same node, same MAC and source address, for the first and the second half.
				first := vf[(i/4)*4]
				if !bytes.Equal(f.SrcMAC, first.SrcMAC) || f.Src != first.Src {
					t.Errorf("advert %d: from %v %v, want %v %v like advert %d", i, f.SrcMAC, f.Src, first.SrcMAC, first.Src, (i/4)*4)
				}
				switch {
				case tc.v6:
					if !f.Src.Is6() || !f.Src.IsLinkLocalUnicast() || f.Dst != netip.MustParseAddr("ff02::12") ||
						f.DstMAC.String() != "33:33:00:00:00:12" {
						t.Errorf("advert %d: %v (%v) -> %v (%v), want link-local -> ff02::12", i, f.Src, f.SrcMAC, f.Dst, f.DstMAC)
					}
				case tc.unicast:
					src, dst := n1v4, n2v4
					if i >= 4 {
						src, dst = dst, src
					}
					if f.Src != src || f.Dst != dst {
						t.Errorf("advert %d: %v -> %v, want %v -> %v", i, f.Src, f.Dst, src, dst)
					}
				default:
					src := n1v4
					if i >= 4 {
						src = n2v4
					}
					if f.Src != src || f.Dst != netip.MustParseAddr("224.0.0.18") || f.DstMAC.String() != "01:00:5e:00:00:12" {
						t.Errorf("advert %d: %v -> %v (%v), want %v -> 224.0.0.18", i, f.Src, f.Dst, f.DstMAC, src)
					}
				}
			}
			if vf[0].Src == vf[4].Src || bytes.Equal(vf[0].SrcMAC, vf[4].SrcMAC) {
				t.Errorf("adverts 0 and 4 come from the same node %v %v", vf[0].Src, vf[0].SrcMAC)
			}
			// Kernel timestamps with sub-millisecond precision: the master's adverts are about
			// 1 s apart, and the capture was taken in 2026.
			if gap := vf[1].Time.Sub(vf[0].Time); gap < 900*time.Millisecond || gap > 1100*time.Millisecond {
				t.Errorf("gap between the first adverts %v, want about 1s", gap)
			}
			if vf[0].Time.Nanosecond()%int(time.Millisecond) == 0 {
				t.Errorf("timestamp %v has no sub-millisecond part", vf[0].Time)
			}
			if y := vf[0].Time.UTC().Year(); y < 2025 {
				t.Errorf("timestamp %v: year %d", vf[0].Time, y)
			}
		})
	}
}

func goldenFrames(t *testing.T, file string) []Frame {
	t.Helper()
	frames, err := ReadPcap(filepath.Join(goldenDir(t), file))
	if err != nil {
		t.Fatal(err)
	}
	return frames
}

func TestReadPcapErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadPcap(filepath.Join(dir, "missing.pcap")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err %v, want not-exist", err)
	}
	garbage := filepath.Join(dir, "garbage.pcap")
	if err := os.WriteFile(garbage, []byte("this is not a capture file at all, no"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPcap(garbage); err == nil || !strings.Contains(err.Error(), "garbage.pcap") {
		t.Errorf("garbage file: err %v, want an error naming the file", err)
	}
	empty := filepath.Join(dir, "empty.pcap")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPcap(empty); err == nil {
		t.Error("empty file: no error")
	}
	if f, err := readPcapFile(empty, true); err != nil || len(f) != 0 {
		t.Errorf("empty file while capturing: %d frames, err %v; want none, nil", len(f), err)
	}

	// A file cut in the middle of a record: an error when reading a finished file, the whole
	// records while a capture is being written.
	whole, err := os.ReadFile(filepath.Join(goldenDir(t), "v3-ipv4.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	all, err := readPcap(bytes.NewReader(whole), false)
	if err != nil {
		t.Fatal(err)
	}
	cut := whole[:len(whole)-10]
	if _, err := readPcap(bytes.NewReader(cut), false); err == nil {
		t.Error("truncated file: no error")
	}
	got, err := readPcap(bytes.NewReader(cut), true)
	if err != nil || len(got) != len(all)-1 {
		t.Errorf("truncated file while capturing: %d frames, err %v; want %d, nil", len(got), err, len(all)-1)
	}

	// Another link type is refused.
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeRaw); err != nil {
		t.Fatal(err)
	}
	if _, err := readPcap(&buf, false); err == nil || !strings.Contains(err.Error(), "link type") {
		t.Errorf("raw link type: err %v, want a link type error", err)
	}
}

// pcapng is not supported: reading one says so, also while "capturing".
func TestReadPcapNg(t *testing.T) {
	frames := goldenFrames(t, "v3-ipv6.pcap")
	path := filepath.Join(t.TempDir(), "x.pcapng")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcapgo.NewNgWriter(f, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for _, fr := range frames {
		ci := gopacket.CaptureInfo{Timestamp: fr.Time, CaptureLength: len(fr.Data), Length: len(fr.Data)}
		if err := w.WritePacket(ci, fr.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tolerant := range []bool{false, true} {
		got, err := readPcapFile(path, tolerant)
		if err == nil || !strings.Contains(err.Error(), "pcapng") || !strings.Contains(err.Error(), "x.pcapng") || len(got) != 0 {
			t.Errorf("tolerant %v: %d frames, err %v; want a pcapng error naming the file", tolerant, len(got), err)
		}
	}
}

func TestVRRPFramesRobust(t *testing.T) {
	for _, file := range []string{"v2-ipv4.pcap", "v3-ipv6.pcap"} {
		frames := goldenFrames(t, file)
		vf := VRRPFrames(frames)
		// Every prefix of every frame: no panic, and nothing decoded from a frame too short to
		// hold the IP header and a VRRP header.
		for _, f := range frames {
			for n := 0; n < len(f.Data); n++ {
				got := VRRPFrames([]Frame{{Time: f.Time, Data: f.Data[:n]}})
				for _, g := range got {
					if len(g.Payload) < 8 {
						t.Fatalf("%s: decoded a %d-byte VRRP message from a %d-byte frame", file, len(g.Payload), n)
					}
				}
			}
		}
		// An 802.1Q tag in front of the IP header.
		orig := vf[0]
		var src Frame
		for _, f := range frames {
			if f.Time.Equal(orig.Time) {
				src = f
			}
		}
		tagged := slices.Concat(src.Data[:12], []byte{0x81, 0x00, 0x00, 0x07}, src.Data[12:])
		got := VRRPFrames([]Frame{{Time: src.Time, Data: tagged}})
		if len(got) != 1 || got[0].VRID != orig.VRID || got[0].Src != orig.Src || !bytes.Equal(got[0].Payload, orig.Payload) {
			t.Errorf("%s: VLAN-tagged advert decoded as %+v, want %+v", file, got, orig)
		}
	}

	// Not VRRP: an IPv4 UDP packet.
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{192, 0, 2, 1}, DstIP: net.IP{192, 0, 2, 2}}
	udp := &layers.UDP{SrcPort: 1, DstPort: 2}
	if err := udp.SetNetworkLayerForChecksum(ip4); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip4, udp, gopacket.Payload(make([]byte, 20))); err != nil {
		t.Fatal(err)
	}
	if got := VRRPFrames([]Frame{{Data: buf.Bytes()}}); len(got) != 0 {
		t.Errorf("UDP frame decoded as VRRP: %+v", got)
	}

	// A non-first fragment of protocol 112 is not a VRRP message.
	ip4 = &layers.IPv4{Version: 4, TTL: 255, Protocol: ProtoVRRP, FragOffset: 8, SrcIP: net.IP{192, 0, 2, 1}, DstIP: net.IP{224, 0, 0, 18}}
	buf = gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, opts, eth, ip4, gopacket.Payload(make([]byte, 20))); err != nil {
		t.Fatal(err)
	}
	if got := VRRPFrames([]Frame{{Data: buf.Bytes()}}); len(got) != 0 {
		t.Errorf("fragment decoded as VRRP: %+v", got)
	}

	// A v3 advert with a 10 ms interval.
	msg := []byte{0x31, 7, 200, 1, 0, 1, 0, 0, 192, 0, 2, 100}
	ip4 = &layers.IPv4{Version: 4, TTL: 255, Protocol: ProtoVRRP, SrcIP: net.IP{192, 0, 2, 1}, DstIP: net.IP{224, 0, 0, 18}}
	buf = gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, opts, eth, ip4, gopacket.Payload(msg)); err != nil {
		t.Fatal(err)
	}
	got := VRRPFrames([]Frame{{Data: buf.Bytes()}})
	if len(got) != 1 || got[0].Interval != 10*time.Millisecond || got[0].VRID != 7 || got[0].Priority != 200 ||
		!bytes.Equal(got[0].Payload, msg) || binary.BigEndian.Uint16(got[0].Payload[4:6]) != 1 {
		t.Errorf("v3 advert decoded as %+v", got)
	}
}

func TestValidation(t *testing.T) {
	for _, p := range []string{"", "a", "Vg1", "1vg", "vg-1", "vgabcdefghij", "vg 1"} {
		if _, err := New(p); err == nil {
			t.Errorf("New(%q): no error", p)
		}
		if err := Cleanup(p); err == nil {
			t.Errorf("Cleanup(%q): no error", p)
		}
	}
	// Node names and addresses are checked before anything is created.
	l := &Lab{Prefix: "vgval", SwitchNS: "vgvalsw", nodes: map[string]*Node{}}
	for _, name := range []string{"", "sw", "br0", "lo", "Node", "1n", "n-1", "abcdefghijklmnop"} {
		if _, err := l.AddNode(name); err == nil {
			t.Errorf("AddNode(%q): no error", name)
		}
	}
	for _, a := range []string{"10.0.0.1/8", "192.168.1.1/24", "2001:db9::1/64", "::ffff:192.0.2.1/120", "8.8.8.8/32"} {
		if _, err := l.AddNode("n", netip.MustParsePrefix(a)); err == nil || !strings.Contains(err.Error(), "documentation") && !strings.Contains(err.Error(), "IPv4") {
			t.Errorf("AddNode with %s: err %v, want a documentation-range error", a, err)
		}
	}
	if _, err := l.AddNode("n", netip.Prefix{}); err == nil {
		t.Error("AddNode with an invalid prefix: no error")
	}
	if _, err := l.AddNodeConfig(NodeConfig{Name: "n", MAC: net.HardwareAddr{1, 0, 0, 0, 0, 1}}); err == nil {
		t.Error("AddNode with a multicast MAC: no error")
	}
	for _, dev := range []string{"lo", "Eth0", "0eth", "eth-0", "eth0.1", "abcdefghijklmnop"} {
		if _, err := l.AddNodeConfig(NodeConfig{Name: "n", Dev: dev}); err == nil || !strings.Contains(err.Error(), "interface name") {
			t.Errorf("AddNodeConfig with Dev %q: err %v, want an interface-name error", dev, err)
		}
	}
	for _, a := range []string{"192.0.2.1/24", "198.51.100.7/24", "203.0.113.9/32", "2001:db8::1/64", "fe80::1/64"} {
		if err := checkPrefix(netip.MustParsePrefix(a)); err != nil {
			t.Errorf("checkPrefix(%s): %v", a, err)
		}
	}
	if len(l.Nodes()) != 0 {
		t.Errorf("nodes after failed AddNode: %v", l.Nodes())
	}
}

func TestExecCmdStdoutOnly(t *testing.T) {
	script := "echo out; echo err >&2"
	if out, err := execCmd(context.Background(), nil, true, "sh", "-c", script); err != nil || string(out) != "out\n" {
		t.Errorf("stdout only: %q, %v; want \"out\\n\"", out, err)
	}
	if out, err := runCmd(context.Background(), nil, "sh", "-c", script); err != nil || string(out) != "out\nerr\n" {
		t.Errorf("combined: %q, %v; want \"out\\nerr\\n\"", out, err)
	}
	// A failure reports stderr too.
	_, err := execCmd(context.Background(), nil, true, "sh", "-c", script+"; exit 3")
	var ce *CmdError
	if !errors.As(err, &ce) || string(ce.Output) != "out\nerr\n" || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("failure: %v, want a *CmdError with both outputs and the status", err)
	}
}
