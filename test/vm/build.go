package vm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BuildTest compiles the test binary of the Go package pkg (an import path
// such as "vigil/test/ipvssmoke", or a directory relative to the current
// one) for the guest: static (CGO_ENABLED=0, since the guest has no libc
// for it), linux/amd64 whatever the host, and returns its path in the cache
// directory. The go build cache makes repeated builds cheap.
func BuildTest(ctx context.Context, pkg string) (string, error) {
	return build(ctx, pkg, true)
}

// BuildBinary is BuildTest for a main package (e.g. "vigil/cmd/vigil").
func BuildBinary(ctx context.Context, pkg string) (string, error) {
	return build(ctx, pkg, false)
}

func build(ctx context.Context, pkg string, test bool) (string, error) {
	goBin, err := goTool()
	if err != nil {
		return "", err
	}
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("vm: create %s: %w", dir, err)
	}
	name := strings.NewReplacer("/", "_", ".", "_").Replace(strings.Trim(pkg, "./"))
	if name == "" {
		name = "pkg"
	}
	if test {
		name += ".test"
	}
	dst := filepath.Join(dir, name)
	// Build to a private name and rename, so a concurrent build of the same
	// package (go test -p runs packages in parallel) never exposes a
	// half-written binary to the other's VM.
	tmp, err := os.CreateTemp(dir, "."+name+"-")
	if err != nil {
		return "", fmt.Errorf("vm: create temp binary: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())

	args := []string{"build", "-trimpath", "-o", tmp.Name(), pkg}
	if test {
		args = []string{"test", "-c", "-trimpath", "-o", tmp.Name(), pkg}
	}
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("vm: go %s for the VM: %w\n%s", strings.Join(args, " "), err, out.Bytes())
	}
	st, err := os.Stat(tmp.Name())
	if err != nil || st.Size() == 0 {
		// go test -c writes nothing for a package without test files.
		return "", fmt.Errorf("vm: go %s produced no binary (no test files in %s?)", strings.Join(args, " "), pkg)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("vm: move built %s into place: %w", pkg, err)
	}
	return dst, nil
}

// goTool finds the go command: $GOROOT/bin/go of the toolchain running the
// tests when the environment names it, else go on PATH.
func goTool() (string, error) {
	if r := os.Getenv("GOROOT"); r != "" {
		if p := filepath.Join(r, "bin", "go"); fileExists(p) {
			return p, nil
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("vm: find the go command: %w", err)
	}
	return p, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
