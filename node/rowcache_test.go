package node

import (
	"slices"
	"strconv"
	"testing"

	"vigil/gossip"
)

// The fleet's loops read every member's rows at every step: rowCache
// decodes a row only when it is new or its version changed, hands back
// the kept rows in order, skips (and reports) rows that do not decode
// without caching them, and forgets rows no longer kept.
func TestRowCache(t *testing.T) {
	row := func(origin string, seq uint64, val string) gossip.Row {
		return gossip.Row{RowID: gossip.RowID{Origin: origin, Kind: "k", Key: "x"}, Version: gossip.Version{Epoch: 1, Seq: seq}, Value: []byte(val)}
	}
	decodes := 0
	decode := func(b []byte) (int, error) {
		decodes++
		return strconv.Atoi(string(b))
	}
	var c rowCache[int]
	run := func(rows []gossip.Row, keep func(gossip.Row) bool) (got []int, bad []string) {
		c.each(rows, keep, decode, func(r gossip.Row, _ error) { bad = append(bad, r.Origin) },
			func(_ gossip.Row, v int) { got = append(got, v) })
		return got, bad
	}
	all := func(gossip.Row) bool { return true }

	rows := []gossip.Row{row("a", 1, "1"), row("b", 1, "2"), row("c", 1, "not a number")}
	got, bad := run(rows, all)
	if !slices.Equal(got, []int{1, 2}) || !slices.Equal(bad, []string{"c"}) || decodes != 3 {
		t.Fatalf("first pass: %v, bad %v, %d decodes", got, bad, decodes)
	}
	// Same versions: nothing decoded again but the bad row, which is not cached.
	got, bad = run(rows, all)
	if !slices.Equal(got, []int{1, 2}) || !slices.Equal(bad, []string{"c"}) || decodes != 4 {
		t.Fatalf("second pass: %v, bad %v, %d decodes", got, bad, decodes)
	}
	// b's new version is decoded; a is not kept and is forgotten.
	rows[1] = row("b", 2, "20")
	got, _ = run(rows, func(r gossip.Row) bool { return r.Origin != "a" })
	if !slices.Equal(got, []int{20}) || decodes != 6 {
		t.Fatalf("third pass: %v, %d decodes", got, decodes)
	}
	if _, ok := c.m[rows[0].RowID]; ok {
		t.Fatal("a row not kept stayed in the cache")
	}
	got, _ = run(rows, all) // a again: decoded again
	if !slices.Equal(got, []int{1, 20}) || decodes != 8 {
		t.Fatalf("fourth pass: %v, %d decodes", got, decodes)
	}
}
