package prom

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"vigil/telemetry"
)

// lbStubAddr is where the load-balancing stand-in listens, inside the prom namespace.
const lbStubAddr = "127.0.0.1:9731"

// noDataExpected are the metric families that may have no series at all in the scenario, each
// with the reason. An expression may return nothing only when a family it names is one of them
// and has no series; any other empty result fails the test.
var noDataExpected = map[string]string{
	"vigil_vrrp_send_errors_total": "a series is made only when an advert cannot be sent; no send fails in this scenario",
}

// comparison is a rule's final comparison with a constant; what it compares must have data even
// when the alert is (rightly) silent.
var comparison = regexp.MustCompile(`\s*(>|<|==|!=|>=|<=)\s*-?[0-9.]+\s*$`)

// Every PromQL expression of deploy/grafana/vigil.json and deploy/prometheus/vigil.rules.yaml
// (issue 15) is run as an instant query against a real Prometheus scraping a live fleet of two
// vigil nodes (VRRP and gossip) after a scenario that makes data for them: a preemption (n2
// reloaded with a higher priority), malformed VRRP packets, a good and a rejected reload. Each must
// parse and return data (a rule: the side compared with its threshold), but for the families listed
// in noDataExpected. Prometheus also loads the rules: each must evaluate without error, the
// reload-failure alert must fire for n1 and no critical alert may fire in the healthy fleet.
//
// The host's kernel has no IPVS in CI (the IPVS scenarios run in test/vm, without Prometheus), so
// the IPVS and health-check families come from a stand-in target: vigil's own telemetry.LB
// families with a synthetic kernel snapshot (stubIPVS), served from the prom namespace.
func TestDashboardAndRulesLive(t *testing.T) {
	start := time.Now()
	l := newLab(t, true)
	l.gossip = true
	l.extraTargets = map[string]string{"lbstub": lbStubAddr}
	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	l.ruleFiles = []string{rules}
	l.serveLBStub()
	l.startVigil("n1", 150)
	l.waitVIP("n1")
	l.startVigil("n2", 100)
	l.startPrometheus()
	l.eventually("all targets up", l.targetsHealth(map[string]string{"n1": "up", "n2": "up", "lbstub": "up"}))
	l.eventually("a fleet of two, as both nodes' gossip sees it", func() (bool, string, error) {
		return l.nodeValues(`vigil_gossip_members{job="vigil",state="alive"}`, map[string]float64{"n1": 2, "n2": 2})
	})

	// The scenario: n2 reloaded with a higher priority preempts n1 (transitions, master changes,
	// a reload); malformed VRRP packets are counted as errors; then a rejected reload on n1.
	l.reload("n2", l.vigilYAML("n2", 200))
	l.waitVIP("n2")
	l.sendBadVRRP()
	l.reload("n1", "vrrp: [this is not a config\n")
	l.eventually("Prometheus holding the scenario's data", all(
		func() (bool, string, error) {
			return l.atLeast(`sum(vigil_vrrp_become_master_total{job="vigil",node="n2"})`, 1)
		},
		func() (bool, string, error) {
			return l.atLeast(`count(vigil_vrrp_packet_errors_total{job="vigil"})`, 1)
		},
		func() (bool, string, error) {
			return l.nodeValues(`vigil_config_last_reload_successful{job="vigil",node=~"n1|n2"}`, map[string]float64{"n1": 0, "n2": 1})
		},
		func() (bool, string, error) {
			return l.nodeValues(`count by (node) (count_over_time(up{job="vigil"}[1m]) >= 4)`, map[string]float64{"n1": 1, "n2": 1, "lbstub": 1})
		},
	))

	// The dashboard's node variable, as Grafana resolves it: label_values(vigil_build_info, instance).
	data, err := l.api.get("/api/v1/label/instance/values", url.Values{"match[]": {"vigil_build_info"}})
	if err != nil {
		t.Fatal(err)
	}
	var nodes []string
	if err := json.Unmarshal(data, &nodes); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{l.target("n1"), l.target("n2"), lbStubAddr} {
		if !slices.Contains(nodes, want) {
			t.Fatalf("label_values(vigil_build_info, instance) = %q, want %s among them", nodes, want)
		}
	}
	// Grafana's multi-value "All" of a regex matcher; the dots matching any character is harmless.
	vars := map[string]string{"node": strings.Join(nodes, "|"), "__rate_interval": "1m", "__interval": "15s", "__range": "10m"}

	body, _ := allFamiliesExposition(t)
	fams := families(body)
	present := map[string]bool{} // family -> Prometheus has series of it
	withData, tolerated := 0, 0
	d := loadDashboard(t)
	for _, e := range append(d.exprs(), ruleExprs(t)...) {
		q, err := substitute(e.expr, vars)
		if err != nil {
			t.Errorf("%s: %v", e.where, err)
			continue
		}
		if _, err := l.api.query(q); err != nil {
			t.Errorf("%s: %v", e.where, err)
			continue
		}
		if e.alert != "" {
			// A silent alert is the healthy answer: what it compares must have data.
			q = comparison.ReplaceAllString(q, "")
		}
		v, err := l.api.query(q)
		if err != nil {
			t.Errorf("%s: %q: %v", e.where, q, err)
			continue
		}
		if len(v) > 0 {
			withData++
			continue
		}
		var why []string
		for _, n := range metricName.FindAllString(e.expr, -1) {
			f, _ := family(n, fams)
			if _, ok := present[f]; !ok {
				pv, err := l.api.query(fmt.Sprintf(`count({job="vigil",__name__=~"%s(_bucket|_count|_sum)?"})`, f))
				if err != nil {
					t.Fatal(err)
				}
				present[f] = len(pv) > 0
			}
			if reason, ok := noDataExpected[f]; ok && !present[f] {
				why = append(why, f+": "+reason)
			}
		}
		if len(why) == 0 {
			t.Errorf("%s returns no data: %s", e.where, q)
			continue
		}
		tolerated++
		t.Logf("no data expected in this scenario: %s (%s)", e.where, strings.Join(why, "; "))
	}
	t.Logf("%d expressions returned data, %d no data as allowed", withData, tolerated)
	for what, q := range map[string]string{
		"the malformed packets as counted": `vigil_vrrp_packet_errors_total{job="vigil"}`,
		"takeovers' mean time from decision to VIPs announced (s)": `vigil_vrrp_failover_duration_seconds_sum{job="vigil",to="master"}
			/ vigil_vrrp_failover_duration_seconds_count{job="vigil",to="master"}`,
	} {
		if v, err := l.api.query(q); err == nil {
			t.Logf("%s: %v", what, v)
		}
	}

	l.checkRulesEvaluated(len(ruleExprs(t)))
	l.eventually("VigilConfigReloadFailed firing for n1 and no critical alert firing", func() (bool, string, error) {
		firing, err := l.api.firingAlerts()
		if err != nil {
			return false, "", err
		}
		state := fmt.Sprintf("firing: %v", firing)
		for _, a := range firing {
			if a["severity"] == "critical" {
				l.t.Fatalf("critical alert firing in a healthy fleet: %v", a)
			}
		}
		return slices.ContainsFunc(firing, func(a map[string]string) bool {
			return a["alertname"] == "VigilConfigReloadFailed" && a["node"] == "n1"
		}), state, nil
	})
	t.Logf("took %s", time.Since(start).Round(100*time.Millisecond))
}

