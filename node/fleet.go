package node

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"vigil/vrrp/router"

	"vigil/config"
	"vigil/gossip"
	"vigil/internal/buildinfo"
	"vigil/lb"
	"vigil/lb/check"
	"vigil/telemetry"
	"vigil/vrrp"
)

// The fleet (issue 13): with a `gossip:` section, the node joins the other
// directors over memberlist (gossip.Cluster) and
//   - publishes its summary, one row per VRRP instance, one per checked
//     real server (its own checks' verdict) and the digest of its desired
//     IPVS table;
//   - gives the load balancer the fleet's health view (gossip.HealthView)
//     instead of its own checks' view;
//   - feeds split-brain arbitration: while another live member reports
//     MASTER for one of its virtual routers with a better priority and
//     answers direct pings, the instance hears it as an advert
//     (vrrp.Instance.FleetAdvert). VRRP alone still adds and removes
//     addresses (design principle 1).
//
// Everything runs in one goroutine (run); the cluster has its own.

// ErrNoFleet is returned by the fleet's status and key operations on a node
// whose configuration has no gossip section.
var ErrNoFleet = errors.New("this node runs no fleet (no gossip: section in its configuration)")

// fleetTick paces publishing, arbitration and metrics. Arbitration feeds
// use the time of the last answered ping, so the tick only bounds how
// quickly a newly learnt master is followed.
const fleetTick = 50 * time.Millisecond

// changeSettle is how long the fleet loop lets changed rows gather before
// it reads them: its pass reads every member's rows, so a pass per row of
// a burst (a push's announcements and reports reach 50 members within
// milliseconds) is quadratic work. Small against the arbitration's and a
// rollout's seconds.
const changeSettle = 20 * time.Millisecond

// ownEvery paces the look at this node's own instances for changes that
// come without a state change (effective priority).
const ownEvery = 500 * time.Millisecond

// summaryEvery republishes the node summary even when nothing changed, so
// its age says how current a member's view of this node is.
const summaryEvery = 10 * time.Second

type fleet struct {
	log       *slog.Logger
	self      string
	cl        *gossip.Cluster
	view      *gossip.HealthView
	checks    *check.Scheduler
	arbitrate bool
	metrics   *telemetry.Fleet
	router    interface {
		FleetAdvert(instance string, at time.Time, m vrrp.FleetMaster)
	}
	started time.Time

	kick chan struct{} // a state change: publish now

	mu sync.Mutex // guards what status readers share with run
	// cfg is the configuration whose rows run publishes; startGossip the
	// gossip section memberlist was started with.
	cfg         *config.Config
	startGossip *config.Gossip
	// own are this node's instance summaries as last published.
	own []gossip.InstanceSummary
	// published are this node's rows as last published, by kind and key.
	published map[[2]string][]byte
	// membersChanged: a member's state changed since the fleet loop last
	// looked (takeMembersChanged).
	membersChanged bool
	// summaryAt is when each origin's node summary row last changed here.
	summaryAt map[string]summarySeen
	// members is the cluster's membership as of the last tick.
	members map[string]gossip.Member
	// pings: the last answered ping of each member followed for
	// arbitration, and the members being pinged.
	pings   map[string]time.Time
	pinging map[string]context.CancelFunc
	// disagree holds the real servers whose own verdict differs from the
	// fleet's, to log each change once.
	disagree map[lb.RealServerID]bool
	// lbHash identifies the lb section the desired table is computed
	// from; desired is the digest row last published.
	lbHash  string
	desired gossip.DesiredDigest
	// diverged is the divergence last logged (a line per change).
	diverged string
	// healthRows and vrrpRows are the members' rows decoded at their
	// version.
	healthRows rowCache[gossip.HealthResult]
	vrrpRows   rowCache[gossip.InstanceSummary]
	// cfgs is the fleet configuration pushes (fleetcfg.go).
	cfgs *fleetConfig
	// startCfg is the configuration the fleet started with (its local
	// settings: the state directory). serve answers members' calls (the
	// node's handoff.go), set before the cluster runs.
	startCfg *config.Config
	serve    func(ctx context.Context, from, method string, body []byte) ([]byte, error)
	// tracer makes the fleet's spans (config.propose, config.apply).
	tracer trace.Tracer
	// masters are the fleet masters arbitration follows, fed the ping
	// time each instance was last fed (run's goroutine).
	masters []gossip.FleetMaster
	fed     map[string]time.Time
}

type summarySeen struct {
	v  gossip.Version
	at time.Time
}

// rowCache keeps gossip rows decoded at their version, so a loop that
// reads every member's rows each time decodes only the new and changed
// ones. Safe for concurrent use (status readers call some of those loops).
type rowCache[T any] struct {
	mu sync.Mutex
	m  map[gossip.RowID]cachedRow[T]
}

type cachedRow[T any] struct {
	v   gossip.Version
	val T
}

