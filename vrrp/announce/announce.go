// Package announce tells the link that this node now owns a set of virtual
// addresses: gratuitous ARP for IPv4 (mdlayher/arp) and unsolicited
// neighbour advertisements for IPv6 (mdlayher/ndp), in the bursts keepalived
// sends (garp_master_repeat messages now, the same again garp_master_delay
// later).
//
// The frames are keepalived's (FRR's NA differs: source = VIP, R set):
//   - GARP: Ethernet broadcast from the interface MAC, ARP request (op 1),
//     sender = target IP = VIP, sender HW = interface MAC, target HW =
//     ff:ff:ff:ff:ff:ff.
//   - NA: from the interface's link-local address to ff02::1, hop limit 255,
//     ICMPv6 136 with Override set and Solicited clear (Router per
//     Config.Router), target = VIP, Target Link-Layer Address = interface MAC.
//
// The daemon makes one Announcer per VRRP instance, so Cancel (on leaving
// master) only stops that instance's pending burst.
package announce

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"
)

// Config is the announcement schedule of one Announcer.
type Config struct {
	// Repeat is the number of messages per address per burst (keepalived
	// garp_master_repeat, default 5). At least 1.
	Repeat int
	// Interval is the pause between two consecutive messages on the
	// interface (keepalived vrrp_garp_interval / vrrp_gna_interval, default
	// 0). Consecutive messages of one address are at least this far apart
	// too, as the messages of a burst go out in rounds over the addresses.
	Interval time.Duration
	// Delay starts the second burst this long after the first (keepalived
	// garp_master_delay, default 5s); 0 means no second burst.
	Delay time.Duration
	// Refresh re-announces every address this often while the instance
	// stays master (keepalived garp_master_refresh; 0 = off), keeping switch
	// MAC tables and hosts' caches warm; RefreshRepeat messages per address
	// each time (keepalived garp_master_refresh_repeat, default 1).
	Refresh       time.Duration
	RefreshRepeat int
	// LowerPrioRepeat and LowerPrioDelay shape BurstLowerPrio, sent when a
	// master hears a lower priority (a dual master healing: keepalived
	// garp_lower_prio_repeat / garp_lower_prio_delay). Zero Repeat means the
	// same as Repeat; a zero Delay means no second burst.
	LowerPrioRepeat int
	LowerPrioDelay  time.Duration
	// StaleAfter drops an announcement that runs this much later than it
	// was due (0: never): a delayed burst or refresh whose timer fires
	// late, or a burst whose pause between two messages overran. That
	// happens when the process was stopped or starved (SIGSTOP, a frozen
	// VM) past the point where it was still master for sure; sending then,
	// before the adverts queued meanwhile are read, would point the hosts
	// at a node about to release the addresses (seen in the fault suite:
	// a master resumed after a stall sent its pending second burst while
	// another node was master). Set it to about the advert interval.
	StaleAfter time.Duration
	// Router sets the R flag of neighbour advertisements. Leave it false
	// unless this node routes IPv6 for hosts that use the VIP as their
	// gateway: an NA with R clear makes such hosts drop it from their
	// default router list (RFC 4861 §7.2.5). keepalived sets it when the
	// interface forwards IPv6; FRR always sets it.
	Router bool
}

// DefaultConfig returns keepalived's defaults: 5 messages now, 5 more after
// 5 s, no pacing.
func DefaultConfig() Config {
	return Config{Repeat: 5, Delay: 5 * time.Second}
}

func (c Config) validate() error {
	switch {
	case c.Repeat < 1:
		return fmt.Errorf("announce: repeat %d: must be at least 1", c.Repeat)
	case c.Interval < 0:
		return fmt.Errorf("announce: interval %s: must not be negative", c.Interval)
	case c.Delay < 0:
		return fmt.Errorf("announce: delay %s: must not be negative", c.Delay)
	case c.Refresh < 0 || (c.Refresh > 0 && c.Refresh < 100*time.Millisecond):
		return fmt.Errorf("announce: refresh %s: must be 0 (off) or at least 100ms", c.Refresh)
	case c.RefreshRepeat < 0 || c.LowerPrioRepeat < 0:
		return fmt.Errorf("announce: refresh repeat %d / lower-priority repeat %d: must not be negative", c.RefreshRepeat, c.LowerPrioRepeat)
	case c.LowerPrioDelay < 0:
		return fmt.Errorf("announce: lower-priority delay %s: must not be negative", c.LowerPrioDelay)
	case c.StaleAfter < 0:
		return fmt.Errorf("announce: stale-after %s: must not be negative", c.StaleAfter)
	}
	return nil
}

