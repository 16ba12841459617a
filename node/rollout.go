package node

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"vigil/config"
	"vigil/gossip"
)

// The rollout gate (issue 14): whether this node applies an announced
// fleet version now, waits its turn, or holds it back because the rollout
// stopped. Pure: the fleet loop passes the live members' summaries and the
// time; the gate does no I/O. Stages: canaries, then (backups-first) the
// nodes master of nothing, then the masters; with order all, everyone
// after the canaries.

type gateAction int

const (
	gateApply   gateAction = iota
	gateWait               // not this node's turn yet
	gateStopped            // the rollout stopped: held back until a newer version
)

func (a gateAction) String() string {
	return [...]string{"apply", "wait", "stopped"}[a]
}

// gateDecision is the gate's answer; Reason says why it does not apply.
// Reason travels in the node's summary, so it stays the same while the
// wait lasts: a master's reason does not list the backups still to apply
// (at 50 members it changed at every backup's report, each change a
// summary sent to every member). Waiting names them, for the log.
type gateDecision struct {
	Action  gateAction
	Reason  string
	Waiting []string
}

// rolloutMember is a live member as the gate sees it.
type rolloutMember struct {
	Name    string
	Follows bool
	Applied bool   // runs the version or one after it
	Failed  string // its error applying the version ("": none)
	Master  bool   // master of at least one instance
	// Unhealthy says why it is not healthy ("": healthy): an instance in
	// FAULT, a virtual server below its quorum.
	Unhealthy string
}

// summaryVersion is the fleet version a summary says its node runs.
func summaryVersion(s gossip.NodeSummary) config.FleetVersion {
	return config.FleetVersion{Version: s.ConfigVersion, Hash: s.ConfigFleetHash, Origin: s.ConfigOrigin}
}

// runsAtLeast reports whether a node whose summary is s runs v or a
// version after it. A summary without a hash (an older vigil) is judged
// by the number alone.
func runsAtLeast(s gossip.NodeSummary, v config.FleetVersion) bool {
	if s.ConfigFleetHash == "" {
		return s.ConfigVersion >= v.Version
	}
	return summaryVersion(s).Compare(v) >= 0
}

// memberOf is how the gate sees a member given its summary and instances.
func memberOf(name string, s gossip.NodeSummary, insts []gossip.InstanceSummary, v config.FleetVersion) rolloutMember {
	m := rolloutMember{Name: name, Follows: s.Follows, Applied: runsAtLeast(s, v)}
	if !m.Applied && s.ConfigError != "" && s.ConfigErrorVersion == v.Version {
		m.Failed = s.ConfigError
	}
	var why []string
	for _, is := range insts {
		switch is.State {
		case gossip.StateMaster:
			m.Master = true
		case gossip.StateFault:
			why = append(why, "instance "+is.Name+" in FAULT")
		}
	}
	slices.Sort(why)
	if s.QuorumLost > 0 {
		why = append(why, fmt.Sprintf("%d virtual servers below their quorum", s.QuorumLost))
	}
	m.Unhealthy = strings.Join(why, ", ")
	return m
}

// noteCanaries keeps, in since, when each canary was first seen applied
// and healthy. A canary seen unhealthy before its hold ended starts again
// (the hold is of continuous health); one whose hold ended stays passed,
// whatever happens to it later.
func noteCanaries(plan gossip.RolloutPlan, members []rolloutMember, since map[string]time.Time, now time.Time) {
	for _, m := range members {
		if !plan.IsCanary(m.Name) {
			continue
		}
		at, ok := since[m.Name]
		if ok && !now.Before(at.Add(plan.Hold())) {
			continue
		}
		switch {
		case !m.Applied || m.Unhealthy != "":
			delete(since, m.Name)
		case !ok:
			since[m.Name] = now
		}
	}
}

