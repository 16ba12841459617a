package gossip

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestRowsRoundTrip(t *testing.T) {
	rows := history(rand.New(rand.NewPCG(3, 4)), 50)
	rows = append(rows, Row{RowID: RowID{Origin: "ä-node", Kind: KindDesired, Key: ""}, Version: Version{Epoch: 1 << 62, Seq: 1<<64 - 1}})
	got, err := DecodeRows(AppendRows(nil, rows...))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rows) {
		t.Errorf("round trip:\n got %v\nwant %v", got, rows)
	}
}

func TestDecodeRowsRefuses(t *testing.T) {
	good := AppendRows(nil, Row{RowID: RowID{Origin: "a", Kind: KindHealth, Key: "k"}, Version: Version{1, 1}, Value: []byte("up")})
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"other schema", append([]byte{9}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing bytes", append(append([]byte(nil), good...), 0)},
		{"unknown flags", func() []byte { b := append([]byte(nil), good...); b[2] = 2; return b }()},
		{"a count beyond the message", []byte{schemaVersion, 0xff, 0xff, 0xff, 0x0f}},
		{"a field beyond the message", []byte{schemaVersion, 1, 0, 1, 1, 0xff, 0x01}},
	} {
		if _, err := DecodeRows(tc.b); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := DecodeRows(append([]byte{9}, good[1:]...)); !errors.Is(err, ErrSchema) {
		t.Errorf("other schema: %v, want ErrSchema", err)
	}
}

// FuzzDecodeRows: any input decodes or is refused, never panics, and what
// decodes encodes back to the same bytes.
func FuzzDecodeRows(f *testing.F) {
	f.Add(AppendRows(nil, history(rand.New(rand.NewPCG(5, 6)), 3)...))
	f.Add([]byte{schemaVersion, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := DecodeRows(b)
		if err != nil {
			return
		}
		if again := AppendRows(nil, rows...); !reflect.DeepEqual(again, b) {
			// Varints have one shortest form; others decode but re-encode
			// shorter. Same rows is what matters.
			back, err := DecodeRows(again)
			if err != nil || !reflect.DeepEqual(back, rows) {
				t.Fatalf("re-encoding changed the rows: %v", err)
			}
		}
	})
}
