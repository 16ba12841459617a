package prom

import (
	"fmt"
	"maps"
	"testing"
)

// Queries, with the labels every test series carries (job from the scrape config, node from the
// target's static labels, vrrp_instance from vigil).
const (
	qMaster      = `vigil_vrrp_instance_state{job="vigil",vrrp_instance="web",state="master"}`
	qMasterSum   = `sum(` + qMaster + `)`
	qUp          = `up{job="vigil"}`
	qStateSet    = `count by (node) (vigil_vrrp_instance_state{job="vigil",vrrp_instance="web"})`
	qStateSetSum = `sum by (node) (vigil_vrrp_instance_state{job="vigil",vrrp_instance="web"})`
	qBuildInfo   = `vigil_build_info{job="vigil"}`
)

// nodeValues runs q and compares its samples by node label with want.
func (l *lab) nodeValues(q string, want map[string]float64) (bool, string, error) {
	v, err := l.api.query(q)
	if err != nil {
		return false, "", err
	}
	got, err := v.byNode()
	if err != nil {
		return false, v.String(), err
	}
	return maps.Equal(got, want), fmt.Sprintf("%s = %v", q, v), nil
}

// atLeast runs q (one sample) and reports whether its value is >= min.
func (l *lab) atLeast(q string, min float64) (bool, string, error) {
	f, err := l.api.scalar(q)
	if err != nil {
		return false, "", err
	}
	return f >= min, fmt.Sprintf("%s = %g, want >= %g", q, f, min), nil
}

// all is the conjunction of conditions, reporting the first that does not hold.
func all(conds ...func() (bool, string, error)) func() (bool, string, error) {
	return func() (bool, string, error) {
		for _, c := range conds {
			if ok, state, err := c(); !ok || err != nil {
				return false, state, err
			}
		}
		return true, "", nil
	}
}

// targetsHealth checks /api/v1/targets: exactly the nodes in want, each with that health; an up
// target must have no lastError and a down one must have one.
func (l *lab) targetsHealth(want map[string]string) func() (bool, string, error) {
	return func() (bool, string, error) {
		ts, err := l.api.targets()
		if err != nil {
			return false, "", err
		}
		state := fmt.Sprintf("targets %v", ts)
		if len(ts) != len(want) {
			return false, state, nil
		}
		for node, health := range want {
			t, ok := ts[node]
			if !ok || t.Health != health || t.LastScrape.IsZero() || (health == "up") != (t.LastError == "") {
				return false, state, nil
			}
		}
		return true, state, nil
	}
}

