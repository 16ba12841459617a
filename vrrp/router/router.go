// Package router is the VRRP driver: it runs a node's VRRP instances on the
// host, executing the pure vrrp.Instance state machines' actions.
//
// It opens one raw socket per (interface, family), runs every instance's
// state machine in a single event loop fed by the sockets, a timerfd and
// link and address events, and carries out the actions: adverts are sent
// from the loop itself, address changes and announcements go to a
// per-instance ordered worker so that netlink latency never delays another
// instance's adverts. Trackers and sync groups set priorities and FAULT
// through vrrp/policy; state changes go to the event bus (notify scripts,
// the FIFO). The rest of the node (the load balancer) hooks in through
// Hooks.
package router

import (
	"context"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"vigil/internal/statefile"

	"github.com/vishvananda/netlink"

	"vigil/config"
	"vigil/internal/safe"
	"vigil/telemetry"
	"vigil/telemetry/events"
	"vigil/vrrp"
	"vigil/vrrp/accept"
	"vigil/vrrp/announce"
	"vigil/vrrp/track"
	"vigil/vrrp/vip"
	"vigil/vrrp/vmac"
	"vigil/vrrp/vrrpnet"
)

// Router runs the VRRP instances of one configuration, and of the next one
// after a reload.
type Router struct {
	cfg     *config.Config
	log     *slog.Logger
	metrics *telemetry.VRRP

	vips   *vip.Manager
	accept *accept.Filter            // nil unless an instance runs with accept: false
	links  map[string]*announce.Link // GARP/NA sockets, one set per interface
	vmacs  *vmac.Manager             // nil until an instance uses a virtual MAC
	socks  map[string]*sock          // by "device/family"
	conns  []*sock
	insts  []*instance
	// running: Run has started the socket readers (new sockets from a
	// reload get theirs at once); readers counts them.
	running bool
	readers sync.WaitGroup

	tracker  *track.Manager
	states   map[track.Key]track.Update // latest tracker states, under mu
	groups   map[string]*group
	bus      *events.Bus
	notifier *events.Notifier
	fifo     *events.FIFO
	// fifoGroup is the group fifo was opened for (vrrp.notify_fifo_group).
	fifoGroup string

	// mu serialises the state machines: the socket readers and the timer
	// goroutine take it to run an instance; do executes actions under it.
	mu       sync.Mutex
	stopping bool
	timer    *deadlineTimer
	armed    time.Time     // what the timer is set to; zero = nothing
	done     chan struct{} // closed when Run stops
	started  time.Time
	limiter  *logLimiter
	stopOnce sync.Once
	// failed is closed when the node must stop because its state can no
	// longer be trusted (a panic on the protocol path); failErr says why.
	failed   chan struct{}
	failOnce sync.Once
	failErr  error
	bursts   *burstMemory
	feeds    vsFeeds
	// record lists the VIPs and virtual MAC interfaces vigil put on the
	// host (record.go).
	record *hostRecord

	hooks Hooks
	// drained: every instance runs at DrainPriority (handoff.go).
	drained bool
	// tracer makes the vrrp.transition spans (trace.go).
	tracer trace.Tracer
	// panicOnPacket: the next packet panics (EnvTestPanic, tests only).
	// Under mu.
	panicOnPacket bool
}

// sock is one raw socket and the instances it serves, by VRID.
type sock struct {
	conn   *vrrpnet.Conn
	ifname string
	family int
	byVRID map[uint8]*instance
	closed atomic.Bool // closed by a reload that removed its last instance
}

type instance struct {
	cfg    *config.Instance
	core   *vrrp.Instance
	sock   *sock
	src    netip.Addr   // our advert source: primary IPv4, IPv6 link-local or unicast source
	dsts   []netip.Addr // the group, or every unicast peer
	vips   []vip.VIP
	addrs  []netip.Addr   // VIP addresses, for announcements
	anns   []devAnnouncer // one per interface the VIPs live on
	work   *worker
	ifDown bool // the instance interface is down: FAULT
	noSrc  bool // no address to send adverts from yet: FAULT (src is invalid)
	// faultCause is why the instance is in FAULT now ("" when it is not).
	faultCause vrrp.Cause
	// Tracking (tracking.go): the objects tracked, the fault they cause,
	// and the sync group.
	tracks       []trackRef
	trackFault   string // "<kind> <name>" of the tracker holding it in FAULT
	group        *group
	groupFault   bool // held in FAULT by its sync group
	lastOwnFault bool
	// lastCause is the reason of the last state change (status output);
	// lastTrace its span's traceparent (trace.go).
	lastCause vrrp.Cause
	lastTrace string
	// met reports the instance's events to the metrics, with the
	// per-advert counters resolved once; the announcers count every
	// message through it, delayed bursts included, from their own
	// goroutines.
	met *telemetry.VRRPInstance
}

