package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"vigil/internal/testlog"

	"vigil/internal/safe"
	"vigil/node"
	"vigil/test/netlab"
)

// clientEnv makes the test binary a one-request admin API client (see
// TestMain): the tests run it as other users.
const clientEnv = "VIGIL_API_TEST_CLIENT"

func TestMain(m *testing.M) {
	if sock := os.Getenv(clientEnv); sock != "" {
		os.Exit(clientMain(sock))
	}
	code := m.Run()
	if clientBin != "" {
		os.RemoveAll(filepath.Dir(clientBin))
	}
	os.Exit(code)
}

// clientMain sends GET /v1/status on sock and prints "status N" and the
// body, or "dial: ERROR".
func clientMain(sock string) int {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		fmt.Printf("dial: %v\n", err)
		return 0
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "GET /v1/status HTTP/1.1\r\nHost: vigil\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		fmt.Printf("read: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Printf("status %d\n%s", resp.StatusCode, b)
	return 0
}

// requireRoot: these tests start clients as other users.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: starts clients as other users")
	}
}

var (
	clientOnce sync.Once
	clientBin  string
	clientErr  error
)

// clientBinary is a copy of the test binary that other users can execute
// (the build directory is root's alone).
func clientBinary(t *testing.T) string {
	t.Helper()
	clientOnce.Do(func() {
		self, err := os.Executable()
		if err != nil {
			clientErr = err
			return
		}
		dir, err := os.MkdirTemp("", "vigil-api-client-")
		if err != nil {
			clientErr = err
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			clientErr = err
			return
		}
		b, err := os.ReadFile(self)
		if err != nil {
			clientErr = err
			return
		}
		clientBin = filepath.Join(dir, "api-client")
		clientErr = os.WriteFile(clientBin, b, 0o755)
	})
	if clientErr != nil {
		t.Fatal(clientErr)
	}
	return clientBin
}

// asUser runs the client on sock with the credentials given and returns
// what it printed.
func asUser(t *testing.T, sock string, uid, gid uint32, groups ...uint32) string {
	t.Helper()
	cmd := exec.Command(clientBinary(t))
	cmd.Env = []string{clientEnv + "=" + sock}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: append([]uint32{}, groups...)}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as uid %d gid %d groups %v: %v\n%s", uid, gid, groups, err, out)
	}
	return string(out)
}

const (
	nobody  = 65534 // nobody:nogroup on Debian
	nogroup = 65534
	daemon  = 1 // daemon:daemon, not in nogroup
)

// serveAt serves a status API on path with opts and returns the log.
func serveAt(t *testing.T, path string, opts Options) *testlog.Buffer {
	t.Helper()
	logs := &testlog.Buffer{}
	srv, err := ListenWith(path, slog.New(slog.NewTextHandler(logs, nil)), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, Handlers{Status: fakeSource{sampleStatus()}}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return logs
}

// publicDir is a directory anyone may search, like systemd's
// RuntimeDirectory (/run/vigil, 0755).
func publicDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vigil-api-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func wantStatus(t *testing.T, out string, code int, who string) {
	t.Helper()
	if !strings.HasPrefix(out, fmt.Sprintf("status %d\n", code)) {
		t.Fatalf("%s: got %q, want status %d", who, out, code)
	}
	if code >= 400 {
		_, body, _ := strings.Cut(out, "\n")
		if e := decodeError(t, []byte(body)); e.Code != CodeForbidden || !strings.Contains(e.Message, "may not use the admin API") {
			t.Fatalf("%s: error %+v", who, e)
		}
	}
}

// Without an admin group the socket is 0600: another user cannot even
// connect. Past the file mode (a socket made world-writable by mistake),
// the peer credentials still keep it out: 403, logged at most once per
// interval. Root is served.
func TestPeerCredentialsRefuseOthers(t *testing.T) {
	requireRoot(t)
	sock := filepath.Join(publicDir(t), "admin.sock")
	logs := serveAt(t, sock, Options{})

	if out := asUser(t, sock, nobody, nogroup); !strings.HasPrefix(out, "dial: ") || !strings.Contains(out, "permission denied") {
		t.Fatalf("nobody on a 0600 socket: %q, want permission denied", out)
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, asUser(t, sock, nobody, nogroup), 403, "nobody")
	wantStatus(t, asUser(t, sock, daemon, daemon, nogroup), 403, "daemon")
	if code, _, body := do(t, client(sock), "GET", "/v1/status"); code != 200 {
		t.Fatalf("root: %d %s", code, body)
	}
	if n := strings.Count(logs.String(), "refused a client"); n != 1 {
		t.Fatalf("%d refusal lines for 2 refusals within %v, want 1:\n%s", n, refusalLogEvery, logs)
	}
	if !strings.Contains(logs.String(), "uid=65534") {
		t.Fatalf("the refusal line does not name the uid:\n%s", logs)
	}
}

// With an admin group the socket (and the directory it creates) get that
// group and mode 0660/0750: members are served, by primary or
// supplementary group (SO_PEERGROUPS); other users are refused.
func TestAdminGroup(t *testing.T) {
	requireRoot(t)
	dir := filepath.Join(publicDir(t), "vigil")
	sock := filepath.Join(dir, "admin.sock")
	serveAt(t, sock, Options{Group: "nogroup"})

	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{sock, GroupSocketMode}, {dir, 0o750}} {
		fi, err := os.Lstat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != c.mode || fi.Sys().(*syscall.Stat_t).Gid != nogroup {
			t.Fatalf("%s: mode %v gid %d, want %v gid %d", c.path, fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, c.mode, nogroup)
		}
	}
	wantStatus(t, asUser(t, sock, nobody, nogroup), 200, "nobody (primary group nogroup)")
	wantStatus(t, asUser(t, sock, daemon, daemon, nogroup), 200, "daemon (supplementary group nogroup)")
	// Not in the group: the file mode refuses it; past the mode, the
	// credentials do.
	if out := asUser(t, sock, daemon, daemon); !strings.Contains(out, "permission denied") {
		t.Fatalf("daemon without nogroup: %q, want permission denied", out)
	}
	for path, mode := range map[string]os.FileMode{dir: 0o755, sock: 0o666} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	wantStatus(t, asUser(t, sock, daemon, daemon), 403, "daemon without nogroup")
}

