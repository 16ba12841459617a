package telemetry

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Fleet holds the gossip fleet's metric families (issue 13). The node's
// fleet loop sets them from a FleetSnapshot about once a second; a node
// without a `gossip:` section registers none of them.
type Fleet struct {
	Members       *prometheus.GaugeVec
	Messages      *prometheus.CounterVec
	Bytes         *prometheus.CounterVec
	Dropped       prometheus.Counter
	Refused       prometheus.Counter
	UnknownRows   prometheus.Counter
	HealthScore   prometheus.Gauge
	SummaryAge    prometheus.Gauge
	Masters       *prometheus.GaugeVec
	Disagreements prometheus.Gauge
	Divergence    prometheus.Gauge
	Arbitrations  *prometheus.CounterVec
	// Fleet config pushes (issue 14): members by drift state, versions
	// that lost to a concurrent push, this node's rollout gate.
	ConfigDrift  *prometheus.GaugeVec
	ConfigLost   prometheus.Counter
	RolloutState *prometheus.GaugeVec

	mu   sync.Mutex
	last FleetSnapshot // the cumulative counts already added
}

// FleetSnapshot is the fleet's state at one update. Counts are cumulative
// since the start; Set adds the difference to the counters.
type FleetSnapshot struct {
	Members  map[string]int // by state: alive, suspect, dead, left
	Sent     map[string]FleetTraffic
	Received map[string]FleetTraffic
	Dropped  uint64
	Refused  uint64
	Unknown  uint64
	// HealthScore is memberlist's awareness score: 0 is healthy, higher
	// means this node is slow to answer probes.
	HealthScore int
	// SummaryAge is the age in seconds of the oldest node summary among the
	// live members: how far behind the fleet view may be.
	SummaryAge float64
	// Masters are the virtual routers the fleet knows, with how many live
	// members report MASTER for each.
	Masters []FleetVR
	// Disagreements counts the real servers whose verdict by this node's
	// own checks differs from the fleet's.
	Disagreements int
	// Divergence counts the live members whose desired IPVS table differs
	// from another's under the same config.
	Divergence int
	// Drift counts the live members by drift state (in-sync, behind,
	// failed, not-following); Rollout is this node's rollout gate: ""
	// (idle), "waiting" or "stopped".
	Drift   map[string]int
	Rollout string
}

// FleetTraffic is the gossip traffic of one row kind.
type FleetTraffic struct{ Msgs, Bytes uint64 }

// FleetVR is one virtual router and its masters.
type FleetVR struct {
	Name    string // an instance name it has
	VRID    uint8
	Family  string // ipv4 or ipv6
	Masters int
}

