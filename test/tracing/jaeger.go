package tracing

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"vigil/test/netlab"
)

// Version is the Jaeger release test/jaeger/go.mod pins; test/jaeger/build.sh names the cached
// binary after it.
const Version = "v1.75.0"

// Environment and defaults shared with test/jaeger/build.sh.
const (
	// EnvBinary names a Jaeger binary to use instead of the cached one.
	EnvBinary = "VIGIL_JAEGER"
	// EnvCache is the directory build.sh caches the binary in.
	EnvCache = "VIGIL_JAEGER_CACHE"
	// DefaultCache is that directory when EnvCache is unset.
	DefaultCache = "/var/cache/vigil-test"
)

// The ports Jaeger's all-in-one configuration uses, kept here so that clients find it where its
// documentation says; Start binds every one of them on the node's address only.
const (
	OTLPGRPCPort  = 4317
	OTLPHTTPPort  = 4318
	QueryHTTPPort = 16686
	QueryGRPCPort = 16685
	HealthPort    = 13133
)

// ErrNoBinary is returned by Binary when neither EnvBinary nor the cached binary exists.
var ErrNoBinary = errors.New("no jaeger binary")

// Binary returns the Jaeger binary: $VIGIL_JAEGER when set (it must exist), else
// $VIGIL_JAEGER_CACHE/jaeger-v1.75.0 (default cache /var/cache/vigil-test), which
// test/jaeger/build.sh builds (`make deps` runs it). It wraps ErrNoBinary when the cached binary
// is absent.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if err := executable(p); err != nil {
			return "", fmt.Errorf("tracing: %s=%s: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	dir := os.Getenv(EnvCache)
	if dir == "" {
		dir = DefaultCache
	}
	p := filepath.Join(dir, "jaeger-"+Version)
	if err := executable(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("tracing: %w at %s (build it with test/jaeger/build.sh, or set %s)", ErrNoBinary, p, EnvBinary)
		}
		return "", fmt.Errorf("tracing: cached jaeger %s: %w", p, err)
	}
	return p, nil
}

func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// Config is the Jaeger (v2, an OpenTelemetry Collector) configuration Start runs: the all-in-one
// default's OTLP receivers, in-memory store and query service, with every listener on addr and
// nothing else that listens (no Jaeger/Zipkin receivers, no remote sampling, expvar, zpages or
// Prometheus self-metrics, no self-tracing). No batch processor: a span is queryable as soon as
// the export request that carried it has been answered, so tests need not wait out a batch
// timeout.
func Config(addr netip.Addr) string {
	hp := func(port int) string { return strconv.Quote(netip.AddrPortFrom(addr, uint16(port)).String()) }
	return `service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: info

extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: ` + hp(HealthPort) + `
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: ` + hp(QueryHTTPPort) + `
    grpc:
      endpoint: ` + hp(QueryGRPCPort) + `

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ` + hp(OTLPGRPCPort) + `
      http:
        endpoint: ` + hp(OTLPHTTPPort) + `

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`
}

// Jaeger is a Jaeger process in a lab node's namespace.
type Jaeger struct {
	Node *netlab.Node
	Addr netip.Addr
	Proc *netlab.Process
}

// Start writes Config(addr) into the lab's directory, starts bin with it on node (addr must be one
// of the node's addresses) and waits up to timeout until the health check reports every
// component ready and the query API answers. On failure the process is stopped and the error
// carries the end of its log.
func Start(node *netlab.Node, bin string, addr netip.Addr, timeout time.Duration) (*Jaeger, error) {
	cfg := filepath.Join(node.Lab().Dir(), fmt.Sprintf("jaeger-%s.yaml", node.Name))
	if err := os.WriteFile(cfg, []byte(Config(addr)), 0o644); err != nil {
		return nil, fmt.Errorf("tracing: write jaeger config: %w", err)
	}
	p, err := node.Start(bin, "--config", cfg)
	if err != nil {
		return nil, fmt.Errorf("tracing: start jaeger on %s: %w", node.Name, err)
	}
	j := &Jaeger{Node: node, Addr: addr, Proc: p}
	if err := j.waitReady(timeout); err != nil {
		_ = p.Stop(netlab.DefaultStopTimeout)
		return nil, fmt.Errorf("tracing: jaeger on %s not ready: %w\n%s", node.Name, err, p.LogLines(30))
	}
	return j, nil
}

