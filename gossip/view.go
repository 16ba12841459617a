package gossip

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"vigil/lb"
)

// Policy says whose health results decide a virtual server's real servers
// (the strings of config.HealthPolicy; gossip cannot import config).
type Policy string

// Health policies (issue 13, "One real-server set across the fleet").
const (
	// PolicyLocal: this node's checks alone decide, as in keepalived.
	PolicyLocal Policy = "local"
	// PolicyAny: up while any fresh observer sees it up.
	PolicyAny Policy = "any"
	// PolicyQuorum: down only when a strict majority of the fresh
	// observers see it down.
	PolicyQuorum Policy = "quorum"
)

// HealthResultRow is another node's health result as the store holds it.
type HealthResultRow struct {
	Origin string
	// Live is true when the origin is an alive member and its rows are not
	// stale (Store.Stale).
	Live   bool
	Result HealthResult
}

// Verdict is the fleet's verdict on one real server, for status and
// metrics.
type Verdict struct {
	VS     string
	RS     lb.DestKey
	Policy Policy
	Up     bool // the verdict
	Local  bool // this node's own checks' verdict
	// Fresh counts the fresh results (this node's included), UpCount those
	// of them that say up.
	Fresh, UpCount int
	// Disagree is Local != Up: this node's view differs from the fleet's.
	Disagree bool
	// Dissenters are the observers (this node included) whose fresh
	// result differs from Up, sorted.
	Dissenters []string
	// Since is when Up last changed, as given to Update.
	Since time.Time
}

// HealthView is the fleet-wide health view: an [lb.HealthSource] that the
// balancer reads in place of the local check view. Update recomputes it
// from the gossiped results; it does no I/O and reads no clock. RealServer
// is called from the balancer's goroutine and Update from the node's, so a
// mutex guards the verdicts.
type HealthView struct {
	self    string
	local   lb.Health
	changes chan struct{}

	mu       sync.Mutex
	policies map[string]Policy
	verdicts map[lb.RealServerID]viewEntry
	changed  map[lb.RealServerID]struct{}
}

type viewEntry struct {
	v       Verdict
	weight  int
	dynamic bool
}

var _ lb.HealthSource = (*HealthView)(nil)

// NewHealthView returns a view for the node named self over its local
// checks. Until the first Update it answers as local does.
func NewHealthView(self string, local lb.Health) *HealthView {
	return &HealthView{self: self, local: local, changes: make(chan struct{}, 1),
		verdicts: map[lb.RealServerID]viewEntry{}, changed: map[lb.RealServerID]struct{}{}}
}

// SetPolicies sets the policy of each virtual server by name; a missing
// name, or an unknown policy, is PolicyLocal. It takes effect at the next
// Update.
func (v *HealthView) SetPolicies(p map[string]Policy) {
	c := make(map[string]Policy, len(p))
	for k, pol := range p {
		c[k] = pol
	}
	v.mu.Lock()
	v.policies = c
	v.mu.Unlock()
}

