// Package api is vigil's admin HTTP API, served on a local unix socket and
// used by the CLI (`vigil status`).
//
// Endpoints:
//
//	GET  /healthz            liveness: {"status":"ok"}
//	GET  /v1/status          the node.Status document (`vigil status -o json`)
//	POST /v1/config/reload   live reload (501 until Handlers.Reload is set)
//	GET  /v1/events          event stream (501 until Handlers.Events is set)
//	GET  /v1/members         the fleet's members (`vigil members -o json`)
//	GET  /v1/fleet           the fleet view (`vigil status --fleet -o json`)
//	POST /v1/gossip/keys     a fleet-wide keyring operation {"op": list|install|use|remove, "key": base64}
//	POST /v1/config/push     push a fleet document {"document": YAML, "signature": SIG, "pushed_by": who, "if_version": N,
//	                         "order": backups-first|all, "canary": [NODE...], "canary_hold": "30s"}
//	GET  /v1/config/history  the fleet versions this node applied
//	POST /v1/config/rollback push version N's document again as a new version {"version": N, "pushed_by": who,
//	                         and the push's order, canary, canary_hold}
//	POST /v1/vrrp/failover   hand an instance's mastership to a successor {"instance": name, "to": node, "force": bool}
//	POST /v1/drain           drain or undrain a member {"node": name, "drain": bool, "force": bool}
//
// Every error is a JSON object {"error": message, "code": machine_code,
// "details": [...]} with the HTTP status that goes with the code.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/propagation"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"vigil/config"
	"vigil/gossip"
	"vigil/internal/safe"
	"vigil/node"
)

// DefaultSocket is where the daemon listens and the CLI connects by default.
const DefaultSocket = "/run/vigil/admin.sock"

// StatusSource gives the status snapshot; *node.Node implements it.
type StatusSource interface {
	Status() node.Status
}

// Handlers are what the API serves. A nil field answers 501 Not Implemented,
// so a route exists (and says so) before its feature does.
type Handlers struct {
	Status StatusSource
	// Reload re-reads and applies the configuration. The result, if not
	// nil, is the 200 response body. An *Error chooses the response status
	// (e.g. 422 with one detail per validation problem); any other error
	// is a 500.
	Reload func(ctx context.Context) (any, error)
	// Events serves GET /v1/events (a Server-Sent Events stream, later).
	Events http.Handler
	// Fleet serves the gossip fleet's endpoints; *node.Node implements it.
	Fleet FleetSource
}

// FleetSource is the gossip fleet as the API serves it. Its methods return
// node.ErrNoFleet on a node without a gossip section (409 no_fleet).
type FleetSource interface {
	Members() ([]node.MemberStatus, error)
	FleetStatus() (node.FleetStatus, error)
	GossipKeys(ctx context.Context, op, key string) ([]gossip.KeyResult, error)
	// PushConfig and RollbackConfig take the request's context, with the
	// CLI's span when it sent a traceparent.
	PushConfig(ctx context.Context, doc []byte, sig, pushedBy string, ifVersion uint64, plan gossip.RolloutPlan) (config.FleetVersion, error)
	ConfigHistory() ([]config.FleetEntry, error)
	RollbackConfig(ctx context.Context, v uint64, pushedBy string, plan gossip.RolloutPlan) (config.FleetVersion, error)
	Failover(ctx context.Context, instance, to string, force bool) (node.HandoffResult, error)
	Drain(ctx context.Context, target string, drain, force bool) (node.DrainResult, error)
}

// FailoverRequest is the body of POST /v1/vrrp/failover.
type FailoverRequest struct {
	Instance string `json:"instance"`
	To       string `json:"to,omitempty"` // "": the best successor
	Force    bool   `json:"force,omitempty"`
}

// DrainRequest is the body of POST /v1/drain.
type DrainRequest struct {
	Node  string `json:"node,omitempty"` // "": the node serving the request
	Drain bool   `json:"drain"`
	Force bool   `json:"force,omitempty"`
}

// CodeRefused answers a handoff or drain that would not hold.
const CodeRefused = "refused"

// RollbackRequest is the body of POST /v1/config/rollback.
type RollbackRequest struct {
	Version  uint64 `json:"version,omitempty"` // 0: the one before the applied version
	PushedBy string `json:"pushed_by,omitempty"`
	RolloutRequest
}

