package tracing

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Query selects traces for Jaeger's /api/traces (the query service's JSON API, the one its UI
// uses). Service is required; zero fields are left out and Jaeger's defaults apply (v1.75.0: spans
// that started in the last two days, at most 100 traces).
type Query struct {
	Service   string
	Operation string
	// Tags every returned trace must hold on one span (Jaeger matches span and process tags).
	Tags  map[string]string
	Limit int
}

// Values encodes q as /api/traces' query string (tags as the JSON object the API expects).
func (q Query) Values() (url.Values, error) {
	if q.Service == "" {
		return nil, errors.New("tracing: query: service is required")
	}
	v := url.Values{"service": {q.Service}}
	if q.Operation != "" {
		v.Set("operation", q.Operation)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if len(q.Tags) > 0 {
		b, err := json.Marshal(q.Tags)
		if err != nil {
			return nil, fmt.Errorf("tracing: query tags: %w", err)
		}
		v.Set("tags", string(b))
	}
	return v, nil
}

// RefType is a span reference's kind as Jaeger's model names it: an OTLP parent is CHILD_OF, an
// OTLP link FOLLOWS_FROM.
type RefType string

// The reference types of Jaeger's model.
const (
	ChildOf     RefType = "CHILD_OF"
	FollowsFrom RefType = "FOLLOWS_FROM"
)

// Reference is a span's pointer to another span.
type Reference struct {
	RefType RefType `json:"refType"`
	TraceID string  `json:"traceID"`
	SpanID  string  `json:"spanID"`
}

// KeyValue is a tag: Jaeger's model turns OTLP attributes into typed tags (Type "string", "bool",
// "int64", "float64", "binary"); Value is what JSON decoding gives for them (string, bool,
// float64).
type KeyValue struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// Process is the resource a span came from: service.name becomes ServiceName, the other resource
// attributes its tags.
type Process struct {
	ServiceName string     `json:"serviceName"`
	Tags        []KeyValue `json:"tags"`
}

// Tag returns the process tag named key.
func (p Process) Tag(key string) (any, bool) { return tag(p.Tags, key) }

// Span is one span of a trace. Jaeger serves times in microseconds; StartTime and Duration are
// converted.
type Span struct {
	TraceID       string
	SpanID        string
	OperationName string
	References    []Reference
	StartTime     time.Time
	Duration      time.Duration
	Tags          []KeyValue
	// Logs are the span's OTLP events.
	Logs []Log
	// Process is the span's process, resolved from the trace's process table.
	Process Process
	// Warnings are Jaeger's remarks on the span (e.g. a parent it does not hold).
	Warnings []string
}

// Tag returns the span tag named key.
func (s Span) Tag(key string) (any, bool) { return tag(s.Tags, key) }

// Parent returns the span ID of the span's CHILD_OF reference (its OTLP parent).
func (s Span) Parent() (string, bool) {
	for _, r := range s.References {
		if r.RefType == ChildOf {
			return r.SpanID, true
		}
	}
	return "", false
}

// Log is a span event: its name is the field "event".
type Log struct {
	Timestamp time.Time
	Fields    []KeyValue
}

// Trace is one trace: its spans in the order Jaeger returned them.
type Trace struct {
	TraceID string
	Spans   []Span
	// Warnings are Jaeger's remarks on the whole trace.
	Warnings []string
}

// SpansNamed returns the spans whose operation name is op.
func (t Trace) SpansNamed(op string) []Span {
	var out []Span
	for _, s := range t.Spans {
		if s.OperationName == op {
			out = append(out, s)
		}
	}
	return out
}

// Span returns the span with the given ID.
func (t Trace) Span(id string) (Span, bool) {
	for _, s := range t.Spans {
		if s.SpanID == id {
			return s, true
		}
	}
	return Span{}, false
}

func tag(kvs []KeyValue, key string) (any, bool) {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// The wire shapes of /api/traces: structuredResponse in Jaeger's cmd/query/app/http_handler.go
// holding the UI model of internal/uimodel/model.go (v1.75.0).
type apiResponse struct {
	Data   []apiTrace `json:"data"`
	Errors []apiError `json:"errors"`
}

type apiError struct {
	Code    int    `json:"code"`
	Msg     string `json:"msg"`
	TraceID string `json:"traceID"`
}

type apiTrace struct {
	TraceID   string             `json:"traceID"`
	Spans     []apiSpan          `json:"spans"`
	Processes map[string]Process `json:"processes"`
	Warnings  []string           `json:"warnings"`
}

type apiSpan struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	OperationName string      `json:"operationName"`
	References    []Reference `json:"references"`
	StartTime     int64       `json:"startTime"` // µs since the epoch
	Duration      int64       `json:"duration"`  // µs
	Tags          []KeyValue  `json:"tags"`
	Logs          []apiLog    `json:"logs"`
	ProcessID     string      `json:"processID"`
	Process       *Process    `json:"process"` // instead of ProcessID in some responses
	Warnings      []string    `json:"warnings"`
}

type apiLog struct {
	Timestamp int64      `json:"timestamp"` // µs since the epoch
	Fields    []KeyValue `json:"fields"`
}

// ParseTraces decodes an /api/traces response. Errors the API reports in its body fail the
// parse: a query Jaeger could not answer must not read as "no traces".
func ParseTraces(body []byte) ([]Trace, error) {
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("tracing: decode /api/traces response: %w", err)
	}
	if len(r.Errors) > 0 {
		errs := make([]error, 0, len(r.Errors))
		for _, e := range r.Errors {
			errs = append(errs, fmt.Errorf("jaeger error %d: %s", e.Code, e.Msg))
		}
		return nil, fmt.Errorf("tracing: /api/traces: %w", errors.Join(errs...))
	}
	traces := make([]Trace, 0, len(r.Data))
	for _, at := range r.Data {
		t := Trace{TraceID: at.TraceID, Spans: make([]Span, 0, len(at.Spans)), Warnings: at.Warnings}
		for _, as := range at.Spans {
			p, ok := at.Processes[as.ProcessID]
			if as.Process != nil {
				p, ok = *as.Process, true
			}
			if !ok {
				return nil, fmt.Errorf("tracing: trace %s span %s: process %q not in the trace's process table", at.TraceID, as.SpanID, as.ProcessID)
			}
			t.Spans = append(t.Spans, Span{
				TraceID:       as.TraceID,
				SpanID:        as.SpanID,
				OperationName: as.OperationName,
				References:    as.References,
				StartTime:     time.UnixMicro(as.StartTime),
				Duration:      time.Duration(as.Duration) * time.Microsecond,
				Tags:          as.Tags,
				Logs:          logs(as.Logs),
				Process:       p,
				Warnings:      as.Warnings,
			})
		}
		traces = append(traces, t)
	}
	return traces, nil
}

func logs(in []apiLog) []Log {
	if len(in) == 0 {
		return nil
	}
	out := make([]Log, len(in))
	for i, l := range in {
		out[i] = Log{Timestamp: time.UnixMicro(l.Timestamp), Fields: l.Fields}
	}
	return out
}
