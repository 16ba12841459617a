package bench

import (
	"errors"
	"fmt"
	"io"
	"os"

	"vigil/test/netlab"
)

// pcapTail reads a pcap file that tcpdump (-U) is still writing, a little
// at a time: each Poll feeds what was appended to netlab's pcap parser and
// keeps the VRRP packets in the records it completes. It exists because
// netlab's Capture.Frames re-reads the whole file, and a 10 ms scenario polls
// often while the file grows.
type pcapTail struct {
	path   string
	f      *os.File
	parser netlab.PcapParser
	chunk  []byte
	all    []netlab.VRRPFrame
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
	if t.chunk == nil {
		t.chunk = make([]byte, 64<<10)
	}
	var frames []netlab.Frame
	for {
		n, err := t.f.Read(t.chunk)
		if n > 0 {
			fs, perr := t.parser.Feed(t.chunk[:n]) // copies what it keeps
			if perr != nil {
				return nil, fmt.Errorf("pcap %s: %w", t.path, perr)
			}
			frames = append(frames, fs...)
		}
		if err == io.EOF || n == 0 {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", t.path, err)
		}
	}
	v := netlab.VRRPFrames(frames)
	t.all = append(t.all, v...)
	return v, nil
}
