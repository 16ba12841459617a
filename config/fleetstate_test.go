package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issue 14: versions are ordered by number, then hash, then origin, so two pushes with one
// number (both sides of a partition took one) resolve the same way on every node.
func TestFleetVersionOrder(t *testing.T) {
	v := func(n uint64, h, o string) FleetVersion { return FleetVersion{Version: n, Hash: h, Origin: o} }
	cases := []struct {
		a, b FleetVersion
		want int
	}{
		{v(2, "aa", "lb1"), v(1, "ff", "lb9"), 1},
		{v(5, "aa", "lb2"), v(5, "bb", "lb1"), -1}, // same number: the hash decides
		{v(5, "aa", "lb2"), v(5, "aa", "lb1"), 1},  // same document pushed twice: the origin decides
		{v(5, "aa", "lb1"), v(5, "aa", "lb1"), 0},
	}
	for _, c := range cases {
		if got := c.a.Compare(c.b); got != c.want || c.b.Compare(c.a) != -c.want {
			t.Errorf("%+v vs %+v: %d, want %d (and the opposite reversed)", c.a, c.b, got, c.want)
		}
	}
	if NextFleetVersion(41) != 42 {
		t.Error("a push is one above the highest version seen")
	}
}

func entry(n uint64, doc []byte, origin string) FleetEntry {
	return FleetEntry{FleetVersion: FleetVersion{Version: n, Hash: DocumentHash(doc), Origin: origin},
		Applied: time.Date(2026, 12, 6, 12, 0, int(n), 0, time.UTC), PushedBy: "root"}
}

