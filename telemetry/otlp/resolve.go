package otlp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Settings are what a configuration file may say; the OTEL_* variables win
// over each of them (the specification's precedence for SDK configuration
// that also has a file form).
type Settings struct {
	Protocol string
	// Endpoint is a URL (the base, to which OTLP/HTTP adds /v1/traces; for
	// gRPC its scheme says TLS or not) or host:port (TLS unless Insecure).
	Endpoint string
	Insecure bool
	Headers  map[string]string
}

// Default endpoints of the specification.
const (
	defaultGRPCEndpoint = "http://localhost:4317"
	defaultHTTPEndpoint = "http://localhost:4318"
	tracesPath          = "/v1/traces"
)

// Resolve combines the file's settings with the environment (env: os.Getenv
// in the daemon). The traces-specific variable of each pair wins over the
// general one.
func Resolve(s Settings, env func(string) string) (Config, error) {
	get := func(name string) string {
		if v := strings.TrimSpace(env("OTEL_EXPORTER_OTLP_TRACES_" + name)); v != "" {
			return v
		}
		return strings.TrimSpace(env("OTEL_EXPORTER_OTLP_" + name))
	}
	cfg := Config{Protocol: s.Protocol, Timeout: DefaultTimeout, Headers: map[string]string{}}
	if v := get("PROTOCOL"); v != "" {
		cfg.Protocol = v
	}
	if cfg.Protocol == "" {
		cfg.Protocol = HTTPProtobuf
	}
	if cfg.Protocol != GRPC && cfg.Protocol != HTTPProtobuf {
		return Config{}, fmt.Errorf("protocol %q is not %s or %s", cfg.Protocol, GRPC, HTTPProtobuf)
	}
	insecure := s.Insecure
	if v := get("INSECURE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("OTEL_EXPORTER_OTLP_INSECURE=%q is not true or false", v)
		}
		insecure = b
	}
	u, err := endpoint(cfg.Protocol, s.Endpoint, env, insecure)
	if err != nil {
		return Config{}, err
	}
	cfg.URL = u
	for k, v := range s.Headers {
		cfg.Headers[k] = v
	}
	if v := get("HEADERS"); v != "" {
		h, err := ParseHeaders(v)
		if err != nil {
			return Config{}, fmt.Errorf("OTEL_EXPORTER_OTLP_HEADERS: %w", err)
		}
		cfg.Headers = h
	}
	if v := get("TIMEOUT"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return Config{}, fmt.Errorf("OTEL_EXPORTER_OTLP_TIMEOUT=%q is not a positive number of milliseconds", v)
		}
		cfg.Timeout = time.Duration(ms) * time.Millisecond
	}
	switch v := get("COMPRESSION"); v {
	case "gzip":
		cfg.Gzip = true
	case "", "none":
	default:
		return Config{}, fmt.Errorf("OTEL_EXPORTER_OTLP_COMPRESSION=%q is not gzip or none", v)
	}
	if u.Scheme == "https" {
		t, err := tlsConfig(get("CERTIFICATE"), get("CLIENT_CERTIFICATE"), get("CLIENT_KEY"))
		if err != nil {
			return Config{}, err
		}
		cfg.TLS = t
	}
	return cfg, nil
}

// endpoint picks the endpoint: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it
// is, else OTEL_EXPORTER_OTLP_ENDPOINT as a base (HTTP adds /v1/traces),
// else the file's (a base URL or host:port), else the default.
func endpoint(proto, file string, env func(string) string, insecure bool) (*url.URL, error) {
	exact := strings.TrimSpace(env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
	base := strings.TrimSpace(env("OTEL_EXPORTER_OTLP_ENDPOINT"))
	name := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	switch {
	case exact != "":
	case base != "":
		exact, name = base, "OTEL_EXPORTER_OTLP_ENDPOINT"
	case file != "":
		exact, name = file, "telemetry.tracing.endpoint"
	default:
		exact, name = defaultHTTPEndpoint, "the default endpoint"
		if proto == GRPC {
			exact = defaultGRPCEndpoint
		}
	}
	var u *url.URL
	if strings.Contains(exact, "://") {
		var err error
		if u, err = url.Parse(exact); err != nil {
			return nil, fmt.Errorf("%s %q: %w", name, exact, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, fmt.Errorf("%s %q: scheme is not http or https", name, exact)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("%s %q: no host", name, exact)
		}
	} else {
		// host:port: TLS unless insecure.
		scheme := "https"
		if insecure {
			scheme = "http"
		}
		u = &url.URL{Scheme: scheme, Host: exact}
		if _, err := url.Parse(u.String()); err != nil || strings.ContainsAny(exact, "/?#") {
			return nil, fmt.Errorf("%s %q is not host:port or a URL", name, exact)
		}
	}
	// OTLP/HTTP: the signal's path is added to a base URL, never to the
	// traces-specific variable, which is used as it is.
	if proto == HTTPProtobuf && name != "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" {
		u.Path = strings.TrimSuffix(u.Path, "/") + tracesPath
		u.RawPath = ""
	}
	if proto == HTTPProtobuf && u.Path == "" {
		u.Path = "/"
	}
	return u, nil
}

// tlsConfig reads the CA and client certificate files named by the
// environment; with none, nil (the system's roots).
func tlsConfig(ca, cert, key string) (*tls.Config, error) {
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_CERTIFICATE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_CERTIFICATE %s: no PEM certificate in it", ca)
		}
		t.RootCAs = pool
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY go together")
	}
	if cert != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("OTLP client certificate: %w", err)
		}
		t.Certificates = []tls.Certificate{c}
	}
	return t, nil
}

// ParseHeaders reads the W3C-baggage-like list of the OTEL_*_HEADERS
// variables: key=value pairs separated by commas, each part URL-encoded.
func ParseHeaders(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("header %q is not key=value", kv)
		}
		ku, err1 := url.QueryUnescape(strings.TrimSpace(k))
		vu, err2 := url.QueryUnescape(strings.TrimSpace(v))
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("header %q: %w", kv, err)
		}
		if ku == "" {
			return nil, fmt.Errorf("header %q has no key", kv)
		}
		out[ku] = vu
	}
	return out, nil
}
