package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// procStat is the part of /proc/PID/stat the benchmarks use.
type procStat struct {
	PID   int
	Comm  string
	PPID  int
	UTime uint64 // clock ticks
	STime uint64 // clock ticks
}

// parseProcStat parses one /proc/PID/stat line. The command name is in
// parentheses and may itself contain spaces and parentheses, so the fields
// are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	s := string(bytes.TrimSpace(b))
	lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if lp < 0 || rp < lp {
		return procStat{}, fmt.Errorf("malformed stat line %q", s)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:lp]))
	if err != nil {
		return procStat{}, fmt.Errorf("malformed pid in stat line %q", s)
	}
	// After ')': state(3) ppid(4) pgrp(5) session(6) tty_nr(7) tpgid(8)
	// flags(9) minflt(10) cminflt(11) majflt(12) cmajflt(13) utime(14)
	// stime(15) ... (proc(5) numbering).
	f := strings.Fields(s[rp+1:])
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("short stat line %q", s)
	}
	st := procStat{PID: pid, Comm: s[lp+1 : rp]}
	if st.PPID, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, fmt.Errorf("ppid in stat line %q: %w", s, err)
	}
	if st.UTime, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("utime in stat line %q: %w", s, err)
	}
	if st.STime, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("stime in stat line %q: %w", s, err)
	}
	return st, nil
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// memStatus is the memory part of /proc/PID/status, in bytes.
type memStatus struct {
	RSS, Anon, File int64 // VmRSS, RssAnon, RssFile
	Threads         int
}

// parseStatus reads VmRSS, RssAnon, RssFile and Threads from a
// /proc/PID/status file. VmRSS is required; the others are best effort.
func parseStatus(status []byte) (memStatus, error) {
	var m memStatus
	haveRSS := false
	for line := range strings.SplitSeq(string(status), "\n") {
		key, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		switch key {
		case "VmRSS", "RssAnon", "RssFile":
			if len(f) != 2 || f[1] != "kB" {
				return memStatus{}, fmt.Errorf("unexpected %s line %q", key, line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return memStatus{}, fmt.Errorf("%s line %q: %w", key, line, err)
			}
			switch key {
			case "VmRSS":
				m.RSS, haveRSS = kb*1024, true
			case "RssAnon":
				m.Anon = kb * 1024
			case "RssFile":
				m.File = kb * 1024
			}
		case "Threads":
			if len(f) == 1 {
				m.Threads, _ = strconv.Atoi(f[0])
			}
		}
	}
	if !haveRSS {
		return memStatus{}, fmt.Errorf("no VmRSS line (a kernel thread or a zombie?)")
	}
	return m, nil
}

// Memory is a process's resident memory in bytes: VmRSS and its anonymous
// (heap, stacks) and file-backed (mostly the binary's own pages) parts.
// Other benchmark packages report the split with it, since the two grow
// for different reasons.
func Memory(pid int) (rss, anon, file int64, err error) {
	m, err := readStatus(pid)
	return m.RSS, m.Anon, m.File, err
}

func readStatus(pid int) (memStatus, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, err
	}
	return parseStatus(b)
}

// openFDs counts the open file descriptors of pid.
func openFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// processTree returns root and its descendants (keepalived runs a parent and
// a VRRP child), root first, then by pid.
func processTree(root int) ([]procStat, error) {
	rs, err := readProcStat(root)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", root, err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]procStat{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == root {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil {
			continue // gone meanwhile
		}
		children[st.PPID] = append(children[st.PPID], st)
	}
	out := []procStat{rs}
	for i := 0; i < len(out); i++ {
		kids := children[out[i].PID]
		sort.Slice(kids, func(a, b int) bool { return kids[a].PID < kids[b].PID })
		out = append(out, kids...)
	}
	return out, nil
}

