package balancer

import (
	"context"
	"net/netip"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"vigil/lb/check"
)

// The realserver.transition span (issue 15): a real server's verdict
// changing (by the local checks, or the fleet's view with gossip), from
// the reconcile pass that saw it until the pass ended, with the checks'
// details as events and the IPVS change as a child. Never a span per
// probe: the checks' metrics cover those.

// passTimes is one reconcile pass: when it started, when its IPVS changes
// were applied, and how many there were.
type passTimes struct {
	start, applied time.Time
	ops            int
}

// rsChange is one real server whose verdict changed in a pass.
type rsChange struct {
	id rsID
	up bool
}

func (b *Balancer) traceTransitions(changes []rsChange, pass passTimes) {
	if len(changes) == 0 || pass.start.IsZero() {
		return
	}
	byOwner := map[check.Owner][]check.CheckStatus{}
	for _, cs := range b.checks.Statuses() {
		byOwner[cs.Owner] = append(byOwner[cs.Owner], cs)
	}
	for _, c := range changes {
		addr := netip.AddrPortFrom(c.id.rs.Addr, c.id.rs.Port).String()
		ctx, span := b.tracer.Start(context.Background(), "realserver.transition", trace.WithTimestamp(pass.start),
			trace.WithNewRoot(), trace.WithAttributes(
				attribute.String("vigil.lb.virtual_server", c.id.vs),
				attribute.String("vigil.lb.real_server", addr),
				attribute.String("vigil.lb.state.previous", upDown(!c.up)),
				attribute.String("vigil.lb.state", upDown(c.up)),
				attribute.String("vigil.lb.health_view", b.view),
				attribute.String("server.address", c.id.rs.Addr.String()),
				attribute.Int("server.port", int(c.id.rs.Port))))
		for _, cs := range byOwner[check.Owner{VS: c.id.vs, RS: c.id.rs}] {
			attrs := []attribute.KeyValue{attribute.String("vigil.check.type", string(cs.Spec.Type)),
				attribute.Bool("vigil.check.up", cs.Up), attribute.String("vigil.check.detail", cs.Detail)}
			if cs.Spec.Target.IsValid() {
				attrs = append(attrs, attribute.String("vigil.check.target", cs.Spec.Target.String()))
			}
			span.AddEvent("check", trace.WithAttributes(attrs...), trace.WithTimestamp(cs.Since))
			if !cs.Up && !c.up {
				span.SetAttributes(attribute.String("vigil.check.failing", string(cs.Spec.Type)+": "+cs.Detail))
			}
		}
		_, ipvs := b.tracer.Start(ctx, "ipvs.update_dest", trace.WithTimestamp(pass.start),
			trace.WithAttributes(attribute.Int("vigil.ipvs.operations", pass.ops)))
		ipvs.End(trace.WithTimestamp(pass.applied))
		span.End()
	}
}