func TestAdminGroupUnknown(t *testing.T) {
	_, err := ListenWith(filepath.Join(t.TempDir(), "admin.sock"), quietLog(), Options{Group: "no-such-group-vigil"})
	if err == nil || !strings.Contains(err.Error(), `"no-such-group-vigil"`) {
		t.Fatalf("ListenWith: %v", err)
	}
}

type panicSource struct{}

func (panicSource) Status() node.Status { panic("status exploded") }

// A panic in a handler is recovered, logged with its stack, counted, and
// answered with a JSON 500; the server goes on serving.
func TestHandlerPanic(t *testing.T) {
	before := safe.Panics("admin_api")
	logs := &testlog.Buffer{}
	h := NewHandler(Handlers{Status: panicSource{}}, slog.New(slog.NewTextHandler(logs, nil)))
	rec := httpDo(h, "GET", "/v1/status")
	if rec.Code != 500 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if e := decodeError(t, rec.Body.Bytes()); e.Code != CodeInternal {
		t.Fatalf("error %+v", e)
	}
	if got := safe.Panics("admin_api"); got != before+1 {
		t.Fatalf("admin_api panics %d, want %d", got, before+1)
	}
	if !strings.Contains(logs.String(), "status exploded") || !strings.Contains(logs.String(), "goroutine") {
		t.Fatalf("panic not logged with its stack:\n%s", logs)
	}
	if rec := httpDo(h, "GET", "/healthz"); rec.Code != 200 {
		t.Fatalf("after the panic: %d", rec.Code)
	}
}

// The daemon runs with the systemd unit's capabilities, which do not
// include CAP_CHOWN: TestAdminGroup passes there too (the socket gets its
// group through the filesystem gid, which CAP_SETGID allows).
func TestAdminGroupUnderUnitCapabilities(t *testing.T) {
	requireRoot(t)
	if os.Getenv(unitCapsEnv) == "1" {
		t.Skip("already under the unit's capabilities")
	}
	priv, err := netlab.UnitPrivileges()
	if err != nil {
		t.Fatal(err)
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux): %v", err)
	}
	args := append(priv.SetprivArgs(), "--", os.Args[0], "-test.run=^TestAdminGroup$", "-test.v")
	cmd := exec.Command(setpriv, args...)
	cmd.Env = append(os.Environ(), unitCapsEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestAdminGroup") {
		t.Fatalf("TestAdminGroup with the capabilities of %s (%v): %v\n%s", priv.Unit, priv.Bounding, err, out)
	}
}

const unitCapsEnv = "VIGIL_API_TEST_UNIT_CAPS"
