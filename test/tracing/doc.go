// Package tracing runs the real trace backend of vigil's tests (issue 15): Jaeger v1.75.0 in a lab
// node's network namespace, and typed queries of what it stored.
//
// The binary is built from the Go module in test/jaeger (its own go.mod, so vigil's go.mod does not
// grow) by test/jaeger/build.sh, once, into $VIGIL_JAEGER_CACHE (default /var/cache/vigil-test) as
// jaeger-v1.75.0; `make deps` (and so `make test`) runs it. VIGIL_JAEGER names another binary.
// StartForTest skips a test when neither exists.
//
// Start runs Jaeger with Config: Jaeger's all-in-one defaults cut down to the OTLP receivers (gRPC
// 4317, HTTP 4318), the in-memory store and the query service (HTTP 16686, gRPC 16685), plus the
// health check (13133) it waits on, every listener on the node's own address. Traces asks the
// query API (/api/traces?service=...&operation=...&limit=...) from inside that node and returns
// Trace and Span values: IDs, operation name, CHILD_OF / FOLLOWS_FROM references, start time,
// duration, tags and the process (resource) tags.
//
// The namespace test proving the harness is root-only and gated by VIGIL_NETNS=1:
//
//	test/jaeger/build.sh && VIGIL_NETNS=1 go test -count=1 -v ./test/tracing/
package tracing
