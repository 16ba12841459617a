package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// OpKind is what an [Op] does.
type OpKind uint8

// The operations the applier executes, one netlink command each.
const (
	AddService OpKind = iota + 1
	UpdateService
	DelService
	AddDest
	UpdateDest
	DelDest
)

func (k OpKind) String() string {
	switch k {
	case AddService:
		return "add-service"
	case UpdateService:
		return "update-service"
	case DelService:
		return "del-service"
	case AddDest:
		return "add-dest"
	case UpdateDest:
		return "update-dest"
	case DelDest:
		return "del-dest"
	}
	return fmt.Sprintf("op-%d", uint8(k))
}

// Op is one change to the kernel table. Service is the whole service (for
// destination ops only its key matters); Dest is set for destination ops.
type Op struct {
	Kind    OpKind
	Service Service
	Dest    Dest
}

// IsDest reports whether the op is on a destination.
func (o Op) IsDest() bool { return o.Kind == AddDest || o.Kind == UpdateDest || o.Kind == DelDest }

// String renders the op for logs and errors, e.g.
// "add-dest tcp 192.0.2.100:80 -> 198.51.100.11:8080 nat weight 1".
func (o Op) String() string {
	var b strings.Builder
	b.WriteString(o.Kind.String())
	b.WriteByte(' ')
	b.WriteString(o.Service.Key.String())
	switch {
	case o.Kind == DelService:
	case !o.IsDest():
		s := o.Service
		fmt.Fprintf(&b, " %s", s.Scheduler)
		if s.SchedFlags != 0 {
			fmt.Fprintf(&b, " flags %#x", s.SchedFlags)
		}
		if s.Persistence > 0 {
			fmt.Fprintf(&b, " persistent %v/%d", s.Persistence, s.PersistenceMask)
		}
		if s.OnePacket {
			b.WriteString(" ops")
		}
		if s.PE != "" {
			fmt.Fprintf(&b, " pe %s", s.PE)
		}
	default:
		d := o.Dest
		fmt.Fprintf(&b, " -> %s", netip.AddrPortFrom(d.Addr, d.Port))
		if o.Kind == DelDest {
			break
		}
		fmt.Fprintf(&b, " %s", d.Forward)
		switch n := d.Normal(); {
		case n.TunType == GUE:
			fmt.Fprintf(&b, " gue port %d %s", n.TunPort, n.TunCsum)
		case n.TunType == GRE:
			fmt.Fprintf(&b, " gre %s", n.TunCsum)
		}
		fmt.Fprintf(&b, " weight %d", d.Weight)
		if d.Upper != 0 || d.Lower != 0 {
			fmt.Fprintf(&b, " thresholds %d/%d", d.Upper, d.Lower)
		}
	}
	return b.String()
}

// Diff returns the minimal ordered operations that turn current into
// desired. Both tables are normalised first, so a kernel dump and a
// computed table compare equal when the kernel holds what vigil wants, and
// an unchanged entry yields no op: a restart or reload that changes nothing
// touches nothing.
//
// Every service in desired is vigil's. A service only in current is deleted
// only if managed reports it as vigil's (nil managed: none is); anything
// else (another tool's services) is left alone. A service vigil takes over
// (in desired and current) is made to match desired, destinations included.
//
// Order: services in ipvsadm --sort order, each added or updated before its
// destinations; within a service, new destinations first, then updates
// (drains to weight 0 after the other updates), then deletions, so a
// replaced real server is never missing before its successor is in; the
// deletion of whole services (which removes their destinations with them)
// comes last, in the reverse order, so that a restart right after a stop
// that removed the table adds it back fast (see diffOps).
func Diff(desired, current Table, managed func(ServiceKey) bool) []Op {
	return DiffNormal(desired.normalIfNeeded(), current.normalIfNeeded(), managed)
}

// DiffNormal is [Diff] for tables already in normal form ([Table.Normal]:
// what [Desired] and a kernel dump return), without checking that they
// are: on a 10,000-destination table the check costs as much as the
// comparison.
func DiffNormal(desired, current Table, managed func(ServiceKey) bool) []Op {
	// Find the services that differ first and sort only those: on a
	// reconcile most do not, and sorting every key would cost more than
	// comparing them.
	var changed, gone []ServiceKey
	for k, want := range desired {
		if differs(want, current, k) {
			changed = append(changed, k)
		}
	}
	for k := range current {
		if _, ok := desired[k]; !ok && managed != nil && managed(k) {
			gone = append(gone, k)
		}
	}
	return diffOps(desired, current, changed, gone)
}

// DiffKeys is [DiffNormal] restricted to the services keys: what a caller
// that knows which services can have changed (a health check's real
// server) needs to compare, at a cost independent of the table's size.
// A key in neither table is ignored.
func DiffKeys(desired, current Table, keys []ServiceKey, managed func(ServiceKey) bool) []Op {
	var changed, gone []ServiceKey
	for _, k := range keys {
		if want, ok := desired[k]; ok {
			if differs(want, current, k) {
				changed = append(changed, k)
			}
		} else if _, ok := current[k]; ok && managed != nil && managed(k) {
			gone = append(gone, k)
		}
	}
	return diffOps(desired, current, changed, gone)
}

func differs(want Entry, current Table, k ServiceKey) bool {
	have, exists := current[k]
	return !exists || have.Service != want.Service || !sameDests(want.Dests, have.Dests)
}

