package fleet

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/test/netlab"
	"vigil/test/peer"
)

// consoleSpan is a span as the console exporter (stdouttrace) prints it, one JSON object a line.
type consoleSpan struct {
	Name        string
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct{ SpanID string }
	Attributes  []struct {
		Key   string
		Value struct{ Value any }
	}
	Resource []struct {
		Key   string
		Value struct{ Value any }
	}
}

func (s consoleSpan) attr(key string) any {
	for _, a := range append(s.Attributes, s.Resource...) {
		if a.Key == key {
			return a.Value.Value
		}
	}
	return nil
}

func consoleSpans(t *testing.T, log string) []consoleSpan {
	t.Helper()
	var out []consoleSpan
	for _, l := range strings.Split(log, "\n") {
		if !strings.HasPrefix(l, `{"Name":`) {
			continue
		}
		var s consoleSpan
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("a console span that is not JSON: %v: %s", err, l)
		}
		out = append(out, s)
	}
	return out
}

// TestTransitionSpanConsole (issue 15): with OTEL_TRACES_EXPORTER=console a node's takeover is
// one root vrrp.transition span with the contract's attributes and resource, its VIP,
// announcement and IPVS-role work as children, and the log line of the change carries its
// trace_id and span_id.
func TestTransitionSpanConsole(t *testing.T) {
	l := newLab(t, 1)
	l.noGossip = true
	y := peer.VigilYAML("n1", []peer.Instance{vr(150)})
	p, err := peer.StartVigilYAMLWith(l.lab.Node("n1"), l.bin, y, netlab.StartOptions{Env: []string{"OTEL_TRACES_EXPORTER=console"}})
	if err != nil {
		t.Fatal(err)
	}
	l.procs["n1"] = p
	l.waitHolders([]string{"n1"}, 10*time.Second, "n1")
	if err := p.Stop(10 * time.Second); err != nil { // flushes the spans
		t.Fatal(err)
	}
	log := p.Log()
	spans := consoleSpans(t, log)
	var master []consoleSpan
	for _, s := range spans {
		if s.Name == "vrrp.transition" && s.attr("vigil.vrrp.state") == "master" {
			master = append(master, s)
		}
	}
	if len(master) != 1 {
		t.Fatalf("%d vrrp.transition spans to master, want 1 (of %d spans)", len(master), len(spans))
	}
	m := master[0]
	want := map[string]any{"vigil.vrrp.instance": "vr51", "vigil.vrrp.vrid": 51.0, "vigil.vrrp.state.previous": "backup",
		"vigil.vrrp.reason": "master_down_timer", "vigil.vrrp.priority.effective": 150.0, "network.interface.name": "eth0",
		"service.name": "vigil", "service.instance.id": "n1"}
	for k, v := range want {
		if got := m.attr(k); got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	if m.Parent.SpanID != "0000000000000000" {
		t.Errorf("the transition span has a parent %s: want a root", m.Parent.SpanID)
	}
	var children []string
	for _, s := range spans {
		if s.Parent.SpanID == m.SpanContext.SpanID {
			children = append(children, s.Name)
		}
	}
	slices.Sort(children)
	if strings.Join(children, ",") != "garp.send,ipvs.sync_role,vip.add" {
		t.Errorf("children %v, want garp.send, ipvs.sync_role, vip.add", children)
	}
	var line string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `msg="vrrp state change"`) && strings.Contains(l, "to=master") {
			line = l
		}
	}
	if !strings.Contains(line, "trace_id="+m.SpanContext.TraceID) || !strings.Contains(line, "span_id="+m.SpanContext.SpanID) {
		t.Errorf("the state change's log line does not carry its span's ids: %q", line)
	}
}
