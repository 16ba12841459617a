package prom

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/test/netlab"
	"vigil/test/peer"
)

const (
	labPrefix = "vgpm"
	// Telemetry port of every vigil node, on the node's own address.
	metricsPort = 9730
	// Prometheus' web listener, on loopback inside the prom namespace.
	promAddr       = "127.0.0.1:9090"
	scrapeInterval = 500 * time.Millisecond
	// Bound on every wait for Prometheus to see something (dozens of scrapes).
	deadline = 20 * time.Second
)

var vip = netip.MustParsePrefix("192.0.2.100/24")

// lab is a vigil cluster and, optionally, a Prometheus scraping it.
type lab struct {
	t     *testing.T
	lab   *netlab.Lab
	bin   string
	addrs map[string]netip.Addr // node name -> address
	procs map[string]*netlab.Process
	prom  *netlab.Process
	api   *promAPI
	seq   int
	// gossip makes n1 and n2 a fleet (memberlist on port 7946, unencrypted).
	gossip bool
	// extraTargets are more targets of the vigil job, by node label; ruleFiles are loaded by
	// Prometheus and evaluated every scrape interval.
	extraTargets map[string]string
	ruleFiles    []string
}

// newLab builds nodes n1 (192.0.2.11) and n2 (192.0.2.12) on one bridge, and "prom" (192.0.2.9)
// when withProm. It fails, rather than skips, when VIGIL_NETNS=1 and a tool is missing: a required
// tier must not silently pass.
func newLab(t *testing.T, withProm bool) *lab {
	t.Helper()
	nl := netlab.NewForTest(t, labPrefix)
	for _, tool := range []string{"prometheus", "promtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (%v): run test/deps.sh (Debian's prometheus package ships both prometheus and promtool)", tool, err)
		}
	}
	bin, err := peer.VigilBinary()
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, lab: nl, bin: bin, addrs: map[string]netip.Addr{}, procs: map[string]*netlab.Process{}}
	for i, name := range []string{"n1", "n2"} {
		a := netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", 11+i))
		if _, err := nl.AddNode(name, netip.PrefixFrom(a, 24)); err != nil {
			t.Fatal(err)
		}
		l.addrs[name] = a
	}
	if withProm {
		if _, err := nl.AddNode("prom", netip.MustParsePrefix("192.0.2.9/24")); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func (l *lab) target(name string) string {
	return netip.AddrPortFrom(l.addrs[name], metricsPort).String()
}

// vigilYAML is one VRRP instance "web" (VRID 51, 100 ms adverts) with telemetry on the node's own
// address, and with l.gossip a gossip section joining the other node.
func (l *lab) vigilYAML(name string, prio int) string {
	s := fmt.Sprintf(`node: { name: %s }
telemetry: { listen: "%s" }
vrrp:
  garp: { repeat: 1, delay: 0s }
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: %d, advert_interval: 100ms, vips: [%s] }
`, name, l.target(name), prio, vip)
	if l.gossip {
		s += fmt.Sprintf("gossip: { bind: \"%s:7946\", join: [\"%s:7946\", \"%s:7946\"], insecure: true }\n",
			l.addrs[name], l.addrs["n1"], l.addrs["n2"])
	}
	return s
}

// writeConfig writes the node's config file (vigilYAML) and returns its path.
func (l *lab) writeConfig(name, yaml string) string {
	l.t.Helper()
	cfg := filepath.Join(l.lab.Dir(), name+"-vigil.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return cfg
}

// startVigil starts `vigil run` on the node; a restart gets a fresh admin socket.
func (l *lab) startVigil(name string, prio int) {
	l.t.Helper()
	l.seq++
	dir := l.lab.Dir()
	cfg := l.writeConfig(name, l.vigilYAML(name, prio))
	sock := filepath.Join(dir, fmt.Sprintf("%s-admin%d.sock", name, l.seq))
	p, err := l.lab.Node(name).Start(l.bin, "run", "--config", cfg, "--admin-socket", sock)
	if err != nil {
		l.t.Fatal(err)
	}
	l.procs[name] = p
}

// stopVigil stops vigil gracefully (SIGTERM: a priority-0 advert if master) and requires a clean
// exit.
func (l *lab) stopVigil(name string) {
	l.t.Helper()
	if err := l.procs[name].Stop(5 * time.Second); err != nil {
		l.t.Fatalf("stopping vigil on %s: %v\n%s", name, err, l.procs[name].Log())
	}
}

// waitVIP waits until the VIP is on want's eth0 and on no other node.
func (l *lab) waitVIP(want string) {
	l.t.Helper()
	end := time.Now().Add(deadline)
	for {
		var holders []string
		for _, name := range []string{"n1", "n2"} {
			ok, err := l.lab.Node(name).HasAddr("eth0", vip.Addr())
			if err != nil {
				l.t.Fatal(err)
			}
			if ok {
				holders = append(holders, name)
			}
		}
		if len(holders) == 1 && holders[0] == want {
			return
		}
		if time.Now().After(end) {
			l.t.Fatalf("after %s %s is held by %v, want %s\n%s", deadline, vip.Addr(), holders, want, l.logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (l *lab) logs() string {
	var b strings.Builder
	names := make([]string, 0, len(l.procs))
	for n := range l.procs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "--- vigil on %s ---\n%s\n", n, l.procs[n].LogLines(20))
	}
	if l.prom != nil {
		fmt.Fprintf(&b, "--- prometheus ---\n%s\n", l.prom.LogLines(20))
	}
	return b.String()
}

// get fetches path (e.g. "/metrics") from a node's telemetry listener, from inside its namespace.
func (l *lab) get(name, path string) ([]byte, error) {
	return l.lab.Node(name).HTTPGet(context.Background(), "http://"+l.target(name)+path)
}

// prometheusYAML scrapes n1 and n2 (and l.extraTargets) every 500 ms; each target carries a node
// label.
func (l *lab) prometheusYAML() string {
	var b strings.Builder
	fmt.Fprintf(&b, `global:
  scrape_interval: %[1]s
  scrape_timeout: 400ms
  evaluation_interval: %[1]s
scrape_configs:
  - job_name: vigil
    static_configs:
      - targets: ["%[2]s"]
        labels: { node: n1 }
      - targets: ["%[3]s"]
        labels: { node: n2 }
`, model(scrapeInterval), l.target("n1"), l.target("n2"))
	for _, node := range slices.Sorted(maps.Keys(l.extraTargets)) {
		fmt.Fprintf(&b, "      - targets: [%q]\n        labels: { node: %s }\n", l.extraTargets[node], node)
	}
	if len(l.ruleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range l.ruleFiles {
			fmt.Fprintf(&b, "  - %q\n", f)
		}
	}
	return b.String()
}

// model formats a duration as Prometheus' config does ("500ms", "1s").
func model(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.Itoa(int(d/time.Second)) + "s"
	}
	return strconv.Itoa(int(d/time.Millisecond)) + "ms"
}

// startPrometheus writes prometheus.yml (checked with promtool check config), starts Prometheus
// in the prom namespace with its TSDB in the lab directory, and waits until it is ready.
func (l *lab) startPrometheus() {
	l.t.Helper()
	dir := l.lab.Dir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(l.prometheusYAML()), 0o644); err != nil {
		l.t.Fatal(err)
	}
	if out, err := exec.Command("promtool", "check", "config", cfg).CombinedOutput(); err != nil {
		l.t.Fatalf("promtool check config %s: %v\n%s\n%s", cfg, err, out, l.prometheusYAML())
	}
	p, err := l.lab.Node("prom").Start("prometheus",
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--storage.tsdb.retention.time=1h",
		"--web.listen-address="+promAddr,
		"--log.level=warn")
	if err != nil {
		l.t.Fatal(err)
	}
	l.prom = p
	l.api = &promAPI{node: l.lab.Node("prom"), base: "http://" + promAddr}
	l.eventually("Prometheus ready", func() (bool, string, error) {
		if p.Exited() {
			l.t.Fatalf("prometheus exited: %v\n%s", p.Wait(), p.Log())
		}
		_, err := l.api.node.HTTPGet(context.Background(), l.api.base+"/-/ready")
		return err == nil, "", err
	})
}

// eventually polls cond every 100 ms until it holds, for at most deadline; then the test fails
// with the last state cond described and the processes' logs. Errors from cond are transient
// (they become the state), never fatal by themselves.
func (l *lab) eventually(what string, cond func() (ok bool, state string, err error)) {
	l.t.Helper()
	end := time.Now().Add(deadline)
	for {
		ok, state, err := cond()
		if ok && err == nil {
			return
		}
		if err != nil {
			state = strings.TrimSpace(state + " (error: " + err.Error() + ")")
		}
		if time.Now().After(end) {
			l.t.Fatalf("after %s, still not %s; last seen: %s\n%s", deadline, what, state, l.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promAPI is a client for Prometheus' HTTP API, dialling from inside the prom namespace.
type promAPI struct {
	node *netlab.Node
	base string
}

type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

func (a *promAPI) get(path string, params url.Values) (json.RawMessage, error) {
	u := a.base + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	body, err := a.node.HTTPGet(context.Background(), u)
	var r apiResponse
	if jerr := json.Unmarshal(body, &r); jerr != nil {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("GET %s: bad JSON %q: %w", u, body, jerr)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("GET %s: %s: %s: %s", u, r.Status, r.ErrorType, r.Error)
	}
	return r.Data, err
}

// sample is one element of an instant vector.
type sample struct {
	Labels map[string]string
	Value  float64
}

func (s sample) String() string {
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, s.Labels[k]))
	}
	return fmt.Sprintf("{%s} %g", strings.Join(parts, ","), s.Value)
}

type vector []sample

func (v vector) String() string {
	if len(v) == 0 {
		return "(empty vector)"
	}
	parts := make([]string, len(v))
	for i, s := range v {
		parts[i] = s.String()
	}
	return strings.Join(parts, "; ")
}

// byNode maps the node label to the value; a node with two samples is an error.
func (v vector) byNode() (map[string]float64, error) {
	m := map[string]float64{}
	for _, s := range v {
		n := s.Labels["node"]
		if _, dup := m[n]; dup {
			return nil, fmt.Errorf("two samples for node %q in %v", n, v)
		}
		m[n] = s.Value
	}
	return m, nil
}

// query runs an instant query that must return a vector.
func (a *promAPI) query(q string) (vector, error) {
	data, err := a.get("/api/v1/query", url.Values{"query": {q}})
	if err != nil {
		return nil, err
	}
	var r struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	if r.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %s, want vector", q, r.ResultType)
	}
	v := vector{}
	for _, e := range r.Result {
		s, ok := e.Value[1].(string)
		if !ok {
			return nil, fmt.Errorf("query %q: bad value %v", q, e.Value)
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: %w", q, err)
		}
		v = append(v, sample{Labels: e.Metric, Value: f})
	}
	return v, nil
}

// scalar runs a query expected to return one sample (no labels needed) and returns its value; an
// empty result is an error.
func (a *promAPI) scalar(q string) (float64, error) {
	v, err := a.query(q)
	if err != nil {
		return 0, err
	}
	if len(v) != 1 {
		return 0, fmt.Errorf("query %q returned %v, want one sample", q, v)
	}
	return v[0].Value, nil
}

type target struct {
	Labels     map[string]string `json:"labels"`
	ScrapePool string            `json:"scrapePool"`
	ScrapeURL  string            `json:"scrapeUrl"`
	Health     string            `json:"health"`
	LastError  string            `json:"lastError"`
	LastScrape time.Time         `json:"lastScrape"`
}

func (t target) String() string {
	s := fmt.Sprintf("%s (node %s): %s", t.ScrapeURL, t.Labels["node"], t.Health)
	if t.LastError != "" {
		s += ", lastError " + strconv.Quote(t.LastError)
	}
	return s
}

// targets returns the active targets, by node label.
func (a *promAPI) targets() (map[string]target, error) {
	data, err := a.get("/api/v1/targets", url.Values{"state": {"active"}})
	if err != nil {
		return nil, err
	}
	var r struct {
		ActiveTargets []target `json:"activeTargets"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	m := map[string]target{}
	for _, t := range r.ActiveTargets {
		m[t.Labels["node"]] = t
	}
	return m, nil
}
