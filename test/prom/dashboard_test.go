package prom

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The shipped dashboard and alert rules (issue 15, "Dashboards and alert rules"), relative to
// this package.
var (
	dashboardFile = filepath.Join("..", "..", "deploy", "grafana", "vigil.json")
	rulesFile     = filepath.Join("..", "..", "deploy", "prometheus", "vigil.rules.yaml")
	ruleTestsGlob = filepath.Join("..", "..", "deploy", "prometheus", "tests", "*.yaml")
)

// The trace search the failover panel links to (issue 15: "Links from a failover panel to the
// trace search"), and the variable holding Jaeger's address.
const (
	traceSearch   = "/search?service=vigil&operation=vrrp.transition"
	jaegerURLVar  = "${jaeger_url}"
	datasourceUID = "${datasource}"
)

// promExpr is one PromQL expression of the dashboard or the rules.
type promExpr struct {
	where string // "dashboard: PANEL [REFID]" or "rule ALERT"
	expr  string
	alert string // the alert's name, for a rule
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type link struct {
	Title string `json:"title"`
	URL   string `json:"url"`
}

type panel struct {
	ID          int                      `json:"id"`
	Type        string                   `json:"type"`
	Title       string                   `json:"title"`
	Datasource  *dsRef                   `json:"datasource"`
	GridPos     struct{ H, W, X, Y int } `json:"gridPos"`
	Panels      []panel                  `json:"panels"` // a collapsed row's
	Links       []link                   `json:"links"`
	FieldConfig struct {
		Defaults struct {
			Links []link `json:"links"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
		Datasource *dsRef `json:"datasource"`
	} `json:"targets"`
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource *dsRef          `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var d dashboard
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// panels returns every panel, those inside collapsed rows included.
func (d dashboard) panels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

func (d dashboard) exprs() []promExpr {
	var out []promExpr
	for _, p := range d.panels() {
		for _, tg := range p.Targets {
			out = append(out, promExpr{where: fmt.Sprintf("dashboard: %s [%s]", p.Title, tg.RefID), expr: tg.Expr})
		}
	}
	return out
}

// readYAML decodes the YAML file path into v.
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func ruleExprs(t *testing.T) []promExpr {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert  string `yaml:"alert"`
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, rulesFile, &f)
	var out []promExpr
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			out = append(out, promExpr{where: "rule " + name, expr: r.Expr, alert: r.Alert})
		}
	}
	return out
}

// grafanaVar matches the variable forms Grafana interpolates in a query: $name, ${name} and
// ${name:format}, and [[name]].
var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// substitute replaces the Grafana variables in expr with vars' values, as Grafana would before it
// sends the query; a variable vars does not have is an error.
func substitute(expr string, vars map[string]string) (string, error) {
	var missing []string
	out := grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sm := grafanaVar.FindStringSubmatch(m)
		name := sm[1] + sm[2] + sm[3]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, m)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("no value for %s in %q", strings.Join(missing, ", "), expr)
	}
	return out, nil
}

