package deb

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"vigil/test/netlab"
)

// moduleRoot is the repository's top directory (this package is test/deb).
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	return dir
}

// requireTools skips the test when a tool is missing, naming it and its Debian package.
func requireTools(t *testing.T, tools map[string]string) {
	t.Helper()
	for tool, pkg := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found (Debian package %s; test/deps.sh installs it)", tool, pkg)
		}
	}
}

// requireRoot gates a test like the other root tiers: skipped unless VIGIL_NETNS=1, failed
// when VIGIL_NETNS=1 but not root.
func requireRoot(t *testing.T) {
	t.Helper()
	netlab.Require(t)
}

var built struct {
	dir     string // a temporary directory, removed by TestMain
	binOnce sync.Once
	bin     string
	binErr  error
	debOnce sync.Once
	dist    string // the package's temporary directory, removed by TestMain
	deb     string
	debErr  error
}

// vigilBinary returns $VIGIL_BIN (make netns sets it), or a binary built here once with the
// flags of `make build`.
func vigilBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("VIGIL_BIN"); p != "" {
		return p
	}
	built.binOnce.Do(func() {
		if built.dir, built.binErr = os.MkdirTemp("", "vigil-deb-test-"); built.binErr != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "vigil")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", built.bin, "./cmd/vigil")
		cmd.Dir = moduleRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.binErr = fmt.Errorf("go build: %w: %s", err, out)
		}
	})
	if built.binErr != nil {
		t.Fatalf("building vigil: %v", built.binErr)
	}
	return built.bin
}

// debPackage returns the package under test: $VIGIL_DEB, or one built once by
// deploy/deb/build.sh from vigilBinary.
func debPackage(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("VIGIL_DEB"); p != "" {
		return p
	}
	requireTools(t, map[string]string{"dpkg-deb": "dpkg", "git": "git"})
	bin := vigilBinary(t)
	built.debOnce.Do(func() {
		if built.dist, built.debErr = os.MkdirTemp("", "vigil-deb-dist-"); built.debErr != nil {
			return
		}
		cmd := exec.Command("bash", "deploy/deb/build.sh", bin, built.dist)
		cmd.Dir = moduleRoot(t)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		path, err := cmd.Output()
		if err != nil {
			built.debErr = fmt.Errorf("deploy/deb/build.sh: %w: %s", err, stderr.String())
			return
		}
		built.deb = strings.TrimSpace(string(path))
	})
	if built.debErr != nil {
		t.Fatalf("building the package: %v", built.debErr)
	}
	return built.deb
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	if built.dist != "" {
		os.RemoveAll(built.dist)
	}
	os.Exit(code)
}

// run runs a command and returns its combined output, failing the test on an error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
