package node

import (
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/config"
	"vigil/gossip"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// The issue 14 sentences the gate follows:
//
//	[stop]   "A node where validation or apply fails keeps its last good config, reports the error by
//	         gossip, and the rollout stops (nodes not yet applied keep their version)."
//	[canary] "--canary applies on the named nodes first, waits until they report applied and healthy
//	         (no FAULT, no quorum lost, for --canary-hold, default 30 s), then releases the rest."
//	[order]  "--order backups-first (the default) applies on nodes that are master of nothing before
//	         masters."
func TestRolloutGate(t *testing.T) {
	v := config.FleetVersion{Version: 7, Hash: "aa", Origin: "n1"}
	backup := func(name string) rolloutMember { return rolloutMember{Name: name, Follows: true} }
	master := func(name string) rolloutMember { return rolloutMember{Name: name, Follows: true, Master: true} }
	applied := func(m rolloutMember) rolloutMember { m.Applied = true; return m }
	canary := func(names ...string) gossip.RolloutPlan {
		return gossip.RolloutPlan{Canary: names, CanaryHold: 3 * time.Second}
	}
	tests := []struct {
		rule    string
		name    string
		self    string
		plan    gossip.RolloutPlan
		members []rolloutMember
		since   map[string]time.Time
		want    gateAction
		reason  string   // a part of the reason
		waiting []string // the backups a master waits for
	}{
		{rule: "[order]", name: "a backup applies at once", self: "n2",
			members: []rolloutMember{master("n1"), backup("n2"), backup("n3")}, want: gateApply},
		{rule: "[order]", name: "a master waits for the backups", self: "n1",
			members: []rolloutMember{master("n1"), backup("n2"), applied(backup("n3"))}, want: gateWait, reason: "waiting for the backups to apply version 7", waiting: []string{"n2"}},
		{rule: "[order]", name: "a master applies once the backups have", self: "n1",
			members: []rolloutMember{master("n1"), applied(backup("n2")), applied(backup("n3"))}, want: gateApply},
		{rule: "[order]", name: "all nodes masters: no backups to wait for", self: "n1",
			members: []rolloutMember{master("n1"), master("n2")}, want: gateApply},
		{rule: "[order]", name: "a backup that does not follow is not waited for", self: "n1",
			members: []rolloutMember{master("n1"), {Name: "n2"}}, want: gateApply},
		{rule: "[order]", name: "a dead backup (not in the live members) is not waited for", self: "n1",
			members: []rolloutMember{master("n1")}, want: gateApply},
		{rule: "[order] all", name: "order all: a master applies at once", self: "n1", plan: gossip.RolloutPlan{Order: gossip.OrderAll},
			members: []rolloutMember{master("n1"), backup("n2")}, want: gateApply},
		{rule: "[stop]", name: "a member that failed stops everyone not yet applied", self: "n2",
			members: []rolloutMember{master("n1"), backup("n2"), {Name: "n3", Follows: true, Failed: "no interface eth9"}},
			want:    gateStopped, reason: "n3 failed version 7"},
		{rule: "[stop]", name: "the failure stops a canary too", self: "n2", plan: canary("n2"),
			members: []rolloutMember{backup("n2"), {Name: "n3", Follows: true, Failed: "x"}}, want: gateStopped, reason: "n3 failed"},
		{rule: "[canary]", name: "a canary applies first", self: "n2", plan: canary("n2"),
			members: []rolloutMember{master("n1"), backup("n2"), backup("n3")}, want: gateApply},
		{rule: "[canary]+[order]", name: "a canary that is master applies first", self: "n1", plan: canary("n1"),
			members: []rolloutMember{master("n1"), backup("n2")}, want: gateApply},
		{rule: "[canary]", name: "the rest waits for the canary to apply", self: "n3", plan: canary("n2"),
			members: []rolloutMember{master("n1"), backup("n2"), backup("n3")}, want: gateWait, reason: "waiting for canary n2 to apply"},
		{rule: "[canary]", name: "the rest waits for the canary's hold", self: "n3", plan: canary("n2"),
			members: []rolloutMember{master("n1"), applied(backup("n2")), backup("n3")}, since: map[string]time.Time{"n2": t0.Add(-time.Second)},
			want: gateWait, reason: "canary n2 healthy, in its 3s hold until 12:00:02.0"},
		{rule: "[canary]", name: "released once the hold ended", self: "n3", plan: canary("n2"),
			members: []rolloutMember{master("n1"), applied(backup("n2")), backup("n3")}, since: map[string]time.Time{"n2": t0.Add(-3 * time.Second)},
			want: gateApply},
		{rule: "[canary]+[order]", name: "after the canaries, a master still waits for the backups", self: "n1", plan: canary("n2"),
			members: []rolloutMember{master("n1"), applied(backup("n2")), backup("n3")}, since: map[string]time.Time{"n2": t0.Add(-5 * time.Second)},
			want: gateWait, reason: "waiting for the backups", waiting: []string{"n3"}},
		{rule: "[canary]", name: "an unhealthy canary stops the rollout", self: "n3", plan: canary("n2"),
			members: []rolloutMember{master("n1"), {Name: "n2", Follows: true, Applied: true, Unhealthy: "instance vr51 in FAULT"}, backup("n3")},
			want:    gateStopped, reason: "canary n2 is unhealthy after applying version 7: instance vr51 in FAULT"},
		{rule: "[canary]", name: "a canary that died before its hold ended stops the rollout", self: "n3", plan: canary("n2"),
			members: []rolloutMember{master("n1"), backup("n3")}, since: map[string]time.Time{"n2": t0.Add(-time.Second)},
			want: gateStopped, reason: "canary n2 is not a live member"},
		{rule: "[canary]", name: "a canary that died after its hold ended released the rest for good", self: "n3", plan: canary("n2"),
			members: []rolloutMember{master("n1"), backup("n3")}, since: map[string]time.Time{"n2": t0.Add(-4 * time.Second)},
			want: gateApply},
		{rule: "[canary]", name: "a canary that does not follow never applies: stopped", self: "n3", plan: canary("n2"),
			members: []rolloutMember{master("n1"), {Name: "n2"}, backup("n3")}, want: gateStopped, reason: "does not follow"},
		{rule: "[canary]", name: "every canary must pass", self: "n3", plan: canary("n1", "n2"),
			members: []rolloutMember{applied(master("n1")), applied(backup("n2")), backup("n3")},
			since:   map[string]time.Time{"n1": t0.Add(-10 * time.Second), "n2": t0}, want: gateWait, reason: "canary n2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			since := tc.since
			if since == nil {
				since = map[string]time.Time{}
			}
			got := rolloutGate(tc.self, v, tc.plan, tc.members, since, t0)
			if got.Action != tc.want || !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("%s: got %s %q, want %s containing %q", tc.rule, got.Action, got.Reason, tc.want, tc.reason)
			}
			if !slices.Equal(got.Waiting, tc.waiting) {
				t.Errorf("%s: waiting for %v, want %v", tc.rule, got.Waiting, tc.waiting)
			}
			if tc.want == gateApply && got.Reason != "" {
				t.Errorf("apply with a reason %q", got.Reason)
			}
		})
	}
}

