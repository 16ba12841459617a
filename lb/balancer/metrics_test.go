package balancer

import (
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"vigil/config"
	"vigil/lb"
	"vigil/telemetry"
)

// series returns every sample of the named family as "label=value,... value",
// sorted, from one gather of reg.
func series(t *testing.T, reg *telemetry.Registry, name string) []string {
	t.Helper()
	mfs, err := reg.Reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				if l.GetValue() != "" {
					ls = append(ls, l.GetName()+"="+l.GetValue())
				}
			}
			out = append(out, fmt.Sprintf("%s %g", strings.Join(ls, ","), value(m)))
		}
	}
	sort.Strings(out)
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

// /metrics exports, per real server, the kernel's counters and weight and
// the configured weight and health; a failing real server shows as
// unhealthy, leaves the kernel's series (removed), and counts a transition.
func TestIPVSMetrics(t *testing.T) {
	r2 := flagFile(t, "r2")
	c, err := config.Parse([]byte(fmt.Sprintf(`node: {name: lb1}
lb:
  virtual_servers:
    - name: web
      address: 192.0.2.100:80
      protocol: tcp
      sorry_server: 198.51.100.99:8080
      real_servers:
        - {address: "198.51.100.11:8080", weight: 3}
        - {address: "198.51.100.12:8081", check: {type: file, file: %q, interval: 20ms, warmup: 0s, fall: 1}}
`, r2)))
	if err != nil {
		t.Fatal(err)
	}
	reg := telemetry.NewRegistry()
	k := &memKernel{t: lb.Table{}}
	b := testBalancer(k, reg.LB)
	b.stats = k
	reg.LB.SetIPVSSource(b.metricsSnapshot, nil)
	if err := b.Set(c.LB); err != nil {
		t.Fatal(err)
	}
	stop := runBalancer(t, b)
	web := lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}
	waitFor(t, "both real servers", func() bool { return k.dests(web) == "198.51.100.11:8080/3 198.51.100.12:8081/1 " })

	// Labels come back sorted by name; l sorts a set the same way.
	l := func(parts ...string) string {
		var all []string
		for _, p := range parts {
			all = append(all, strings.Split(p, ",")...)
		}
		sort.Strings(all)
		return strings.Join(all, ",")
	}
	vs := "local_address=192.0.2.100,local_port=80,proto=tcp,virtual_server=web"
	r1l, r2l := l(vs, "remote_address=198.51.100.11,remote_port=8080"), l(vs, "remote_address=198.51.100.12,remote_port=8081")
	want := map[string][]string{
		"vigil_ipvs_virtual_server_info":                 {l(vs, "forwarding=nat,persistent=false,scheduler=wlc") + " 1"},
		"vigil_ipvs_virtual_server_connections_total":    {vs + " 80"},
		"vigil_ipvs_virtual_server_incoming_bytes_total": {vs + " 80000"},
		"vigil_ipvs_real_server_connections_total":       {r1l + " 8080", r2l + " 8081"},
		"vigil_ipvs_real_server_connections_active":      {r1l + " 3", r2l + " 3"},
		"vigil_ipvs_real_server_connections_inactive":    {r1l + " 4", r2l + " 4"},
		"vigil_ipvs_real_server_weight":                  {r1l + " 3", r2l + " 1"},
		"vigil_real_server_configured_weight":            {r1l + " 3", r2l + " 1"},
		"vigil_real_server_healthy":                      {r1l + " 1", r2l + " 1"},
		"vigil_virtual_server_real_servers":              {vs + " 2"},
		"vigil_virtual_server_real_servers_up":           {vs + " 2"},
		"vigil_ipvs_scrape_success":                      {" 1"},
	}
	// check waits (bounded) for every family to read as wanted: the
	// kernel table changes a moment before the pass that changed it
	// counts the transition.
	check := func(when string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			var bad []string
			for name, w := range want {
				if got := series(t, reg, name); fmt.Sprint(got) != fmt.Sprint(w) {
					bad = append(bad, fmt.Sprintf("%s: %s:\n got %q\nwant %q", when, name, got, w))
				}
			}
			if len(bad) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Error(strings.Join(bad, "\n"))
				return
			}
			time.Sleep(10 * time.Millisecond)
			b.metrics.SetIPVSSource(b.metricsSnapshot, nil) // past the 1 s cache
		}
	}
	check("both up")

	os.WriteFile(r2, []byte("1\n"), 0o644)
	waitFor(t, "r2 removed", func() bool { return k.dests(web) == "198.51.100.11:8080/3 " })
	b.metrics.SetIPVSSource(b.metricsSnapshot, nil) // drop the 1 s cache
	want["vigil_ipvs_real_server_connections_total"] = []string{r1l + " 8080"}
	want["vigil_ipvs_real_server_connections_active"] = []string{r1l + " 3"}
	want["vigil_ipvs_real_server_connections_inactive"] = []string{r1l + " 4"}
	want["vigil_ipvs_real_server_weight"] = []string{r1l + " 3"}
	want["vigil_real_server_healthy"] = []string{r1l + " 1", r2l + " 0"}
	want["vigil_virtual_server_real_servers_up"] = []string{vs + " 1"}
	want["vigil_real_server_transitions_total"] = []string{l(r1l, "to=down") + " 0", l(r1l, "to=up") + " 0", l(r2l, "to=down") + " 1", l(r2l, "to=up") + " 0"}
	check("r2 down")
	var fails []string
	for _, f := range series(t, reg, "vigil_real_server_check_failures") {
		fails = append(fails, f[:strings.LastIndexByte(f, ' ')])
		if strings.HasPrefix(f, r1l+" ") && f != r1l+" 0" || strings.HasPrefix(f, r2l+" ") && strings.HasSuffix(f, " 0") {
			t.Errorf("check failures: %s (r1 has no checks; r2's check fails)", f)
		}
	}
	if fmt.Sprint(fails) != fmt.Sprint([]string{r1l, r2l}) {
		t.Errorf("check failure series: %v", fails)
	}

	// A reload without r2 drops its series; one without web drops web's.
	reload := func(y string) {
		t.Helper()
		c, err := config.Parse([]byte("node: {name: lb1}\nlb:\n  virtual_servers:\n" + y))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Set(c.LB); err != nil {
			t.Fatal(err)
		}
	}
	reload(`    - {name: web, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: "198.51.100.11:8080", weight: 3}]}` + "\n")
	waitFor(t, "r2's transition series dropped", func() bool { return len(series(t, reg, "vigil_real_server_transitions_total")) == 2 })
	reload(`    - {name: api, address: "192.0.2.100:443", protocol: tcp, real_servers: [{address: "198.51.100.11:8443"}]}` + "\n")
	waitFor(t, "web's series dropped", func() bool {
		q := series(t, reg, "vigil_virtual_server_quorum_up")
		return len(q) == 1 && strings.Contains(q[0], "virtual_server=api") && len(series(t, reg, "vigil_real_server_transitions_total")) == 2
	})

	stop()
	if got := series(t, reg, "vigil_ipvs_scrape_success"); len(got) != 0 {
		t.Errorf("after stop the IPVS collector still exports: %v", got)
	}
}
