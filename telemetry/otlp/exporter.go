// Package otlp sends spans to an OpenTelemetry collector over OTLP, by
// gRPC or by HTTP with protobuf bodies (the OTLP 1.x wire protocol), as an
// OpenTelemetry SDK SpanExporter.
//
// Why not the OpenTelemetry project's exporters (otlptracegrpc,
// otlptracehttp): both link google.golang.org/grpc, the HTTP one too,
// through the collector's generated service package, and with it
// golang.org/x/net/http2, grpc-gateway and their init-time registries.
// Measured on 2026-12-07 with BenchmarkFleetResources (two nodes, 200 VRRP
// instances each, gossip on): with those exporters the stripped binary was
// 26.1 MB and a node's RSS 36.2–36.6 MiB, file-backed 21.0–21.3 MiB (the
// binary's pages); without them 18.9 MB and 30.1–31.3 MiB, against the
// 30 MB goal of issue 13. This package needs only the span messages
// (go.opentelemetry.io/proto/otlp/trace/v1, protobuf, which the Prometheus
// client links anyway) and net/http, whose HTTP/2 client speaks the gRPC
// call: one unary method, a length-prefixed message, the status in the
// trailers.
//
// What it does, as the OpenTelemetry specification asks of an OTLP
// exporter: the OTEL_EXPORTER_OTLP_[TRACES_]{ENDPOINT, HEADERS, INSECURE,
// TIMEOUT, COMPRESSION, CERTIFICATE, CLIENT_CERTIFICATE, CLIENT_KEY}
// variables (Resolve), gzip, retries with back-off on the retryable answers
// (HTTP 429, 502, 503, 504 with Retry-After; gRPC UNAVAILABLE and the other
// transient codes) within the export's timeout, and partial success
// reported as an error.
package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// Protocols.
const (
	GRPC         = "grpc"
	HTTPProtobuf = "http/protobuf"
)

// grpcMethod is the path of the trace service's only method.
const grpcMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// DefaultTimeout bounds one export, retries included (the specification's
// default for OTEL_EXPORTER_OTLP_TIMEOUT).
const DefaultTimeout = 10 * time.Second

// Config is a resolved exporter configuration (see Resolve).
type Config struct {
	Protocol string // GRPC or HTTPProtobuf
	// URL: for HTTP the full URL spans are posted to; for gRPC the scheme
	// and host (http: plaintext HTTP/2, https: TLS), the path is ignored.
	URL     *url.URL
	Headers map[string]string
	Timeout time.Duration // per export, retries included; DefaultTimeout when 0
	Gzip    bool
	// TLS is used for https URLs (nil: the system's roots).
	TLS *tls.Config
	// UserAgent is sent with every request.
	UserAgent string
}

// Exporter is an sdktrace.SpanExporter.
type Exporter struct {
	cfg     Config
	client  *http.Client
	stopped atomic.Bool
	// backoff is the first wait before a retry; it doubles up to maxBackoff.
	backoff, maxBackoff time.Duration
}

