package bench

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/test/peer"
)

// Environment of the benchmarks.
const (
	// EnvReport is where the Markdown report goes (default: bench-report.md
	// at the repository root).
	EnvReport = "VIGIL_BENCH_REPORT"
	// EnvRuns overrides the repetitions per takeover scenario (default 20);
	// fewer make a quick trial run.
	EnvRuns = "VIGIL_BENCH_RUNS"
	// DefaultRuns is the repetitions per takeover scenario.
	DefaultRuns = 20
)

// report collects every benchmark's figures of this test binary's run.
var report = &Report{}

func TestMain(m *testing.M) {
	start := time.Now()
	loadStart := loadAvg()
	code := m.Run()
	if report.Empty() {
		os.Exit(code)
	}
	report.Machine = machineInfo(start, loadStart)
	var buf bytes.Buffer
	if err := report.WriteMarkdown(&buf); err != nil {
		fmt.Fprintf(os.Stderr, "bench: render report: %v\n", err)
		os.Exit(1)
	}
	fmt.Print("\n" + buf.String())
	path := reportPath()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "bench: write report: %v\n", err)
		if code == 0 {
			code = 1
		}
	} else {
		fmt.Printf("\nbench: report written to %s\n", path)
	}
	os.Exit(code)
}

func reportPath() string {
	if p := os.Getenv(EnvReport); p != "" {
		return p
	}
	root := repoRoot()
	if root == "" {
		root = "."
	}
	return filepath.Join(root, "bench-report.md")
}

// benchRuns is the repetitions per takeover scenario.
func benchRuns() int {
	if s := os.Getenv(EnvRuns); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	return DefaultRuns
}

func machineInfo(start time.Time, loadStart string) Machine {
	m := Machine{
		Date:      start,
		Cores:     runtime.NumCPU(),
		GoVersion: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		LoadStart: loadStart,
		LoadEnd:   loadAvg(),
		Runs:      benchRuns(),
		Elapsed:   time.Since(start),
		Kernel:    "unknown",
		CPU:       "unknown",
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
		if v, err := os.ReadFile("/proc/sys/kernel/version"); err == nil {
			m.Kernel += " " + strings.TrimSpace(string(v))
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	m.Keepalived = firstLine(exec.Command("keepalived", "--version").CombinedOutput())
	if bin, err := peer.VigilBinary(); err == nil {
		m.Vigil = firstLine(exec.Command(bin, "version").CombinedOutput()) + " (" + bin + ")"
	} else {
		m.Vigil = "unknown: " + err.Error()
	}
	filter := ".*"
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		filter = f.Value.String()
	}
	m.Command = "make bench"
	if filter != "." || os.Getenv(EnvRuns) != "" {
		m.Command = fmt.Sprintf("make build && %s=%d VIGIL_NETNS=1 VIGIL_BIN=$PWD/bin/vigil go test -count=1 -p 1 -timeout 60m -run '^$' -bench '%s' -benchtime 1x ./test/bench/",
			EnvRuns, m.Runs, filter)
	}
	return m
}

func firstLine(out []byte, err error) string {
	s := strings.TrimSpace(string(out))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if err != nil && s == "" {
		return "unknown: " + err.Error()
	}
	return s
}