// devAnnouncer announces the VIPs an instance keeps on one interface (a VIP
// with dev: is announced there, not on the instance interface).
type devAnnouncer struct {
	ann   *announce.Announcer
	addrs []netip.Addr
}

// Options are the dependencies of a Router.
type Options struct {
	Logger  *slog.Logger        // required
	Metrics *telemetry.Registry // required
	Hooks   Hooks
	// Drained starts the node drained (SetDrained): a drain outlives a
	// restart.
	Drained bool
}

// Hooks let the rest of the node (the load balancer) act in step with VRRP
// without the router knowing it. Each may be nil.
type Hooks struct {
	// Prepare is the last step of a reload's preparation, after every
	// instance's: it applies the rest of next or refuses it, all or
	// nothing. Called with the router's lock held.
	Prepare func(next *config.Config) error
	// Started runs once the instances have started and the trackers run,
	// before the sockets are read.
	Started func()
	// Links returns the spans a new master's vrrp.transition links to:
	// what the fleet knows of the previous master's last transition
	// (its address, on the instance's virtual router). Called with the
	// router's lock held; it must not block.
	Links func(instance string, previousMaster netip.Addr) []trace.Link
	// StateChanged runs after an instance of cfg (the configuration
	// running then) changed state, with the router's lock held.
	StateChanged func(cfg *config.Config, instance string, to vrrp.State)
	// Released runs at shutdown once every VIP is released, before the
	// stop notifications drain.
	Released func()
	// Stopped runs last, once VRRP has stopped (keepalived's order: the
	// virtual services go after the addresses).
	Stopped func()
}

// New prepares a router: it resolves interfaces and source addresses, opens the
// sockets and removes addresses a crashed earlier run left behind. It fails,
// naming the instance and interface, if anything needed is missing.
func New(cfg *config.Config, opts Options) (*Router, error) {
	log, reg := opts.Logger, opts.Metrics // node fills in the defaults
	n := &Router{cfg: cfg, log: log, metrics: reg.VRRP, done: make(chan struct{}), links: map[string]*announce.Link{}, socks: map[string]*sock{},
		limiter: newLogLimiter(log, 10*time.Second), bursts: newBurstMemory(), record: openRecord(statefile.Path("vrrp"), log),
		failed: make(chan struct{}), panicOnPacket: testPanicOnPacket(log)}
	vm, err := vip.New()
	if err != nil {
		return nil, err
	}
	n.vips = vm
	n.hooks = opts.Hooks
	n.drained = opts.Drained
	n.tracer = reg.Tracer
	if n.tracer == nil {
		n.tracer = noop.NewTracerProvider().Tracer("vigil")
	}
	if err := n.build(); err != nil {
		n.Abandon()
		return nil, err
	}
	return n, nil
}

func (n *Router) build() error {
	all := allVIPs(n.cfg)
	primaries := map[string]netip.Addr{} // one address dump per interface and family, not per instance
	p := newPending()
	for i := range n.cfg.VRRP.Instances {
		in, err := n.prepareInstance(&n.cfg.VRRP.Instances[i], all, primaries, p, nil)
		if err != nil {
			p.abort(n)
			return err
		}
		p.insts = append(p.insts, in)
	}
	n.commitPending(p)
	if err := n.buildTracking(); err != nil {
		return err
	}
	if err := n.reconcileStale(); err != nil {
		return err
	}
	return n.blockNonAccepting()
}

// allVIPs lists every VIP of every instance, so none is mistaken for a
// primary address.
func allVIPs(cfg *config.Config) []netip.Addr {
	var out []netip.Addr
	for i := range cfg.VRRP.Instances {
		for _, v := range cfg.VRRP.Instances[i].VIPs {
			out = append(out, v.Prefix.Addr())
		}
	}
	return out
}