// each calls fn, in order, with every row keep accepts and its decoded
// value. A row that does not decode goes to bad (if not nil) and is
// skipped; rows not kept this time are forgotten. fn runs under the
// cache's lock.
func (c *rowCache[T]) each(rows []gossip.Row, keep func(gossip.Row) bool, decode func([]byte) (T, error),
	bad func(gossip.Row, error), fn func(gossip.Row, T)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[gossip.RowID]cachedRow[T]{}
	}
	seen := make(map[gossip.RowID]bool, len(rows))
	for _, r := range rows {
		if !keep(r) {
			continue
		}
		seen[r.RowID] = true
		d, ok := c.m[r.RowID]
		if !ok || d.v != r.Version {
			val, err := decode(r.Value)
			if err != nil {
				if bad != nil {
					bad(r, err)
				}
				continue
			}
			d = cachedRow[T]{v: r.Version, val: val}
			c.m[r.RowID] = d
		}
		fn(r, d.val)
	}
	for id := range c.m {
		if !seen[id] {
			delete(c.m, id)
		}
	}
}

// newFleet starts memberlist (bound, not yet joined) for cfg's gossip
// section.
func newFleet(cfg *config.Config, log *slog.Logger, reg *telemetry.Registry, checks *check.Scheduler) (*fleet, error) {
	g := cfg.Gossip
	log = log.With("component", "gossip")
	mc, err := gossip.MemberlistConfig(gossip.Options{
		Name: cfg.Node.Name, Bind: g.Bind, Advertise: g.Advertise, Cluster: g.Cluster, Keys: g.Keys, Profile: g.Profile,
		Timing: gossip.Timing{ProbeInterval: g.Timing.ProbeInterval, ProbeTimeout: g.Timing.ProbeTimeout,
			GossipInterval: g.Timing.GossipInterval, GossipNodes: g.Timing.GossipNodes, PushPullInterval: g.Timing.PushPullInterval,
			SuspicionMult: g.Timing.SuspicionMult, RetransmitMult: g.Timing.RetransmitMult,
			DeadNodeReclaim: g.Timing.DeadNodeReclaim, GossipToTheDead: g.Timing.GossipToTheDead},
		Log: log,
	})
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	var onKeyring func([][]byte) error
	if path := g.Keyring; path != "" {
		// Keys rotated fleet-wide survive a restart.
		onKeyring = func(keys [][]byte) error { return config.WriteKeyring(path, keys) }
	}
	fc, err := newFleetConfig(cfg)
	if err != nil {
		return nil, err
	}
	fc.rejected = reg.NewConfigRejected(config.SignatureReasons)
	f := &fleet{}
	cl, err := gossip.NewCluster(gossip.ClusterConfig{Name: cfg.Node.Name, Epoch: uint64(time.Now().UnixNano()), Memberlist: mc,
		Join: g.Join, Rejoin: g.Rejoin, Fanout: fanout(g.DirectFanout), OnKeyring: onKeyring, Provide: fc.provide, Serve: f.serveCall, Log: log})
	if err != nil {
		return nil, fmt.Errorf("gossip on %s: %w", g.Bind, err)
	}
	*f = fleet{log: log, self: cfg.Node.Name, cl: cl, startCfg: cfg, tracer: reg.Tracer, checks: checks, arbitrate: g.Arbitrate, metrics: reg.NewFleet(),
		started: time.Now(), kick: make(chan struct{}, 1), cfg: cfg, startGossip: g, published: map[[2]string][]byte{},
		summaryAt: map[string]summarySeen{}, members: map[string]gossip.Member{}, pings: map[string]time.Time{},
		pinging: map[string]context.CancelFunc{}, disagree: map[lb.RealServerID]bool{}, fed: map[string]time.Time{}}
	fc.f, f.cfgs = f, fc
	f.view = gossip.NewHealthView(cfg.Node.Name, checks.View())
	f.setConfig(cfg)
	return f, nil
}

// serveCall answers a member's call through the node's handler.
func (f *fleet) serveCall(ctx context.Context, from, method string, body []byte) ([]byte, error) {
	if f.serve == nil {
		return nil, gossip.ErrNotFound
	}
	return f.serve(ctx, from, method, body)
}

// setConfig follows a new configuration (start, reload): the virtual
// servers' health policies; the rows follow at the next tick.
func (f *fleet) setConfig(cfg *config.Config) {
	pol := map[string]gossip.Policy{}
	for _, vs := range cfg.LB.VirtualServers {
		pol[vs.Spec.Name] = gossip.Policy(vs.HealthPolicy)
	}
	f.view.SetPolicies(pol)
	lbHash := lbSectionHash(cfg)
	f.mu.Lock()
	f.cfg, f.lbHash = cfg, lbHash
	f.mu.Unlock()
	f.poke()
}

