package router

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"vigil/vrrp"
)

// The vrrp.transition span (issue 15): one root span per state change of
// an instance, from the decision (the StateChange's time: the timer that
// fired, the advert or tracker update that arrived, the operator's
// request) until the new state is in effect: the VIP work and the
// announcements the change queued on the instance's worker have run. Its
// duration is the failover's local latency, also observed in
// vigil_vrrp_failover_duration_seconds. Never a span per advert.

// Span and attribute names are a contract: dashboards and users search
// for them.
const (
	spanTransition = "vrrp.transition"
	spanVIPAdd     = "vip.add"
	spanVIPRemove  = "vip.remove"
	spanAnnounce   = "garp.send"
	spanSyncRole   = "ipvs.sync_role"

	attrInstance = attribute.Key("vigil.vrrp.instance")
	attrVRID     = attribute.Key("vigil.vrrp.vrid")
	attrPrevious = attribute.Key("vigil.vrrp.state.previous")
	attrState    = attribute.Key("vigil.vrrp.state")
	attrReason   = attribute.Key("vigil.vrrp.reason")
	attrPriority = attribute.Key("vigil.vrrp.priority.effective")
	attrIface    = attribute.Key("network.interface.name")
	attrPeer     = attribute.Key("network.peer.address")
)

// transition is a vrrp.transition span in progress.
type transition struct {
	ctx  context.Context
	span trace.Span
	sc   vrrp.StateChange
}

// startTransition opens the span of the state change among acts, if any.
func (n *Router) startTransition(in *instance, acts []vrrp.Action) *transition {
	for _, a := range acts {
		sc, ok := a.(vrrp.StateChange)
		if !ok {
			continue
		}
		attrs := []attribute.KeyValue{
			attrInstance.String(in.cfg.Name), attrVRID.Int(int(in.cfg.VRID)),
			attrPrevious.String(sc.From.String()), attrState.String(sc.To.String()),
			attrReason.String(string(sc.Cause)), attrPriority.Int(int(sc.Priority)),
			attrIface.String(in.cfg.Interface),
		}
		if sc.Master.IsValid() && sc.Master != in.src {
			attrs = append(attrs, attrPeer.String(sc.Master.String()))
		}
		at := sc.At
		if at.IsZero() {
			at = time.Now()
		}
		ctx, span := n.tracer.Start(context.Background(), spanTransition, trace.WithTimestamp(at),
			trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...), trace.WithNewRoot())
		sc.At = at
		return &transition{ctx: ctx, span: span, sc: sc}
	}
	return nil
}

// child wraps a worker job in a child span of the transition (nil: none).
func (t *transition) child(name string, fn func()) func() {
	if t == nil {
		return fn
	}
	return func() {
		_, s := t.span.TracerProvider().Tracer("vigil").Start(t.ctx, name)
		defer s.End()
		fn()
	}
}

// ctxOf is the transition's context, for logs written inside it.
func (t *transition) ctxOf() context.Context {
	if t == nil {
		return context.Background()
	}
	return t.ctx
}

// finish queues the end of the span behind the work the change queued,
// so that it ends when the new state is in effect.
func (n *Router) finish(in *instance, t *transition) {
	if t == nil {
		return
	}
	in.work.push(func() {
		d := time.Since(t.sc.At)
		in.met.TransitionEffective(t.sc.To.String(), string(t.sc.Cause), d)
		t.span.End()
	})
}

// failed marks the transition's span as failed (a VIP that could not be
// added or removed).
func (t *transition) failed(err error) {
	if t != nil && err != nil {
		t.span.RecordError(err)
		t.span.SetStatus(codes.Error, err.Error())
	}
}
