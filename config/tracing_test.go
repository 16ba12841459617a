package config

import "testing"

// telemetry.tracing (issue 15): exporter, endpoint, protocol, insecure, headers, sampler; the
// headers kept in OTEL_EXPORTER_OTLP_HEADERS form so the section stays comparable.
func TestTracingSection(t *testing.T) {
	c := mustParse(t, one()+`telemetry:
  tracing:
    exporter: otlp
    endpoint: "http://192.0.2.50:4318"
    protocol: http/protobuf
    insecure: true
    headers: { x-tenant: "ops", authorization: "Bearer a b" }
    sampler: parentbased_traceidratio
    sampler_arg: "0.5"
`)
	want := Tracing{Exporter: "otlp", Endpoint: "http://192.0.2.50:4318", Protocol: "http/protobuf", Insecure: true,
		Headers: "authorization=Bearer+a+b,x-tenant=ops", Sampler: "parentbased_traceidratio", SamplerArg: "0.5"}
	if c.Telemetry.Tracing != want {
		t.Fatalf("tracing %+v\nwant    %+v", c.Telemetry.Tracing, want)
	}
	if c := mustParse(t, one()); c.Telemetry.Tracing != (Tracing{}) {
		t.Fatalf("no tracing section: %+v, want nothing configured", c.Telemetry.Tracing)
	}
	cases := []struct{ yaml, path, frag string }{
		{"exporter: jaeger", "telemetry.tracing.exporter", "is not one of none, otlp, console"},
		{"protocol: http/json", "telemetry.tracing.protocol", "is not one of grpc, http/protobuf"},
		{"endpoint: \"ftp://192.0.2.50\"", "telemetry.tracing.endpoint", "not an http:// or https:// URL"},
		{"endpoint: \"192.0.2.50\"", "telemetry.tracing.endpoint", ""},
		{"sampler: sometimes", "telemetry.tracing.sampler", "is not one of"},
		{"sampler_arg: \"2\"", "telemetry.tracing.sampler_arg", "between 0 and 1"},
		{"headers: { \"a,b\": x }", "telemetry.tracing.headers.a,b", "header names"},
		{"endpont: x", "telemetry.tracing.endpont", ""},
	}
	for _, c := range cases {
		ve := mustFail(t, one()+"telemetry:\n  tracing:\n    "+c.yaml+"\n")
		wantErr(t, ve, c.path, c.frag)
	}
}
