package main

import (
	"strings"
	"testing"

	"vigil/config"
	"vigil/node"
)

// Issue 14: "--wait prints, per node, the version applied or the error, and exits non-zero unless
// every live member applied it"; "the rollout stops (nodes not yet applied keep their version)";
// "Two pushes during a partition resolve deterministically and the loser is reported".
func TestWaitOutcome(t *testing.T) {
	v := config.FleetVersion{Version: 5, Hash: "bbbb", Origin: "n1"}
	m := func(name string, mod func(*node.MemberStatus)) node.MemberStatus {
		ms := node.MemberStatus{Name: name, State: "alive", Follows: true, Drift: node.DriftBehind, ConfigVersion: 4, ConfigFleetHash: "aaaa", ConfigOrigin: "n2"}
		if mod != nil {
			mod(&ms)
		}
		return ms
	}
	runs := func(n uint64, h, o string) func(*node.MemberStatus) {
		return func(ms *node.MemberStatus) { ms.ConfigVersion, ms.ConfigFleetHash, ms.ConfigOrigin = n, h, o }
	}
	tests := []struct {
		name string
		m    node.MemberStatus
		want waitOutcome
		line string
	}{
		{"runs it", m("n1", runs(5, "bbbb", "n1")), outApplied, "n1: applied version 5"},
		{"runs a later one", m("n1", runs(6, "0000", "n3")), outApplied, "n1: applied version 6"},
		{"an older daemon without the hash", m("n1", runs(5, "", "")), outApplied, "applied version 5"},
		{"runs the same number, a winning hash", m("n3", runs(5, "cccc", "n3")), outLost, "n3: runs version 5 from n3 (sha256 cccc), which won over this push"},
		{"runs the same number, a losing hash", m("n3", runs(5, "aaaa", "n3")), outPending, "not applied (runs 5)"},
		{"failed", m("n3", func(ms *node.MemberStatus) { ms.ConfigError, ms.ConfigErrorVersion = "no eth9", 5 }), outFailed, "n3: FAILED version 5 (runs 4): no eth9"},
		{"held back", m("n2", func(ms *node.MemberStatus) {
			ms.Rollout, ms.RolloutVersion, ms.RolloutStopped = "n3 failed version 5: x", 5, true
		}),
			outHeld, "n2: held back, the rollout stopped (runs 4): n3 failed version 5: x"},
		{"waiting its turn", m("n1", func(ms *node.MemberStatus) {
			ms.Rollout, ms.RolloutVersion = "canary n2 healthy, in its 3s hold until 12:00:03.0", 5
		}),
			outPending, "n1: not applied (runs 4): canary n2 healthy"},
		{"not following", m("n4", func(ms *node.MemberStatus) { ms.Follows, ms.Drift = false, node.DriftNotFollowing }), outIgnored, "does not follow"},
		{"dead", m("n5", func(ms *node.MemberStatus) { ms.State = "dead" }), outIgnored, ""},
	}
	for _, tc := range tests {
		got, line := waitOutcomeOf(tc.m, v)
		if got != tc.want || !strings.Contains(line, tc.line) || (tc.line == "") != (line == "") {
			t.Errorf("%s: got %d %q, want %d %q", tc.name, got, line, tc.want, tc.line)
		}
	}

	verdicts := []struct {
		name string
		ms   []node.MemberStatus
		want string // "" exit 0
	}{
		{"everyone applied", []node.MemberStatus{m("n1", runs(5, "bbbb", "n1")), m("n2", runs(5, "bbbb", "n1")), tests[8].m}, ""},
		{"stopped", []node.MemberStatus{tests[5].m, tests[6].m, m("n1", nil)},
			"version 5 failed on n3: the rollout stopped; held back: n2, n1"},
		{"lost", []node.MemberStatus{m("n1", runs(5, "bbbb", "n1")), tests[3].m},
			"version 5 (sha256 bbbb, through n1) lost to version 5 from n3 (sha256 cccc)"},
		{"timed out", []node.MemberStatus{m("n1", nil)}, "version 5 not applied on n1 within 1m0s"},
	}
	for _, tc := range verdicts {
		err := waitVerdict(v, tc.ms, 60e9)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestHistoryNote(t *testing.T) {
	e := config.FleetEntry{FleetVersion: config.FleetVersion{Version: 5, Hash: "aa", Origin: "n1"}}
	if got := historyNote(e); got != "-" {
		t.Errorf("a version that did not lose: %q", got)
	}
	e.LostTo = &config.FleetVersion{Version: 5, Hash: "cc", Origin: "n3"}
	if got := historyNote(e); got != "lost to version 5 from n3 (sha256 cc)" {
		t.Errorf("a lost version: %q", got)
	}
}

// A bad rollout plan is a usage error (exit 2), found before the file or the daemon is read.
func TestPushPlanUsage(t *testing.T) {
	for _, args := range [][]string{
		{"config", "push", "/nonexistent/fleet.yaml", "--order", "sideways"},
		{"config", "push", "/nonexistent/fleet.yaml", "--canary-hold", "-1s"},
		{"config", "rollback", "--order", "masters-first"},
	} {
		if _, code, msg := run(t, args...); code != 2 || !strings.Contains(msg, "want backups-first or all") && !strings.Contains(msg, "must not be negative") {
			t.Errorf("%v: exit %d: %s", args, code, msg)
		}
	}
}
