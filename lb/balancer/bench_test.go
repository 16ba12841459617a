package balancer

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"vigil/config"
	"vigil/lb"
	"vigil/lb/ipvsnet"
	"vigil/telemetry"
)

// nullKernel takes every op and forgets it: the balancer's own cost, with
// no kernel behind it.
type nullKernel struct{ ops int }

func (k *nullKernel) Dump() (lb.Table, error)                  { return lb.Table{}, nil }
func (k *nullKernel) Services() (lb.Table, error)              { return lb.Table{}, nil }
func (k *nullKernel) Apply(ops []lb.Op) error                  { k.ops += len(ops); return nil }
func (k *nullKernel) StartSyncDaemon(ipvsnet.SyncDaemon) error { return nil }
func (k *nullKernel) StopSyncDaemon(ipvsnet.SyncState) error   { return nil }
func (k *nullKernel) SetTimeouts(ipvsnet.Timeouts) error       { return nil }
func (k *nullKernel) Close()                                   {}

// BenchmarkReconcileOneChange is one reconcile pass of the balancer on
// 1,000 virtual servers × 10 real servers: the start's first (everything
// added), after a reload changed one real server's weight (everything is
// compared), and after one real server's checks changed (only its virtual
// server is): desired table, diff against the known table, quorum and
// transition bookkeeping (the kernel's share not included).
func BenchmarkReconcileOneChange(b *testing.B) {
	parse := func(w int) config.LB {
		var y strings.Builder
		y.WriteString("node: {name: bench}\nlb:\n  virtual_servers:\n")
		for i := range 1000 {
			var rs []string
			for j := range 10 {
				ww := 1
				if i == 500 && j == 5 {
					ww = w
				}
				rs = append(rs, fmt.Sprintf(`{address: "198.51.100.%d:8080", weight: %d}`, j+1, ww))
			}
			fmt.Fprintf(&y, "    - {name: vs%d, address: \"192.0.2.%d:%d\", protocol: tcp, scheduler: wrr, real_servers: [%s]}\n", i, i%250+1, 1000+i/250, strings.Join(rs, ", "))
		}
		c, err := config.Parse([]byte(y.String()))
		if err != nil {
			b.Fatal(err)
		}
		return c.LB
	}
	c1, c5 := parse(1), parse(5)
	// cold is the start's first pass: the whole table added, and every
	// series, quorum and feed created.
	cold := func() (*Balancer, *nullKernel) {
		k := &nullKernel{}
		bal := testBalancer(k, telemetry.NewRegistry().LB)
		if err := bal.Set(c1); err != nil {
			b.Fatal(err)
		}
		bal.reconcile(true)
		if k.ops != 11000 {
			b.Fatalf("cold: %d ops", k.ops)
		}
		return bal, k
	}
	b.Run("start", func(b *testing.B) {
		for b.Loop() {
			cold()
		}
	})
	bal, k := cold()
	cfgs := []config.LB{c5, c1}
	next := 0 // the config to load next, across runs (-count): the other one
	b.Run("reload", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			err := bal.Set(cfgs[next])
			next = 1 - next
			if err != nil {
				b.Fatal(err)
			}
			k.ops = 0
			b.StartTimer()
			bal.reconcile(false)
			if k.ops != 1 {
				b.Fatalf("%d ops", k.ops)
			}
		}
	})
	// A pass after one real server's checks changed (the config as
	// before): only its virtual server is computed and compared. Its health
	// does not really change here, so the pass makes no op; a real change
	// adds one op.
	b.Run("health change", func(b *testing.B) {
		bal.reconcile(false)
		bal.mu.Lock()
		specs, byName, q, managed := bal.specs, bal.byName, bal.quorum, bal.managedFunc()
		bal.mu.Unlock()
		owner := []lb.RealServerID{{VS: "vs500", RS: specs[500].Reals[5].Key()}}
		k.ops = 0
		for b.Loop() {
			bal.reconcileChanged(specs, byName, q, managed, owner, time.Now())
		}
		if k.ops != 0 {
			b.Fatalf("%d ops", k.ops)
		}
	})
}
