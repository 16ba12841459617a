package lbvm

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vigil/lb"
	"vigil/lb/ipvsnet"
	"vigil/test/netlab"
)

// richTable covers what the applier must round-trip: every forwarding
// method, persistence with a coarser mask, one-packet scheduling,
// scheduler flags, thresholds, SCTP, IPv6 and firewall marks of both
// families.
func richTable() lb.Table {
	dns := lb.Service{Key: lb.ServiceKey{Protocol: lb.UDP, Addr: mustAddr("192.0.2.53"), Port: 53}, Scheduler: "sh",
		SchedFlags: lb.SchedFlag1 | lb.SchedFlag2, OnePacket: true}
	pers := tcp("192.0.2.101", 443, "rr")
	pers.Persistence, pers.PersistenceMask = 300*time.Second, 24
	fwm4 := lb.Service{Key: lb.ServiceKey{Family: lb.IPv4, FWMark: 10}, Scheduler: "wlc", Persistence: time.Minute}
	fwm6 := lb.Service{Key: lb.ServiceKey{Family: lb.IPv6, FWMark: 11}, Scheduler: "mh", SchedFlags: lb.SchedFlag2,
		Persistence: 30 * time.Second, PersistenceMask: 64}
	sctp := lb.Service{Key: lb.ServiceKey{Protocol: lb.SCTP, Addr: mustAddr("192.0.2.102"), Port: 9000}, Scheduler: "rr"}
	thr := dst("198.51.100.11", 8080, lb.NAT, 1)
	thr.Upper, thr.Lower = 100, 10
	return table(
		entry(tcp("192.0.2.100", 80, "wrr"), thr, dst("198.51.100.12", 8080, lb.NAT, 2), dst("198.51.100.13", 8080, lb.NAT, 3)),
		entry(dns, dst("198.51.100.21", 53, lb.NAT, 1), dst("198.51.100.22", 53, lb.NAT, 1)),
		entry(pers, dst("198.51.100.31", 443, lb.DR, 1), dst("198.51.100.32", 443, lb.Tunnel, 1)),
		entry(fwm4, dst("198.51.100.41", 0, lb.DR, 1)),
		entry(tcp("2001:db8::100", 80, "lc"), dst("2001:db8::11", 8080, lb.NAT, 1), dst("2001:db8::12", 80, lb.DR, 5)),
		entry(fwm6, dst("2001:db8::21", 0, lb.Tunnel, 1)),
		entry(sctp, dst("198.51.100.51", 9000, lb.NAT, 1)),
	).Normal()
}

func TestAvailable(t *testing.T) {
	inVM(t)
	if err := ipvsnet.Available(); err != nil {
		t.Fatalf("Available on the VM kernel: %v", err)
	}
	v, size, err := ipvsnet.Info()
	if err != nil || v == "" || size <= 0 {
		t.Fatalf("Info = %q, %d, %v", v, size, err)
	}
	t.Logf("IPVS version %s, table size %d", v, size)
}

// TestReconcileRoundTrip applies a table from cold, reads it back, and
// converges: a second reconcile does nothing; a foreign service survives.
func TestReconcileRoundTrip(t *testing.T) {
	inVM(t)
	h := director(t, "vigil-lb-rt")
	foreign := table(entry(tcp("203.0.113.1", 22, "rr"), dst("203.0.113.2", 22, lb.NAT, 1)))
	if err := h.Apply(lb.Diff(foreign, lb.Table{}, nil)); err != nil {
		t.Fatal(err)
	}
	desired := richTable()
	managed := keysOf(desired)
	ops := reconcile(t, h, desired, managed)
	for _, o := range ops {
		if _, ok := foreign[o.Service.Key]; ok {
			t.Errorf("op on the foreign service: %s", o)
		}
	}
	all := desired.Clone()
	for k, e := range foreign {
		all[k] = e
	}
	checkDump(t, h, "after cold apply", all)
	// Services (what the stop reads) is the dump without destinations.
	svcs, err := h.Services()
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != len(all) {
		t.Errorf("Services: %d services, want %d", len(svcs), len(all))
	}
	for k, e := range all.Normal() {
		if got, ok := svcs[k]; !ok || got.Service != e.Service || len(got.Dests) != 0 {
			t.Errorf("Services[%s] = %+v, %v; want %+v without destinations", k, got, ok, e.Service)
		}
	}
	if again := reconcile(t, h, desired, managed); len(again) != 0 {
		t.Fatalf("second reconcile not empty:\n%s", opsString(again))
	}

	// Removal of all of vigil's services leaves the foreign one as it was.
	ops = reconcile(t, h, lb.Table{}, managed)
	if len(ops) != len(desired) {
		t.Errorf("removal took %d ops, want %d (one per service):\n%s", len(ops), len(desired), opsString(ops))
	}
	checkDump(t, h, "after removing all", foreign)
}

