package nslab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// The pcap reader and the VRRP decoder against gopacket, which netlab used before (its tests may
// still: the package itself must not, to keep gopacket out of the vigil binary). No privileges.

// gopacketReadPcap reads a classic pcap file with pcapgo.
func gopacketReadPcap(t *testing.T, data []byte) []Frame {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("pcapgo: %v", err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("pcapgo: link type %v", r.LinkType())
	}
	var frames []Frame
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return frames
		}
		if err != nil {
			t.Fatalf("pcapgo: record %d: %v", len(frames)+1, err)
		}
		frames = append(frames, Frame{Time: ci.Timestamp, Data: data})
	}
}

// gopacketVRRPFrames is VRRPFrames as it was written with gopacket's layers.
func gopacketVRRPFrames(frames []Frame) []VRRPFrame {
	var (
		eth     layers.Ethernet
		dot1q   layers.Dot1Q
		ip4     layers.IPv4
		ip6     layers.IPv6
		decoded []gopacket.LayerType
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &dot1q, &ip4, &ip6)
	parser.IgnoreUnsupported = true
	var out []VRRPFrame
	for _, f := range frames {
		decoded = decoded[:0]
		if err := parser.DecodeLayers(f.Data, &decoded); err != nil {
			continue // truncated or malformed
		}
		v := VRRPFrame{Time: f.Time}
		var payload []byte
		for _, lt := range decoded {
			switch lt {
			case layers.LayerTypeEthernet:
				v.SrcMAC = append(net.HardwareAddr(nil), eth.SrcMAC...)
				v.DstMAC = append(net.HardwareAddr(nil), eth.DstMAC...)
			case layers.LayerTypeIPv4:
				if ip4.Protocol != ProtoVRRP || ip4.FragOffset != 0 || ip4.Flags&layers.IPv4MoreFragments != 0 {
					continue
				}
				v.Src, _ = netip.AddrFromSlice(ip4.SrcIP)
				v.Dst, _ = netip.AddrFromSlice(ip4.DstIP)
				v.TTL = int(ip4.TTL)
				payload = ip4.Payload
			case layers.LayerTypeIPv6:
				if ip6.NextHeader != ProtoVRRP {
					continue
				}
				v.Src, _ = netip.AddrFromSlice(ip6.SrcIP)
				v.Dst, _ = netip.AddrFromSlice(ip6.DstIP)
				v.TTL = int(ip6.HopLimit)
				payload = ip6.Payload
			}
		}
		if len(payload) < 8 || !v.Src.IsValid() || !v.Dst.IsValid() {
			continue
		}
		v.Src, v.Dst = v.Src.Unmap(), v.Dst.Unmap()
		v.setPayload(payload) // the field layout is not what this test compares
		out = append(out, v)
	}
	return out
}

// sameFrames fails unless got and want hold the same frames: timestamps (in UTC) and bytes.
func sameFrames(t *testing.T, what string, got, want []Frame) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d frames, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !got[i].Time.Equal(want[i].Time) || got[i].Time.Location() != time.UTC || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("%s: frame %d: %v % x\\nwant %v % x", what, i, got[i].Time, got[i].Data, want[i].Time, want[i].Data)
		}
	}
}

// sameVRRP fails unless VRRPFrames and gopacketVRRPFrames decode frames alike; it returns how
// many VRRP packets they found.
func sameVRRP(t *testing.T, what string, frames []Frame) int {
	t.Helper()
	got, want := VRRPFrames(frames), gopacketVRRPFrames(frames)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: decoded\\n%+v\\ngopacket decodes\\n%+v", what, got, want)
	}
	return len(got)
}

