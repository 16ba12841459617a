package ipvssmoke

import (
	"fmt"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/ipvs"
)

// ipvsSvcHashed is IP_VS_SVC_F_HASHED: the kernel sets it on every service
// in its table and reports it in dumps (ipvsadm masks it out), so a dumped
// service never has Flags 0.
const ipvsSvcHashed = 0x0002

func newHandle(t *testing.T, netnsPath string) *ipvs.Handle {
	t.Helper()
	// moby/ipvs "works" on a kernel without IPVS until the first call, so
	// check the kernel first for a clear failure.
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		t.Fatalf("kernel has no IPVS: %v", err)
	}
	h, err := ipvs.New(netnsPath)
	if err != nil {
		t.Fatalf("ipvs.New(%q): %v", netnsPath, err)
	}
	t.Cleanup(h.Close)
	return h
}

// norm makes dumped and expected values comparable with reflect.DeepEqual:
// the dump returns IPv4 addresses in 4-byte form, net.ParseIP in 16-byte.
func normSvc(s ipvs.Service) ipvs.Service         { s.Address = s.Address.To16(); return s }
func normDst(d ipvs.Destination) ipvs.Destination { d.Address = d.Address.To16(); return d }

// findService returns the services of one GetServices dump that match s's
// protocol, address and port.
func findService(t *testing.T, h *ipvs.Handle, s *ipvs.Service) []*ipvs.Service {
	t.Helper()
	all, err := h.GetServices()
	if err != nil {
		t.Fatalf("GetServices: %v", err)
	}
	var found []*ipvs.Service
	for _, g := range all {
		if g.Protocol == s.Protocol && g.Port == s.Port && g.Address.Equal(s.Address) {
			found = append(found, g)
		}
	}
	return found
}

func dumpDests(t *testing.T, h *ipvs.Handle, s *ipvs.Service) []ipvs.Destination {
	t.Helper()
	ds, err := h.GetDestinations(s)
	if err != nil {
		t.Fatalf("GetDestinations: %v", err)
	}
	out := make([]ipvs.Destination, len(ds))
	for i, d := range ds {
		out[i] = normDst(*d)
	}
	slices.SortFunc(out, func(a, b ipvs.Destination) int { return strings.Compare(a.Address.String(), b.Address.String()) })
	return out
}

func readProc(t *testing.T) map[string]*procService {
	t.Helper()
	b, err := os.ReadFile("/proc/net/ip_vs")
	if err != nil {
		t.Fatalf("read /proc/net/ip_vs: %v", err)
	}
	return parseProcIPVS(t, string(b))
}