// setVIPs fills the instance's VIP lists from its config; with a vmac, VIPs
// on the instance interface go on the vmac.
func (n *Router) setVIPs(in *instance, ic *config.Instance) {
	in.vips, in.addrs = nil, nil
	for _, v := range ic.VIPs {
		d := v.Dev
		if ic.VMAC != "" && d == ic.Interface {
			d = ic.VMAC
		}
		in.vips = append(in.vips, vip.VIP{Prefix: v.Prefix, Dev: d, Label: v.Label})
		in.addrs = append(in.addrs, v.Prefix.Addr())
	}
}

// buildAnnouncers returns the announcers of an instance with VIPs vips
// and GARP settings g: one per interface the VIPs are on, sharing each
// interface's sockets with the other instances. A link it has to open goes
// into p until the caller commits it. On error nothing stays open but
// those links (p's to close). The announcers count what they send into
// in's counter.
func (n *Router) buildAnnouncers(in *instance, vips []vip.VIP, g config.GARP, p *pending) (anns []devAnnouncer, err error) {
	defer func() {
		if err != nil {
			closeAnnouncers(anns)
			anns = nil
		}
	}()
	// An announcement an advert interval late comes from a process that
	// was stopped or starved: by then another node may be master.
	cfg := announce.Config{Repeat: g.Repeat, Delay: g.Delay, Interval: g.Interval, Refresh: g.Refresh,
		RefreshRepeat: g.RefreshRepeat, LowerPrioRepeat: g.LowerPrioRepeat, LowerPrioDelay: g.LowerPrioDelay,
		StaleAfter: max(in.cfg.AdvertInterval, minStaleAfter)}
	byDev := map[string]int{}
	for _, v := range vips {
		i, ok := byDev[v.Dev]
		if !ok {
			link := n.links[v.Dev]
			if link == nil {
				link = p.links[v.Dev]
			}
			if link == nil {
				if link, err = announce.NewLink(v.Dev, n.log); err != nil {
					return anns, err
				}
				p.links[v.Dev] = link
			}
			ann, err := link.Announcer(cfg)
			if err != nil {
				return anns, err
			}
			ann.OnSent(func() { in.met.GratuitousSent() })
			i = len(anns)
			byDev[v.Dev] = i
			anns = append(anns, devAnnouncer{ann: ann})
		}
		anns[i].addrs = append(anns[i].addrs, v.Prefix.Addr())
	}
	return anns, nil
}

func closeAnnouncers(anns []devAnnouncer) {
	for _, da := range anns {
		da.ann.Close()
	}
}

// blockNonAccepting enforces Accept_Mode False (RFC 5798 §6.4.3: a non-owner
// master must not accept packets to the VIPs) with nftables drop rules that
// stay for the whole run: they only match while the VIPs are local, so there
// is no window at a transition where a non-accepting master accepts. ARP and
// IPv6 neighbour discovery for the VIPs still work. Configurations that
// accept (the default) never touch nftables.
func (n *Router) blockNonAccepting() error {
	for _, in := range n.insts {
		c := in.core.Config()
		if c.Owner() || c.Accept {
			continue
		}
		if n.accept == nil {
			f, err := accept.New()
			if err != nil {
				return fmt.Errorf("instance %q has accept: false, which needs nftables: %w", in.cfg.Name, err)
			}
			n.accept = f
		}
		if err := n.accept.Block(in.cfg.Name, in.addrs); err != nil {
			return fmt.Errorf("instance %q: %w", in.cfg.Name, err)
		}
		n.log.Info("Accept_Mode off: packets to the virtual addresses are dropped", "vrrp_instance", in.cfg.Name, "vips", fmt.Sprint(in.addrs))
	}
	return nil
}