// NewFleet registers the fleet's families on r.
func (r *Registry) NewFleet() *Fleet {
	f := &Fleet{
		Members: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_gossip_members",
			Help: "Fleet members as this node's gossip sees them, by state (alive, suspect, dead, left)."}, []string{"state"}),
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_gossip_rows_total",
			Help: "Gossip rows sent (broadcast) and received (broadcast or push/pull), by direction and row kind."}, []string{"direction", "kind"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_gossip_row_bytes_total",
			Help: "Encoded bytes of the gossip rows counted by vigil_gossip_rows_total."}, []string{"direction", "kind"}),
		Dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_gossip_dropped_total",
			Help: "Gossip messages and membership events dropped because their queue was full."}),
		Refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_gossip_refused_peers_total",
			Help: "Messages, packets and streams refused from peers of another fleet: another cluster label or protocol version, not vigil, or not encrypted with a key of this keyring."}),
		UnknownRows: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_gossip_unknown_rows_total",
			Help: "Gossip rows of a kind this vigil does not know (from a newer vigil), ignored."}),
		HealthScore: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_gossip_health_score",
			Help: "memberlist's awareness score of this node: 0 is healthy; higher means it answers probes late."}),
		SummaryAge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_fleet_view_age_seconds",
			Help: "Age of the oldest node summary among live members: how far behind this node's fleet view may be."}),
		Masters: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_fleet_virtual_router_masters",
			Help: "Live members reporting MASTER for each virtual router: 1 is healthy, 0 no master, 2 or more split brain."},
			[]string{"vrrp_instance", "vrid", "family"}),
		Disagreements: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_fleet_health_disagreements",
			Help: "Real servers whose verdict by this node's own checks differs from the fleet view."}),
		Divergence: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_fleet_desired_table_divergence",
			Help: "Live members with the same config whose desired IPVS tables differ (0 when the fleet agrees)."}),
		Arbitrations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_fleet_arbitrations_total",
			Help: "Split-brain arbitration inputs fed to a VRRP instance from gossip (another live member reports MASTER), by instance."},
			[]string{"vrrp_instance"}),
		ConfigDrift: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_fleet_config_drift",
			Help: "Live members by how their fleet config stands against the fleet version: in-sync, behind, failed (a newer version failed there), not-following."},
			[]string{"state"}),
		ConfigLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_fleet_config_lost_total",
			Help: "Fleet versions pushed through or applied by this node that lost to a concurrent push with the same number."}),
		RolloutState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_fleet_rollout_state",
			Help: "This node's rollout gate for the newest fleet version (a state set): idle, waiting (its turn has not come) or stopped (a failure or an unhealthy canary holds it back)."},
			[]string{"state"}),
	}
	r.Reg.MustRegister(f.Members, f.Messages, f.Bytes, f.Dropped, f.Refused, f.UnknownRows, f.HealthScore, f.SummaryAge,
		f.Masters, f.Disagreements, f.Divergence, f.Arbitrations, f.ConfigDrift, f.ConfigLost, f.RolloutState)
	r.Fleet = f
	return f
}

// Set exports a snapshot.
func (f *Fleet) Set(s FleetSnapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, st := range []string{"alive", "suspect", "dead", "left"} {
		f.Members.WithLabelValues(st).Set(float64(s.Members[st]))
	}
	addTraffic := func(dir string, now, before map[string]FleetTraffic) {
		for kind, t := range now {
			b := before[kind]
			if t.Msgs >= b.Msgs && t.Bytes >= b.Bytes {
				f.Messages.WithLabelValues(dir, kind).Add(float64(t.Msgs - b.Msgs))
				f.Bytes.WithLabelValues(dir, kind).Add(float64(t.Bytes - b.Bytes))
			}
		}
	}
	addTraffic("sent", s.Sent, f.last.Sent)
	addTraffic("received", s.Received, f.last.Received)
	add := func(c prometheus.Counter, now, before uint64) {
		if now > before {
			c.Add(float64(now - before))
		}
	}
	add(f.Dropped, s.Dropped, f.last.Dropped)
	add(f.Refused, s.Refused, f.last.Refused)
	add(f.UnknownRows, s.Unknown, f.last.Unknown)
	f.HealthScore.Set(float64(s.HealthScore))
	f.SummaryAge.Set(s.SummaryAge)
	// Virtual routers come and go with configs: export exactly the
	// current set.
	f.Masters.Reset()
	for _, vr := range s.Masters {
		f.Masters.WithLabelValues(vr.Name, strconv.Itoa(int(vr.VRID)), vr.Family).Set(float64(vr.Masters))
	}
	f.Disagreements.Set(float64(s.Disagreements))
	f.Divergence.Set(float64(s.Divergence))
	for st, n := range s.Drift {
		f.ConfigDrift.WithLabelValues(st).Set(float64(n))
	}
	for _, st := range []string{"idle", "waiting", "stopped"} {
		on := st == s.Rollout || (st == "idle" && s.Rollout == "")
		f.RolloutState.WithLabelValues(st).Set(map[bool]float64{true: 1}[on])
	}
	f.last = s
}