func TestGoldenPcapsLikeGopacket(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir(t), "*.pcap"))
	if err != nil || len(files) == 0 {
		t.Fatalf("golden captures: %v %v", files, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			frames, err := ReadPcap(file)
			if err != nil {
				t.Fatal(err)
			}
			sameFrames(t, "ReadPcap", frames, gopacketReadPcap(t, raw))
			if n := sameVRRP(t, "golden frames", frames); n == 0 {
				t.Fatal("no VRRP packets")
			}

			// The same frames in every byte order and resolution.
			for _, order := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
				for _, nano := range []bool{false, true} {
					what := fmt.Sprintf("%v nano=%v", order, nano)
					data := writePcap(order, nano, linkTypeEthernet, frames)
					got, err := readPcap(bytes.NewReader(data), false)
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					sameFrames(t, what, got, frames)
					sameFrames(t, what+" (pcapgo)", gopacketReadPcap(t, data), frames)
				}
			}

			// Fed a byte at a time, as a file being written grows.
			var p PcapParser
			var fed []Frame
			for i := range raw {
				fs, err := p.Feed(raw[i : i+1])
				if err != nil {
					t.Fatalf("byte %d: %v", i, err)
				}
				fed = append(fed, fs...)
			}
			if err := p.End(); err != nil || p.Pending() != 0 {
				t.Fatalf("end: %v, %d bytes pending", err, p.Pending())
			}
			sameFrames(t, "fed bytewise", fed, frames)

			// Every prefix of every frame (as a small snapshot length cuts them), and every frame
			// behind VLAN tags.
			for i, f := range frames {
				for n := range len(f.Data) {
					sameVRRP(t, fmt.Sprintf("frame %d cut to %d bytes", i, n), []Frame{{Time: f.Time, Data: f.Data[:n]}})
				}
				for _, tags := range [][]uint16{{etherTypeVLAN}, {etherTypeQinQ, etherTypeVLAN}, {etherTypeVLAN, etherTypeVLAN, etherTypeVLAN}} {
					tagged := f.Data[:12:12]
					for j, tpid := range tags {
						tagged = binary.BigEndian.AppendUint16(tagged, tpid)
						tagged = binary.BigEndian.AppendUint16(tagged, uint16(100+j))
					}
					tagged = append(tagged, f.Data[12:]...)
					what := fmt.Sprintf("frame %d tagged %#x", i, tags)
					if sameVRRP(t, what, []Frame{{Time: f.Time, Data: tagged}}) != len(VRRPFrames([]Frame{f})) {
						t.Fatalf("%s: decoded differently from the untagged frame", what)
					}
				}
			}
		})
	}
}

// writePcap writes frames as a classic pcap file, without the reader's help.
func writePcap(order binary.AppendByteOrder, nano bool, linkType uint32, frames []Frame) []byte {
	magic := uint32(pcapMagicMicro)
	if nano {
		magic = pcapMagicNano
	}
	b := order.AppendUint32(nil, magic)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint16(b, 4)
	b = order.AppendUint32(b, 0)      // time zone
	b = order.AppendUint32(b, 0)      // sigfigs
	b = order.AppendUint32(b, 262144) // snapshot length
	b = order.AppendUint32(b, linkType)
	for _, f := range frames {
		frac := f.Time.Nanosecond()
		if !nano {
			frac /= 1000
		}
		b = order.AppendUint32(b, uint32(f.Time.Unix()))
		b = order.AppendUint32(b, uint32(frac))
		b = order.AppendUint32(b, uint32(len(f.Data)))
		b = order.AppendUint32(b, uint32(len(f.Data)))
		b = append(b, f.Data...)
	}
	return b
}

