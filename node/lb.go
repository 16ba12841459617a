package node

import (
	"context"

	"vigil/config"
	"vigil/lb"
	"vigil/lb/balancer"
	"vigil/vrrp"
)

// The load balancer (lb/balancer) as the node wires it: its quorum feeds
// the VRRP trackers of virtual servers, its events the router's bus, and
// its status vigil status.

// VirtualServerStatus, RealServerStatus and CheckStatus are the load
// balancer's part of vigil status.
type (
	VirtualServerStatus = balancer.VirtualServerStatus
	RealServerStatus    = balancer.RealServerStatus
	CheckStatus         = balancer.CheckStatus
)

// setLB gives the load balancer cfg's virtual servers, opening the kernel's
// IPVS table the first time a config has any. Called from New, and from
// a reload as the router's Prepare hook.
func (n *Node) setLB(cfg *config.Config) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.lb == nil {
		if !balancer.Needed(cfg.LB) {
			n.cfg = cfg
			return nil
		}
		log := n.log.With("component", "lb")
		if n.checks == nil {
			n.checks = balancer.NewChecks(log, n.lbMetrics)
		}
		// The table is built from the local checks' view, or with a fleet
		// from the fleet's view of every director's checks.
		var health lb.HealthSource = n.checks.View()
		var digest func(string)
		quorum := n.router.SetVirtualServer
		if n.fleet != nil {
			health, digest = n.fleet.view, n.fleet.setDigest
			// A canary below quorum holds a rollout back (issue 14).
			quorum = func(vs string, up bool, detail string) {
				n.router.SetVirtualServer(vs, up, detail)
				n.fleet.cfgs.noteQuorum(vs, up)
			}
		}
		b, err := balancer.Open(balancer.Config{Log: log, Metrics: n.lbMetrics, Checks: n.checks, Health: health,
			Quorum: quorum, Publish: n.router.Publish, Digest: digest, Tracer: n.tracer})
		if err != nil {
			return err
		}
		n.lb = b
	}
	if err := n.lb.Set(cfg.LB); err != nil {
		return err
	}
	n.cfg = cfg
	if n.lbCtx != nil {
		n.runLB()
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

// startLB runs the load balancer once the router has started its
// instances (router hook).
func (n *Node) startLB() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lbCtx, n.stopLB = context.WithCancel(context.Background())
	n.runLB()
}

// runLB starts the balancer's goroutine unless it runs; n.mu is held.
func (n *Node) runLB() {
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
// leaves Master (router hook: the router's lock is held).
func (n *Node) followSync(cfg *config.Config, instance string, to vrrp.State) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.lb == nil || cfg.LB.SyncDaemon == nil || cfg.LB.SyncDaemon.Instance != instance {
		return
	}
	n.lb.SetSyncRole(to == vrrp.StateMaster)
}

// omega makes the virtual servers with omega report themselves down
// (router hook, at shutdown once the VIPs are released).
func (n *Node) omega() {
	n.mu.Lock()
	bal, cfg := n.lb, n.cfg
	n.mu.Unlock()
	if bal != nil {
		bal.Omega(cfg.LB.VirtualServers)
	}
}

// stopBalancer ends the balancer's run and waits for it (router hook, the
// last step of a stop).
func (n *Node) stopBalancer() {
	n.mu.Lock()
	stop, done := n.stopLB, n.lbDone
	n.mu.Unlock()
	if stop != nil {
		stop()
	}
	if done != nil {
		<-done
	}
}

// closeLB ends the balancer's context and releases a balancer that was
// built but never run.
func (n *Node) closeLB() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopLB != nil {
		n.stopLB()
	}
	if n.lb != nil && n.lbDone == nil {
		n.lb.Close()
	}
}
