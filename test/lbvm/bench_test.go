package lbvm

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/lb"
	"vigil/lb/ipvsnet"
)

// benchTable is nSvc TCP services (250 documentation addresses × ports)
// with nRS NAT real servers each.
func benchTable(nSvc, nRS int) lb.Table {
	t := lb.Table{}
	for i := 0; i < nSvc; i++ {
		s := tcp(netip.AddrFrom4([4]byte{192, 0, 2, byte(i%250 + 1)}).String(), uint16(1000+i/250), "wrr")
		e := entry(s)
		for j := 0; j < nRS; j++ {
			d := dst(netip.AddrFrom4([4]byte{198, 51, 100, byte(j + 1)}).String(), 8080, lb.NAT, 1)
			e.Dests[d.Key()] = d
		}
		t[s.Key] = e
	}
	return t.Normal()
}

// ipvsadmRules renders t as ipvsadm -R input.
func ipvsadmRules(t lb.Table) string {
	var b strings.Builder
	for _, k := range t.Keys() {
		e := t[k]
		fmt.Fprintf(&b, "-A -t %s -s %s\n", netip.AddrPortFrom(k.Addr, k.Port), e.Service.Scheduler)
		for _, d := range e.SortedDests() {
			fmt.Fprintf(&b, "-a -t %s -r %s -m -w %d\n", netip.AddrPortFrom(k.Addr, k.Port), netip.AddrPortFrom(d.Addr, d.Port), d.Weight)
		}
	}
	return b.String()
}

