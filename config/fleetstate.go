package config

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Fleet configuration versions (issue 14). A pushed fleet document gets a
// version one above the highest its node has seen; versions are compared
// by number, then document hash, then origin, so that two pushes made on
// both sides of a partition resolve the same way on every node. A node
// never applies a version that is not newer than the one it applied, also
// after a restart: FleetState keeps the applied version, its document and
// the history on disk.

// FleetVersion identifies a pushed fleet document.
type FleetVersion struct {
	Version uint64 `json:"version"`
	Hash    string `json:"hash"`   // sha256 of the document, lower-case hex
	Origin  string `json:"origin"` // the node that took the push
}

// Compare orders versions: number, then hash, then origin.
func (v FleetVersion) Compare(w FleetVersion) int {
	return cmp.Or(cmp.Compare(v.Version, w.Version), cmp.Compare(v.Hash, w.Hash), cmp.Compare(v.Origin, w.Origin))
}

// NextFleetVersion is the number a new push gets on a node that has seen
// highest: one above it.
func NextFleetVersion(highest uint64) uint64 { return highest + 1 }

// DocumentHash is the hash a FleetVersion carries for doc.
func DocumentHash(doc []byte) string {
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:])
}

// FleetEntry is one applied version in the history.
type FleetEntry struct {
	FleetVersion
	Applied  time.Time `json:"applied"`
	PushedBy string    `json:"pushed_by,omitempty"` // who pushed it, as the origin knew them
	// Signature is the document's signature as announced (SignDocument),
	// "" when unsigned: a rollback pushes it again with the document.
	// Absent in the state files of earlier vigils: unsigned.
	Signature string `json:"signature,omitempty"`
	// LostTo is the version with the same number that won over this one
	// (two pushes made during a partition); absent in files written
	// before it existed, and ignored by vigil versions before it.
	LostTo *FleetVersion `json:"lost_to,omitempty"`
	// Plan is the rollout plan the version was pushed with (gossip's
	// RolloutPlan as JSON, kept opaque here), so that a restarted member
	// re-announces it and the rollout's gates (canaries, order) hold;
	// absent = the default plan.
	Plan json.RawMessage `json:"plan,omitempty"`
}

// FleetHistoryLength is how many applied versions a node keeps, with
// their documents (vigil config history, rollback).
const FleetHistoryLength = 20

// ErrNotNewer refuses a version that is not newer than the applied one.
var ErrNotNewer = errors.New("not newer than the applied fleet version")

// FleetState is a node's applied fleet versions, kept in a directory: a
// state.json with the history (newest last) and one document file per
// version in it. Safe for concurrent use; a reader never waits for a
// write's disk I/O (on a busy disk its fsyncs take hundreds of
// milliseconds, and the fleet loop reads the history at every step).
type FleetState struct {
	dir string
	// wmu admits one writer (Record, MarkLost) at a time, across its
	// writes; mu guards history and is never held across I/O.
	wmu     sync.Mutex
	mu      sync.RWMutex
	history []FleetEntry
}

// stateFile is the history's file in a FleetState's directory.
const stateFile = "state.json"

// OpenFleetState reads the state kept in dir (created when missing).
func OpenFleetState(dir string) (*FleetState, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("fleet state %s: %w", dir, err)
	}
	s := &FleetState{dir: dir}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("fleet state: %w", err)
	}
	if err := json.Unmarshal(b, &s.history); err != nil {
		return nil, fmt.Errorf("fleet state %s: %w", filepath.Join(dir, stateFile), err)
	}
	return s, nil
}

// Applied returns the applied version; ok is false before the first.
func (s *FleetState) Applied() (v FleetVersion, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return lastApplied(s.history)
}

func lastApplied(h []FleetEntry) (FleetVersion, bool) {
	if len(h) == 0 {
		return FleetVersion{}, false
	}
	return h[len(h)-1].FleetVersion, true
}

// History returns the applied versions, oldest first.
func (s *FleetState) History() []FleetEntry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.history)
}

// Newer reports whether v would be applied: newer than the applied one.
func (s *FleetState) Newer(v FleetVersion) bool {
	cur, ok := s.Applied()
	return !ok || v.Compare(cur) > 0
}

func (s *FleetState) docPath(v FleetVersion) string {
	return filepath.Join(s.dir, fmt.Sprintf("v%d-%.12s.yaml", v.Version, v.Hash))
}

