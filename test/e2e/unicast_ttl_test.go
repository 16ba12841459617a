package e2e

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/vrrp"
)

// Issue 11 item 13 (unicast adverts were accepted with any TTL) and RFC 9568 §7.1 step 1: a
// unicast advert whose TTL is below unicast.min_ttl is discarded and counted
// (vigil_vrrp_packet_errors_total{reason="ttl"}) and logged, however high its priority; the same
// advert at min_ttl is accepted and makes the master step down to BACKUP. n1 is a unicast master
// (priority 150, min_ttl 64, keepalived's IPv6 unicast hop limit) whose peer is n2; n2 runs no
// vigil and sends priority-200 adverts from a raw socket.
func TestUnicastMinTTL(t *testing.T) {
	c := newCluster(t, 2)
	startYAML(t, c, "n1", metricsConfig("n1", 150,
		", unicast: { source: 192.0.2.11, peers: [192.0.2.12], min_ttl: 64 }"))
	c.waitHolder(vip4.Addr(), "n1", mdi(3, 150, iv)+2*time.Second, 3*iv)

	n1, n2 := netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("192.0.2.12")
	a := vrrp.Advert{Version: 3, VRID: 51, Priority: 200, Interval: iv, Addrs: []netip.Addr{vip4.Addr()}}
	advert, err := a.Marshal(n2, n1, vrrp.ChecksumPseudoHeader)
	if err != nil {
		t.Fatal(err)
	}
	metrics := func() string {
		t.Helper()
		body, err := c.node("n1").HTTPGet(context.Background(), "http://127.0.0.1:9730/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return string(body)
	}
	ttlErrors := func(s string) float64 {
		return metric(t, s, "vigil_vrrp_packet_errors_total", `vrrp_instance="web"`, `reason="ttl"`)
	}

	// TTL 63: twice the master-down interval of adverts that would win, all discarded.
	const low = 20
	for range low {
		sendRaw(t, c.node("n2"), advert, n1, 63)
		time.Sleep(iv / 2)
		if hs := c.holders(vip4.Addr()); !slices.Equal(hs, []string{"n1"}) {
			t.Fatalf("a priority-200 advert with TTL 63 < min_ttl 64 was obeyed: %s held by %v\n%s", vip4.Addr(), hs, c.logs())
		}
	}
	c.waitHolder(vip4.Addr(), "n1", time.Second, 3*iv)
	s := metrics()
	// The lab is new: n1 saw no other TTL error.
	if got := ttlErrors(s); got != low {
		t.Errorf("packet_errors{reason=ttl} = %v, want %d (one per advert below min_ttl)", got, low)
	}
	if master := metric(t, s, "vigil_vrrp_instance_state", `vrrp_instance="web"`, `state="master"`); master != 1 {
		t.Errorf("n1 is not master after the low-TTL adverts:\n%s", grep(s, "vigil_vrrp_instance_state"))
	}
	if !slices.ContainsFunc(strings.Split(c.procs["n1"].Log(), "\n"), func(l string) bool {
		return strings.Contains(l, `msg="discarded VRRP packet"`) && strings.Contains(l, "reason=ttl") && strings.Contains(l, "from=192.0.2.12")
	}) {
		t.Errorf("n1 logged no TTL discard:\n%s", c.procs["n1"].LogLines(30))
	}

	// TTL 64: accepted, n1 steps down while the adverts keep coming.
	const backupFor = 10 // adverts sent after n1 released the VIP
	released := -1
	for i := 0; released < 0 || i < released+backupFor; i++ {
		if i > 40 {
			t.Fatalf("n1 still holds %s after %d priority-200 adverts with TTL 64\n%s", vip4.Addr(), i, c.logs())
		}
		sendRaw(t, c.node("n2"), advert, n1, 64)
		time.Sleep(iv / 2)
		hs := c.holders(vip4.Addr())
		switch {
		case released < 0 && len(hs) == 0:
			released = i
		case released >= 0 && len(hs) != 0:
			t.Fatalf("%s held by %v while a priority-200 master advertises\n%s", vip4.Addr(), hs, c.logs())
		}
	}
	s = metrics()
	if backup := metric(t, s, "vigil_vrrp_instance_state", `vrrp_instance="web"`, `state="backup"`); backup != 1 {
		t.Errorf("n1 is not backup under priority-200 adverts with TTL 64:\n%s", grep(s, "vigil_vrrp_instance_state"))
	}
	if got := ttlErrors(s); got != low {
		t.Errorf("packet_errors{reason=ttl} = %v after adverts at min_ttl, want still %d", got, low)
	}
	// The adverts stop: n1 takes over again after its master-down interval.
	c.waitHolder(vip4.Addr(), "n1", mdi(3, 150, iv)+time.Second, 3*iv)
}
