package check_test

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"vigil/lb"
	"vigil/lb/check"
)

// The integrator's wiring: set the checks from config, run the scheduler,
// recompute the IPVS table whenever health changes, and export probe
// metrics through an Observer.
func Example() {
	rs := lb.DestKey{Addr: netip.MustParseAddr("198.51.100.11"), Port: 8080}
	s := check.New(check.Config{
		Log: slog.Default(),
		Observer: check.ObserverFunc(func(t check.Type, r check.Result, took time.Duration) {
			// runs.WithLabelValues(string(t), r.String()).Inc(); duration.Observe(took.Seconds())
		}),
	})
	err := s.Set(map[check.ID]check.Check{
		"http/198.51.100.11:8080/0": {
			Owner: check.Owner{VS: "http", RS: rs},
			Spec: check.Spec{Type: check.HTTP, Target: netip.AddrPortFrom(rs.Addr, rs.Port), Path: "/healthz",
				Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3},
		},
	})
	if err != nil {
		slog.Error("checks", "err", err) // names the check, field and value
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	go func() { _ = s.Run(ctx) }()
	var health lb.Health = s.View() // or a fleet-wide view fed by s.Statuses()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.Changes():
			up, weight, dynamic := health.RealServer("http", rs)
			_, _, _ = up, weight, dynamic // recompute the desired table with lb
		}
	}
}
