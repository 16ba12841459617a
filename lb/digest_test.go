package lb

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"
)

// svcDests is a service with its destinations in insertion order.
type svcDests struct {
	s  Service
	ds []Dest
}

func with(s Service, ds ...Dest) svcDests { return svcDests{s, ds} }

// tableOf builds a table, inserting services and destinations in the order
// given.
func tableOf(entries ...svcDests) Table {
	t := Table{}
	for _, e := range entries {
		m := map[DestKey]Dest{}
		for _, d := range e.ds {
			m[d.Key()] = d
		}
		t[e.s.Key] = Entry{Service: e.s, Dests: m}
	}
	return t
}

func digestFixture() (Service, Service, []Dest) {
	a := Service{Key: ServiceKey{Protocol: TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}, Scheduler: "wrr"}
	b := Service{Key: ServiceKey{Protocol: UDP, Addr: netip.MustParseAddr("2001:db8::100"), Port: 53}, Scheduler: "rr"}
	var ds []Dest
	for i := range 5 {
		ds = append(ds, Dest{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)}), Port: 8080, Weight: 1 + i})
	}
	return a, b, ds
}

// Issue 13: "Desired-table digests that differ between live members with
// the same config version are reported as divergence": equal tables must
// give equal digests whatever order their maps were filled in, and any
// difference a different one.
func TestTableDigestCanonical(t *testing.T) {
	a, b, ds := digestFixture()
	rev := slices.Clone(ds)
	slices.Reverse(rev)
	one := tableOf(with(a, ds...), with(b, ds[:2]...))
	two := tableOf(with(b, rev[3:]...), with(a, rev...))
	if d1, d2 := TableDigest(one), TableDigest(two); d1 != d2 || len(d1) != 32 {
		t.Fatalf("same table, other insertion order: %s and %s; want one 32-digit digest", d1, d2)
	}
	// A table as the config gives it (no scheduler, an IPv4-mapped
	// address) and as a kernel dump shows it digest the same.
	raw := one.Clone()
	e := raw[a.Key]
	delete(raw, a.Key)
	e.Service.Scheduler, e.Service.Key.Addr = "", netip.AddrFrom16(a.Key.Addr.As16())
	raw[e.Service.Key] = e
	normal := one.Clone()
	ne := normal[a.Key]
	ne.Service.Scheduler = DefaultScheduler
	normal[a.Key] = ne
	if TableDigest(raw) != TableDigest(normal) {
		t.Error("a table and its normal form digest differently")
	}

	heavier := one.Clone()
	d := heavier[a.Key].Dests[ds[2].Key()]
	d.Weight++
	heavier[a.Key].Dests[ds[2].Key()] = d
	if TableDigest(heavier) == TableDigest(one) {
		t.Error("a one-weight change gave the same digest")
	}
	// The same destinations under other services are another table.
	moved := tableOf(with(a, ds[:4]...), with(b, ds[:2]...))
	moved[b.Key].Dests[ds[4].Key()] = ds[4]
	if TableDigest(moved) == TableDigest(one) {
		t.Error("a destination moved between services gave the same digest")
	}
	if TableDigest(Table{}) == TableDigest(tableOf(with(a))) {
		t.Error("an empty table and one service without destinations digest the same")
	}
}

// Every field of the kernel-visible types goes into the digest: changing
// any one changes it. The field counts fail this test when a field is
// added, so that TableDigest (and this table) learn it.
func TestTableDigestCoversEveryField(t *testing.T) {
	for typ, n := range map[reflect.Type]int{
		reflect.TypeFor[Service](): 7, reflect.TypeFor[ServiceKey](): 5, reflect.TypeFor[Dest](): 9,
	} {
		if typ.NumField() != n {
			t.Errorf("%s has %d fields, TableDigest writes %d: add the new ones", typ, typ.NumField(), n)
		}
	}
	base := Service{Key: ServiceKey{Protocol: UDP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 53}, Scheduler: "sh",
		SchedFlags: SchedFlag1, Persistence: 300 * time.Second, PersistenceMask: 24, OnePacket: true, PE: "sip"}
	dest := Dest{Addr: netip.MustParseAddr("198.51.100.11"), Port: 53, Forward: Tunnel, Weight: 3, Upper: 100, Lower: 10,
		TunType: GUE, TunPort: 6080, TunCsum: Csum}
	want := TableDigest(tableOf(with(base, dest)))
	for _, c := range []struct {
		field string
		edit  func(*Service, *Dest)
	}{
		{"ServiceKey.Family (fwmark)", func(s *Service, _ *Dest) { s.Key = ServiceKey{Family: IPv6, FWMark: 1} }},
		{"ServiceKey.Protocol", func(s *Service, _ *Dest) { s.Key.Protocol = TCP }},
		{"ServiceKey.Addr", func(s *Service, _ *Dest) { s.Key.Addr = netip.MustParseAddr("192.0.2.101") }},
		{"ServiceKey.Port", func(s *Service, _ *Dest) { s.Key.Port = 54 }},
		{"ServiceKey.FWMark", func(s *Service, _ *Dest) { s.Key = ServiceKey{Family: IPv4, FWMark: 1} }},
		{"Service.Scheduler", func(s *Service, _ *Dest) { s.Scheduler = "mh" }},
		{"Service.SchedFlags", func(s *Service, _ *Dest) { s.SchedFlags = SchedFlag2 }},
		{"Service.Persistence", func(s *Service, _ *Dest) { s.Persistence = 301 * time.Second }},
		{"Service.PersistenceMask", func(s *Service, _ *Dest) { s.PersistenceMask = 25 }},
		{"Service.OnePacket", func(s *Service, _ *Dest) { s.OnePacket = false }},
		{"Service.PE", func(s *Service, _ *Dest) { s.PE = "" }},
		{"Dest.Addr", func(_ *Service, d *Dest) { d.Addr = netip.MustParseAddr("198.51.100.12") }},
		{"Dest.Port", func(_ *Service, d *Dest) { d.Port = 54 }},
		{"Dest.Forward", func(_ *Service, d *Dest) { d.Forward, d.TunType, d.TunPort, d.TunCsum = DR, IPIP, 0, NoCsum }},
		{"Dest.Weight", func(_ *Service, d *Dest) { d.Weight = 4 }},
		{"Dest.Upper", func(_ *Service, d *Dest) { d.Upper = 101 }},
		{"Dest.Lower", func(_ *Service, d *Dest) { d.Lower = 11 }},
		{"Dest.TunType", func(_ *Service, d *Dest) { d.TunType = GRE; d.TunPort = 0 }},
		{"Dest.TunPort", func(_ *Service, d *Dest) { d.TunPort = 6081 }},
		{"Dest.TunCsum", func(_ *Service, d *Dest) { d.TunCsum = RemCsum }},
	} {
		s, d := base, dest
		c.edit(&s, &d)
		if got := TableDigest(tableOf(with(s, d))); got == want {
			t.Errorf("changing %s left the digest %s", c.field, got)
		}
	}
}