// New makes an exporter. It does not connect: the first export does.
func New(cfg Config) (*Exporter, error) {
	if cfg.URL == nil || cfg.URL.Host == "" {
		return nil, errors.New("otlp: no endpoint")
	}
	if cfg.URL.Scheme != "http" && cfg.URL.Scheme != "https" {
		return nil, fmt.Errorf("otlp: endpoint %s: scheme is not http or https", cfg.URL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = cfg.TLS
	switch cfg.Protocol {
	case GRPC:
		// gRPC is HTTP/2 only: with prior knowledge on plaintext, by ALPN
		// over TLS.
		var p http.Protocols
		if cfg.URL.Scheme == "http" {
			p.SetUnencryptedHTTP2(true)
		} else {
			p.SetHTTP2(true)
		}
		t.Protocols = &p
	case HTTPProtobuf:
	default:
		return nil, fmt.Errorf("otlp: protocol %q is not %s or %s", cfg.Protocol, GRPC, HTTPProtobuf)
	}
	return &Exporter{cfg: cfg, client: &http.Client{Transport: t}, backoff: time.Second, maxBackoff: 5 * time.Second}, nil
}

// ExportSpans sends spans in one request, retrying transient failures until
// the export's timeout or ctx ends.
func (e *Exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if e.stopped.Load() || len(spans) == 0 {
		return nil
	}
	body, err := encodeRequest(spans)
	if err != nil {
		return err
	}
	if e.cfg.Gzip {
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		if _, err := w.Write(body); err != nil {
			return fmt.Errorf("otlp: compressing: %w", err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("otlp: compressing: %w", err)
		}
		body = z.Bytes()
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	wait := e.backoff
	for {
		err := e.send(ctx, body)
		var r *retryable
		if err == nil || !errors.As(err, &r) {
			return err
		}
		d := wait
		if r.after > 0 {
			d = r.after
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return err // no time left for another try
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(d):
		}
		wait = min(2*wait, e.maxBackoff)
	}
}

// Shutdown stops exporting; later exports do nothing.
func (e *Exporter) Shutdown(context.Context) error {
	e.stopped.Store(true)
	e.client.CloseIdleConnections()
	return nil
}

// retryable is a failure worth another try, after a server-given delay
// when it named one.
type retryable struct {
	err   error
	after time.Duration
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

func (e *Exporter) send(ctx context.Context, body []byte) error {
	if e.cfg.Protocol == GRPC {
		return e.sendGRPC(ctx, body)
	}
	return e.sendHTTP(ctx, body)
}

func (e *Exporter) newRequest(ctx context.Context, u string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("otlp: %w", err)
	}
	for k, v := range e.cfg.Headers {
		req.Header.Set(k, v)
	}
	if e.cfg.UserAgent != "" {
		req.Header.Set("User-Agent", e.cfg.UserAgent)
	}
	return req, nil
}

// sendHTTP is one OTLP/HTTP request (binary protobuf).
func (e *Exporter) sendHTTP(ctx context.Context, body []byte) error {
	req, err := e.newRequest(ctx, e.cfg.URL.String(), body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if e.cfg.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		// Connection refused, reset, DNS: the collector may come back.
		return &retryable{err: fmt.Errorf("otlp: POST %s: %w", e.cfg.URL.Redacted(), err)}
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return &retryable{err: fmt.Errorf("otlp: POST %s: reading the answer: %w", e.cfg.URL.Redacted(), err)}
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return partialSuccess(rb)
	case transientStatus(resp.StatusCode):
		return &retryable{err: fmt.Errorf("otlp: POST %s: %s", e.cfg.URL.Redacted(), resp.Status), after: retryAfter(resp.Header.Get("Retry-After"))}
	}
	return fmt.Errorf("otlp: POST %s: %s: %s", e.cfg.URL.Redacted(), resp.Status, snippet(rb))
}

// sendGRPC is one unary call of TraceService/Export over HTTP/2 (gRPC over
// HTTP2: a 5-byte prefix, compressed flag and length, before the message;
// the status in the grpc-status trailer, or in the headers of a
// trailers-only answer).
func (e *Exporter) sendGRPC(ctx context.Context, body []byte) error {
	framed := make([]byte, 5, 5+len(body))
	if e.cfg.Gzip {
		framed[0] = 1
	}
	binary.BigEndian.PutUint32(framed[1:], uint32(len(body)))
	framed = append(framed, body...)
	u := *e.cfg.URL
	u.Path, u.RawPath, u.RawQuery = grpcMethod, "", ""
	req, err := e.newRequest(ctx, u.String(), framed)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	if e.cfg.Gzip {
		req.Header.Set("Grpc-Encoding", "gzip")
	}
	req.Header.Set("Grpc-Accept-Encoding", "gzip")
	if dl, ok := ctx.Deadline(); ok {
		req.Header.Set("Grpc-Timeout", grpcTimeout(time.Until(dl)))
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return &retryable{err: fmt.Errorf("otlp: gRPC %s: %w", e.cfg.URL.Host, err)}
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return &retryable{err: fmt.Errorf("otlp: gRPC %s: reading the answer: %w", e.cfg.URL.Host, err)}
	}
	if resp.StatusCode != http.StatusOK {
		// Not a gRPC server's answer (a proxy's): the HTTP status mapped
		// as gRPC clients do.
		err := fmt.Errorf("otlp: gRPC %s: HTTP %s", e.cfg.URL.Host, resp.Status)
		if transientStatus(resp.StatusCode) {
			return &retryable{err: err}
		}
		return err
	}
	code, msg := resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
	if code == "" { // trailers-only
		code, msg = resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	}
	if m, err := url.PathUnescape(msg); err == nil {
		msg = m
	}
	c, err := strconv.Atoi(code)
	if err != nil {
		return fmt.Errorf("otlp: gRPC %s: no grpc-status in the answer", e.cfg.URL.Host)
	}
	if c != 0 {
		err := fmt.Errorf("otlp: gRPC %s: status %s: %s", e.cfg.URL.Host, grpcCodeName(c), msg)
		// The transient codes of the OTLP specification; RESOURCE_EXHAUSTED
		// only with retry information, which this client does not read.
		switch c {
		case 1, 4, 10, 11, 14, 15: // CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS
			return &retryable{err: err}
		}
		return err
	}
	msgBytes, err := unframe(rb, resp.Header.Get("Grpc-Encoding"))
	if err != nil {
		return fmt.Errorf("otlp: gRPC %s: %w", e.cfg.URL.Host, err)
	}
	return partialSuccess(msgBytes)
}

// grpcTimeout is a grpc-timeout header value: at most 8 digits and a unit.
func grpcTimeout(d time.Duration) string {
	if ms := max(1, d.Milliseconds()); ms <= 99999999 {
		return strconv.FormatInt(ms, 10) + "m"
	}
	return strconv.FormatInt(min(99999999, int64(d/time.Second)), 10) + "S"
}

// unframe takes the message out of a gRPC answer's body ("" for none).
func unframe(b []byte, encoding string) ([]byte, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b) < 5 || int(binary.BigEndian.Uint32(b[1:5])) != len(b)-5 {
		return nil, fmt.Errorf("answer is not one gRPC message (%d bytes)", len(b))
	}
	m := b[5:]
	if b[0] == 1 {
		if encoding != "gzip" {
			return nil, fmt.Errorf("answer compressed with %q", encoding)
		}
		r, err := gzip.NewReader(bytes.NewReader(m))
		if err != nil {
			return nil, fmt.Errorf("answer: %w", err)
		}
		if m, err = io.ReadAll(io.LimitReader(r, 64<<10)); err != nil {
			return nil, fmt.Errorf("answer: %w", err)
		}
	}
	return m, nil
}

// transientStatus is an HTTP status worth another try (the OTLP
// specification's list; a gRPC client maps them to UNAVAILABLE).
func transientStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// partialSuccess reads an ExportTraceServiceResponse: field 1 is
// partial_success {1: rejected_spans int64, 2: error_message string}. A
// non-empty one is an error (not retried: the specification says so). A
// body that is not protobuf (a proxy's) reports nothing.
func partialSuccess(b []byte) error {
	var rejected int64
	var msg string
	ok := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) bool {
		if num != 1 || typ != protowire.BytesType {
			return true
		}
		return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, u uint64) bool {
			switch {
			case num == 1 && typ == protowire.VarintType:
				rejected = int64(u)
			case num == 2 && typ == protowire.BytesType:
				msg = string(v)
			}
			return true
		})
	})
	if !ok || (rejected == 0 && msg == "") {
		return nil
	}
	return fmt.Errorf("otlp: the collector rejected %d spans: %s", rejected, msg)
}

// eachField calls fn with every field of the protobuf message b: a bytes
// field's contents, a varint's value (other types skipped over). It
// reports false for a malformed message or when fn does.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, u uint64) bool) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		var v []byte
		var u uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			u, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return false
		}
		b = b[n:]
		if !fn(num, typ, v, u) {
			return false
		}
	}
	return true
}

// retryAfter reads a Retry-After header given in seconds (the HTTP-date
// form is rare from collectors and falls back to the back-off).
func retryAfter(v string) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || s < 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strconv.Quote(s)
}

var grpcCodes = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

func grpcCodeName(c int) string {
	if c >= 0 && c < len(grpcCodes) {
		return grpcCodes[c]
	}
	return strconv.Itoa(c)
}
