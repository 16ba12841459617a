// Package bench holds vigil's side-by-side benchmarks: vigil and Debian's
// keepalived measured in the same run, in the same kind of network-namespace
// lab (package netlab), from one cluster description (package peer).
//
// The scenarios are Go benchmarks (`make bench` runs `go test -run '^$'
// -bench . -benchtime 1x ./test/bench/`); each one runs its own repetitions
// (VIGIL_BENCH_RUNS, default 20) once, whatever b.N is, because one
// repetition is a link cut or a daemon restart, not a loop iteration. They
// report figures and never fail on time; they fail only when a scenario
// cannot complete (no takeover at all, a daemon that dies, a lab that cannot
// be built). Figures go three ways: b.ReportMetric lines in the usual
// benchmark format, Markdown tables on stdout, and a Markdown report file
// (VIGIL_BENCH_REPORT, default bench-report.md at the repository root) with
// the machine it ran on and the command that reproduces it.
//
//   - BenchmarkTakeoverLinkCut: master (priority 150) and backup (100), one
//     VIP, VRRPv3 at 1 s, 100 ms and 10 ms adverts; the master's bridge port
//     goes down; takeover = last advert from the old master seen on the
//     bridge → first advert from the new master (tcpdump on the bridge,
//     kernel timestamps), and its excess over the backup's
//     Master_Down_Interval. The processes stay up between repetitions: the
//     link comes back, the master preempts back and the wire settles before
//     the next cut, at a random phase of the advert interval.
//   - BenchmarkTakeoverGracefulStop: SIGTERM to the master; its priority-0
//     advert → the new master's first advert, against the backup's
//     Skew_Time; the stopped daemon is started again between repetitions.
//   - BenchmarkResources: a master with 200 instances at 1 s and one with 50
//     at 10 ms (each instance its own VRID and VIP) and a backup running the
//     same instances; CPU seconds over 10 s (utime+stime of every process of
//     the implementation) and VmRSS of the master and of the backup.
//
// Everything runs as root with VIGIL_NETNS=1 (netlab.Require); without it
// the benchmarks skip. VIGIL_BIN names the vigil binary (the Makefile sets
// it; otherwise one is built). Each scenario builds its own lab (prefix
// "vgbn") and removes it when it ends, also on failure. The full run takes
// about 10 to 15 minutes on 2 cores; VIGIL_BENCH_RUNS=3 makes a trial run of
// about 3. The unit tests of this package (report rendering, statistics,
// capture and /proc parsing) need no privileges.
package bench