// health is a settable lb.Health: real servers by "vs addr:port".
type health map[string]bool

func (h health) RealServer(vs string, rs lb.DestKey) (bool, int, bool) {
	return !h[vs+" "+netip.AddrPortFrom(rs.Addr, rs.Port).String()], 0, false
}

// TestReconcileChanges drives the kernel through lb.Desired as the node
// will: one real server's change is one op and leaves every other entry
// as it was; inhibit drains, quorum loss brings the sorry server, service
// and forwarding changes are updates in place.
func TestReconcileChanges(t *testing.T) {
	inVM(t)
	h := director(t, "vigil-lb-ch")
	web := tcp("192.0.2.100", 80, "wrr")
	rs := func(a string, w int, inhibit bool) lb.RealServer {
		return lb.RealServer{Dest: dst(a, 8080, lb.NAT, w), Inhibit: inhibit}
	}
	vss := []lb.VirtualServer{
		{Name: "web", Service: web, Quorum: 2, Sorry: &lb.Dest{Addr: mustAddr("203.0.113.9"), Port: 80, Forward: lb.NAT, Weight: 1},
			Reals: []lb.RealServer{rs("198.51.100.11", 1, false), rs("198.51.100.12", 2, true), rs("198.51.100.13", 3, false)}},
	}
	// Keys compare in normal form (the family filled in), as Desired
	// returns them. The rest of the rich table rides along as configured services with
	// healthy real servers, to show a change elsewhere leaves them alone.
	for k, e := range richTable() {
		if k == web.Key.Normal() {
			continue
		}
		vs := lb.VirtualServer{Name: k.String(), Service: e.Service}
		for _, d := range e.SortedDests() {
			vs.Reals = append(vs.Reals, lb.RealServer{Dest: d})
		}
		vss = append(vss, vs)
	}
	hl := health{}
	var q lb.QuorumState
	var everything lb.Table
	step := func(name string, wantOps string) lb.Table {
		t.Helper()
		var want lb.Table
		want, q = lb.Desired(vss, hl, q)
		if everything == nil {
			everything = want
		}
		before := dump(t, h)
		ops := reconcile(t, h, want, keysOf(want, everything))
		if wantOps != "*" && opsString(ops) != wantOps {
			t.Fatalf("%s: ops:\n%s\nwant:\n%s", name, opsString(ops), wantOps)
		}
		after := checkDump(t, h, name, want)
		// Every entry the ops did not name is as it was before.
		touched := map[lb.ServiceKey]map[lb.DestKey]bool{}
		for _, o := range ops {
			if touched[o.Service.Key] == nil {
				touched[o.Service.Key] = map[lb.DestKey]bool{}
			}
			touched[o.Service.Key][o.Dest.Key()] = true
		}
		for k, e := range before {
			if touched[k] == nil && !(lb.Table{k: e}).Equal(lb.Table{k: after[k]}) {
				t.Errorf("%s: untouched service %v changed", name, k)
			}
		}
		return after
	}
	step("cold", "*")
	hl["web 198.51.100.12:8080"] = true
	step("inhibited RS down", "update-dest tcp 192.0.2.100:80 -> 198.51.100.12:8080 nat weight 0")
	hl["web 198.51.100.11:8080"] = true
	step("plain RS down", "del-dest tcp 192.0.2.100:80 -> 198.51.100.11:8080")
	hl["web 198.51.100.13:8080"] = true
	step("quorum lost: sorry server in", `add-dest tcp 192.0.2.100:80 -> 203.0.113.9:80 nat weight 1
del-dest tcp 192.0.2.100:80 -> 198.51.100.13:8080`)
	delete(hl, "web 198.51.100.11:8080")
	delete(hl, "web 198.51.100.12:8080")
	delete(hl, "web 198.51.100.13:8080")
	step("quorum back: sorry server out", `add-dest tcp 192.0.2.100:80 -> 198.51.100.11:8080 nat weight 1
add-dest tcp 192.0.2.100:80 -> 198.51.100.13:8080 nat weight 3
update-dest tcp 192.0.2.100:80 -> 198.51.100.12:8080 nat weight 2
del-dest tcp 192.0.2.100:80 -> 203.0.113.9:80`)
	vss[0].Reals[2].Weight = 7
	step("one weight", "update-dest tcp 192.0.2.100:80 -> 198.51.100.13:8080 nat weight 7")
	vss[0].Reals[0].Forward = lb.DR
	step("forwarding method", "update-dest tcp 192.0.2.100:80 -> 198.51.100.11:8080 dr weight 1")
	vss[0].Service.Scheduler, vss[0].Service.Persistence, vss[0].Service.PersistenceMask = "sed", 600*time.Second, 16
	step("service settings", "update-service tcp 192.0.2.100:80 sed persistent 10m0s/16")
	vss[0].Service.Persistence = 0
	vss[0].Service.OnePacket = false
	step("persistence off", "update-service tcp 192.0.2.100:80 sed")
	vss = nil
	step("remove all", "*")
	checkDump(t, h, "at the end", lb.Table{})
}