func (j *Jaeger) waitReady(timeout time.Duration) error {
	urls := []string{
		// 200 once every component reports StatusOK: the receivers listen.
		"http://" + netip.AddrPortFrom(j.Addr, HealthPort).String() + "/status",
		j.QueryURL() + "/api/services",
	}
	return netlab.Poll(timeout, 100*time.Millisecond, func() (bool, error) {
		if j.Proc.Exited() {
			return false, fmt.Errorf("jaeger exited: %w", errors.Join(j.Proc.Wait(), errExited))
		}
		for _, u := range urls {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := j.Node.HTTPGet(ctx, u)
			cancel()
			if err != nil {
				return false, err
			}
		}
		return true, nil
	})
}

var errExited = errors.New("process exited")

// Stop stops Jaeger (SIGTERM, then SIGKILL after timeout).
func (j *Jaeger) Stop(timeout time.Duration) error { return j.Proc.Stop(timeout) }

// OTLPHTTPEndpoint is the base URL of the OTLP/HTTP receiver (traces go to /v1/traces), the form
// OTEL_EXPORTER_OTLP_ENDPOINT takes with protocol http/protobuf.
func (j *Jaeger) OTLPHTTPEndpoint() string {
	return "http://" + netip.AddrPortFrom(j.Addr, OTLPHTTPPort).String()
}

// OTLPGRPCEndpoint is the OTLP/gRPC receiver, as OTEL_EXPORTER_OTLP_ENDPOINT takes it with
// protocol grpc (the http scheme means plaintext).
func (j *Jaeger) OTLPGRPCEndpoint() string {
	return "http://" + netip.AddrPortFrom(j.Addr, OTLPGRPCPort).String()
}

// QueryURL is the base URL of the query service (API and UI).
func (j *Jaeger) QueryURL() string {
	return "http://" + netip.AddrPortFrom(j.Addr, QueryHTTPPort).String()
}

// Traces asks /api/traces for the traces q selects, from inside Jaeger's node.
func (j *Jaeger) Traces(ctx context.Context, q Query) ([]Trace, error) {
	v, err := q.Values()
	if err != nil {
		return nil, err
	}
	body, err := j.Node.HTTPGet(ctx, j.QueryURL()+"/api/traces?"+v.Encode())
	if err != nil {
		// A 400 carries Jaeger's reason in the body.
		if _, perr := ParseTraces(body); perr != nil && len(body) > 0 {
			return nil, fmt.Errorf("tracing: %w: %w", err, perr)
		}
		return nil, fmt.Errorf("tracing: %w", err)
	}
	return ParseTraces(body)
}

// WaitTraces polls Traces until done accepts the result or timeout passes; it returns the last
// result either way (with an error on timeout), so a failing test can show what Jaeger held.
func (j *Jaeger) WaitTraces(q Query, timeout time.Duration, done func([]Trace) bool) ([]Trace, error) {
	var last []Trace
	err := netlab.Poll(timeout, 100*time.Millisecond, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ts, err := j.Traces(ctx, q)
		if err != nil {
			return false, err
		}
		last = ts
		return done(ts), nil
	})
	if err != nil {
		return last, fmt.Errorf("tracing: waiting for traces of %+v: %w", q, err)
	}
	return last, nil
}

// StartTimeout bounds StartForTest's wait for Jaeger: it starts in about a second on an idle
// machine, many more on a loaded 2-core CI machine.
const StartTimeout = 60 * time.Second

// StartForTest is Binary, then Start on node and addr; Jaeger is stopped when the test ends (before
// the lab is closed, when the lab was made first). It skips the test, naming the reason, when there
// is no binary (ErrNoBinary: test/jaeger/build.sh has not run and VIGIL_JAEGER is unset); `make
// test` builds it first, so CI never skips.
func StartForTest(t netlab.TB, node *netlab.Node, addr netip.Addr) *Jaeger {
	t.Helper()
	bin, err := Binary()
	if errors.Is(err, ErrNoBinary) {
		t.Skip(err.Error())
		return nil
	}
	if err != nil {
		t.Fatalf("%v", err)
		return nil
	}
	j, err := Start(node, bin, addr, StartTimeout)
	if err != nil {
		t.Fatalf("%v", err)
		return nil
	}
	t.Cleanup(func() {
		if err := j.Stop(netlab.DefaultStopTimeout); err != nil {
			t.Errorf("tracing: stop jaeger: %v\n%s", err, j.Proc.LogLines(20))
		}
	})
	return j
}
