package otlp

import (
	"maps"
	"strings"
	"testing"
	"time"
)

// The OTEL_EXPORTER_OTLP_* variables (specification, "OpenTelemetry
// Protocol Exporter" configuration): the traces-specific variable wins over
// the general one, each variable over the file; OTLP/HTTP adds /v1/traces to
// a base endpoint but not to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; gRPC takes
// the scheme as the TLS switch; host:port is TLS unless insecure.
func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		name    string
		file    Settings
		env     map[string]string
		url     string
		proto   string
		headers map[string]string
		timeout time.Duration
		gzip    bool
	}{
		{name: "defaults", url: "http://localhost:4318/v1/traces", proto: HTTPProtobuf},
		{name: "grpc default", file: Settings{Protocol: GRPC}, url: "http://localhost:4317", proto: GRPC},
		{name: "file base URL", file: Settings{Endpoint: "http://c.example:4318"}, url: "http://c.example:4318/v1/traces", proto: HTTPProtobuf},
		{name: "file base URL with a path", file: Settings{Endpoint: "https://c.example/otlp/"}, url: "https://c.example/otlp/v1/traces", proto: HTTPProtobuf},
		{name: "file host:port, TLS", file: Settings{Endpoint: "192.0.2.1:4318"}, url: "https://192.0.2.1:4318/v1/traces", proto: HTTPProtobuf},
		{name: "file host:port, insecure", file: Settings{Endpoint: "192.0.2.1:4318", Insecure: true}, url: "http://192.0.2.1:4318/v1/traces", proto: HTTPProtobuf},
		{name: "grpc host:port, insecure", file: Settings{Protocol: GRPC, Endpoint: "192.0.2.1:4317", Insecure: true}, url: "http://192.0.2.1:4317", proto: GRPC},
		{name: "grpc URL keeps its scheme", file: Settings{Protocol: GRPC, Endpoint: "https://c.example:4317"}, url: "https://c.example:4317", proto: GRPC},
		{name: "env base wins over the file", file: Settings{Endpoint: "http://file:4318"},
			env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318"}, url: "http://env:4318/v1/traces", proto: HTTPProtobuf},
		{name: "traces endpoint as it is", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:9999/custom"}, url: "http://traces:9999/custom", proto: HTTPProtobuf},
		{name: "env protocol and insecure", file: Settings{Protocol: HTTPProtobuf, Endpoint: "192.0.2.1:4317"},
			env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_INSECURE": "true"}, url: "http://192.0.2.1:4317", proto: GRPC},
		{name: "env insecure false wins", file: Settings{Endpoint: "192.0.2.1:4318", Insecure: true},
			env: map[string]string{"OTEL_EXPORTER_OTLP_INSECURE": "false"}, url: "https://192.0.2.1:4318/v1/traces", proto: HTTPProtobuf},
		{name: "headers, timeout, gzip", file: Settings{Headers: map[string]string{"a": "file"}},
			env: map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "a=env,b=x%20y", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2500", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"},
			url: "http://localhost:4318/v1/traces", proto: HTTPProtobuf, headers: map[string]string{"a": "env", "b": "x y"}, timeout: 2500 * time.Millisecond, gzip: true},
		{name: "file headers", file: Settings{Headers: map[string]string{"a": "file"}}, url: "http://localhost:4318/v1/traces", proto: HTTPProtobuf, headers: map[string]string{"a": "file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Resolve(tc.file, func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if c.URL.String() != tc.url || c.Protocol != tc.proto {
				t.Errorf("got %s %s, want %s %s", c.Protocol, c.URL, tc.proto, tc.url)
			}
			if tc.headers == nil {
				tc.headers = map[string]string{}
			}
			if !maps.Equal(c.Headers, tc.headers) {
				t.Errorf("headers %v, want %v", c.Headers, tc.headers)
			}
			if tc.timeout == 0 {
				tc.timeout = DefaultTimeout
			}
			if c.Timeout != tc.timeout || c.Gzip != tc.gzip {
				t.Errorf("timeout %v gzip %v", c.Timeout, c.Gzip)
			}
			if _, err := New(c); err != nil {
				t.Errorf("New: %v", err)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	for _, tc := range []struct {
		file Settings
		env  map[string]string
		err  string
	}{
		{Settings{Protocol: "http/json"}, nil, `protocol "http/json"`},
		{Settings{}, map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, "OTEL_EXPORTER_OTLP_TIMEOUT"},
		{Settings{}, map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "br"}, "OTEL_EXPORTER_OTLP_COMPRESSION"},
		{Settings{}, map[string]string{"OTEL_EXPORTER_OTLP_INSECURE": "yes please"}, "OTEL_EXPORTER_OTLP_INSECURE"},
		{Settings{Endpoint: "ftp://c.example"}, nil, "scheme is not http or https"},
		{Settings{Endpoint: "c.example/v1/traces"}, nil, "is not host:port or a URL"},
		{Settings{}, map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, "not key=value"},
		{Settings{Endpoint: "https://c.example"}, map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem"}, "OTEL_EXPORTER_OTLP_CERTIFICATE"},
		{Settings{Endpoint: "https://c.example"}, map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_KEY": "/k.pem"}, "go together"},
	} {
		_, err := Resolve(tc.file, func(k string) string { return tc.env[k] })
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%+v %v: err = %v, want %q", tc.file, tc.env, err, tc.err)
		}
	}
}
