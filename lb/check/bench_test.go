package check

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// benchServerEnv makes the test binary a loopback TCP and HTTP server
// instead of running tests: the benchmarks put the servers in another
// process so that getrusage of this one measures the checker alone.
const benchServerEnv = "VIGIL_CHECK_BENCH_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(benchServerEnv) != "" {
		benchServer()
		return
	}
	os.Exit(m.Run())
}

func benchServer() {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		return
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		return
	}
	fmt.Printf("tcp %s\nhttp %s\n", tl.Addr(), hl.Addr())
	for range 4 { // several acceptors: one alone falls behind the prober
		go acceptClose(tl, nil)
	}
	go func() {
		_ = http.Serve(hl, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	}()
	// Exit with the parent: it holds our stdin open.
	_, _ = bufio.NewReader(os.Stdin).ReadByte()
}

// startBenchServer runs the servers in a child process and returns their
// addresses.
func startBenchServer(b *testing.B) (tcp, web netip.AddrPort) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchServerEnv+"=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Close(); _ = cmd.Wait() })
	r := bufio.NewScanner(out)
	for _, dst := range []*netip.AddrPort{&tcp, &web} {
		if !r.Scan() {
			b.Fatalf("bench server: %v", r.Err())
		}
		_, a, _ := strings.Cut(r.Text(), " ")
		if *dst, err = netip.ParseAddrPort(a); err != nil {
			b.Fatalf("bench server said %q", r.Text())
		}
	}
	return tcp, web
}

// cpuTime is this process's user+system CPU time and its system part.
func cpuTime(b *testing.B) (total, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), time.Duration(ru.Stime.Nano())
}

// BenchmarkProbe measures the raw throughput of back-to-back probes from 32
// goroutines against a server in another process: checks/s and CPU per
// check of this process.
func BenchmarkProbe(b *testing.B) {
	tcp, web := startBenchServer(b)
	for _, s := range []Spec{
		{Type: TCP, Target: tcp, Timeout: time.Second, Interval: time.Second},
		{Type: HTTP, Target: web, Path: "/", Timeout: time.Second, Interval: time.Second},
	} {
		b.Run(string(s.Type), func(b *testing.B) {
			n, err := s.Normalize()
			if err != nil {
				b.Fatal(err)
			}
			var fails atomic.Int64
			b.SetParallelism(4) // × GOMAXPROCS goroutines; more only starve the server process
			cpu0, _ := cpuTime(b)
			t0 := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				p, err := newProber(n)
				if err != nil {
					b.Error(err)
					return
				}
				for pb.Next() {
					ctx, cancel := context.WithTimeout(context.Background(), n.Timeout)
					if o := p.probe(ctx); o.result != Success {
						if fails.Add(1) == 1 {
							b.Logf("first failure: %v %s", o.result, o.detail)
						}
					}
					cancel()
				}
			})
			wall := time.Since(t0)
			cpu, _ := cpuTime(b)
			cpu -= cpu0
			b.ReportMetric(float64(b.N)/wall.Seconds(), "checks/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/check")
			// Reported, not failed on: a loaded machine may time a probe out.
			b.ReportMetric(float64(fails.Load()), "failed")
		})
	}
}

// BenchmarkScheduler runs the scheduler at a fixed probe rate (the issue's
// goal: 10,000 TCP checks/s at ≤ 50 % of one core) against a server in
// another process, and reports the rate achieved and this process's CPU
// as a percentage of one core. Each op is 250 ms of running.
func BenchmarkScheduler(b *testing.B) {
	tcp, web := startBenchServer(b)
	for _, c := range []struct {
		typ    Type
		target netip.AddrPort
		rate   int
	}{{TCP, tcp, 10000}, {HTTP, web, 2000}} {
		b.Run(fmt.Sprintf("%s-%d", c.typ, c.rate), func(b *testing.B) {
			// checks × (1/interval) = rate; distinct paths or intervals make
			// distinct checks (identical ones would be deduplicated).
			const interval = 500 * time.Millisecond
			n := c.rate * int(interval) / int(time.Second)
			var done, fails atomic.Int64
			s := New(Config{Workers: 64, Observer: ObserverFunc(func(_ Type, r Result, _ time.Duration) {
				done.Add(1)
				if r != Success {
					fails.Add(1)
				}
			})})
			checks := make(map[ID]Check, n)
			for i := range n {
				sp := Spec{Type: c.typ, Target: c.target, Interval: interval, Timeout: interval / 2, Rise: 1 + i}
				checks[ID(fmt.Sprint(i))] = Check{Owner{"bench", rs(i % 250)}, sp}
			}
			if err := s.Set(checks); err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			stopped := make(chan struct{})
			go func() { defer close(stopped); _ = s.Run(ctx) }()
			// Let the jitter spread the first probes over an interval.
			time.Sleep(interval)
			b.ResetTimer()
			d0, skip0 := done.Load(), s.Skipped()
			cpu0, sys0 := cpuTime(b)
			t0 := time.Now()
			time.Sleep(time.Duration(b.N) * 250 * time.Millisecond)
			wall, checks2 := time.Since(t0), done.Load()-d0
			cpu, sys := cpuTime(b)
			cpu, sys = cpu-cpu0, sys-sys0
			b.StopTimer()
			cancel()
			<-stopped
			b.ReportMetric(float64(checks2)/wall.Seconds(), "checks/s")
			b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "cpu-%/core")
			// On loopback the kernel runs the server's half of each
			// handshake in this process's connect(), so sys overstates
			// what probing a remote server costs.
			b.ReportMetric(100*sys.Seconds()/wall.Seconds(), "sys-%/core")
			b.ReportMetric(float64(s.Skipped()-skip0), "skipped")
			b.ReportMetric(float64(fails.Load()), "failed")
		})
	}
}
