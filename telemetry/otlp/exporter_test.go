package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/encoding/protowire"
)

func oneSpan() []sdktrace.ReadOnlySpan {
	return []sdktrace.ReadOnlySpan{tracetest.SpanStub{Name: "vrrp.transition", SpanContext: sc(sid1, false), StartTime: t0, EndTime: t0}.Snapshot()}
}

// partialBody is an ExportTraceServiceResponse with partial_success
// {rejected_spans: n, error_message: msg}.
func partialBody(n int64, msg string) []byte {
	var ps []byte
	ps = protowire.AppendTag(ps, 1, protowire.VarintType)
	ps = protowire.AppendVarint(ps, uint64(n))
	ps = protowire.AppendTag(ps, 2, protowire.BytesType)
	ps = protowire.AppendString(ps, msg)
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendBytes(b, ps)
}

// recorder is a collector stand-in that answers each request with the next
// of its answers (the last one repeats) and keeps what it got.
type recorder struct {
	mu      sync.Mutex
	reqs    []*http.Request
	bodies  [][]byte
	answers []func(w http.ResponseWriter)
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	i := min(len(r.reqs), len(r.answers)-1)
	r.reqs, r.bodies = append(r.reqs, req), append(r.bodies, b)
	a := r.answers[i]
	r.mu.Unlock()
	a(w)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

func newExporter(t *testing.T, cfg Config) *Exporter {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.backoff, e.maxBackoff = 10*time.Millisecond, 20*time.Millisecond
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	return e
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// OTLP/HTTP (specification, "OTLP/HTTP"): a POST of the binary protobuf,
// headers and gzip as configured; 429/502/503/504 retried after Retry-After;
// other errors and partial success reported, not retried.
func TestHTTPExport(t *testing.T) {
	ok := func(w http.ResponseWriter) { w.WriteHeader(http.StatusOK) }
	unavailable := func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	bad := func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("no such thing"))
	}
	partial := func(w http.ResponseWriter) { _, _ = w.Write(partialBody(3, "too old")) }
	for _, tc := range []struct {
		name     string
		answers  []func(http.ResponseWriter)
		gzip     bool
		requests int
		err      string
	}{
		{"accepted", []func(http.ResponseWriter){ok}, false, 1, ""},
		{"gzip", []func(http.ResponseWriter){ok}, true, 1, ""},
		{"retried after 503", []func(http.ResponseWriter){unavailable, unavailable, ok}, false, 3, ""},
		{"400 not retried", []func(http.ResponseWriter){bad}, false, 1, `400 Bad Request: "no such thing"`},
		{"partial success", []func(http.ResponseWriter){partial}, false, 1, "rejected 3 spans: too old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{answers: tc.answers}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			e := newExporter(t, Config{Protocol: HTTPProtobuf, URL: mustURL(srv.URL + "/v1/traces"), Gzip: tc.gzip,
				Headers: map[string]string{"Authorization": "Bearer abc"}, UserAgent: "vigil/test"})
			r, body := exportOnce(t, e, rec, tc.err, tc.requests)
			if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" ||
				r.Header.Get("Authorization") != "Bearer abc" || r.Header.Get("User-Agent") != "vigil/test" {
				t.Errorf("request: %s %s %v", r.Method, r.URL, r.Header)
			}
			if tc.gzip {
				if r.Header.Get("Content-Encoding") != "gzip" {
					t.Fatalf("Content-Encoding %q", r.Header.Get("Content-Encoding"))
				}
				body = gunzip(t, body)
			}
			if rss := decodeRequest(t, body); rss[0].ScopeSpans[0].Spans[0].Name != "vrrp.transition" {
				t.Errorf("body: %v", rss)
			}
		})
	}
}

// A collector that keeps refusing: the export gives up when its timeout
// is spent, with the last error, instead of retrying forever.
func TestExportGivesUpAtTimeout(t *testing.T) {
	rec := &recorder{answers: []func(http.ResponseWriter){func(w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) }}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	e := newExporter(t, Config{Protocol: HTTPProtobuf, URL: mustURL(srv.URL + "/v1/traces"), Timeout: 200 * time.Millisecond})
	start := time.Now()
	err := e.ExportSpans(context.Background(), oneSpan())
	if err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second || rec.count() < 2 {
		t.Fatalf("%d requests in %v", rec.count(), d)
	}
	// After Shutdown nothing is sent.
	n := rec.count()
	_ = e.Shutdown(context.Background())
	if err := e.ExportSpans(context.Background(), oneSpan()); err != nil || rec.count() != n {
		t.Fatalf("export after shutdown: %v, %d requests", err, rec.count()-n)
	}
}

