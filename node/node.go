// Package node is vigil's composition root: it builds the running node
// from a compiled configuration, wires the VRRP driver (vrrp/router) and
// the load balancer together, and owns their lifecycle, reloads and status.
package node

import (
	"context"
	"go.opentelemetry.io/otel/trace"
	"log/slog"
	"net/netip"
	"reflect"
	"sync"
	"time"

	"vigil/config"
	"vigil/gossip"
	"vigil/internal/buildinfo"
	"vigil/lb/balancer"
	"vigil/lb/check"
	"vigil/telemetry"
	"vigil/vrrp"
	"vigil/vrrp/router"
)

// Node is one running vigil.
type Node struct {
	log    *slog.Logger
	router *router.Router

	// mu guards the load balancer's wiring. The router calls its hooks
	// with its own lock held, so mu is always taken after it, never
	// before.
	mu sync.Mutex
	// cfg is the configuration the load balancer runs.
	cfg *config.Config
	// The load balancer: nil until a config has virtual servers. It runs
	// under lbCtx, which ends after VRRP has shut down.
	lb        *balancer.Balancer
	lbMetrics *telemetry.LB
	lbCtx     context.Context
	stopLB    context.CancelFunc
	lbDone    chan struct{}
	// checks are the local health checks: made with the balancer, or
	// before it when the fleet needs them for its health view.
	checks *check.Scheduler

	// fleet is the gossip fleet (fleet.go); nil without a gossip section.
	fleet *fleet
	// drainMu serialises drains and undrains (handoff.go).
	drainMu sync.Mutex
	// tracer makes the load balancer's realserver.transition spans.
	tracer trace.Tracer
}

// Options are the optional dependencies of a Node.
type Options struct {
	Logger  *slog.Logger
	Metrics *telemetry.Registry
}

// The VRRP side's reports and status, under the names the CLI and the
// admin API use.
type (
	ReloadReport   = router.ReloadReport
	VSChanges      = router.VSChanges
	InstanceStatus = router.InstanceStatus
	TrackerStatus  = router.TrackerStatus
	VIPStatus      = router.VIPStatus
)

// New prepares a node: it resolves interfaces and source addresses, opens
// the sockets, removes addresses a crashed earlier run left behind and
// builds the load balancer's checks. It fails, naming the instance and
// interface, if anything needed is missing.
func New(cfg *config.Config, opts Options) (*Node, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	reg := opts.Metrics
	if reg == nil {
		reg = telemetry.NewRegistry()
	}
	n := &Node{log: log, lbMetrics: reg.LB, tracer: reg.Tracer}
	drained := startsDrained(cfg)
	if drained {
		log.Warn("this node is drained (vigil drain): every instance runs at the lowest priority until vigil undrain")
	}
	r, err := router.New(cfg, router.Options{Logger: log, Metrics: reg, Drained: drained, Hooks: router.Hooks{
		Prepare:      n.prepare,
		Started:      n.startLB,
		StateChanged: n.stateChanged,
		Links:        n.transitionLinks,
		Released:     n.omega,
		Stopped:      n.stopBalancer,
	}})
	if err != nil {
		return nil, err
	}
	n.router = r
	if cfg.Gossip != nil {
		n.checks = balancer.NewChecks(log.With("component", "lb"), n.lbMetrics)
		f, err := newFleet(cfg, log, reg, n.checks)
		if err != nil {
			r.Abandon()
			return nil, err
		}
		f.router = r
		f.cfgs.apply = n.Reload
		f.serve = n.serve
		n.fleet = f
	}
	if err := n.setLB(cfg); err != nil {
		n.closeLB()
		n.closeFleet()
		r.Abandon()
		return nil, err
	}
	return n, nil
}

// prepare is the router's Prepare hook: the load balancer's part of a
// reload, then the fleet's (which cannot fail).
func (n *Node) prepare(next *config.Config) error {
	if err := n.setLB(next); err != nil {
		return err
	}
	if n.fleet != nil {
		if gossipChanged(n.fleet.gossipConfig(), next.Gossip) {
			n.log.Warn("gossip settings changed: restart vigil to apply them; the fleet runs on the old ones")
		}
		n.fleet.setConfig(next)
	}
	return nil
}

// gossipChanged compares gossip sections but their keys: the running
// keyring is the fleet's (vigil gossip keys rewrites the file), so a file
// with other keys is no change to report.
func gossipChanged(a, b *config.Gossip) bool {
	if a == nil || b == nil {
		return a != b
	}
	x, y := *a, *b
	x.Keys, y.Keys = nil, nil
	return !reflect.DeepEqual(x, y)
}

// transitionLinks is the router's Links hook: with the fleet, a new
// master's span links to the previous master's last transition.
func (n *Node) transitionLinks(instance string, prev netip.Addr) []trace.Link {
	if n.fleet == nil {
		return nil
	}
	return n.fleet.transitionLinks(instance, prev)
}

// stateChanged is the router's StateChanged hook.
func (n *Node) stateChanged(cfg *config.Config, instance string, to vrrp.State) {
	n.followSync(cfg, instance, to)
	if n.fleet != nil {
		n.fleet.poke()
	}
}