// ProcUsage is one process's CPU time over a window and its RSS at the end.
type ProcUsage struct {
	PID  int
	Comm string
	CPU  time.Duration // utime+stime over the window
	// Runtime is the sum over the process's threads of the scheduler's
	// sum_exec_runtime (/proc/PID/task/TID/schedstat, nanoseconds) over the
	// window: the same CPU time without the clock-tick rounding.
	Runtime time.Duration
	// LostThreads counts threads that exited during the window (their
	// runtime is missing from Runtime, not from CPU).
	LostThreads int
	// Memory at the end of the window: VmRSS and its anonymous and
	// file-backed parts, bytes; thread and open-descriptor counts.
	RSS, RSSAnon, RSSFile int64
	Threads, FDs          int
}

// procCPU is one process's CPU counters at one instant.
type procCPU struct {
	ticks   uint64         // utime+stime
	threads map[int]uint64 // tid → sum_exec_runtime, ns
}

// cpuSample is the CPU counters of a set of processes at one instant.
type cpuSample map[int]procCPU

func sampleCPU(tree []procStat) cpuSample {
	s := cpuSample{}
	for _, p := range tree {
		th, _ := threadRuntimes(p.PID)
		s[p.PID] = procCPU{ticks: p.UTime + p.STime, threads: th}
	}
	return s
}

// threadRuntimes reads sum_exec_runtime of every thread of pid.
func threadRuntimes(pid int) (map[int]uint64, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[int]uint64{}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue // exited meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			continue
		}
		if ns, err := strconv.ParseUint(f[0], 10, 64); err == nil {
			out[tid] = ns
		}
	}
	return out, nil
}

// runtimeDelta is the threads' runtime from before to after; threads new
// since before count from zero, threads gone are counted in lost.
func runtimeDelta(before, after map[int]uint64) (d time.Duration, lost int) {
	for tid, ns := range after {
		d += time.Duration(ns - before[tid])
	}
	for tid := range before {
		if _, ok := after[tid]; !ok {
			lost++
		}
	}
	return d, lost
}

var (
	clkTckOnce sync.Once
	clkTck     = 100
)

// clockTicks is USER_HZ, the unit of utime and stime: `getconf CLK_TCK`,
// 100 (what Linux uses on every common architecture) if that fails.
func clockTicks() int {
	clkTckOnce.Do(func() {
		out, err := exec.Command("getconf", "CLK_TCK").Output()
		if err != nil {
			return
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			clkTck = n
		}
	})
	return clkTck
}

func ticksToDuration(t uint64) time.Duration {
	return time.Duration(t) * time.Second / time.Duration(clockTicks())
}

// systemCPU is the machine-wide busy and total jiffies from /proc/stat's
// "cpu" line (busy = everything but idle and iowait).
type systemCPU struct{ busy, total uint64 }

func parseSystemCPU(b []byte) (systemCPU, error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		var s systemCPU
		for i, v := range f[1:] {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return systemCPU{}, fmt.Errorf("/proc/stat cpu line %q: %w", line, err)
			}
			// user nice system idle iowait irq softirq steal guest guest_nice;
			// guest time is already counted in user.
			if i >= 8 {
				break
			}
			s.total += n
			if i != 3 && i != 4 {
				s.busy += n
			}
		}
		return s, nil
	}
	return systemCPU{}, fmt.Errorf("no cpu line in /proc/stat")
}

func readSystemCPU() (systemCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return systemCPU{}, err
	}
	return parseSystemCPU(b)
}

// busyFraction is the share of all CPUs' time that was busy between a and b.
func busyFraction(a, b systemCPU) float64 {
	if b.total <= a.total {
		return 0
	}
	return float64(b.busy-a.busy) / float64(b.total-a.total)
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

var dropsRE = regexp.MustCompile(`(\d+) packets? dropped by kernel`)

// captureDrops reads the kernel drop count tcpdump prints when it stops
// (-1 when it printed none).
func captureDrops(stderr string) int {
	m := dropsRE.FindStringSubmatch(stderr)
	if m == nil {
		return -1
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return -1
	}
	return n
}

// repoRoot is the nearest directory at or above the working directory that
// holds go.mod ("" when there is none).
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
