package node

import (
	"vigil/config"
	"vigil/lb/balancer"
	"vigil/node/events"
	"vigil/vrrp"
)

// The load balancer (lb/balancer) as the node wires it: its quorum feeds
// the VRRP trackers of virtual servers, its events the node's bus, and its
// status vigil status.

// VirtualServerStatus, RealServerStatus and CheckStatus are the load
// balancer's part of vigil status.
type (
	VirtualServerStatus = balancer.VirtualServerStatus
	RealServerStatus    = balancer.RealServerStatus
	CheckStatus         = balancer.CheckStatus
)

// setLB gives the load balancer cfg's virtual servers, opening the kernel's
// IPVS table the first time a config has any. Called from New, and from
// Reload with n.mu held.
func (n *Node) setLB(cfg *config.Config) error {
	if n.lb == nil {
		if !balancer.Needed(cfg.LB) {
			return nil
		}
		log := n.log.With("component", "lb")
		checks := balancer.NewChecks(log, n.lbMetrics)
		b, err := balancer.Open(balancer.Config{Log: log, Metrics: n.lbMetrics, Checks: checks, Health: checks.View(), Quorum: n.feeds.set,
			// The bus exists before Run starts the balancer's goroutine.
			Publish: func(e events.Event) {
				if n.bus != nil {
					n.bus.Publish(e)
				}
			}})
		if err != nil {
			return err
		}
		n.lb = b
	}
	if err := n.lb.Set(cfg.LB); err != nil {
		return err
	}
	if n.lbCtx != nil {
		n.startLB()
	}
	return nil
}

// LBSettled is closed once the load balancer's first pass has applied the
// configured IPVS table (at once when there is no load balancer): the end
// of the start's work.
func (n *Node) LBSettled() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.lb == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return n.lb.Settled()
}

// startLB runs the load balancer once Run has started; n.mu is held.
func (n *Node) startLB() {
	if n.lb == nil || n.lbDone != nil {
		return
	}
	done := make(chan struct{})
	n.lbDone = done
	b, ctx := n.lb, n.lbCtx
	go func() {
		defer close(done)
		if err := b.Run(ctx); err != nil {
			n.log.Error("load balancer stopped", "err", err)
		}
	}()
}

// followSync tells the balancer when the sync daemon's instance enters or
// leaves Master; n.mu is held.
func (n *Node) followSync(in *instance, to vrrp.State) {
	if n.lb == nil || n.cfg.LB.SyncDaemon == nil || n.cfg.LB.SyncDaemon.Instance != in.cfg.Name {
		return
	}
	n.lb.SetSyncRole(to == vrrp.StateMaster)
}