func TestReadPcapFormats(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	frames := []Frame{
		{Time: at, Data: []byte{1, 2, 3}},
		{Time: at.Add(1500 * time.Millisecond), Data: bytes.Repeat([]byte{0xab}, 1514)},
		{Time: at.Add(2 * time.Second), Data: []byte{}},
	}
	for _, order := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, nano := range []bool{false, true} {
			data := writePcap(order, nano, linkTypeEthernet, frames)
			got, err := readPcap(bytes.NewReader(data), false)
			if err != nil {
				t.Fatalf("%v nano=%v: %v", order, nano, err)
			}
			want := slices.Clone(frames)
			for i := range want {
				if !nano {
					want[i].Time = want[i].Time.Truncate(time.Microsecond)
				}
			}
			sameFrames(t, fmt.Sprintf("%v nano=%v", order, nano), got, want)
			if nano && got[0].Time.Nanosecond() != 123456789 {
				t.Errorf("nanosecond file: time %v", got[0].Time)
			}
			// The link type's top 4 bits (a frame check sequence's length) do not matter.
			data = writePcap(order, nano, 0x10000000|linkTypeEthernet, frames)
			if got, err := readPcap(bytes.NewReader(data), false); err != nil || len(got) != len(frames) {
				t.Errorf("%v nano=%v, FCS bits: %d frames, %v", order, nano, len(got), err)
			}
			// Another link type, in either byte order.
			data = writePcap(order, nano, 101, frames)
			if _, err := readPcap(bytes.NewReader(data), true); err == nil || !strings.Contains(err.Error(), "link type 101") {
				t.Errorf("%v nano=%v, raw IP: err %v, want a link type error", order, nano, err)
			}
		}
	}
	// pcapgo's nanosecond writer.
	var buf bytes.Buffer
	w := pcapgo.NewWriterNanos(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: f.Time, CaptureLength: len(f.Data), Length: len(f.Data)}, f.Data); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readPcap(bytes.NewReader(buf.Bytes()), false)
	if err != nil {
		t.Fatal(err)
	}
	sameFrames(t, "pcapgo nanos", got, frames)
}

func TestReadPcapTruncated(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	frames := []Frame{{Time: at, Data: bytes.Repeat([]byte{1}, 60)}, {Time: at.Add(time.Second), Data: bytes.Repeat([]byte{2}, 70)}}
	data := writePcap(binary.LittleEndian, true, linkTypeEthernet, frames)
	first := pcapFileHeaderLen + pcapRecordHeaderLen + 60
	for n := range len(data) + 1 {
		want := 0
		switch {
		case n == len(data):
			want = 2
		case n >= first:
			want = 1
		}
		got, err := readPcap(bytes.NewReader(data[:n]), true)
		if err != nil || len(got) != want {
			t.Errorf("%d bytes while capturing: %d frames, %v; want %d", n, len(got), err, want)
		}
		got, err = readPcap(bytes.NewReader(data[:n]), false)
		switch {
		case n == len(data) || n == first || n == pcapFileHeaderLen:
			if err != nil || len(got) != want {
				t.Errorf("%d bytes: %d frames, %v; want %d", n, len(got), err, want)
			}
		case err == nil:
			t.Errorf("%d bytes, a record or the header cut short: no error", n)
		case n < pcapFileHeaderLen && !strings.Contains(err.Error(), "file header"),
			n > pcapFileHeaderLen && !strings.Contains(err.Error(), "cut short"):
			t.Errorf("%d bytes: err %v", n, err)
		}
	}
}

func TestPcapParserErrors(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	good := writePcap(binary.BigEndian, false, linkTypeEthernet, []Frame{{Time: at, Data: make([]byte, 60)}})

	// A record longer than any snapshot length: corrupt. The frames before it are returned, and
	// the error sticks.
	bad := writePcap(binary.BigEndian, false, linkTypeEthernet, []Frame{{Time: at, Data: make([]byte, 60)}, {Time: at, Data: make([]byte, 10)}})
	binary.BigEndian.PutUint32(bad[len(good)+8:], pcapMaxRecord+1)
	var p PcapParser
	frames, err := p.Feed(bad[:len(good)+pcapRecordHeaderLen])
	if len(frames) != 1 || err == nil || !strings.Contains(err.Error(), "record 2") {
		t.Errorf("oversized record: %d frames, %v", len(frames), err)
	}
	if frames, err2 := p.Feed(bad[len(good)+pcapRecordHeaderLen:]); len(frames) != 0 || !errors.Is(err2, err) || !errors.Is(p.End(), err) {
		t.Errorf("after an error: %d frames, %v", len(frames), err2)
	}

	// Not pcap: known as soon as the magic is in.
	for _, tc := range []struct {
		data []byte
		want string
	}{
		{[]byte("GET / HTTP/1.1"), "not a pcap file"},
		{[]byte{0x0a, 0x0d, 0x0d, 0x0a}, "pcapng"},
		{good[:4], ""},
		{append(slices.Clone(good[:4]), 0, 3, 0, 0), ""},
		{append(slices.Clone(good[:4]), 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), "version 3.0"},
	} {
		var p PcapParser
		_, err := p.Feed(tc.data)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("% x: err %v, want %q", tc.data, err, tc.want)
		}
	}
}

