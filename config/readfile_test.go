package config

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// validationError fails the test unless err is a *ValidationError with
// an error at path whose text holds every fragment.
func validationError(t *testing.T, err error, path string, frags ...string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T), want a *ValidationError", err, err)
	}
	for _, fe := range ve.Errors {
		if fe.Path != path {
			continue
		}
		msg := fe.Error()
		ok := true
		for _, f := range frags {
			ok = ok && strings.Contains(msg, f)
		}
		if ok {
			return
		}
	}
	t.Errorf("no error at %q containing %q; got:\n%v", path, frags, err)
}

// ReadFile, and so Load, Loader.Load and the daemon's reload, refuse a file
// over MaxFileSize without reading it into memory; Parse and ParseFile
// refuse such data too.
func TestFileSizeBound(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.yaml")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: a file of 1 GiB on no disk space.
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = ReadFile(huge)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFileTooLarge) {
		t.Fatalf("ReadFile of 1 GiB: %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("ReadFile allocated %d bytes to refuse the file", n)
	}
	for _, want := range []string{huge, "1073741824 bytes", "the limit is 67108864 bytes (64 MiB)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q not in %q", want, err)
		}
	}
	for name, load := range map[string]func(string) (*Config, error){"Load": Load, "Loader.Load": (&Loader{}).Load} {
		if _, err := load(huge); !errors.Is(err, ErrFileTooLarge) || !strings.HasPrefix(err.Error(), "config: "+huge) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// One byte over, and exactly at the limit.
	over := filepath.Join(dir, "over.yaml")
	if err := os.WriteFile(over, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(over, MaxFileSize+1); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(over); !errors.Is(err, ErrFileTooLarge) || !strings.Contains(err.Error(), "67108865 bytes") {
		t.Errorf("one byte over: %v", err)
	}
	if err := os.Truncate(over, MaxFileSize); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadFile(over); err != nil || len(data) != MaxFileSize {
		t.Errorf("at the limit: %d bytes, %v", len(data), err)
	}
	// Something with no size to check: read up to the limit, no further.
	if _, err := ReadFile("/dev/zero"); !errors.Is(err, ErrFileTooLarge) || !strings.Contains(err.Error(), "more than 67108864 bytes") {
		t.Errorf("/dev/zero: %v", err)
	}
	// Not there: the file system's error, as before.
	if _, err := ReadFile(filepath.Join(dir, "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if data, err := ReadFile(filepath.Join("..", "deploy", "examples", "vigil.yaml")); err != nil || len(data) < 1000 {
		t.Errorf("example: %d bytes, %v", len(data), err)
	}
	big := make([]byte, MaxFileSize+1)
	for name, parse := range map[string]func([]byte) (*Config, error){
		"Parse":            Parse,
		"Loader.Parse":     (&Loader{}).Parse,
		"Loader.ParseFile": func(b []byte) (*Config, error) { return (&Loader{}).ParseFile(b, "x.yaml") },
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parse(big)
			validationError(t, err, "", "the configuration is 67108865 bytes, over the limit of 67108864 bytes (64 MiB)")
		})
	}
}
