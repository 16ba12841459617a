package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"vigil/config"
	"vigil/internal/safe"
)

// httpDo serves one request on h in memory.
func httpDo(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

// fuzzHandlers answer like the daemon: a status, a reload that is
// refused when the body says so (the handler never reads the body; the
// switch only gives the fuzzer both outcomes), and a fleet, so that the
// POST bodies of the fleet endpoints are decoded.
func fuzzHandlers(fleet FleetSource) Handlers {
	return Handlers{
		Status: fakeSource{sampleStatus()},
		Fleet:  fleet,
		Reload: func(ctx context.Context) (any, error) {
			if ctx.Value(fuzzRejectKey{}) != nil {
				return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_config",
					Message: "the configuration is invalid; nothing was applied", Details: []string{"vrrp.instances[0].vrid: 0 is not in 1..255"}}
			}
			return map[string]int{"changed": 1}, nil
		},
	}
}

type fuzzRejectKey struct{}

// fuzzFleetBodies are the fleet's POST endpoints with a decoder of their
// body as the handler's (json.Decoder into its request type, under its size
// limit): the fuzz target checks that a body is refused as unreadable
// exactly when it does not decode.
var fuzzFleetBodies = map[string]func([]byte) error{
	"/v1/gossip/keys":     decodeAs[KeysRequest](4096),
	"/v1/config/push":     decodeAs[PushRequest](2 * config.MaxFileSize),
	"/v1/config/rollback": decodeAs[RollbackRequest](4096),
	"/v1/vrrp/failover":   decodeAs[FailoverRequest](4096),
	"/v1/drain":           decodeAs[DrainRequest](4096),
}

func decodeAs[Req any](limit int64) func([]byte) error {
	return func(b []byte) error {
		var r Req
		return json.NewDecoder(http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(b)), limit)).Decode(&r)
	}
}

// FuzzRequest sends arbitrary requests, as the HTTP server would hand them
// over after parsing the wire, through the API's real handler: none may
// panic (a recovered panic counts too), every answer is JSON, and every
// answer that is not a success is a JSON error with a message and a code.
func FuzzRequest(f *testing.F) {
	for _, s := range [][4]string{
		{"GET", "/v1/status", "", ""},
		{"HEAD", "/healthz", "", ""},
		{"POST", "/v1/config/reload", "", "reject"},
		{"POST", "/v1/config/reload", "x=1", "{}"},
		{"GET", "/v1/events", "", ""},
		{"DELETE", "/v1/status", "", ""},
		{"GET", "/v1/nope", "a=%zz&b", ""},
		{"GET", "//v1//status", "", ""},
		{"GET", "/v1/../healthz", "", ""},
		{"GET", "/v1/status/", "", ""},
		{"OPTIONS", "*", "", ""},
		{"CONNECT", "vigil:80", "", ""},
		{"PRI", "*", "", ""},
		{"get", "/healthz", "", ""},
		{"GET", "/%2e%2e/healthz", "", ""},
		{"GET", "http://vigil/v1/status", "", ""},
		// The fleet's POST bodies (fakeFleet's special values: key "good", documents "bad" and
		// "unsigned", rollback version 9, instance "gone", target lb3 without force).
		{"POST", "/v1/gossip/keys", "", `{"op":"list"}`},
		{"POST", "/v1/gossip/keys", "", `{"op":"install","key":"good"}`},
		{"POST", "/v1/gossip/keys", "", `{"op":"use","key":"c2hvcnQ="}`},
		{"POST", "/v1/gossip/keys", "", `{"op":"rotate"}`},
		{"POST", "/v1/gossip/keys", "", `{"op":1}`},
		{"POST", "/v1/config/push", "", `{"document":"node:\n  name: lb1\n","signature":"vigil-ed25519-sig:xyz","pushed_by":"ops","if_version":3,"order":"all","canary":["lb2"],"canary_hold":"10s"}`},
		{"POST", "/v1/config/push", "", `{"document":"bad","order":"backups-first"}`},
		{"POST", "/v1/config/push", "", `{"document":"unsigned","canary":["lb9"]}`},
		{"POST", "/v1/config/push", "", `{"document":"x","canary_hold":"soon"}`},
		{"POST", "/v1/config/push", "", `{"document":"x","if_version":-1}`},
		{"POST", "/v1/config/push", "", `{"document":`},
		{"POST", "/v1/config/rollback", "", `{"version":2,"pushed_by":"ops","order":"all"}`},
		{"POST", "/v1/config/rollback", "", `{"version":9}`},
		{"POST", "/v1/config/rollback", "", `{"version":"2"}`},
		{"POST", "/v1/config/rollback", "", `{}`},
		{"POST", "/v1/vrrp/failover", "", `{"instance":"web","to":"lb3","force":true}`},
		{"POST", "/v1/vrrp/failover", "", `{"instance":"web","to":"lb3"}`},
		{"POST", "/v1/vrrp/failover", "", `{"instance":"gone"}`},
		{"POST", "/v1/vrrp/failover", "", `{"instance":""}`},
		{"POST", "/v1/vrrp/failover", "", `[]`},
		{"POST", "/v1/drain", "", `{"node":"lb2","drain":true,"force":true}`},
		{"POST", "/v1/drain", "", `{"drain":false}`},
		{"POST", "/v1/drain", "", `{"drain":"yes"}`},
		{"POST", "/v1/drain", "", `null`},
		{"POST", "/v1/drain", "", `{"drain":true} trailing`},
		{"POST", "/v1/drain", "", ""},
	} {
		f.Add(s[0], s[1], s[2], []byte(s[3]))
	}
	fleet := &fakeFleet{on: true}
	h := NewHandler(fuzzHandlers(fleet), slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, method, path, query string, body []byte) {
		fleet.ops, fleet.plans = fleet.ops[:0], fleet.plans[:0] // the fake records; keep it small
		target := path
		if query != "" {
			target += "?" + query
		}
		wire := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: vigil\r\nContent-Length: %d\r\n\r\n", method, target, len(body))
		req, err := http.ReadRequest(bufio.NewReader(io.MultiReader(strings.NewReader(wire), bytes.NewReader(body))))
		if err != nil {
			return // the server answers 400 itself; the handler never sees it
		}
		if bytes.Contains(body, []byte("reject")) {
			req = req.WithContext(context.WithValue(req.Context(), fuzzRejectKey{}, true))
		}
		before := safe.Panics("admin_api")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if safe.Panics("admin_api") != before {
			t.Fatalf("%q %q: the handler panicked", method, target)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%q %q: %d with Content-Type %q: %q", method, target, rec.Code, ct, rec.Body)
		}
		var e Error
		if rec.Code == http.StatusOK {
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%q %q: 200 with a body that is not JSON: %q", method, target, rec.Body)
			}
		} else {
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Message == "" || e.Code == "" {
				t.Fatalf("%q %q: %d with a body that is not a JSON error (%v): %q", method, target, rec.Code, err, rec.Body)
			}
			if rec.Code < 400 {
				t.Fatalf("%q %q: status %d for an error", method, target, rec.Code)
			}
		}
		// A fleet POST reached its body decoder: unreadable exactly when the body does not decode.
		if decode, ok := fuzzFleetBodies[req.URL.Path]; ok && req.Method == http.MethodPost {
			derr := decode(body)
			unreadable := rec.Code == http.StatusBadRequest && strings.HasPrefix(e.Message, "unreadable request")
			if unreadable != (derr != nil) {
				t.Fatalf("%q %q %q: %d %q; decoding the body alone: %v", method, target, body, rec.Code, rec.Body, derr)
			}
		}
	})
}