func TestIPVSServiceLifecycle(t *testing.T) {
	inVM(t)
	h := newHandle(t, "")

	svc := &ipvs.Service{
		AddressFamily: syscall.AF_INET,
		Protocol:      syscall.IPPROTO_TCP,
		Address:       net.ParseIP("192.0.2.100"),
		Port:          80,
		SchedName:     "rr",
		Netmask:       0xffffffff,
	}
	d1 := &ipvs.Destination{
		AddressFamily:   syscall.AF_INET,
		Address:         net.ParseIP("198.51.100.11"),
		Port:            8080,
		Weight:          1,
		ConnectionFlags: ipvs.ConnectionFlagMasq,
	}
	// The second uses direct routing and connection thresholds, so the dump
	// is checked for non-zero forwarding and threshold fields as well.
	d2 := &ipvs.Destination{
		AddressFamily:   syscall.AF_INET,
		Address:         net.ParseIP("198.51.100.12"),
		Port:            8080,
		Weight:          2,
		ConnectionFlags: ipvs.ConnectionFlagDirectRoute,
		UpperThreshold:  100,
		LowerThreshold:  10,
	}
	if err := h.NewService(svc); err != nil {
		t.Fatalf("NewService: %v", err)
	}
	t.Cleanup(func() { h.DelService(svc) })
	for _, d := range []*ipvs.Destination{d1, d2} {
		if err := h.NewDestination(svc, d); err != nil {
			t.Fatalf("NewDestination %v: %v", d.Address, err)
		}
	}

	// One dump of services, one of destinations: every field as set, with
	// the kernel's HASHED flag and zero counters (no traffic yet).
	got := findService(t, h, svc)
	if len(got) != 1 {
		t.Fatalf("GetServices: %d services for 192.0.2.100:80/tcp, want 1", len(got))
	}
	wantSvc := normSvc(*svc)
	wantSvc.Flags = ipvsSvcHashed
	if g := normSvc(*got[0]); !reflect.DeepEqual(g, wantSvc) {
		t.Fatalf("dumped service:\n got  %+v\n want %+v", g, wantSvc)
	}
	wantDests := []ipvs.Destination{normDst(*d1), normDst(*d2)}
	if g := dumpDests(t, h, got[0]); !reflect.DeepEqual(g, wantDests) {
		t.Fatalf("dumped destinations:\n got  %+v\n want %+v", g, wantDests)
	}
	checkProc(t, "after create", map[string]string{
		"TCP C0000264:0050": "rr [C633640B:1F90 Masq 1 C633640C:1F90 Route 2]",
	})

	// Update one weight: only that field changes.
	d1.Weight = 5
	if err := h.UpdateDestination(svc, d1); err != nil {
		t.Fatalf("UpdateDestination: %v", err)
	}
	wantDests[0].Weight = 5
	if g := dumpDests(t, h, svc); !reflect.DeepEqual(g, wantDests) {
		t.Fatalf("destinations after weight update:\n got  %+v\n want %+v", g, wantDests)
	}
	checkProc(t, "after weight update", map[string]string{
		"TCP C0000264:0050": "rr [C633640B:1F90 Masq 5 C633640C:1F90 Route 2]",
	})

	// Delete a destination, then the service.
	if err := h.DelDestination(svc, d2); err != nil {
		t.Fatalf("DelDestination: %v", err)
	}
	if g := dumpDests(t, h, svc); !reflect.DeepEqual(g, wantDests[:1]) {
		t.Fatalf("destinations after delete:\n got  %+v\n want %+v", g, wantDests[:1])
	}
	if err := h.DelService(svc); err != nil {
		t.Fatalf("DelService: %v", err)
	}
	if got := findService(t, h, svc); len(got) != 0 {
		t.Fatalf("service still dumped after DelService: %+v", got[0])
	}
	checkProc(t, "after delete", map[string]string{})
}

// checkProc compares /proc/net/ip_vs with want: "PROTO ADDR:PORT" ->
// "sched [dest fwd weight ...]". The kernel's own text view is checked so a
// netlink encoding bug shared by our writes and dumps cannot hide.
func checkProc(t *testing.T, when string, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for k, s := range readProc(t) {
		got[k] = fmt.Sprintf("%s %v", s.sched, s.dests)
	}
	if !reflect.DeepEqual(got, want) {
		b, _ := os.ReadFile("/proc/net/ip_vs")
		t.Fatalf("/proc/net/ip_vs %s:\n got  %v\n want %v\n%s", when, got, want, b)
	}
}

// TestIPVSPerNamespace proves each network namespace has its own IPVS
// table, which the scenarios rely on to run several directors in one VM.
func TestIPVSPerNamespace(t *testing.T) {
	inVM(t)
	root := newHandle(t, "")
	addNetns(t, "vigil-ipvs")
	h := newHandle(t, "/run/netns/vigil-ipvs")

	svc := &ipvs.Service{
		AddressFamily: syscall.AF_INET,
		Protocol:      syscall.IPPROTO_UDP,
		Address:       net.ParseIP("203.0.113.10"),
		Port:          53,
		SchedName:     "wrr",
		Netmask:       0xffffffff,
	}
	if err := h.NewService(svc); err != nil {
		t.Fatalf("NewService in netns: %v", err)
	}
	if got := findService(t, h, svc); len(got) != 1 {
		t.Fatalf("netns dump: %d services for 203.0.113.10:53/udp, want 1", len(got))
	}
	if got := findService(t, root, svc); len(got) != 0 {
		t.Fatalf("service created in netns vigil-ipvs shows in the root namespace: %+v", got[0])
	}
	// The namespace's own /proc view (ip netns exec runs cat inside it).
	out := run(t, ipCmd, "netns", "exec", "vigil-ipvs", "cat", "/proc/net/ip_vs")
	if svcs := parseProcIPVS(t, out); svcs["UDP CB00710A:0035"] == nil {
		t.Fatalf("/proc/net/ip_vs in vigil-ipvs lacks UDP CB00710A:0035:\n%s", out)
	}
	if err := h.DelService(svc); err != nil {
		t.Fatalf("DelService in netns: %v", err)
	}
}