// TestSchedulers creates a service with each scheduler the kernel has.
func TestSchedulers(t *testing.T) {
	inVM(t)
	h := director(t, "vigil-lb-sched")
	for _, s := range []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos"} {
		t.Run(s, func(t *testing.T) {
			if _, err := os.Stat("/sys/module/ip_vs_" + s); err != nil {
				if out, err := exec.Command("modprobe", "ip_vs_"+s).CombinedOutput(); err != nil {
					t.Skipf("kernel has no scheduler %s (modprobe ip_vs_%s: %v %s)", s, s, err, out)
				}
			}
			svc := tcp("192.0.2.100", 80, s)
			if s == "sh" || s == "mh" {
				svc.SchedFlags = lb.SchedFlag1
			}
			want := table(entry(svc, dst("198.51.100.11", 80, lb.NAT, 1), dst("198.51.100.12", 80, lb.DR, 2)))
			reconcile(t, h, want, keysOf(want))
			checkDump(t, h, "with scheduler "+s, want)
			reconcile(t, h, lb.Table{}, keysOf(want))
			checkDump(t, h, "after removal", lb.Table{})
		})
	}
}

// TestApplyStopsAtFirstError: a refused op stops Apply with an error that
// names it and wraps the kernel's errno; the ops before it are applied, and
// no later batch is sent (the kernel still runs the rest of its batch).
func TestApplyStopsAtFirstError(t *testing.T) {
	inVM(t)
	h := director(t, "vigil-lb-err")
	good := tcp("192.0.2.100", 80, "rr")
	bad := tcp("192.0.2.101", 80, "nosuchsched")
	ops := []lb.Op{
		{Kind: lb.AddService, Service: good},
		{Kind: lb.AddService, Service: bad},
		{Kind: lb.AddDest, Service: good, Dest: dst("198.51.100.11", 80, lb.NAT, 1)},
	}
	err := h.Apply(ops)
	if err == nil || !strings.Contains(err.Error(), "op 2 of 3 (add-service tcp 192.0.2.101:80 nosuchsched)") {
		t.Fatalf("Apply error = %v, want one naming op 2", err)
	}
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("error does not wrap the kernel's ENOENT: %v", err)
	}
	// The third op was in the failing op's batch: the kernel ran it.
	checkDump(t, h, "after the failed op", table(entry(good, dst("198.51.100.11", 80, lb.NAT, 1))))
	// A later batch is not sent: 200 ops, the refused one first.
	var many []lb.Op
	many = append(many, lb.Op{Kind: lb.AddService, Service: bad})
	for i := range 199 {
		many = append(many, lb.Op{Kind: lb.AddDest, Service: good, Dest: dst("198.51.100.12", uint16(1000+i), lb.NAT, 1)})
	}
	err = h.Apply(many)
	if err == nil || !strings.Contains(err.Error(), "op 1 of 200 (add-service tcp 192.0.2.101:80 nosuchsched)") {
		t.Fatalf("Apply of 200 = %v, want an error naming op 1", err)
	}
	if n := len(dump(t, h)[good.Key.Normal()].Dests); n != 1+127 {
		t.Errorf("%d destinations after the failed batch, want 128 (the first batch's 127 and the earlier one)", n)
	}
	err = h.Apply([]lb.Op{{Kind: lb.UpdateDest, Service: good, Dest: dst("198.51.100.99", 80, lb.NAT, 1)}})
	if err == nil || !strings.Contains(err.Error(), "update-dest") {
		t.Fatalf("update of a missing dest: %v", err)
	}
	err = h.Apply([]lb.Op{{Kind: lb.AddDest, Service: good, Dest: dst("198.51.100.11", 80, lb.NAT, 70000)}})
	if err == nil || !strings.Contains(err.Error(), "above 65535") {
		t.Fatalf("weight 70000: %v", err)
	}
}

