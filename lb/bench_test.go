package lb

import (
	"net/netip"
	"testing"
)

func benchTable(nSvc, nRS int) Table {
	t := Table{}
	for i := 0; i < nSvc; i++ {
		s := Service{Key: ServiceKey{Family: IPv4, Protocol: TCP, Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i%250 + 1)}), Port: uint16(1000 + i/250)}, Scheduler: "wrr"}
		e := Entry{Service: s, Dests: map[DestKey]Dest{}}
		for j := 0; j < nRS; j++ {
			d := Dest{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(j + 1)}), Port: 8080, Weight: 1}
			e.Dests[d.Key()] = d
		}
		t[s.Key] = e
	}
	return t
}

// BenchmarkDiffOneChange is the pure part of reconciling one real server's
// change on 1,000 virtual servers × 10 real servers: Diff, which checks
// that the tables are normal, and DiffNormal, which the balancer uses.
func BenchmarkDiffOneChange(b *testing.B) {
	desired, current := benchTable(1000, 10), benchTable(1000, 10)
	k := desired.Keys()[500]
	d := desired[k].SortedDests()[5]
	d.Weight = 5
	desired[k].Dests[d.Key()] = d
	managed := func(ServiceKey) bool { return true }
	for _, f := range []struct {
		name string
		diff func(Table, Table, func(ServiceKey) bool) []Op
	}{{"Diff", Diff}, {"DiffNormal", DiffNormal}} {
		b.Run(f.name, func(b *testing.B) {
			for b.Loop() {
				if ops := f.diff(desired, current, managed); len(ops) != 1 {
					b.Fatalf("%d ops", len(ops))
				}
			}
		})
	}
}

// BenchmarkDiffCold is the pure part of a cold apply of the same table.
func BenchmarkDiffCold(b *testing.B) {
	desired := benchTable(1000, 10)
	for b.Loop() {
		if ops := Diff(desired, Table{}, nil); len(ops) != 11000 {
			b.Fatalf("%d ops", len(ops))
		}
	}
}