// A node never applies an older or equal version, also after a restart; the partition's two
// pushes converge on the same one whatever order they arrive in; the history keeps the last 20
// with their documents.
func TestFleetState(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFleetState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Applied(); ok {
		t.Fatal("a new state has an applied version")
	}
	d1 := []byte("vrrp: {}\nnodes: { lb1: {} }\n")
	if err := s.Record(entry(1, d1, "lb1"), d1); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(entry(1, d1, "lb1"), d1); !errors.Is(err, ErrNotNewer) {
		t.Fatalf("the same version again: %v", err)
	}
	if err := s.Record(entry(2, d1, "lb1"), []byte("other")); err == nil || !strings.Contains(err.Error(), "hash") {
		t.Fatalf("a document that is not the version's: %v", err)
	}

	// Restart: the applied version survives, older ones are refused.
	s, err = OpenFleetState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := s.Applied(); !ok || v.Version != 1 {
		t.Fatalf("after a reopen: %+v %v", v, ok)
	}
	if got, err := s.Document(entry(1, d1, "lb1").FleetVersion); err != nil || string(got) != string(d1) {
		t.Fatalf("document of v1: %q %v", got, err)
	}

	// Two pushes numbered 2 during a partition, on lb1 and lb3: whichever arrives first, every
	// node ends with the same one.
	a, b := []byte("a: 1\n"), []byte("b: 2\n")
	ea, eb := entry(2, a, "lb1"), entry(2, b, "lb3")
	win := ea
	if eb.Compare(ea.FleetVersion) > 0 {
		win = eb
	}
	for _, order := range [][]FleetEntry{{ea, eb}, {eb, ea}} {
		s2, err := OpenFleetState(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range order {
			doc := a
			if e.Origin == "lb3" {
				doc = b
			}
			_ = s2.Record(e, doc) // the loser is refused when it comes second
		}
		if v, _ := s2.Applied(); v != win.FleetVersion {
			t.Errorf("order %s then %s: applied %+v, want %+v", order[0].Origin, order[1].Origin, v, win.FleetVersion)
		}
	}

	// The history keeps the last 20 versions and their documents.
	for n := uint64(2); n <= 25; n++ {
		doc := []byte(fmt.Sprintf("v: %d\n", n))
		if err := s.Record(entry(n, doc, "lb2"), doc); err != nil {
			t.Fatal(err)
		}
	}
	h := s.History()
	if len(h) != FleetHistoryLength || h[0].Version != 6 || h[len(h)-1].Version != 25 {
		t.Fatalf("history: %d entries, %d..%d", len(h), h[0].Version, h[len(h)-1].Version)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "v*.yaml"))
	if len(files) != FleetHistoryLength {
		t.Errorf("%d documents kept, want %d", len(files), FleetHistoryLength)
	}
	if _, err := s.Document(entry(1, d1, "lb1").FleetVersion); err == nil {
		t.Error("a version dropped from the history still has its document")
	}
	// A damaged state file is an error naming it, not an empty history.
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte("{"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFleetState(dir); err == nil || !strings.Contains(err.Error(), "state.json") {
		t.Fatalf("damaged state: %v", err)
	}
}

// fleet: in a node's local file: follow needs gossip; the state directory is absolute.
func TestFleetSection(t *testing.T) {
	base := "node: { name: n1 }\nvrrp:\n  instances:\n    - { name: a, interface: eth0, vrid: 1, priority: 100, vips: [192.0.2.100/24] }\n"
	cfg, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Fleet.Follows() || cfg.Fleet.StateDir != DefaultStateDir {
		t.Fatalf("default fleet settings: %+v", cfg.Fleet)
	}
	_, err = Parse([]byte(base + "fleet: { config: follow }\n"))
	if err == nil || !strings.Contains(err.Error(), "fleet.config") || !strings.Contains(err.Error(), "needs a gossip") {
		t.Fatalf("follow without gossip: %v", err)
	}
	_, err = Parse([]byte(base + "fleet: { config: always, state_dir: var/lib }\n"))
	if err == nil || !strings.Contains(err.Error(), "not one of ignore, follow") || !strings.Contains(err.Error(), "absolute path") {
		t.Fatalf("bad values: %v", err)
	}
	cfg, err = Parse([]byte(base + "gossip: { insecure: true }\nfleet: { config: follow, state_dir: /srv/vigil }\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Fleet.Follows() || cfg.Fleet.StateDir != "/srv/vigil" {
		t.Fatalf("fleet settings: %+v", cfg.Fleet)
	}
}

// Issue 14: "Two pushes during a partition resolve deterministically and the loser is reported":
// the loser's history entry says which version won, kept across a reopen; a history written
// before the mark existed still reads.
func TestFleetStateMarkLost(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenFleetState(dir)
	if err != nil {
		t.Fatal(err)
	}
	docA, docB := []byte("vrrp: {}\n# a\n"), []byte("vrrp: {}\n# b\n")
	a, b := entry(5, docA, "n1"), entry(5, docB, "n3")
	if a.Compare(b.FleetVersion) > 0 {
		a, b = b, a
		docA, docB = docB, docA
	}
	if err := st.Record(a, docA); err != nil {
		t.Fatal(err)
	}
	if err := st.Record(b, docB); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkLost(a.FleetVersion, b.FleetVersion); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkLost(FleetVersion{Version: 9, Hash: "00"}, b.FleetVersion); err != nil {
		t.Errorf("marking a version not in the history: %v", err)
	}
	re, err := OpenFleetState(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := re.History()
	if len(h) != 2 || h[0].LostTo == nil || *h[0].LostTo != b.FleetVersion || h[1].LostTo != nil {
		t.Fatalf("history after the mark and a reopen: %+v", h)
	}
	if v, _ := re.Applied(); v != b.FleetVersion {
		t.Errorf("applied %+v, want the winner", v)
	}
	old := `[{"version": 1, "hash": "ab", "origin": "n1", "applied": "2026-12-06T12:00:00Z"}]`
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	if re, err = OpenFleetState(dir); err != nil || len(re.History()) != 1 || re.History()[0].LostTo != nil {
		t.Errorf("a history written before lost_to: %v %+v", err, re.History())
	}
}

// The fleet loop reads the state while a version is recorded (node: the report goes out before the
// record's fsyncs): readers run beside the writers, and two writers (Record, MarkLost) do not lose
// each other's changes. Run with -race.
func TestFleetStateConcurrent(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenFleetState(dir)
	if err != nil {
		t.Fatal(err)
	}
	first := []byte("vrrp: {}\n# 1\n")
	if err := st.Record(entry(1, first, "n1"), first); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				h := st.History()
				if v, ok := st.Applied(); !ok || v.Version < h[len(h)-1].Version {
					t.Errorf("applied %+v behind a history read before it (last %d)", v, h[len(h)-1].Version)
					return
				}
				_ = st.Newer(FleetVersion{Version: 2})
			}
		})
	}
	var writers sync.WaitGroup
	writers.Go(func() {
		for n := uint64(2); n <= 12; n++ {
			doc := fmt.Appendf(nil, "vrrp: {}\n# %d\n", n)
			if err := st.Record(entry(n, doc, "n1"), doc); err != nil {
				t.Error(err)
			}
		}
	})
	writers.Go(func() {
		if err := st.MarkLost(entry(1, first, "n1").FleetVersion, FleetVersion{Version: 1, Hash: "ff", Origin: "n2"}); err != nil {
			t.Error(err)
		}
	})
	writers.Wait()
	close(done)
	readers.Wait()
	re, err := OpenFleetState(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := re.History()
	if len(h) != 12 || h[0].LostTo == nil || h[11].Version != 12 {
		t.Fatalf("after concurrent records and a mark: %d entries, first lost to %v, last %d", len(h), h[0].LostTo, h[len(h)-1].Version)
	}
}
