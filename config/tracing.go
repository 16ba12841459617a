package config

import (
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Tracing is telemetry.tracing (issue 15): where vigil's OpenTelemetry
// spans go. The standard OTEL_* environment variables win over every key
// (telemetry package, NewTracing); with neither, nothing is exported and
// no connection is attempted.
type Tracing struct {
	// Exporter is "" (not configured here), "none", "otlp" or "console".
	Exporter string
	// Endpoint is the OTLP endpoint: a URL (http://host:4318,
	// https://host:4317) or host:port.
	Endpoint string
	// Protocol is "grpc" or "http/protobuf" ("" = http/protobuf, the
	// OTLP default).
	Protocol string
	Insecure bool
	// Headers are sent with every export, in OTEL_EXPORTER_OTLP_HEADERS
	// form (key=value pairs, comma-separated, keys sorted), so the section
	// stays comparable.
	Headers string
	// Sampler is an OTEL_TRACES_SAMPLER value ("" =
	// parentbased_always_on: failovers are rare and each one matters);
	// SamplerArg its OTEL_TRACES_SAMPLER_ARG.
	Sampler    string
	SamplerArg string
}

// Tracing exporters, protocols and samplers.
var (
	TracingExporters = []string{"none", "otlp", "console"}
	TracingProtocols = []string{"grpc", "http/protobuf"}
	TracingSamplers  = []string{"always_on", "always_off", "traceidratio", "parentbased_always_on",
		"parentbased_always_off", "parentbased_traceidratio"}
)

func (d *decoder) tracing(o *object) Tracing {
	t := Tracing{
		Exporter: d.choice(o, "exporter", "", TracingExporters...),
		Protocol: d.choice(o, "protocol", "", TracingProtocols...),
		Sampler:  d.choice(o, "sampler", "", TracingSamplers...),
	}
	if f := getString(o, "endpoint"); f.ok() {
		if msg := endpointProblem(f.V); msg != "" {
			f.reject(d, "%s", msg)
		}
		t.Endpoint = f.V
	}
	if f := getBool(o, "insecure"); f.ok() {
		t.Insecure = f.V
	}
	if f := getString(o, "sampler_arg"); f.ok() {
		if v, err := strconv.ParseFloat(f.V, 64); err != nil || v < 0 || v > 1 {
			f.reject(d, "is not a ratio between 0 and 1")
		}
		t.SamplerArg = f.V
	}
	if h, st := getObject(o, "headers"); st == good {
		hs := map[string]string{}
		for _, k := range slices.Sorted(maps.Keys(h.m)) {
			f := getString(h, k)
			if !f.ok() {
				continue
			}
			if k == "" || strings.ContainsAny(k, "=, ") || strings.Contains(f.V, ",") {
				f.reject(d, "header names cannot be empty or hold '=', ',' or spaces, nor values ','")
				continue
			}
			hs[k] = f.V
		}
		var pairs []string
		for _, k := range slices.Sorted(maps.Keys(hs)) {
			pairs = append(pairs, url.QueryEscape(k)+"="+url.QueryEscape(hs[k]))
		}
		t.Headers = strings.Join(pairs, ",")
	}
	if t.Exporter == "otlp" && t.Endpoint == "" {
		d.warn(o.sub("endpoint"), "exporter otlp without an endpoint: spans go to localhost (4318, or 4317 with grpc) unless OTEL_EXPORTER_OTLP_ENDPOINT says otherwise")
	}
	o.unknown(nil, nil)
	return t
}

// endpointProblem says what is wrong with an OTLP endpoint ("" = nothing).
func endpointProblem(s string) string {
	if s == "" {
		return "is empty: leave the key out"
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "is not an http:// or https:// URL with a host"
		}
		return ""
	}
	return hostPortProblem(s)
}
