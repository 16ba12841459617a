// Package node is vigil's composition root: it builds the running node from
// a compiled configuration and owns its lifecycle. For VRRP it opens one raw
// socket per (interface, family), runs every instance's pure state machine in
// a single event loop and carries out the actions: adverts are sent from the
// loop itself, address changes and announcements go to a per-instance
// ordered worker so that netlink latency never delays another instance's
// adverts.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"vigil/node/config"
	"vigil/node/events"
	"vigil/node/track"
	"vigil/telemetry"
	"vigil/vrrp"
	"vigil/vrrp/accept"
	"vigil/vrrp/announce"
	"vigil/vrrp/vip"
	"vigil/vrrp/vmac"
	"vigil/vrrp/vrrpnet"
)

// Node is one running vigil.
type Node struct {
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
	bursts   *burstMemory
	feeds    vsFeeds

	// The load balancer: nil until a config has virtual servers. It runs
	// under lbCtx, which ends after VRRP has shut down.
	lb        *balancer
	lbMetrics *telemetry.LB
	lbCtx     context.Context
	lbDone    chan struct{}
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
	labels []string // vrrp_instance, vrid, device, family
	ifDown bool     // the instance interface is down: FAULT
	// Tracking (tracking.go): the objects tracked, the fault they cause,
	// and the sync group.
	tracks       []trackRef
	trackFault   string // "<kind> <name>" of the tracker holding it in FAULT
	group        *group
	groupFault   bool // held in FAULT by its sync group
	lastOwnFault bool
	// lastCause is the reason of the last state change (status output).
	lastCause vrrp.Cause
	// Counters on the per-advert path, resolved once.
	sent, received, zeroSent, zeroReceived prometheus.Counter
	// garp is vigil_vrrp_gratuitous_sent_total's counter (a
	// prometheus.Counter): the announcers count every message through it,
	// delayed bursts included, from their own goroutines.
	garp atomic.Value
}

// devAnnouncer announces the VIPs an instance keeps on one interface (a VIP
// with dev: is announced there, not on the instance interface).
type devAnnouncer struct {
	ann   *announce.Announcer
	addrs []netip.Addr
}

// Options are the optional dependencies of a Node.
type Options struct {
	Logger  *slog.Logger
	Metrics *telemetry.Registry
}