// ErrClosed is returned by Burst after Close.
var ErrClosed = errors.New("announce: announcer closed")

// writeTimeout bounds one socket write; a send holds the Announcer's lock,
// and Cancel must not wait long behind it.
const writeTimeout = time.Second

// ethernetARP is ETH_P_ARP, the protocol the packet socket is bound to.
const ethernetARP = 0x0806

// allNodes is the destination of an unsolicited NA (RFC 4861 §7.2.6).
var allNodes = netip.MustParseAddr("ff02::1")

// Link owns the sockets that send GARPs and unsolicited NAs on one
// interface. Every Announcer of the interface shares one Link, so a node
// with many instances on an interface holds two sockets, not two per
// instance.
//
// Sockets: NewLink resolves the interface and opens the AF_PACKET socket for
// GARP and, if the interface has an IPv6 link-local address, the ICMPv6
// socket for NA, so both are bound in the network namespace of the thread
// calling NewLink. A socket that could not be opened, or that failed a send,
// is (re)opened on the next message of its family, in the namespace of the
// thread sending it, after looking the interface up again; a recreated
// interface is thus picked up after one failed burst. The MAC is read at
// those moments only: when it changes without a send failing (moving to a
// vMAC, say), make a new Link.
//
// A Link is safe for concurrent use.
type Link struct {
	ifname string
	log    *slog.Logger

	mu      sync.Mutex
	closed  bool
	ifi     *net.Interface // as resolved when the sockets were opened
	arpConn *packet.Conn   // nil until opened
	ndpConn *ndp.Conn      // nil until opened
}

// NewLink opens the sockets for ifname. It fails when the interface does not
// exist, has no Ethernet address, or the GARP socket cannot be opened; a
// missing IPv6 link-local address only fails the NAs (see Link). A nil log
// discards log output.
func NewLink(ifname string, log *slog.Logger) (*Link, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Link{ifname: ifname, log: log.With("interface", ifname)}
	l.mu.Lock()
	defer l.mu.Unlock()
	ifi, err := l.resolveLocked()
	if err != nil {
		return nil, err
	}
	if _, err := l.openARPLocked(ifi); err != nil {
		return nil, err
	}
	if _, err := l.openNDPLocked(ifi); err != nil {
		// An IPv4-only instance must not fail for want of IPv6, and the
		// link-local address may appear later (it goes away with the link).
		l.log.Debug("NA socket not open yet; will retry on the first IPv6 burst", "error", err)
	}
	return l, nil
}

// Close closes the sockets. Announcers using the Link fail their sends
// afterwards. It is idempotent.
func (l *Link) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return errors.Join(l.closeARPLocked(), l.closeNDPLocked())
}

// Announcer sends the bursts of one VRRP instance over a Link.
//
// Concurrency: all methods are safe for concurrent use. Burst sends its
// first burst synchronously and the delayed one from a timer goroutine; the
// two never interleave on a socket. After Cancel or Close returns, no message
// of any earlier Burst is sent.
type Announcer struct {
	link    *Link
	ownLink bool // made by New: Close closes the Link too
	cfg     Config
	log     *slog.Logger

	mu     sync.Mutex
	closed bool
	// gen is bumped by Cancel and Close. A burst remembers the generation it
	// started in and sends each message only while that is still current,
	// checked under mu right before the write.
	gen uint64
	// stop is closed by Cancel and Close to wake bursts pausing for Interval.
	stop    chan struct{}
	pending map[uint64]*time.Timer // delayed bursts and refreshes not yet started, by id
	nextID  uint64
	// refreshing: a refresh chain runs for this generation.
	refreshing bool

	sentARP atomic.Uint64
	sentNA  atomic.Uint64
	// onSent, if set, is called after every message sent (immediate,
	// delayed and refresh bursts alike), under mu.
	onSent func()
	// now is time.Now; tests move it to make a timer late.
	now func() time.Time
}

// New returns an Announcer with a Link of its own for the interface ifname
// (see NewLink for the errors).
func New(ifname string, cfg Config, log *slog.Logger) (*Announcer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	l, err := NewLink(ifname, log)
	if err != nil {
		return nil, err
	}
	a, _ := l.Announcer(cfg)
	a.ownLink = true
	return a, nil
}

// Announcer returns an Announcer with schedule cfg that sends over l.
// Closing it leaves l open.
func (l *Link) Announcer(cfg Config) (*Announcer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Announcer{
		link:    l,
		cfg:     cfg,
		log:     l.log,
		stop:    make(chan struct{}),
		pending: map[uint64]*time.Timer{},
		now:     time.Now,
	}, nil
}