// A master's reason travels in its summary: it must not change as the backups report, or every
// report makes the master send its summary to every member again (at 50 members: 49 summaries to 49
// members per push). The backups it still waits for are in Waiting, for the log.
func TestGateReasonStableWhileBackupsReport(t *testing.T) {
	v := config.FleetVersion{Version: 7, Hash: "aa", Origin: "n1"}
	members := []rolloutMember{{Name: "n1", Follows: true, Master: true}, {Name: "n2", Follows: true}, {Name: "n3", Follows: true}}
	first := rolloutGate("n1", v, gossip.RolloutPlan{}, members, map[string]time.Time{}, t0)
	members[1].Applied = true
	second := rolloutGate("n1", v, gossip.RolloutPlan{}, members, map[string]time.Time{}, t0)
	if first.Action != gateWait || second.Action != gateWait || first.Reason != second.Reason {
		t.Errorf("reason changed as n2 reported: %s %q, then %s %q", first.Action, first.Reason, second.Action, second.Reason)
	}
	if !slices.Equal(first.Waiting, []string{"n2", "n3"}) || !slices.Equal(second.Waiting, []string{"n3"}) {
		t.Errorf("waiting for %v then %v, want [n2 n3] then [n3]", first.Waiting, second.Waiting)
	}
}