// reconcileStale removes what a crashed run (no graceful stop) left on
// the host: the VIPs of non-owner instances of this configuration, which a
// node starting as Backup must not hold, and whatever the record lists
// that this configuration no longer has (VIPs, virtual MAC interfaces).
// Owners keep theirs. One address dump per interface covers every
// instance.
func (n *Router) reconcileStale() error {
	var all []vip.VIP
	who := map[vip.VIP]string{}
	ownerKeeps := map[vip.VIP]bool{}
	for _, in := range n.insts {
		for _, v := range in.vips {
			if in.core.Config().Owner() {
				ownerKeeps[v] = true
				continue
			}
			all = append(all, v)
			who[v] = "vrrp_instance " + in.cfg.Name
		}
	}
	recorded := n.record.VIPs()
	for _, v := range recorded {
		if _, ok := who[v]; !ok && !ownerKeeps[v] {
			all = append(all, v)
			who[v] = "no longer in the configuration"
		}
	}
	if len(all) > 0 {
		present, err := n.vips.Present(all)
		if err != nil {
			return fmt.Errorf("reading interface addresses: %w", err)
		}
		for _, v := range present {
			n.log.Warn("removing a virtual address left by an earlier run", "vip", v.String(), "of", who[v])
		}
		if len(present) > 0 {
			if err := n.vips.Remove(present); err != nil {
				return fmt.Errorf("removing stale VIPs: %w", err)
			}
		}
	}
	// Every recorded address of an earlier configuration is gone now;
	// this one's may be added from here on.
	n.record.setVIPs(n.runningVIPs())
	used := map[string]bool{}
	for _, in := range n.insts {
		used[in.cfg.VMAC] = true
	}
	for _, name := range n.record.VMACs() {
		if used[name] {
			continue
		}
		if _, err := netlink.LinkByName(name); err != nil {
			n.record.setVMAC(name, false) // already gone
			continue
		}
		if err := n.openVMACs(); err != nil {
			return err
		}
		n.log.Warn("removing a virtual MAC interface left by an earlier run", "device", name)
		n.removeVMAC(name)
	}
	return nil
}

// settings are what the instance's series start from.
func (in *instance) settings() telemetry.VRRPSettings {
	c := in.core.Config()
	return telemetry.VRRPSettings{BasePriority: c.Priority, Priority: in.core.Priority(), AdvertInterval: c.AdvertInterval, VIPs: in.addrs}
}

// spinLead is how early the timer wakes before a Master_Down_Timer
// deadline; the rest is waited on a running CPU. A sleeping thread on a
// virtual machine wakes up to a few milliseconds late (timerfd wake-ups
// measured up to ~3 ms late at p99 on a busy 2-core VM), and at a takeover
// every millisecond counts; spinning costs at most this long per takeover
// (Adver_Timer deadlines, the routine ones, are not spun for).
const spinLead = 4 * time.Millisecond

// minStaleAfter is the least lateness that makes an announcement stale
// (announce.Config.StaleAfter): a busy host delays timers by tens of
// milliseconds without anything being wrong.
const minStaleAfter = 100 * time.Millisecond

// Run starts every instance and runs until ctx ends; then it stops
// gracefully: masters send priority 0 and remove their addresses.
//
// The instances are driven without an event-loop goroutine: each socket's
// reader and the timer goroutine take n.mu and run the state machines
// themselves, so a packet costs one wake-up, not a hand-off.
func (n *Router) Run(ctx context.Context) error {
	defer n.close()
	timer, err := newDeadlineTimer()
	if err != nil {
		n.undoStart()
		return err
	}
	defer timer.Close()
	n.timer = timer
	n.mu.Lock()
	n.started = time.Now()
	// Subscribe before reading the current state, so no change falls
	// between the two (the watchers wait for the lock).
	if err := errors.Join(n.watchLinks(), n.watchAddrs(), n.initLinks()); err != nil {
		n.mu.Unlock()
		n.undoStart()
		return err
	}
	now := time.Now()
	for _, in := range n.insts {
		n.evaluate(in, now) // trackers' initial states: priority or FAULT before Start
	}
	for _, in := range n.insts {
		n.do(in, in.core.Start(now))
	}
	n.rearm()
	n.mu.Unlock()
	// An address that came between New reading it and the subscription.
	go n.recheckSources()
	trackCtx, stopTracking := context.WithCancel(ctx)
	defer stopTracking()
	n.runTracking(trackCtx)
	if n.hooks.Started != nil {
		n.hooks.Started()
	}

	n.mu.Lock()
	n.running = true
	for _, s := range n.conns {
		n.startReader(s)
	}
	n.mu.Unlock()
	timerDone := make(chan struct{})
	go func() {
		defer close(timerDone)
		for {
			select {
			case <-timer.C:
				n.onTimer()
			case <-n.done:
				return
			}
		}
	}()
	n.log.Info("vigil running", "instances", len(n.insts), "sockets", len(n.conns))

	select {
	case <-ctx.Done():
	case <-n.failed:
		n.log.Error("stopping: a state machine's state can no longer be trusted; resigning and removing the virtual addresses", "err", n.failErr)
	}
	n.mu.Lock()
	n.stopping = true
	n.mu.Unlock()
	close(n.done)
	<-timerDone
	n.shutdown()
	n.mu.Lock()
	for _, s := range n.conns {
		s.conn.Close()
	}
	n.mu.Unlock()
	n.readers.Wait()
	// The VIPs are released; now the virtual services go (keepalived's
	// order on stop).
	if n.hooks.Stopped != nil {
		n.hooks.Stopped()
	}
	n.log.Info("vigil stopped")
	return n.failErr
}

