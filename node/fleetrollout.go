package node

import (
	"maps"
	"time"

	"vigil/config"
	"vigil/gossip"
)

// The driver of the rollout gate (rollout.go) and of the report of pushes
// that lost to a concurrent one, for fleetConfig (fleetcfg.go): it keeps
// what the pure code needs between steps (when each canary was first seen
// healthy, the gate's last answer, the versions pushed here) and logs,
// counts and reports the changes.

// rolloutState is fleetConfig's rollout bookkeeping, guarded by its mu.
type rolloutState struct {
	// plan is the applied version's plan, re-announced with it.
	plan gossip.RolloutPlan
	// gated is the version the gate last judged; since when each of its
	// canaries was first seen applied and healthy (noteCanaries).
	gated config.FleetVersion
	// gatedAt is when this node first saw gated announced: the applied
	// line's "waited" (announcement to apply) starts there.
	gatedAt time.Time
	since   map[string]time.Time
	// held is the gate's last answer for gated when it was not apply.
	held gateDecision
	// pushed are the versions pushed through this node; lost those of
	// them, or of the applied ones, known to have lost to a version with
	// the same number (reported once).
	pushed map[config.FleetVersion]bool
	lost   map[config.FleetVersion]config.FleetVersion
	// quorumDown are this node's virtual servers below their quorum.
	quorumDown map[string]bool
}

func newRolloutState() rolloutState {
	return rolloutState{since: map[string]time.Time{}, pushed: map[config.FleetVersion]bool{},
		lost: map[config.FleetVersion]config.FleetVersion{}, quorumDown: map[string]bool{}}
}

// noteQuorum follows a virtual server's quorum (the balancer's hook): a
// canary below quorum is unhealthy.
func (fc *fleetConfig) noteQuorum(vs string, up bool) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if up {
		delete(fc.ro.quorumDown, vs)
	} else {
		fc.ro.quorumDown[vs] = true
	}
}

// rolloutSummary fills the summary's rollout fields (fc.mu held).
func (fc *fleetConfig) rolloutSummary(s *gossip.NodeSummary) {
	s.Follows = fc.follow
	if !fc.follow {
		return
	}
	s.ConfigFleetHash, s.ConfigOrigin = fc.applied.Hash, fc.applied.Origin
	s.QuorumLost = len(fc.ro.quorumDown)
	if fc.ro.held.Reason != "" && fc.newer(fc.ro.gated) {
		s.Rollout, s.RolloutVersion, s.RolloutStopped = fc.ro.held.Reason, fc.ro.gated.Version, fc.ro.held.Action == gateStopped
	}
}

// gateMembers are the live members as the gate sees them for v, this
// node included with its own current state.
func (fc *fleetConfig) gateMembers(v config.FleetVersion) []rolloutMember {
	insts := fc.f.instancesByNode()
	var out []rolloutMember
	for _, r := range fc.f.cl.Rows(gossip.KindNode) {
		if r.Deleted || r.Origin == fc.self || !fc.f.live(r.Origin) {
			continue
		}
		if s, err := gossip.DecodeNodeSummary(r.Value); err == nil {
			out = append(out, memberOf(r.Origin, s, insts[r.Origin], v))
		}
	}
	var own gossip.NodeSummary
	fc.summary(&own)
	return append(out, memberOf(fc.self, own, insts[fc.self], v))
}

// release runs the gate for the announced version a at now, logs what
// changed since its last answer and reports whether to apply it now.
func (fc *fleetConfig) release(a gossip.ConfigAnnouncement, now time.Time) bool {
	v := versionOf(a)
	members := fc.gateMembers(v)
	fc.mu.Lock()
	if fc.ro.gated != v {
		fc.ro.gated, fc.ro.gatedAt, fc.ro.since, fc.ro.held = v, now, map[string]time.Time{}, gateDecision{}
	}
	noteCanaries(a.Plan, members, fc.ro.since, now)
	d := rolloutGate(fc.self, v, a.Plan, members, fc.ro.since, now)
	prev := fc.ro.held
	if d.Action == gateApply {
		fc.ro.held = gateDecision{}
	} else {
		fc.ro.held = d
	}
	fc.mu.Unlock()
	log := fc.f.log.With("version", v.Version, "origin", v.Origin)
	switch {
	case d.Action == gateApply && prev.Reason != "":
		log.Info("fleet configuration released", "held_because", prev.Reason, "last_waited_for", prev.Waiting)
	case d.Action == gateWait && (prev.Action != gateWait || prev.Reason != d.Reason):
		log.Info("fleet configuration held", "reason", d.Reason, "waiting_for", d.Waiting)
	case d.Action == gateStopped && (prev.Action != gateStopped || prev.Reason != d.Reason):
		log.Warn("fleet rollout stopped: this node keeps its version", "reason", d.Reason)
	}
	if d.Reason != prev.Reason {
		fc.f.poke() // the summary says why
	}
	return d.Action == gateApply
}

