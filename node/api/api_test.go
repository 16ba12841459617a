package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"vigil/node"
)

type fakeSource struct{ st node.Status }

func (f fakeSource) Status() node.Status { return f.st }

func sampleStatus() node.Status {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return node.Status{
		Node: "lb1", Version: "1.2.3", Revision: "abc", ConfigPath: "/etc/vigil/vigil.yaml", ConfigHash: "0123456789abcdef",
		StartedAt: t0,
		Instances: []node.InstanceStatus{{
			Name: "web", Interface: "eth0", VRID: 51, Family: "ipv4", Version: 3, Mode: "multicast", Source: "192.0.2.11",
			State: "master", BasePriority: 150, EffectivePriority: 150, Master: "192.0.2.11", MasterPriority: 150,
			AdvertInterval: 1, MasterAdvertInterval: 1, MasterDownInterval: 3.414, Preempt: true, Accept: true,
			VIPs: []node.VIPStatus{{Address: "192.0.2.100/24", Dev: "eth0"}}, LastTransition: t0.Add(time.Second), LastReason: "master_down_timer",
		}},
	}
}

// start serves h on a socket in a fresh temporary directory and returns
// the socket path and a client for it.
func start(t *testing.T, h Handlers) (string, *http.Client, *Server) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "admin.sock")
	srv, err := Listen(path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path, client(path), srv
}

func client(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func do(t *testing.T, c *http.Client, method, path string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://vigil"+path, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func decodeError(t *testing.T, b []byte) Error {
	t.Helper()
	var e Error
	if err := json.Unmarshal(b, &e); err != nil || e.Message == "" || e.Code == "" {
		t.Fatalf("not a JSON error body (%v): %s", err, b)
	}
	return e
}

func TestStatusRoundTrip(t *testing.T) {
	want := sampleStatus()
	_, c, _ := start(t, Handlers{Status: fakeSource{want}})
	code, hdr, body := do(t, c, "GET", "/v1/status")
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q: %s", code, hdr.Get("Content-Type"), body)
	}
	var got node.Status
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	// The stable keys the CLI and scripts rely on.
	for _, k := range []string{`"node": "lb1"`, `"config_hash"`, `"instances"`, `"vrid": 51`, `"state": "master"`,
		`"base_priority": 150`, `"effective_priority": 150`, `"master": "192.0.2.11"`, `"master_priority": 150`,
		`"advert_interval_seconds": 1`, `"vips"`, `"last_transition": "2026-03-01T12:00:01Z"`, `"last_reason": "master_down_timer"`} {
		if !bytes.Contains(body, []byte(k)) {
			t.Errorf("missing %s in\n%s", k, body)
		}
	}
}

func TestHealthz(t *testing.T) {
	_, c, _ := start(t, Handlers{})
	code, _, body := do(t, c, "GET", "/healthz")
	if code != 200 || !bytes.Contains(body, []byte(`"status": "ok"`)) {
		t.Fatalf("%d %s", code, body)
	}
	if code, _, _ := do(t, c, "HEAD", "/healthz"); code != 200 {
		t.Fatalf("HEAD /healthz: %d", code)
	}
}

func TestNotImplementedUntilWired(t *testing.T) {
	_, c, _ := start(t, Handlers{})
	for _, r := range []struct{ method, path string }{{"POST", "/v1/config/reload"}, {"GET", "/v1/events"}, {"GET", "/v1/status"}} {
		code, _, body := do(t, c, r.method, r.path)
		if code != http.StatusNotImplemented {
			t.Fatalf("%s %s: %d, want 501: %s", r.method, r.path, code, body)
		}
		if e := decodeError(t, body); e.Code != CodeNotImplemented {
			t.Fatalf("%s %s: code %q", r.method, r.path, e.Code)
		}
	}
}

