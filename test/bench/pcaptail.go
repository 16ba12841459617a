package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"vigil/test/netlab"
)

// pcap file format constants (libpcap savefile, not pcapng).
const (
	pcapMagicMicro = 0xa1b2c3d4
	pcapMagicNano  = 0xa1b23c4d
	pcapHeaderLen  = 24
	pcapRecordLen  = 16
	// pcapMaxRecord bounds a record's captured length; anything larger means
	// the file is not what we think it is.
	pcapMaxRecord = 1 << 18
)

// pcapTail reads a pcap file that tcpdump (-U) is still writing, a little
// at a time: each Poll parses the records that are complete so far and keeps
// the VRRP packets among them. It exists because netlab's Capture.Frames
// re-reads the whole file, and a 10 ms scenario polls often while the file
// grows.
type pcapTail struct {
	path  string
	f     *os.File
	buf   []byte // bytes read but not parsed yet
	hdr   bool   // global header parsed
	order binary.ByteOrder
	nano  bool
	all   []netlab.VRRPFrame
}

func newPcapTail(path string) *pcapTail { return &pcapTail{path: path} }

// Close closes the file.
func (t *pcapTail) Close() error {
	if t.f == nil {
		return nil
	}
	err := t.f.Close()
	t.f = nil
	return err
}

// Frames returns every VRRP packet parsed so far, in capture order.
func (t *pcapTail) Frames() []netlab.VRRPFrame { return t.all }

// Poll reads what was appended to the file since the last call and returns
// the VRRP packets in the records completed by it.
func (t *pcapTail) Poll() ([]netlab.VRRPFrame, error) {
	if t.f == nil {
		f, err := os.Open(t.path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, nil // tcpdump has not created it yet
			}
			return nil, err
		}
		t.f = f
	}
	chunk := make([]byte, 64<<10)
	for {
		n, err := t.f.Read(chunk)
		t.buf = append(t.buf, chunk[:n]...)
		if err == io.EOF || n == 0 {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", t.path, err)
		}
	}
	frames, err := t.parse()
	if err != nil {
		return nil, fmt.Errorf("pcap %s: %w", t.path, err)
	}
	v := netlab.VRRPFrames(frames)
	t.all = append(t.all, v...)
	return v, nil
}

// parse consumes the complete records in buf.
func (t *pcapTail) parse() ([]netlab.Frame, error) {
	if !t.hdr {
		if len(t.buf) < pcapHeaderLen {
			return nil, nil
		}
		switch {
		case binary.LittleEndian.Uint32(t.buf) == pcapMagicNano:
			t.order, t.nano = binary.LittleEndian, true
		case binary.LittleEndian.Uint32(t.buf) == pcapMagicMicro:
			t.order, t.nano = binary.LittleEndian, false
		case binary.BigEndian.Uint32(t.buf) == pcapMagicNano:
			t.order, t.nano = binary.BigEndian, true
		case binary.BigEndian.Uint32(t.buf) == pcapMagicMicro:
			t.order, t.nano = binary.BigEndian, false
		default:
			return nil, fmt.Errorf("not a pcap file (magic %#08x)", binary.BigEndian.Uint32(t.buf))
		}
		if lt := t.order.Uint32(t.buf[20:24]) & 0x0fffffff; lt != 1 {
			return nil, fmt.Errorf("link type %d, want 1 (Ethernet)", lt)
		}
		t.buf = t.buf[pcapHeaderLen:]
		t.hdr = true
	}
	var frames []netlab.Frame
	for len(t.buf) >= pcapRecordLen {
		sec := t.order.Uint32(t.buf[0:4])
		frac := t.order.Uint32(t.buf[4:8])
		incl := int(t.order.Uint32(t.buf[8:12]))
		if incl > pcapMaxRecord {
			return frames, fmt.Errorf("record of %d bytes", incl)
		}
		if len(t.buf) < pcapRecordLen+incl {
			break // being written
		}
		ns := int64(frac)
		if !t.nano {
			ns *= 1000
		}
		data := make([]byte, incl)
		copy(data, t.buf[pcapRecordLen:pcapRecordLen+incl])
		frames = append(frames, netlab.Frame{Time: time.Unix(int64(sec), ns), Data: data})
		t.buf = t.buf[pcapRecordLen+incl:]
	}
	// Do not let a long capture keep every parsed byte alive.
	t.buf = append([]byte(nil), t.buf...)
	return frames, nil
}