// fail asks Run to stop the node gracefully (masters resign, VIPs are
// removed) and to return an error: a panic was recovered on the protocol
// path, where a state machine may have been left half-changed (issue 11
// item 7: an unrecovered panic ended the process with the VIPs held). It
// is the after-function of safe.Recover there.
func (n *Router) fail(v any) {
	n.failOnce.Do(func() {
		n.failErr = fmt.Errorf("stopped after a panic: %v", v)
		close(n.failed)
	})
}

// newWorker returns an instance's worker.
func (n *Router) newWorker() *worker {
	w := newWorker(n.bursts)
	w.log = n.log
	return w
}

// startReader runs the socket's reader. Called with n.mu held.
func (n *Router) startReader(s *sock) {
	n.readers.Add(1)
	go func() {
		defer n.readers.Done()
		n.readLoop(s)
	}()
}

// nextDeadline returns the earliest deadline of any instance and whether it
// is a Master_Down_Timer (an instance in Backup). Called with n.mu held.
func (n *Router) nextDeadline() (time.Time, bool) {
	var next time.Time
	var down bool
	for _, in := range n.insts {
		if dl := in.core.NextDeadline(); !dl.IsZero() && (next.IsZero() || dl.Before(next)) {
			next, down = dl, in.core.State() == vrrp.StateBackup
		}
	}
	return next, down
}

// rearm sets the timer for the next deadline, early by spinLead for a
// Master_Down_Timer. The timer is only ever moved earlier: an advert moves a
// backup's deadline later, and re-arming for every packet would cost a
// syscall each; a wake-up that finds nothing due re-arms for the real
// deadline (onTimer). Called with n.mu held.
func (n *Router) rearm() {
	next, down := n.nextDeadline()
	if down {
		next = next.Add(-spinLead)
	}
	if next.IsZero() || (!n.armed.IsZero() && !next.Before(n.armed)) {
		return
	}
	if err := n.timer.Set(next); err != nil {
		// Cannot happen with a valid timerfd; never fail silently.
		n.log.Error("arming the VRRP timer failed", "err", err)
		return
	}
	n.armed = next
}

// onTimer fires every timer that is due. When the next deadline is a
// Master_Down_Timer less than spinLead away, it waits for it on the CPU,
// releasing the lock between checks so that an advert arriving meanwhile
// still resets the timer.
func (n *Router) onTimer() {
	for n.tick() {
		runtime.Gosched()
	}
}

// tick fires the due timers once; it reports whether to spin for a
// Master_Down_Timer that is about to expire.
func (n *Router) tick() (spin bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	defer safe.Recover(n.log, "vrrp_timer", n.fail)
	if n.stopping {
		return false
	}
	n.armed = time.Time{} // the timerfd has expired
	now := time.Now()
	for _, in := range n.insts {
		if dl := in.core.NextDeadline(); !dl.IsZero() && !now.Before(dl) {
			n.do(in, in.core.Tick(now))
		}
	}
	next, down := n.nextDeadline()
	if !down || next.IsZero() || next.Sub(time.Now()) > spinLead {
		n.rearm()
		return false
	}
	return true
}