// exportOnce exports one span, checks the error (wantErr: a part of it,
// "" for none) and the number of requests, and returns the first request
// and its body.
func exportOnce(t *testing.T, e *Exporter, rec *recorder, wantErr string, requests int) (*http.Request, []byte) {
	t.Helper()
	err := e.ExportSpans(context.Background(), oneSpan())
	if (err == nil) != (wantErr == "") || (err != nil && !strings.Contains(err.Error(), wantErr)) {
		t.Fatalf("err = %v, want %q", err, wantErr)
	}
	if rec.count() != requests {
		t.Fatalf("%d requests, want %d", rec.count(), requests)
	}
	return rec.reqs[0], rec.bodies[0]
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// grpcAnswer answers a gRPC call with a status in the trailers (and a
// response message when OK), or trailers-only (the status in the headers).
func grpcAnswer(code, msg string, trailersOnly bool, resp []byte) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/grpc")
		if trailersOnly {
			w.Header().Set("Grpc-Status", code)
			w.Header().Set("Grpc-Message", msg)
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
		w.WriteHeader(http.StatusOK)
		frame := make([]byte, 5)
		binary.BigEndian.PutUint32(frame[1:], uint32(len(resp)))
		_, _ = w.Write(append(frame, resp...))
		w.Header().Set("Grpc-Status", code)
		w.Header().Set("Grpc-Message", msg)
	}
}

// gRPC (the OTLP/gRPC section and gRPC over HTTP2): the call's path,
// content type and TE header, a length-prefixed message, the status from the
// trailers or a trailers-only answer; UNAVAILABLE retried, INVALID_ARGUMENT
// not; plaintext HTTP/2 (prior knowledge) and TLS.
func TestGRPCExport(t *testing.T) {
	ok := grpcAnswer("0", "", false, nil)
	for _, tc := range []struct {
		name     string
		answers  []func(http.ResponseWriter)
		tls      bool
		gzip     bool
		requests int
		err      string
	}{
		{"ok", []func(http.ResponseWriter){ok}, false, false, 1, ""},
		{"ok over TLS", []func(http.ResponseWriter){ok}, true, false, 1, ""},
		{"gzip", []func(http.ResponseWriter){ok}, false, true, 1, ""},
		{"unavailable retried", []func(http.ResponseWriter){grpcAnswer("14", "not yet", true, nil), ok}, false, false, 2, ""},
		{"invalid argument", []func(http.ResponseWriter){grpcAnswer("3", "bad%20span", false, nil)}, false, false, 1, "INVALID_ARGUMENT: bad span"},
		{"partial success", []func(http.ResponseWriter){grpcAnswer("0", "", false, partialBody(1, "late"))}, false, false, 1, "rejected 1 spans: late"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{answers: tc.answers}
			srv := httptest.NewUnstartedServer(rec)
			var cfgTLS *tls.Config
			if tc.tls {
				srv.EnableHTTP2 = true
				srv.StartTLS()
				pool := x509.NewCertPool()
				pool.AddCert(srv.Certificate())
				cfgTLS = &tls.Config{RootCAs: pool}
			} else {
				srv.Config.Protocols = new(http.Protocols)
				srv.Config.Protocols.SetUnencryptedHTTP2(true)
				srv.Start()
			}
			defer srv.Close()
			e := newExporter(t, Config{Protocol: GRPC, URL: mustURL(srv.URL), TLS: cfgTLS, Gzip: tc.gzip, Headers: map[string]string{"x-tenant": "lb"}})
			r, body := exportOnce(t, e, rec, tc.err, tc.requests)
			if r.ProtoMajor != 2 || r.URL.Path != grpcMethod || r.Header.Get("Content-Type") != "application/grpc" ||
				r.Header.Get("Te") != "trailers" || r.Header.Get("X-Tenant") != "lb" || r.Header.Get("Grpc-Timeout") == "" {
				t.Errorf("request: %s %s %v", r.Proto, r.URL, r.Header)
			}
			if len(body) < 5 || int(binary.BigEndian.Uint32(body[1:5])) != len(body)-5 {
				t.Fatalf("body is not one length-prefixed message: % x", body)
			}
			msg := body[5:]
			if tc.gzip {
				if body[0] != 1 || r.Header.Get("Grpc-Encoding") != "gzip" {
					t.Fatalf("compressed flag %d, grpc-encoding %q", body[0], r.Header.Get("Grpc-Encoding"))
				}
				msg = gunzip(t, msg)
			} else if body[0] != 0 {
				t.Fatalf("compressed flag %d", body[0])
			}
			if rss := decodeRequest(t, msg); rss[0].ScopeSpans[0].Spans[0].Name != "vrrp.transition" {
				t.Errorf("message: %v", rss)
			}
		})
	}
}

// grpc-timeout (gRPC over HTTP2): TimeoutValue is at most 8 digits.
func TestGRPCTimeout(t *testing.T) {
	for d, want := range map[time.Duration]string{
		10 * time.Second:            "10000m",
		0:                           "1m",
		99999999 * time.Millisecond: "99999999m",
		100000 * time.Second:        "100000S",
		1000000 * time.Hour:         "99999999S",
	} {
		if got := grpcTimeout(d); got != want {
			t.Errorf("grpcTimeout(%v) = %q, want %q", d, got, want)
		}
	}
}
