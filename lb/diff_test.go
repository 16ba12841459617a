package lb

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func dest(addr string, port uint16, w int) Dest {
	return Dest{Addr: netip.MustParseAddr(addr), Port: port, Weight: w}
}

func entry(s Service, ds ...Dest) Entry {
	e := Entry{Service: s, Dests: map[DestKey]Dest{}}
	for _, d := range ds {
		e.Dests[d.Key()] = d
	}
	return e
}

func table(es ...Entry) Table {
	t := Table{}
	for _, e := range es {
		t[e.Service.Key] = e
	}
	return t
}

func svc(addr string, port uint16, sched string) Service {
	return Service{Key: ServiceKey{Family: IPv4, Protocol: TCP, Addr: netip.MustParseAddr(addr), Port: port}, Scheduler: sched}
}

func opsString(ops []Op) string {
	var s []string
	for _, o := range ops {
		s = append(s, o.String())
	}
	return strings.Join(s, "\n")
}

func TestDiff(t *testing.T) {
	a, b := svc("192.0.2.1", 80, "wrr"), svc("192.0.2.2", 443, "rr")
	foreign := svc("203.0.113.1", 22, "rr")
	d1, d2, d3 := dest("198.51.100.1", 80, 1), dest("198.51.100.2", 80, 2), dest("198.51.100.3", 80, 3)
	all := func(ServiceKey) bool { return true }
	mine := func(k ServiceKey) bool { return k != foreign.Key }
	aUpd := a
	aUpd.Scheduler = "wlc"
	d2drain, d1heavy := d2, d1
	d2drain.Weight = 0
	d1heavy.Weight = 9
	tests := []struct {
		name             string
		desired, current Table
		managed          func(ServiceKey) bool
		want             string
	}{
		{name: "cold", desired: table(entry(b, d3), entry(a, d2, d1)), current: Table{}, want: `add-service tcp 192.0.2.1:80 wrr
add-dest tcp 192.0.2.1:80 -> 198.51.100.1:80 nat weight 1
add-dest tcp 192.0.2.1:80 -> 198.51.100.2:80 nat weight 2
add-service tcp 192.0.2.2:443 rr
add-dest tcp 192.0.2.2:443 -> 198.51.100.3:80 nat weight 3`},
		{name: "unchanged", desired: table(entry(a, d1, d2)), current: table(entry(a, d1, d2)), managed: all},
		// The kernel's 4-in-6 and the config's plain IPv4, an empty
		// scheduler and wlc, compare equal after normalisation.
		{name: "normalised equal",
			desired: table(entry(Service{Key: ServiceKey{Protocol: TCP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 80}}, dest("::ffff:198.51.100.1", 80, 1))),
			current: table(entry(Service{Key: ServiceKey{Family: IPv4, Protocol: TCP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 80}, Scheduler: "wlc"}, d1))},
		{name: "one weight", desired: table(entry(a, d1heavy, d2)), current: table(entry(a, d1, d2)),
			want: "update-dest tcp 192.0.2.1:80 -> 198.51.100.1:80 nat weight 9"},
		{name: "service update before dests, replace adds before deletes, drain before delete",
			desired: table(entry(aUpd, d1heavy, d2drain, d3)), current: table(entry(a, d1, d2, dest("198.51.100.4", 80, 1))),
			want: `update-service tcp 192.0.2.1:80 wlc
add-dest tcp 192.0.2.1:80 -> 198.51.100.3:80 nat weight 3
update-dest tcp 192.0.2.1:80 -> 198.51.100.1:80 nat weight 9
update-dest tcp 192.0.2.1:80 -> 198.51.100.2:80 nat weight 0
del-dest tcp 192.0.2.1:80 -> 198.51.100.4:80`},
		{name: "services deleted last, foreign left alone",
			desired: table(entry(b, d1)), current: table(entry(a, d1), entry(foreign, d2)), managed: mine,
			want: `add-service tcp 192.0.2.2:443 rr
add-dest tcp 192.0.2.2:443 -> 198.51.100.1:80 nat weight 1
del-service tcp 192.0.2.1:80`},
		{name: "nil managed deletes nothing", desired: Table{}, current: table(entry(a, d1))},
		// Last to first: the kernel's trash of deleted destinations then
		// holds the first service's first destination at its head, where
		// adding the table again looks first.
		{name: "remove all", desired: Table{}, current: table(entry(a, d1), entry(b, d2), entry(foreign)), managed: mine,
			want: "del-service tcp 192.0.2.2:443\ndel-service tcp 192.0.2.1:80"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ops := Diff(tc.desired, tc.current, tc.managed)
			if got := opsString(ops); got != tc.want {
				t.Fatalf("ops:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// randTable draws a table over a small key space so desired and current
// overlap often: services and dests that match, differ, or exist on one
// side only, across IPv4, IPv6 and fwmark keys.
func randTable(r *rand.Rand) Table {
	keys := []ServiceKey{
		{Family: IPv4, Protocol: TCP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 80},
		{Family: IPv4, Protocol: UDP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 53},
		{Family: IPv4, Protocol: TCP, Addr: netip.MustParseAddr("192.0.2.2"), Port: 80},
		{Family: IPv6, Protocol: TCP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 443},
		{Family: IPv4, FWMark: 7},
		{Family: IPv6, FWMark: 7},
	}
	scheds := []string{"rr", "wrr", "wlc", "sh"}
	t := Table{}
	for _, k := range keys {
		if r.IntN(3) == 0 {
			continue
		}
		s := Service{Key: k, Scheduler: scheds[r.IntN(len(scheds))], OnePacket: r.IntN(4) == 0}
		if r.IntN(3) == 0 {
			s.Persistence = time.Duration(r.IntN(3)+1) * 60 * time.Second
			s.PersistenceMask = []int{0, 24, 16}[r.IntN(3)]
		}
		if r.IntN(4) == 0 {
			s.SchedFlags = SchedFlag1
		}
		e := Entry{Service: s.Normal(), Dests: map[DestKey]Dest{}}
		n := r.IntN(5)
		for i := 0; i < n; i++ {
			addr := netip.AddrFrom4([4]byte{198, 51, 100, byte(r.IntN(6))})
			if k.Family == IPv6 {
				addr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(r.IntN(6))})
			}
			d := Dest{Addr: addr, Port: uint16(8080 + r.IntN(2)), Forward: Forward(r.IntN(3)), Weight: r.IntN(3), Upper: uint32(r.IntN(2) * 100)}
			e.Dests[d.Key()] = d
		}
		t[e.Service.Key] = e
	}
	return t
}

// TestDiffProperty: for random tables, the ops are valid on current (the
// in-memory model refuses what the kernel would), applying them yields
// desired on vigil's keys and leaves the others untouched, and a second
// Diff is empty.
func TestDiffProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		desired, current := randTable(r), randTable(r)
		// Each key of current is vigil's with probability 1/2.
		managedSet := map[ServiceKey]bool{}
		for k := range current {
			managedSet[k] = r.IntN(2) == 0
		}
		managed := func(k ServiceKey) bool { return managedSet[k] }
		ops := Diff(desired, current, managed)
		got, err := current.Apply(ops)
		if err != nil {
			t.Fatalf("case %d: %v\nops:\n%s", i, err, opsString(ops))
		}
		for k, e := range current {
			if _, wanted := desired[k]; !wanted && !managedSet[k] {
				if g, ok := got[k]; !ok || !(Table{k: g}).Equal(Table{k: e}) {
					t.Fatalf("case %d: unmanaged %v changed: %+v -> %+v", i, k, e, g)
				}
			}
		}
		want := desired.Clone()
		for k, e := range current {
			if _, wanted := desired[k]; !wanted && !managedSet[k] {
				want[k] = e
			}
		}
		if !got.Equal(want) {
			t.Fatalf("case %d: applied table differs from desired\nops:\n%s\ngot  %v\nwant %v", i, opsString(ops), got, want)
		}
		if again := Diff(desired, got, managed); len(again) != 0 {
			t.Fatalf("case %d: second Diff not empty:\n%s", i, opsString(again))
		}
		checkOrder(t, i, ops)
	}
}

// checkOrder: per service, its add/update comes before its dest ops, dest
// adds before updates before deletes, and service deletions come last.
func checkOrder(t *testing.T, i int, ops []Op) {
	t.Helper()
	rank := map[OpKind]int{AddDest: 1, UpdateDest: 2, DelDest: 3}
	seenDel := false
	last := map[ServiceKey]int{}
	for _, o := range ops {
		k := o.Service.Key
		switch o.Kind {
		case DelService:
			seenDel = true
		case AddService, UpdateService:
			if seenDel || last[k] != 0 {
				t.Fatalf("case %d: %s out of order:\n%s", i, o, opsString(ops))
			}
			last[k] = -1
		default:
			if seenDel || rank[o.Kind] < last[k] {
				t.Fatalf("case %d: %s out of order:\n%s", i, o, opsString(ops))
			}
			last[k] = rank[o.Kind]
		}
	}
}

func TestApplyRefusesWhatTheKernelWould(t *testing.T) {
	a := svc("192.0.2.1", 80, "rr")
	d := dest("198.51.100.1", 80, 1)
	cur := table(entry(a, d))
	for _, op := range []Op{
		{Kind: AddService, Service: a},
		{Kind: AddDest, Service: a, Dest: d},
		{Kind: DelDest, Service: a, Dest: dest("198.51.100.9", 80, 1)},
		{Kind: UpdateDest, Service: svc("192.0.2.9", 80, "rr"), Dest: d},
		{Kind: DelService, Service: svc("192.0.2.9", 80, "rr")},
	} {
		if _, err := cur.Apply([]Op{op}); err == nil || !strings.Contains(err.Error(), op.String()) {
			t.Errorf("Apply(%s): err %v, want one naming the op", op, err)
		}
	}
}

func TestKeysOf(t *testing.T) {
	a := svc("192.0.2.1", 80, "rr")
	raw := a
	raw.Key.Family = 0 // as a config might hold it
	managed := KeysOf(table(entry(raw)))
	if !managed(a.Key) || managed(svc("192.0.2.2", 80, "rr").Key) {
		t.Fatal("KeysOf does not match normalised keys exactly")
	}
}

// DiffKeys over a subset of keys gives exactly the ops of a full diff that
// concern those keys, in the same order; over every key it is DiffNormal.
func TestDiffKeysProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		desired, current := randTable(r).Normal(), randTable(r).Normal()
		managedSet := map[ServiceKey]bool{}
		for k := range current {
			managedSet[k] = r.IntN(2) == 0
		}
		managed := func(k ServiceKey) bool { return managedSet[k] }
		var all, some []ServiceKey
		pick := map[ServiceKey]bool{}
		for _, tb := range []Table{desired, current} {
			for k := range tb {
				all = append(all, k) // a key in both tables comes twice
				if r.IntN(2) == 0 {
					some = append(some, k)
					pick[k] = true
				}
			}
		}
		full := DiffNormal(desired, current, managed)
		if got := DiffKeys(desired, current, all, managed); opsString(got) != opsString(full) {
			t.Fatalf("case %d: DiffKeys over every key:\n%s\nDiffNormal:\n%s", i, opsString(got), opsString(full))
		}
		var want []Op
		for _, o := range full {
			if pick[o.Service.Key] {
				want = append(want, o)
			}
		}
		if got := DiffKeys(desired, current, some, managed); opsString(got) != opsString(want) {
			t.Fatalf("case %d: DiffKeys over %v:\n%s\nwant:\n%s", i, some, opsString(got), opsString(want))
		}
	}
}
