package telemetry

import (
	"fmt"
	"testing"
)

// Issue 14: "Drift: a node whose running config differs from the fleet version ... is shown in
// vigil members and metrics"; the rollout gate's state is a state set (one series at 1).
func TestFleetRolloutMetrics(t *testing.T) {
	r := NewRegistry()
	f := r.NewFleet()
	f.Set(FleetSnapshot{Drift: map[string]int{"in-sync": 2, "failed": 1, "behind": 0}, Rollout: "stopped"})
	f.ConfigLost.Inc()
	got := fmt.Sprint(series(t, r, "vigil_fleet_config_drift"), series(t, r, "vigil_fleet_rollout_state"), series(t, r, "vigil_fleet_config_lost_total"))
	want := "map[state=behind:0 state=failed:1 state=in-sync:2] map[state=idle:0 state=stopped:1 state=waiting:0] map[:1]"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	f.Set(FleetSnapshot{})
	if got := fmt.Sprint(series(t, r, "vigil_fleet_rollout_state")); got != "map[state=idle:1 state=stopped:0 state=waiting:0]" {
		t.Errorf("idle: %s", got)
	}
}