// Sent returns how many GARPs and NAs this Announcer has sent, for
// vigil_vrrp_gratuitous_sent_total{family="ipv4"|"ipv6"}.
func (a *Announcer) Sent() (arp, na uint64) {
	return a.sentARP.Load(), a.sentNA.Load()
}

// OnSent makes fn be called after every message this Announcer sends,
// including those of the delayed bursts and refreshes that run on timer
// goroutines (the caller's count of Burst's return value misses those).
// fn must be quick; it runs while the Announcer's lock is held. Set it
// before the first Burst.
func (a *Announcer) OnSent(fn func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onSent = fn
}

// Burst sends Repeat messages for every address now (GARP for IPv4, NA for
// IPv6), in rounds over the addresses paced by Interval, and schedules the
// same again after Delay. It returns the number of messages sent now and a
// joined error naming each address that failed (an address that fails is
// not retried within the burst). Burst blocks only for the first burst,
// which takes about (Repeat×len(addrs)-1)×Interval; the delayed burst runs
// on a timer goroutine and reports failures to the log. Addresses that are
// not unicast are rejected; duplicates are sent once. A Burst does not
// cancel the delayed burst of an earlier one (a reload adding VIPs to a
// master announces the new ones without dropping the old ones' second
// burst). If Cancel or Close runs meanwhile, the burst stops and Burst
// returns what it had sent.
func (a *Announcer) Burst(addrs []netip.Addr) (int, error) {
	return a.burst(addrs, a.cfg.Repeat, a.cfg.Delay, true)
}

// BurstLowerPrio is Burst with the lower-priority schedule (LowerPrioRepeat,
// LowerPrioDelay): a master that hears a lower priority re-announces so
// that hosts which followed the other master come back.
func (a *Announcer) BurstLowerPrio(addrs []netip.Addr) (int, error) {
	repeat := a.cfg.LowerPrioRepeat
	if repeat == 0 {
		repeat = a.cfg.Repeat
	}
	return a.burst(addrs, repeat, a.cfg.LowerPrioDelay, false)
}

func (a *Announcer) burst(addrs []netip.Addr, repeat int, delay time.Duration, refresh bool) (int, error) {
	list, errs := a.clean(addrs)
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return 0, ErrClosed
	}
	gen, stop := a.gen, a.stop
	a.mu.Unlock()

	n, err := a.send(gen, stop, list, repeat)
	errs = append(errs, err)
	if len(list) > 0 {
		if delay > 0 {
			due := a.now().Add(delay)
			a.schedule(gen, delay, func(id uint64) { a.delayed(id, gen, stop, list, repeat, due) })
		}
		if refresh && a.cfg.Refresh > 0 {
			a.mu.Lock()
			start := !a.refreshing && !a.closed && a.gen == gen
			a.refreshing = a.refreshing || start
			a.mu.Unlock()
			if start {
				a.scheduleRefresh(gen, stop, list)
			}
		}
	}
	return n, errors.Join(errs...)
}

// schedule runs fn(id) after d unless generation gen is cancelled first.
func (a *Announcer) schedule(gen uint64, d time.Duration, fn func(id uint64)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || a.gen != gen {
		return
	}
	id := a.nextID
	a.nextID++
	a.pending[id] = time.AfterFunc(d, func() { fn(id) })
}

// scheduleRefresh sends RefreshRepeat messages per address every Refresh
// for as long as generation gen lives (Cancel ends it with the instance's
// mastership).
func (a *Announcer) scheduleRefresh(gen uint64, stop chan struct{}, list []netip.Addr) {
	repeat := max(a.cfg.RefreshRepeat, 1)
	due := a.now().Add(a.cfg.Refresh)
	a.schedule(gen, a.cfg.Refresh, func(id uint64) {
		a.mu.Lock()
		delete(a.pending, id)
		current := !a.closed && a.gen == gen
		a.mu.Unlock()
		if !current {
			return
		}
		if a.stale(due) {
			a.log.Debug("periodic gratuitous ARP/NA refresh skipped: it is late, the process was stalled", "late", a.now().Sub(due))
			a.scheduleRefresh(gen, stop, list)
			return
		}
		if n, err := a.send(gen, stop, list, repeat); err != nil {
			a.log.Warn("periodic gratuitous ARP/NA refresh failed", "sent", n, "error", err)
		}
		a.scheduleRefresh(gen, stop, list)
	})
}

// Cancel stops pending delayed bursts and any burst in progress; the
// Announcer stays usable. Call it when the instance leaves master.
func (a *Announcer) Cancel() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.cancelLocked()
	a.stop = make(chan struct{})
}

