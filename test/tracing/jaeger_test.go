package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/test/netlab"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/traces.json from the namespace test's Jaeger")

// The trace the harness test sends: fixed IDs, so that the golden answer and the live one are
// checked by one function.
const (
	harnessService = "vigil"
	harnessTraceID = "5b8efff798038103d269b633813fc60c"
	parentSpanID   = "eee19b7ec3c1b174"
	childSpanID    = "eee19b7ec3c1b175"
	parentOp       = "harness.parent"
	childOp        = "harness.child"
	// The child starts childOffset after the parent; durations are whole milliseconds, which
	// Jaeger's microsecond times keep exactly.
	childOffset    = 10 * time.Millisecond
	parentDuration = 50 * time.Millisecond
	childDuration  = 20 * time.Millisecond
)

// otlpJSON is one OTLP/HTTP JSON export request (OTLP spec, "JSON Protobuf Encoding": IDs in hex,
// 64-bit integers as decimal strings, enums as numbers): resource service.name=vigil and
// service.instance.id=n1; a server span harness.parent and its internal child harness.child with a
// string and an integer attribute.
func otlpJSON(t *testing.T, start time.Time) []byte {
	t.Helper()
	ns := func(at time.Time) string { return strconv.FormatInt(at.UnixNano(), 10) }
	str := func(k, v string) map[string]any {
		return map[string]any{"key": k, "value": map[string]any{"stringValue": v}}
	}
	cs := start.Add(childOffset)
	req := map[string]any{"resourceSpans": []any{map[string]any{
		"resource": map[string]any{"attributes": []any{str("service.name", harnessService), str("service.instance.id", "n1")}},
		"scopeSpans": []any{map[string]any{
			"scope": map[string]any{"name": "vigil/test/tracing"},
			"spans": []any{
				map[string]any{
					"traceId": harnessTraceID, "spanId": parentSpanID, "name": parentOp, "kind": 2,
					"startTimeUnixNano": ns(start), "endTimeUnixNano": ns(start.Add(parentDuration)),
					"attributes": []any{str("vigil.test.role", "parent")},
				},
				map[string]any{
					"traceId": harnessTraceID, "spanId": childSpanID, "parentSpanId": parentSpanID, "name": childOp, "kind": 1,
					"startTimeUnixNano": ns(cs), "endTimeUnixNano": ns(cs.Add(childDuration)),
					"attributes": []any{str("vigil.vrrp.instance", "web"),
						map[string]any{"key": "vigil.vrrp.vrid", "value": map[string]any{"intValue": "51"}}},
				},
			},
		}},
	}}}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkHarnessTrace checks what Jaeger made of otlpJSON: both spans in one trace, the child's
// CHILD_OF reference to the parent, timing, tags and the process.
func checkHarnessTrace(t *testing.T, tr Trace) {
	t.Helper()
	if tr.TraceID != harnessTraceID || len(tr.Spans) != 2 {
		t.Fatalf("trace %s with %d spans, want %s with 2: %+v", tr.TraceID, len(tr.Spans), harnessTraceID, tr)
	}
	parent, ok := tr.Span(parentSpanID)
	if !ok {
		t.Fatalf("no span %s in %+v", parentSpanID, tr)
	}
	child, ok := tr.Span(childSpanID)
	if !ok {
		t.Fatalf("no span %s in %+v", childSpanID, tr)
	}
	if parent.OperationName != parentOp || child.OperationName != childOp {
		t.Errorf("operations %q and %q, want %q and %q", parent.OperationName, child.OperationName, parentOp, childOp)
	}
	if got := tr.SpansNamed(childOp); len(got) != 1 || got[0].SpanID != childSpanID {
		t.Errorf("SpansNamed(%q) = %+v", childOp, got)
	}
	if p, ok := parent.Parent(); ok {
		t.Errorf("the root span has a parent %s", p)
	}
	if p, ok := child.Parent(); !ok || p != parentSpanID {
		t.Errorf("child's parent = %q, %v; want %s (references %+v)", p, ok, parentSpanID, child.References)
	}
	if len(child.References) != 1 || child.References[0].TraceID != harnessTraceID {
		t.Errorf("child references = %+v, want one CHILD_OF in trace %s", child.References, harnessTraceID)
	}
	if d := child.StartTime.Sub(parent.StartTime); d != childOffset {
		t.Errorf("child starts %v after the parent, want %v", d, childOffset)
	}
	if parent.Duration != parentDuration || child.Duration != childDuration {
		t.Errorf("durations %v and %v, want %v and %v", parent.Duration, child.Duration, parentDuration, childDuration)
	}
	if v, ok := child.Tag("vigil.vrrp.instance"); v != "web" {
		t.Errorf("child tag vigil.vrrp.instance = %v (%v), want web", v, ok)
	}
	// An OTLP int attribute is an int64 tag, a JSON number once served.
	if v, ok := child.Tag("vigil.vrrp.vrid"); v != float64(51) {
		t.Errorf("child tag vigil.vrrp.vrid = %v (%v), want 51", v, ok)
	}
	if v, ok := parent.Tag("vigil.test.role"); v != "parent" {
		t.Errorf("parent tag vigil.test.role = %v (%v), want parent", v, ok)
	}
	// Jaeger records the OTLP span kind as the span.kind tag.
	if v, _ := parent.Tag("span.kind"); v != "server" {
		t.Errorf("parent tag span.kind = %v, want server", v)
	}
	for _, s := range []Span{parent, child} {
		if s.Process.ServiceName != harnessService {
			t.Errorf("span %s: service %q, want %s", s.SpanID, s.Process.ServiceName, harnessService)
		}
		if v, ok := s.Process.Tag("service.instance.id"); v != "n1" {
			t.Errorf("span %s: process tag service.instance.id = %v (%v), want n1", s.SpanID, v, ok)
		}
	}
}

// postOTLP sends body to url from inside node as OTLP/HTTP JSON.
func postOTLP(ctx context.Context, node *netlab.Node, url string, body []byte) error {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: node.Dial, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s from %s: %w", url, node.Name, err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s from %s: %s: %s", url, node.Name, resp.Status, reply)
	}
	// A partial success names rejected spans; an accepted request has none.
	var r struct {
		PartialSuccess struct {
			RejectedSpans string `json:"rejectedSpans"`
			ErrorMessage  string `json:"errorMessage"`
		} `json:"partialSuccess"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return fmt.Errorf("POST %s: decode reply %q: %w", url, reply, err)
	}
	if ps := r.PartialSuccess; ps.RejectedSpans != "" && ps.RejectedSpans != "0" {
		return fmt.Errorf("POST %s: %s spans rejected: %s", url, ps.RejectedSpans, ps.ErrorMessage)
	}
	return nil
}

// listeners returns the local addresses of the TCP and UDP sockets listening in node's namespace.
func listeners(t *testing.T, node *netlab.Node) []string {
	t.Helper()
	out, err := node.Run(context.Background(), "ss", "-Hlntu")
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// Netid State Recv-Q Send-Q Local:Port Peer:Port
		if f := strings.Fields(line); len(f) >= 5 {
			addrs = append(addrs, f[4])
		}
	}
	slices.Sort(addrs)
	return addrs
}

// TestJaegerInNamespace proves the harness (issue 15, "a real trace backend in the tests"): Jaeger in
// node "jaeger" listens on that node's address only; a trace of two spans sent from n1 as OTLP JSON
// to its OTLP/HTTP receiver is served back by /api/traces with names, the parent/child reference,
// timing and tags intact.
func TestJaegerInNamespace(t *testing.T) {
	l := netlab.NewForTest(t, "vgtr")
	addr := netip.MustParseAddr("192.0.2.9")
	jn, err := l.AddNode("jaeger", netip.PrefixFrom(addr, 24))
	if err != nil {
		t.Fatal(err)
	}
	n1, err := l.AddNode("n1", netip.MustParsePrefix("192.0.2.11/24"))
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	j := StartForTest(t, jn, addr)
	t.Logf("jaeger %s ready in %v", Version, time.Since(started).Round(time.Millisecond))

	want := []string{"192.0.2.9:13133", "192.0.2.9:16685", "192.0.2.9:16686", "192.0.2.9:4317", "192.0.2.9:4318"}
	if got := listeners(t, jn); !slices.Equal(got, want) {
		t.Errorf("listening in the jaeger namespace on %v, want exactly %v", got, want)
	}

	// Nothing is stored before the export: the query must be able to say "none".
	if ts, err := j.Traces(context.Background(), Query{Service: harnessService}); err != nil || len(ts) != 0 {
		t.Fatalf("before the export: %d traces, %v; want 0, nil", len(ts), err)
	}

	// A trace that started a second ago: well inside the query's default lookback.
	if err := postOTLP(context.Background(), n1, j.OTLPHTTPEndpoint()+"/v1/traces", otlpJSON(t, time.Now().Add(-time.Second))); err != nil {
		t.Fatal(err)
	}
	q := Query{Service: harnessService, Operation: childOp, Limit: 10}
	traces, err := j.WaitTraces(q, 10*time.Second, func(ts []Trace) bool { return len(ts) > 0 && len(ts[0].Spans) == 2 })
	if err != nil {
		t.Fatalf("%v; last answer %+v", err, traces)
	}
	if len(traces) != 1 {
		t.Fatalf("%d traces for %+v, want 1: %+v", len(traces), q, traces)
	}
	checkHarnessTrace(t, traces[0])

	// Selection works: the parent's operation finds the same trace, a tag filter too, and an
	// operation nobody recorded finds nothing.
	for _, tt := range []struct {
		q    Query
		want int
	}{
		{Query{Service: harnessService, Operation: parentOp}, 1},
		{Query{Service: harnessService, Tags: map[string]string{"vigil.vrrp.instance": "web"}}, 1},
		{Query{Service: harnessService, Tags: map[string]string{"vigil.vrrp.instance": "db"}}, 0},
		{Query{Service: harnessService, Operation: "vrrp.transition"}, 0},
	} {
		ts, err := j.Traces(context.Background(), tt.q)
		if err != nil || len(ts) != tt.want {
			t.Errorf("Traces(%+v) = %d traces, %v; want %d", tt.q, len(ts), err, tt.want)
		}
	}

	if *updateGolden {
		v, err := q.Values()
		if err != nil {
			t.Fatal(err)
		}
		body, err := jn.HTTPGet(context.Background(), j.QueryURL()+"/api/traces?"+v.Encode())
		if err != nil {
			t.Fatal(err)
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, body, "", "  "); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "traces.json"), append(pretty.Bytes(), '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