// shutdown stops every instance (priority 0 from masters, addresses removed)
// and waits, bounded, for the workers to finish.
func (n *Router) shutdown() {
	n.mu.Lock()
	now := time.Now()
	for _, in := range n.insts {
		n.do(in, in.core.Shutdown(now))
	}
	n.mu.Unlock()
	deadline := time.After(5 * time.Second)
	for _, in := range n.insts {
		if in.work == nil {
			continue
		}
		in.work.close()
		select {
		case <-in.work.done:
		case <-deadline:
			n.log.Error("gave up waiting for address removal on shutdown", "vrrp_instance", in.cfg.Name)
			return
		}
	}
	// Every VIP is removed: nothing is left for a next start to clean.
	n.record.setVIPs(nil)
	// Remove the virtual MAC interfaces (their VIPs are gone): a stopped
	// node must not keep answering for, or announcing, the virtual MAC.
	for _, in := range n.insts {
		if in.cfg.VMAC != "" {
			n.removeVMAC(in.cfg.VMAC)
		}
	}
	// Virtual servers with omega report themselves down, before the bus
	// drains.
	if n.hooks.Released != nil {
		n.hooks.Released()
	}
	// Let the stop notifications (scripts, FIFO) go out.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.bus.Shutdown(ctx); err != nil {
		n.log.Warn("notify scripts still running at exit", "err", err)
	}
}

// undoStart removes what New put on the host when the node will not run
// (a start that fails after New, issue 11 item 6), newest first: the
// nftables table, then the virtual MAC interfaces, each giving back the
// settings it changed outside itself (the parent's ARP settings, the
// rp_filter move) once no other vmac needs them. Nothing else was added
// yet: VIPs come with mastership, IPVS services with Run. A failure is
// logged and the rest is still undone.
func (n *Router) undoStart() {
	if n.accept != nil {
		if err := n.accept.Close(); err != nil {
			n.log.Error("removing the nftables table", "err", err)
		}
		n.accept = nil
	}
	for _, in := range slices.Backward(n.insts) {
		if in.cfg.VMAC != "" {
			n.removeVMAC(in.cfg.VMAC)
		}
	}
}

// Abandon undoes a New whose router will not run: what it put on the host
// goes, and everything it holds is released.
func (n *Router) Abandon() {
	n.undoStart()
	n.close()
}

func (n *Router) close() {
	n.stopOnce.Do(func() {
		n.bursts.stop()
		n.limiter.stop()
		for _, in := range n.insts {
			for _, da := range in.anns {
				da.ann.Close()
			}
		}
		for _, l := range n.links {
			l.Close()
		}
		if n.notifier != nil {
			n.notifier.Close()
		}
		if n.fifo != nil {
			n.fifo.Close()
		}
		if n.bus != nil {
			n.bus.Close()
		}
		for _, s := range n.conns {
			s.conn.Close()
		}
		if n.vips != nil {
			n.vips.Close()
		}
		if n.vmacs != nil {
			n.vmacs.Close()
		}
		if n.accept != nil {
			if err := n.accept.Close(); err != nil {
				n.log.Error("removing the nftables table", "err", err)
			}
		}
	})
}

// readLoop reads packets from one socket, decodes them and runs the
// instance's state machine on them.
func (n *Router) readLoop(s *sock) {
	buf := make([]byte, 9000)
	var d vrrp.Decoded // reused: decoding allocates nothing per packet
	for {
		p, err := s.conn.Read(buf)
		if err != nil {
			var rxe *vrrp.RxError
			if errors.As(err, &rxe) {
				n.rxError(nil, s, err, p.Rx)
				continue
			}
			select {
			case <-n.done:
				return
			default:
			}
			if s.closed.Load() {
				return
			}
			n.log.Error("VRRP socket read failed", "device", s.ifname, "err", err)
			time.Sleep(10 * time.Millisecond) // never spin on a persistent error
			continue
		}
		if !n.handle(s, &d, p) {
			return
		}
	}
}

// handle runs one packet through its instance. The instance table changes
// on a reload: look up, decode and run the state machine under the lock.
// It reports false once the node stops.
func (n *Router) handle(s *sock, d *vrrp.Decoded, p vrrpnet.Packet) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	defer safe.Recover(n.log, "vrrp_receive", n.fail)
	if n.stopping {
		return false
	}
	if n.panicOnPacket {
		n.panicOnPacket = false
		panic(fmt.Sprintf("%s=vrrp_receive: a packet from %s", EnvTestPanic, p.Rx.Src))
	}
	n.receive(s, d, p)
	return true
}

