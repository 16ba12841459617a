package fleet

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"vigil/test/netlab"
	"vigil/test/peer"
	"vigil/test/tracing"
)

// jaegerAddr is the lab node running Jaeger.
var jaegerAddr = netip.MustParseAddr("192.0.2.60")

// startJaeger adds a node running Jaeger to the lab; the daemons' environment to export to it.
func (l *lab) startJaeger(t *testing.T) (*tracing.Jaeger, []string) {
	t.Helper()
	nd := l.addNode("j1", jaegerAddr)
	j := tracing.StartForTest(t, nd, jaegerAddr)
	return j, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + j.OTLPHTTPEndpoint(), "OTEL_BSP_SCHEDULE_DELAY=100"}
}

// TestFailoverTraceInJaeger (issue 15): two gossiping nodes export to a real Jaeger; the
// master's link is cut; Jaeger then holds exactly one vrrp.transition to master from the
// survivor, by the master-down timer, lasting less than its Master_Down_Interval (decision to
// effect), with vip.add and garp.send children, and linked (FOLLOWS_FROM) to the old master's
// transition span, which Jaeger holds too. n1 exports over OTLP/HTTP, n2 over OTLP/gRPC: both of
// the exporter's protocols against a real collector. (Not the other way round: a gRPC connection
// from the node whose link is cut would hold Jaeger's graceful stop.)
func TestFailoverTraceInJaeger(t *testing.T) {
	l := newLab(t, 2)
	j, env := l.startJaeger(t)
	grpcEnv := []string{"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_ENDPOINT=" + j.OTLPGRPCEndpoint(), "OTEL_BSP_SCHEDULE_DELAY=100"}
	start := func(name string, prio int) {
		e := env
		if name == "n2" {
			e = grpcEnv
		}
		y := peer.VigilYAML(name, []peer.Instance{vr(prio)}) + l.gossipYAML(name, "test", l.keyring)
		p, err := peer.StartVigilYAMLWith(l.lab.Node(name), l.bin, y, netlab.StartOptions{Env: e})
		if err != nil {
			t.Fatal(err)
		}
		l.procs[name] = p
	}
	start("n1", 200)
	l.waitHolders([]string{"n1"}, 10*time.Second, "n1")
	start("n2", 100)
	l.waitMembers([]string{"n1", "n2"}, allState([]string{"n1", "n2"}, "alive"), 30*time.Second)
	q1 := tracing.Query{Service: "vigil", Operation: "vrrp.transition", Tags: map[string]string{"service.instance.id": "n1", "vigil.vrrp.state": "master"}}
	old, err := j.WaitTraces(q1, 20*time.Second, func(ts []tracing.Trace) bool { return len(ts) == 1 })
	if err != nil {
		t.Fatalf("n1's takeover in Jaeger: %v (%d traces)", err, len(old))
	}
	time.Sleep(time.Second) // n2 has n1's summary, with that span
	if err := l.lab.Node("n1").LinkDown(); err != nil {
		t.Fatal(err)
	}
	l.waitHolders([]string{"n2"}, 10*time.Second, "n2")
	q2 := tracing.Query{Service: "vigil", Operation: "vrrp.transition", Tags: map[string]string{"service.instance.id": "n2", "vigil.vrrp.state": "master"}}
	ts, err := j.WaitTraces(q2, 20*time.Second, func(ts []tracing.Trace) bool { return len(ts) >= 1 && len(ts[0].Spans) >= 3 })
	if err != nil || len(ts) != 1 {
		t.Fatalf("n2's takeover in Jaeger: %v, %d traces, want 1", err, len(ts))
	}
	spans := ts[0].SpansNamed("vrrp.transition")
	if len(spans) != 1 {
		t.Fatalf("%d vrrp.transition spans in the takeover's trace", len(spans))
	}
	s := spans[0]
	if r, _ := s.Tag("vigil.vrrp.reason"); r != "master_down_timer" {
		t.Errorf("reason %v, want master_down_timer", r)
	}
	mdi := 3*iv + time.Duration(256-100)*iv/256
	if s.Duration <= 0 || s.Duration >= mdi {
		t.Errorf("the takeover span lasted %v: want within (0, %v)", s.Duration, mdi)
	}
	kids := map[string]bool{}
	for _, c := range ts[0].Spans {
		if p, ok := c.Parent(); ok && p == s.SpanID {
			kids[c.OperationName] = true
		}
	}
	if !kids["vip.add"] || !kids["garp.send"] {
		t.Errorf("children %v, want vip.add and garp.send", kids)
	}
	oldSpan := old[0].SpansNamed("vrrp.transition")[0]
	linked := false
	for _, r := range s.References {
		if r.RefType == tracing.FollowsFrom && r.SpanID == oldSpan.SpanID {
			linked = true
		}
	}
	if !linked {
		t.Errorf("n2's takeover references %+v, want FOLLOWS_FROM n1's takeover span %s", s.References, oldSpan.SpanID)
	}
	t.Logf("takeover span on n2: %v (decision to effect); Master_Down_Interval %v", s.Duration, mdi)
}

