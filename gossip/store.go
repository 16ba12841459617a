// Package gossip is the fleet's shared state: a pure versioned store of
// rows, each written by one node and merged by every other.
//
// The store does no I/O and reads no clock: the memberlist driver
// (Cluster, cluster.go) feeds it remote rows and the time, and sends what
// it returns. One row per (origin, kind, key); the origin alone writes it, so
// "the highest version wins" makes merging idempotent, commutative and
// associative (store_test.go checks all three on random histories). A
// version is (boot epoch, sequence): a restarted node's new rows win over
// the rows of its earlier run that peers still hold.
package gossip

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

// The kinds of rows vigil publishes. A row of another kind (from a newer
// vigil) is ignored and counted, so fleets can be upgraded node by node.
const (
	KindNode    = "node"    // a node's summary: build, config version and hash, start, drained
	KindHealth  = "health"  // a real server's health as one node's checks see it
	KindDesired = "desired" // the digest of the IPVS table a node wants
	KindVRRP    = "vrrp"    // one VRRP instance of a node, keyed by instance name
	KindConfig  = "config"  // a fleet document pushed through a node: its announcement
)

// Version orders the writes of one origin.
type Version struct {
	// Epoch identifies the origin's run (its start, chosen by the driver
	// to grow across restarts); Seq counts its writes within the run.
	Epoch, Seq uint64
}

// Compare orders versions: by epoch, then by sequence.
func (v Version) Compare(w Version) int {
	return cmp.Or(cmp.Compare(v.Epoch, w.Epoch), cmp.Compare(v.Seq, w.Seq))
}

// RowID names a row.
type RowID struct {
	Origin, Kind, Key string
}

// Row is one origin's value for a key. Deleted marks a key the origin
// withdrew (a tombstone, kept for the grace period so that the withdrawal
// reaches everyone before the row is forgotten).
type Row struct {
	RowID
	Version Version
	Value   []byte
	Deleted bool
}

// newer reports whether r supersedes s (same ID). Versions decide; two
// different rows under one version (which a correct origin never writes)
// are ordered by their content, so that every node keeps the same one.
func (r Row) newer(s Row) bool {
	if c := r.Version.Compare(s.Version); c != 0 {
		return c > 0
	}
	if r.Deleted != s.Deleted {
		return r.Deleted
	}
	return bytes.Compare(r.Value, s.Value) > 0
}

// Config configures a Store.
type Config struct {
	// Self is this node's name: the origin of its rows.
	Self string
	// Epoch is this run's epoch; it must be higher than any earlier run's
	// (the driver uses the start time in nanoseconds, or a persisted
	// counter).
	Epoch uint64
	// Grace is how long the rows of a node that left or died, and
	// tombstones, are kept before they are dropped. Default DefaultGrace.
	Grace time.Duration
	// MaxRowSize bounds a row's encoded size (see EncodedSize); Publish
	// refuses a bigger one. Default DefaultMaxRowSize.
	MaxRowSize int
}

// Defaults of Config.
const (
	DefaultGrace = 5 * time.Minute
	// DefaultMaxRowSize leaves room in memberlist's 1,400-byte UDP
	// packets for its own framing, encryption and a label.
	DefaultMaxRowSize = 1200
)

// ErrTooLarge is returned (wrapped) by Publish for a row whose encoding
// would not fit one gossip packet: it would never be sent.
var ErrTooLarge = errors.New("row too large for one gossip packet")

// Store holds the fleet's rows. It is not safe for concurrent use: the
// driver serialises calls, as it does for vrrp.Instance.
type Store struct {
	cfg  Config
	seq  uint64
	rows map[RowID]Row
	// since is when a tombstone was learnt (for Expire).
	since map[RowID]time.Time
	// gone holds the origins that left or died, and since when.
	gone    map[string]time.Time
	unknown uint64
	// sorted caches Rows' answer per kind until a row of the kind
	// changes: the fleet loop reads every kind several times per pass,
	// and at 50 members copying and sorting the whole map each time was a
	// tenth of a member's CPU during a rollout.
	sorted map[string][]Row
	// gens counts the changes of each kind's rows (Generation).
	gens map[string]uint64
}

