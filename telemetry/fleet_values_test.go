package telemetry

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fleetWant is what the fleet families export after a snapshot. Counters
// are keyed "direction/kind"; masters is the exposition of
// vigil_fleet_virtual_router_masters ("" = no series).
type fleetWant struct {
	members                        map[string]float64
	rows, bytes                    map[string]float64
	dropped, refused, unknown      float64
	health, age, disagree, diverge float64
	masters                        string
}

// checkFleet compares every fleet family of issue 13 with w.
func checkFleet(t *testing.T, f *Fleet, w fleetWant) {
	t.Helper()
	for _, st := range []string{"alive", "suspect", "dead", "left"} {
		if got := testutil.ToFloat64(f.Members.WithLabelValues(st)); got != w.members[st] {
			t.Errorf("vigil_gossip_members{state=%q} = %v, want %v", st, got, w.members[st])
		}
	}
	vec := func(name string, v *prometheus.CounterVec, want map[string]float64) {
		t.Helper()
		// Exactly the wanted series: a kind never seen has none.
		if n := testutil.CollectAndCount(v); n != len(want) {
			t.Errorf("%s has %d series, want %d (%v)", name, n, len(want), want)
		}
		for k, x := range want {
			dir, kind, _ := strings.Cut(k, "/")
			if got := testutil.ToFloat64(v.WithLabelValues(dir, kind)); got != x {
				t.Errorf("%s{direction=%q,kind=%q} = %v, want %v", name, dir, kind, got, x)
			}
		}
	}
	vec("vigil_gossip_rows_total", f.Messages, w.rows)
	vec("vigil_gossip_row_bytes_total", f.Bytes, w.bytes)
	for _, c := range []struct {
		name string
		m    prometheus.Collector
		want float64
	}{
		{"vigil_gossip_dropped_total", f.Dropped, w.dropped},
		{"vigil_gossip_refused_peers_total", f.Refused, w.refused},
		{"vigil_gossip_unknown_rows_total", f.UnknownRows, w.unknown},
		{"vigil_gossip_health_score", f.HealthScore, w.health},
		{"vigil_fleet_view_age_seconds", f.SummaryAge, w.age},
		{"vigil_fleet_health_disagreements", f.Disagreements, w.disagree},
		{"vigil_fleet_desired_table_divergence", f.Divergence, w.diverge},
	} {
		if got := testutil.ToFloat64(c.m); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	const head = "# HELP vigil_fleet_virtual_router_masters Live members reporting MASTER for each virtual router: 1 is healthy, 0 no master, 2 or more split brain.\n" +
		"# TYPE vigil_fleet_virtual_router_masters gauge\n"
	exp := ""
	if w.masters != "" {
		exp = head + w.masters
	}
	if err := testutil.CollectAndCompare(f.Masters, strings.NewReader(exp), "vigil_fleet_virtual_router_masters"); err != nil {
		t.Error(err)
	}
}

func traffic(kv ...any) map[string]FleetTraffic {
	m := map[string]FleetTraffic{}
	for i := 0; i < len(kv); i += 3 {
		m[kv[i].(string)] = FleetTraffic{Msgs: uint64(kv[i+1].(int)), Bytes: uint64(kv[i+2].(int))}
	}
	return m
}

// Issue 13: the fleet's metrics are gossip members by state, rows and
// bytes sent/received by kind, drops, refused peers, unknown rows,
// memberlist's health score, the fleet view's age, masters per virtual
// router, health disagreements and desired-table divergence. The source
// (gossip.Cluster.Stats) keeps cumulative counts; Set adds the difference
// since the last snapshot, so a Prometheus counter never goes backwards:
// a lower cumulative value (the source restarted, e.g. a new Cluster)
// adds nothing and becomes the baseline the next difference is taken
// from. Gauges follow the latest snapshot; the masters family holds
// exactly the snapshot's virtual routers.
func TestFleetSetValues(t *testing.T) {
	base := FleetSnapshot{
		Members:  map[string]int{"alive": 3, "suspect": 1},
		Sent:     traffic("health", 10, 1000, "node", 2, 400),
		Received: traffic("health", 7, 700),
		Dropped:  4, Refused: 2, Unknown: 1, HealthScore: 2, SummaryAge: 1.5,
		Masters:       []FleetVR{{Name: "web", VRID: 51, Family: "ipv4", Masters: 1}, {Name: "db", VRID: 52, Family: "ipv6", Masters: 2}},
		Disagreements: 3, Divergence: 2,
	}
	baseWant := fleetWant{
		members: map[string]float64{"alive": 3, "suspect": 1},
		rows:    map[string]float64{"sent/health": 10, "sent/node": 2, "received/health": 7},
		bytes:   map[string]float64{"sent/health": 1000, "sent/node": 400, "received/health": 700},
		dropped: 4, refused: 2, unknown: 1, health: 2, age: 1.5, disagree: 3, diverge: 2,
		masters: `vigil_fleet_virtual_router_masters{family="ipv4",vrid="51",vrrp_instance="web"} 1
vigil_fleet_virtual_router_masters{family="ipv6",vrid="52",vrrp_instance="db"} 2
`,
	}
	type step struct {
		snap FleetSnapshot
		want fleetWant
	}
	for _, tc := range []struct {
		name  string
		steps []step // fed in order to one fresh Fleet after base
	}{
		{"higher counts add the difference, not the cumulative value", []step{{
			FleetSnapshot{
				Members:  map[string]int{"alive": 4, "dead": 1, "left": 2},
				Sent:     traffic("health", 15, 1600, "node", 2, 400, "config", 1, 90),
				Received: traffic("health", 9, 950, "node", 3, 600),
				Dropped:  6, Refused: 5, Unknown: 1, HealthScore: 0, SummaryAge: 0.25,
				Masters:       []FleetVR{{Name: "web", VRID: 51, Family: "ipv4", Masters: 2}},
				Disagreements: 0, Divergence: 0,
			},
			fleetWant{
				// suspect is gone from the map: 0, not the old 1.
				members: map[string]float64{"alive": 4, "dead": 1, "left": 2},
				rows:    map[string]float64{"sent/health": 15, "sent/node": 2, "sent/config": 1, "received/health": 9, "received/node": 3},
				bytes:   map[string]float64{"sent/health": 1600, "sent/node": 400, "sent/config": 90, "received/health": 950, "received/node": 600},
				dropped: 6, refused: 5, unknown: 1, health: 0, age: 0.25,
				// db left the snapshot (its config went): its series goes.
				masters: `vigil_fleet_virtual_router_masters{family="ipv4",vrid="51",vrrp_instance="web"} 2
`,
			},
		}}},
		{"a restarted source (lower counts) adds nothing; the next difference is from the new baseline", []step{
			{
				FleetSnapshot{Members: map[string]int{"alive": 1},
					Sent: traffic("health", 3, 300), Received: traffic("health", 1, 100),
					Dropped: 1, Refused: 0, Unknown: 0},
				fleetWant{members: map[string]float64{"alive": 1},
					rows:    map[string]float64{"sent/health": 10, "sent/node": 2, "received/health": 7},
					bytes:   map[string]float64{"sent/health": 1000, "sent/node": 400, "received/health": 700},
					dropped: 4, refused: 2, unknown: 1},
			},
			{
				FleetSnapshot{Members: map[string]int{"alive": 2},
					Sent: traffic("health", 5, 520, "node", 1, 200), Received: traffic("health", 4, 400),
					Dropped: 3, Refused: 1, Unknown: 2},
				fleetWant{members: map[string]float64{"alive": 2},
					rows:    map[string]float64{"sent/health": 12, "sent/node": 3, "received/health": 10},
					bytes:   map[string]float64{"sent/health": 1220, "sent/node": 600, "received/health": 1000},
					dropped: 6, refused: 3, unknown: 3},
			},
		}},
		{"a kind whose messages rose but bytes fell is skipped whole; other kinds advance", []step{{
			FleetSnapshot{Sent: traffic("health", 11, 900, "node", 4, 800), Received: traffic("health", 7, 700)},
			fleetWant{members: map[string]float64{},
				rows:    map[string]float64{"sent/health": 10, "sent/node": 4, "received/health": 7},
				bytes:   map[string]float64{"sent/health": 1000, "sent/node": 800, "received/health": 700},
				dropped: 4, refused: 2, unknown: 1},
		}}},
		{"an unchanged snapshot adds nothing", []step{{base, baseWant}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewRegistry().NewFleet()
			f.Set(base)
			checkFleet(t, f, baseWant)
			for i, s := range tc.steps {
				f.Set(s.snap)
				checkFleet(t, f, s.want)
				if t.Failed() {
					t.Fatalf("the errors above are after step %d", i+1)
				}
			}
		})
	}
}