// TestPushTraceInJaeger (issue 15): "one config.push trace holding a config.apply child per
// node": three following nodes and the CLI export to a real Jaeger; a push made with --wait from
// a lab node is one trace: the CLI's config.push, the config.propose of the node that took it
// as its child, and a config.apply on each node under that, carried by the gossip announcement.
func TestPushTraceInJaeger(t *testing.T) {
	l := newLab(t, 3)
	j, env := l.startJaeger(t)
	l.follow, l.env = true, env
	all := []string{"n1", "n2", "n3"}
	for _, n := range all {
		l.start(n, []peer.Instance{vr(100)}, "test", "")
	}
	l.waitMembers(all, allState(all, "alive"), 30*time.Second)
	path := l.docFile(t, fleetDoc("eth0"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"netns", "exec", l.lab.Node("n3").NS, "env"}, env...)
	args = append(args, l.bin, "config", "push", path, "--wait", "--timeout", "30s", "--socket", peer.VigilAdminSocket(l.lab.Node("n2")))
	ipPath, err := netlab.IPPath()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, ipPath, args...).CombinedOutput(); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	q := tracing.Query{Service: "vigil", Operation: "config.push"}
	ts, err := j.WaitTraces(q, 20*time.Second, func(ts []tracing.Trace) bool {
		return len(ts) == 1 && len(ts[0].SpansNamed("config.apply")) == 3
	})
	if err != nil {
		t.Fatalf("the push's trace: %v (%+v)", err, ts)
	}
	tr := ts[0]
	push, propose := tr.SpansNamed("config.push"), tr.SpansNamed("config.propose")
	if len(push) != 1 || len(propose) != 1 {
		t.Fatalf("%d config.push and %d config.propose spans, want 1 each", len(push), len(propose))
	}
	if p, _ := propose[0].Parent(); p != push[0].SpanID {
		t.Errorf("config.propose's parent %s, want config.push %s", p, push[0].SpanID)
	}
	if n, _ := propose[0].Process.Tag("service.instance.id"); n != "n2" {
		t.Errorf("config.propose on %v, want n2 (the node that took the push)", n)
	}
	nodes := map[any]bool{}
	for _, a := range tr.SpansNamed("config.apply") {
		if p, _ := a.Parent(); p != propose[0].SpanID {
			t.Errorf("a config.apply's parent is %s, want config.propose %s", p, propose[0].SpanID)
		}
		n, _ := a.Process.Tag("service.instance.id")
		nodes[n] = true
		if v, _ := a.Tag("vigil.config.version"); fmt.Sprint(v) != "1" {
			t.Errorf("config.apply on %v: version %v, want 1", n, v)
		}
	}
	if len(nodes) != 3 {
		t.Errorf("config.apply on %v, want n1, n2 and n3", nodes)
	}
}