// diffOps returns the ops that make current's services changed equal to
// desired's and delete its services gone, in the documented order.
func diffOps(desired, current Table, changed, gone []ServiceKey) []Op {
	slices.SortFunc(changed, CompareServiceKeys)
	changed = slices.Compact(changed) // DiffKeys may be given a key twice
	// Room for every op of a cold start (the largest case: each service
	// and all its destinations added), so the slice is not copied again
	// and again as it grows.
	n := len(gone)
	for _, k := range changed {
		n += 1 + len(desired[k].Dests)
	}
	if n == 0 {
		return nil
	}
	ops := make([]Op, 0, n)
	// Scratch reused from service to service: the sorted destinations and
	// the ops that follow a service's additions.
	var sorted []Dest
	var updates, drains, dels []Op
	for _, k := range changed {
		want := desired[k]
		have, exists := current[k]
		switch {
		case !exists:
			ops = append(ops, Op{Kind: AddService, Service: want.Service})
		case have.Service != want.Service:
			ops = append(ops, Op{Kind: UpdateService, Service: want.Service})
		}
		if exists && sameDests(want.Dests, have.Dests) {
			continue // only the service changed
		}
		updates, drains, dels = updates[:0], drains[:0], dels[:0]
		sorted = appendSortedDests(sorted[:0], want.Dests)
		for _, d := range sorted {
			h, ok := have.Dests[d.Key()]
			switch {
			case !ok:
				ops = append(ops, Op{Kind: AddDest, Service: want.Service, Dest: d}) // additions come first
			case h == d:
			case d.Weight == 0 && h.Weight != 0:
				drains = append(drains, Op{Kind: UpdateDest, Service: want.Service, Dest: d})
			default:
				updates = append(updates, Op{Kind: UpdateDest, Service: want.Service, Dest: d})
			}
		}
		if exists {
			sorted = appendSortedDests(sorted[:0], have.Dests)
			for _, h := range sorted {
				if _, ok := want.Dests[h.Key()]; !ok {
					dels = append(dels, Op{Kind: DelDest, Service: want.Service, Dest: h})
				}
			}
		}
		ops = append(append(append(ops, updates...), drains...), dels...)
	}
	// Deleted services go last to first. The kernel keeps deleted
	// destinations in a trash list for a minute or two, newest first,
	// and every destination added walks it for one to revive: in this
	// order, adding the same table again (a restart after a stop) finds
	// each at the head, where first to last it walked most of the list
	// each time. A service's destinations leave its own list newest
	// first, so the first-added ends nearest the head.
	slices.SortFunc(gone, func(a, b ServiceKey) int { return CompareServiceKeys(b, a) })
	gone = slices.Compact(gone)
	for _, k := range gone {
		ops = append(ops, Op{Kind: DelService, Service: current[k].Service})
	}
	return ops
}

func sameDests(a, b map[DestKey]Dest) bool {
	if len(a) != len(b) {
		return false
	}
	for k, d := range a {
		if e, ok := b[k]; !ok || e != d {
			return false
		}
	}
	return true
}

// Errors of [Table.Apply], mirroring the kernel's EEXIST and ENOENT (ESRCH
// for a missing service).
var (
	ErrExists   = errors.New("already exists")
	ErrNotFound = errors.New("not found")
)

// Apply returns a copy of t with ops executed in order, as the kernel would
// execute them; the first op the kernel would refuse (adding what exists,
// changing or deleting what does not) stops it with an error naming the op.
// It is the in-memory model of the applier, for tests of code that drives
// one.
func (t Table) Apply(ops []Op) (Table, error) {
	out := t.Clone()
	return out, out.ApplyInPlace(ops)
}

// ApplyInPlace is Apply on t itself, for a caller that owns t (a driver's
// model of the kernel table): no copy of a large table per change. After
// an error t holds the ops before the failing one.
func (t Table) ApplyInPlace(ops []Op) error {
	out := t
	for i, op := range ops {
		k := op.Service.Key
		e, ok := out[k]
		var err error
		switch op.Kind {
		case AddService:
			if ok {
				err = ErrExists
				break
			}
			n := 0 // the additions that follow, to size the map
			for _, next := range ops[i+1:] {
				if next.Kind != AddDest || next.Service.Key != k {
					break
				}
				n++
			}
			out[k] = Entry{Service: op.Service, Dests: make(map[DestKey]Dest, n)}
		case UpdateService:
			if !ok {
				err = ErrNotFound
				break
			}
			e.Service = op.Service
			out[k] = e
		case DelService:
			if !ok {
				err = ErrNotFound
				break
			}
			delete(out, k)
		case AddDest, UpdateDest, DelDest:
			if !ok {
				err = fmt.Errorf("service %w", ErrNotFound)
				break
			}
			_, has := e.Dests[op.Dest.Key()]
			switch {
			case op.Kind == AddDest && has:
				err = ErrExists
			case op.Kind != AddDest && !has:
				err = ErrNotFound
			case op.Kind == DelDest:
				delete(e.Dests, op.Dest.Key())
			default:
				e.Dests[op.Dest.Key()] = op.Dest
			}
		default:
			err = fmt.Errorf("unknown op kind %d", op.Kind)
		}
		if err != nil {
			return fmt.Errorf("lb: op %d (%s): %w", i, op, err)
		}
	}
	return nil
}

// seconds renders a duration as ipvsadm does persistence: whole seconds.
func seconds(d time.Duration) uint32 { return uint32(d / time.Second) }

// KeysOf returns a managed predicate for [Diff]: a key of one of the
// tables (normalised). The node passes the tables it applied before and
// the new desired one, so a service dropped from the config is removed
// while services other tools created stay. On stop, keepalived removes the
// services it created (unless -I); the same is Diff(Table{}, dump,
// KeysOf(applied)).
func KeysOf(ts ...Table) func(ServiceKey) bool {
	keys := map[ServiceKey]bool{}
	for _, t := range ts {
		for k := range t {
			keys[k.Normal()] = true
		}
	}
	return func(k ServiceKey) bool { return keys[k] }
}
