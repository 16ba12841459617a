package tracing

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 15: queries go to /api/traces?service=NAME&operation=OP&limit=N; Jaeger's query API takes
// tags as one JSON object.
func TestQueryValues(t *testing.T) {
	tests := []struct {
		name    string
		q       Query
		want    string
		wantErr bool
	}{
		{name: "service only", q: Query{Service: "vigil"}, want: "service=vigil"},
		{name: "operation and limit", q: Query{Service: "vigil", Operation: "vrrp.transition", Limit: 5},
			want: "limit=5&operation=vrrp.transition&service=vigil"},
		{name: "tags as JSON", q: Query{Service: "vigil", Tags: map[string]string{"vigil.vrrp.state": "master"}},
			want: "service=vigil&tags=%7B%22vigil.vrrp.state%22%3A%22master%22%7D"},
		{name: "no service", q: Query{Operation: "x"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := tt.q.Values()
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Values() = %v, want an error", v)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := v.Encode(); got != tt.want {
				t.Errorf("Values().Encode() = %q, want %q", got, tt.want)
			}
		})
	}
}

// The API's error shape (structuredError) must fail the parse, not read as zero traces.
func TestParseTracesErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{name: "api error", body: `{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":400,"msg":"parameter 'service' is required"}]}`,
			want: "jaeger error 400: parameter 'service' is required"},
		{name: "not JSON", body: `404 page not found`, want: "decode"},
		{name: "unknown process", body: `{"data":[{"traceID":"01","spans":[{"traceID":"01","spanID":"02","processID":"p9"}],"processes":{}}]}`,
			want: `process "p9" not in the trace's process table`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, err := ParseTraces([]byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseTraces = %v, %v; want an error containing %q", ts, err, tt.want)
			}
		})
	}
}

// Spans may carry their process inline instead of a processID (uimodel.Span.Process); no data is
// zero traces, not an error.
func TestParseTracesShapes(t *testing.T) {
	inline := `{"data":[{"traceID":"0a","spans":[{"traceID":"0a","spanID":"0b","operationName":"op",` +
		`"references":[{"refType":"FOLLOWS_FROM","traceID":"0c","spanID":"0d"}],"startTime":1700000000000001,"duration":1500,` +
		`"tags":[{"key":"n","type":"int64","value":7}],"process":{"serviceName":"s","tags":[]}}],"processes":{}}],"errors":null}`
	ts, err := ParseTraces([]byte(inline))
	if err != nil {
		t.Fatal(err)
	}
	s := ts[0].Spans[0]
	if s.Process.ServiceName != "s" {
		t.Errorf("inline process: service %q, want s", s.Process.ServiceName)
	}
	if _, ok := s.Parent(); ok {
		t.Errorf("a FOLLOWS_FROM reference (an OTLP link) was taken for a parent: %+v", s.References)
	}
	if s.References[0].RefType != FollowsFrom || s.References[0].SpanID != "0d" {
		t.Errorf("references = %+v", s.References)
	}
	if s.Duration != 1500*time.Microsecond || !s.StartTime.Equal(time.UnixMicro(1700000000000001)) {
		t.Errorf("times: start %v duration %v", s.StartTime, s.Duration)
	}
	if v, ok := s.Tag("n"); !ok || v != float64(7) {
		t.Errorf("tag n = %v, %v; want 7", v, ok)
	}
	ts, err = ParseTraces([]byte(`{"data":[],"total":0,"limit":0,"offset":0,"errors":null}`))
	if err != nil || len(ts) != 0 {
		t.Errorf("empty answer: %v, %v", ts, err)
	}
}

// Binary's lookup order is build.sh's contract: VIGIL_JAEGER, else
// $VIGIL_JAEGER_CACHE/jaeger-v1.75.0; an absent cached binary is ErrNoBinary (the test skips), a
// VIGIL_JAEGER that names nothing is an error (the test fails).
func TestBinary(t *testing.T) {
	dir := t.TempDir()
	cached := filepath.Join(dir, "jaeger-"+Version)
	other := filepath.Join(dir, "other")
	for _, p := range []string{cached, other} {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	empty := t.TempDir()
	tests := []struct {
		name, env, cache string
		want             string
		wantNoBinary     bool
		wantErr          bool
	}{
		{name: "cached", cache: dir, want: cached},
		{name: "VIGIL_JAEGER wins", env: other, cache: dir, want: other},
		{name: "not built", cache: empty, wantNoBinary: true},
		{name: "VIGIL_JAEGER missing", env: filepath.Join(empty, "nope"), cache: dir, wantErr: true},
		{name: "VIGIL_JAEGER a directory", env: empty, cache: dir, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvBinary, tt.env)
			t.Setenv(EnvCache, tt.cache)
			got, err := Binary()
			switch {
			case tt.wantNoBinary:
				if !errors.Is(err, ErrNoBinary) {
					t.Fatalf("Binary() = %q, %v; want ErrNoBinary", got, err)
				}
			case tt.wantErr:
				if err == nil || errors.Is(err, ErrNoBinary) {
					t.Fatalf("Binary() = %q, %v; want an error other than ErrNoBinary", got, err)
				}
			case err != nil || got != tt.want:
				t.Fatalf("Binary() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// Every listener of the configuration is on the node's address (the task: never on other hosts'
// addresses, nor on all of them), and only the OTLP receivers feed the in-memory store.
func TestConfigListensOnAddrOnly(t *testing.T) {
	cfg := Config(netip.MustParseAddr("192.0.2.9"))
	for _, want := range []string{`"192.0.2.9:4317"`, `"192.0.2.9:4318"`, `"192.0.2.9:16686"`, `"192.0.2.9:16685"`, `"192.0.2.9:13133"`,
		"memory:", "receivers: [otlp]", "enable_tracing: false", "level: none"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %s:\n%s", want, cfg)
		}
	}
	if n := strings.Count(cfg, "endpoint:"); n != 5 {
		t.Errorf("config has %d endpoints, want the 5 above:\n%s", n, cfg)
	}
	for _, bad := range []string{"0.0.0.0", "localhost", "[::]", "JAEGER_LISTEN_HOST"} {
		if strings.Contains(cfg, bad) {
			t.Errorf("config mentions %s:\n%s", bad, cfg)
		}
	}
}