// serveLBStub serves, from inside the prom namespace, vigil's load-balancing families with a
// synthetic kernel snapshot (stubIPVS), a passing and a failing health check, and a successful and
// a failed reconcile pass.
func (l *lab) serveLBStub() {
	l.t.Helper()
	r := telemetry.NewRegistry()
	r.LB.SetIPVSSource(stubIPVS(), nil)
	r.LB.CheckProbed("http", "success", 3*time.Millisecond)
	r.LB.CheckProbed("http", "failure", time.Second)
	r.LB.Reconciled(4, nil, 2*time.Millisecond)
	r.LB.Reconciled(0, errors.New("stub"), time.Millisecond)
	r.LB.SetQuorum(true, "web", "192.0.2.100", "80", "tcp", "")
	var ln net.Listener
	if err := l.lab.Node("prom").Do(func() (err error) {
		ln, err = net.Listen("tcp", lbStubAddr)
		return err
	}); err != nil {
		l.t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(r.Reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	l.t.Cleanup(func() { srv.Close() })
}

// reload writes a node's config and sends it SIGHUP once it serves /readyz (its signal handlers
// are installed by then).
func (l *lab) reload(name, yaml string) {
	l.t.Helper()
	l.eventually(name+" ready", func() (bool, string, error) {
		_, err := l.get(name, "/readyz")
		return err == nil, "", err
	})
	l.writeConfig(name, yaml)
	if err := l.procs[name].Signal(syscall.SIGHUP); err != nil {
		l.t.Fatal(err)
	}
}

// sendBadVRRP sends both nodes, from the prom node, a VRRP packet no receive check accepts (IP
// protocol 112, TTL 64 rather than 255, 8 bytes of a version-1 header).
func (l *lab) sendBadVRRP() {
	l.t.Helper()
	pc, err := l.lab.Node("prom").ListenPacket("ip4:112", "192.0.2.9")
	if err != nil {
		l.t.Fatal(err)
	}
	defer pc.Close()
	for _, n := range []string{"n1", "n2"} {
		a := l.addrs[n]
		if _, err := pc.WriteTo([]byte{0x11, 51, 100, 1, 0, 1, 0, 0}, &net.IPAddr{IP: net.IP(a.AsSlice())}); err != nil {
			l.t.Fatalf("sending a bad VRRP packet to %s: %v", n, err)
		}
	}
}

// checkRulesEvaluated waits until Prometheus has evaluated all n rules of the rule file at least
// once, each without error (an evaluation error shows only on real series: a many-to-many join).
func (l *lab) checkRulesEvaluated(n int) {
	l.t.Helper()
	l.eventually(fmt.Sprintf("%d rules evaluated without error", n), func() (bool, string, error) {
		data, err := l.api.get("/api/v1/rules", nil)
		if err != nil {
			return false, "", err
		}
		var r struct {
			Groups []struct {
				Rules []struct {
					Name           string    `json:"name"`
					Health         string    `json:"health"`
					LastError      string    `json:"lastError"`
					LastEvaluation time.Time `json:"lastEvaluation"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			return false, "", err
		}
		seen := 0
		var state []string
		for _, g := range r.Groups {
			for _, rule := range g.Rules {
				if rule.Health == "err" || rule.LastError != "" {
					l.t.Fatalf("rule %s: health %s: %s", rule.Name, rule.Health, rule.LastError)
				}
				if rule.Health == "ok" && !rule.LastEvaluation.IsZero() {
					seen++
				} else {
					state = append(state, rule.Name+" "+rule.Health)
				}
			}
		}
		return seen == n, fmt.Sprintf("%d of %d evaluated; not yet: %v", seen, n, state), nil
	})
}

// firingAlerts returns the labels of the alerts firing now.
func (a *promAPI) firingAlerts() ([]map[string]string, error) {
	data, err := a.get("/api/v1/alerts", nil)
	if err != nil {
		return nil, err
	}
	var r struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, al := range r.Alerts {
		if al.State == "firing" {
			out = append(out, al.Labels)
		}
	}
	return out, nil
}
