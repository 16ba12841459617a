package otlp

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

var (
	tid  = trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	sid1 = trace.SpanID{1, 1, 1, 1, 1, 1, 1, 1}
	sid2 = trace.SpanID{2, 2, 2, 2, 2, 2, 2, 2}
	sid3 = trace.SpanID{3, 3, 3, 3, 3, 3, 3, 3}
	t0   = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
)

func sc(s trace.SpanID, remote bool) trace.SpanContext {
	ts, _ := trace.ParseTraceState("vigil=1")
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: s, TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: remote})
}

// decodeRequest reads an ExportTraceServiceRequest the way a collector does:
// field 1, repeated ResourceSpans; any other field is an error here.
func decodeRequest(t *testing.T, b []byte) []*tracepb.ResourceSpans {
	t.Helper()
	var out []*tracepb.ResourceSpans
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			t.Fatalf("request: field %d type %d (n=%d), want 1 bytes", num, typ, n)
		}
		b = b[n:]
		m, n := protowire.ConsumeBytes(b)
		if n < 0 {
			t.Fatal("request: truncated")
		}
		b = b[n:]
		rs := &tracepb.ResourceSpans{}
		if err := proto.Unmarshal(m, rs); err != nil {
			t.Fatal(err)
		}
		out = append(out, rs)
	}
	return out
}