// bestAnnouncement is the best version the live members announce. Of
// equal ones, one with a plan wins: a member that applied a version
// re-announces it, and one restarted since no longer knows its plan.
func bestAnnouncement(anns []gossip.ConfigAnnouncement) *gossip.ConfigAnnouncement {
	var best *gossip.ConfigAnnouncement
	for i, a := range anns {
		if preferred(a, best) {
			best = &anns[i]
		}
	}
	return best
}

// fleetVersion is the version the fleet converges on: the best one a live
// member announces (zero when none).
func (fc *fleetConfig) fleetVersion() config.FleetVersion {
	if b := bestAnnouncement(fc.announcements()); b != nil {
		return versionOf(*b)
	}
	return config.FleetVersion{}
}

// noteLost reports, once each, the versions pushed through this node or
// applied by it that lost to an announced version with the same number
// (issue 14: "Two pushes during a partition resolve deterministically and
// the loser is reported"): a warning naming both, a metric, and a mark in
// the history.
func (fc *fleetConfig) noteLost(anns []gossip.ConfigAnnouncement) {
	var top uint64
	for _, a := range anns {
		top = max(top, a.Version)
	}
	fc.mu.Lock()
	// A push far behind the fleet can no longer meet a rival: forget it.
	maps.DeleteFunc(fc.ro.pushed, func(v config.FleetVersion, _ bool) bool { return v.Version+config.FleetHistoryLength < top })
	mine := maps.Clone(fc.ro.pushed)
	if fc.follow {
		for _, e := range fc.state.History() {
			mine[e.FleetVersion] = true
		}
	}
	var found [][2]config.FleetVersion
	for v := range mine {
		if _, ok := fc.ro.lost[v]; ok {
			continue
		}
		var winner config.FleetVersion
		for _, a := range anns {
			if w := versionOf(a); w.Version == v.Version && w.Compare(v) > 0 && w.Compare(winner) > 0 {
				winner = w
			}
		}
		if winner.Version != 0 {
			fc.ro.lost[v] = winner
			found = append(found, [2]config.FleetVersion{v, winner})
		}
	}
	fc.mu.Unlock()
	for _, p := range found {
		v, w := p[0], p[1]
		// Outside mu: the mark waits for a record in progress.
		if fc.follow {
			if err := fc.state.MarkLost(v, w); err != nil {
				fc.f.log.Error("marking a lost fleet version in the history", "version", v.Version, "err", err)
			}
		}
		fc.f.log.Warn("fleet version lost to a concurrent push with the same number", "version", v.Version,
			"hash", v.Hash[:min(12, len(v.Hash))], "origin", v.Origin, "winner_hash", w.Hash[:min(12, len(w.Hash))], "winner_origin", w.Origin)
		fc.f.metrics.ConfigLost.Inc()
	}
}

// driftCounts counts the live members by drift state, this node included.
func (fc *fleetConfig) driftCounts() map[string]int {
	fleetV := fc.fleetVersion()
	out := map[string]int{}
	for _, st := range DriftStates {
		out[st] = 0 // every state exported, 0 included
	}
	for _, r := range fc.f.cl.Rows(gossip.KindNode) {
		if r.Deleted || r.Origin == fc.self || !fc.f.live(r.Origin) {
			continue
		}
		if s, err := gossip.DecodeNodeSummary(r.Value); err == nil {
			out[driftOf(s, fleetV)]++
		}
	}
	var own gossip.NodeSummary
	fc.summary(&own)
	out[driftOf(own, fleetV)]++
	return out
}

// rolloutHeld is this node's rollout state for the metric: "" (idle),
// "waiting" or "stopped".
func (fc *fleetConfig) rolloutHeld() string {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	switch {
	case fc.ro.held.Reason == "" || !fc.follow || !fc.newer(fc.ro.gated):
		return ""
	case fc.ro.held.Action == gateStopped:
		return "stopped"
	}
	return "waiting"
}

// setRollout fills a member's fleet version, drift and rollout fields.
func setRollout(ms *MemberStatus, s gossip.NodeSummary, fleetV config.FleetVersion) {
	ms.ConfigFleetHash, ms.ConfigOrigin, ms.Follows = s.ConfigFleetHash, s.ConfigOrigin, s.Follows
	ms.Drift = driftOf(s, fleetV)
	ms.Rollout, ms.RolloutVersion, ms.RolloutStopped = s.Rollout, s.RolloutVersion, s.RolloutStopped
}

// maxConfigError bounds the error a summary reports: with the rollout's
// reason and the rest, the summary fits one gossip row.
const maxConfigError = 256