// Run starts every instance and the load balancer and runs until ctx
// ends; then it stops gracefully: masters send priority 0 and remove their
// addresses, then the virtual services go.
func (n *Node) Run(ctx context.Context) error {
	defer n.closeLB()
	if n.fleet == nil {
		return n.router.Run(ctx)
	}
	// The fleet stops after VRRP: masters resign on the wire first, and
	// the others see this node's instances leave MASTER before it leaves
	// the fleet.
	fctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.fleet.run(fctx, n.fleetView)
	}()
	err := n.router.Run(ctx)
	n.fleet.publish(time.Now(), n.fleetView(), false)
	stop()
	<-done
	return err
}

// fleetView is what the fleet publishes of this node.
func (n *Node) fleetView() statusView {
	r := n.router.Status()
	return statusView{hash: r.Config.Hash, instances: r.Instances, drained: r.Drained}
}

// closeFleet stops a fleet that never ran.
func (n *Node) closeFleet() {
	if n.fleet != nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = n.fleet.cl.Run(ctx)
	}
}

// Members is `vigil members`: every member the fleet knows.
func (n *Node) Members() ([]MemberStatus, error) {
	if n.fleet == nil {
		return nil, ErrNoFleet
	}
	return n.fleet.memberStatus(time.Now()), nil
}

// FleetStatus is `vigil status --fleet`.
func (n *Node) FleetStatus() (FleetStatus, error) {
	if n.fleet == nil {
		return FleetStatus{}, ErrNoFleet
	}
	return n.fleet.status(), nil
}

// PushConfig validates a fleet document for every node it names, numbers
// it one above the highest version this node has seen and announces it to
// the fleet (vigil config push). ifVersion, when not 0, must be that
// highest version. sig is its signature ("" unsigned): with trusted keys
// in the local file, one by them is required (ErrPushSignature). plan is
// how it rolls out (canaries, order).
func (n *Node) PushConfig(ctx context.Context, doc []byte, sig, pushedBy string, ifVersion uint64, plan gossip.RolloutPlan) (config.FleetVersion, error) {
	if n.fleet == nil {
		return config.FleetVersion{}, ErrNoFleet
	}
	return n.fleet.cfgs.push(ctx, doc, sig, pushedBy, ifVersion, plan)
}

// ConfigHistory returns the fleet versions this node applied, oldest
// first (vigil config history).
func (n *Node) ConfigHistory() ([]config.FleetEntry, error) {
	if n.fleet == nil {
		return nil, ErrNoFleet
	}
	return n.fleet.cfgs.history()
}

// RollbackConfig pushes again, as a new version, the document of fleet
// version v from this node's history (0: the one before the applied one).
func (n *Node) RollbackConfig(ctx context.Context, v uint64, pushedBy string, plan gossip.RolloutPlan) (config.FleetVersion, error) {
	if n.fleet == nil {
		return config.FleetVersion{}, ErrNoFleet
	}
	return n.fleet.cfgs.rollback(ctx, v, pushedBy, plan)
}

// GossipKeys runs a fleet-wide keyring operation: op is list, install, use
// or remove; key a base64 key (not for list).
func (n *Node) GossipKeys(ctx context.Context, op, key string) ([]gossip.KeyResult, error) {
	if n.fleet == nil {
		return nil, ErrNoFleet
	}
	return n.fleet.keys(ctx, op, key)
}

// Reload applies a new configuration, all or nothing (router.Reload): the
// load balancer's part is the last step of the preparation.
func (n *Node) Reload(next *config.Config) (ReloadReport, error) {
	return n.router.Reload(next)
}

// Unchanged is the report of a reload that finds the running
// configuration's file as it was (same hash): everything unchanged.
func (n *Node) Unchanged() ReloadReport { return n.router.Unchanged() }

// Alive reports whether the node's VRRP event loop answers, bounded by
// ctx (the systemd watchdog's check).
func (n *Node) Alive(ctx context.Context) error { return n.router.Alive(ctx) }

// Status is a snapshot of the running node, the document behind `vigil
// status` and the admin API. Field names are the stable JSON keys.
type Status struct {
	Node       string    `json:"node"`
	Version    string    `json:"version"`
	Revision   string    `json:"revision,omitempty"`
	ConfigPath string    `json:"config_path"`
	ConfigHash string    `json:"config_hash"`
	StartedAt  time.Time `json:"started_at"`
	// Drained: vigil drain holds every instance at the lowest priority.
	Drained   bool             `json:"drained,omitempty"`
	Instances []InstanceStatus `json:"instances"`
	// VirtualServers are the lb virtual servers with their real servers'
	// health, in configuration order.
	VirtualServers []VirtualServerStatus `json:"virtual_servers,omitempty"`
}

// Status returns a snapshot of the node. It is safe to call while Run runs.
func (n *Node) Status() Status {
	r := n.router.Status()
	bi := buildinfo.Get()
	st := Status{Node: r.Config.Node.Name, Version: bi.Version, Revision: bi.Revision, ConfigPath: r.Config.Path,
		ConfigHash: r.Config.Hash, StartedAt: r.StartedAt, Instances: r.Instances, Drained: r.Drained}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.lb != nil {
		st.VirtualServers = n.lb.Status()
	}
	return st
}
