package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The rows' wire form, what broadcasts and push/pull carry:
//
//	schema version (1 byte) | count (uvarint) | rows
//	row: flags (1 byte: bit 0 deleted) | epoch (uvarint) | seq (uvarint) |
//	     origin, kind, key, value (each uvarint length + bytes)
//
// A decoder reads what it knows and refuses the rest with an error; it
// never panics on any input (FuzzDecodeRows).
const schemaVersion = 1

// maxField bounds a field's length while decoding, so that a hostile
// length cannot make the decoder allocate beyond the message.
const maxField = 1 << 20

// ErrSchema is returned (wrapped) for a message of another schema version.
var ErrSchema = errors.New("unknown gossip schema version")

// EncodedSize is the size of r in a message of one row.
func EncodedSize(r Row) int {
	return len(AppendRows(nil, r))
}

// AppendRows appends the message carrying rows to b.
func AppendRows(b []byte, rows ...Row) []byte {
	b = append(b, schemaVersion)
	b = binary.AppendUvarint(b, uint64(len(rows)))
	for _, r := range rows {
		var flags byte
		if r.Deleted {
			flags |= 1
		}
		b = append(b, flags)
		b = binary.AppendUvarint(b, r.Version.Epoch)
		b = binary.AppendUvarint(b, r.Version.Seq)
		for _, f := range [][]byte{[]byte(r.Origin), []byte(r.Kind), []byte(r.Key), r.Value} {
			b = binary.AppendUvarint(b, uint64(len(f)))
			b = append(b, f...)
		}
	}
	return b
}

// DecodeRows reads a message. The rows do not share memory with b.
func DecodeRows(b []byte) ([]Row, error) {
	if len(b) == 0 {
		return nil, errors.New("gossip: empty message")
	}
	if b[0] != schemaVersion {
		return nil, fmt.Errorf("gossip: schema version %d: %w", b[0], ErrSchema)
	}
	d := decoder{b: b[1:]}
	n := d.uvarint("row count")
	// Each row takes at least 7 bytes: no count beyond what b can hold.
	if d.err == nil && n > uint64(len(d.b))/7 {
		return nil, fmt.Errorf("gossip: %d rows cannot fit in %d bytes", n, len(d.b))
	}
	rows := make([]Row, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		var r Row
		flags := d.byte()
		if flags&^1 != 0 && d.err == nil {
			d.err = fmt.Errorf("row %d: unknown flags %#x", i, flags)
		}
		r.Deleted = flags&1 != 0
		r.Version.Epoch = d.uvarint("epoch")
		r.Version.Seq = d.uvarint("sequence")
		r.Origin = string(d.field("origin"))
		r.Kind = string(d.field("kind"))
		r.Key = string(d.field("key"))
		if v := d.field("value"); len(v) > 0 {
			r.Value = append([]byte(nil), v...)
		}
		rows = append(rows, r)
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes after the last row", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("gossip: decoding rows: %w", d.err)
	}
	return rows, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errors.New("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%s: bad or truncated varint", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) field(what string) []byte {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return nil
	}
	if n > maxField || n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%s: length %d, %d bytes left", what, n, len(d.b))
		return nil
	}
	f := d.b[:n]
	d.b = d.b[n:]
	return f
}