// tunnelTable has every tunnel encapsulation, an IPv6 destination behind
// an IPv4 service, and (when the kernel has the module) a sip service.
func tunnelTable(t *testing.T) lb.Table {
	gue := lb.Dest{Addr: mustAddr("198.51.100.61"), Port: 80, Forward: lb.Tunnel, Weight: 1, TunType: lb.GUE, TunPort: 6080, TunCsum: lb.RemCsum}
	gue2 := lb.Dest{Addr: mustAddr("198.51.100.62"), Port: 80, Forward: lb.Tunnel, Weight: 1, TunType: lb.GUE, TunPort: 6081}
	gre := lb.Dest{Addr: mustAddr("198.51.100.63"), Port: 80, Forward: lb.Tunnel, Weight: 2, TunType: lb.GRE, TunCsum: lb.Csum}
	tab := table(entry(tcp("203.0.113.60", 80, "wrr"), gue, gue2, gre,
		dst("198.51.100.64", 80, lb.Tunnel, 3), dst("2001:db8::65", 80, lb.Tunnel, 4), dst("198.51.100.66", 80, lb.NAT, 5)))
	if out, err := exec.Command("modprobe", "ip_vs_pe_sip").CombinedOutput(); err != nil {
		t.Logf("no sip persistence engine in this kernel, not rendered (modprobe ip_vs_pe_sip: %v %s)", err, out)
	} else {
		sip := lb.Service{Key: lb.ServiceKey{Protocol: lb.UDP, Addr: mustAddr("203.0.113.60"), Port: 5060}, Scheduler: "rr",
			Persistence: time.Minute, PE: "sip"}
		tab[sip.Key] = entry(sip, dst("198.51.100.61", 5060, lb.NAT, 1))
	}
	return tab.Normal()
}

// TestRenderMatchesIpvsadm compares Render with the real ipvsadm on the
// same kernel table, in every list format, byte for byte.
func TestRenderMatchesIpvsadm(t *testing.T) {
	inVM(t)
	ipvsadm := os.Getenv("VIGIL_IPVSADM")
	if ipvsadm == "" {
		t.Skip("VIGIL_IPVSADM (the guest path of ipvsadm) is not set; the host launcher copies it in")
	}
	version, size, err := ipvsnet.Info()
	if err != nil {
		t.Fatal(err)
	}
	formats := []struct {
		name   string
		format lb.RenderFormat
		args   []string
	}{
		{"list", lb.FormatList, nil},
		{"stats", lb.FormatStats, []string{"--stats"}},
		{"rate", lb.FormatRate, []string{"--rate"}},
		{"thresholds", lb.FormatThresholds, []string{"--thresholds"}},
		{"tun-info", lb.FormatTunInfo, []string{"--tun-info"}},
	}
	for _, tb := range []struct {
		name, ns string
		tab      lb.Table
	}{
		{"rich", "vigil-lb-render", richTable()},
		{"tunnels", "vigil-lb-render-tun", tunnelTable(t)},
	} {
		h := director(t, tb.ns)
		reconcile(t, h, tb.tab, keysOf(tb.tab))
		for _, f := range formats {
			t.Run(tb.name+"/"+f.name, func(t *testing.T) {
				args := append([]string{ipCmd, "netns", "exec", tb.ns, ipvsadm, "-Ln", "--sort"}, f.args...)
				want := run(t, args...)
				tab, st, err := h.Stats()
				if err != nil {
					t.Fatal(err)
				}
				var b strings.Builder
				if err := lb.Render(&b, tab, lb.RenderOptions{Format: f.format, Version: version, Size: size, Stats: st}); err != nil {
					t.Fatal(err)
				}
				if got := b.String(); got != want {
					t.Errorf("Render differs from %s:\n--- ipvsadm\n%s--- Render\n%s", strings.Join(args[4:], " "), want, got)
					gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
					for i := range min(len(gl), len(wl)) {
						if gl[i] != wl[i] {
							t.Errorf("first difference, line %d:\n ipvsadm %q\n Render  %q", i+1, wl[i], gl[i])
							break
						}
					}
				}
			})
		}
	}
}