// receive handles one packet from socket s. Called with n.mu held.
func (n *Router) receive(s *sock, d *vrrp.Decoded, p vrrpnet.Packet) {
	var in *instance
	if len(p.Msg) >= 2 {
		in = s.byVRID[p.Msg[1]]
	}
	prefer := vrrp.ChecksumPseudoHeader
	if in != nil {
		prefer = in.cfg.Checksum
	}
	err := vrrp.DecodeTo(d, p.Msg, p.Rx, prefer)
	if err == nil && in == nil {
		err = &vrrp.RxError{Reason: vrrp.ReasonVRID, Detail: fmt.Sprintf("no instance with VRID %d on %s", d.Advert.VRID, s.ifname)}
	}
	if err != nil {
		n.rxError(in, s, err, p.Rx)
		return
	}
	if d.AlternateForm {
		in.met.AlternateChecksum(d.Form.String())
	}
	acts, err := in.core.Receive(rxTime(p.At, time.Now(), in.core.Status().MasterAdverInterval), *d, p.Rx)
	if err != nil {
		n.rxError(in, s, err, p.Rx)
		return
	}
	in.met.AdvertReceived(d.Advert.Priority == vrrp.ResignPriority)
	n.do(in, acts)
	n.rearm()
}

// rxTime is when a packet counts as received for the VRRP timers. The
// kernel's timestamp makes takeovers precise to the microsecond; but a
// packet that waited in the socket longer than an advert interval means the
// daemon was behind (stalled, starved), later adverts may be queued behind
// it, and its kernel time could put the Master_Down_Timer in the past: the
// next tick would take over for a moment before the queued adverts are read
// (the fault suite's stalled master did so, with a stray NA). Such a packet
// counts at its read time: never early, at worst one interval late.
func rxTime(kernel, read time.Time, interval time.Duration) time.Time {
	if interval > 0 && read.Sub(kernel) > interval {
		return read
	}
	return kernel
}

func (n *Router) rxError(in *instance, s *sock, err error, rx vrrp.RxInfo) {
	reason := "unknown"
	var rxe *vrrp.RxError
	if errors.As(err, &rxe) {
		reason = rxe.Reason.String()
	}
	if in != nil {
		in.met.PacketError(reason)
	} else {
		n.metrics.PacketError(s.ifname, s.family, reason)
	}
	// RFC 9568 §7.1: log discards, rate-limited.
	if n.limiter.allow("discarded VRRP packet", s.ifname+" "+reason+" "+rx.Src.String()) {
		n.log.Warn("discarded VRRP packet", "device", s.ifname, "from", rx.Src, "reason", reason, "err", err)
	}
}

// do carries out actions in order; a state change among them is traced
// (trace.go) with the work it queues as children.
func (n *Router) do(in *instance, acts []vrrp.Action) {
	t := n.startTransition(in, acts)
	w := in.snap()
	for _, a := range acts {
		switch a := a.(type) {
		case vrrp.SendAdvert:
			n.send(in, a.Advert)
		case vrrp.AddVIPs:
			in.work.pushJob(jobMaster, t.child(spanVIPAdd, func() { t.failed(n.addVIPs(in, w)) }))
		case vrrp.RemoveVIPs:
			// Stop announcing now, from here: a burst in progress on the
			// worker ends at its next message, and the removal is the
			// worker's next job.
			for _, da := range in.anns {
				da.ann.Cancel()
			}
			in.work.pushJob(jobRelease, t.child(spanVIPRemove, func() { t.failed(n.removeVIPs(in, w)) }))
		case vrrp.Announce:
			if a.LowerPrio {
				in.work.pushJob(jobLowerPrio, func() { n.announce(w, true) })
			} else {
				in.work.pushJob(jobMaster, t.child(spanAnnounce, func() { n.announce(w, false) }))
			}
		case vrrp.StateChange:
			n.stateChange(in, a, t)
		case vrrp.Notice:
			in.met.Notice(a.Reason.String())
			if n.limiter.allow("advert differs from local configuration", in.cfg.Name+" "+a.Reason.String()+" "+a.From.String()) {
				n.log.Warn("advert differs from local configuration", "vrrp_instance", in.cfg.Name,
					"from", a.From, "reason", a.Reason.String(), "detail", a.Detail)
			}
		}
	}
	n.finish(in, t)
}

