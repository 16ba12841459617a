package bench

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// vrrpFrame serializes an Ethernet/IPv4 VRRPv3 advert from src.
func vrrpFrame(t *testing.T, src string, vrid, prio byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 0x12}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 255, Protocol: 112, SrcIP: net.ParseIP(src).To4(), DstIP: net.IPv4(224, 0, 0, 18).To4()}
	payload := gopacket.Payload{0x31, vrid, prio, 1, 0x00, 0x64, 0, 0, 192, 0, 2, 100}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, payload); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPcapTail(t *testing.T) {
	var file bytes.Buffer
	w := pcapgo.NewWriterNanos(&file)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	for i, src := range []string{"192.0.2.11", "192.0.2.12"} {
		data := vrrpFrame(t, src, 51, byte(150-50*i))
		ci := gopacket.CaptureInfo{Timestamp: at.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(data), Length: len(data)}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	// Not a VRRP frame: skipped.
	arp := make([]byte, 60)
	arp[12], arp[13] = 0x08, 0x06
	if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: at, CaptureLength: 60, Length: 60}, arp); err != nil {
		t.Fatal(err)
	}
	all := file.Bytes()

	path := filepath.Join(t.TempDir(), "c.pcap")
	tail := newPcapTail(path)
	defer tail.Close()
	if v, err := tail.Poll(); err != nil || len(v) != 0 {
		t.Fatalf("missing file: %v %v", v, err)
	}
	// Header and a record and a half, then the rest: as tcpdump writes it.
	cut := 24 + 16 + 46 + 20
	if err := os.WriteFile(path, all[:10], 0o644); err != nil {
		t.Fatal(err)
	}
	if v, err := tail.Poll(); err != nil || len(v) != 0 {
		t.Fatalf("partial header: %v %v", v, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(all[10:cut]); err != nil {
		t.Fatal(err)
	}
	v, err := tail.Poll()
	if err != nil || len(v) != 1 {
		t.Fatalf("first poll: %d frames, %v", len(v), err)
	}
	if v[0].Src.String() != "192.0.2.11" || v[0].Priority != 150 || v[0].VRID != 51 || !v[0].Time.Equal(at) {
		t.Errorf("first frame %+v", v[0])
	}
	if _, err := f.Write(all[cut:]); err != nil {
		t.Fatal(err)
	}
	v, err = tail.Poll()
	if err != nil || len(v) != 1 || v[0].Priority != 100 || !v[0].Time.Equal(at.Add(time.Millisecond)) {
		t.Fatalf("second poll: %+v, %v", v, err)
	}
	if n := len(tail.Frames()); n != 2 {
		t.Errorf("Frames: %d", n)
	}
	bad := newPcapTail(path + ".bad")
	if err := os.WriteFile(path+".bad", bytes.Repeat([]byte{0xff}, 40), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Poll(); err == nil {
		t.Error("garbage accepted as pcap")
	}
	bad.Close()
}
