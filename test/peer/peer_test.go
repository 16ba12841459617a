package peer

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"vigil/test/netlab"
)

func TestRenderKeepalived(t *testing.T) {
	c := KeepalivedConf("n1", []Instance{{Name: "VI_1", VRID: 51, Priority: 100, Version: 3, Interval: 100 * time.Millisecond,
		VIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24")}, Preempt: false}})
	for _, want := range []string{"advert_int 0.1\n", "nopreempt", "virtual_router_id 51", "192.0.2.100/24 dev eth0"} {
		if !strings.Contains(c, want) {
			t.Errorf("missing %q in\n%s", want, c)
		}
	}
}

// Smoke test of the two runners: vigil (150) and keepalived (100) agree on
// a master, and a graceful stop of vigil hands the VIP to keepalived.
func TestVigilAndKeepalivedSmoke(t *testing.T) {
	lab := netlab.NewForTest(t, "vgpr")
	bin, err := VigilBinary()
	if err != nil {
		t.Fatal(err)
	}
	n1, err := lab.AddNode("n1", netip.MustParsePrefix("192.0.2.11/24"))
	if err != nil {
		t.Fatal(err)
	}
	n2, err := lab.AddNode("n2", netip.MustParsePrefix("192.0.2.12/24"))
	if err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParsePrefix("192.0.2.100/24")
	in := Instance{Name: "VI_1", VRID: 51, Version: 3, Interval: 100 * time.Millisecond, VIPs: []netip.Prefix{vip}, Preempt: true}
	in1, in2 := in, in
	in1.Priority, in2.Priority = 150, 100
	v, err := StartVigil(n1, bin, []Instance{in1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := StartKeepalived(n2, []Instance{in2}); err != nil {
		t.Fatal(err)
	}
	if err := n1.WaitAddr("eth0", vip.Addr(), true, 5*time.Second); err != nil {
		t.Fatalf("vigil never took the VIP: %v\n%s", err, v.Log())
	}
	time.Sleep(500 * time.Millisecond)
	if ok, _ := n2.HasAddr("eth0", vip.Addr()); ok {
		t.Fatal("keepalived holds the VIP too")
	}
	if err := v.Stop(5 * time.Second); err != nil {
		t.Fatalf("vigil stop: %v\n%s", err, v.Log())
	}
	if err := n2.WaitAddr("eth0", vip.Addr(), true, 2*time.Second); err != nil {
		t.Fatalf("keepalived did not take over: %v", err)
	}
	if ok, _ := n1.HasAddr("eth0", vip.Addr()); ok {
		t.Fatal("vigil left its VIP behind")
	}
}

// A unicast instance without a source leaves the choice to each implementation (primary IPv4 or
// IPv6 link-local) instead of rendering an invalid address.
func TestRenderUnicastWithoutSource(t *testing.T) {
	in := Instance{Name: "VI_1", VRID: 51, Priority: 100, Version: 3, Interval: time.Second, Preempt: true,
		VIPs:         []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24")},
		UnicastPeers: []netip.Addr{netip.MustParseAddr("192.0.2.12")}}
	k := KeepalivedConf("n1", []Instance{in})
	if strings.Contains(k, "unicast_src_ip") || !strings.Contains(k, "unicast_peer {\n    192.0.2.12\n  }") {
		t.Errorf("keepalived.conf:\n%s", k)
	}
	v := VigilYAML("n1", []Instance{in})
	if strings.Contains(v, "source") || !strings.Contains(v, "unicast: { peers: [192.0.2.12] }") {
		t.Errorf("vigil.yaml:\n%s", v)
	}
	in.UnicastSource = netip.MustParseAddr("192.0.2.11")
	if k := KeepalivedConf("n1", []Instance{in}); !strings.Contains(k, "unicast_src_ip 192.0.2.11\n") {
		t.Errorf("keepalived.conf:\n%s", k)
	}
	if v := VigilYAML("n1", []Instance{in}); !strings.Contains(v, "unicast: { source: 192.0.2.11, peers: [192.0.2.12] }") {
		t.Errorf("vigil.yaml:\n%s", v)
	}
}