// rolloutGate decides for node self whether to apply v now. members are
// the live members, self included; since is noteCanaries' record.
func rolloutGate(self string, v config.FleetVersion, plan gossip.RolloutPlan, members []rolloutMember, since map[string]time.Time, now time.Time) gateDecision {
	// "A node where validation or apply fails keeps its last good config,
	// reports the error by gossip, and the rollout stops (nodes not yet
	// applied keep their version)."
	for _, m := range members {
		if m.Failed != "" && m.Follows {
			// Its error is in its own summary: not quoted here, where
			// it would take room in this node's.
			return gateDecision{Action: gateStopped, Reason: fmt.Sprintf("%s failed version %d", m.Name, v.Version)}
		}
	}
	byName := map[string]rolloutMember{}
	for _, m := range members {
		byName[m.Name] = m
	}
	me := byName[self]
	// Canaries apply first, before any ordering.
	if plan.IsCanary(self) {
		return gateDecision{Action: gateApply}
	}
	hold := plan.Hold()
	for _, c := range plan.Canary {
		if at, ok := since[c]; ok && !now.Before(at.Add(hold)) {
			continue // passed: released for good
		}
		m, live := byName[c]
		switch {
		case !live:
			return gateDecision{Action: gateStopped, Reason: fmt.Sprintf("canary %s is not a live member (its hold did not end)", c)}
		case !m.Follows:
			return gateDecision{Action: gateStopped, Reason: fmt.Sprintf("canary %s does not follow fleet pushes", c)}
		case !m.Applied:
			return gateDecision{Action: gateWait, Reason: fmt.Sprintf("waiting for canary %s to apply version %d", c, v.Version)}
		case m.Unhealthy != "":
			return gateDecision{Action: gateStopped, Reason: fmt.Sprintf("canary %s is unhealthy after applying version %d: %s", c, v.Version, clip(m.Unhealthy, maxReason))}
		}
		at, ok := since[c]
		if !ok {
			at = now
		}
		// The end, not the time left: the reason (in the summary) stays
		// the same while the hold runs.
		return gateDecision{Action: gateWait, Reason: fmt.Sprintf("canary %s healthy, in its %s hold until %s", c, hold, at.Add(hold).UTC().Format("15:04:05.0"))}
	}
	if !plan.BackupsFirst() || !me.Master {
		return gateDecision{Action: gateApply}
	}
	// A master waits for the followers that are master of nothing; with
	// no such node (all are masters) the masters go together.
	var backups []string
	for _, m := range members {
		if m.Name != self && m.Follows && !m.Applied && !m.Master && !plan.IsCanary(m.Name) {
			backups = append(backups, m.Name)
		}
	}
	if len(backups) > 0 {
		slices.Sort(backups)
		return gateDecision{gateWait, fmt.Sprintf("master: waiting for the backups to apply version %d", v.Version), backups}
	}
	return gateDecision{Action: gateApply}
}

// maxReason bounds what a reason quotes of another member's health: the
// reason travels in this node's summary, one gossip row
// (gossip.DefaultMaxRowSize) with the node's own error.
const maxReason = 80

// clip cuts s to at most n bytes (on a rune boundary), marked with "...".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n - 3
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}

// Drift states of a member against the fleet version (issue 14: "a node
// whose running config differs from the fleet version (edited by hand,
// failed apply) is shown in vigil members and metrics").
const (
	DriftInSync       = "in-sync"       // runs the fleet version
	DriftBehind       = "behind"        // follows, runs an older version, no error (on its way, or held back)
	DriftFailed       = "failed"        // follows, a newer version failed there: it keeps its last good one
	DriftNotFollowing = "not-following" // runs its own file (fleet: {config: ignore})
)

// DriftStates lists the drift states, for metrics.
var DriftStates = []string{DriftInSync, DriftBehind, DriftFailed, DriftNotFollowing}

// driftOf is a member's drift given the fleet version (the best version
// announced by a live member; zero when there is none).
func driftOf(s gossip.NodeSummary, fleet config.FleetVersion) string {
	switch {
	case !s.Follows:
		return DriftNotFollowing
	case summaryVersion(s) == fleet || (fleet.Version == 0 && s.ConfigVersion == 0) || (s.ConfigFleetHash == "" && s.ConfigVersion == fleet.Version):
		return DriftInSync
	case s.ConfigError != "" && s.ConfigErrorVersion > s.ConfigVersion:
		return DriftFailed
	}
	return DriftBehind
}
