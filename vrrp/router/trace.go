package router

import (
	"context"
	"strings"
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
// vigil_vrrp_failover_duration_seconds. Never a span per advert. The
// children: vip.add / vip.remove and garp.send (the worker's jobs),
// notify.queue (the notify scripts and FIFO, run later by their sinks) and
// ipvs.sync_role (the node's hook: the IPVS sync daemon's role).

// Span and attribute names are a contract: dashboards and users search
// for them.
const (
	spanTransition = "vrrp.transition"
	spanVIPAdd     = "vip.add"
	spanVIPRemove  = "vip.remove"
	spanAnnounce   = "garp.send"
	spanSyncRole   = "ipvs.sync_role"
	spanNotify     = "notify.queue"

	attrInstance = attribute.Key("vigil.vrrp.instance")
	attrVRID     = attribute.Key("vigil.vrrp.vrid")
	attrPrevious = attribute.Key("vigil.vrrp.state.previous")
	attrState    = attribute.Key("vigil.vrrp.state")
	attrReason   = attribute.Key("vigil.vrrp.reason")
	attrPriority = attribute.Key("vigil.vrrp.priority.effective")
	attrIface    = attribute.Key("network.interface.name")
	attrPeer     = attribute.Key("network.peer.address")
)

// TraceParent is a span context in W3C traceparent form
// (00-TRACEID-SPANID-FLAGS).
func TraceParent(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// ParseTraceParent reads a W3C traceparent into a remote span context
// (invalid when s is not one).
func ParseTraceParent(s string) trace.SpanContext {
	parts := strings.Split(s, "-")
	if len(parts) != 4 || parts[0] != "00" {
		return trace.SpanContext{}
	}
	tid, err1 := trace.TraceIDFromHex(parts[1])
	sid, err2 := trace.SpanIDFromHex(parts[2])
	if err1 != nil || err2 != nil || len(parts[3]) != 2 {
		return trace.SpanContext{}
	}
	flags := trace.TraceFlags(0)
	if parts[3] == "01" {
		flags = trace.FlagsSampled
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true})
}

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
		opts := []trace.SpanStartOption{trace.WithTimestamp(at), trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithAttributes(attrs...), trace.WithNewRoot()}
		if sc.To == vrrp.StateMaster && n.hooks.Links != nil && sc.PreviousMaster.IsValid() && sc.PreviousMaster != in.src {
			// One failover, one story across nodes: the old master's
			// last transition (its resignation, or its own takeover).
			opts = append(opts, trace.WithLinks(n.hooks.Links(in.cfg.Name, sc.PreviousMaster)...))
		}
		ctx, span := n.tracer.Start(context.Background(), spanTransition, opts...)
		sc.At = at
		if sc := span.SpanContext(); sc.IsValid() {
			in.lastTrace = TraceParent(sc)
		}
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