// Hand-built frames for the decoder: tags, IPv4 options and padding, fragments, IPv6.

var (
	testSrcMAC = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	testDstMAC = net.HardwareAddr{1, 0, 0x5e, 0, 0, 0x12}
	testAdvert = []byte{0x31, 7, 200, 1, 0, 100, 0, 0, 192, 0, 2, 100} // v3, VRID 7, prio 200, 1 s
)

// ether builds an Ethernet frame with VLAN tags (TPIDs), padded with pad bytes of 0xee.
func ether(etherType uint16, tags []uint16, l3 []byte, pad int) []byte {
	b := slices.Concat([]byte(testDstMAC), []byte(testSrcMAC))
	for i, tpid := range tags {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, uint16(10+i))
	}
	b = binary.BigEndian.AppendUint16(b, etherType)
	return append(append(b, l3...), bytes.Repeat([]byte{0xee}, pad)...)
}

// ip4Packet builds an IPv4 packet with options (a multiple of 4 bytes) and flags/fragment offset.
func ip4Packet(proto byte, options []byte, flagsFrag uint16, payload []byte) []byte {
	hlen := 20 + len(options)
	h := []byte{0x40 | byte(hlen/4), 0, 0, 0, 0, 1, 0, 0, 255, proto, 0, 0, 192, 0, 2, 1, 224, 0, 0, 18}
	binary.BigEndian.PutUint16(h[2:], uint16(hlen+len(payload)))
	binary.BigEndian.PutUint16(h[6:], flagsFrag)
	return slices.Concat(h, options, payload)
}

// ip6Packet builds an IPv6 packet from fe80::1 to ff02::12.
func ip6Packet(next byte, payload []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6], h[7] = next, 255
	copy(h[8:], netip.MustParseAddr("fe80::1").AsSlice())
	copy(h[24:], netip.MustParseAddr("ff02::12").AsSlice())
	return append(h, payload...)
}