// fanout is the driver's Fanout for direct_fanout (0 = none: negative).
func fanout(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// lbSectionHash identifies a configuration's lb section: members whose
// lb sections are equal compute the same desired table from the same
// fleet view, whatever else their files (node names, addresses, VRRP)
// hold. The health policies are left out: a director that decides by its
// own checks (local) while the others follow the fleet is exactly what a
// divergence report should show.
func lbSectionHash(cfg *config.Config) string {
	lbs := cfg.LB
	lbs.VirtualServers = slices.Clone(lbs.VirtualServers)
	for i := range lbs.VirtualServers {
		lbs.VirtualServers[i].HealthPolicy = ""
	}
	b, err := json.Marshal(lbs)
	if err != nil {
		return "" // not comparable: no divergence is reported for it
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// poke asks run to publish now (a state change).
func (f *fleet) poke() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// run is the fleet's loop; it returns once the cluster has left.
func (f *fleet) run(ctx context.Context, status func() statusView) {
	clDone := make(chan struct{})
	go func() {
		defer close(clDone)
		if err := f.cl.Run(ctx); err != nil {
			f.log.Warn("leaving the fleet", "err", err)
		}
	}()
	defer func() {
		f.mu.Lock()
		for _, stop := range f.pinging {
			stop()
		}
		f.mu.Unlock()
		<-clDone
	}()
	tick := time.NewTicker(fleetTick)
	defer tick.Stop()
	localChanges := f.checks.Changes()
	// A version applied before a restart is announced again.
	f.cfgs.announceApplied()
	var lastSummary, lastSlow, lastOwn time.Time
	var settle <-chan time.Time // armed by changed rows, see changeSettle
	gens := kindGenerations{}
	for {
		now := time.Now()
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
			if f.publish(now, status(), false) {
				f.recomputeMasters()
			}
		case <-localChanges:
			// The fleet loop is the local view's one reader of Changed:
			// the balancer reads the fleet view's.
			f.publishHealth(now, f.checks.View().Changed())
			f.updateView(now)
		case <-f.cl.Changed():
			// Rows arrive one packet at a time (a direct send each);
			// what follows reads every member's rows, so the rows of a
			// burst are taken together.
			if settle == nil {
				settle = time.After(changeSettle)
			}
		case <-settle:
			settle = nil
			// Only what the changed kinds feed: in a rollout nearly every
			// change is a node summary, and recomputing the masters or
			// the health view for each was a tenth of a member's CPU.
			ch := gens.update(f.cl)
			if ch[gossip.KindNode] {
				f.noteSummaries(now)
			}
			if ch[gossip.KindHealth] {
				f.updateView(now)
			}
			if ch[gossip.KindVRRP] {
				f.recomputeMasters()
			}
			f.feed(ctx, now)
			if ch[gossip.KindConfig] || ch[gossip.KindNode] || ch[gossip.KindVRRP] {
				f.cfgs.step(ctx) // the gate reads summaries and instances
			}
		case <-tick.C:
			// Feeding arbitration is cheap (the masters are computed when
			// rows change); the rest runs at slower paces.
			f.feed(ctx, now)
			if now.Sub(lastOwn) >= ownEvery {
				// State changes come at once through kick; this catches
				// priority changes (trackers) and the periodic summary.
				lastOwn = now
				force := now.Sub(lastSummary) >= summaryEvery
				if force {
					lastSummary = now
				}
				if f.publish(now, status(), force) {
					f.recomputeMasters()
				}
			}
			if now.Sub(lastSlow) >= time.Second {
				lastSlow = now
				f.refreshMembers(now)
				if f.takeMembersChanged() {
					// A member died or came back: its instances count
					// for arbitration or stop counting.
					f.recomputeMasters()
				}
				// Suspension (ha_suspend) and stalls change no verdict:
				// look at every real server's row once a second.
				f.publishHealth(now, nil)
				f.updateView(now)
				f.exportMetrics(now)
				f.cfgs.step(ctx)
			}
		}
	}
}

// statusView is what the fleet publishes of the node's own state.
type statusView struct {
	hash      string
	instances []InstanceStatus
	drained   bool
}

// publish writes this node's summary and instance rows where they changed
// (force: the summary even when it did not), and reports whether its
// instances changed.
func (f *fleet) publish(now time.Time, st statusView, force bool) bool {
	bi := buildinfo.Get()
	sum := gossip.NodeSummary{Build: bi.Version, ConfigHash: st.hash, Started: f.started, Drained: st.drained}
	f.cfgs.summary(&sum)
	f.put(gossip.KindNode, gossip.KeySummary, sum.Encode, force)
	own := make([]gossip.InstanceSummary, 0, len(st.instances))
	keys := map[string]bool{}
	changed := false
	f.mu.Lock()
	prev := f.own
	f.mu.Unlock()
	last := make(map[string]gossip.InstanceSummary, len(prev))
	for _, s := range prev {
		last[s.Name] = s
	}
	for _, is := range st.instances {
		s := instanceSummary(is)
		own = append(own, s)
		keys[is.Name] = true
		// Compared before encoding: this runs twice a second for every
		// instance.
		if p, ok := last[s.Name]; ok && sameInstance(p, s) {
			continue
		}
		changed = f.put(gossip.KindVRRP, is.Name, s.Encode, false) || changed
	}
	changed = f.withdrawMissing(gossip.KindVRRP, keys) || changed
	f.mu.Lock()
	f.own = own
	f.mu.Unlock()
	return changed
}

// sameInstance reports whether two summaries of an instance are equal.
func sameInstance(a, b gossip.InstanceSummary) bool {
	return a.Name == b.Name && a.VRID == b.VRID && a.Family == b.Family && a.Interface == b.Interface && a.State == b.State &&
		a.Base == b.Base && a.Priority == b.Priority && a.Primary == b.Primary && a.Interval == b.Interval &&
		a.VIPSet == b.VIPSet && a.VIPCount == b.VIPCount && slices.Equal(a.VIPs, b.VIPs) && a.Trace == b.Trace
}

// instanceSummary is an instance's row.
func instanceSummary(is InstanceStatus) gossip.InstanceSummary {
	s := gossip.InstanceSummary{Name: is.Name, VRID: is.VRID, Family: 4, Interface: is.Interface, State: is.State,
		Base: is.BasePriority, Priority: is.EffectivePriority, Interval: time.Duration(is.AdvertInterval * float64(time.Second)),
		Trace: is.LastTrace}
	if is.Family == "ipv6" {
		s.Family = 6
	}
	if a, err := netip.ParseAddr(is.Source); err == nil {
		s.Primary = a
	}
	for _, v := range is.VIPs {
		if p, err := netip.ParsePrefix(v.Address); err == nil {
			s.VIPs = append(s.VIPs, p.Addr())
		}
	}
	s.VIPSet, s.VIPCount = gossip.HashVIPs(s.VIPs), len(s.VIPs)
	return s
}

// put publishes (kind, key) if its encoding differs from what was last
// published (or force), and reports whether it did.
func (f *fleet) put(kind, key string, encode func() ([]byte, error), force bool) bool {
	b, err := encode()
	if err != nil {
		f.log.Error("encoding a gossip row", "kind", kind, "key", key, "err", err)
		return false
	}
	k := [2]string{kind, key}
	f.mu.Lock()
	same := slices.Equal(f.published[k], b) && f.published[k] != nil
	f.mu.Unlock()
	if same && !force {
		return false
	}
	if err := f.cl.Publish(kind, key, b); err != nil {
		// Too large for one packet, most likely: never silently dropped.
		f.log.Error("publishing a gossip row", "kind", kind, "key", key, "err", err)
		return false
	}
	f.mu.Lock()
	f.published[k] = b
	f.mu.Unlock()
	return true
}

// withdrawMissing withdraws this node's rows of kind whose key is not in
// keep (an instance or real server a reload removed), and reports whether
// there were any.
func (f *fleet) withdrawMissing(kind string, keep map[string]bool) bool {
	f.mu.Lock()
	var gone []string
	for k := range f.published {
		if k[0] == kind && !keep[k[1]] {
			gone = append(gone, k[1])
		}
	}
	f.mu.Unlock()
	for _, key := range gone {
		if err := f.cl.Withdraw(kind, key); err != nil {
			f.log.Warn("withdrawing a gossip row", "kind", kind, "key", key, "err", err)
			continue
		}
		f.mu.Lock()
		delete(f.published, [2]string{kind, key})
		f.mu.Unlock()
	}
	return len(gone) > 0
}

// staleAfter is how many check intervals without a probe's end make a
// check's verdict stale (issue 13: "a result older than 3 check intervals
// is not fresh"), plus its timeout, which a probe may take.
const staleAfter = 3

// checkFresh reports whether a check's verdict is fresh at now: it runs
// (not suspended), has a result, and its last probe ended within staleAfter
// intervals (and a timeout).
func checkFresh(cs check.CheckStatus, now time.Time) bool {
	stalled := !cs.Last.IsZero() && now.Sub(cs.Last) > staleAfter*cs.Spec.Interval+cs.Spec.Timeout
	return !cs.Suspended && !cs.Init && !stalled
}

// ownHealth is this node's verdict on each checked real server, from its
// checks: up when all are up; probing (fresh) when none is suspended,
// every one has a result and none has stalled. Receivers cannot judge a
// result's age (rows travel only when they change), so the observer does,
// and a stalled checker's row says so.
func (f *fleet) ownHealth(now time.Time) map[lb.RealServerID]gossip.HealthResult {
	out := map[lb.RealServerID]gossip.HealthResult{}
	for _, cs := range f.checks.Statuses() {
		id := lb.RealServerID{VS: cs.Owner.VS, RS: cs.Owner.RS}
		r, seen := out[id]
		if !seen {
			r = gossip.HealthResult{VS: id.VS, RS: id.RS, Up: true, Probing: true}
		}
		r.Up = r.Up && cs.Up
		r.Probing = r.Probing && checkFresh(cs, now)
		if cs.Since.After(r.Since) {
			r.Since = cs.Since
		}
		if iv := cs.Spec.Interval; iv > r.Interval {
			r.Interval = iv
		}
		out[id] = r
	}
	return out
}

// publishHealth publishes this node's health rows of ids, or of every
// checked real server when ids is nil (withdrawing those gone).
func (f *fleet) publishHealth(now time.Time, ids []lb.RealServerID) {
	own := f.ownHealth(now)
	if ids == nil {
		keep := map[string]bool{}
		for id, r := range own {
			key := gossip.HealthKey(id.VS, id.RS)
			keep[key] = true
			f.put(gossip.KindHealth, key, r.Encode, false)
		}
		f.withdrawMissing(gossip.KindHealth, keep)
		return
	}
	for _, id := range ids {
		if r, ok := own[id]; ok {
			f.put(gossip.KindHealth, gossip.HealthKey(id.VS, id.RS), r.Encode, false)
		}
	}
}

// live reports whether origin is a live member whose rows count.
func (f *fleet) live(origin string) bool {
	f.mu.Lock()
	m, ok := f.members[origin]
	f.mu.Unlock()
	return ok && (m.State == "alive" || m.State == "suspect") && !f.cl.Stale(origin)
}

// refreshMembers takes the cluster's membership (never from a memberlist
// callback) and notes whether a member's state changed
// (takeMembersChanged).
func (f *fleet) refreshMembers(now time.Time) {
	ms := f.cl.MemberStates()
	f.mu.Lock()
	defer f.mu.Unlock()
	changed := len(ms) != len(f.members)
	members := make(map[string]gossip.Member, len(ms))
	for _, m := range ms {
		members[m.Name] = m
		if p, ok := f.members[m.Name]; !ok || p.State != m.State {
			changed = true
		}
	}
	f.members = members
	f.membersChanged = f.membersChanged || changed
}

// takeMembersChanged reports whether a member's state changed since the
// last call (admin requests refresh the membership too: the fleet loop
// still learns of their changes).
func (f *fleet) takeMembersChanged() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := f.membersChanged
	f.membersChanged = false
	return ch
}

// kindGenerations are the row kinds' generations the fleet loop last read
// (gossip.Cluster.Generation).
type kindGenerations map[string]uint64

// update reads the generations of the kinds the fleet loop follows and
// reports which changed since the last update.
func (g kindGenerations) update(cl *gossip.Cluster) map[string]bool {
	ch := map[string]bool{}
	for _, kind := range []string{gossip.KindNode, gossip.KindHealth, gossip.KindVRRP, gossip.KindConfig} {
		if n := cl.Generation(kind); n != g[kind] {
			g[kind], ch[kind] = n, true
		}
	}
	return ch
}

// noteSummaries records when each origin's node summary last changed.
func (f *fleet) noteSummaries(now time.Time) {
	rows := f.cl.Rows(gossip.KindNode)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range rows {
		if s, ok := f.summaryAt[r.Origin]; !ok || s.v != r.Version {
			f.summaryAt[r.Origin] = summarySeen{v: r.Version, at: now}
		}
	}
}

// updateView recomputes the fleet health view from every member's rows.
func (f *fleet) updateView(now time.Time) {
	f.refreshMembersIfEmpty(now)
	var others []gossip.HealthResultRow
	f.mu.Lock()
	cfg := f.cfg
	f.mu.Unlock()
	f.healthRows.each(f.cl.Rows(gossip.KindHealth),
		func(r gossip.Row) bool { return r.Origin != f.self && !r.Deleted },
		gossip.DecodeHealthResult,
		func(r gossip.Row, err error) {
			f.log.Debug("undecodable health row", "origin", r.Origin, "key", r.Key, "err", err)
		},
		func(r gossip.Row, hr gossip.HealthResult) {
			others = append(others, gossip.HealthResultRow{Origin: r.Origin, Live: f.live(r.Origin), Result: hr})
		})
	own := f.ownHealth(now)
	local := func(id lb.RealServerID) (bool, bool) {
		r, ok := own[id]
		if !ok {
			return true, false
		}
		return r.Up, r.Probing
	}
	var ids []lb.RealServerID
	for _, vs := range cfg.LB.VirtualServers {
		for _, rs := range vs.Spec.Reals {
			ids = append(ids, lb.RealServerID{VS: vs.Spec.Name, RS: rs.Key()})
		}
	}
	f.view.Update(now, others, local, ids)
	f.logDisagreements()
}

func (f *fleet) refreshMembersIfEmpty(now time.Time) {
	f.mu.Lock()
	empty := len(f.members) == 0
	f.mu.Unlock()
	if empty {
		f.refreshMembers(now)
	}
}

// logDisagreements logs, once per change, a real server whose verdict by
// this node's checks differs from the fleet's (asymmetric reachability).
func (f *fleet) logDisagreements() {
	now := map[lb.RealServerID]bool{}
	for _, v := range f.view.Verdicts() {
		if v.Disagree {
			now[lb.RealServerID{VS: v.VS, RS: v.RS}] = true
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range now {
		if !f.disagree[id] {
			f.log.Warn("this director's checks disagree with the fleet", "virtual_server", id.VS, "real_server", netip.AddrPortFrom(id.RS.Addr, id.RS.Port).String(),
				"note", "asymmetric reachability: the fleet view decides")
		}
	}
	for id := range f.disagree {
		if !now[id] {
			f.log.Info("this director's checks agree with the fleet again", "virtual_server", id.VS, "real_server", netip.AddrPortFrom(id.RS.Addr, id.RS.Port).String())
		}
	}
	f.disagree = now
}

// instancesByNode returns the live members' instance summaries, self
// included.
func (f *fleet) instancesByNode() map[string][]gossip.InstanceSummary {
	out := map[string][]gossip.InstanceSummary{}
	// Status readers (the admin API) call this too.
	f.vrrpRows.each(f.cl.Rows(gossip.KindVRRP),
		func(r gossip.Row) bool { return !r.Deleted && r.Origin != f.self && f.live(r.Origin) },
		gossip.DecodeInstanceSummary, nil,
		func(r gossip.Row, s gossip.InstanceSummary) { out[r.Origin] = append(out[r.Origin], s) })
	f.mu.Lock()
	out[f.self] = slices.Clone(f.own)
	f.mu.Unlock()
	return out
}

// recomputeMasters finds, for each instance, the best other live master of
// its virtual router (after rows or this node's instances changed).
func (f *fleet) recomputeMasters() {
	if !f.arbitrate {
		return
	}
	nodes := f.instancesByNode()
	own := nodes[f.self]
	delete(nodes, f.self)
	f.masters = gossip.FleetMasters(own, nodes)
}

// feed feeds each instance the best other live master of its virtual
// router, timed at that member's last answered ping, and keeps one pinger
// per member followed.
func (f *fleet) feed(ctx context.Context, now time.Time) {
	if !f.arbitrate {
		return
	}
	want := map[string]time.Duration{} // members to ping, at what period
	for _, m := range f.masters {
		iv := m.Interval
		if iv <= 0 {
			iv = time.Second
		}
		if p, ok := want[m.Node]; !ok || iv < p {
			want[m.Node] = iv
		}
		f.mu.Lock()
		at, ok := f.pings[m.Node]
		f.mu.Unlock()
		// A report counts only while the member answers pings within the
		// instance's Master_Down_Interval; FleetAdvert then runs the
		// timer from the last answer, not from now.
		if !ok || now.Sub(at) > vrrp.MasterDownInterval(3, m.Priority, iv) {
			continue
		}
		// Once per answered ping: the report is as fresh as the ping.
		if f.fed[m.Instance].Equal(at) {
			continue
		}
		f.fed[m.Instance] = at
		f.router.FleetAdvert(m.Instance, at, vrrp.FleetMaster{Priority: m.Priority, Primary: m.Primary, Interval: iv})
		f.metrics.Arbitrations.WithLabelValues(m.Instance).Inc()
	}
	f.follow(ctx, want)
}

// follow keeps one pinger per member followed for arbitration.
func (f *fleet) follow(ctx context.Context, want map[string]time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, stop := range f.pinging {
		if _, ok := want[name]; !ok {
			stop()
			delete(f.pinging, name)
			delete(f.pings, name)
		}
	}
	for name, every := range want {
		if _, ok := f.pinging[name]; ok {
			continue
		}
		pctx, stop := context.WithCancel(ctx)
		f.pinging[name] = stop
		go f.ping(pctx, name, every)
	}
}

// ping pings a member every period (at least 50 ms) and records each
// answer's send time.
func (f *fleet) ping(ctx context.Context, name string, every time.Duration) {
	every = max(every, 50*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		sent := time.Now()
		if _, err := f.cl.Ping(name); err == nil {
			f.mu.Lock()
			if _, ok := f.pinging[name]; ok {
				f.pings[name] = sent
			}
			f.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// exportMetrics sets the fleet's metric families.
func (f *fleet) exportMetrics(now time.Time) {
	st := f.cl.Stats()
	snap := telemetry.FleetSnapshot{Members: st.Members, Sent: map[string]telemetry.FleetTraffic{}, Received: map[string]telemetry.FleetTraffic{},
		Dropped: st.Dropped, Refused: st.Refused, Unknown: st.Unknown, HealthScore: st.HealthScore}
	for k, v := range st.Sent {
		snap.Sent[k] = telemetry.FleetTraffic{Msgs: v.Msgs, Bytes: v.Bytes}
	}
	for k, v := range st.Received {
		snap.Received[k] = telemetry.FleetTraffic{Msgs: v.Msgs, Bytes: v.Bytes}
	}
	f.mu.Lock()
	for name, m := range f.members {
		if s, ok := f.summaryAt[name]; ok && name != f.self && m.State == "alive" {
			snap.SummaryAge = max(snap.SummaryAge, now.Sub(s.at).Seconds())
		}
	}
	f.mu.Unlock()
	for _, vr := range gossip.VirtualRouters(f.instancesByNode()) {
		snap.Masters = append(snap.Masters, telemetry.FleetVR{Name: vr.Name, VRID: vr.Key.VRID, Family: fmt.Sprintf("ipv%d", vr.Key.Family),
			Masters: len(vr.Masters)})
	}
	for _, v := range f.view.Verdicts() {
		if v.Disagree {
			snap.Disagreements++
		}
	}
	div := f.divergence()
	for _, d := range div {
		for _, nodes := range d.Digests {
			snap.Divergence += len(nodes)
		}
	}
	f.logDivergence(div)
	snap.Drift, snap.Rollout = f.cfgs.driftCounts(), f.cfgs.rolloutHeld()
	f.metrics.Set(snap)
}

// setDigest publishes the digest of the desired IPVS table (balancer
// hook, from its goroutine).
//
// The row names the fleet version this node runs and its lb section
// (lbSectionHash): issue 13 compares the tables of members with the same
// config version, and within one version per-node values may give members
// different lb sections, whose tables differ rightly. (It named the node's
// whole file before, which differs on every node: nothing was ever
// compared.)
//
// The version is the one the running configuration was composed from, set
// with it (f.cfg, setConfig), not the fleet loop's applied version: that one
// changes only after the reload returns, and a table computed for the new
// configuration was stamped with the old version, which other members
// took for a divergence at every push.
func (f *fleet) setDigest(digest string) {
	f.mu.Lock()
	var v uint64
	if f.cfg != nil {
		v = f.cfg.FleetVersion
	}
	d := gossip.DesiredDigest{ConfigVersion: v, ConfigHash: f.lbHash, Digest: digest}
	same := f.desired == d
	f.desired = d
	f.mu.Unlock()
	if same {
		return
	}
	f.put(gossip.KindDesired, gossip.KeyTable, d.Encode, false)
}

// logDivergence logs a change of the divergence between members' desired
// tables, once per change.
func (f *fleet) logDivergence(ds []gossip.Divergent) {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "v%d/%s:", d.ConfigVersion, d.ConfigHash)
		for _, dg := range slices.Sorted(maps.Keys(d.Digests)) {
			fmt.Fprintf(&b, " %s=%s", shortDigest(dg), strings.Join(d.Digests[dg], ","))
		}
		b.WriteString("; ")
	}
	now := b.String()
	f.mu.Lock()
	changed := now != f.diverged
	f.diverged = now
	f.mu.Unlock()
	switch {
	case !changed:
	case now == "":
		f.log.Info("members' desired IPVS tables agree again")
	default:
		f.log.Warn("members with the same configuration compute different desired IPVS tables", "divergence", strings.TrimSuffix(now, "; "))
	}
}

func shortDigest(d string) string { return d[:min(len(d), 12)] }

// divergence compares the desired tables of live members with the same
// config.
func (f *fleet) divergence() []gossip.Divergent {
	var rows []gossip.DesiredRow
	for _, r := range f.cl.Rows(gossip.KindDesired) {
		if r.Deleted {
			continue
		}
		d, err := gossip.DecodeDesiredDigest(r.Value)
		if err != nil {
			continue
		}
		rows = append(rows, gossip.DesiredRow{Origin: r.Origin, Live: r.Origin == f.self || f.live(r.Origin), D: d})
	}
	return gossip.Divergence(f.self, rows)
}

// MemberStatus is one member in `vigil members`. The JSON keys are stable.
type MemberStatus struct {
	Name          string `json:"name"`
	Address       string `json:"address"`
	State         string `json:"state"` // alive, suspect, dead, left
	ConfigVersion uint64 `json:"config_version"`
	ConfigHash    string `json:"config_hash"`
	// ConfigError is why fleet version ConfigErrorVersion was not applied
	// there (it runs ConfigVersion, its last good one).
	ConfigError        string `json:"config_error,omitempty"`
	ConfigErrorVersion uint64 `json:"config_error_version,omitempty"`
	// The fleet version it runs is (ConfigVersion, ConfigFleetHash,
	// ConfigOrigin); Follows whether it applies pushes; Drift how it
	// stands against the fleet version (DriftInSync ...); Rollout why it
	// holds version RolloutVersion back, RolloutStopped when the rollout
	// stopped (see rollout.go).
	ConfigFleetHash string            `json:"config_fleet_hash,omitempty"`
	ConfigOrigin    string            `json:"config_origin,omitempty"`
	Follows         bool              `json:"follows"`
	Drift           string            `json:"drift"`
	Rollout         string            `json:"rollout,omitempty"`
	RolloutVersion  uint64            `json:"rollout_version,omitempty"`
	RolloutStopped  bool              `json:"rollout_stopped,omitempty"`
	Build           string            `json:"build"`
	Instances       map[string]string `json:"instances"` // instance name → VRRP state
	Drained         bool              `json:"drained"`
	// SummaryAge is the age in seconds of its last summary as this node
	// received it (-1: none received).
	SummaryAge float64 `json:"summary_age_seconds"`
	Uptime     float64 `json:"uptime_seconds,omitempty"`
}

// members is `vigil members`.
func (f *fleet) memberStatus(now time.Time) []MemberStatus {
	f.refreshMembers(now)
	f.noteSummaries(now)
	sums := map[string]gossip.NodeSummary{}
	for _, r := range f.cl.Rows(gossip.KindNode) {
		if s, err := gossip.DecodeNodeSummary(r.Value); err == nil && !r.Deleted {
			sums[r.Origin] = s
		}
	}
	insts := map[string]map[string]string{}
	for _, r := range f.cl.Rows(gossip.KindVRRP) {
		if s, err := gossip.DecodeInstanceSummary(r.Value); err == nil && !r.Deleted {
			if insts[r.Origin] == nil {
				insts[r.Origin] = map[string]string{}
			}
			insts[r.Origin][s.Name] = s.State
		}
	}
	fleetV := f.cfgs.fleetVersion()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []MemberStatus{}
	for _, name := range slices.Sorted(maps.Keys(f.members)) {
		m := f.members[name]
		ms := MemberStatus{Name: name, Address: m.Addr.String(), State: m.State, Instances: insts[name], SummaryAge: -1}
		if ms.Instances == nil {
			ms.Instances = map[string]string{}
		}
		if s, ok := sums[name]; ok {
			ms.ConfigVersion, ms.ConfigHash, ms.Build, ms.Drained = s.ConfigVersion, s.ConfigHash, s.Build, s.Drained
			ms.ConfigError, ms.ConfigErrorVersion = s.ConfigError, s.ConfigErrorVersion
			setRollout(&ms, s, fleetV)
			if !s.Started.IsZero() {
				ms.Uptime = now.Sub(s.Started).Seconds()
			}
		}
		if s, ok := f.summaryAt[name]; ok {
			ms.SummaryAge = now.Sub(s.at).Seconds()
		}
		out = append(out, ms)
	}
	return out
}

// FleetStatus is `vigil status --fleet`. The JSON keys are stable.
type FleetStatus struct {
	Node           string               `json:"node"`
	VirtualRouters []FleetRouter        `json:"virtual_routers"`
	VirtualServers []FleetVirtualServer `json:"virtual_servers"`
	// Divergence lists live members whose desired IPVS tables differ under
	// the same config.
	Divergence []FleetDivergence `json:"divergence,omitempty"`
}

// FleetRouter is one virtual router across the fleet.
type FleetRouter struct {
	Name    string            `json:"name"`
	VRID    uint8             `json:"vrid"`
	Family  string            `json:"family"`
	Masters []string          `json:"masters"`
	Members []FleetRouterNode `json:"members"`
}

// FleetRouterNode is one member's instance of a virtual router.
type FleetRouterNode struct {
	Node     string `json:"node"`
	Instance string `json:"instance"`
	State    string `json:"state"`
	Priority uint8  `json:"priority"`
}

// FleetVirtualServer is one virtual server's real servers as the fleet
// sees them.
type FleetVirtualServer struct {
	Name        string            `json:"name"`
	Policy      string            `json:"health_policy"`
	RealServers []FleetRealServer `json:"real_servers"`
}

// FleetRealServer is one real server's fleet verdict.
type FleetRealServer struct {
	Address string `json:"address"`
	Up      bool   `json:"up"`    // the fleet's verdict, what the IPVS table follows
	Local   bool   `json:"local"` // this director's own checks' verdict
	// UpCount of Fresh directors with a fresh result see it up.
	UpCount    int      `json:"up_count"`
	Fresh      int      `json:"fresh"`
	Dissenters []string `json:"dissenters,omitempty"` // directors whose fresh result differs from Up
}

// FleetDivergence is one config's diverging desired tables.
type FleetDivergence struct {
	// ConfigVersion is the fleet version the members run (0: none
	// pushed), ConfigHash their lb section's (health policies aside).
	ConfigVersion uint64              `json:"config_version"`
	ConfigHash    string              `json:"config_hash"`
	Digests       map[string][]string `json:"digests"` // digest → members
}

func (f *fleet) status() FleetStatus {
	st := FleetStatus{Node: f.self, VirtualRouters: []FleetRouter{}, VirtualServers: []FleetVirtualServer{}}
	for _, vr := range gossip.VirtualRouters(f.instancesByNode()) {
		r := FleetRouter{Name: vr.Name, VRID: vr.Key.VRID, Family: fmt.Sprintf("ipv%d", vr.Key.Family), Masters: vr.Masters}
		if r.Masters == nil {
			r.Masters = []string{}
		}
		for _, m := range vr.Members {
			r.Members = append(r.Members, FleetRouterNode{Node: m.Node, Instance: m.Instance, State: m.State, Priority: m.Priority})
		}
		st.VirtualRouters = append(st.VirtualRouters, r)
	}
	var cur *FleetVirtualServer
	for _, v := range f.view.Verdicts() {
		if cur == nil || cur.Name != v.VS {
			st.VirtualServers = append(st.VirtualServers, FleetVirtualServer{Name: v.VS, Policy: string(v.Policy)})
			cur = &st.VirtualServers[len(st.VirtualServers)-1]
		}
		cur.RealServers = append(cur.RealServers, FleetRealServer{Address: netip.AddrPortFrom(v.RS.Addr, v.RS.Port).String(), Up: v.Up, Local: v.Local,
			UpCount: v.UpCount, Fresh: v.Fresh, Dissenters: v.Dissenters})
	}
	for _, d := range f.divergence() {
		st.Divergence = append(st.Divergence, FleetDivergence{ConfigVersion: d.ConfigVersion, ConfigHash: d.ConfigHash, Digests: d.Digests})
	}
	return st
}

// keys runs a fleet-wide keyring operation (`vigil gossip keys`).
func (f *fleet) keys(ctx context.Context, op, key string) ([]gossip.KeyResult, error) {
	var raw []byte
	if op != "list" {
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(key))
		if err != nil || len(k) != 32 {
			return nil, fmt.Errorf("%w: a key is 32 bytes in base64 (vigil gossip keygen makes one)", ErrBadKey)
		}
		raw = k
	}
	return f.cl.KeyOp(ctx, gossip.KeyOp(op), raw)
}

// ErrBadKey is a key argument that is not a base64 AES-256 key.
var ErrBadKey = errors.New("not a gossip key")

// gossipConfig is the gossip section the fleet runs.
func (f *fleet) gossipConfig() *config.Gossip {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.startGossip
}

// transitionLinks finds, among the live members' instances of the same
// virtual router, the one whose adverts came from prev (the master this
// node followed), and links to its last transition span, as its summary
// carries it.
func (f *fleet) transitionLinks(instance string, prev netip.Addr) []trace.Link {
	nodes := f.instancesByNode()
	i := slices.IndexFunc(nodes[f.self], func(s gossip.InstanceSummary) bool { return s.Name == instance })
	if i < 0 {
		return nil
	}
	key := nodes[f.self][i].Key()
	for node, insts := range nodes {
		if node == f.self {
			continue
		}
		for _, s := range insts {
			if s.Key() != key || s.Primary != prev {
				continue
			}
			if sc := router.ParseTraceParent(s.Trace); sc.IsValid() {
				return []trace.Link{{SpanContext: sc, Attributes: []attribute.KeyValue{
					attribute.String("vigil.node", node), attribute.String("vigil.vrrp.state", s.State)}}}
			}
		}
	}
	return nil
}
