// Package balancer keeps the kernel's IPVS table equal to what the
// configuration and the real servers' health ask for.
package balancer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"vigil/config"
	"vigil/internal/safe"
	"vigil/lb"
	"vigil/lb/check"
	"vigil/lb/ipvsnet"
	"vigil/telemetry"
	"vigil/telemetry/events"
)

// ipvsKernel is the kernel's IPVS table as the load balancer uses it
// (lb/ipvsnet; a fake in unit tests).
type ipvsKernel interface {
	Dump() (lb.Table, error)
	// Services is Dump without destinations (cheaper by a request per
	// service).
	Services() (lb.Table, error)
	Apply(ops []lb.Op) error
	StartSyncDaemon(d ipvsnet.SyncDaemon) error
	StopSyncDaemon(state ipvsnet.SyncState) error
	SetTimeouts(t ipvsnet.Timeouts) error
	Close()
}

// resync is how often the table is compared with the kernel even when
// nothing changed, so an entry someone else removed or altered comes back.
const resync = 30 * time.Second

// Balancer keeps the kernel's IPVS table equal to what the config and the
// real servers' health ask for: lb.Desired → one dump → lb.Diff → apply.
// It runs on its own goroutine, independent of VRRP; a virtual server's
// quorum reaches VRRP through Config.Quorum.
type Balancer struct {
	log     *slog.Logger
	kernel  ipvsKernel
	checks  *check.Scheduler
	health  lb.HealthSource
	quorumf func(vs string, up bool, detail string)
	metrics *telemetry.LB

	mu    sync.Mutex
	specs []lb.VirtualServer
	// managed are the services vigil answers for: those of the current
	// config plus those of earlier configs (or of an earlier run, from
	// stateFile) not yet removed from the kernel. Everything else in the
	// kernel is left alone, unless foreign is config.ForeignRemove.
	managed map[lb.ServiceKey]bool
	// stateFile keeps managed across restarts ("" = not kept); saved is
	// what it holds now.
	stateFile string
	saved     map[lb.ServiceKey]bool
	// onStop and foreign are lb.on_stop and lb.foreign_services.
	onStop, foreign string
	// timeouts are the IPVS connection timeouts to set (zero: leave them);
	// timeoutsApplied is what the kernel was last given.
	timeouts        ipvsnet.Timeouts
	timeoutsApplied ipvsnet.Timeouts
	quorum          lb.QuorumState
	// syncd is the connection-sync daemon's config (nil: none) and
	// syncMaster whether its VRRP instance is master; syncApplied is what
	// the kernel runs now.
	syncd       *config.SyncDaemon
	syncMaster  bool
	syncApplied string

	// known is the kernel table as vigil last left it (nil: unknown, read
	// it); only the balancer's goroutine touches it.
	known lb.Table
	// rsUp is each real server's combined check state at the last pass
	// and its transitions; the balancer's goroutine changes it, scrapes
	// read it, under rsMu.
	rsMu sync.Mutex
	rsUp map[rsID]rsTrack
	// initNotifies: real servers first seen up are reported too (lb
	// rs_init_notifies); b.mu.
	initNotifies bool
	// byName indexes specs by name; reloaded says a Set came since the
	// last pass, which then compares everything.
	byName   map[string]int
	reloaded bool
	// lastSpecs are the specs of the last pass: while they stay the same
	// (no reload), the per-server bookkeeping only looks at changes.
	lastSpecs []lb.VirtualServer
	// quorumSeries are the quorum series exported (by their joined labels),
	// to drop those a reload removes; only the balancer's goroutine
	// touches it.
	quorumSeries map[string][]string
	// stats reads the counters for /metrics (nil: not exported).
	stats statsReader
	// publish is Config.Publish, digestf Config.Digest.
	publish func(events.Event)
	digestf func(string)

	kick   chan struct{}
	resync time.Duration

	// settled is closed once a pass has brought the kernel to the desired
	// table (the start's big apply is over).
	settled     chan struct{}
	settledOnce sync.Once

	// ha_suspend (suspend.go), under mu: the addresses of each virtual
	// server that asks for it, the host's addresses, and the virtual
	// servers whose checks are suspended now.
	haSuspend map[string][]netip.Addr
	local     map[localAddr]bool
	suspended map[string]bool
	// tracer and view: the realserver.transition spans (trace.go), and
	// which health view the table follows ("local" checks or the "fleet").
	tracer trace.Tracer
	view   string
}

