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
	Links []struct {
		SpanContext struct{ TraceID, SpanID string }
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
	if strings.Join(children, ",") != "garp.send,ipvs.sync_role,notify.queue,vip.add" {
		t.Errorf("children %v, want garp.send, ipvs.sync_role, notify.queue, vip.add", children)
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

// TestTransitionSpanLinks (issue 15): "A new master's vrrp.transition links to the old master's
// resignation or transition span when gossip knows it": two gossiping nodes export to the
// console; n1 (master) stops gracefully; n2's takeover span links to one of n1's transition
// spans.
func TestTransitionSpanLinks(t *testing.T) {
	l := newLab(t, 2)
	start := func(name string, prio int) *netlab.Process {
		y := peer.VigilYAML(name, []peer.Instance{vr(prio)}) + l.gossipYAML(name, "test", l.keyring)
		p, err := peer.StartVigilYAMLWith(l.lab.Node(name), l.bin, y, netlab.StartOptions{Env: []string{"OTEL_TRACES_EXPORTER=console"}})
		if err != nil {
			t.Fatal(err)
		}
		l.procs[name] = p
		return p
	}
	p1 := start("n1", 200)
	l.waitHolders([]string{"n1"}, 10*time.Second, "n1")
	p2 := start("n2", 100)
	l.waitMembers([]string{"n1", "n2"}, allState([]string{"n1", "n2"}, "alive"), 30*time.Second)
	time.Sleep(time.Second) // n2 has n1's instance summary, with its span
	if err := p1.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	l.waitHolders([]string{"n2"}, 10*time.Second, "n2")
	if err := p2.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	n1 := map[string]bool{}
	for _, s := range consoleSpans(t, p1.Log()) {
		if s.Name == "vrrp.transition" {
			n1[s.SpanContext.SpanID] = true
		}
	}
	var links []string
	for _, s := range consoleSpans(t, p2.Log()) {
		if s.Name == "vrrp.transition" && s.attr("vigil.vrrp.state") == "master" {
			for _, ln := range s.Links {
				links = append(links, ln.SpanContext.SpanID)
			}
		}
	}
	if len(links) != 1 || !n1[links[0]] {
		t.Fatalf("n2's takeover links to %v; n1's transition spans are %v", links, n1)
	}
}
