package gossip

import (
	"strings"
	"testing"
	"time"
)

// The rollout plan travels in the announcement (issue 14: the canary list and order reach every
// member); the default plan adds nothing to it, so a push without one is the row it was.
func TestRolloutPlanInAnnouncement(t *testing.T) {
	ca := ConfigAnnouncement{Version: 3, Hash: strings.Repeat("cd", 32), Origin: "lb2", Size: 100,
		Plan: RolloutPlan{Order: OrderAll, Canary: []string{"lb1", "lb3"}, CanaryHold: 3 * time.Second}}
	roundTrip(t, ca, ConfigAnnouncement.Encode, DecodeConfigAnnouncement, ca)
	ca.Plan = RolloutPlan{}
	b, err := ca.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"pl"`) {
		t.Errorf("the default plan is encoded: %s", b)
	}
	if !ca.Plan.IsZero() || (RolloutPlan{Canary: []string{"x"}}).IsZero() || !ca.Plan.BackupsFirst() {
		t.Error("IsZero or BackupsFirst of the default plan")
	}

	ns := NodeSummary{ConfigVersion: 3, Follows: true, ConfigFleetHash: "cd", ConfigOrigin: "lb2", QuorumLost: 2,
		Rollout: "lb3 failed version 4: x", RolloutVersion: 4, RolloutStopped: true, Started: tSummary}
	roundTrip(t, ns, NodeSummary.Encode, DecodeNodeSummary, ns)
}