// Config is what a balancer is built from besides the lb section of the
// configuration (see [Balancer.Set]).
type Config struct {
	Log     *slog.Logger
	Metrics *telemetry.LB
	// Checks are the local health checks, which the balancer configures
	// from the lb section and runs (nil: [NewChecks]).
	Checks *check.Scheduler
	// Health is what the balancer builds the table from (nil: the local
	// view, Checks.View()).
	Health lb.HealthSource
	// Quorum reports a virtual server's quorum when it changes (the VRRP
	// trackers of virtual servers); nil drops it.
	Quorum func(vs string, up bool, detail string)
	// Publish sends virtual and real server changes to the event bus
	// (notify scripts, the FIFO); nil drops them.
	Publish func(events.Event)
	// Digest, when set, gets the digest (lb.TableDigest) of the desired
	// table's services after each pass that leaves the kernel as desired,
	// from the balancer's goroutine: the fleet compares directors' tables.
	Digest func(string)
	// Tracer makes the realserver.transition spans (nil: none).
	Tracer trace.Tracer
}

// NewChecks returns the local health checks, their probes counted in m.
func NewChecks(log *slog.Logger, m *telemetry.LB) *check.Scheduler {
	return check.New(check.Config{Log: log.With("component", "checker"), Observer: check.ObserverFunc(func(t check.Type, r check.Result, took time.Duration) {
		m.CheckProbed(string(t), r.String(), took)
	})})
}

func newBalancer(c Config, kernel ipvsKernel) *Balancer {
	b := &Balancer{log: c.Log, kernel: kernel, checks: c.Checks, health: c.Health, quorumf: c.Quorum, publish: c.Publish, digestf: c.Digest, metrics: c.Metrics,
		managed: map[lb.ServiceKey]bool{}, saved: map[lb.ServiceKey]bool{},
		onStop: config.OnStopRemove, foreign: config.ForeignKeep, kick: make(chan struct{}, 1), resync: resync, settled: make(chan struct{}),
		local: map[localAddr]bool{}}
	if b.checks == nil {
		b.checks = NewChecks(c.Log, c.Metrics)
	}
	if b.health == nil {
		b.health = b.checks.View()
	}
	b.view = "local"
	if c.Health != nil {
		b.view = "fleet"
	}
	b.tracer = c.Tracer
	if b.tracer == nil {
		b.tracer = noop.NewTracerProvider().Tracer("vigil")
	}
	return b
}

// Open opens the kernel's IPVS table, with a clear error when the kernel
// has none (moby/ipvs would appear to work), and takes over the services
// an earlier run recorded. Run releases it at its end; Close one that
// never runs.
func Open(c Config) (*Balancer, error) {
	if err := ipvsnet.Available(); err != nil {
		return nil, fmt.Errorf("lb: %w", err)
	}
	h, err := ipvsnet.Open("")
	if err != nil {
		return nil, fmt.Errorf("lb: open IPVS: %w", err)
	}
	sh, err := ipvsnet.Open("")
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("lb: open IPVS for metrics: %w", err)
	}
	b := newBalancer(c, h)
	b.stats = sh
	b.remember(managedStateFile())
	c.Metrics.SetIPVSSource(b.metricsSnapshot, c.Log)
	return b, nil
}

// Close releases the kernel's IPVS table of a balancer that never ran.
func (b *Balancer) Close() { b.kernel.Close() }

// Settled is closed once a pass has brought the kernel to the desired
// table: the end of the start's work.
func (b *Balancer) Settled() <-chan struct{} { return b.settled }