func TestReload(t *testing.T) {
	var fail bool
	reload := func(context.Context) (any, error) {
		if fail {
			return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_config", Message: "configuration invalid",
				Details: []string{"vrrp.instances[0].vrid: 300 is not in 1..255"}}
		}
		return map[string]int{"changed": 1}, nil
	}
	_, c, _ := start(t, Handlers{Reload: reload})
	if code, _, body := do(t, c, "POST", "/v1/config/reload"); code != 200 || !bytes.Contains(body, []byte(`"changed": 1`)) {
		t.Fatalf("%d %s", code, body)
	}
	fail = true
	code, _, body := do(t, c, "POST", "/v1/config/reload")
	e := decodeError(t, body)
	if code != 422 || e.Code != "invalid_config" || len(e.Details) != 1 {
		t.Fatalf("%d %+v", code, e)
	}
}

func TestJSONErrors(t *testing.T) {
	_, c, _ := start(t, Handlers{Status: fakeSource{sampleStatus()}})
	code, _, body := do(t, c, "GET", "/v1/nope")
	if e := decodeError(t, body); code != 404 || e.Code != CodeNotFound {
		t.Fatalf("%d %+v", code, e)
	}
	code, hdr, body := do(t, c, "DELETE", "/v1/status")
	if e := decodeError(t, body); code != 405 || e.Code != CodeMethodNotAllowed || hdr.Get("Allow") != "GET, HEAD" {
		t.Fatalf("%d allow %q %+v", code, hdr.Get("Allow"), e)
	}
	code, hdr, _ = do(t, c, "GET", "/v1/config/reload")
	if code != 405 || hdr.Get("Allow") != "POST" {
		t.Fatalf("GET reload: %d allow %q", code, hdr.Get("Allow"))
	}
}

// The socket is 0600 (no admin group) in a directory created 0750, and is
// removed when the server stops.
func TestSocketPermissionsAndRemoval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "vigil", "admin.sock")
	srv, err := Listen(path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want socket 0600", fi.Mode())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm()&^0o750 != 0 {
		t.Fatalf("directory mode %v, want at most 0750", di.Mode().Perm())
	}
	// Only the socket is left in the directory: no temporary name.
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Fatalf("directory holds %v", ents)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, Handlers{}) }()
	if code, _, _ := do(t, client(path), "GET", "/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket still there after shutdown: %v", err)
	}
	srv.Close() // idempotent
}

// Close without Serve (node.New failed after Listen) removes the socket too.
func TestCloseWithoutServe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	srv, err := Listen(path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket still there: %v", err)
	}
	if err := srv.Serve(context.Background(), Handlers{}); err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
}

// A socket left by a crashed run (nothing listens) is replaced.
func TestStaleSocketRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("expected a stale socket file: %v", err)
	}
	var logs bytes.Buffer
	srv, err := Listen(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer srv.Close()
	if !strings.Contains(logs.String(), "removed a stale admin socket") {
		t.Fatalf("stale removal not logged: %s", logs.String())
	}
	go srv.Serve(context.Background(), Handlers{})
	if code, _, _ := do(t, client(path), "GET", "/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
}

// A running daemon's socket is never taken: the second Listen fails with
// ErrAlreadyRunning and the first keeps serving, socket in place.
func TestLiveSocketNotStolen(t *testing.T) {
	path, c, _ := start(t, Handlers{Status: fakeSource{sampleStatus()}})
	before, _ := os.Lstat(path)
	_, err := Listen(path, quietLog())
	if !errors.Is(err, ErrAlreadyRunning) || !strings.Contains(err.Error(), "another vigil is running") {
		t.Fatalf("second Listen: %v, want ErrAlreadyRunning", err)
	}
	after, err := os.Lstat(path)
	if err != nil || !os.SameFile(before, after) {
		t.Fatalf("socket file replaced or removed: %v", err)
	}
	if code, _, _ := do(t, c, "GET", "/v1/status"); code != 200 {
		t.Fatalf("first server stopped answering: %d", code)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Fatalf("directory holds %v", ents)
	}
}

// A file that is not a socket is not removed.
func TestNotASocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(path, quietLog())
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Fatal("file was touched")
	}
}

func TestPathTooLong(t *testing.T) {
	_, err := Listen("/tmp/"+strings.Repeat("x", 120), quietLog())
	if err == nil || !strings.Contains(err.Error(), "107 bytes") {
		t.Fatalf("Listen: %v", err)
	}
}