// A real Prometheus scrapes two vigil nodes; what it stores must tell an operator who is master
// (exactly one, as a state set), that both daemons are up and which build they run, and, after a
// graceful-stop handover and a preemption, who took over and how often (counters that increase()
// and changes() can use across the target going away and coming back).
func TestPrometheusSeesFailover(t *testing.T) {
	l := newLab(t, true)
	l.startVigil("n1", 150)
	l.waitVIP("n1")
	l.startVigil("n2", 100)
	l.startPrometheus()

	// 1. Steady state: both targets up, n1 the one master, the state set complete.
	l.eventually("both targets up with no scrape error", l.targetsHealth(map[string]string{"n1": "up", "n2": "up"}))
	l.eventually("up == 1 for both nodes", func() (bool, string, error) {
		return l.nodeValues(qUp, map[string]float64{"n1": 1, "n2": 1})
	})
	l.eventually("n1 master and n2 not, as Prometheus sees them", all(
		func() (bool, string, error) { return l.nodeValues(qMaster, map[string]float64{"n1": 1, "n2": 0}) },
		func() (bool, string, error) { return l.nodeValues(qMasterSum, map[string]float64{"": 1}) },
		func() (bool, string, error) {
			return l.nodeValues(`vigil_vrrp_instance_state{job="vigil",vrrp_instance="web",state="backup"}`, map[string]float64{"n1": 0, "n2": 1})
		},
	))
	// Every state is always exported (a state set: four series, exactly one of them 1).
	l.eventually("a complete state set on both nodes", all(
		func() (bool, string, error) { return l.nodeValues(qStateSet, map[string]float64{"n1": 4, "n2": 4}) },
		func() (bool, string, error) { return l.nodeValues(qStateSetSum, map[string]float64{"n1": 1, "n2": 1}) },
	))
	l.eventually("vigil_build_info == 1 from both nodes, with a version", func() (bool, string, error) {
		v, err := l.api.query(qBuildInfo)
		if err != nil {
			return false, "", err
		}
		got, err := v.byNode()
		if err != nil {
			return false, v.String(), err
		}
		for _, s := range v {
			if s.Labels["version"] == "" || s.Labels["goversion"] == "" {
				return false, v.String(), fmt.Errorf("vigil_build_info without version or goversion: %v", s)
			}
		}
		return maps.Equal(got, map[string]float64{"n1": 1, "n2": 1}), v.String(), nil
	})
	// No vigil label collides with the target labels Prometheus adds (it would rename them
	// exported_instance / exported_job).
	for _, q := range []string{`{job="vigil",exported_instance=~".+"}`, `{job="vigil",exported_job=~".+"}`} {
		v, err := l.api.query(q)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != 0 {
			t.Errorf("series with a label that collides with a target label: %v", v)
		}
	}
	becomeN2, err := l.api.scalar(`vigil_vrrp_become_master_total{job="vigil",node="n2",vrrp_instance="web"}`)
	if err != nil {
		t.Fatalf("vigil_vrrp_become_master_total of the backup must exist (as 0) before its first takeover: %v", err)
	}
	t.Logf("before the handover Prometheus has n2's vigil_vrrp_become_master_total = %g", becomeN2)

	// 2. Graceful stop of the master: priority-0 advert, n2 takes over. Prometheus must show n1's
	// target down (its series stale, so the sum of masters is 1 again, not 2) and n2 master, with
	// its counters increased.
	l.stopVigil("n1")
	l.waitVIP("n2")
	l.eventually("n1's target down with an error, n2's up", l.targetsHealth(map[string]string{"n1": "down", "n2": "up"}))
	l.eventually("n2 the one master after the handover", all(
		func() (bool, string, error) { return l.nodeValues(qUp, map[string]float64{"n1": 0, "n2": 1}) },
		func() (bool, string, error) { return l.nodeValues(qMaster, map[string]float64{"n2": 1}) },
		func() (bool, string, error) { return l.nodeValues(qMasterSum, map[string]float64{"": 1}) },
		func() (bool, string, error) {
			return l.atLeast(`vigil_vrrp_become_master_total{job="vigil",node="n2",vrrp_instance="web"}`, becomeN2+1)
		},
		func() (bool, string, error) {
			return l.atLeast(`increase(vigil_vrrp_become_master_total{job="vigil",node="n2",vrrp_instance="web"}[1m])`, 0.5)
		},
		func() (bool, string, error) {
			return l.atLeast(`changes(vigil_vrrp_instance_state{job="vigil",node="n2",vrrp_instance="web",state="master"}[1m])`, 1)
		},
		func() (bool, string, error) {
			return l.atLeast(`vigil_vrrp_transitions_total{job="vigil",node="n2",vrrp_instance="web",from="backup",to="master",reason="priority_zero_received"}`, 1)
		},
		func() (bool, string, error) {
			return l.atLeast(`vigil_vrrp_priority_zero_received_total{job="vigil",node="n2",vrrp_instance="web"}`, 1)
		},
	))

	// 3. n1 comes back with the higher priority and preempts. Its counters restarted from zero
	// (Prometheus' counter-reset handling's business); n2's show the release.
	l.startVigil("n1", 150)
	l.waitVIP("n1")
	l.eventually("both targets up again", l.targetsHealth(map[string]string{"n1": "up", "n2": "up"}))
	l.eventually("n1 master again after preempting, n2 released", all(
		func() (bool, string, error) { return l.nodeValues(qUp, map[string]float64{"n1": 1, "n2": 1}) },
		func() (bool, string, error) { return l.nodeValues(qMaster, map[string]float64{"n1": 1, "n2": 0}) },
		func() (bool, string, error) { return l.nodeValues(qMasterSum, map[string]float64{"": 1}) },
		func() (bool, string, error) {
			return l.atLeast(`increase(vigil_vrrp_release_master_total{job="vigil",node="n2",vrrp_instance="web"}[1m])`, 0.5)
		},
		func() (bool, string, error) {
			return l.atLeast(`sum(vigil_vrrp_transitions_total{job="vigil",node="n2",vrrp_instance="web",from="master",to="backup"})`, 1)
		},
		func() (bool, string, error) {
			return l.atLeast(`changes(vigil_vrrp_instance_state{job="vigil",node="n2",vrrp_instance="web",state="master"}[1m])`, 2)
		},
		func() (bool, string, error) {
			return l.atLeast(`vigil_vrrp_become_master_total{job="vigil",node="n1",vrrp_instance="web"}`, 1)
		},
	))
	v, err := l.api.query(`vigil_vrrp_transitions_total{job="vigil",vrrp_instance="web"}`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("transitions as Prometheus stored them: %v", v)
}