// SetTimeouts reaches the kernel (keepalived lvs_timeouts, ipvsadm --set):
// read back over netlink and as ipvsadm shows them; a zero leaves that
// timeout alone.
func TestTimeouts(t *testing.T) {
	inVM(t)
	const ns = "vigil-lb-timeouts"
	h := director(t, ns)
	orig, err := h.Timeouts()
	if err != nil {
		t.Fatal(err)
	}
	if orig.TCP == 0 || orig.UDP == 0 {
		t.Fatalf("the kernel's default timeouts read as %+v", orig)
	}
	want := ipvsnet.Timeouts{TCP: 900 * time.Second, TCPFin: 30 * time.Second, UDP: 45 * time.Second}
	if err := h.SetTimeouts(want); err != nil {
		t.Fatal(err)
	}
	if got, err := h.Timeouts(); err != nil || got != want {
		t.Fatalf("timeouts after SetTimeouts(%+v): %+v, %v", want, got, err)
	}
	if err := h.SetTimeouts(ipvsnet.Timeouts{UDP: 60 * time.Second}); err != nil {
		t.Fatal(err)
	}
	want.UDP = 60 * time.Second
	if got, err := h.Timeouts(); err != nil || got != want {
		t.Fatalf("after setting only UDP: %+v (want %+v), %v", got, want, err)
	}
	if ipvsadm := os.Getenv("VIGIL_IPVSADM"); ipvsadm != "" {
		out := run(t, ipCmd, "netns", "exec", ns, ipvsadm, "-L", "--timeout")
		if !strings.Contains(out, "Timeout (tcp tcpfin udp): 900 30 60") {
			t.Errorf("ipvsadm -L --timeout: %q", out)
		}
	}
}

// Tunnel encapsulations (gue with its port and remote checksum, gre with
// checksum, ipip), an IPv6 destination behind an IPv4 service, and the sip
// persistence engine reach the kernel and read back the same: a second
// pass changes nothing (a reader that lost a field would rewrite the entry
// on every pass), and changing only the gue port is one update.
func TestTunnelsAndPE(t *testing.T) {
	inVM(t)
	h := director(t, "vigil-lb-tun")
	gue := lb.Dest{Addr: mustAddr("198.51.100.21"), Port: 80, Forward: lb.Tunnel, Weight: 1, TunType: lb.GUE, TunPort: 6080, TunCsum: lb.RemCsum}
	gre := lb.Dest{Addr: mustAddr("198.51.100.22"), Port: 80, Forward: lb.Tunnel, Weight: 2, TunType: lb.GRE, TunCsum: lb.Csum}
	desired := table(entry(tcp("203.0.113.30", 80, "wrr"), gue, gre,
		dst("198.51.100.23", 80, lb.Tunnel, 3),
		dst("2001:db8::24", 80, lb.Tunnel, 4), // IPv4 in IPv6
		dst("198.51.100.25", 80, lb.NAT, 5)))
	if out, err := exec.Command("modprobe", "ip_vs_pe_sip").CombinedOutput(); err != nil {
		t.Logf("no sip persistence engine in this kernel, not tested (modprobe ip_vs_pe_sip: %v %s)", err, out)
	} else {
		sip := lb.Service{Key: lb.ServiceKey{Protocol: lb.UDP, Addr: mustAddr("203.0.113.30"), Port: 5060}, Scheduler: "rr",
			Persistence: time.Minute, PE: "sip"}
		desired[sip.Key] = entry(sip, dst("198.51.100.21", 5060, lb.NAT, 1))
	}
	managed := keysOf(desired)
	reconcile(t, h, desired, managed)
	checkDump(t, h, "after apply", desired)
	if again := reconcile(t, h, desired, managed); len(again) != 0 {
		t.Fatalf("second pass not empty (a field does not read back):\n%s", opsString(again))
	}
	gue.TunPort = 6081
	desired[tcp("203.0.113.30", 80, "wrr").Key].Dests[gue.Key()] = gue
	ops := reconcile(t, h, desired, managed)
	if len(ops) != 1 || ops[0].Kind != lb.UpdateDest {
		t.Fatalf("changing the gue port: want one update-dest, got\n%s", opsString(ops))
	}
	t.Logf("the change: %s", ops[0])
	checkDump(t, h, "after the port change", desired)
	// Removal of the IPv6 destination names its family (the kernel looks
	// it up by family).
	delete(desired[tcp("203.0.113.30", 80, "wrr").Key].Dests, lb.DestKey{Addr: mustAddr("2001:db8::24"), Port: 80})
	if ops := reconcile(t, h, desired, managed); len(ops) != 1 || ops[0].Kind != lb.DelDest {
		t.Fatalf("removing the IPv6 destination: want one del-dest, got\n%s", opsString(ops))
	}
	checkDump(t, h, "after removing the IPv6 destination", desired)
}