// PushRequest is the body of POST /v1/config/push.
type PushRequest struct {
	Document string `json:"document"`
	// Signature is the document's detached signature (config.SignDocument:
	// vigil-ed25519-sig:BASE64), "" when unsigned.
	Signature string `json:"signature,omitempty"`
	PushedBy  string `json:"pushed_by,omitempty"`
	IfVersion uint64 `json:"if_version,omitempty"`
	RolloutRequest
}

// PushResult is its answer: the version the fleet will apply.
type PushResult struct {
	Version uint64 `json:"version"`
	Hash    string `json:"hash"`
	Origin  string `json:"origin"`
}

// KeysRequest is the body of POST /v1/gossip/keys.
type KeysRequest struct {
	Op  string `json:"op"`
	Key string `json:"key,omitempty"`
}

// CodeNoFleet answers a fleet endpoint on a node that runs no fleet.
const CodeNoFleet = "no_fleet"

// CodeSignature refuses a push (422) for its signature; the one detail is
// "reason: " and unsigned, bad_signature or untrusted_key.
const CodeSignature = "signature_refused"

// fleetErr maps the fleet's errors to API errors.
func fleetErr(err error) error {
	switch {
	case errors.Is(err, node.ErrNoFleet):
		return &Error{Status: http.StatusConflict, Code: CodeNoFleet, Message: err.Error()}
	case errors.Is(err, node.ErrBadKey):
		return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: err.Error()}
	case errors.Is(err, node.ErrPushInvalid):
		return &Error{Status: http.StatusUnprocessableEntity, Code: CodeInvalid, Message: "the fleet document is invalid",
			Details: strings.Split(strings.TrimPrefix(err.Error(), node.ErrPushInvalid.Error()+": "), "\n")}
	case errors.Is(err, node.ErrPushSignature):
		return &Error{Status: http.StatusUnprocessableEntity, Code: CodeSignature, Message: err.Error(),
			Details: []string{"reason: " + config.SignatureReason(err)}}
	case errors.Is(err, node.ErrNotFollowing):
		return &Error{Status: http.StatusConflict, Code: CodeNoFleet, Message: err.Error()}
	case errors.Is(err, gossip.ErrBadPlan):
		return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: err.Error()}
	case errors.Is(err, node.ErrPushConflict):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: err.Error()}
	case errors.Is(err, node.ErrHandoffRefused):
		msg, details, _ := strings.Cut(err.Error(), "\n")
		e := &Error{Status: http.StatusConflict, Code: CodeRefused, Message: msg}
		if details != "" {
			e.Details = strings.Split(details, "\n")
		}
		return e
	case errors.Is(err, node.ErrNoInstance):
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: err.Error()}
	}
	return err
}

// Error is an API error: the JSON body of every non-2xx response, and what
// a handler returns to choose the status.
type Error struct {
	Status  int      `json:"-"`
	Message string   `json:"error"`
	Code    string   `json:"code"`
	Details []string `json:"details,omitempty"`
}

func (e *Error) Error() string {
	if len(e.Details) == 0 {
		return e.Message
	}
	return e.Message + ": " + strings.Join(e.Details, "; ")
}

// Error codes.
const (
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeNotImplemented   = "not_implemented"
	CodeInternal         = "internal"
	CodeBadRequest       = "bad_request"
	CodeInvalid          = "invalid"
	CodeConflict         = "conflict"
)