// Needed reports whether the lb section asks vigil to touch IPVS, or an
// earlier run left services to clean up.
func Needed(c config.LB) bool {
	if len(c.VirtualServers) > 0 || c.SyncDaemon != nil || c.ForeignServices == config.ForeignRemove || c.Timeouts != (config.Timeouts{}) {
		return true
	}
	if ipvsnet.Available() != nil {
		return false // nothing to clean up, and no reason to fail the start
	}
	prev, err := loadManaged(managedStateFile())
	return err == nil && len(prev) > 0
}

// remember keeps the managed set in path across restarts, taking over the
// services an earlier run recorded there: a service dropped from the
// config while vigil was stopped is removed at the next start. An
// unreadable file is logged and ignored (those services are then left
// alone, as foreign ones).
func (b *Balancer) remember(path string) {
	prev, err := loadManaged(path)
	if err != nil {
		b.log.Warn("ignoring the record of managed IPVS services", "err", err)
		prev = map[lb.ServiceKey]bool{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stateFile, b.saved = path, prev
	maps.Copy(b.managed, prev)
	if len(prev) > 0 {
		b.log.Info("IPVS services of an earlier run", "services", len(prev), "file", path)
	}
}

// saveManaged records the managed set when it changed; b.mu is held.
func (b *Balancer) saveManaged() {
	if b.stateFile == "" || maps.Equal(b.managed, b.saved) {
		return
	}
	if err := saveManaged(b.stateFile, b.managed); err != nil {
		b.log.Warn("recording the managed IPVS services", "err", err)
		return
	}
	b.saved = maps.Clone(b.managed)
}

// Set installs a config's lb section, all or nothing: the checks are
// built and validated before anything is replaced (a refusal leaves the
// balancer as it was); checks of unchanged targets keep their state, and
// the next reconcile converges the table.
func (b *Balancer) Set(c config.LB) error {
	checks := map[check.ID]check.Check{}
	specs := make([]lb.VirtualServer, 0, len(c.VirtualServers))
	haSuspend := map[string]bool{}
	for _, vs := range c.VirtualServers {
		specs = append(specs, vs.Spec)
		if vs.HASuspend {
			haSuspend[vs.Spec.Name] = true
		}
		for i, rs := range vs.Reals {
			owner := check.Owner{VS: vs.Spec.Name, RS: vs.Spec.Reals[i].Key()}
			for j, c := range rs.Checks {
				id := check.ID(fmt.Sprintf("%s/%s/%d", vs.Spec.Name, netip.AddrPortFrom(owner.RS.Addr, owner.RS.Port), j))
				checks[id] = check.Check{Owner: owner, Spec: checkSpec(c, rs.Alpha)}
			}
		}
	}
	if err := b.checks.Set(checks); err != nil {
		return fmt.Errorf("lb: checks: %w", err)
	}
	b.mu.Lock()
	b.specs = specs
	b.byName = make(map[string]int, len(specs))
	for i, vs := range specs {
		b.byName[vs.Name] = i
	}
	b.reloaded = true
	b.syncd = c.SyncDaemon
	b.onStop, b.foreign = cmp.Or(c.OnStop, config.OnStopRemove), cmp.Or(c.ForeignServices, config.ForeignKeep)
	b.initNotifies = c.RSInitNotifies
	b.timeouts = ipvsnet.Timeouts{TCP: c.Timeouts.TCP, TCPFin: c.Timeouts.TCPFin, UDP: c.Timeouts.UDP}
	for _, vs := range specs {
		for _, k := range vs.Keys() {
			b.managed[k] = true
		}
	}
	b.saveManaged()
	b.haSuspend = haSuspendAddrs(specs, haSuspend)
	b.applySuspended()
	b.mu.Unlock()
	b.poke()
	return nil
}

func (b *Balancer) poke() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// checkSpec is the configured check: the configuration decodes into
// lb/check's spec and normalizes it, the real server's alpha included.
func checkSpec(c config.Check, alpha bool) check.Spec {
	c.Alpha = c.Alpha || alpha
	return c
}

// Run checks and reconciles until ctx ends, then removes what it manages
// from the kernel (keepalived does the same on stop) and releases it.
func (b *Balancer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := b.checks.Run(ctx); err != nil {
			b.log.Error("health checks stopped", "err", err)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.watchAddrs(ctx)
	}()
	defer wg.Wait()
	tick := time.NewTicker(b.resync)
	defer tick.Stop()
	b.reconcileSafe(true)
	for {
		full := false
		select {
		case <-ctx.Done():
			b.mu.Lock()
			keep := b.onStop == config.OnStopKeep
			b.mu.Unlock()
			if keep {
				b.log.Info("leaving the IPVS table in place (lb.on_stop: keep)")
			} else {
				b.clear()
			}
			b.stopSync()
			b.metrics.SetIPVSSource(nil, nil) // waits for a scrape in flight
			if b.stats != nil {
				b.stats.Close()
			}
			b.kernel.Close()
			return nil
		case <-b.health.Changes():
		case <-b.kick:
		case <-tick.C:
			full = true
		}
		b.reconcileSafe(full)
	}
}

// reconcileSafe is reconcile with a recovered panic logged and counted;
// the next pass reads the kernel again, so the table converges whatever
// the panic left half done.
func (b *Balancer) reconcileSafe(full bool) {
	if err := safe.Call(b.log, "ipvs_reconcile", func() { b.reconcile(full) }); err != nil {
		b.known = nil
	}
}

// SetSyncRole records whether the sync daemon's VRRP instance is master;
// the balancer's goroutine switches the kernel's daemon.
func (b *Balancer) SetSyncRole(master bool) {
	b.mu.Lock()
	b.syncMaster = master
	b.mu.Unlock()
	b.poke()
}

// syncDaemons runs the kernel's connection-sync daemon in the role the
// VRRP instance asks for (keepalived's lvs_sync_daemon: master on the VRRP
// master, backup elsewhere; never both, so a node does not sync its own
// connections back to itself).
func (b *Balancer) syncDaemons() {
	b.mu.Lock()
	sd, master := b.syncd, b.syncMaster
	b.mu.Unlock()
	want := "none"
	if sd != nil {
		want = fmt.Sprintf("%v %s %d", master, sd.Interface, sd.SyncID)
	}
	if want == b.syncApplied {
		return
	}
	var err error
	switch {
	case sd == nil:
		err = b.stopSync()
	case master:
		err = errors.Join(b.kernel.StopSyncDaemon(ipvsnet.SyncBackup),
			b.kernel.StartSyncDaemon(ipvsnet.SyncDaemon{State: ipvsnet.SyncMaster, Interface: sd.Interface, SyncID: sd.SyncID}))
	default:
		err = errors.Join(b.kernel.StopSyncDaemon(ipvsnet.SyncMaster),
			b.kernel.StartSyncDaemon(ipvsnet.SyncDaemon{State: ipvsnet.SyncBackup, Interface: sd.Interface, SyncID: sd.SyncID}))
	}
	if err != nil {
		b.log.Error("IPVS connection sync daemon", "err", err, "want", want)
		return // tried again at the next reconcile
	}
	if sd != nil {
		role := "backup"
		if master {
			role = "master"
		}
		b.log.Info("IPVS connection sync daemon", "role", role, "interface", sd.Interface, "sync_id", sd.SyncID)
	}
	b.syncApplied = want
}

func (b *Balancer) stopSync() error {
	if b.syncApplied == "" || b.syncApplied == "none" {
		return nil
	}
	err := errors.Join(b.kernel.StopSyncDaemon(ipvsnet.SyncMaster), b.kernel.StopSyncDaemon(ipvsnet.SyncBackup))
	if err == nil {
		b.syncApplied = "none"
	}
	return err
}

// reconcile brings the kernel to the desired table with the fewest
// operations; an error is logged and counted, and the next change or
// resync tries again. full reads the kernel's table; otherwise the diff
// runs against the table as vigil last left it, so a health change costs
// a diff and its few operations, not a dump of every service (one netlink
// round trip per service: ~1 s for 1,000 services in the test VM). The
// periodic resync and any failure read the kernel again, which also puts
// back what someone else changed.
func (b *Balancer) reconcile(full bool) {
	b.syncDaemons()
	b.setTimeouts()
	start := time.Now()
	changed := b.health.Changed()
	b.mu.Lock()
	specs, byName, prev, isManaged := b.specs, b.byName, b.quorum, b.managedFunc()
	whole := full || b.known == nil || b.reloaded
	b.reloaded = false
	b.mu.Unlock()
	if !whole {
		b.reconcileChanged(specs, byName, prev, isManaged, changed, start)
		return
	}

	want, quorum := lb.Desired(specs, b.health, prev)
	cur := b.known
	if full || cur == nil {
		var err error
		if cur, err = b.kernel.Dump(); err != nil {
			b.known = nil
			b.log.Error("reading the IPVS table", "err", err)
			b.metrics.Reconciled(0, err, time.Since(start))
			return
		}
	}
	ops := lb.DiffNormal(want, cur, isManaged) // Desired and the dump are normal
	err := b.kernel.Apply(ops)
	applied := time.Now()
	b.metrics.Reconciled(len(ops), err, time.Since(start))
	if err != nil {
		b.known = nil
		b.log.Error("changing the IPVS table", "err", err, "ops", len(ops))
		return
	}
	switch {
	case len(cur) == 0:
		// From an empty table (a start), the ops made the kernel's table
		// exactly the desired one, which is nobody else's: take it rather
		// than build it again op by op (10,000 map insertions at a large
		// start).
		b.known = want
	default:
		if full || b.known == nil {
			b.known = cur // a fresh dump: ours to change
		}
		if err = b.known.ApplyInPlace(ops); err != nil {
			// The kernel took what the model refuses: trust only a dump.
			b.known = nil
			b.log.Warn("IPVS table model out of step; reading the kernel next time", "err", err)
		}
	}
	b.settledOnce.Do(func() { close(b.settled) })
	b.logOps(ops, time.Since(start))

	same := len(specs) > 0 && len(specs) == len(b.lastSpecs) && &specs[0] == &b.lastSpecs[0]
	b.countTransitions(specs, b.health, same, passTimes{start: start, applied: applied, ops: len(ops)})
	b.mu.Lock()
	b.quorum = quorum
	// Services of earlier configs are gone from the kernel now.
	for k := range b.managed {
		if _, ok := want[k]; !ok {
			delete(b.managed, k)
		}
	}
	b.saveManaged()
	b.mu.Unlock()
	b.publishQuorum(specs, prev, quorum, same)
	if !same {
		b.sweepQuorumSeries(specs)
	}
	b.lastSpecs = specs
	b.reportDigest(specs)
}

// reportDigest hands Config.Digest the digest of the configured services
// as the kernel has them now (other services in the kernel are not ours).
func (b *Balancer) reportDigest(specs []lb.VirtualServer) {
	if b.digestf == nil || b.known == nil {
		return
	}
	t := lb.Table{}
	for _, vs := range specs {
		for _, k := range vs.Keys() {
			if e, ok := b.known[k]; ok {
				t[k] = e
			}
		}
	}
	b.digestf(lb.TableDigest(t))
}

// reconcileChanged is a pass after health changes with the config
// unchanged: only the virtual servers of the real servers whose checks
// changed are computed and compared, against the table vigil last left,
// so its cost does not grow with the table.
func (b *Balancer) reconcileChanged(specs []lb.VirtualServer, byName map[string]int, prev lb.QuorumState,
	isManaged func(lb.ServiceKey) bool, changed []lb.RealServerID, start time.Time) {
	var sub []lb.VirtualServer
	seen := map[string]bool{}
	for _, o := range changed {
		if i, ok := byName[o.VS]; ok && !seen[o.VS] {
			seen[o.VS] = true
			sub = append(sub, specs[i])
		}
	}
	if len(sub) == 0 {
		return
	}
	h := b.health
	want, quorum := lb.Desired(sub, h, prev)
	var keys []lb.ServiceKey
	for _, vs := range sub {
		keys = append(keys, vs.Keys()...)
	}
	ops := lb.DiffKeys(want, b.known, keys, isManaged)
	err := b.kernel.Apply(ops)
	applied := time.Now()
	b.metrics.Reconciled(len(ops), err, time.Since(start))
	if err != nil {
		b.known = nil // the next pass reads the kernel and compares everything
		b.log.Error("changing the IPVS table", "err", err, "ops", len(ops))
		return
	}
	if err = b.known.ApplyInPlace(ops); err != nil {
		b.known = nil
		b.log.Warn("IPVS table model out of step; reading the kernel next time", "err", err)
	}
	b.logOps(ops, time.Since(start))
	b.countTransitions(sub, h, true, passTimes{start: start, applied: applied, ops: len(ops)})
	b.mu.Lock()
	merged := maps.Clone(b.quorum)
	maps.Copy(merged, quorum)
	b.quorum = merged
	b.mu.Unlock()
	b.publishQuorum(sub, prev, quorum, true)
	b.reportDigest(specs)
}

// Omega publishes, for the virtual servers whose config asks for it
// (keepalived omega), their live real servers and their quorum going down
// as vigil stops, so notify_down and quorum_down run and the FIFO says so.
// Called before the event bus drains; safe from any goroutine.
func (b *Balancer) Omega(specs []config.VirtualServer) {
	b.mu.Lock()
	quorum := b.quorum
	b.mu.Unlock()
	h := b.health
	for _, vs := range specs {
		if !vs.Notify.Omega {
			continue
		}
		spec := vs.Spec
		for _, rs := range spec.Reals {
			if up, _, _ := h.RealServer(spec.Name, rs.Key()); up {
				b.notify(events.Event{Kind: events.KindRealServer, Name: spec.Name, Service: lb.KeepalivedService(spec.Service.Key),
					RealServer: lb.KeepalivedRealServer(spec, rs.Key()), From: events.StateUp, To: events.StateDown, Reason: "shutdown"})
			}
		}
		if quorum[spec.Name] {
			b.notify(events.Event{Kind: events.KindVirtualServer, Name: spec.Name, Service: lb.KeepalivedService(spec.Service.Key),
				From: events.StateUp, To: events.StateDown, Reason: "shutdown"})
		}
	}
}

// publishQuorum reports the quorum of specs that changed since prev (log,
// notify, the VRRP feeds) and keeps the quorum series; same says the
// config is the one of the last pass, so unchanged series need no write.
func (b *Balancer) publishQuorum(specs []lb.VirtualServer, prev, quorum lb.QuorumState, same bool) {
	for _, vs := range specs {
		up := quorum[vs.Name]
		was, known := prev[vs.Name]
		if !known || was != up {
			live, total := b.liveWeight(vs)
			detail := fmt.Sprintf("live weight %d of %d, quorum %d", live, total, max(vs.Quorum, 1))
			if known {
				b.log.Warn("virtual server quorum changed", "virtual_server", vs.Name, "up", up, "detail", detail)
				b.notify(events.Event{Kind: events.KindVirtualServer, Name: vs.Name, Service: lb.KeepalivedService(vs.Service.Key),
					From: upDown(was), To: upDown(up), Reason: detail})
			}
			if b.quorumf != nil {
				b.quorumf(vs.Name, up, detail)
			}
		}
		if same && known && was == up {
			continue // its series hold this already
		}
		for _, k := range vs.Keys() {
			b.metrics.SetQuorum(up, vsKeyLabels(vs.Name, k)...)
		}
	}
}

// sweepQuorumSeries drops the quorum and transition series of virtual
// servers (and group members) a reload removed.
func (b *Balancer) sweepQuorumSeries(specs []lb.VirtualServer) {
	exported := make(map[string]bool, len(specs))
	quorumSeries := make(map[string][]string, len(specs))
	for _, vs := range specs {
		exported[vs.Name] = true
		for _, k := range vs.Keys() {
			l := vsKeyLabels(vs.Name, k)
			quorumSeries[strings.Join(l, "\x00")] = l
		}
	}
	for id, l := range b.quorumSeries {
		switch _, kept := quorumSeries[id]; {
		case kept:
		case exported[l[0]]:
			b.metrics.ForgetQuorum(l...) // a group member
		default:
			b.metrics.ForgetVirtualServer(l[0])
		}
	}
	b.quorumSeries = quorumSeries
}

// opsLogged is how many IPVS changes a pass logs one by one at info; a
// larger pass (a start or a reload of many services) logs one summary at
// info and the changes at debug, so a cold start of 10,000 destinations
// is not 10,000 log lines.
const opsLogged = 32

func (b *Balancer) logOps(ops []lb.Op, took time.Duration) {
	if len(ops) == 0 {
		return
	}
	lvl := slog.LevelInfo
	if len(ops) > opsLogged {
		var n [lb.DelDest + 1]int
		for _, op := range ops {
			n[op.Kind]++
		}
		var parts []string
		for k := lb.AddService; k <= lb.DelDest; k++ {
			if n[k] > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", k, n[k]))
			}
		}
		b.log.Info("IPVS table changed", "ops", len(ops), "detail", strings.Join(parts, ", "), "took", took.Round(time.Microsecond))
		lvl = slog.LevelDebug
		if !b.log.Enabled(context.Background(), lvl) {
			return
		}
	}
	for _, op := range ops {
		b.log.Log(context.Background(), lvl, "ipvs", "op", op.String())
	}
}

func (b *Balancer) notify(e events.Event) {
	if b.publish != nil {
		b.publish(e)
	}
}

func upDown(up bool) string {
	if up {
		return events.StateUp
	}
	return events.StateDown
}

// liveWeight sums the weights of the up real servers of vs, for messages.
func (b *Balancer) liveWeight(vs lb.VirtualServer) (live, total int) {
	h := b.health
	for _, rs := range vs.Reals {
		w := rs.Weight
		up, dw, dyn := h.RealServer(vs.Name, rs.Key())
		if dyn {
			w = dw
		}
		total += rs.Weight
		if up {
			live += w
		}
	}
	return live, total
}

// managedFunc is the Diff predicate for what vigil may change: the
// managed services, or everything with lb.foreign_services: remove. b.mu
// is held; the predicate works on a copy.
func (b *Balancer) managedFunc() func(lb.ServiceKey) bool {
	if b.foreign == config.ForeignRemove {
		return func(lb.ServiceKey) bool { return true }
	}
	managed := maps.Clone(b.managed)
	return func(k lb.ServiceKey) bool { return managed[k.Normal()] }
}

// clear removes every service vigil manages from the kernel (every
// service, with lb.foreign_services: remove) and then forgets them.
func (b *Balancer) clear() {
	b.mu.Lock()
	isManaged := b.managedFunc()
	b.mu.Unlock()
	// Deleting a service deletes its destinations: the services are all
	// there is to read (a dump of 10,000 destinations took seconds of a
	// slow VM's stop).
	cur, err := b.kernel.Services()
	if err != nil {
		b.log.Error("reading the IPVS table at shutdown", "err", err)
		return
	}
	ops := lb.Diff(lb.Table{}, cur, isManaged)
	if err := b.kernel.Apply(ops); err != nil {
		b.log.Error("removing virtual services at shutdown", "err", err)
		return
	}
	if len(ops) > 0 {
		b.log.Info("removed the virtual services at shutdown", "ops", len(ops))
	}
	b.mu.Lock()
	clear(b.managed)
	b.saveManaged()
	b.mu.Unlock()
}

// setTimeouts gives the kernel the configured connection timeouts when
// they changed; a failure is logged and tried again at the next pass.
func (b *Balancer) setTimeouts() {
	b.mu.Lock()
	t := b.timeouts
	b.mu.Unlock()
	if t == (ipvsnet.Timeouts{}) || t == b.timeoutsApplied {
		return
	}
	if err := b.kernel.SetTimeouts(t); err != nil {
		b.log.Error("setting the IPVS connection timeouts", "err", err)
		return
	}
	b.log.Info("IPVS connection timeouts set", "tcp", t.TCP, "tcp_fin", t.TCPFin, "udp", t.UDP)
	b.timeoutsApplied = t
}

// vsKeyLabels are telemetry's virtual server labels for service k of the
// virtual server name.
func vsKeyLabels(name string, k lb.ServiceKey) []string {
	addr, port, mark := "", "", ""
	if k.FWMark != 0 {
		mark = strconv.FormatUint(uint64(k.FWMark), 10)
	} else {
		addr, port = k.Addr.String(), strconv.Itoa(int(k.Port))
	}
	return []string{name, addr, port, k.Protocol.String(), mark}
}

// VirtualServerStatus is one virtual server in vigil status.
type VirtualServerStatus struct {
	Name       string             `json:"name"`
	Service    string             `json:"service"` // "tcp 192.0.2.100:80" or "FWM 7 IPv4"
	Scheduler  string             `json:"scheduler"`
	Quorum     int                `json:"quorum"`
	QuorumUp   bool               `json:"quorum_up"`
	LiveWeight int                `json:"live_weight"`
	Sorry      string             `json:"sorry_server,omitempty"`
	Reals      []RealServerStatus `json:"real_servers"`
}

// RealServerStatus is a real server's health as this node's checks see it.
type RealServerStatus struct {
	Address string        `json:"address"`
	Forward string        `json:"forward"`
	Weight  int           `json:"weight"` // configured, or the dynamic weight a check set
	Up      bool          `json:"up"`
	Checks  []CheckStatus `json:"checks,omitempty"`
}

// CheckStatus is one health check of a real server.
type CheckStatus struct {
	Type   string `json:"type"`
	Target string `json:"target,omitempty"`
	Up     bool   `json:"up"`
	Init   bool   `json:"init,omitempty"` // no result yet: Up is the start state
	// Suspended: not probed now (ha_suspend, none of the virtual server's
	// addresses on this host); Up is its last state.
	Suspended bool      `json:"suspended,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	Since     time.Time `json:"since,omitzero"`
}

// Status is the virtual servers of the current config with their real
// servers' health, in configuration order (vigil status).
func (b *Balancer) Status() []VirtualServerStatus {
	b.mu.Lock()
	specs, quorum := b.specs, b.quorum
	b.mu.Unlock()
	h := b.health
	byOwner := map[check.Owner][]check.CheckStatus{}
	for _, cs := range b.checks.Statuses() {
		byOwner[cs.Owner] = append(byOwner[cs.Owner], cs)
	}
	out := make([]VirtualServerStatus, 0, len(specs))
	for _, vs := range specs {
		live, _ := b.liveWeight(vs)
		var svcs []string
		for _, k := range vs.Keys() {
			svcs = append(svcs, k.String())
		}
		vst := VirtualServerStatus{Name: vs.Name, Service: strings.Join(svcs, ", "), Scheduler: vs.Service.Normal().Scheduler,
			Quorum: max(vs.Quorum, 1), QuorumUp: quorum[vs.Name], LiveWeight: live, Reals: []RealServerStatus{}}
		if vs.Sorry != nil {
			vst.Sorry = netip.AddrPortFrom(vs.Sorry.Addr, vs.Sorry.Port).String()
		}
		for _, rs := range vs.Reals {
			up, w, dyn := h.RealServer(vs.Name, rs.Key())
			if !dyn {
				w = rs.Weight
			}
			rst := RealServerStatus{Address: netip.AddrPortFrom(rs.Addr, rs.Port).String(), Forward: rs.Forward.String(), Weight: w, Up: up}
			css := byOwner[check.Owner{VS: vs.Name, RS: rs.Key()}]
			slices.SortFunc(css, func(a, b check.CheckStatus) int { return strings.Compare(string(a.Spec.Type), string(b.Spec.Type)) })
			for _, cs := range css {
				target := ""
				if cs.Spec.Target.IsValid() {
					target = cs.Spec.Target.String()
				}
				rst.Checks = append(rst.Checks, CheckStatus{Type: string(cs.Spec.Type), Target: target, Up: cs.Up, Init: cs.Init,
					Suspended: cs.Suspended, Detail: cs.Detail, Since: cs.Since})
			}
			vst.Reals = append(vst.Reals, rst)
		}
		out = append(out, vst)
	}
	return out
}
