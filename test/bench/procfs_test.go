package bench

import (
	"os"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	line := "4242 (we(ird) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 123 45 0 0 20 0 3 0 1000 100000 200\n"
	st, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st != (procStat{PID: 4242, Comm: "we(ird) name", PPID: 17, UTime: 123, STime: 45}) {
		t.Errorf("got %+v", st)
	}
	for _, bad := range []string{"", "12 noparen S 1", "12 (x) S 1 2 3"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	m, err := parseStatus([]byte("Name:\tx\nVmPeak:\t 1 kB\nVmRSS:\t   13926 kB\nRssAnon:\t 1000 kB\nRssFile:\t 12926 kB\nThreads:\t7\n"))
	if err != nil || m != (memStatus{RSS: 13926 * 1024, Anon: 1000 * 1024, File: 12926 * 1024, Threads: 7}) {
		t.Errorf("got %+v, %v", m, err)
	}
	if _, err := parseStatus([]byte("Name:\tkthread\nThreads:\t1\n")); err == nil {
		t.Error("no VmRSS line: no error")
	}
}

func TestParseSystemCPU(t *testing.T) {
	s, err := parseSystemCPU([]byte("cpu  10 1 5 100 4 2 3 0 7 0\ncpu0 1 1 1 1 1 1 1 1 1 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	// guest (7) is already inside user; idle and iowait are not busy.
	if s.total != 125 || s.busy != 21 {
		t.Errorf("got %+v", s)
	}
	if f := busyFraction(systemCPU{busy: 10, total: 100}, systemCPU{busy: 60, total: 200}); f != 0.5 {
		t.Errorf("busyFraction = %v", f)
	}
}

func TestOwnProcess(t *testing.T) {
	tree, err := processTree(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(tree) == 0 || tree[0].PID != os.Getpid() {
		t.Fatalf("tree of self: %+v", tree)
	}
	m, err := readStatus(os.Getpid())
	if err != nil || m.RSS <= 0 || m.Threads <= 0 {
		t.Errorf("own status: %+v, %v", m, err)
	}
	if openFDs(os.Getpid()) <= 0 {
		t.Error("no open fds")
	}
	th, err := threadRuntimes(os.Getpid())
	if err != nil || len(th) == 0 {
		t.Errorf("own threads: %v, %v", th, err)
	}
	if d, lost := runtimeDelta(map[int]uint64{1: 100, 2: 50}, map[int]uint64{1: 150, 3: 20}); d != 70 || lost != 1 {
		t.Errorf("runtimeDelta = %v, %d", d, lost)
	}
	if clockTicks() <= 0 {
		t.Error("clock ticks")
	}
}

func TestCaptureDrops(t *testing.T) {
	if n := captureDrops("tcpdump: listening on br0\n12 packets captured\n14 packets received by filter\n2 packets dropped by kernel\n"); n != 2 {
		t.Errorf("got %d", n)
	}
	if n := captureDrops("nothing"); n != -1 {
		t.Errorf("got %d", n)
	}
}
