package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"vigil/config"
	"vigil/telemetry/otlp"
)

// Tracing (issue 15): OpenTelemetry spans for what an operator wants to
// read as a story (a failover, a reload, a push), never per advert, probe
// or scrape. Where spans go follows the standard OTEL_* variables, which
// win over telemetry.tracing in the file; with neither, there is no
// exporter and no connection attempt. OTEL_SDK_DISABLED=true turns it all
// off (the Go SDK does not read it itself).

// Tracing is the node's tracer provider and its shutdown.
type Tracing struct {
	// Tracer makes vigil's spans: a no-op one when tracing is off.
	Tracer trace.Tracer
	// Exporter names what is in use ("none", "otlp/grpc",
	// "otlp/http/protobuf", "console"): logged at start.
	Exporter string
	provider *sdktrace.TracerProvider
	metrics  *tracingMetrics
}

// NewTracing builds tracing from cfg and the environment (env: os.Getenv
// in the daemon, a map in tests). reg, if not nil, gets the exporter's
// counters.
func NewTracing(cfg config.Tracing, node, version string, env func(string) string, reg *prometheus.Registry) (*Tracing, error) {
	off := &Tracing{Tracer: noop.NewTracerProvider().Tracer("vigil"), Exporter: "none"}
	if v, _ := strconv.ParseBool(env("OTEL_SDK_DISABLED")); v {
		return off, nil
	}
	kind := tracesExporter(cfg, env)
	if kind == "none" {
		return off, nil
	}
	var exp sdktrace.SpanExporter
	var err error
	name := kind
	switch kind {
	case "console":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
	case "otlp":
		var proto string
		exp, proto, err = otlpExporter(cfg, env, version)
		if proto != "" {
			name = "otlp/" + proto
		}
	default:
		return nil, fmt.Errorf("tracing: OTEL_TRACES_EXPORTER=%q is not otlp, console or none", kind)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: %s exporter: %w", name, err)
	}
	res, err := resource.New(context.Background(),
		resource.WithAttributes(semconv.ServiceName("vigil"), semconv.ServiceVersion(version), semconv.ServiceInstanceID(node)),
		resource.WithHost(),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil && res == nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	m := newTracingMetrics(reg)
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res),
		// The batcher drops spans when its queue is full: the exporter
		// never blocks VRRP.
		sdktrace.WithBatcher(countingExporter{exp, m}), sdktrace.WithSpanProcessor(m)}
	if env("OTEL_TRACES_SAMPLER") == "" {
		s, err := sampler(cfg.Sampler, cfg.SamplerArg)
		if err != nil {
			return nil, fmt.Errorf("tracing: %w", err)
		}
		opts = append(opts, sdktrace.WithSampler(s))
	} // else the SDK reads OTEL_TRACES_SAMPLER and _ARG itself
	tp := sdktrace.NewTracerProvider(opts...)
	return &Tracing{Tracer: tp.Tracer("vigil"), Exporter: name, provider: tp, metrics: m}, nil
}

// tracesExporter picks the exporter: OTEL_TRACES_EXPORTER, else the file's,
// else otlp when an endpoint is set anywhere, else none (nothing
// configured: no exporter, no connection attempt, no error log).
func tracesExporter(cfg config.Tracing, env func(string) string) string {
	if v := env("OTEL_TRACES_EXPORTER"); v != "" {
		return strings.TrimSpace(strings.Split(v, ",")[0])
	}
	if cfg.Exporter != "" {
		return cfg.Exporter
	}
	if env("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || cfg.Endpoint != "" {
		return "otlp"
	}
	return "none"
}

// otlpExporter builds the OTLP exporter (package otlp: the project's own,
// see its documentation for why). The OTEL_EXPORTER_OTLP_* variables win
// over the file's settings, one by one.
func otlpExporter(cfg config.Tracing, env func(string) string, version string) (sdktrace.SpanExporter, string, error) {
	headers, err := otlp.ParseHeaders(cfg.Headers)
	if err != nil {
		return nil, "", err
	}
	c, err := otlp.Resolve(otlp.Settings{Protocol: cfg.Protocol, Endpoint: cfg.Endpoint, Insecure: cfg.Insecure, Headers: headers}, env)
	if err != nil {
		return nil, "", err
	}
	c.UserAgent = "vigil/" + version
	exp, err := otlp.New(c)
	return exp, c.Protocol, err
}

// sampler is an OTEL_TRACES_SAMPLER value as an SDK sampler ("" =
// parentbased_always_on).
func sampler(name, arg string) (sdktrace.Sampler, error) {
	ratio := 1.0
	if arg != "" {
		v, err := strconv.ParseFloat(arg, 64)
		if err != nil {
			return nil, fmt.Errorf("sampler argument %q is not a number", arg)
		}
		ratio = v
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, fmt.Errorf("sampler %q is not one of %s", name, strings.Join(config.TracingSamplers, ", "))
}

// Shutdown flushes the spans still queued, within timeout (SIGTERM: after
// the VIPs are released, so the release is in the trace).
func (t *Tracing) Shutdown(timeout time.Duration) error {
	if t == nil || t.provider == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: flushing spans: %w", err)
	}
	return nil
}

// tracingMetrics count spans ended, exported and failed: ended − exported −
// failed is what the batcher dropped or still holds.
type tracingMetrics struct {
	ended, exported, failed atomic.Uint64
}

func newTracingMetrics(reg *prometheus.Registry) *tracingMetrics {
	m := &tracingMetrics{}
	if reg == nil {
		return m
	}
	c := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	reg.MustRegister(
		c("vigil_tracing_spans_ended_total", "Sampled spans ended (handed to the exporter's queue).", &m.ended),
		c("vigil_tracing_spans_exported_total", "Spans the trace backend accepted.", &m.exported),
		c("vigil_tracing_spans_failed_total", "Spans whose export failed (backend unreachable or refusing); ended − exported − failed is what the queue dropped or still holds.", &m.failed))
	return m
}

// The span processor side: counts ended spans.
func (m *tracingMetrics) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (m *tracingMetrics) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.SpanContext().IsSampled() {
		m.ended.Add(1)
	}
}
func (m *tracingMetrics) Shutdown(context.Context) error   { return nil }
func (m *tracingMetrics) ForceFlush(context.Context) error { return nil }

// countingExporter counts what the exporter exported or failed to.
type countingExporter struct {
	sdktrace.SpanExporter
	m *tracingMetrics
}

func (c countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := c.SpanExporter.ExportSpans(ctx, spans)
	if err != nil {
		c.m.failed.Add(uint64(len(spans)))
	} else {
		c.m.exported.Add(uint64(len(spans)))
	}
	return err
}

// TraceHandler adds trace_id and span_id to every record logged with a
// context that holds a span (log.InfoContext(ctx, ...) inside one), so a
// log line leads to its trace.
type TraceHandler struct{ slog.Handler }

// Handle implements slog.Handler.
func (h TraceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h TraceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return TraceHandler{h.Handler.WithAttrs(as)}
}

// WithGroup implements slog.Handler.
func (h TraceHandler) WithGroup(name string) slog.Handler {
	return TraceHandler{h.Handler.WithGroup(name)}
}
