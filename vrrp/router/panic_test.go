package router

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"vigil/config"
	"vigil/internal/safe"
	"vigil/internal/testlog"
	"vigil/telemetry"
	"vigil/vrrp"
	"vigil/vrrp/vrrpnet"
)

// A panic while a packet runs through its instance (here: an instance
// without a state machine) is recovered with the lock released, logged
// with its stack and counted, and the node is asked to stop gracefully:
// its state can no longer be trusted (issue 11 item 7).
func TestPacketPanicStopsTheNodeCleanly(t *testing.T) {
	var logs testlog.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	n := &Router{log: log, metrics: telemetry.NewRegistry().VRRP, limiter: newLogLimiter(log, time.Second),
		failed: make(chan struct{})}
	in := &instance{cfg: &config.Instance{Name: "web", Checksum: vrrp.ChecksumPseudoHeader},
		met: n.metrics.Instance("web", 51, "eth0", 4)} // core is nil: Receive panics
	s := &sock{ifname: "eth0", family: 4, byVRID: map[uint8]*instance{51: in}}
	src := netip.MustParseAddr("192.0.2.12")
	adv := vrrp.Advert{Version: 3, VRID: 51, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.100")}}
	b, err := adv.Marshal(src, vrrp.GroupIPv4, vrrp.ChecksumPseudoHeader)
	if err != nil {
		t.Fatal(err)
	}
	before := safe.Panics("vrrp_receive")
	var d vrrp.Decoded
	n.handle(s, &d, vrrpnet.Packet{Msg: b, At: time.Now(), Rx: vrrp.RxInfo{Src: src, Dst: vrrp.GroupIPv4, TTL: 255}})
	select {
	case <-n.failed:
	default:
		t.Fatal("the node was not asked to stop after a panic on the protocol path")
	}
	if n.failErr == nil || !strings.Contains(n.failErr.Error(), "panic") {
		t.Fatalf("failErr = %v", n.failErr)
	}
	if got := safe.Panics("vrrp_receive") - before; got != 1 {
		t.Fatalf("%d panics counted, want 1", got)
	}
	if !n.mu.TryLock() {
		t.Fatal("the lock stayed held after the panic")
	}
	n.mu.Unlock()
	if out := logs.String(); !strings.Contains(out, "recovered from a panic") || !strings.Contains(out, "goroutine") {
		t.Fatalf("the panic was not logged with its stack:\n%s", out)
	}
}

// The test-only switch is off unless it names the receive path exactly;
// a set switch is logged, so it cannot go unnoticed in production logs.
func TestTestPanicSwitch(t *testing.T) {
	for _, tc := range []struct {
		env    string
		want   bool
		logged bool
	}{{"", false, false}, {"vrrp_receive", true, true}, {"vrrp_timer", false, true}} {
		t.Setenv(EnvTestPanic, tc.env)
		var logs testlog.Buffer
		if got := testPanicOnPacket(slog.New(slog.NewTextHandler(&logs, nil))); got != tc.want {
			t.Errorf("%s=%q: %v, want %v", EnvTestPanic, tc.env, got, tc.want)
		}
		if logged := strings.Contains(logs.String(), EnvTestPanic); logged != tc.logged {
			t.Errorf("%s=%q: logged %v, want %v:\n%s", EnvTestPanic, tc.env, logged, tc.logged, logs.String())
		}
	}
}