func TestSubstitute(t *testing.T) {
	vars := map[string]string{"node": "a|b", "__rate_interval": "1m", "__range": "10m"}
	for _, c := range []struct{ in, want, err string }{
		{`rate(x{instance=~"$node"}[$__rate_interval])`, `rate(x{instance=~"a|b"}[1m])`, ""},
		{`increase(x{instance=~"${node}"}[${__range}])`, `increase(x{instance=~"a|b"}[10m])`, ""},
		{`x{instance=~"${node:regex}"}`, `x{instance=~"a|b"}`, ""},
		{`x{instance=~"[[node]]"}[$__range]`, `x{instance=~"a|b"}[10m]`, ""},
		{`x[$__interval]`, "", "$__interval"},
		{`x`, `x`, ""},
	} {
		got, err := substitute(c.in, vars)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("substitute(%q) = %q, %v; want an error naming %s", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("substitute(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// metricName matches the vigil metric names an expression refers to.
var metricName = regexp.MustCompile(`\bvigil_[a-z0-9_]+\b`)

// families returns the metric families of an exposition by name, with their type.
func families(body []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	return out
}

// family returns the family a series name belongs to: name itself, or the histogram whose
// _bucket, _sum or _count series it is.
func family(name string, fams map[string]string) (string, bool) {
	if _, ok := fams[name]; ok {
		return name, true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok && fams[base] == "histogram" {
			return base, true
		}
	}
	return "", false
}

// The dashboard is Grafana dashboard JSON as the issue asks: schema 36 or later, a uid, variables
// datasource (a Prometheus data source) and node (label_values of vigil_build_info), every panel and
// target on ${datasource}, the rows the issue names, panels that do not overlap, and the failover
// panel linking to Jaeger's search of vrrp.transition spans through a variable. Every vigil metric
// an expression of the dashboard or the rules names is one vigil defines (a misspelt name would
// only show as an empty panel or a silent alert).
func TestDashboardJSON(t *testing.T) {
	d := loadDashboard(t)
	if d.SchemaVersion < 36 || d.UID == "" || d.Title == "" {
		t.Errorf("schemaVersion %d, uid %q, title %q: want schemaVersion >= 36, a uid and a title", d.SchemaVersion, d.UID, d.Title)
	}
	vars := map[string]int{}
	for i, v := range d.Templating.List {
		vars[v.Name] = i
	}
	if i, ok := vars["datasource"]; !ok || d.Templating.List[i].Type != "datasource" || string(d.Templating.List[i].Query) != `"prometheus"` {
		t.Errorf("no variable datasource of type datasource with query prometheus: %+v", d.Templating.List)
	}
	if i, ok := vars["node"]; !ok {
		t.Errorf("no variable node")
	} else if v := d.Templating.List[i]; v.Type != "query" || !strings.HasPrefix(v.Definition, "label_values(vigil_build_info,") ||
		!bytes.Contains(v.Query, []byte(v.Definition)) || v.Datasource == nil || v.Datasource.UID != datasourceUID {
		t.Errorf("variable node: want a query variable label_values(vigil_build_info, ...) on %s; got type %q, definition %q, query %s, datasource %+v",
			datasourceUID, v.Type, v.Definition, v.Query, v.Datasource)
	}
	if _, ok := vars["jaeger_url"]; !ok {
		t.Errorf("no variable jaeger_url for the trace links")
	}

	ids := map[int]string{}
	var rows []string
	type rect struct {
		title      string
		x, y, w, h int
	}
	var rects []rect
	failoverLinked := false
	for _, p := range d.panels() {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for _, r := range rects {
			if g.X < r.x+r.w && r.x < g.X+g.W && g.Y < r.y+r.h && r.y < g.Y+g.H {
				t.Errorf("panels %q and %q overlap", r.title, p.Title)
			}
		}
		rects = append(rects, rect{p.Title, g.X, g.Y, g.W, g.H})
		if p.Type == "row" {
			rows = append(rows, p.Title)
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != datasourceUID {
			t.Errorf("panel %q: datasource %+v, want uid %s", p.Title, p.Datasource, datasourceUID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != datasourceUID || tg.Datasource.Type != "prometheus" {
				t.Errorf("panel %q [%s]: datasource %+v, want prometheus %s", p.Title, tg.RefID, tg.Datasource, datasourceUID)
			}
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q [%s]: empty expr", p.Title, tg.RefID)
			}
			if strings.Contains(tg.Expr, "vigil_vrrp_failover_duration_seconds") {
				for _, l := range append(p.Links, p.FieldConfig.Defaults.Links...) {
					if strings.HasPrefix(l.URL, jaegerURLVar+traceSearch) {
						failoverLinked = true
					}
				}
			}
		}
	}
	if !failoverLinked {
		t.Errorf("no failover panel (on vigil_vrrp_failover_duration_seconds) links to %s%s", jaegerURLVar, traceSearch)
	}
	for _, want := range []string{"Fleet", "VRRP", "VIPs", "IPVS", "Trackers", "Configuration reloads"} {
		if !slices.ContainsFunc(rows, func(r string) bool { return strings.HasPrefix(r, want) }) {
			t.Errorf("no row %q among %q", want, rows)
		}
	}

	body, _ := allFamiliesExposition(t)
	fams := families(body)
	used := map[string]bool{}
	for _, e := range append(d.exprs(), ruleExprs(t)...) {
		for _, n := range metricName.FindAllString(e.expr, -1) {
			f, ok := family(n, fams)
			if !ok {
				t.Errorf("%s: %s is not a metric vigil exports", e.where, n)
			}
			used[f] = true
		}
	}
	t.Logf("%d panels in %d rows, %d dashboard and %d rule expressions on %d vigil metric families",
		len(ids)-len(rows), len(rows), len(d.exprs()), len(ruleExprs(t)), len(used))
}

// promtool check rules and promtool test rules (Debian's prometheus package ships promtool) on the
// shipped rules and their unit tests, which fire each alert on synthetic series and keep it silent
// on healthy ones. Both need no privileges.
func TestPromtoolRules(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skipf("promtool not found (%v): run test/deps.sh (the prometheus package ships it)", err)
	}
	tests, err := filepath.Glob(ruleTestsGlob)
	if err != nil || len(tests) == 0 {
		t.Fatalf("no rule unit tests match %s (%v)", ruleTestsGlob, err)
	}
	for _, args := range [][]string{{"check", "rules", rulesFile}, append([]string{"test", "rules"}, tests...)} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, "promtool", args...).CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), bytes.TrimSpace(out))
	}
	// Every alert is shown firing and silent by some unit test (issue 15: "fire each alert on
	// synthetic series and keep it silent on healthy ones").
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, f := range tests {
		var ut struct {
			Tests []struct {
				AlertRuleTest []struct {
					Alertname string           `yaml:"alertname"`
					ExpAlerts []map[string]any `yaml:"exp_alerts"`
				} `yaml:"alert_rule_test"`
			} `yaml:"tests"`
		}
		readYAML(t, f, &ut)
		for _, tc := range ut.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
				} else {
					silent[a.Alertname] = true
				}
			}
		}
	}
	for _, e := range ruleExprs(t) {
		if e.alert != "" && (!fires[e.alert] || !silent[e.alert]) {
			t.Errorf("alert %s: a unit test firing it: %v, one keeping it silent: %v (%s)", e.alert, fires[e.alert], silent[e.alert], ruleTestsGlob)
		}
	}
}
