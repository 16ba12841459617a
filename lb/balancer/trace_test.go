package balancer

import (
	"log/slog"
	"net/netip"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"vigil/config"
	"vigil/lb"
	"vigil/telemetry"
)

// Issue 15: a real server's verdict changing is one realserver.transition span (root), with its
// virtual and real server, the states, which view decided, and the IPVS change as a child; the
// start (every server's first verdict) and unchanged passes make none.
func TestRealServerTransitionSpan(t *testing.T) {
	c, err := config.Parse([]byte(`node: {name: lb1}
lb: {virtual_servers: [{name: web, address: "192.0.2.100:80", protocol: tcp, real_servers: [
  {address: "198.51.100.11:8080"}, {address: "198.51.100.12:8080"}]}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h := newFakeHealth()
	k := &memKernel{t: lb.Table{}}
	b := newBalancer(Config{Log: slog.New(slog.DiscardHandler), Metrics: telemetry.NewRegistry().LB, Health: h, Tracer: tp.Tracer("t")}, k)
	if err := b.Set(c.LB); err != nil {
		t.Fatal(err)
	}
	stop := runBalancer(t, b)
	defer stop()
	web := lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}
	waitFor(t, "web", func() bool { return k.dests(web) == "198.51.100.11:8080/1 198.51.100.12:8080/1 " })
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("the start made %d spans", n)
	}
	h.set("web", "198.51.100.12:8080", false, 0)
	waitFor(t, "r2 removed", func() bool { return k.dests(web) == "198.51.100.11:8080/1 " })
	waitFor(t, "the spans", func() bool { return len(rec.Ended()) == 2 })
	var root, child sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.Name() {
		case "realserver.transition":
			root = s
		case "ipvs.update_dest":
			child = s
		}
	}
	if root == nil || child == nil || child.Parent().SpanID() != root.SpanContext().SpanID() || root.Parent().IsValid() {
		t.Fatalf("spans %v: want a root realserver.transition with an ipvs.update_dest child", rec.Ended())
	}
	attrs := map[string]string{}
	for _, a := range root.Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	want := map[string]string{"vigil.lb.virtual_server": "web", "vigil.lb.real_server": "198.51.100.12:8080",
		"vigil.lb.state.previous": "up", "vigil.lb.state": "down", "vigil.lb.health_view": "fleet", "server.port": "8080"}
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("%s = %q, want %q", k, attrs[k], v)
		}
	}
	if root.EndTime().Before(child.EndTime()) {
		t.Errorf("the IPVS change ends after its transition")
	}
}
