package gossip

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Unix(1_800_000_000, 0)

func newStore(t *testing.T, self string, epoch uint64) *Store {
	t.Helper()
	s, err := NewStore(Config{Self: self, Epoch: epoch, Grace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// history writes random rows as real origins do: each origin's writes
// carry increasing versions, over two runs (epochs); some are withdrawals.
func history(rng *rand.Rand, n int) []Row {
	origins := []string{"a", "b", "c"}
	kinds := []string{KindNode, KindHealth}
	seq := map[string]uint64{}
	epoch := map[string]uint64{"a": 1, "b": 1, "c": 1}
	var out []Row
	for range n {
		o := origins[rng.IntN(len(origins))]
		if rng.IntN(10) == 0 {
			epoch[o]++ // a restart: the sequence starts again
			seq[o] = 0
		}
		seq[o]++
		r := Row{RowID: RowID{Origin: o, Kind: kinds[rng.IntN(len(kinds))], Key: []string{"k1", "k2", "k3"}[rng.IntN(3)]},
			Version: Version{Epoch: epoch[o], Seq: seq[o]}}
		if rng.IntN(5) == 0 {
			r.Deleted = true
		} else {
			r.Value = []byte{byte(rng.IntN(256))}
		}
		out = append(out, r)
	}
	return out
}

func merged(t *testing.T, rows ...Row) []Row {
	t.Helper()
	s := newStore(t, "observer", 1)
	s.Merge(t0, rows...)
	return s.Snapshot()
}

// The merge is a join: idempotent, commutative and associative, so every
// node that has seen the same rows, in any order and any grouping, holds
// the same state (the dskit Mergeable contract; issue 13).
func TestMergeIsAJoin(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		rows := history(rng, 1+rng.IntN(40))
		want := merged(t, rows...)

		// Idempotent: everything again, twice, changes nothing.
		s := newStore(t, "observer", 1)
		s.Merge(t0, rows...)
		if again := s.Merge(t0, rows...); len(again) != 0 {
			t.Fatalf("trial %d: merging the same rows again changed %d rows", trial, len(again))
		}
		s.Merge(t0, s.Snapshot()...)
		if got := s.Snapshot(); !reflect.DeepEqual(got, want) {
			t.Fatalf("trial %d: not idempotent", trial)
		}

		// Commutative: any order.
		shuffled := append([]Row(nil), rows...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := merged(t, shuffled...); !reflect.DeepEqual(got, want) {
			t.Fatalf("trial %d: order changes the result:\n got %v\nwant %v", trial, got, want)
		}

		// Associative: groups merged apart on other nodes, then their
		// full states merged in any order (push/pull).
		var parts [][]Row
		for rest := shuffled; len(rest) > 0; {
			k := 1 + rng.IntN(len(rest))
			parts = append(parts, merged(t, rest[:k]...))
			rest = rest[k:]
		}
		rng.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
		final := newStore(t, "observer", 1)
		for _, p := range parts {
			final.Merge(t0, p...)
		}
		if got := final.Snapshot(); !reflect.DeepEqual(got, want) {
			t.Fatalf("trial %d: grouping changes the result", trial)
		}
	}
}

// Per (origin, kind, key) the highest version wins; the epoch first, so a
// restarted node's first row beats its earlier run's last (issue 13).
func TestHighestVersionWins(t *testing.T) {
	id := RowID{Origin: "a", Kind: KindHealth, Key: "web/198.51.100.11:80"}
	row := func(epoch, seq uint64, v string, del bool) Row {
		r := Row{RowID: id, Version: Version{Epoch: epoch, Seq: seq}, Deleted: del}
		if v != "" {
			r.Value = []byte(v)
		}
		return r
	}
	for _, tc := range []struct {
		name    string
		first   Row
		second  Row
		winner  Row
		changed bool
	}{
		{"a later write wins", row(1, 5, "up", false), row(1, 6, "down", false), row(1, 6, "down", false), true},
		{"an older write loses", row(1, 6, "down", false), row(1, 5, "up", false), row(1, 6, "down", false), false},
		{"a restart's first write beats the earlier run's last", row(1, 57, "up", false), row(2, 1, "down", false), row(2, 1, "down", false), true},
		{"the earlier run's rows lose to the restart's", row(2, 1, "down", false), row(1, 57, "up", false), row(2, 1, "down", false), false},
		{"a withdrawal at a later version wins", row(1, 5, "up", false), row(1, 6, "", true), row(1, 6, "", true), true},
		{"one version, two contents: the same winner everywhere", row(1, 5, "a", false), row(1, 5, "b", false), row(1, 5, "b", false), true},
		{"one version, two contents, other order", row(1, 5, "b", false), row(1, 5, "a", false), row(1, 5, "b", false), false},
	} {
		s := newStore(t, "observer", 1)
		s.Merge(t0, tc.first)
		got := s.Merge(t0, tc.second)
		if (len(got) == 1) != tc.changed {
			t.Errorf("%s: the second row changed the store: %v, want %v", tc.name, len(got) == 1, tc.changed)
		}
		if snap := s.Snapshot(); len(snap) != 1 || !reflect.DeepEqual(snap[0], tc.winner) {
			t.Errorf("%s: store holds %v, want %v", tc.name, snap, tc.winner)
		}
	}
}

// A restarted node withdraws what its earlier run published and this run
// did not, when a peer hands those rows back; the tombstone is of this run
// and wins everywhere.
func TestEarlierRunsRowsWithdrawn(t *testing.T) {
	s := newStore(t, "a", 2)
	if _, err := s.Publish(KindHealth, "kept", []byte("up")); err != nil {
		t.Fatal(err)
	}
	old := []Row{
		{RowID: RowID{Origin: "a", Kind: KindHealth, Key: "gone"}, Version: Version{Epoch: 1, Seq: 40}, Value: []byte("up")},
		{RowID: RowID{Origin: "a", Kind: KindHealth, Key: "kept"}, Version: Version{Epoch: 1, Seq: 41}, Value: []byte("down")},
	}
	out := s.Merge(t0, old...)
	if len(out) != 1 || out[0].Key != "gone" || !out[0].Deleted || out[0].Version.Epoch != 2 {
		t.Fatalf("Merge returned %v, want one tombstone of epoch 2 for \"gone\"", out)
	}
	peer := newStore(t, "b", 1)
	peer.Merge(t0, old...)
	peer.Merge(t0, s.Snapshot()...)
	if got := peer.Get(KindHealth, "gone"); len(got) != 0 {
		t.Errorf("the peer still has the earlier run's row: %v", got)
	}
	if got := peer.Get(KindHealth, "kept"); len(got) != 1 || string(got[0].Value) != "up" {
		t.Errorf("the peer's \"kept\": %v, want this run's \"up\"", got)
	}
	// This run's own rows coming back change nothing.
	if again := s.Merge(t0, s.Snapshot()...); len(again) != 0 {
		t.Errorf("own rows merged back: %v", again)
	}
}

// A row that cannot fit one gossip packet is refused when published, with
// an error, and nothing changes (issue 13: never silently dropped).
func TestPublishRefusesOversizedRows(t *testing.T) {
	s := newStore(t, "a", 1)
	_, err := s.Publish(KindNode, "summary", []byte(strings.Repeat("x", DefaultMaxRowSize)))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), `node row "summary"`) {
		t.Fatalf("err = %v, want ErrTooLarge naming the row", err)
	}
	if len(s.Snapshot()) != 0 {
		t.Error("the refused row was stored")
	}
	r, err := s.Publish(KindNode, "summary", []byte("small"))
	if err != nil || r.Version != (Version{Epoch: 1, Seq: 1}) {
		t.Errorf("next publish: %v %v, want sequence 1 (the refusal used none)", r.Version, err)
	}
	if _, err := s.Publish("future-kind", "k", nil); err == nil {
		t.Error("publishing an unknown kind: no error")
	}
}

// Rows of a kind this version does not know are ignored and counted, so a
// fleet can run two versions during an upgrade.
func TestUnknownKindsIgnored(t *testing.T) {
	s := newStore(t, "a", 1)
	got := s.Merge(t0, Row{RowID: RowID{Origin: "b", Kind: "future-kind", Key: "k"}, Version: Version{1, 1}},
		Row{RowID: RowID{Origin: "b", Kind: KindHealth, Key: "k"}, Version: Version{1, 2}, Value: []byte("up")})
	if len(got) != 1 || got[0].Kind != KindHealth || s.Unknown() != 1 {
		t.Errorf("changed %v, unknown %d; want the health row only and 1 unknown", got, s.Unknown())
	}
}

// The rows of a node that left or died stay, marked stale, for the grace
// period, then go; one that comes back keeps its rows. Tombstones go after
// the grace period too.
func TestExpire(t *testing.T) {
	s := newStore(t, "a", 1)
	s.Merge(t0,
		Row{RowID: RowID{Origin: "b", Kind: KindHealth, Key: "k"}, Version: Version{1, 1}, Value: []byte("up")},
		Row{RowID: RowID{Origin: "c", Kind: KindHealth, Key: "k"}, Version: Version{1, 1}, Value: []byte("up")},
		Row{RowID: RowID{Origin: "c", Kind: KindHealth, Key: "old"}, Version: Version{1, 2}, Deleted: true})
	s.NodeGone("b", t0)
	s.NodeGone("c", t0)
	if !s.Stale("b") || s.Stale("a") {
		t.Errorf("stale: b %v, a %v", s.Stale("b"), s.Stale("a"))
	}
	if n := s.Expire(t0.Add(30 * time.Second)); n != 0 {
		t.Errorf("within the grace period %d rows dropped", n)
	}
	s.NodeAlive("c")
	if n := s.Expire(t0.Add(time.Minute)); n != 2 {
		t.Errorf("after the grace period %d rows dropped, want 2 (b's row, c's tombstone)", n)
	}
	if got := s.Get(KindHealth, "k"); len(got) != 1 || got[0].Origin != "c" {
		t.Errorf("left: %v, want c's row only", got)
	}
	if s.Stale("b") {
		t.Error("b still marked stale after its rows went")
	}
}

func TestNewStoreNeedsAName(t *testing.T) {
	if _, err := NewStore(Config{}); err == nil {
		t.Error("no error")
	}
}

// Rows answers from a per-kind cache: after any change (a merge, a write, a withdrawal, an
// expiry) it gives what a fresh scan of the store gives, and a caller changing its copy does not
// change the next answer. Generation changes whenever a kind's rows do.
func TestRowsFollowChanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	s := newStore(t, "a", 1)
	scan := func(kind string) []Row {
		return s.collect(func(r Row) bool { return r.Kind == kind && !r.Deleted })
	}
	seen := map[string][]Row{}
	gens := map[string]uint64{}
	check := func(step string) {
		t.Helper()
		for _, kind := range []string{KindNode, KindHealth} {
			got, want := s.Rows(kind), scan(kind)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("after %s: Rows(%s) = %v, a scan gives %v", step, kind, got, want)
			}
			// Generation: an unchanged number promises unchanged rows.
			if g := s.Generation(kind); g == gens[kind] && !reflect.DeepEqual(seen[kind], want) {
				t.Fatalf("after %s: %s rows changed, generation still %d", step, kind, g)
			}
			seen[kind], gens[kind] = want, s.Generation(kind)
		}
	}
	for i, r := range history(rng, 200) {
		_ = s.Rows(KindNode) // fill the cache between changes
		s.Merge(t0, r)
		check("a merge")
		if i%7 == 0 {
			if _, err := s.Publish(KindHealth, "own", []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
			check("a write")
		}
		if i%11 == 0 {
			if _, err := s.Withdraw(KindHealth, "own", t0); err != nil {
				t.Fatal(err)
			}
			check("a withdrawal")
		}
	}
	if rows := s.Rows(KindNode); len(rows) > 0 {
		rows[0].Origin = "changed by the caller"
		check("a caller's change to its copy")
	}
	s.NodeGone("b", t0)
	s.Expire(t0.Add(time.Hour))
	check("an expiry")
}