// NewStore returns an empty store.
func NewStore(cfg Config) (*Store, error) {
	if cfg.Self == "" {
		return nil, errors.New("gossip: store needs the node's name")
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.MaxRowSize <= 0 {
		cfg.MaxRowSize = DefaultMaxRowSize
	}
	return &Store{cfg: cfg, rows: map[RowID]Row{}, since: map[RowID]time.Time{}, gone: map[string]time.Time{}, sorted: map[string][]Row{},
		gens: map[string]uint64{}}, nil
}

func knownKind(k string) bool {
	return k == KindNode || k == KindHealth || k == KindDesired || k == KindVRRP || k == KindConfig
}

// Publish writes this node's value for (kind, key) and returns the row to
// broadcast. It refuses unknown kinds and rows too large for one packet.
func (s *Store) Publish(kind, key string, value []byte) (Row, error) {
	return s.write(kind, key, value, false, time.Time{})
}

// Withdraw deletes this node's row for (kind, key): the tombstone it
// returns must be broadcast too. now starts the tombstone's grace period.
func (s *Store) Withdraw(kind, key string, now time.Time) (Row, error) {
	return s.write(kind, key, nil, true, now)
}

func (s *Store) write(kind, key string, value []byte, deleted bool, now time.Time) (Row, error) {
	if !knownKind(kind) {
		return Row{}, fmt.Errorf("gossip: unknown row kind %q", kind)
	}
	r := Row{RowID: RowID{Origin: s.cfg.Self, Kind: kind, Key: key}, Version: Version{Epoch: s.cfg.Epoch, Seq: s.seq + 1},
		Value: slices.Clone(value), Deleted: deleted}
	if n := EncodedSize(r); n > s.cfg.MaxRowSize {
		return Row{}, fmt.Errorf("gossip: %s row %q is %d bytes encoded, over %d: %w", kind, key, n, s.cfg.MaxRowSize, ErrTooLarge)
	}
	s.seq++
	s.put(r, now)
	return r, nil
}

func (s *Store) put(r Row, now time.Time) {
	s.rows[r.RowID] = r
	delete(s.sorted, r.Kind)
	s.gens[r.Kind]++
	if r.Deleted {
		s.since[r.RowID] = now
	} else {
		delete(s.since, r.RowID)
	}
}

// Merge takes rows from a peer (a broadcast or a push/pull) and returns
// those that changed the store, to be broadcast again: memberlist relays
// nothing by itself, so a receiver passes on what it had not seen. Rows of
// unknown kinds are ignored (see Unknown). A row of this node's earlier
// run for a key this run has not written is answered with a tombstone of
// this run, returned too, so the stale row leaves the fleet.
func (s *Store) Merge(now time.Time, rows ...Row) []Row {
	var changed []Row
	for _, r := range rows {
		if !knownKind(r.Kind) {
			s.unknown++
			continue
		}
		if r.Origin == s.cfg.Self {
			if t, ok := s.ownStale(r, now); ok {
				changed = append(changed, t)
			}
			continue
		}
		if cur, ok := s.rows[r.RowID]; ok && !r.newer(cur) {
			continue
		}
		r.Value = slices.Clone(r.Value)
		s.put(r, now)
		changed = append(changed, r)
	}
	return changed
}

// ownStale handles a row that names this node as its origin: a peer's
// copy of what this run wrote (nothing to do) or of an earlier run's row,
// which this run withdraws if it has not written the key itself.
func (s *Store) ownStale(r Row, now time.Time) (Row, bool) {
	if r.Version.Epoch >= s.cfg.Epoch {
		return Row{}, false
	}
	if cur, ok := s.rows[r.RowID]; ok && cur.Version.Epoch == s.cfg.Epoch {
		return Row{}, false // this run's row supersedes it already
	}
	t, err := s.write(r.Kind, r.Key, nil, true, now)
	return t, err == nil
}

// Snapshot returns every row, ordered by ID: the full state a push/pull
// sends.
func (s *Store) Snapshot() []Row { return s.collect(func(Row) bool { return true }) }

// Rows returns the live (not withdrawn) rows of one kind, every origin's,
// sorted as Snapshot sorts: only those are copied and sorted.
func (s *Store) Rows(kind string) []Row {
	rows, ok := s.sorted[kind]
	if !ok {
		rows = s.collect(func(r Row) bool { return r.Kind == kind && !r.Deleted })
		s.sorted[kind] = rows
	}
	return slices.Clone(rows)
}

// collect returns the rows keep selects, sorted by origin, kind and key.
func (s *Store) collect(keep func(Row) bool) []Row {
	var out []Row
	for _, r := range s.rows {
		if keep(r) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Row) int {
		return cmp.Or(cmp.Compare(a.Origin, b.Origin), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Key, b.Key))
	})
	return out
}

// Get returns every origin's live row for (kind, key), ordered by origin.
func (s *Store) Get(kind, key string) []Row {
	var out []Row
	for _, r := range s.rows {
		if r.Kind == kind && r.Key == key && !r.Deleted {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Row) int { return cmp.Compare(a.Origin, b.Origin) })
	return out
}

// Generation counts the changes to kind's rows (writes, merged rows,
// expiries): a reader that saw the same number has nothing new to read.
func (s *Store) Generation(kind string) uint64 { return s.gens[kind] }

// Stale reports whether origin left or died (its rows are kept for the
// grace period, marked stale to readers).
func (s *Store) Stale(origin string) bool {
	_, ok := s.gone[origin]
	return ok
}

// NodeGone marks origin as left or dead at now; its rows go after the
// grace period unless it comes back (NodeAlive).
func (s *Store) NodeGone(origin string, now time.Time) {
	if _, ok := s.gone[origin]; !ok && origin != s.cfg.Self {
		s.gone[origin] = now
	}
}

// NodeAlive marks origin as a member again.
func (s *Store) NodeAlive(origin string) { delete(s.gone, origin) }

// Expire drops the rows of origins gone for longer than the grace period
// and tombstones older than it, and returns how many rows it dropped.
func (s *Store) Expire(now time.Time) int {
	n := 0
	for id := range s.rows {
		at, gone := s.gone[id.Origin]
		if t, dead := s.since[id]; (gone && now.Sub(at) >= s.cfg.Grace) || (dead && now.Sub(t) >= s.cfg.Grace) {
			delete(s.rows, id)
			delete(s.since, id)
			delete(s.sorted, id.Kind)
			s.gens[id.Kind]++
			n++
		}
	}
	for o, at := range s.gone {
		if now.Sub(at) >= s.cfg.Grace {
			delete(s.gone, o)
		}
	}
	return n
}

// Unknown counts the rows of unknown kinds Merge ignored.
func (s *Store) Unknown() uint64 { return s.unknown }
