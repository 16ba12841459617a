package lb

import (
	"cmp"
	"slices"
	"time"
)

// Table is an IPVS table: virtual services by key, each with its
// destinations. The desired table ([Desired]) and a kernel dump (lb/ipvsnet)
// share it, so [Diff] compares like with like. Values in a Table are
// expected in normal form ([Service.Normal], [Dest.Normal]); Diff
// normalises both sides anyway.
type Table map[ServiceKey]Entry

// Entry is one virtual service and its destinations.
type Entry struct {
	Service Service
	Dests   map[DestKey]Dest
}

// Kernel flag bits of a service that the pure types model as fields.
const (
	svcFlagPersistent uint32 = 0x0001 // IP_VS_SVC_F_PERSISTENT
	svcFlagOnePacket  uint32 = 0x0004 // IP_VS_SVC_F_ONEPACKET
	schedFlagsMask           = SchedFlag1 | SchedFlag2 | SchedFlag3
)

// DefaultScheduler is what an empty Scheduler means: the kernel's and
// ipvsadm's default, and keepalived's.
const DefaultScheduler = "wlc"

// Normal returns the key in the form the kernel reports it: IPv4 addresses
// unmapped, Family taken from the address, and no protocol, address or port
// on a firewall-mark key.
func (k ServiceKey) Normal() ServiceKey {
	if k.FWMark != 0 {
		return ServiceKey{Family: k.Family, FWMark: k.FWMark}
	}
	k.Addr = k.Addr.Unmap()
	if k.Addr.Is4() {
		k.Family = IPv4
	} else if k.Addr.Is6() {
		k.Family = IPv6
	}
	return k
}

// fullMask is the persistence mask that means "per client address".
func (k ServiceKey) fullMask() int {
	if k.Family == IPv6 {
		return 128
	}
	return 32
}

// Normal returns s as a kernel dump would show it: the key normalised, the
// default scheduler filled in, persistence in whole seconds (the kernel
// keeps seconds; a fraction rounds up so a configured persistence never
// becomes none), the mask defaulted to the full length while persistent and
// dropped otherwise (it means nothing then, and ipvsadm does not show it),
// and only the three scheduler flag bits kept.
func (s Service) Normal() Service {
	s.Key = s.Key.Normal()
	if s.Scheduler == "" {
		s.Scheduler = DefaultScheduler
	}
	s.SchedFlags &= schedFlagsMask
	if s.Persistence <= 0 {
		s.Persistence, s.PersistenceMask = 0, 0
	} else {
		s.Persistence = ((s.Persistence + time.Second - 1) / time.Second) * time.Second
		if s.PersistenceMask <= 0 || s.PersistenceMask > s.Key.fullMask() {
			s.PersistenceMask = s.Key.fullMask()
		}
	}
	return s
}

// Normal returns d with an IPv4 address unmapped and a negative weight as
// 0 (the kernel refuses negative weights).
func (d Dest) Normal() Dest {
	d.Addr = d.Addr.Unmap()
	if d.Weight < 0 {
		d.Weight = 0
	}
	// Only a tunnel has an encapsulation, only gue a port, and ipip no
	// checksum option.
	switch {
	case d.Forward != Tunnel:
		d.TunType, d.TunPort, d.TunCsum = IPIP, 0, NoCsum
	case d.TunType == IPIP:
		d.TunPort, d.TunCsum = 0, NoCsum
	case d.TunType == GRE:
		d.TunPort = 0
	}
	return d
}

// Normal returns a copy of t with every key and value in normal form.
func (t Table) Normal() Table {
	out := make(Table, len(t))
	for _, e := range t {
		s := e.Service.Normal()
		ne := Entry{Service: s, Dests: make(map[DestKey]Dest, len(e.Dests))}
		for _, d := range e.Dests {
			d = d.Normal()
			ne.Dests[d.Key()] = d
		}
		out[s.Key] = ne
	}
	return out
}

// normalIfNeeded returns t itself when it is already in normal form (a
// kernel dump or Desired's output always is), else t.Normal(): reconciling
// a large table then costs no copy.
func (t Table) normalIfNeeded() Table {
	for k, e := range t {
		if e.Service.Key != k || e.Service.Normal() != e.Service {
			return t.Normal()
		}
		for dk, d := range e.Dests {
			if d.Key() != dk || d.Normal() != d {
				return t.Normal()
			}
		}
	}
	return t
}

// Clone returns a deep copy of t.
func (t Table) Clone() Table {
	out := make(Table, len(t))
	for k, e := range t {
		ds := make(map[DestKey]Dest, len(e.Dests))
		for dk, d := range e.Dests {
			ds[dk] = d
		}
		out[k] = Entry{Service: e.Service, Dests: ds}
	}
	return out
}

// Equal reports whether t and u hold the same services and destinations
// (compared as they are; normalise first to compare kernel and config).
func (t Table) Equal(u Table) bool {
	if len(t) != len(u) {
		return false
	}
	for k, e := range t {
		f, ok := u[k]
		if !ok || e.Service != f.Service || len(e.Dests) != len(f.Dests) {
			return false
		}
		for dk, d := range e.Dests {
			if g, ok := f.Dests[dk]; !ok || g != d {
				return false
			}
		}
	}
	return true
}

// Keys returns the service keys of t in ipvsadm's --sort order.
func (t Table) Keys() []ServiceKey {
	keys := make([]ServiceKey, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, CompareServiceKeys)
	return keys
}

// SortedDests returns the entry's destinations in ipvsadm's --sort order.
func (e Entry) SortedDests() []Dest {
	return appendSortedDests(make([]Dest, 0, len(e.Dests)), e.Dests)
}

// appendSortedDests appends the destinations of m to ds in key order.
func appendSortedDests(ds []Dest, m map[DestKey]Dest) []Dest {
	from := len(ds)
	for _, d := range m {
		ds = append(ds, d)
	}
	slices.SortFunc(ds[from:], func(a, b Dest) int { return CompareDestKeys(a.Key(), b.Key()) })
	return ds
}

// CompareServiceKeys orders keys as ipvsadm --sort lists services: by
// firewall mark (address services, mark 0, first), family, protocol,
// address, port.
func CompareServiceKeys(a, b ServiceKey) int {
	return cmp.Or(
		cmp.Compare(a.FWMark, b.FWMark),
		cmp.Compare(a.Family, b.Family),
		cmp.Compare(a.Protocol, b.Protocol),
		a.Addr.Compare(b.Addr),
		cmp.Compare(a.Port, b.Port),
	)
}

// CompareDestKeys orders destinations by address, then port.
func CompareDestKeys(a, b DestKey) int {
	return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port))
}