// NewHandler returns the API's HTTP handler.
func NewHandler(h Handlers, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	r := &router{mux: http.NewServeMux(), allowed: map[string][]string{}}
	r.handle("GET", "/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.handle("GET", "/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		if h.Status == nil {
			notImplemented(w, "status")
			return
		}
		writeJSON(w, http.StatusOK, h.Status.Status())
	})
	r.handle("POST", "/v1/config/reload", func(w http.ResponseWriter, req *http.Request) {
		if h.Reload == nil {
			notImplemented(w, "live reload")
			return
		}
		res, err := h.Reload(req.Context())
		if err != nil {
			log.Warn("admin API: configuration reload failed", "err", err)
			writeErr(w, err)
			return
		}
		if res == nil {
			res = map[string]string{"status": "ok"}
		}
		writeJSON(w, http.StatusOK, res)
	})
	r.handle("GET", "/v1/events", func(w http.ResponseWriter, req *http.Request) {
		if h.Events == nil {
			notImplemented(w, "the event stream")
			return
		}
		h.Events.ServeHTTP(w, req)
	})
	r.handle("GET", "/v1/members", func(w http.ResponseWriter, _ *http.Request) {
		if h.Fleet == nil {
			notImplemented(w, "the fleet")
			return
		}
		ms, err := h.Fleet.Members()
		if err != nil {
			writeErr(w, fleetErr(err))
			return
		}
		writeJSON(w, http.StatusOK, ms)
	})
	r.handle("GET", "/v1/fleet", func(w http.ResponseWriter, _ *http.Request) {
		if h.Fleet == nil {
			notImplemented(w, "the fleet")
			return
		}
		st, err := h.Fleet.FleetStatus()
		if err != nil {
			writeErr(w, fleetErr(err))
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	fleetPost(r, h, log, "/v1/gossip/keys", 4096, func(ctx context.Context, kr KeysRequest) (any, error) {
		switch kr.Op {
		case "list", "install", "use", "remove":
		default:
			return nil, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: fmt.Sprintf("unknown key operation %q (want list, install, use or remove)", kr.Op)}
		}
		return h.Fleet.GossipKeys(ctx, kr.Op, kr.Key)
	})
	fleetPost(r, h, log, "/v1/config/push", 2*config.MaxFileSize, func(ctx context.Context, pr PushRequest) (any, error) {
		plan, err := pr.Plan()
		if err != nil {
			return nil, err
		}
		v, err := h.Fleet.PushConfig(ctx, []byte(pr.Document), pr.Signature, pr.PushedBy, pr.IfVersion, plan)
		return PushResult{Version: v.Version, Hash: v.Hash, Origin: v.Origin}, err
	})
	r.handle("GET", "/v1/config/history", func(w http.ResponseWriter, _ *http.Request) {
		if h.Fleet == nil {
			notImplemented(w, "the fleet")
			return
		}
		hist, err := h.Fleet.ConfigHistory()
		if err != nil {
			writeErr(w, fleetErr(err))
			return
		}
		if hist == nil {
			hist = []config.FleetEntry{}
		}
		writeJSON(w, http.StatusOK, hist)
	})
	fleetPost(r, h, log, "/v1/config/rollback", 4096, func(ctx context.Context, rr RollbackRequest) (any, error) {
		plan, err := rr.Plan()
		if err != nil {
			return nil, err
		}
		v, err := h.Fleet.RollbackConfig(ctx, rr.Version, rr.PushedBy, plan)
		return PushResult{Version: v.Version, Hash: v.Hash, Origin: v.Origin}, err
	})
	fleetPost(r, h, log, "/v1/vrrp/failover", 4096, func(ctx context.Context, fr FailoverRequest) (any, error) {
		if fr.Instance == "" {
			return nil, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: "no instance named"}
		}
		return h.Fleet.Failover(ctx, fr.Instance, fr.To, fr.Force)
	})
	fleetPost(r, h, log, "/v1/drain", 4096, func(ctx context.Context, dr DrainRequest) (any, error) {
		return h.Fleet.Drain(ctx, dr.Node, dr.Drain, dr.Force)
	})
	r.mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		WriteError(w, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no such endpoint: " + req.URL.Path})
	})
	return logRequests(canonicalPaths(r.mux), log)
}

// canonicalPaths answers a JSON 404 for what the mux would otherwise answer
// in HTML or plain text: a path that is not clean (the mux redirects
// "//v1/status" and "/v1/../healthz"), an asterisk or authority form
// ("OPTIONS *", "CONNECT host:port"). The CLI only sends canonical paths.
func canonicalPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p := req.URL.Path
		if req.Method == http.MethodConnect || !strings.HasPrefix(p, "/") || path.Clean(p) != p {
			WriteError(w, &Error{Status: http.StatusNotFound, Code: CodeNotFound,
				Message: fmt.Sprintf("no such endpoint: %s %q (the endpoints are /healthz and /v1/...)", req.Method, req.RequestURI)})
			return
		}
		next.ServeHTTP(w, req)
	})
}

