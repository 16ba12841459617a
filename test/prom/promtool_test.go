package prom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"vigil/telemetry"
	"vigil/test/netlab"
)

// promtool check metrics lints a live /metrics scrape of both a master and a backup, after a
// reload, so the families that appear only once something happened (transitions, adverts
// received, reloads) are in it too: counter names end in _total, units are base units, every family
// has help text, no reserved or duplicate names. Any finding fails the test with promtool's output.
func TestPromtoolCheckMetrics(t *testing.T) {
	l := newLab(t, false)
	l.startVigil("n1", 150)
	l.waitVIP("n1")
	l.startVigil("n2", 100)
	// Once both serve /readyz (signal handlers installed), a reload (SIGHUP) on each, so that
	// vigil_config_reloads_total has a series too.
	for _, n := range []string{"n1", "n2"} {
		l.eventually(n+" ready", func() (bool, string, error) {
			_, err := l.get(n, "/readyz")
			return err == nil, "", err
		})
		if err := l.procs[n].Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"n1", "n2"} {
		var body []byte
		l.eventually(n+"'s /metrics showing its reload and transitions", func() (bool, string, error) {
			var err error
			body, err = l.get(n, "/metrics")
			s := string(body)
			return strings.Contains(s, "vigil_config_reloads_total{") && strings.Contains(s, "vigil_vrrp_transitions_total{"), "", err
		})
		out, err := lint(body)
		if err != nil {
			t.Errorf("%s: promtool check metrics reports problems in vigil's /metrics (%v):\n%s", n, err, out)
			continue
		}
		t.Logf("%s: promtool check metrics: no problems (%d bytes, %d families)", n, len(body), strings.Count(string(body), "# TYPE "))
		for _, p := range promlintProblems(t, body) {
			t.Errorf("%s: %s", n, p)
		}
	}
}

// promlintProblems lints an exposition with client_golang's promlint: Debian's promtool is
// Prometheus 2.42's linter, promlint in the client_golang vigil builds with has newer rules.
func promlintProblems(t *testing.T, body []byte) []string {
	t.Helper()
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	var out []string
	for _, p := range problems {
		out = append(out, fmt.Sprintf("promlint (client_golang): %s %s", p.Metric, p.Text))
	}
	return out
}

// lint runs `promtool check metrics` on an exposition. It returns an error with promtool's output
// when promtool reports anything, or fails to run.
func lint(body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err == nil && len(bytes.TrimSpace(out)) > 0 {
		err = errors.New("promtool exited 0 but printed findings")
	}
	return out, err
}

// Families that a short scenario does not produce (health checks, IPVS reconciles, virtual-server
// quorum, packet errors, ...) are linted too: every metric family vigil's telemetry package defines
// gets one series with placeholder label values, and promtool checks the exposition the same
// handler type serves. New fields in the telemetry structs are found by reflection.
func TestPromtoolCheckAllFamilies(t *testing.T) {
	if os.Getenv(netlab.EnvNetNS) != "1" {
		t.Skip("set " + netlab.EnvNetNS + "=1 to run the Prometheus tier (test/prom)")
	}
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Fatalf("promtool not found (%v): run test/deps.sh", err)
	}
	body, names := allFamiliesExposition(t)
	for _, n := range names {
		if !bytes.Contains(body, []byte("# TYPE "+n+" ")) {
			t.Errorf("family %s missing from the exposition", n)
		}
	}
	out, err := lint(body)
	if err != nil {
		t.Fatalf("promtool check metrics reports problems in vigil's metric families (%v):\n%s", err, out)
	}
	t.Logf("promtool check metrics: no problems in %d vigil families (%d families in all)", len(names), bytes.Count(body, []byte("# TYPE ")))
	for _, p := range promlintProblems(t, body) {
		t.Error(p)
	}
}

