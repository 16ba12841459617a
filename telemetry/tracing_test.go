package telemetry

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"vigil/config"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// Issue 15: the environment wins over the file; nothing configured means no exporter (and so
// no connection attempt); OTEL_SDK_DISABLED=true is honoured (the Go SDK does not read it).
func TestTracingExporterChoice(t *testing.T) {
	cases := []struct {
		name string
		cfg  config.Tracing
		env  map[string]string
		want string
	}{
		{"nothing configured", config.Tracing{}, nil, "none"},
		{"file console", config.Tracing{Exporter: "console"}, nil, "console"},
		{"file endpoint alone means otlp", config.Tracing{Endpoint: "192.0.2.1:4318"}, nil, "otlp/http/protobuf"},
		{"file grpc", config.Tracing{Exporter: "otlp", Protocol: "grpc", Endpoint: "192.0.2.1:4317", Insecure: true}, nil, "otlp/grpc"},
		{"env endpoint alone means otlp", config.Tracing{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://192.0.2.1:4318"}, "otlp/http/protobuf"},
		{"env protocol wins", config.Tracing{Exporter: "otlp", Protocol: "http/protobuf"}, map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "otlp/grpc"},
		{"env none wins over the file", config.Tracing{Exporter: "otlp", Endpoint: "192.0.2.1:4318"}, map[string]string{"OTEL_TRACES_EXPORTER": "none"}, "none"},
		{"env console wins over the file", config.Tracing{Exporter: "otlp"}, map[string]string{"OTEL_TRACES_EXPORTER": "console"}, "console"},
		{"sdk disabled", config.Tracing{Exporter: "console"}, map[string]string{"OTEL_SDK_DISABLED": "true"}, "none"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr, err := NewTracing(c.cfg, "lb1", "test", envOf(c.env), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Shutdown(time.Second)
			if tr.Exporter != c.want {
				t.Fatalf("exporter %q, want %q", tr.Exporter, c.want)
			}
			if (tr.provider == nil) != (c.want == "none") {
				t.Fatalf("provider %v for exporter %q", tr.provider, c.want)
			}
		})
	}
	if _, err := NewTracing(config.Tracing{}, "lb1", "test", envOf(map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}), nil); err == nil {
		t.Fatal("an unknown exporter was accepted")
	}
	// A bad OTLP variable fails the start with its name, not a silent default.
	_, err := NewTracing(config.Tracing{Exporter: "otlp"}, "lb1", "test", envOf(map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "tracing: otlp exporter: OTEL_EXPORTER_OTLP_TIMEOUT") {
		t.Fatalf("bad OTEL_EXPORTER_OTLP_TIMEOUT: %v", err)
	}
}

// The OTLP/HTTP wiring end to end: the file's endpoint and headers reach a server that takes
// POST /v1/traces; the resource names the service and node; the counters count the export.
func TestTracingExportsToOTLPHTTP(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, b)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	reg := prometheus.NewRegistry()
	tr, err := NewTracing(config.Tracing{Endpoint: srv.URL, Headers: "authorization=Bearer+abc"}, "lb1", "1.2.3", envOf(nil), reg)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Tracer.Start(context.Background(), "vrrp.transition")
	span.End()
	if err := tr.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].URL.Path != "/v1/traces" || got[0].Header.Get("Authorization") != "Bearer abc" {
		t.Fatalf("requests: %d %v", len(got), got)
	}
	for _, want := range []string{"vrrp.transition", "vigil", "lb1", "1.2.3"} {
		if !bytes.Contains(bodies[0], []byte(want)) {
			t.Errorf("the export lacks %q", want)
		}
	}
	n, err := testutil.GatherAndCount(reg, "vigil_tracing_spans_exported_total", "vigil_tracing_spans_ended_total")
	if err != nil || n != 2 {
		t.Fatalf("tracing counters: %d %v", n, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`# HELP vigil_tracing_spans_exported_total Spans the trace backend accepted.
# TYPE vigil_tracing_spans_exported_total counter
vigil_tracing_spans_exported_total 1
`), "vigil_tracing_spans_exported_total"); err != nil {
		t.Fatal(err)
	}
}

// Nothing configured: no span is recorded anywhere (the no-op tracer) and nothing listens.
func TestTracingOffIsNoop(t *testing.T) {
	tr, err := NewTracing(config.Tracing{}, "lb1", "test", envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Tracer.Start(context.Background(), "vrrp.transition")
	if span.SpanContext().IsValid() || span.IsRecording() {
		t.Fatal("tracing off made a real span")
	}
}

// Logs written inside a span carry trace_id and span_id (issue 15).
func TestTraceHandler(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	var buf bytes.Buffer
	log := slog.New(TraceHandler{slog.NewTextHandler(&buf, nil)}).With("component", "vrrp")
	ctx, span := tp.Tracer("t").Start(context.Background(), "vrrp.transition")
	log.InfoContext(ctx, "vrrp state change")
	log.Info("no span")
	span.End()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	sc := span.SpanContext()
	if !strings.Contains(lines[0], "trace_id="+sc.TraceID().String()) || !strings.Contains(lines[0], "span_id="+sc.SpanID().String()) ||
		!strings.Contains(lines[0], "component=vrrp") {
		t.Fatalf("in a span: %s", lines[0])
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Fatalf("outside a span: %s", lines[1])
	}
}

// blockingExporter stands for a trace backend that does not answer: every export waits until
// released.
type blockingExporter struct{ release chan struct{} }

func (e blockingExporter) ExportSpans(ctx context.Context, _ []sdktrace.ReadOnlySpan) error {
	select {
	case <-e.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (blockingExporter) Shutdown(context.Context) error { return nil }

// Issue 15: "the exporter never blocks VRRP: the batch processor drops under back-pressure
// (counted in a metric)". With the backend stuck, ending spans never waits, and the counters
// show what the queue dropped: ended − exported − failed once nothing is in flight.
func TestTracingDropsUnderBackPressure(t *testing.T) {
	m := newTracingMetrics(nil)
	exp := blockingExporter{release: make(chan struct{})}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(countingExporter{exp, m}, sdktrace.WithMaxQueueSize(8),
		sdktrace.WithMaxExportBatchSize(4), sdktrace.WithExportTimeout(200*time.Millisecond)), sdktrace.WithSpanProcessor(m))
	tr := tp.Tracer("t")
	// The backend is released only after the loop: were End to wait for the queue, this would
	// never return.
	for range 100 {
		_, s := tr.Start(context.Background(), "vrrp.transition")
		s.End()
	}
	close(exp.release)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	ended, exported, failed := m.ended.Load(), m.exported.Load(), m.failed.Load()
	if ended != 100 || exported+failed >= ended || exported == 0 {
		t.Fatalf("ended %d, exported %d, failed %d: want 100 ended and some, not all, exported (the rest dropped)", ended, exported, failed)
	}
	t.Logf("backend stuck: 100 spans ended, %d exported, %d failed, %d dropped by the queue", exported, failed, ended-exported-failed)
}
