package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"vigil/test/netlab"
	"vigil/vrrp"
	"vigil/vrrp/router"
)

// Issue 11 item 7: a panic on a master's packet path must not end the
// process with the VIPs held: the master resigns (a priority-0 advert, its
// VIPs removed) and exits with status 1, and the backup takes over one
// Skew_Time after the priority-0 advert, not a Master_Down_Interval after
// the last advert. Nothing a peer can send makes a real daemon panic, so
// the test-only switch router.EnvTestPanic makes the first packet n1 reads
// panic; n3 sends that packet, a valid lower-priority advert.
func TestPanicMakesMasterResign(t *testing.T) {
	c := newCluster(t, 3)
	c.nodes = c.nodes[:2] // n1 and n2 may hold the VIP; n3 only sends
	const interval = time.Second
	cfg := func(name string, prio int) string {
		return writeConfig(t, c, name, fmt.Sprintf(`node: { name: %s }
telemetry: { listen: "" }
vrrp:
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: %d, advert_interval: 1s, vips: [192.0.2.100/24] }
`, name, prio))
	}
	p1, err := c.node("n1").StartWith(netlab.StartOptions{Env: []string{router.EnvTestPanic + "=vrrp_receive"}},
		c.bin, "run", "--config", cfg("n1", 150), "--admin-socket", adminSock(c, "n1"))
	if err != nil {
		t.Fatal(err)
	}
	c.procs["n1"] = p1
	c.waitHolder(vip4.Addr(), "n1", mdi(3, 150, interval)+2*time.Second, 0)
	startConfig(t, c, "n2", cfg("n2", 100))
	waitLog(t, c, "n2", "to=backup", 5*time.Second)
	time.Sleep(interval + interval/2) // n2 has heard n1: its Master_Down_Timer runs from n1's adverts
	if p1.Exited() {
		t.Fatalf("n1 stopped before the packet:\n%s", p1.LogLines(20))
	}

	adv := vrrp.Advert{Version: 3, VRID: 51, Priority: 50, Interval: interval, Addrs: []netip.Addr{vip4.Addr()}}
	msg, err := adv.Marshal(netip.MustParseAddr("192.0.2.13"), vrrp.GroupIPv4, vrrp.ChecksumPseudoHeader)
	if err != nil {
		t.Fatal(err)
	}
	sendRaw(t, c.node("n3"), msg, vrrp.GroupIPv4, 255)
	took := c.waitHolder(vip4.Addr(), "n2", mdi(3, 100, interval), 0)

	log := waitFailed(t, p1, "recovered from a panic")
	for _, want := range []string{"component=vrrp_receive", "goroutine", "resigning", "from=master to=init"} {
		if !strings.Contains(log, want) {
			t.Errorf("n1's log lacks %q:\n%s", want, p1.LogLines(30))
		}
	}
	if ok, err := c.node("n1").HasAddr("eth0", vip4.Addr()); err != nil || ok {
		t.Errorf("n1 still holds the VIP (%v)", err)
	}

	// On the wire: n1's priority-0 advert, then n2's first advert one
	// Skew_Time later, well before a Master_Down_Interval.
	c.zeroHandover(100, interval)
	t.Logf("packet → VIP on n2 in %s (Master_Down_Interval %s)", took, mdi(3, 100, interval))
}