func TestVRRPFramesDecode(t *testing.T) {
	routerAlert := []byte{0x94, 0x04, 0, 0} // IPv4 option 148, 4 bytes
	hbh := slices.Concat([]byte{ProtoVRRP, 0, 5, 2, 0, 0, 1, 0}, testAdvert)
	cases := []struct {
		name  string
		frame []byte
		v6    bool
		ok    bool
		// differs: gopacket decodes it otherwise (it accepts what VRRPFrames refuses).
		differs bool
	}{
		{"ipv4", ether(etherTypeIPv4, nil, ip4Packet(ProtoVRRP, nil, 0, testAdvert), 0), false, true, false},
		{"ipv4 padded", ether(etherTypeIPv4, nil, ip4Packet(ProtoVRRP, nil, 0, testAdvert), 14), false, true, false},
		{"ipv4 options", ether(etherTypeIPv4, nil, ip4Packet(ProtoVRRP, routerAlert, 0, testAdvert), 10), false, true, false},
		{"ipv4 padding options", ether(etherTypeIPv4, nil, ip4Packet(ProtoVRRP, []byte{1, 1, 1, 0, 0, 0, 0, 0}, 0, testAdvert), 3), false, true, false},
		{"ipv4 don't fragment", ether(etherTypeIPv4, nil, ip4Packet(ProtoVRRP, nil, 0x4000, testAdvert), 0), false, true, false},
		{"ipv4 first fragment", ether(etherTypeIPv4, nil, ip4Packet(ProtoVRRP, nil, 0x2000, testAdvert), 0), false, false, false},
		{"ipv4 last fragment", ether(etherTypeIPv4, nil, ip4Packet(ProtoVRRP, nil, 1, testAdvert), 0), false, false, false},
		{"ipv4 udp", ether(etherTypeIPv4, nil, ip4Packet(17, nil, 0, testAdvert), 0), false, false, false},
		{"802.1q", ether(etherTypeIPv4, []uint16{etherTypeVLAN}, ip4Packet(ProtoVRRP, nil, 0, testAdvert), 0), false, true, false},
		{"802.1ad", ether(etherTypeIPv4, []uint16{etherTypeQinQ, etherTypeVLAN}, ip4Packet(ProtoVRRP, routerAlert, 0, testAdvert), 2), false, true, false},
		{"802.1q cut", ether(etherTypeIPv4, []uint16{etherTypeVLAN}, nil, 0)[:16], false, false, false},
		{"ipv4 short advert", ether(etherTypeIPv4, nil, ip4Packet(ProtoVRRP, nil, 0, testAdvert[:7]), 30), false, false, false},
		{"ipv6", ether(etherTypeIPv6, nil, ip6Packet(ProtoVRRP, testAdvert), 0), true, true, false},
		{"ipv6 trailer", ether(etherTypeIPv6, nil, ip6Packet(ProtoVRRP, testAdvert), 4), true, true, false},
		{"ipv6 802.1q", ether(etherTypeIPv6, []uint16{etherTypeVLAN}, ip6Packet(ProtoVRRP, testAdvert), 0), true, true, false},
		{"ipv6 hop-by-hop", ether(etherTypeIPv6, nil, ip6Packet(0, hbh), 0), true, false, false},
		{"ipv6 udp", ether(etherTypeIPv6, nil, ip6Packet(17, testAdvert), 0), true, false, false},
		{"arp", ether(0x0806, nil, make([]byte, 28), 18), false, false, false},
		{"ipv6 in an ipv4 ethertype", ether(etherTypeIPv4, nil, ip6Packet(ProtoVRRP, testAdvert), 0), false, false, false},
		// gopacket ignores the version field and reads a zero total length as "the rest".
		{"ipv4 version 5", ether(etherTypeIPv4, nil, append([]byte{0x55}, ip4Packet(ProtoVRRP, nil, 0, testAdvert)[1:]...), 0), false, false, true},
		{"ipv4 total length 0", ether(etherTypeIPv4, nil, slices.Concat(ip4Packet(ProtoVRRP, nil, 0, nil)[:2], []byte{0, 0}, ip4Packet(ProtoVRRP, nil, 0, testAdvert)[4:]), 0), false, false, true},
	}
	for _, tc := range cases {
		f := Frame{Time: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC), Data: tc.frame}
		got := VRRPFrames([]Frame{f})
		if !tc.ok {
			if len(got) != 0 {
				t.Errorf("%s: decoded %+v", tc.name, got)
			}
		} else if len(got) != 1 {
			t.Errorf("%s: not decoded", tc.name)
		} else {
			g := got[0]
			src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("224.0.0.18")
			if tc.v6 {
				src, dst = netip.MustParseAddr("fe80::1"), netip.MustParseAddr("ff02::12")
			}
			if g.Src != src || g.Dst != dst || g.TTL != 255 || !g.Time.Equal(f.Time) ||
				!bytes.Equal(g.SrcMAC, testSrcMAC) || !bytes.Equal(g.DstMAC, testDstMAC) ||
				g.Version != 3 || g.Type != 1 || g.VRID != 7 || g.Priority != 200 || g.CountAddrs != 1 ||
				g.Interval != time.Second || !bytes.Equal(g.Payload, testAdvert) {
				t.Errorf("%s: decoded %+v", tc.name, g)
			}
			// The frame's memory is not kept.
			g.Payload[0], g.SrcMAC[0] = 0xff, 0xff
			if tc.frame[6] != testSrcMAC[0] || !bytes.Contains(tc.frame, testAdvert) {
				t.Errorf("%s: the result aliases the frame", tc.name)
			}
			got = VRRPFrames([]Frame{f})
		}
		if same := reflect.DeepEqual(got, gopacketVRRPFrames([]Frame{f})); same == tc.differs {
			t.Errorf("%s: decoded %+v, gopacket %+v (expected to differ: %v)", tc.name, got, gopacketVRRPFrames([]Frame{f}), tc.differs)
		}
	}
}