// New prepares a node: it resolves interfaces and source addresses, opens the
// sockets and removes addresses a crashed earlier run left behind. It fails,
// naming the instance and interface, if anything needed is missing.
func New(cfg *config.Config, opts Options) (*Node, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	reg := opts.Metrics
	if reg == nil {
		reg = telemetry.NewRegistry()
	}
	n := &Node{cfg: cfg, log: log, metrics: reg.VRRP, done: make(chan struct{}), links: map[string]*announce.Link{}, socks: map[string]*sock{}, limiter: newLogLimiter(log, 10*time.Second), bursts: newBurstMemory()}
	vm, err := vip.New()
	if err != nil {
		return nil, err
	}
	n.vips = vm
	n.lbMetrics = reg.LB
	if err := n.build(); err != nil {
		n.close()
		return nil, err
	}
	if err := n.setLB(cfg); err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

func (n *Node) build() error {
	allVIPs := allVIPs(n.cfg)
	primaries := map[string]netip.Addr{} // one address dump per interface and family, not per instance
	for i := range n.cfg.VRRP.Instances {
		in, err := n.newInstance(&n.cfg.VRRP.Instances[i], allVIPs, primaries)
		if err != nil {
			return err
		}
		n.insts = append(n.insts, in)
	}
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

// newInstance prepares one instance: its virtual MAC interface if any, its
// socket (shared by the instances of an interface and family), its source
// address, state machine, announcers and metrics. It is registered on its
// socket but not started.
func (n *Node) newInstance(ic *config.Instance, allVIPs []netip.Addr, primaries map[string]netip.Addr) (*instance, error) {
	fam := ic.Family()
	dev := ic.Interface // where adverts and VIPs go: the interface, or its vmac
	if ic.VMAC != "" {
		if err := n.ensureVMAC(ic); err != nil {
			return nil, fmt.Errorf("instance %q: %w", ic.Name, err)
		}
		dev = ic.VMAC
	}
	key := dev + "/" + strconv.Itoa(fam)
	s := n.socks[key]
	if s == nil {
		conn, err := vrrpnet.Listen(dev, fam, true)
		if err != nil {
			return nil, fmt.Errorf("instance %q: %w", ic.Name, err)
		}
		s = &sock{conn: conn, ifname: dev, family: fam, byVRID: map[uint8]*instance{}}
		n.socks[key] = s
		n.conns = append(n.conns, s)
		if n.running {
			n.startReader(s)
		}
	}
	if prev := s.byVRID[ic.VRID]; prev != nil {
		// config validation rejects this; keep the driver safe regardless.
		return nil, fmt.Errorf("instances %q and %q both use VRID %d on %s", prev.cfg.Name, ic.Name, ic.VRID, key)
	}
	in := &instance{cfg: ic, sock: s}
	// The IPv4 source is the parent's primary address even with a vmac
	// (the vmac holds only VIPs); IPv6 sends from the vmac's own random
	// link-local address.
	srcDev := ic.Interface
	if fam == 6 {
		srcDev = dev
	}
	pkey := srcDev + "/" + strconv.Itoa(fam)
	switch {
	case ic.Unicast != nil && ic.Unicast.Source.IsValid():
		in.src = ic.Unicast.Source
		if ok, err := vrrpnet.HasAddr(ic.Interface, in.src); err != nil {
			return nil, fmt.Errorf("instance %q: %w", ic.Name, err)
		} else if !ok {
			n.log.Warn("unicast source address is not on the interface; adverts will still carry it",
				"vrrp_instance", ic.Name, "device", ic.Interface, "source", in.src)
		}
	case primaries[pkey].IsValid():
		in.src = primaries[pkey]
	default:
		src, err := vrrpnet.PrimaryAddr(srcDev, fam, allVIPs)
		if err != nil {
			return nil, fmt.Errorf("instance %q: %w", ic.Name, err)
		}
		in.src, primaries[pkey] = src, src
	}
	switch {
	case ic.Unicast != nil:
		in.dsts = ic.Unicast.Peers
	case fam == 6:
		in.dsts = []netip.Addr{vrrp.GroupIPv6}
	default:
		in.dsts = []netip.Addr{vrrp.GroupIPv4}
	}
	core, err := vrrp.NewInstance(ic.VRRP(in.src))
	if err != nil {
		return nil, err
	}
	in.core = core
	n.setVIPs(in, ic)
	if err := n.buildAnnouncers(in); err != nil {
		return nil, fmt.Errorf("instance %q: %w", ic.Name, err)
	}
	in.labels = []string{ic.Name, strconv.Itoa(int(ic.VRID)), ic.Interface, "ipv" + strconv.Itoa(fam)}
	s.byVRID[ic.VRID] = in
	n.initMetrics(in)
	return in, nil
}

// setVIPs fills the instance's VIP lists from its config; with a vmac, VIPs
// on the instance interface go on the vmac.
func (n *Node) setVIPs(in *instance, ic *config.Instance) {
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

// buildAnnouncers gives the instance one announcer per interface its VIPs
// are on, sharing each interface's sockets with the other instances.
func (n *Node) buildAnnouncers(in *instance) error {
	g := in.cfg.GARP
	cfg := announce.Config{Repeat: g.Repeat, Delay: g.Delay, Interval: g.Interval, Refresh: g.Refresh,
		RefreshRepeat: g.RefreshRepeat, LowerPrioRepeat: g.LowerPrioRepeat, LowerPrioDelay: g.LowerPrioDelay}
	byDev := map[string]int{}
	for _, v := range in.vips {
		i, ok := byDev[v.Dev]
		if !ok {
			link := n.links[v.Dev]
			if link == nil {
				var err error
				if link, err = announce.NewLink(v.Dev, n.log); err != nil {
					return err
				}
				n.links[v.Dev] = link
			}
			ann, err := link.Announcer(cfg)
			if err != nil {
				return err
			}
			ann.OnSent(func() {
				if c, ok := in.garp.Load().(prometheus.Counter); ok {
					c.Inc()
				}
			})
			i = len(in.anns)
			byDev[v.Dev] = i
			in.anns = append(in.anns, devAnnouncer{ann: ann})
		}
		in.anns[i].addrs = append(in.anns[i].addrs, v.Prefix.Addr())
	}
	return nil
}

// blockNonAccepting enforces Accept_Mode False (RFC 5798 §6.4.3: a non-owner
// master must not accept packets to the VIPs) with nftables drop rules that
// stay for the whole run: they only match while the VIPs are local, so there
// is no window at a transition where a non-accepting master accepts. ARP and
// IPv6 neighbour discovery for the VIPs still work. Configurations that
// accept (the default) never touch nftables.
func (n *Node) blockNonAccepting() error {
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

// reconcileStale removes VIPs of non-owner instances that are already on the
// interfaces: a crashed run (no graceful stop) leaves them behind, and a node
// that starts as Backup must not hold them. Owners keep theirs. One address
// dump covers every instance.
func (n *Node) reconcileStale() error {
	var all []vip.VIP
	owner := map[netip.Addr]string{}
	for _, in := range n.insts {
		if in.core.Config().Owner() {
			continue
		}
		all = append(all, in.vips...)
		for _, a := range in.addrs {
			owner[a] = in.cfg.Name
		}
	}
	if len(all) == 0 {
		return nil
	}
	present, err := n.vips.Present(all)
	if err != nil {
		return fmt.Errorf("reading interface addresses: %w", err)
	}
	if len(present) == 0 {
		return nil
	}
	for _, v := range present {
		n.log.Warn("removing a virtual address left by an earlier run", "vrrp_instance", owner[v.Prefix.Addr()], "vip", v.String())
	}
	if err := n.vips.Remove(present); err != nil {
		return fmt.Errorf("removing stale VIPs: %w", err)
	}
	return nil
}

func (n *Node) initMetrics(in *instance) {
	m, l := n.metrics, in.labels
	for _, st := range telemetry.VRRPStates {
		m.State.WithLabelValues(append(slices.Clone(l), st)...).Set(b2f(st == "init"))
	}
	c := in.core.Config()
	m.BasePriority.WithLabelValues(l...).Set(float64(c.Priority))
	m.Priority.WithLabelValues(l...).Set(float64(in.core.Priority()))
	m.AdvertInterval.WithLabelValues(l...).Set(c.AdvertInterval.Seconds())
	m.BecomeMaster.WithLabelValues(l...)
	m.ReleaseMaster.WithLabelValues(l...)
	in.received = m.AdvertsReceived.WithLabelValues(l...)
	in.sent = m.AdvertsSent.WithLabelValues(l...)
	in.zeroReceived = m.PrioZeroReceived.WithLabelValues(l...)
	in.zeroSent = m.PrioZeroSent.WithLabelValues(l...)
	in.garp.Store(m.Gratuitous.WithLabelValues(l...))
	for _, a := range in.addrs {
		m.VIPOwned.WithLabelValues(append(slices.Clone(l), a.String())...).Set(0)
	}
}

// deleteMetrics drops the instance's series (removed or renamed by a
// reload), so dashboards do not show ghosts.
func (n *Node) deleteMetrics(in *instance) {
	m, l := n.metrics, in.labels
	for _, st := range telemetry.VRRPStates {
		m.State.DeleteLabelValues(append(slices.Clone(l), st)...)
	}
	for _, v := range []interface{ DeleteLabelValues(...string) bool }{m.BasePriority, m.Priority, m.MasterPriority,
		m.AdvertInterval, m.LastTransition, m.BecomeMaster, m.ReleaseMaster, m.AdvertsReceived, m.AdvertsSent,
		m.PrioZeroReceived, m.PrioZeroSent, m.SendErrors, m.Gratuitous} {
		v.DeleteLabelValues(l...)
	}
	for _, a := range in.addrs {
		m.VIPOwned.DeleteLabelValues(append(slices.Clone(l), a.String())...)
	}
}

// setStateMetrics sets the state set to the instance's current state.
func (n *Node) setStateMetrics(in *instance) {
	cur := in.core.State().String()
	for _, st := range telemetry.VRRPStates {
		n.metrics.State.WithLabelValues(append(slices.Clone(in.labels), st)...).Set(b2f(st == cur))
	}
	for _, a := range in.addrs {
		n.metrics.VIPOwned.WithLabelValues(append(slices.Clone(in.labels), a.String())...).Set(b2f(cur == "master"))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// spinLead is how early the timer wakes before a Master_Down_Timer
// deadline; the rest is waited on a running CPU. A sleeping thread on a
// virtual machine wakes up to a few milliseconds late (timerfd wake-ups
// measured up to ~3 ms late at p99 on a busy 2-core VM), and at a takeover
// every millisecond counts; spinning costs at most this long per takeover
// (Adver_Timer deadlines, the routine ones, are not spun for).
const spinLead = 4 * time.Millisecond

// Run starts every instance and runs until ctx ends; then it stops
// gracefully: masters send priority 0 and remove their addresses.
//
// The instances are driven without an event-loop goroutine: each socket's
// reader and the timer goroutine take n.mu and run the state machines
// themselves, so a packet costs one wake-up, not a hand-off.
func (n *Node) Run(ctx context.Context) error {
	defer n.close()
	timer, err := newDeadlineTimer()
	if err != nil {
		return err
	}
	defer timer.Close()
	n.timer = timer
	for _, in := range n.insts {
		in.work = n.newWorker()
	}
	n.mu.Lock()
	n.started = time.Now()
	// Subscribe before reading the current state, so no change falls
	// between the two (the watcher waits for the lock).
	if err := n.watchLinks(); err != nil {
		n.mu.Unlock()
		return err
	}
	if err := n.initLinks(); err != nil {
		n.mu.Unlock()
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
	trackCtx, stopTracking := context.WithCancel(ctx)
	defer stopTracking()
	n.runTracking(trackCtx)
	lbCtx, stopLB := context.WithCancel(context.Background())
	defer stopLB()
	n.mu.Lock()
	n.lbCtx = lbCtx
	n.startLB()
	n.mu.Unlock()

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

	<-ctx.Done()
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
	lbDone := n.lbDone
	n.mu.Unlock()
	n.readers.Wait()
	// The VIPs are released; now the virtual services go (keepalived's
	// order on stop).
	stopLB()
	if lbDone != nil {
		<-lbDone
	}
	n.log.Info("vigil stopped")
	return nil
}

// newWorker returns an instance's worker.
func (n *Node) newWorker() *worker {
	w := newWorker(n.bursts)
	w.log = n.log
	return w
}

// startReader runs the socket's reader. Called with n.mu held.
func (n *Node) startReader(s *sock) {
	n.readers.Add(1)
	go func() {
		defer n.readers.Done()
		n.readLoop(s)
	}()
}

// nextDeadline returns the earliest deadline of any instance and whether it
// is a Master_Down_Timer (an instance in Backup). Called with n.mu held.
func (n *Node) nextDeadline() (time.Time, bool) {
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
func (n *Node) rearm() {
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
func (n *Node) onTimer() {
	for {
		n.mu.Lock()
		if n.stopping {
			n.mu.Unlock()
			return
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
			n.mu.Unlock()
			return
		}
		n.mu.Unlock()
		runtime.Gosched()
	}
}

// shutdown stops every instance (priority 0 from masters, addresses removed)
// and waits, bounded, for the workers to finish.
func (n *Node) shutdown() {
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
	// Remove the virtual MAC interfaces (their VIPs are gone): a stopped
	// node must not keep answering for, or announcing, the virtual MAC.
	for _, in := range n.insts {
		if in.cfg.VMAC != "" && n.vmacs != nil {
			if err := n.vmacs.Remove(in.cfg.VMAC); err != nil {
				n.log.Error("removing the virtual MAC interface", "device", in.cfg.VMAC, "err", err)
			}
		}
	}
	// Virtual servers with omega report themselves down, before the bus
	// drains.
	n.mu.Lock()
	bal, vss := n.lb, n.cfg.LB.VirtualServers
	n.mu.Unlock()
	if bal != nil {
		bal.omega(vss)
	}
	// Let the stop notifications (scripts, FIFO) go out.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.bus.Shutdown(ctx); err != nil {
		n.log.Warn("notify scripts still running at exit", "err", err)
	}
}

func (n *Node) close() {
	n.stopOnce.Do(func() {
		n.bursts.stop()
		n.limiter.stop()
		if n.lb != nil && n.lbDone == nil { // built but never run
			n.lb.kernel.Close()
		}
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
func (n *Node) readLoop(s *sock) {
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
		// The instance table changes on a reload: look up, decode and run
		// the state machine under the lock.
		n.mu.Lock()
		if n.stopping {
			n.mu.Unlock()
			return
		}
		n.receive(s, &d, p)
		n.mu.Unlock()
	}
}

// receive handles one packet from socket s. Called with n.mu held.
func (n *Node) receive(s *sock, d *vrrp.Decoded, p vrrpnet.Packet) {
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
		n.metrics.AlternateForm.WithLabelValues(append(slices.Clone(in.labels), d.Form.String())...).Inc()
	}
	acts, err := in.core.Receive(p.At, *d, p.Rx)
	if err != nil {
		n.rxError(in, s, err, p.Rx)
		return
	}
	in.received.Inc()
	if d.Advert.Priority == vrrp.ResignPriority {
		in.zeroReceived.Inc()
	}
	n.do(in, acts)
	n.rearm()
}

func (n *Node) rxError(in *instance, s *sock, err error, rx vrrp.RxInfo) {
	reason := "unknown"
	var rxe *vrrp.RxError
	if errors.As(err, &rxe) {
		reason = rxe.Reason.String()
	}
	labels := []string{"", "", s.ifname, "ipv" + strconv.Itoa(s.family)}
	if in != nil {
		labels = slices.Clone(in.labels)
	}
	n.metrics.PacketErrors.WithLabelValues(append(labels, reason)...).Inc()
	// RFC 9568 §7.1: log discards, rate-limited.
	if n.limiter.allow("discarded VRRP packet", s.ifname+" "+reason+" "+rx.Src.String()) {
		n.log.Warn("discarded VRRP packet", "device", s.ifname, "from", rx.Src, "reason", reason, "err", err)
	}
}

// do carries out actions in order.
func (n *Node) do(in *instance, acts []vrrp.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case vrrp.SendAdvert:
			n.send(in, a.Advert)
		case vrrp.AddVIPs:
			in.work.pushJob(jobMaster, func() { n.addVIPs(in) })
		case vrrp.RemoveVIPs:
			// Stop announcing now, from here: a burst in progress on the
			// worker ends at its next message, and the removal is the
			// worker's next job.
			for _, da := range in.anns {
				da.ann.Cancel()
			}
			in.work.pushJob(jobRelease, func() { n.removeVIPs(in) })
		case vrrp.Announce:
			if a.LowerPrio {
				in.work.pushJob(jobLowerPrio, func() { n.announce(in, true) })
			} else {
				in.work.pushJob(jobMaster, func() { n.announce(in, false) })
			}
		case vrrp.StateChange:
			n.stateChange(in, a)
		case vrrp.Notice:
			n.metrics.Notices.WithLabelValues(append(slices.Clone(in.labels), a.Reason.String())...).Inc()
			if n.limiter.allow("advert differs from local configuration", in.cfg.Name+" "+a.Reason.String()+" "+a.From.String()) {
				n.log.Warn("advert differs from local configuration", "vrrp_instance", in.cfg.Name,
					"from", a.From, "reason", a.Reason.String(), "detail", a.Detail)
			}
		}
	}
}

func (n *Node) send(in *instance, adv vrrp.Advert) {
	for _, dst := range in.dsts {
		b, err := adv.Marshal(in.src, dst, in.cfg.Checksum)
		if err == nil {
			err = in.sock.conn.Write(b, in.src, dst)
		}
		if err != nil {
			n.metrics.SendErrors.WithLabelValues(in.labels...).Inc()
			if n.limiter.allow("sending advert failed", in.cfg.Name+" "+dst.String()) {
				n.log.Error("sending advert failed", "vrrp_instance", in.cfg.Name, "to", dst, "err", err)
			}
			continue
		}
		in.sent.Inc()
		if adv.Priority == vrrp.ResignPriority {
			in.zeroSent.Inc()
		}
	}
}

func (n *Node) addVIPs(in *instance) {
	if err := n.vips.Add(in.vips); err != nil {
		n.log.Error("adding virtual addresses failed", "vrrp_instance", in.cfg.Name, "err", err)
	}
	for _, a := range in.addrs {
		n.metrics.VIPOwned.WithLabelValues(append(slices.Clone(in.labels), a.String())...).Set(1)
	}
}

func (n *Node) removeVIPs(in *instance) {
	for _, da := range in.anns {
		da.ann.Cancel()
	}
	if err := n.vips.Remove(in.vips); err != nil {
		n.log.Error("removing virtual addresses failed", "vrrp_instance", in.cfg.Name, "err", err)
	}
	for _, a := range in.addrs {
		n.metrics.VIPOwned.WithLabelValues(append(slices.Clone(in.labels), a.String())...).Set(0)
	}
}

func (n *Node) announce(in *instance, lowerPrio bool) {
	if lowerPrio && in.cfg.GARP.LowerPrioRepeat == 0 {
		return // garp lower_prio_repeat 0: no re-announcement (strict mode's default)
	}
	for _, da := range in.anns {
		burst := da.ann.Burst
		if lowerPrio {
			burst = da.ann.BurstLowerPrio
		}
		// Every message is counted by the announcer's OnSent.
		if _, err := burst(da.addrs); err != nil {
			n.log.Error("gratuitous ARP / neighbour advertisement failed", "vrrp_instance", in.cfg.Name, "err", err)
		}
	}
}

func (n *Node) stateChange(in *instance, sc vrrp.StateChange) {
	in.lastCause = sc.Cause
	m, l := n.metrics, in.labels
	for _, st := range telemetry.VRRPStates {
		m.State.WithLabelValues(append(slices.Clone(l), st)...).Set(b2f(st == sc.To.String()))
	}
	m.Transitions.WithLabelValues(append(slices.Clone(l), sc.From.String(), sc.To.String(), string(sc.Cause))...).Inc()
	m.LastTransition.WithLabelValues(l...).Set(float64(sc.At.UnixNano()) / 1e9)
	if sc.To == vrrp.StateMaster {
		m.BecomeMaster.WithLabelValues(l...).Inc()
	}
	if sc.From == vrrp.StateMaster {
		m.ReleaseMaster.WithLabelValues(l...).Inc()
	}
	st := in.core.Status()
	m.Priority.WithLabelValues(l...).Set(float64(st.Priority))
	m.MasterPriority.WithLabelValues(l...).Set(float64(st.MasterPriority))
	m.AdvertInterval.WithLabelValues(l...).Set(st.MasterAdverInterval.Seconds())
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
	n.log.Info("vrrp state change", attrs...)
	e := events.Event{Time: sc.At, Kind: events.KindInstance, Name: in.cfg.Name, From: sc.From.String(), To: sc.To.String(),
		Reason: string(sc.Cause), Priority: int(sc.Priority), VRID: int(in.cfg.VRID), Interface: in.cfg.Interface, Master: sc.Master}
	n.bus.Publish(e)
	n.followSync(in, sc.To)
	if in.group != nil {
		n.syncGroup(in.group, in, sc.From.String(), sc.To.String(), sc.At)
	}
}
