package nslab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The classic libpcap savefile format (what tcpdump -w writes; not pcapng): a 24-byte file header
// (magic, version 2.4, time zone, sigfigs, snapshot length, link type), then records, each a
// 16-byte header (seconds, microseconds or nanoseconds, captured length, original length) and the
// captured bytes. The magic, written in the writer's byte order, also gives the timestamp
// resolution.
const (
	pcapMagicMicro      = 0xa1b2c3d4
	pcapMagicNano       = 0xa1b23c4d
	pcapngMagic         = 0x0a0d0d0a // a pcapng section header block, in either byte order
	pcapFileHeaderLen   = 24
	pcapRecordHeaderLen = 16
	linkTypeEthernet    = 1
	// pcapMaxRecord bounds a record's captured length (libpcap's largest snapshot length); a
	// larger one means the data is not a capture, or is corrupt.
	pcapMaxRecord = 262144
)

// PcapParser parses classic pcap data (microsecond or nanosecond timestamps, either byte order,
// Ethernet link type) incrementally, such as a file tcpdump is still writing: Feed it the bytes as
// they arrive; it returns the frames of the records they complete and keeps a partial file header
// or record for the next call. The zero value is ready to use. ReadPcap and Capture use it; code
// following a capture file (Capture.Path) as it grows can use it too.
type PcapParser struct {
	buf     []byte // fed but not parsed: the beginning of the file header or of a record
	started bool   // the file header has been parsed
	order   binary.ByteOrder
	nano    bool
	records int // complete records parsed
	err     error
}

// Feed parses b as the continuation of the data fed before. It returns the frames of the records
// that are now complete, in file order, with the capture timestamps in UTC; their data does not
// alias b. After an error (not a pcap file, a pcapng file, not Ethernet, a corrupt record) it
// returns the frames parsed before the error, and every later call returns the same error.
func (p *PcapParser) Feed(b []byte) ([]Frame, error) {
	if p.err != nil {
		return nil, p.err
	}
	data := b
	if len(p.buf) > 0 {
		data = append(p.buf, b...)
	}
	frames, n, err := p.parse(data)
	p.buf = nil
	if rest := data[n:]; len(rest) > 0 {
		p.buf = bytes.Clone(rest) // not b's memory, and not a long capture's parsed bytes
	}
	p.err = err
	return frames, err
}

// Pending is how many of the bytes fed are not parsed yet: a file header or a record still being
// written. A whole capture file leaves none.
func (p *PcapParser) Pending() int { return len(p.buf) }

// End reports whether the data fed so far is a whole pcap file: the error Feed returned, or an
// error if the file header or the last record is incomplete.
func (p *PcapParser) End() error {
	switch {
	case p.err != nil:
		return p.err
	case !p.started:
		return fmt.Errorf("file header: %d of %d bytes", len(p.buf), pcapFileHeaderLen)
	case len(p.buf) > 0:
		return fmt.Errorf("record %d: cut short after %d bytes", p.records+1, len(p.buf))
	}
	return nil
}

// parse parses the file header, if not done yet, and the complete records at the beginning of
// data; n is how many bytes it consumed.
func (p *PcapParser) parse(data []byte) (frames []Frame, n int, err error) {
	if !p.started {
		if len(data) >= 4 {
			if err := p.magic(data); err != nil {
				return nil, 0, fmt.Errorf("file header: %w", err)
			}
		}
		if len(data) < pcapFileHeaderLen {
			return nil, 0, nil
		}
		if err := p.header(data[:pcapFileHeaderLen]); err != nil {
			return nil, 0, fmt.Errorf("file header: %w", err)
		}
		p.started = true
		n = pcapFileHeaderLen
	}
	for len(data)-n >= pcapRecordHeaderLen {
		h := data[n : n+pcapRecordHeaderLen]
		sec, frac := p.order.Uint32(h[0:4]), p.order.Uint32(h[4:8])
		caplen := p.order.Uint32(h[8:12])
		if caplen > pcapMaxRecord {
			return frames, n, fmt.Errorf("record %d: captured length %d, more than %d", p.records+1, caplen, pcapMaxRecord)
		}
		end := n + pcapRecordHeaderLen + int(caplen)
		if end > len(data) {
			break // being written
		}
		ns := int64(frac)
		if !p.nano {
			ns *= int64(time.Microsecond)
		}
		frames = append(frames, Frame{
			Time: time.Unix(int64(sec), ns).UTC(),
			Data: bytes.Clone(data[n+pcapRecordHeaderLen : end]),
		})
		p.records++
		n = end
	}
	return frames, n, nil
}

// magic sets the byte order and timestamp resolution from the file's first 4 bytes.
func (p *PcapParser) magic(b []byte) error {
	le, be := binary.LittleEndian.Uint32(b), binary.BigEndian.Uint32(b)
	switch {
	case be == pcapngMagic:
		return errors.New("a pcapng file: only classic pcap is supported (tcpdump -w writes it; editcap -F pcap converts)")
	case le == pcapMagicMicro, le == pcapMagicNano:
		p.order, p.nano = binary.LittleEndian, le == pcapMagicNano
	case be == pcapMagicMicro, be == pcapMagicNano:
		p.order, p.nano = binary.BigEndian, be == pcapMagicNano
	default:
		return fmt.Errorf("not a pcap file (magic %#08x)", be)
	}
	return nil
}

// header checks the rest of the file header: version 2.x and the Ethernet link type.
func (p *PcapParser) header(h []byte) error {
	if major, minor := p.order.Uint16(h[4:6]), p.order.Uint16(h[6:8]); major != 2 {
		return fmt.Errorf("pcap version %d.%d, want 2.4", major, minor)
	}
	// The link type is the low 28 bits; the top 4 may give the length of a frame check sequence
	// ending each frame, which the IP lengths leave out anyway.
	if lt := p.order.Uint32(h[20:24]) & 0x0fffffff; lt != linkTypeEthernet {
		return fmt.Errorf("link type %d, want %d (Ethernet)", lt, linkTypeEthernet)
	}
	return nil
}
