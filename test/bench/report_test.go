package bench

import (
	"strings"
	"testing"
	"time"
)

func TestReportMarkdown(t *testing.T) {
	ms := time.Millisecond
	r := &Report{Machine: Machine{Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Kernel: "6.1.0", CPU: "Test CPU",
		Cores: 2, GoVersion: "go1.26", Keepalived: "Keepalived v2.2.7", Vigil: "vigil dev", Runs: 20,
		LoadStart: "0.10 0.20 0.30", LoadEnd: "1.00 0.50 0.30", Command: "make bench", Elapsed: 90 * time.Second}}
	v := &TakeoverResult{Kind: KindLinkCut, Impl: ImplVigil, Interval: 100 * ms, Expected: masterDown(backupPrio, 100*ms), Attempts: 3,
		Takeovers: []time.Duration{361 * ms, 362 * ms}, Failures: []string{"run 2: settle: timeout"}, PreemptBack: []time.Duration{20 * ms}}
	v.Note("old master kept the VIP while its link was down (no carrier tracking)")
	r.AddTakeover(v)
	r.AddTakeover(&TakeoverResult{Kind: KindLinkCut, Impl: ImplKeepalived, Interval: time.Second, Expected: masterDown(backupPrio, time.Second),
		Attempts: 1, Takeovers: []time.Duration{3610 * ms}})
	r.AddTakeover(&TakeoverResult{Kind: KindGraceful, Impl: ImplKeepalived, Interval: time.Second, Expected: skew(backupPrio, time.Second),
		Attempts: 2, Failures: []string{"a", "b"}})
	r.AddResource(&ResourceResult{Impl: ImplKeepalived, Instances: 200, Interval: time.Second, Window: 10 * time.Second,
		Master:      []ProcUsage{{PID: 10, Comm: "keepalived", CPU: 10 * ms, RSS: 10 << 20}, {PID: 11, Comm: "keepalived", CPU: 60 * ms, RSS: 3 << 20}},
		Backup:      []ProcUsage{{PID: 12, Comm: "keepalived", CPU: 20 * ms, RSS: 13 << 20}},
		MasterVRIDs: 200, CaptureDrops: 0, MasterGaps: Summarize([]time.Duration{time.Second})})
	var b strings.Builder
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| kernel | 6.1.0 |",
		"Test CPU, 2 cores",
		"`make bench`",
		"## 1. Takeover after node loss (link cut)",
		"| 1 s | 3609.375 ms | takeover median | not run | 3610.000 ms | keepalived measured earlier: 3.610 s |",
		"| 100 ms | 360.938 ms | takeover median | 361.500 ms | not run |",
		"takeover p99 (= max, n < 100) | 362.000 ms",
		"| excess p99 (= max, n < 100) | +1.062 ms | not run | goal: vigil ≤ 1 ms |",
		"runs measured / failed | 2 / 1 |",
		"## 2. Takeover after graceful stop (priority 0)",
		"| 1 s | 609.375 ms | takeover median | not run | no measurement |",
		"runs measured / failed | not run | 0 / 2 |",
		"## 3. CPU and memory",
		"| 200 × 1 s | master | CPU per 10 s | not run | 0.07 s (0.70 % of a core): parent 0.01 s + child 0.06 s |",
		"13.0 MiB (parent 10.0 + child 3.0)",
		"vigil link cut at 100 ms: failed run: run 2: settle: timeout",
		"vigil link cut at 100 ms: old master kept the VIP while its link was down (no carrier tracking) (1 of 3 runs)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
	if (&Report{}).Empty() != true || r.Empty() {
		t.Error("Empty")
	}
}

func TestFormat(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Second: "1 s", 100 * time.Millisecond: "100 ms", 10 * time.Millisecond: "10 ms", 1500 * time.Millisecond: "1500 ms"} {
		if got := fmtInterval(d); got != want {
			t.Errorf("fmtInterval(%v) = %q", d, got)
		}
	}
	if got := fmtExcess(-1500 * time.Microsecond); got != "-1.500 ms" {
		t.Errorf("fmtExcess = %q", got)
	}
	if got := mdEscape("a|b\nc"); got != `a\|b c` {
		t.Errorf("mdEscape = %q", got)
	}
}