// allFamiliesExposition returns an exposition holding one series of every metric family vigil's
// telemetry package defines, and the names of those families (the IPVS collector's only as far as
// they are listed here).
func allFamiliesExposition(t *testing.T) ([]byte, []string) {
	t.Helper()
	r := telemetry.NewRegistry()
	cfg := r.NewConfigMetrics("0123456789abcdef")
	fleet := r.NewFleet()
	var names []string
	for _, group := range []any{r.VRRP, r.LB, cfg, fleet} {
		names = append(names, populate(t, group)...)
	}
	// The instances' dense VRRP families are read from the instances at
	// scrape time: one instance that has been through every event.
	vip := []netip.Addr{netip.MustParseAddr("192.0.2.100")}
	in := r.VRRP.Instance("web", 51, "eth0", 4)
	in.Added(telemetry.VRRPSettings{BasePriority: 100, Priority: 100, AdvertInterval: time.Second, VIPs: vip})
	in.StateChanged(telemetry.VRRPTransition{From: "backup", To: "master", Cause: "master_down_timer", At: time.Now(), Priority: 100, MasterPriority: 100, MasterInterval: time.Second})
	in.AdvertSent(true)
	in.AdvertReceived(true)
	in.SendFailed()
	in.GratuitousSent()
	in.VIPsOwned(vip)
	// The IPVS collector's families come from a snapshot read at scrape
	// time.
	r.LB.SetIPVSSource(stubIPVS(), nil)
	r.NewConfigRejected([]string{"unsigned"})
	names = append(names, "vigil_fleet_config_rejected_total", "vigil_ipvs_scrape_success", "vigil_ipvs_virtual_server_info", "vigil_ipvs_virtual_server_connections_total",
		"vigil_ipvs_virtual_server_incoming_bytes_total", "vigil_virtual_server_real_servers", "vigil_virtual_server_real_servers_up",
		"vigil_ipvs_real_server_connections_total", "vigil_ipvs_real_server_outgoing_bytes_total", "vigil_ipvs_real_server_connections_active",
		"vigil_ipvs_real_server_connections_inactive", "vigil_ipvs_real_server_weight", "vigil_real_server_configured_weight", "vigil_real_server_healthy",
		"vigil_real_server_check_failures", "vigil_real_server_transitions_total")
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(r.Reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.Bytes(), names
}

// stubIPVS is an IPVS snapshot source for tests without a kernel IPVS table: virtual server web
// (192.0.2.100:80/tcp, NAT) with real server 198.51.100.11:8080 healthy and in the kernel and
// 198.51.100.12:8080 down (weight 0), whose counters grow at every read, as traffic would make them.
func stubIPVS() telemetry.IPVSSource {
	var n uint64
	return func() (telemetry.IPVSSnapshot, error) {
		n++
		c := telemetry.IPVSCounters{Conns: 3 * n, InPkts: 30 * n, OutPkts: 20 * n, InBytes: 3000 * n, OutBytes: 90000 * n}
		return telemetry.IPVSSnapshot{VirtualServers: []telemetry.VSSnapshot{{
			Labels: []string{"web", "192.0.2.100", "80", "tcp", ""}, Scheduler: "wlc", Forwarding: "nat", InKernel: true, Stats: c,
			RealServers: []telemetry.RSSnapshot{
				{Address: "198.51.100.11", Port: "8080", Configured: true, ConfiguredWeight: 1, Healthy: true, InKernel: true, Weight: 1,
					Active: 2, Inactive: 1, Stats: c, Transitions: &telemetry.RSTransitions{Up: 1}},
				{Address: "198.51.100.12", Port: "8080", Configured: true, ConfiguredWeight: 1, CheckFailures: 3, InKernel: true,
					Transitions: &telemetry.RSTransitions{Up: 1, Down: 1}},
			},
		}}}, nil
	}
}

// populate gives every metric family of group one series and returns the
// families' names: the exported collector fields of the struct *group,
// and the unexported ones a group lists through Collectors() (telemetry.VRRP
// reports through event methods; its vectors are not exported).
func populate(t *testing.T, group any) []string {
	t.Helper()
	var cs []prometheus.Collector
	if l, ok := group.(interface{ Collectors() []prometheus.Collector }); ok {
		cs = l.Collectors()
	}
	v := reflect.ValueOf(group).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if !f.CanInterface() {
			continue
		}
		if c, ok := f.Interface().(prometheus.Collector); ok && !f.IsNil() {
			cs = append(cs, c)
		}
	}
	var names []string
	for _, c := range cs {
		names = append(names, populateOne(t, c))
	}
	return names
}

// populateOne gives the family c one series (placeholder label values)
// and returns its name.
func populateOne(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	descs := make(chan *prometheus.Desc, 1)
	c.Describe(descs)
	d := (<-descs).String()
	name := d
	if j := strings.Index(d, `fqName: "`); j >= 0 {
		rest := d[j+len(`fqName: "`):]
		name = rest[:strings.IndexByte(rest, '"')]
	}
	m := any(c)
	if get := reflect.ValueOf(c).MethodByName("GetMetricWithLabelValues"); get.IsValid() {
		// A vector: find its label count by trying, one placeholder value per label.
		m = nil
		for n := 0; n <= 16 && m == nil; n++ {
			args := make([]reflect.Value, n)
			for j := range args {
				args[j] = reflect.ValueOf("x")
			}
			res := get.Call(args)
			if res[1].IsNil() {
				m = res[0].Interface()
			}
		}
		if m == nil {
			t.Fatalf("%s: no label count up to 16 works", name)
		}
	}
	switch m := m.(type) {
	case prometheus.Gauge:
		m.Set(1)
	case prometheus.Counter:
		m.Inc()
	case prometheus.Observer:
		m.Observe(0.01)
	case prometheus.Metric:
		t.Fatalf("%s: unknown metric type %T", name, m)
	default:
		// A family read at scrape time (the VRRP instances' dense
		// families): its series come from the events allFamiliesExposition
		// reports, and the caller checks the family is in the exposition.
	}
	return name
}