// router registers method-specific routes and answers other methods on a
// known path with a JSON 405 (the standard mux would answer in plain text).
type router struct {
	mux     *http.ServeMux
	allowed map[string][]string // path -> methods
}

func (r *router) handle(method, path string, h http.HandlerFunc) {
	r.mux.HandleFunc(method+" "+path, h)
	if _, ok := r.allowed[path]; !ok {
		r.mux.HandleFunc(path, func(w http.ResponseWriter, req *http.Request) {
			allow := r.allowed[path]
			w.Header().Set("Allow", strings.Join(allow, ", "))
			WriteError(w, &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed,
				Message: req.Method + " " + path + " is not allowed (use " + strings.Join(allow, " or ") + ")"})
		})
	}
	r.allowed[path] = append(r.allowed[path], method)
	if method == "GET" && !slices.Contains(r.allowed[path], "HEAD") {
		r.allowed[path] = append(r.allowed[path], "HEAD") // the mux serves HEAD with GET
	}
}

// fleetPost serves a JSON POST of the fleet: the body (at most limit
// bytes) decoded into a Req, then do, with the request's context and the
// caller's span, whose result is the 200 body.
func fleetPost[Req any](r *router, h Handlers, log *slog.Logger, path string, limit int64, do func(context.Context, Req) (any, error)) {
	r.handle("POST", path, func(w http.ResponseWriter, req *http.Request) {
		if h.Fleet == nil {
			notImplemented(w, "the fleet")
			return
		}
		var in Req
		if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, limit)).Decode(&in); err != nil {
			WriteError(w, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: "unreadable request: " + err.Error()})
			return
		}
		res, err := do(traced(req), in)
		if err != nil {
			log.Warn("admin API: request refused", "path", path, "err", err)
			writeErr(w, fleetErr(err))
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
}

func notImplemented(w http.ResponseWriter, what string) {
	WriteError(w, &Error{Status: http.StatusNotImplemented, Code: CodeNotImplemented,
		Message: what + " is not available in this version of vigil"})
}

func writeErr(w http.ResponseWriter, err error) {
	var ae *Error
	if !errors.As(err, &ae) {
		ae = &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: err.Error()}
	}
	WriteError(w, ae)
}

// WriteError writes e as the JSON error body with its status (500 if unset).
func WriteError(w http.ResponseWriter, e *Error) {
	st := e.Status
	if st == 0 {
		st = http.StatusInternalServerError
	}
	if e.Code == "" {
		e.Code = CodeInternal
	}
	writeJSON(w, st, e)
}

// writeJSON writes v indented, so that `curl --unix-socket` output reads
// well and `vigil status -o json` can print the body as it came.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(&Error{Message: "encoding the response: " + err.Error(), Code: CodeInternal})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Flush keeps streaming handlers (events) working through the recorder.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func logRequests(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		serve(next, rec, r, log)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		lv := slog.LevelDebug
		if rec.status >= 500 && rec.status != http.StatusNotImplemented {
			lv = slog.LevelWarn
		}
		log.Log(r.Context(), lv, "admin API request", "method", r.Method, "path", r.URL.Path,
			"status", rec.status, "duration", time.Since(start))
	})
}

// serve runs the handler. A panic is logged with its stack and counted
// (component admin_api) and answered with a JSON 500; when the response had
// already begun, the connection is cut instead, so that the client does not
// take a truncated answer for a whole one.
func serve(next http.Handler, rec *statusRecorder, r *http.Request, log *slog.Logger) {
	cut := false
	defer func() {
		if cut {
			panic(http.ErrAbortHandler) // net/http closes the connection quietly
		}
	}()
	defer safe.Recover(log, "admin_api", func(any) {
		if rec.status != 0 {
			cut = true
			return
		}
		WriteError(rec, &Error{Status: http.StatusInternalServerError, Code: CodeInternal,
			Message: "internal error while serving " + r.Method + " " + r.URL.Path + " (logged by the daemon)"})
	})
	next.ServeHTTP(rec, r)
}

// traced is the request's context with the caller's span (a W3C
// traceparent header), if it sent one.
func traced(req *http.Request) context.Context {
	return propagation.TraceContext{}.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
}
