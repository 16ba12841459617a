package main

import (
	"context"
	"os"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"vigil/config"
	"vigil/internal/buildinfo"
	"vigil/telemetry"
)

// cliSpan starts a CLIENT span for an operator's command (config push,
// rollback) with the tracing the OTEL_* variables configure (none: a no-op
// span); end records the command's error and flushes the span.
func cliSpan(ctx context.Context, name string) (context.Context, func(error)) {
	if ctx == nil {
		ctx = context.Background()
	}
	host, _ := os.Hostname()
	tr, err := telemetry.NewTracing(config.Tracing{}, host, buildinfo.Get().Version, os.Getenv, nil)
	if err != nil {
		return ctx, func(error) {}
	}
	ctx, span := tr.Tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient))
	return ctx, func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
		_ = tr.Shutdown(5 * time.Second)
	}
}