// TestTunnelIPv4InIPv6Traffic sends real traffic to an IPv4 virtual
// service whose real server is IPv6, through an IPv4-in-IPv6 tunnel (a
// mixed-family destination: IPVS_DEST_ATTR_ADDR_FAMILY). The real server
// takes the packets out of its ip6tnl device (the fallback ip6tnl0 carries
// IPv6 in IPv6 only) and answers the client directly.
func TestTunnelIPv4InIPv6Traffic(t *testing.T) {
	inVM(t)
	lab := netlab.NewForTest(t, "vg46")
	add := func(name string, addrs ...string) *netlab.Node { return labNode(t, lab, name, addrs...) }
	const vip = "192.0.2.100"
	client := add("c", "192.0.2.50/24")
	dir := add("d", "192.0.2.11/24", "2001:db8::11/64")
	real := add("r", "192.0.2.24/24", "2001:db8::24/64")
	ctx := context.Background()
	run := func(n *netlab.Node, args ...string) {
		t.Helper()
		if out, err := n.Run(ctx, args[0], args[1:]...); err != nil {
			t.Fatalf("%s: %v: %v\n%s", n.Name, args, err, out)
		}
	}
	// The client reaches the VIP through the director, which has it.
	if out, err := client.IP("route", "add", vip+"/32", "via", "192.0.2.11"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := dir.IP("addr", "add", vip+"/32", "dev", "lo"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := exec.Command("modprobe", "ip6_tunnel").CombinedOutput(); err != nil {
		t.Fatalf("modprobe ip6_tunnel: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"addr", "add", vip + "/32", "dev", "lo"},
		{"link", "add", "ip6tnl1", "type", "ip6tnl", "mode", "ipip6", "local", "2001:db8::24", "remote", "any"},
		{"link", "set", "ip6tnl1", "up"},
	} {
		if out, err := real.IP(args...); err != nil {
			t.Fatalf("%s: ip %v: %v\n%s", real.Name, args, err, out)
		}
	}
	for _, k := range []string{"all", "ip6tnl1"} {
		run(real, "sysctl", "-w", "net.ipv4.conf."+k+".rp_filter=0")
	}
	for _, k := range []string{"all", "eth0"} {
		run(real, "sysctl", "-w", "net.ipv4.conf."+k+".arp_ignore=1")
		run(real, "sysctl", "-w", "net.ipv4.conf."+k+".arp_announce=2")
	}
	echoServer(t, real, vip+":80")

	h, err := ipvsnet.Open("/run/netns/" + dir.NS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	svc := entry(tcp(vip, 80, "rr"), dst("2001:db8::24", 80, lb.Tunnel, 1))
	if err := h.Apply(lb.Diff(table(svc), lb.Table{}, nil)); err != nil {
		t.Fatal(err)
	}
	checkDump(t, h, "after apply", table(svc))

	rx := func() string {
		out, err := real.Run(ctx, "cat", "/sys/class/net/ip6tnl1/statistics/rx_packets")
		if err != nil {
			t.Fatalf("ip6tnl1 counters: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	before := rx()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := client.Dial(dctx, "tcp", vip+":80")
	if err != nil {
		t.Fatalf("connect through the virtual service: %v (ip6tnl1 rx %s)", err, rx())
	}
	defer conn.Close()
	echoThrough(t, conn, "the IPv4-in-IPv6 tunnel")
	after := rx()
	b, _ := strconv.Atoi(before)
	a, _ := strconv.Atoi(after)
	if a-b < 4 { // the handshake's ACK and three messages at least
		t.Errorf("ip6tnl1 took %d packets out of the tunnel (%s -> %s), want 4 or more", a-b, before, after)
	}
}