// Update recomputes the verdicts of ids, every configured real server, at
// now. others are the other nodes' results (rows of this node's name, or
// of real servers not in ids, are ignored); local gives this node's own
// verdict and whether it is fresh (its checks are probing). A nil local
// takes the verdict from the local lb.Health and counts it as not fresh.
// The real servers whose verdict, or local weight, changed since the last
// Update, new ones and removed ones are queued for Changed, and Changes is
// signalled. Update calls local and the local lb.Health without holding the
// view's lock.
func (v *HealthView) Update(now time.Time, others []HealthResultRow, local func(lb.RealServerID) (up, fresh bool), ids []lb.RealServerID) {
	v.mu.Lock()
	policies := v.policies
	v.mu.Unlock()

	want := make(map[lb.RealServerID]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	byID := map[lb.RealServerID][]HealthResultRow{}
	for _, r := range others {
		id := lb.RealServerID{VS: r.Result.VS, RS: r.Result.RS}
		if r.Origin != v.self && want[id] {
			byID[id] = append(byID[id], r)
		}
	}
	next := make(map[lb.RealServerID]viewEntry, len(want))
	for id := range want {
		lup, w, dyn := v.local.RealServer(id.VS, id.RS)
		lfresh := false
		if local != nil {
			lup, lfresh = local(id)
		}
		p, ok := policies[id.VS]
		if !ok || (p != PolicyAny && p != PolicyQuorum) {
			p = PolicyLocal
		}
		vd := decide(p, v.self, lup, lfresh, byID[id])
		vd.VS, vd.RS = id.VS, id.RS
		next[id] = viewEntry{v: vd, weight: w, dynamic: dyn}
	}

	v.mu.Lock()
	n := len(v.changed)
	for id, e := range next {
		old, ok := v.verdicts[id]
		e.v.Since = now
		if ok && old.v.Up == e.v.Up {
			e.v.Since = old.v.Since
		}
		next[id] = e
		if !ok || old.v.Up != e.v.Up || old.weight != e.weight || old.dynamic != e.dynamic {
			v.changed[id] = struct{}{}
		}
	}
	for id := range v.verdicts {
		if _, ok := next[id]; !ok {
			v.changed[id] = struct{}{}
		}
	}
	v.verdicts = next
	signal := len(v.changed) > n
	v.mu.Unlock()
	if signal {
		select {
		case v.changes <- struct{}{}:
		default: // a signal is pending already: the reader will see this change too
		}
	}
}

// decide applies the policy (issue 13): a result is fresh when its
// observer is live and probing; with no fresh result this node's verdict
// stands, whatever the policy.
func decide(p Policy, self string, localUp, localFresh bool, rows []HealthResultRow) Verdict {
	type vote struct {
		node string
		up   bool
	}
	var votes []vote
	if localFresh {
		votes = append(votes, vote{self, localUp})
	}
	for _, r := range rows {
		if r.Live && r.Result.Probing {
			votes = append(votes, vote{r.Origin, r.Result.Up})
		}
	}
	slices.SortStableFunc(votes, func(a, b vote) int { return cmp.Compare(a.node, b.node) })
	votes = slices.CompactFunc(votes, func(a, b vote) bool { return a.node == b.node })
	vd := Verdict{Policy: p, Local: localUp, Fresh: len(votes)}
	for _, vt := range votes {
		if vt.up {
			vd.UpCount++
		}
	}
	switch {
	case p == PolicyLocal || vd.Fresh == 0:
		vd.Up = localUp
	case p == PolicyAny:
		vd.Up = vd.UpCount > 0
	default: // PolicyQuorum: down only on a strict majority of down
		vd.Up = 2*(vd.Fresh-vd.UpCount) <= vd.Fresh
	}
	vd.Disagree = vd.Local != vd.Up
	for _, vt := range votes {
		if vt.up != vd.Up {
			vd.Dissenters = append(vd.Dissenters, vt.node)
		}
	}
	return vd
}

// RealServer implements [lb.Health]: the fleet verdict, with the weight
// from the local checks (keepalived's misc_dynamic weight is a local
// checker's). A real server Update has not seen is answered by the local
// view.
func (v *HealthView) RealServer(vs string, rs lb.DestKey) (up bool, weight int, dynamic bool) {
	up, weight, dynamic = v.local.RealServer(vs, rs)
	v.mu.Lock()
	e, ok := v.verdicts[lb.RealServerID{VS: vs, RS: rs}]
	v.mu.Unlock()
	if ok {
		up = e.v.Up
	}
	return up, weight, dynamic
}

// Changes implements [lb.HealthSource].
func (v *HealthView) Changes() <-chan struct{} { return v.changes }

// Changed implements [lb.HealthSource]: the real servers queued by Update,
// sorted, forgotten once returned.
func (v *HealthView) Changed() []lb.RealServerID {
	v.mu.Lock()
	out := make([]lb.RealServerID, 0, len(v.changed))
	for id := range v.changed {
		out = append(out, id)
	}
	clear(v.changed)
	v.mu.Unlock()
	slices.SortFunc(out, compareRealServerIDs)
	return out
}

// Verdicts returns every verdict, sorted by virtual server, then real
// server.
func (v *HealthView) Verdicts() []Verdict {
	v.mu.Lock()
	out := make([]Verdict, 0, len(v.verdicts))
	for _, e := range v.verdicts {
		vd := e.v
		vd.Dissenters = slices.Clone(vd.Dissenters)
		out = append(out, vd)
	}
	v.mu.Unlock()
	slices.SortFunc(out, func(a, b Verdict) int {
		return compareRealServerIDs(lb.RealServerID{VS: a.VS, RS: a.RS}, lb.RealServerID{VS: b.VS, RS: b.RS})
	})
	return out
}

func compareRealServerIDs(a, b lb.RealServerID) int {
	return cmp.Or(cmp.Compare(a.VS, b.VS), lb.CompareDestKeys(a.RS, b.RS))
}