// [canary] "waits until they report applied and healthy ... for --canary-hold": the hold counts
// from the first time the canary is seen applied and healthy, starts again if it turns unhealthy
// before the end, and is not undone once it ended.
func TestNoteCanaries(t *testing.T) {
	plan := gossip.RolloutPlan{Canary: []string{"n2"}, CanaryHold: 3 * time.Second}
	since := map[string]time.Time{}
	step := func(at time.Duration, m rolloutMember) {
		m.Name, m.Follows = "n2", true
		noteCanaries(plan, []rolloutMember{m, {Name: "n3", Follows: true, Applied: true}}, since, t0.Add(at))
	}
	step(0, rolloutMember{})
	if len(since) != 0 {
		t.Fatalf("not applied yet, but noted: %v", since)
	}
	step(time.Second, rolloutMember{Applied: true})
	step(2*time.Second, rolloutMember{Applied: true})
	if since["n2"] != t0.Add(time.Second) {
		t.Fatalf("the hold starts when first seen applied and healthy: %v", since)
	}
	if _, ok := since["n3"]; ok {
		t.Errorf("n3 is not a canary: %v", since)
	}
	step(3*time.Second, rolloutMember{Applied: true, Unhealthy: "instance vr51 in FAULT"})
	if _, ok := since["n2"]; ok {
		t.Fatalf("unhealthy within its hold, yet still noted: %v", since)
	}
	step(4*time.Second, rolloutMember{Applied: true})
	step(7*time.Second, rolloutMember{Applied: true, Unhealthy: "instance vr51 in FAULT"})
	if since["n2"] != t0.Add(4*time.Second) {
		t.Errorf("the hold ended at 7s: a later fault does not undo it: %v", since)
	}
}