// Record keeps e, applied, with its document: the document first, then
// the history that names it, both written durably, so a crash between
// them leaves the old state. It refuses a version not newer than the
// applied one, or a document whose hash is not e's, and drops the oldest
// entries (and their documents) beyond FleetHistoryLength.
func (s *FleetState) Record(e FleetEntry, doc []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !s.Newer(e.FleetVersion) {
		cur, _ := s.Applied()
		return fmt.Errorf("fleet version %d (%.12s from %s): %w (%d, %.12s from %s)", e.Version, e.Hash, e.Origin, ErrNotNewer,
			cur.Version, cur.Hash, cur.Origin)
	}
	if h := DocumentHash(doc); h != e.Hash {
		return fmt.Errorf("fleet version %d: the document's hash is %.12s, not %.12s", e.Version, h, e.Hash)
	}
	// The document's name is made durable by the history's write below,
	// which syncs the same directory after its rename: one directory sync
	// for both.
	if err := writeSynced(s.docPath(e.FleetVersion), doc, 0o640, false); err != nil {
		return fmt.Errorf("fleet state: %w", err)
	}
	next := append(s.History(), e)
	var dropped []FleetEntry
	if n := len(next) - FleetHistoryLength; n > 0 {
		dropped, next = next[:n], next[n:]
	}
	if err := s.writeHistory(next); err != nil {
		return err
	}
	for _, d := range dropped {
		_ = os.Remove(s.docPath(d.FleetVersion))
	}
	return nil
}

// MarkLost records in v's history entry that it lost to winner, durably.
// A version not in the history (dropped, or never applied) is no error:
// there is nothing to mark.
func (s *FleetState) MarkLost(v, winner FleetVersion) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	next := s.History()
	i := slices.IndexFunc(next, func(e FleetEntry) bool { return e.FleetVersion == v })
	if i < 0 {
		return nil
	}
	next[i].LostTo = &winner
	return s.writeHistory(next)
}

// writeHistory makes next the history, durably written first (s.wmu
// held).
func (s *FleetState) writeHistory(next []FleetEntry) error {
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return fmt.Errorf("fleet state: %w", err)
	}
	if err := writeDurable(filepath.Join(s.dir, stateFile), b, 0o640); err != nil {
		return fmt.Errorf("fleet state: %w", err)
	}
	s.mu.Lock()
	s.history = next
	s.mu.Unlock()
	return nil
}

// Document returns the document of an entry in the history.
func (s *FleetState) Document(v FleetVersion) ([]byte, error) {
	if !slices.ContainsFunc(s.History(), func(e FleetEntry) bool { return e.FleetVersion == v }) {
		return nil, fmt.Errorf("fleet version %d (%.12s) is not in the history", v.Version, v.Hash)
	}
	b, err := os.ReadFile(s.docPath(v))
	if err != nil {
		return nil, fmt.Errorf("fleet state: %w", err)
	}
	if DocumentHash(b) != v.Hash {
		return nil, fmt.Errorf("fleet state: %s does not match its hash %.12s", s.docPath(v), v.Hash)
	}
	return b, nil
}

// FleetEffective is the configuration a node runs given its local file:
// the local configuration itself, unless it follows the fleet and has
// applied a fleet version, which is then composed with the local file's
// bytes (FleetDocument.Compose). A node restarted or reloaded so never
// goes back to its local file's older vrrp: and lb:.
func FleetEffective(local *Config, localBytes []byte) (*Config, FleetVersion, error) {
	if !local.Fleet.Follows() {
		return local, FleetVersion{}, nil
	}
	st, err := OpenFleetState(local.Fleet.StateDir)
	if err != nil {
		return nil, FleetVersion{}, err
	}
	v, ok := st.Applied()
	if !ok {
		return local, FleetVersion{}, nil
	}
	doc, err := st.Document(v)
	if err != nil {
		return nil, v, err
	}
	label := fmt.Sprintf("fleet v%d", v.Version)
	fd, err := ParseFleet(doc, label)
	if err != nil {
		return nil, v, err
	}
	cfg, err := fd.Compose(local.Node.Name, localBytes, label)
	if err != nil {
		return nil, v, err
	}
	cfg.Path, cfg.FleetVersion = local.Path, v.Version
	return cfg, v, nil
}
