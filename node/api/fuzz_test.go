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
	"vigil/internal/safe"
)

// httpDo serves one request on h in memory.
func httpDo(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

// fuzzHandlers answer like the daemon: a status, and a reload that is
// refused when the body says so (the handler never reads the body; the
// switch only gives the fuzzer both outcomes).
func fuzzHandlers() Handlers {
	return Handlers{
		Status: fakeSource{sampleStatus()},
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
	} {
		f.Add(s[0], s[1], s[2], []byte(s[3]))
	}
	h := NewHandler(fuzzHandlers(), slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, method, path, query string, body []byte) {
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
		if rec.Code == http.StatusOK {
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%q %q: 200 with a body that is not JSON: %q", method, target, rec.Body)
			}
			return
		}
		var e Error
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Message == "" || e.Code == "" {
			t.Fatalf("%q %q: %d with a body that is not a JSON error (%v): %q", method, target, rec.Code, err, rec.Body)
		}
		if rec.Code < 400 {
			t.Fatalf("%q %q: status %d for an error", method, target, rec.Code)
		}
	})
}