func TestMemberOf(t *testing.T) {
	v := config.FleetVersion{Version: 5, Hash: "bb", Origin: "n1"}
	insts := []gossip.InstanceSummary{{Name: "a", State: gossip.StateMaster}, {Name: "b", State: gossip.StateFault}}
	tests := []struct {
		name  string
		s     gossip.NodeSummary
		insts []gossip.InstanceSummary
		want  rolloutMember
	}{
		{"runs the version", gossip.NodeSummary{Follows: true, ConfigVersion: 5, ConfigFleetHash: "bb", ConfigOrigin: "n1"}, nil,
			rolloutMember{Name: "x", Follows: true, Applied: true}},
		{"runs a later one", gossip.NodeSummary{Follows: true, ConfigVersion: 6, ConfigFleetHash: "00"}, nil,
			rolloutMember{Name: "x", Follows: true, Applied: true}},
		// Versions order by number, then hash, then origin (issue 14: "ties broken by hash then origin").
		{"runs a same-numbered version that loses to it", gossip.NodeSummary{Follows: true, ConfigVersion: 5, ConfigFleetHash: "aa"}, nil,
			rolloutMember{Name: "x", Follows: true}},
		{"runs a same-numbered version that wins over it", gossip.NodeSummary{Follows: true, ConfigVersion: 5, ConfigFleetHash: "cc"}, nil,
			rolloutMember{Name: "x", Follows: true, Applied: true}},
		{"an older vigil's summary: by number", gossip.NodeSummary{Follows: true, ConfigVersion: 5}, nil,
			rolloutMember{Name: "x", Follows: true, Applied: true}},
		{"failed it", gossip.NodeSummary{Follows: true, ConfigVersion: 4, ConfigError: "boom", ConfigErrorVersion: 5}, nil,
			rolloutMember{Name: "x", Follows: true, Failed: "boom"}},
		{"failed an older one", gossip.NodeSummary{Follows: true, ConfigVersion: 3, ConfigError: "boom", ConfigErrorVersion: 4}, nil,
			rolloutMember{Name: "x", Follows: true}},
		{"master, FAULT, quorum lost", gossip.NodeSummary{QuorumLost: 1}, insts,
			rolloutMember{Name: "x", Master: true, Unhealthy: "instance b in FAULT, 1 virtual servers below their quorum"}},
	}
	for _, tc := range tests {
		if got := memberOf("x", tc.s, tc.insts, v); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// Issue 14: "Drift: a node whose running config differs from the fleet version (edited by hand,
// failed apply) is shown in vigil members and metrics."
func TestDriftOf(t *testing.T) {
	fleet := config.FleetVersion{Version: 4, Hash: "cc", Origin: "n2"}
	tests := []struct {
		name  string
		s     gossip.NodeSummary
		fleet config.FleetVersion
		want  string
	}{
		{"runs the fleet version", gossip.NodeSummary{Follows: true, ConfigVersion: 4, ConfigFleetHash: "cc", ConfigOrigin: "n2"}, fleet, DriftInSync},
		{"no push yet", gossip.NodeSummary{Follows: true}, config.FleetVersion{}, DriftInSync},
		{"runs its own file", gossip.NodeSummary{ConfigVersion: 0}, fleet, DriftNotFollowing},
		{"older version, on its way", gossip.NodeSummary{Follows: true, ConfigVersion: 3, ConfigFleetHash: "aa"}, fleet, DriftBehind},
		{"a same-numbered loser", gossip.NodeSummary{Follows: true, ConfigVersion: 4, ConfigFleetHash: "aa", ConfigOrigin: "n1"}, fleet, DriftBehind},
		{"failed apply", gossip.NodeSummary{Follows: true, ConfigVersion: 3, ConfigFleetHash: "aa", ConfigError: "boom", ConfigErrorVersion: 4}, fleet, DriftFailed},
	}
	for _, tc := range tests {
		if got := driftOf(tc.s, tc.fleet); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestRolloutPlanValidate(t *testing.T) {
	nodes := []string{"n1", "n2", "n3"}
	tests := []struct {
		plan gossip.RolloutPlan
		err  string
	}{
		{gossip.RolloutPlan{}, ""},
		{gossip.RolloutPlan{Order: gossip.OrderAll, Canary: []string{"n2"}, CanaryHold: time.Second}, ""},
		{gossip.RolloutPlan{Order: "masters-first"}, `order "masters-first": want backups-first or all`},
		{gossip.RolloutPlan{Canary: []string{"n9"}}, `canary "n9": the document names no such node`},
		{gossip.RolloutPlan{Canary: []string{"n2", "n2"}}, "named twice"},
		{gossip.RolloutPlan{CanaryHold: -time.Second}, "must not be negative"},
	}
	for _, tc := range tests {
		err := tc.plan.Validate(nodes)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%+v: %v", tc.plan, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%+v: got %v, want %q", tc.plan, err, tc.err)
		}
	}
	if (gossip.RolloutPlan{}).Hold() != 30*time.Second {
		t.Errorf("the default canary hold is 30 s (issue 14)")
	}
}

// The failure and the stop reach the fleet only if the summary fits one gossip row (issue 14:
// "reports the error by gossip"): the error, the reason quoting another member's error and the
// quorum list are bounded.
func TestRolloutSummaryFitsARow(t *testing.T) {
	long := strings.Repeat("instance \"vr51\": interface \"eth9\": Link not found; ", 100)
	v := config.FleetVersion{Version: 12345, Hash: strings.Repeat("ab", 32), Origin: strings.Repeat("n", 64)}
	plan := gossip.RolloutPlan{Canary: []string{strings.Repeat("m", 64)}}
	d := rolloutGate("n1", v, plan, []rolloutMember{{Name: plan.Canary[0], Follows: true, Applied: true, Unhealthy: long}}, nil, t0)
	if d.Action != gateStopped || len(d.Reason) > maxReason+120 || !strings.HasSuffix(d.Reason, "...") {
		t.Fatalf("reason of %d bytes: %q", len(d.Reason), d.Reason)
	}
	s := gossip.NodeSummary{Build: "v1.2.3-45-gabcdef0123", ConfigVersion: v.Version, ConfigHash: strings.Repeat("cd", 32), Started: t0, Drained: true,
		ConfigError: clip(long, maxConfigError), ConfigErrorVersion: v.Version + 1, Follows: true, ConfigFleetHash: v.Hash, ConfigOrigin: v.Origin,
		Rollout: d.Reason, RolloutVersion: v.Version + 1, RolloutStopped: true}
	s.QuorumLost = 1000
	b, err := s.Encode()
	if err != nil || len(b) > gossip.MaxValueSize {
		t.Errorf("worst-case summary: %d bytes (max %d), %v", len(b), gossip.MaxValueSize, err)
	}
	if got := clip("ééé", 5); got != "..." && got != "é..." {
		t.Errorf("clip cuts inside a rune: %q", got)
	}
}
