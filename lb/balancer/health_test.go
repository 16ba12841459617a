package balancer

import (
	"log/slog"
	"net/netip"
	"sync"
	"testing"

	"vigil/config"
	"vigil/lb"
	"vigil/telemetry"
)

// fakeHealth is an lb.HealthSource that is not the local checks' view (as
// a fleet-wide one will not be): verdicts set by the test.
type fakeHealth struct {
	mu      sync.Mutex
	down    map[lb.RealServerID]bool
	weight  map[lb.RealServerID]int // a dynamic weight, when set
	changed []lb.RealServerID
	changes chan struct{}
}

func newFakeHealth() *fakeHealth {
	return &fakeHealth{down: map[lb.RealServerID]bool{}, weight: map[lb.RealServerID]int{}, changes: make(chan struct{}, 1)}
}

func (h *fakeHealth) RealServer(vs string, rs lb.DestKey) (bool, int, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := lb.RealServerID{VS: vs, RS: rs}
	w, dyn := h.weight[id]
	return !h.down[id], w, dyn
}

func (h *fakeHealth) Changes() <-chan struct{} { return h.changes }

func (h *fakeHealth) Changed() []lb.RealServerID {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.changed
	h.changed = nil
	return out
}

// set gives a real server its verdict (weight 0: the configured one) and
// signals the change.
func (h *fakeHealth) set(vs, rs string, up bool, weight int) {
	ap := netip.MustParseAddrPort(rs)
	id := lb.RealServerID{VS: vs, RS: lb.DestKey{Addr: ap.Addr(), Port: ap.Port()}}
	h.mu.Lock()
	h.down[id] = !up
	if weight > 0 {
		h.weight[id] = weight
	} else {
		delete(h.weight, id)
	}
	h.changed = append(h.changed, id)
	h.mu.Unlock()
	select {
	case h.changes <- struct{}{}:
	default:
	}
}

// The balancer reads health only through its lb.HealthSource: with one
// that is not the local checks' view, a real server it marks down leaves
// the kernel's table (or drains at weight 0 with inhibit_on_failure), a
// dynamic weight it reports reaches the kernel, the quorum follows, and
// vigil status shows its verdict — all without a configured check.
func TestBalancerOtherHealth(t *testing.T) {
	c, err := config.Parse([]byte(`node: {name: lb1}
lb: {virtual_servers: [{name: web, address: "192.0.2.100:80", protocol: tcp, scheduler: wrr, quorum: 2, real_servers: [
  {address: "198.51.100.11:8080"}, {address: "198.51.100.12:8080"}, {address: "198.51.100.13:8080", inhibit_on_failure: true}]}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	h := newFakeHealth()
	var mu sync.Mutex
	var quorum []bool
	k := &memKernel{t: lb.Table{}}
	b := newBalancer(Config{Log: slog.New(slog.DiscardHandler), Metrics: telemetry.NewRegistry().LB, Health: h,
		Quorum: func(vs string, up bool, _ string) {
			mu.Lock()
			quorum = append(quorum, up)
			mu.Unlock()
		}}, k)
	if err := b.Set(c.LB); err != nil {
		t.Fatal(err)
	}
	stop := runBalancer(t, b)
	defer stop()
	web := lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}
	waitFor(t, "web with every real server", func() bool {
		return k.dests(web) == "198.51.100.11:8080/1 198.51.100.12:8080/1 198.51.100.13:8080/1 "
	})

	// r1's weight first, so the live weight never drops below quorum on
	// the way (a pass may come between two changes).
	h.set("web", "198.51.100.11:8080", true, 5)
	h.set("web", "198.51.100.12:8080", false, 0)
	h.set("web", "198.51.100.13:8080", false, 0)
	waitFor(t, "r2 removed, r3 drained, r1 at its dynamic weight", func() bool {
		return k.dests(web) == "198.51.100.11:8080/5 198.51.100.13:8080/0 "
	})
	st := b.Status()
	if len(st) != 1 || len(st[0].Reals) != 3 || !st[0].Reals[0].Up || st[0].Reals[0].Weight != 5 || st[0].Reals[1].Up || st[0].Reals[2].Up {
		t.Errorf("status: %+v", st)
	}

	h.set("web", "198.51.100.12:8080", true, 0)
	waitFor(t, "r2 back", func() bool { return k.dests(web) == "198.51.100.11:8080/5 198.51.100.12:8080/1 198.51.100.13:8080/0 " })
	mu.Lock()
	if len(quorum) != 1 || !quorum[0] {
		t.Errorf("quorum reports %v, want the start's: up", quorum)
	}
	mu.Unlock()

	// r1 down: the live weight (r2's 1) is below quorum 2.
	h.set("web", "198.51.100.11:8080", false, 0)
	waitFor(t, "r1 removed", func() bool { return k.dests(web) == "198.51.100.12:8080/1 198.51.100.13:8080/0 " })
	waitFor(t, "quorum down reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(quorum) == 2 && !quorum[1]
	})
}