// The mapping of the SDK's spans onto the OTLP messages (opentelemetry-proto
// trace/v1/trace.proto; the OTLP exporter section of the specification).
func TestEncodeRequest(t *testing.T) {
	resA := resource.NewSchemaless(attribute.String("service.name", "vigil"), attribute.String("service.instance.id", "lb1"))
	resB := resource.NewSchemaless(attribute.String("service.name", "other"))
	scopeV := instrumentation.Scope{Name: "vigil", Version: "1.0"}
	scopeC := instrumentation.Scope{Name: "vigil/cli"}
	spans := []sdktrace.ReadOnlySpan{
		tracetest.SpanStub{ // a root span: internal, status error, every attribute type
			Name: "vrrp.transition", SpanContext: sc(sid1, false), SpanKind: trace.SpanKindInternal,
			StartTime: t0, EndTime: t0.Add(3 * time.Millisecond),
			Attributes: []attribute.KeyValue{attribute.Bool("b", true), attribute.Int("i", 7), attribute.Float64("f", 0.5),
				attribute.String("s", "x"), attribute.StringSlice("ss", []string{"a", "b"}), attribute.Int64Slice("is", []int64{1, 2})},
			Events: []sdktrace.Event{{Name: "vip.added", Time: t0.Add(time.Millisecond), Attributes: []attribute.KeyValue{attribute.String("vip", "192.0.2.1/24")}, DroppedAttributeCount: 1}},
			Status: sdktrace.Status{Code: codes.Error, Description: "garp failed"}, DroppedAttributes: 2, DroppedEvents: 3, DroppedLinks: 4,
			Resource: resA, InstrumentationScope: scopeV,
		}.Snapshot(),
		tracetest.SpanStub{ // a child of a remote parent, with a link: client, status ok
			Name: "config.apply", SpanContext: sc(sid2, false), Parent: sc(sid3, true), SpanKind: trace.SpanKindClient,
			StartTime: t0, EndTime: t0.Add(time.Second),
			Links:    []sdktrace.Link{{SpanContext: sc(sid1, false), Attributes: []attribute.KeyValue{attribute.String("why", "push")}}},
			Status:   sdktrace.Status{Code: codes.Ok, Description: "dropped for ok"},
			Resource: resA, InstrumentationScope: scopeV,
		}.Snapshot(),
		tracetest.SpanStub{Name: "config.push", SpanContext: sc(sid3, false), SpanKind: trace.SpanKindServer, Resource: resA, InstrumentationScope: scopeC}.Snapshot(),
		tracetest.SpanStub{Name: "other", SpanContext: sc(sid3, false), Resource: resB, InstrumentationScope: scopeV}.Snapshot(),
	}
	b, err := encodeRequest(spans)
	if err != nil {
		t.Fatal(err)
	}
	rss := decodeRequest(t, b)
	// Grouping: one ResourceSpans per resource, one ScopeSpans per scope, in order.
	if len(rss) != 2 || len(rss[0].ScopeSpans) != 2 || len(rss[1].ScopeSpans) != 1 ||
		len(rss[0].ScopeSpans[0].Spans) != 2 || len(rss[0].ScopeSpans[1].Spans) != 1 {
		t.Fatalf("grouping: %v", rss)
	}
	if got := rss[0].Resource.Attributes; len(got) != 2 || got[0].Key != "service.instance.id" || got[0].Value.GetStringValue() != "lb1" {
		t.Errorf("resource attributes: %v", got)
	}
	if s := rss[0].ScopeSpans[0].Scope; s.Name != "vigil" || s.Version != "1.0" || rss[0].ScopeSpans[1].Scope.Name != "vigil/cli" {
		t.Errorf("scopes: %v %v", s, rss[0].ScopeSpans[1].Scope)
	}

	root, child := rss[0].ScopeSpans[0].Spans[0], rss[0].ScopeSpans[0].Spans[1]
	if string(root.TraceId) != string(tid[:]) || string(root.SpanId) != string(sid1[:]) || root.ParentSpanId != nil {
		t.Errorf("root ids: %x %x %x", root.TraceId, root.SpanId, root.ParentSpanId)
	}
	// SpanFlags: W3C flags in the low byte, HAS_IS_REMOTE 0x100, IS_REMOTE 0x200.
	if root.Flags != 0x101 || child.Flags != 0x301 {
		t.Errorf("flags: root %#x child %#x, want 0x101 and 0x301", root.Flags, child.Flags)
	}
	if root.TraceState != "vigil=1" || root.Name != "vrrp.transition" || root.Kind != tracepb.Span_SPAN_KIND_INTERNAL ||
		child.Kind != tracepb.Span_SPAN_KIND_CLIENT || rss[0].ScopeSpans[1].Spans[0].Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("state, name or kind: %q %q %v %v", root.TraceState, root.Name, root.Kind, child.Kind)
	}
	if root.StartTimeUnixNano != uint64(t0.UnixNano()) || root.EndTimeUnixNano-root.StartTimeUnixNano != uint64(3*time.Millisecond) {
		t.Errorf("times: %d %d", root.StartTimeUnixNano, root.EndTimeUnixNano)
	}
	// Status codes differ in number between the API and the proto.
	if root.Status.Code != tracepb.Status_STATUS_CODE_ERROR || root.Status.Message != "garp failed" ||
		child.Status.Code != tracepb.Status_STATUS_CODE_OK || child.Status.Message != "" ||
		rss[1].ScopeSpans[0].Spans[0].Status.Code != tracepb.Status_STATUS_CODE_UNSET {
		t.Errorf("status: %v %v", root.Status, child.Status)
	}
	if root.DroppedAttributesCount != 2 || root.DroppedEventsCount != 3 || root.DroppedLinksCount != 4 {
		t.Errorf("dropped counts: %d %d %d", root.DroppedAttributesCount, root.DroppedEventsCount, root.DroppedLinksCount)
	}
	want := map[string]string{"b": "bool:true", "i": "int:7", "f": "double:0.5", "s": `string:"x"`,
		"ss": `[string:"a" string:"b"]`, "is": "[int:1 int:2]"}
	if len(root.Attributes) != len(want) {
		t.Errorf("attributes: %v", root.Attributes)
	}
	for _, kv := range root.Attributes {
		if got := valueString(kv.Value); got != want[kv.Key] {
			t.Errorf("attribute %s = %s, want %s", kv.Key, got, want[kv.Key])
		}
	}
	if len(root.Events) != 1 || root.Events[0].Name != "vip.added" || root.Events[0].TimeUnixNano != uint64(t0.Add(time.Millisecond).UnixNano()) ||
		root.Events[0].DroppedAttributesCount != 1 || root.Events[0].Attributes[0].Value.GetStringValue() != "192.0.2.1/24" {
		t.Errorf("events: %v", root.Events)
	}
	if string(child.ParentSpanId) != string(sid3[:]) {
		t.Errorf("parent: %x", child.ParentSpanId)
	}
	if len(child.Links) != 1 || string(child.Links[0].SpanId) != string(sid1[:]) || child.Links[0].Flags != 0x101 ||
		child.Links[0].TraceState != "vigil=1" || child.Links[0].Attributes[0].Key != "why" {
		t.Errorf("links: %v", child.Links)
	}
}

// valueString writes an AnyValue compactly, for comparisons.
func valueString(v *commonpb.AnyValue) string {
	switch x := v.Value.(type) {
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprintf("bool:%v", x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprintf("int:%d", x.IntValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprintf("double:%v", x.DoubleValue)
	case *commonpb.AnyValue_StringValue:
		return fmt.Sprintf("string:%q", x.StringValue)
	case *commonpb.AnyValue_ArrayValue:
		var parts []string
		for _, e := range x.ArrayValue.Values {
			parts = append(parts, valueString(e))
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprintf("%T", v.Value)
}
