package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
)

// MaxConns is how many connections the telemetry listener serves at once.
// Scrapers (a few Prometheus servers), a health checker and an operator's
// curl or pprof need a handful; beyond the cap a connection waits in the
// kernel's accept queue until one closes, so a flood of clients cannot
// take the daemon's memory or file descriptors.
const MaxConns = 64

// Limits bound what one client can hold of the listener.
type Limits struct {
	MaxConns          int
	ReadHeaderTimeout time.Duration // a request's headers
	ReadTimeout       time.Duration // a whole request (they have no body)
	// WriteTimeout bounds writing a response, from the request on: /metrics
	// of a large IPVS table takes well under a second.
	WriteTimeout time.Duration
	IdleTimeout  time.Duration // a keep-alive connection between requests
	// MaxProfile is the longest pprof profile or trace (?seconds=N) served;
	// those requests get N plus profileSlack to complete instead of the
	// timeouts above.
	MaxProfile     time.Duration
	MaxHeaderBytes int
}

// DefaultLimits are the telemetry listener's limits.
var DefaultLimits = Limits{
	MaxConns:          MaxConns,
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       10 * time.Second,
	WriteTimeout:      30 * time.Second,
	IdleTimeout:       2 * time.Minute, // longer than any scrape interval worth keeping a connection for
	MaxProfile:        5 * time.Minute,
	MaxHeaderBytes:    16 << 10,
}

// profileSlack is what a profile gets beyond its duration to be written.
const profileSlack = 30 * time.Second

// Server serves /metrics, /healthz and /readyz.
type Server struct {
	srv   *http.Server
	ln    net.Listener
	ready atomic.Bool
}

// Listen binds addr (host:port) and returns a server ready to Serve, with
// DefaultLimits. With pprof, Go's profiling handlers are served under
// /debug/pprof/.
func Listen(addr string, reg *Registry, log *slog.Logger, pprof bool) (*Server, error) {
	return listen(addr, reg, log, pprof, DefaultLimits)
}

func listen(addr string, reg *Registry, log *slog.Logger, pprof bool, lim Limits) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("telemetry listener %s: %w", addr, err)
	}
	s := &Server{ln: netutil.LimitListener(ln, lim.MaxConns)}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg.Reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if pprof {
		mux.HandleFunc("/debug/pprof/", httppprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", httppprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", lim.long(httppprof.Profile, 30*time.Second, true))
		mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", lim.long(httppprof.Trace, time.Second, false))
	}
	s.srv = &http.Server{
		Handler:           lim.deadlines(mux),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		// No server-wide WriteTimeout: deadlines sets one per request, so
		// that a profile can run longer (net/http/pprof refuses a duration
		// beyond the server's WriteTimeout).
		IdleTimeout:    lim.IdleTimeout,
		MaxHeaderBytes: lim.MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// deadlines gives every request WriteTimeout to be answered (what
// http.Server.WriteTimeout would do); long routes extend it themselves.
func (l Limits) deadlines(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(l.WriteTimeout))
		next.ServeHTTP(w, r)
	})
}

// long serves a pprof handler that runs for ?seconds=N: it refuses more
// than MaxProfile and gives the request N plus profileSlack to read and
// write, past ReadTimeout and WriteTimeout. N is read as the handler reads
// it: a whole number for the CPU profile, a fraction for the trace, def
// when missing, malformed or not positive.
func (l Limits) long(h http.HandlerFunc, def time.Duration, whole bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sec := def.Seconds()
		v := r.FormValue("seconds")
		if whole {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
				sec = float64(n)
			}
		} else if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
			sec = f
		}
		if sec > l.MaxProfile.Seconds() {
			http.Error(w, fmt.Sprintf("seconds=%s: at most %v on this listener", v, l.MaxProfile), http.StatusBadRequest)
			return
		}
		rc := http.NewResponseController(w)
		deadline := time.Now().Add(time.Duration(sec*float64(time.Second)) + profileSlack)
		_ = rc.SetReadDeadline(deadline)
		_ = rc.SetWriteDeadline(deadline)
		h(w, r)
	}
}

// Addr returns the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// SetReady flips /readyz.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// Serve serves until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.srv.Shutdown(sctx)
	}()
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("telemetry server: %w", err)
	}
	return nil
}

// Close closes the listener; for a Server whose Serve never ran (a start
// that failed after binding). After Serve it changes nothing.
func (s *Server) Close() { _ = s.ln.Close() }