func (n *Router) send(in *instance, adv vrrp.Advert) {
	for _, dst := range in.dsts {
		b, err := adv.Marshal(in.src, dst, in.cfg.Checksum)
		if err == nil {
			err = in.sock.conn.Write(b, in.src, dst)
		}
		if err != nil {
			in.met.SendFailed()
			if n.limiter.allow("sending advert failed", in.cfg.Name+" "+dst.String()) {
				n.log.Error("sending advert failed", "vrrp_instance", in.cfg.Name, "to", dst, "err", err)
			}
			continue
		}
		in.met.AdvertSent(adv.Priority == vrrp.ResignPriority)
	}
}

// workSnap is what an instance's worker jobs use, taken under the
// router's lock when they are queued: a reload replaces these fields of
// the instance (under the lock) while a job may be running.
type workSnap struct {
	name            string
	vips            []vip.VIP
	addrs           []netip.Addr
	anns            []devAnnouncer
	lowerPrioRepeat int
}

// snap takes the instance's workSnap. Called with n.mu held.
func (in *instance) snap() workSnap {
	return workSnap{name: in.cfg.Name, vips: in.vips, addrs: in.addrs, anns: in.anns, lowerPrioRepeat: in.cfg.GARP.LowerPrioRepeat}
}

func (n *Router) addVIPs(in *instance, w workSnap) error {
	err := n.addVIPList(w.name, w.vips)
	in.met.VIPsOwned(w.addrs)
	return err
}

func (n *Router) removeVIPs(in *instance, w workSnap) error {
	for _, da := range w.anns {
		da.ann.Cancel()
	}
	err := n.removeVIPList(w.name, w.vips)
	in.met.VIPsReleased(w.addrs)
	return err
}

func (n *Router) announce(w workSnap, lowerPrio bool) {
	if lowerPrio && w.lowerPrioRepeat == 0 {
		return // garp lower_prio_repeat 0: no re-announcement (strict mode's default)
	}
	for _, da := range w.anns {
		burst := da.ann.Burst
		if lowerPrio {
			burst = da.ann.BurstLowerPrio
		}
		// Every message is counted by the announcer's OnSent.
		if _, err := burst(da.addrs); err != nil {
			n.log.Error("gratuitous ARP / neighbour advertisement failed", "vrrp_instance", w.name, "err", err)
		}
	}
}

func (n *Router) stateChange(in *instance, sc vrrp.StateChange, t *transition) {
	in.lastCause = sc.Cause
	in.faultCause = ""
	if sc.To == vrrp.StateFault {
		in.faultCause = sc.Cause
	}
	st := in.core.Status()
	in.met.StateChanged(telemetry.VRRPTransition{From: sc.From.String(), To: sc.To.String(), Cause: string(sc.Cause), At: sc.At,
		Priority: st.Priority, MasterPriority: st.MasterPriority, MasterInterval: st.MasterAdverInterval})
	attrs := []any{"vrrp_instance", in.cfg.Name, "vrid", in.cfg.VRID, "device", in.cfg.Interface,
		"from", sc.From.String(), "to", sc.To.String(), "reason", string(sc.Cause), "priority", sc.Priority}
	if sc.Master.IsValid() {
		attrs = append(attrs, "master", sc.Master)
	}
	if sc.To == vrrp.StateBackup {
		attrs = append(attrs, "master_down_interval", st.MasterDownInterval)
	}
	if sc.To == vrrp.StateFault && in.trackFault != "" && sc.Cause == vrrp.CauseTrackerFault {
		attrs = append(attrs, "tracker", in.trackFault)
	}
	n.log.InfoContext(t.ctxOf(), "vrrp state change", attrs...)
	e := events.Event{Time: sc.At, Kind: events.KindInstance, Name: in.cfg.Name, From: sc.From.String(), To: sc.To.String(),
		Reason: string(sc.Cause), Priority: int(sc.Priority), VRID: int(in.cfg.VRID), Interface: in.cfg.Interface, Master: sc.Master}
	// Notify scripts and the FIFO: queued here, run by their sinks.
	t.child(spanNotify, func() { n.bus.Publish(e) })()
	if n.hooks.StateChanged != nil {
		t.child(spanSyncRole, func() { n.hooks.StateChanged(n.cfg, in.cfg.Name, sc.To) })()
	}
	if in.group != nil {
		n.syncGroup(in.group, in, sc.From.String(), sc.To.String(), sc.At)
	}
}