// Close cancels like Cancel; an Announcer made by New also closes its Link.
// It is idempotent.
func (a *Announcer) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	a.cancelLocked()
	if a.ownLink {
		return a.link.Close()
	}
	return nil
}

func (a *Announcer) cancelLocked() {
	a.gen++
	a.refreshing = false
	close(a.stop)
	for _, t := range a.pending {
		t.Stop()
	}
	clear(a.pending)
}

// clean drops invalid addresses (with an error each) and duplicates.
func (a *Announcer) clean(addrs []netip.Addr) ([]netip.Addr, []error) {
	var errs []error
	out := make([]netip.Addr, 0, len(addrs))
	for _, ip := range addrs {
		ip = ip.Unmap().WithZone("")
		if !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() || ip.IsLoopback() {
			errs = append(errs, fmt.Errorf("announce: %q on %s: not a unicast address", ip, a.link.ifname))
			continue
		}
		if !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	return out, errs
}

func (a *Announcer) delayed(id, gen uint64, stop chan struct{}, list []netip.Addr, repeat int, due time.Time) {
	a.mu.Lock()
	delete(a.pending, id)
	current := !a.closed && a.gen == gen
	a.mu.Unlock()
	if !current {
		return
	}
	if a.stale(due) {
		a.log.Info("delayed gratuitous ARP/NA burst skipped: it is late, the process was stalled", "late", a.now().Sub(due))
		return
	}
	n, err := a.send(gen, stop, list, repeat)
	if err != nil {
		a.log.Warn("delayed gratuitous ARP/NA burst failed", "sent", n, "error", err)
		return
	}
	a.log.Debug("delayed gratuitous ARP/NA burst sent", "sent", n)
}

// stale reports whether something due at due is too late to send (see
// Config.StaleAfter).
func (a *Announcer) stale(due time.Time) bool {
	return a.cfg.StaleAfter > 0 && a.now().Sub(due) > a.cfg.StaleAfter
}

// send runs one burst of generation gen, repeat messages per address, and
// returns the messages sent.
func (a *Announcer) send(gen uint64, stop chan struct{}, list []netip.Addr, repeat int) (int, error) {
	var (
		n       int
		errs    []error
		failed  = map[netip.Addr]bool{}
		pause   *time.Timer
		started bool // a message was attempted: pace the next one
	)
	for r := 0; r < repeat; r++ {
		for _, ip := range list {
			if failed[ip] {
				continue
			}
			if started && a.cfg.Interval > 0 {
				if pause == nil {
					pause = time.NewTimer(a.cfg.Interval)
					defer pause.Stop()
				} else {
					pause.Reset(a.cfg.Interval)
				}
				due := a.now().Add(a.cfg.Interval)
				select {
				case <-stop:
					return n, errors.Join(errs...)
				case <-pause.C:
				}
				if a.stale(due) {
					a.log.Info("gratuitous ARP/NA burst cut short: it is late, the process was stalled", "late", a.now().Sub(due), "sent", n)
					return n, errors.Join(errs...)
				}
			}
			ok, err := a.sendOne(gen, ip)
			started = true
			if !ok {
				return n, errors.Join(errs...) // cancelled
			}
			if err != nil {
				failed[ip] = true
				errs = append(errs, err)
				continue
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}

// sendOne sends one message for ip unless generation gen was cancelled
// (ok false). Holding mu across the write is what makes Cancel final.
func (a *Announcer) sendOne(gen uint64, ip netip.Addr) (ok bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || a.gen != gen {
		return false, nil
	}
	if ip.Is4() {
		if err := a.link.sendARP(ip); err != nil {
			return true, fmt.Errorf("announce: gratuitous ARP for %s on %s: %w", ip, a.link.ifname, err)
		}
		a.sentARP.Add(1)
		a.notifySent()
		return true, nil
	}
	if err := a.link.sendNA(ip, a.cfg.Router); err != nil {
		return true, fmt.Errorf("announce: unsolicited NA for %s on %s: %w", ip, a.link.ifname, err)
	}
	a.sentNA.Add(1)
	a.notifySent()
	return true, nil
}

// notifySent calls onSent; a.mu is held.
func (a *Announcer) notifySent() {
	if a.onSent != nil {
		a.onSent()
	}
}

// ErrLinkClosed is returned for a send on a closed Link.
var ErrLinkClosed = errors.New("announce: link closed")

func (l *Link) sendARP(ip netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrLinkClosed
	}
	c, err := l.arpLocked()
	if err != nil {
		return err
	}
	mac := l.ifi.HardwareAddr
	p, err := arp.NewPacket(arp.OperationRequest, mac, ip, ethernet.Broadcast, ip)
	if err != nil {
		return fmt.Errorf("build ARP packet: %w", err)
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encode ARP packet: %w", err)
	}
	fb, err := (&ethernet.Frame{
		Destination: ethernet.Broadcast,
		Source:      mac,
		EtherType:   ethernet.EtherTypeARP,
		Payload:     pb,
	}).MarshalBinary()
	if err != nil {
		return fmt.Errorf("encode Ethernet frame: %w", err)
	}
	if err := c.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if _, err := c.WriteTo(fb, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
		// Reopen next time: the interface may have been recreated.
		_ = l.closeARPLocked()
		return err
	}
	return nil
}

func (l *Link) sendNA(ip netip.Addr, router bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrLinkClosed
	}
	c, err := l.ndpLocked()
	if err != nil {
		return err
	}
	na := &ndp.NeighborAdvertisement{
		Router:        router,
		Override:      true,
		TargetAddress: ip,
		Options: []ndp.Option{
			&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: l.ifi.HardwareAddr},
		},
	}
	if err := c.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	// A nil control message sends from the bound link-local address with
	// hop limit 255 out of this interface.
	if err := c.WriteTo(na, nil, allNodes); err != nil {
		// Reopen next time: the link-local address may have changed.
		_ = l.closeNDPLocked()
		return err
	}
	return nil
}

// resolveLocked looks the interface up by name. If its index or MAC changed
// since the sockets were opened, it closes them so they are reopened on the
// new interface and no frame carries a stale MAC.
func (l *Link) resolveLocked() (*net.Interface, error) {
	ifi, err := net.InterfaceByName(l.ifname)
	if err != nil {
		return nil, fmt.Errorf("announce: look up interface %s: %w", l.ifname, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("announce: interface %s has no Ethernet address (%q)", l.ifname, ifi.HardwareAddr)
	}
	if l.ifi != nil && (l.ifi.Index != ifi.Index || !bytes.Equal(l.ifi.HardwareAddr, ifi.HardwareAddr)) {
		_ = l.closeARPLocked()
		_ = l.closeNDPLocked()
	}
	l.ifi = ifi
	return ifi, nil
}

func (l *Link) arpLocked() (*packet.Conn, error) {
	if l.arpConn != nil {
		return l.arpConn, nil
	}
	ifi, err := l.resolveLocked()
	if err != nil {
		return nil, err
	}
	return l.openARPLocked(ifi)
}

func (l *Link) openARPLocked(ifi *net.Interface) (*packet.Conn, error) {
	// Bound to ARP so the kernel tags what we send correctly, with a filter
	// that accepts nothing: this socket only sends, and must not queue every
	// ARP frame on the link.
	drop, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		return nil, fmt.Errorf("announce: assemble drop-all filter: %w", err)
	}
	c, err := packet.Listen(ifi, packet.Raw, ethernetARP, &packet.Config{Filter: drop})
	if err != nil {
		return nil, fmt.Errorf("announce: open ARP socket on %s: %w", l.ifname, err)
	}
	l.arpConn = c
	return c, nil
}

func (l *Link) ndpLocked() (*ndp.Conn, error) {
	if l.ndpConn != nil {
		return l.ndpConn, nil
	}
	ifi, err := l.resolveLocked()
	if err != nil {
		return nil, err
	}
	return l.openNDPLocked(ifi)
}

func (l *Link) openNDPLocked(ifi *net.Interface) (*ndp.Conn, error) {
	c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return nil, fmt.Errorf("announce: open NDP socket on %s (needs an IPv6 link-local address): %w", l.ifname, err)
	}
	// Send-only: block every ICMPv6 type so the socket queues nothing.
	var f ipv6.ICMPFilter
	f.SetAll(true)
	if err := c.SetICMPFilter(&f); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("announce: set ICMPv6 filter on %s: %w", l.ifname, err)
	}
	l.ndpConn = c
	return c, nil
}

func (l *Link) closeARPLocked() error {
	if l.arpConn == nil {
		return nil
	}
	err := l.arpConn.Close()
	l.arpConn = nil
	if err != nil {
		return fmt.Errorf("announce: close ARP socket on %s: %w", l.ifname, err)
	}
	return nil
}

func (l *Link) closeNDPLocked() error {
	if l.ndpConn == nil {
		return nil
	}
	err := l.ndpConn.Close()
	l.ndpConn = nil
	if err != nil {
		return fmt.Errorf("announce: close NDP socket on %s: %w", l.ifname, err)
	}
	return nil
}