// TestBenchReconcile times vigil's Diff+Apply on 1,000 virtual servers ×
// 10 real servers (cold apply, one real server changed, removal of all)
// and ipvsadm -R / -e / -C on the same table, in separate namespaces. It
// reports figures and asserts only correctness, never time.
func TestBenchReconcile(t *testing.T) {
	inVM(t)
	if os.Getenv("VIGIL_LB_BENCH") != "1" {
		t.Skip("benchmark: set VIGIL_LB_BENCH=1 (host: VIGIL_NETNS=1 VIGIL_BENCH=1 go test ./test/vm -run LBBench -v)")
	}
	const rounds = 3
	desired := benchTable(1000, 10)
	managed := keysOf(desired)
	changed := desired.Clone()
	k0 := desired.Keys()[500]
	d0 := changed[k0].SortedDests()[5]
	d0.Weight = 5
	changed[k0].Dests[d0.Key()] = d0

	type figures struct{ dump, cold, coldDiff, one, oneDiff, remove, again, againDiff []time.Duration }
	var f figures
	var h *ipvsnet.Handle
	// timed runs the diff and Apply, recording the diff's share and the
	// total. keys, if set, are the services that can have changed: the
	// balancer knows them after a health check changed (DiffKeys); a
	// start, a reload or a resync compares everything (DiffNormal).
	timed := func(want, cur lb.Table, keys []lb.ServiceKey, total, diff *[]time.Duration) []lb.Op {
		t.Helper()
		t0 := time.Now()
		var ops []lb.Op
		if keys != nil {
			ops = lb.DiffKeys(want, cur, keys, managed)
		} else {
			ops = lb.DiffNormal(want, cur, managed)
		}
		*diff = append(*diff, since(t0))
		if err := h.Apply(ops); err != nil {
			t.Fatal(err)
		}
		*total = append(*total, since(t0))
		return ops
	}
	var removeDiff []time.Duration
	for r := 0; r < rounds; r++ {
		// A fresh namespace per round: the kernel parks deleted
		// destinations in a trash list for two minutes and searches it
		// on every add (see the apply again below).
		h = director(t, fmt.Sprintf("vigil-lb-bench%d", r))
		t0 := time.Now()
		cur := dump(t, h)
		f.dump = append(f.dump, since(t0))
		ops := timed(desired, cur, nil, &f.cold, &f.coldDiff)
		if len(ops) != 11000 {
			t.Fatalf("cold apply: %d ops, want 11000", len(ops))
		}
		t0 = time.Now()
		cur = dump(t, h)
		f.dump = append(f.dump, since(t0))
		if !cur.Equal(desired) {
			t.Fatal("kernel table after cold apply differs from desired")
		}
		ops = timed(changed, cur, []lb.ServiceKey{k0}, &f.one, &f.oneDiff)
		if len(ops) != 1 {
			t.Fatalf("one change: %d ops:\n%s", len(ops), opsString(ops))
		}
		cur = dump(t, h)
		if !cur.Equal(changed) {
			t.Fatal("kernel table after one change differs")
		}
		timed(lb.Table{}, cur, nil, &f.remove, &removeDiff)
		if got := dump(t, h); len(got) != 0 {
			t.Fatalf("%d services left after removal", len(got))
		}
		// A restart right after a stop: the same table again, its
		// 10,000 destinations still in the kernel's trash.
		if ops := timed(desired, lb.Table{}, nil, &f.again, &f.againDiff); len(ops) != 11000 {
			t.Fatalf("apply again: %d ops, want 11000", len(ops))
		}
		if !dump(t, h).Equal(desired) {
			t.Fatal("kernel table after applying again differs from desired")
		}
	}

	ipvsadm := os.Getenv("VIGIL_IPVSADM")
	var ra, re, rc []time.Duration
	if ipvsadm != "" {
		rules := ipvsadmRules(desired)
		rf := "/tmp/vigil-bench.rules"
		if err := os.WriteFile(rf, []byte(rules), 0o644); err != nil {
			t.Fatal(err)
		}
		ns := ""
		sh := func(script string) time.Duration {
			t.Helper()
			t0 := time.Now()
			out, err := exec.Command(ipCmd, "netns", "exec", ns, "sh", "-c", script).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", script, err, out)
			}
			return since(t0)
		}
		for r := 0; r < rounds; r++ {
			ns = fmt.Sprintf("vigil-lb-bench-adm%d", r)
			director(t, ns)
			base := sh("true") // ip netns exec + sh, subtracted below
			ra = append(ra, sh(ipvsadm+" -R < "+rf)-base)
			re = append(re, sh(fmt.Sprintf("%s -e -t %s -r %s -m -w 5", ipvsadm,
				netip.AddrPortFrom(k0.Addr, k0.Port), netip.AddrPortFrom(d0.Addr, d0.Port)))-base)
			rc = append(rc, sh(ipvsadm+" -C")-base)
		}
	}
	// med reports the median and every round in order.
	med := func(ds []time.Duration) string {
		if len(ds) == 0 {
			return "n/a"
		}
		s := slices.Clone(ds)
		slices.Sort(s)
		rs := make([]string, len(ds))
		for i, d := range ds {
			rs[i] = d.Round(time.Millisecond / 10).String()
		}
		return fmt.Sprintf("median %v (rounds %s)", s[len(s)/2].Round(time.Millisecond/10), strings.Join(rs, ", "))
	}
	t.Logf("BENCH 1000 VS x 10 RS, qemu TCG guest, %d vCPU", runtime.NumCPU())
	t.Logf("BENCH vigil dump (1+1000 netlink dumps): %s", med(f.dump))
	t.Logf("BENCH vigil cold apply Diff+Apply (11000 ops): %s; Diff alone %s", med(f.cold), med(f.coldDiff))
	t.Logf("BENCH vigil one RS weight change by its check, DiffKeys+Apply (1 op): %s; diff alone %s", med(f.one), med(f.oneDiff))
	t.Logf("BENCH vigil remove all Diff+Apply (1000 ops): %s; Diff alone %s", med(f.remove), med(removeDiff))
	t.Logf("BENCH vigil apply again right after remove all (a restart after a stop; the kernel's trash holds the 10,000 destinations): %s; Diff alone %s", med(f.again), med(f.againDiff))
	t.Logf("BENCH ipvsadm -R cold (same table): %s", med(ra))
	t.Logf("BENCH ipvsadm -e one RS (process start incl.): %s", med(re))
	t.Logf("BENCH ipvsadm -C remove all: %s", med(rc))
}
