package vrrp

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// State is a VRRP instance state (RFC 5798 §6.4). RFC 9568 calls Master
// "Active"; we keep the names operators know.
type State uint8

const (
	StateInit State = iota
	StateBackup
	StateMaster
	// StateFault is keepalived's FAULT, not in the RFC: the instance cannot
	// serve (its interface is down, a tracker with weight 0 failed) and
	// neither advertises nor holds addresses.
	StateFault
)

func (s State) String() string {
	switch s {
	case StateInit:
		return "init"
	case StateBackup:
		return "backup"
	case StateMaster:
		return "master"
	case StateFault:
		return "fault"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Cause says why a state changed. The values are the `reason` vocabulary of
// events and of vigil_vrrp_transitions_total.
type Cause string

const (
	CauseStartup        Cause = "startup"                // Initialize → Backup
	CauseAddressOwner   Cause = "address_owner"          // Initialize → Master, priority 255
	CauseMasterDown     Cause = "master_down_timer"      // no advert for Master_Down_Interval
	CausePriorityZero   Cause = "priority_zero_received" // the master resigned
	CausePreempted      Cause = "preempted"              // we took over from a lower-priority master
	CauseHigherPriority Cause = "higher_priority_advert" // a better master appeared
	CauseShutdown       Cause = "shutdown"
	CauseInterfaceDown  Cause = "interface_down" // → Fault: the instance's link went down
	CauseTrackerFault   Cause = "tracker_fault"  // → Fault: a weight-0 tracker failed
	CauseFaultCleared   Cause = "fault_cleared"  // Fault → Backup (or Master for the owner)
	CauseSyncGroup      Cause = "sync_group"     // moved with the other members of its sync group
	CauseAdmin          Cause = "admin"          // an operator asked
	CauseConfigReload   Cause = "config_reload"  // stopped (removed or restarted) by a configuration reload
	// CauseHandoff: a coordinated handoff (vigil vrrp failover, vigil
	// drain): the master resigned for a successor told to take over at
	// once (Resign, ExpectHandoff).
	CauseHandoff Cause = "admin_handoff"
	// CauseArbitration: gossip says another live vigil node is master of
	// this virtual router with a better priority (FleetAdvert).
	CauseArbitration Cause = "gossip_arbitration"
	// CauseNoSource: → Fault while the interface has no usable address to
	// send adverts from (an IPv6 link-local address still tentative after
	// the link came up, or none at all).
	CauseNoSource Cause = "no_source_address"
)

// Config is one virtual router as the core sees it. Drivers fill Primary
// from the interface (primary IPv4 address or IPv6 link-local) or the unicast
// source.
type Config struct {
	Name     string
	VRID     uint8
	Version  uint8 // 2 or 3; IPv6 needs 3
	Priority uint8 // 1..254, or 255 for the address owner
	// AdvertInterval is Advertisement_Interval: whole seconds for v2,
	// multiples of 10 ms for v3.
	AdvertInterval time.Duration
	Preempt        bool
	// PreemptDelay (keepalived's preempt_delay, an explicit extension): a
	// backup that hears a lower-priority master keeps deferring to it for this
	// long before it starts discarding its adverts, so takeover comes after
	// PreemptDelay + Master_Down_Interval.
	PreemptDelay time.Duration
	// Accept is RFC 5798 Accept_Mode. The owner always accepts.
	Accept bool
	// VIPs are IPvX_Addresses: the advertised addresses, one family.
	VIPs []netip.Addr
	// Primary is our source address; the tie-break compares it (§6.4.3).
	// The zero Addr means "not known yet" (an interface whose IPv6
	// link-local address is still tentative): the instance then stays in
	// FAULT, sending nothing, until SetPrimary gives it one.
	Primary netip.Addr
	// Unicast instances send to Peers and accept adverts only from them.
	Unicast bool
	Peers   []netip.Addr
	// AuthType and AuthData are v2 only: AuthNone, or AuthPass with the
	// password padded to 8 bytes (keepalived compatibility).
	AuthType uint8
	AuthData [8]byte
	// CheckAddressList makes a v2 backup drop adverts from non-owners whose
	// address list differs (RFC 3768 §7.1 "MAY verify ... MUST drop"). Off,
	// a mismatch is only reported, as keepalived ≥ 2.3.3 does: dropping turns
	// a VIP added on one node first into a dual master (keepalived #1603).
	CheckAddressList bool
	// LowerPrioNoAdvert restores pre-RFC 9568 behaviour: a master that hears a
	// lower priority does not re-advertise at once.
	LowerPrioNoAdvert bool
	// UnicastMinTTL is the lowest TTL / hop limit accepted on a unicast
	// advert (0 means 255, as for multicast: a packet that crossed a router
	// cannot have it, RFC 9568 §7.1 step 1). keepalived's per-peer min_ttl,
	// for peers reached through routers.
	UnicastMinTTL uint8
}

// Owner reports whether this router owns the addresses (priority 255).
func (c Config) Owner() bool { return c.Priority == OwnerPriority }

// Family returns 4 or 6.
func (c Config) Family() int {
	if len(c.VIPs) > 0 && c.VIPs[0].Is6() {
		return 6
	}
	return 4
}

// Validate checks c against the RFC limits; it returns every problem found.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.VRID == 0 {
		add("vrid 0 is out of range 1..255")
	}
	if c.Version != 2 && c.Version != 3 {
		add("version %d is not 2 or 3", c.Version)
	}
	if c.Priority == 0 {
		add("priority 0 is reserved for a resigning master")
	}
	if _, err := IntervalField(c.Version, c.AdvertInterval); err != nil && (c.Version == 2 || c.Version == 3) {
		errs = append(errs, err)
	}
	if c.PreemptDelay < 0 || c.PreemptDelay > 1000*time.Second {
		add("preempt_delay %s is out of range 0..1000s", c.PreemptDelay)
	}
	if len(c.VIPs) == 0 || len(c.VIPs) > 255 {
		add("%d VIPs; an instance advertises 1..255 addresses", len(c.VIPs))
	}
	fam := c.Family()
	for _, v := range c.VIPs {
		if !v.IsValid() || v.Is4In6() || (v.Is6() != (fam == 6)) {
			add("VIP %s is not of the instance's address family (IPv%d)", v, fam)
		}
	}
	if fam == 6 && c.Version == 2 {
		add("VRRPv2 carries IPv4 only; IPv6 instances need version 3")
	}
	if c.Primary.IsValid() && c.Primary.Is6() != (fam == 6) {
		add("primary address %s is not of the instance's address family", c.Primary)
	}
	if c.Unicast && len(c.Peers) == 0 {
		add("unicast mode needs at least one peer")
	}
	for _, p := range c.Peers {
		if !p.IsValid() || p.Is6() != (fam == 6) || p.IsMulticast() {
			add("unicast peer %s is not a unicast address of the instance's family", p)
		}
	}
	if c.AuthType != AuthNone && (c.Version != 2 || c.AuthType != AuthPass) {
		add("auth type %d: only v2 with no auth or PASS (1) is supported", c.AuthType)
	}
	return errors.Join(errs...)
}

// Action is an effect the driver must carry out, in order.
type Action interface{ isAction() }

// SendAdvert asks the driver to send Advert (to the group, or to every peer).
type SendAdvert struct{ Advert Advert }

// AddVIPs asks the driver to install the virtual addresses. Accept is the
// effective Accept_Mode: true for the owner or when configured.
type AddVIPs struct{ Accept bool }

// RemoveVIPs asks the driver to remove the virtual addresses.
type RemoveVIPs struct{}

// Announce asks for gratuitous ARP (IPv4) or unsolicited neighbour
// advertisements (IPv6) for every VIP (RFC 5798 §6.4.1/§6.4.2). LowerPrio
// marks the re-announcement of a master that heard a lower priority (a dual
// master healing; keepalived garp_lower_prio_repeat), which has its own
// schedule.
type Announce struct{ LowerPrio bool }

// StateChange reports a transition.
type StateChange struct {
	From, To State
	Cause    Cause
	Priority uint8      // our priority at the time
	Master   netip.Addr // the master we now follow, when known
	// PreviousMaster is the master followed before the change, when known
	// (tracing links a takeover to that master's story).
	PreviousMaster netip.Addr
	At             time.Time
}

// Notice reports an accepted advert that deserves a counter or a log line.
type Notice struct {
	Reason Reason
	From   netip.Addr
	Detail string
}

func (SendAdvert) isAction()  {}
func (AddVIPs) isAction()     {}
func (RemoveVIPs) isAction()  {}
func (Announce) isAction()    {}
func (StateChange) isAction() {}
func (Notice) isAction()      {}

// Instance is one virtual router's state machine (RFC 5798 §6.4, with the RFC
// 9568 changes and the RFC 3768 differences for v2). It does no I/O and reads
// no clock: every input carries the time, and the driver calls Tick at or
// after NextDeadline. It is not safe for concurrent use.
type Instance struct {
	cfg      Config
	state    State
	priority uint8 // effective priority

	masterAdverInterval time.Duration
	downTimer           time.Time // Master_Down_Timer; zero = not running
	adverTimer          time.Time // Adver_Timer; zero = not running
	preemptUntil        time.Time // end of the preempt_delay window; zero = none

	master         netip.Addr
	masterPriority uint8
	sawResign      bool // the down timer was cut to Skew_Time by a priority-0 advert
	sawLower       bool // we are discarding a lower-priority master's adverts
	lastChange     time.Time
	// lastLowerAnswer is when a master last answered a lower-priority
	// advert (advert and announcement); it answers at most once per
	// Advertisement_Interval.
	lastLowerAnswer time.Time
	// faulted is set by SetFault; it holds the instance in StateFault, and
	// decides where Start goes.
	faulted    bool
	faultCause Cause
	// handoffFrom and handoffUntil: a Backup told it is the successor of
	// the master at handoffFrom (ExpectHandoff) takes over at once when
	// that master resigns before handoffUntil.
	handoffFrom  netip.Addr
	handoffUntil time.Time
	// resignedFrom is the last master heard resigning on the wire, at
	// resignedAt: gossip reports of it as master are stale until
	// ResignMemory has passed or it advertises again (FleetAdvert).
	resignedFrom netip.Addr
	resignedAt   time.Time
}

// ResignMemory is how long a resignation heard on the wire outweighs
// gossip reports that its sender is master: the sender's new summary
// reaches the fleet well within it, and a sender that becomes master again
// advertises on the wire, which ends it at once.
const ResignMemory = 10 * time.Second

// NewInstance returns an instance in the Initialize state.
func NewInstance(cfg Config) (*Instance, error) {
	cfg.VIPs = slices.Clone(cfg.VIPs)
	cfg.Peers = slices.Clone(cfg.Peers)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("vrrp instance %q (vrid %d): %w", cfg.Name, cfg.VRID, err)
	}
	return &Instance{cfg: cfg, priority: cfg.Priority, masterAdverInterval: cfg.AdvertInterval}, nil
}

// Config returns the instance's configuration.
func (i *Instance) Config() Config { return i.cfg }

// State returns the current state.
func (i *Instance) State() State { return i.state }

// Priority returns the effective priority.
func (i *Instance) Priority() uint8 { return i.priority }

// Status is a snapshot for status output and metrics.
type Status struct {
	State               State
	Priority            uint8
	Master              netip.Addr // last master heard (ourselves when master)
	MasterPriority      uint8
	MasterAdverInterval time.Duration
	MasterDownInterval  time.Duration
	LastTransition      time.Time
}

// Status returns a snapshot of the instance.
func (i *Instance) Status() Status {
	return Status{
		State:               i.state,
		Priority:            i.priority,
		Master:              i.master,
		MasterPriority:      i.masterPriority,
		MasterAdverInterval: i.masterAdverInterval,
		MasterDownInterval:  i.masterDownInterval(),
		LastTransition:      i.lastChange,
	}
}

// NextDeadline returns when Tick must next be called; zero if no timer runs.
func (i *Instance) NextDeadline() time.Time {
	switch i.state {
	case StateBackup:
		return i.downTimer
	case StateMaster:
		return i.adverTimer
	}
	return time.Time{}
}

func (i *Instance) skewTime() time.Duration {
	return SkewTime(i.cfg.Version, i.priority, i.masterAdverInterval)
}

func (i *Instance) masterDownInterval() time.Duration {
	return MasterDownInterval(i.cfg.Version, i.priority, i.masterAdverInterval)
}

// Advert builds the advertisement this instance sends at priority p.
func (i *Instance) Advert(p uint8) Advert {
	return Advert{
		Version:  i.cfg.Version,
		VRID:     i.cfg.VRID,
		Priority: p,
		Interval: i.cfg.AdvertInterval,
		AuthType: i.cfg.AuthType,
		AuthData: i.cfg.AuthData,
		Addrs:    i.cfg.VIPs,
	}
}

func (i *Instance) change(now time.Time, to State, cause Cause) StateChange {
	sc := StateChange{From: i.state, To: to, Cause: cause, Priority: i.priority, At: now, PreviousMaster: i.master}
	i.state = to
	i.handoffFrom, i.handoffUntil = netip.Addr{}, time.Time{}
	i.lastChange = now
	if to == StateMaster {
		i.master = i.cfg.Primary
		i.masterPriority = i.priority
	}
	sc.Master = i.master
	return sc
}

// Start is the Startup event (RFC 5798 §6.4.1).
func (i *Instance) Start(now time.Time) []Action {
	if i.state != StateInit {
		return nil
	}
	if !i.faulted && !i.cfg.Primary.IsValid() {
		// No address to send from: only a fault lets the instance run.
		i.faulted, i.faultCause = true, CauseNoSource
	}
	if i.faulted {
		return []Action{i.change(now, StateFault, i.faultCause)}
	}
	if i.cfg.Owner() {
		return i.becomeMaster(now, CauseAddressOwner)
	}
	// v3: Master_Adver_Interval := Advertisement_Interval (§6.4.1).
	i.masterAdverInterval = i.cfg.AdvertInterval
	i.downTimer = now.Add(i.masterDownInterval())
	i.sawResign, i.sawLower = false, false
	i.preemptUntil = time.Time{}
	return []Action{i.change(now, StateBackup, CauseStartup)}
}

// becomeMaster performs the transition to Master: advert first, then the
// addresses, then the announcements, which must follow the addresses
// (§6.4.1/§6.4.2).
func (i *Instance) becomeMaster(now time.Time, cause Cause) []Action {
	i.downTimer = time.Time{}
	i.preemptUntil = time.Time{}
	i.lastLowerAnswer = time.Time{}
	i.adverTimer = now.Add(i.cfg.AdvertInterval)
	sc := i.change(now, StateMaster, cause)
	return []Action{
		SendAdvert{Advert: i.Advert(i.priority)},
		AddVIPs{Accept: i.cfg.Owner() || i.cfg.Accept},
		Announce{},
		sc,
	}
}

// Shutdown is the Shutdown event: a master sends priority 0 and removes its
// addresses (§6.4.3); a backup cancels its timer (§6.4.2).
func (i *Instance) Shutdown(now time.Time) []Action {
	return i.Stop(now, CauseShutdown)
}

// Stop is Shutdown with another reason (CauseConfigReload for an instance
// a reload removes or restarts).
func (i *Instance) Stop(now time.Time, cause Cause) []Action {
	var acts []Action
	switch i.state {
	case StateInit:
		return nil
	case StateMaster:
		acts = append(acts, SendAdvert{Advert: i.Advert(ResignPriority)}, RemoveVIPs{})
	}
	i.downTimer, i.adverTimer, i.preemptUntil = time.Time{}, time.Time{}, time.Time{}
	i.master = netip.Addr{}
	return append(acts, i.change(now, StateInit, cause))
}

// SetVIPs replaces the advertised addresses (a live reload changing only
// the VIPs): the state and timers are kept, and the next advert carries the
// new list. The driver adds and removes the difference on the interface.
func (i *Instance) SetVIPs(vips []netip.Addr) error {
	c := i.cfg
	c.VIPs = slices.Clone(vips)
	if err := c.Validate(); err != nil {
		return fmt.Errorf("vrrp instance %q: %w", c.Name, err)
	}
	i.cfg = c
	return nil
}

// Rename changes the instance's name (a reload renaming it keeps its state).
func (i *Instance) Rename(name string) { i.cfg.Name = name }

// SetPrimary gives the instance the address it sends from (the driver
// follows the interface's addresses; see Config.Primary). It is only
// allowed while the instance sends nothing (Init or Fault): the tie-break
// of §6.4.3 compares this address, so it must not change under a running
// election. The zero Addr takes it away again.
func (i *Instance) SetPrimary(a netip.Addr) error {
	if i.state != StateInit && i.state != StateFault {
		return fmt.Errorf("vrrp instance %q: the source address can only change in init or fault, not in %s", i.cfg.Name, i.state)
	}
	c := i.cfg
	c.Primary = a
	if err := c.Validate(); err != nil {
		return fmt.Errorf("vrrp instance %q: %w", c.Name, err)
	}
	i.cfg = c
	return nil
}

// SetFault puts the instance into FAULT (fault true) or lets it out again
// (keepalived semantics; RFC 5798 has no FAULT state). On the way in a
// master removes its addresses and, for a tracker fault, resigns like a
// shutdown — a priority-0 advert so the best backup takes over after
// Skew_Time. With its interface down it sends nothing: the advert cannot
// arrive, and an IPv6 unicast one would wait for neighbour discovery and
// leave, stale, when the link returns. In FAULT the
// instance sends nothing, holds nothing and ignores adverts. On the way out
// it starts again as at Startup: Backup with a fresh Master_Down_Timer, or
// Master at once for the owner. cause is CauseInterfaceDown or
// CauseTrackerFault going in; leaving is always CauseFaultCleared. Before
// Start, SetFault only records where Start will go.
func (i *Instance) SetFault(now time.Time, fault bool, cause Cause) []Action {
	if fault == i.faulted {
		return nil
	}
	if !fault && !i.cfg.Primary.IsValid() {
		// Never leave FAULT without an address to send from (SetPrimary).
		i.faultCause = CauseNoSource
		return nil
	}
	i.faulted, i.faultCause = fault, cause
	if i.state == StateInit {
		return nil
	}
	if fault {
		var acts []Action
		if i.state == StateMaster {
			if cause != CauseInterfaceDown {
				acts = append(acts, SendAdvert{Advert: i.Advert(ResignPriority)})
			}
			acts = append(acts, RemoveVIPs{})
		}
		i.downTimer, i.adverTimer, i.preemptUntil = time.Time{}, time.Time{}, time.Time{}
		i.master = netip.Addr{}
		return append(acts, i.change(now, StateFault, cause))
	}
	if i.cfg.Owner() {
		return i.becomeMaster(now, CauseFaultCleared)
	}
	i.masterAdverInterval = i.cfg.AdvertInterval
	i.downTimer = now.Add(i.masterDownInterval())
	i.sawResign, i.sawLower = false, false
	return []Action{i.change(now, StateBackup, CauseFaultCleared)}
}

// GoMaster makes a Backup take over at once, as if its Master_Down_Timer had
// fired (keepalived vrrp_sync_group: a member becoming master pulls the
// others along). Other states are left alone.
func (i *Instance) GoMaster(now time.Time, cause Cause) []Action {
	if i.state != StateBackup {
		return nil
	}
	return i.becomeMaster(now, cause)
}

// GoBackup makes a Master step down to Backup without resigning (no
// priority-0 advert: in a sync group the peer is already taking the whole
// group), removing its addresses and arming Master_Down_Timer. Other states
// are left alone.
func (i *Instance) GoBackup(now time.Time, cause Cause) []Action {
	if i.state != StateMaster {
		return nil
	}
	i.adverTimer = time.Time{}
	i.masterAdverInterval = i.cfg.AdvertInterval
	i.downTimer = now.Add(i.masterDownInterval())
	i.sawResign, i.sawLower = false, false
	i.preemptUntil = time.Time{}
	prev := i.master
	i.master = netip.Addr{}
	sc := i.change(now, StateBackup, cause)
	sc.PreviousMaster = prev
	return []Action{RemoveVIPs{}, sc}
}

// Resign is the old master's half of a coordinated handoff: Master →
// Backup at once, announcing it with a priority-0 advert and removing the
// addresses, as a master does at Shutdown (RFC 9568 §6.4.3), but staying
// in the virtual router as a Backup with its Master_Down_Timer armed. A
// successor told by ExpectHandoff takes over on that advert; any other
// Backup, keepalived included, sees an ordinary resignation (§6.4.2:
// Master_Down_Timer set to Skew_Time). Other states are left alone.
func (i *Instance) Resign(now time.Time, cause Cause) []Action {
	if i.state != StateMaster {
		return nil
	}
	return append([]Action{SendAdvert{Advert: i.Advert(ResignPriority)}}, i.GoBackup(now, cause)...)
}

// ErrNotBackup is returned by ExpectHandoff outside the Backup state.
var ErrNotBackup = errors.New("the instance is not in BACKUP state")

// ExpectHandoff is the successor's half of a coordinated handoff: until
// until, a priority-0 advert from the master at from makes this Backup
// Master at once instead of after Skew_Time (§6.4.2's wait exists so that
// the best Backup wins without coordination; here it was chosen ahead).
// The wire is unchanged: the successor's first advert is an ordinary
// one. Any state change ends the expectation.
func (i *Instance) ExpectHandoff(from netip.Addr, until time.Time) error {
	if i.state != StateBackup {
		return fmt.Errorf("%w (%s)", ErrNotBackup, i.state)
	}
	if !from.IsValid() || from.Is6() != (i.cfg.Family() == 6) {
		return fmt.Errorf("the resigning master's address %v is not of this instance's family", from)
	}
	i.handoffFrom, i.handoffUntil = from, until
	return nil
}

// FleetMaster is what gossip knows of another node that is master of this
// virtual router: the priority and primary address its adverts would
// carry, and its advert interval.
type FleetMaster struct {
	Priority uint8
	Primary  netip.Addr
	Interval time.Duration
}

// FleetAdvert is split-brain arbitration: a fresh gossip report that
// another live member is master of this virtual router counts as an
// advertisement from it, through the same receive rules (RFC 9568 §6.4.2,
// §6.4.3) but without the answers that go on the wire. So a Backup that
// no longer hears adverts (IP protocol 112 filtered, multicast snooping
// broken) keeps its Master_Down_Timer from expiring while the member's
// reports go on, and a Master that hears of a better master steps down.
// Nothing here is sent: the wire stays standards-compliant, and the
// driver feeds this only while the report is fresh, with now set to when
// the member was last known alive, so a dead member's hold ends one
// Master_Down_Interval after that.
func (i *Instance) FleetAdvert(now time.Time, m FleetMaster) []Action {
	if !m.Primary.IsValid() || m.Priority == ResignPriority || m.Primary.Is6() != (i.cfg.Family() == 6) {
		return nil
	}
	if m.Primary == i.resignedFrom && now.Sub(i.resignedAt) < ResignMemory {
		// It resigned on the wire since: the report predates its new
		// summary (a handoff's successor must not step down for it).
		return nil
	}
	a := &Advert{Version: i.cfg.Version, VRID: i.cfg.VRID, Priority: m.Priority, Interval: m.Interval}
	if a.Interval <= 0 {
		a.Interval = i.cfg.AdvertInterval
	}
	switch i.state {
	case StateBackup:
		// The report may be older than the last wire advert (now is when
		// the member last answered): it never brings the timer forward.
		held := i.downTimer
		acts := i.backupReceive(now, a, m.Primary)
		if held.After(i.downTimer) && !i.sawLower {
			i.downTimer = held
		}
		return acts
	case StateMaster:
		if !i.better(a.Priority, m.Primary) {
			// A lower master hears our own summaries and steps down; an
			// answer on the wire would not reach it anyway.
			return nil
		}
		return i.stepDown(now, a, m.Primary, CauseArbitration)
	}
	return nil
}

// better reports whether a master with priority p and primary address src
// beats this instance (§6.4.3: higher priority, then the higher primary
// address; addresses compare as unsigned integers in network byte order,
// which netip.Addr.Compare does within one family).
func (i *Instance) better(p uint8, src netip.Addr) bool {
	return p > i.priority || (p == i.priority && src.Compare(i.cfg.Primary) > 0)
}

// Faulted reports whether the instance is held in FAULT.
func (i *Instance) Faulted() bool { return i.faulted }

// Tick fires the timers that are due at now.
func (i *Instance) Tick(now time.Time) []Action {
	switch i.state {
	case StateBackup:
		if i.downTimer.IsZero() || now.Before(i.downTimer) {
			return nil
		}
		// Master_Down_Timer fired (§6.4.2).
		cause := CauseMasterDown
		switch {
		case i.sawResign:
			cause = CausePriorityZero
		case i.sawLower:
			cause = CausePreempted
		}
		return i.becomeMaster(now, cause)
	case StateMaster:
		if i.adverTimer.IsZero() || now.Before(i.adverTimer) {
			return nil
		}
		// Adver_Timer fired (§6.4.3).
		i.adverTimer = now.Add(i.cfg.AdvertInterval)
		return []Action{SendAdvert{Advert: i.Advert(i.priority)}}
	}
	return nil
}

// SetPriority changes the effective priority (trackers, operator). The owner's
// priority is fixed, and 0 and 255 cannot be set this way. A master
// advertises the new priority at once so that backups can react.
func (i *Instance) SetPriority(now time.Time, p uint8) ([]Action, error) {
	if i.cfg.Owner() {
		return nil, fmt.Errorf("instance %q is the address owner; its priority stays 255", i.cfg.Name)
	}
	if p == ResignPriority || p == OwnerPriority {
		return nil, fmt.Errorf("priority %d cannot be set at run time; use 1..254", p)
	}
	if p == i.priority {
		return nil, nil
	}
	i.priority = p
	if i.state == StateMaster {
		i.masterPriority = p
		i.adverTimer = now.Add(i.cfg.AdvertInterval)
		return []Action{SendAdvert{Advert: i.Advert(p)}}, nil
	}
	return nil, nil
}

// Check runs the per-instance receive checks of §7.1 (VRID, version, owner,
// v2 authentication and interval, address list, unicast source and mode) on a
// decoded advert. It changes nothing. A nil error with notices means the
// advert is acceptable but odd.
func (i *Instance) Check(d Decoded, rx RxInfo) ([]Notice, error) {
	a := &d.Advert
	c := &i.cfg
	if a.VRID != c.VRID {
		return nil, rxErr(ReasonVRID, "vrid %d, instance has %d", a.VRID, c.VRID)
	}
	if rx.Src.Is6() != (c.Family() == 6) {
		return nil, rxErr(ReasonFamily, "advert from %s for an IPv%d instance", rx.Src, c.Family())
	}
	if a.Version != c.Version {
		return nil, rxErr(ReasonVersion, "version %d, instance runs %d", a.Version, c.Version)
	}
	if rx.Src == c.Primary {
		return nil, rxErr(ReasonOwnAddress, "advert from our own address %s", rx.Src)
	}
	if c.Unicast {
		if rx.Dst.IsMulticast() {
			return nil, rxErr(ReasonMode, "multicast advert to %s for a unicast instance", rx.Dst)
		}
		// §7.1 step 1 for unicast too (Decode checks only the group):
		// anybody off the link could send a unicast advert otherwise.
		if floor := cmp.Or(c.UnicastMinTTL, RequiredTTL); rx.TTL < int(floor) {
			return nil, rxErr(ReasonTTL, "unicast TTL/hop limit %d, want at least %d (unicast.min_ttl; keepalived sends IPv6 unicast adverts with 64)", rx.TTL, floor)
		}
		if !slices.Contains(c.Peers, rx.Src) {
			return nil, rxErr(ReasonUnknownPeer, "%s is not a configured peer", rx.Src)
		}
	} else if !rx.Dst.IsMulticast() {
		return nil, rxErr(ReasonMode, "unicast advert to %s for a multicast instance", rx.Dst)
	}
	if c.Owner() {
		// §7.1 step 5: the owner discards every advert (RFC 9568 erratum 8298
		// softens this to verify-and-log; discarding keeps the owner master).
		return nil, rxErr(ReasonOwner, "we are the address owner; advert from %s at priority %d", rx.Src, a.Priority)
	}
	var notices []Notice
	if a.Version == 2 {
		if a.AuthType != c.AuthType {
			return nil, rxErr(ReasonAuthType, "auth type %d, configured %d", a.AuthType, c.AuthType)
		}
		if c.AuthType == AuthPass && a.AuthData != c.AuthData {
			return nil, rxErr(ReasonAuthFailure, "password mismatch from %s", rx.Src)
		}
		if a.Interval != c.AdvertInterval {
			return nil, rxErr(ReasonAdvertInterval, "interval %s, configured %s", a.Interval, c.AdvertInterval)
		}
	} else if a.Interval != c.AdvertInterval {
		notices = append(notices, Notice{Reason: ReasonIntervalMismatch, From: rx.Src,
			Detail: fmt.Sprintf("interval %s, configured %s", a.Interval, c.AdvertInterval)})
	}
	if !sameAddrs(a.Addrs, c.VIPs) {
		detail := fmt.Sprintf("advert lists %v, configured %v", a.Addrs, c.VIPs)
		if a.Version == 2 && c.CheckAddressList && a.Priority != OwnerPriority {
			return nil, rxErr(ReasonAddressList, "%s", detail)
		}
		notices = append(notices, Notice{Reason: ReasonAddressList, From: rx.Src, Detail: detail})
	}
	if a.Version == 3 && rx.Src.Is6() && !a.Addrs[0].IsLinkLocalUnicast() {
		notices = append(notices, Notice{Reason: ReasonNotLinkLocal, From: rx.Src,
			Detail: fmt.Sprintf("first address %s", a.Addrs[0])})
	}
	return notices, nil
}

func sameAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	if slices.Equal(a, b) {
		return true // the usual case, without allocating
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.SortFunc(x, netip.Addr.Compare)
	slices.SortFunc(y, netip.Addr.Compare)
	return slices.Equal(x, y)
}

// Receive is the ADVERTISEMENT-received event for a packet that passed Decode.
// It runs Check and then the Backup (§6.4.2) or Master (§6.4.3) rules. A
// non-nil error means the advert was discarded by a receive check.
func (i *Instance) Receive(now time.Time, d Decoded, rx RxInfo) ([]Action, error) {
	if i.state == StateInit || i.state == StateFault {
		return nil, nil
	}
	notices, err := i.Check(d, rx)
	if err != nil {
		return nil, err
	}
	acts := make([]Action, 0, len(notices)+4)
	for _, n := range notices {
		acts = append(acts, n)
	}
	a := &d.Advert
	if a.Priority == ResignPriority {
		i.resignedFrom, i.resignedAt = rx.Src, now
	} else if rx.Src == i.resignedFrom {
		i.resignedFrom = netip.Addr{}
	}
	switch i.state {
	case StateBackup:
		acts = append(acts, i.backupReceive(now, a, rx.Src)...)
	case StateMaster:
		acts = append(acts, i.masterReceive(now, a, rx.Src)...)
	}
	return acts, nil
}

func (i *Instance) backupReceive(now time.Time, a *Advert, src netip.Addr) []Action {
	if a.Priority == ResignPriority {
		if src == i.handoffFrom && now.Before(i.handoffUntil) {
			// The resignation this Backup was told to expect: take over
			// at once (ExpectHandoff).
			return i.becomeMaster(now, CauseHandoff)
		}
		// §6.4.2: "If the Priority in the ADVERTISEMENT is zero, then: Set
		// the Master_Down_Timer to Skew_Time".
		i.downTimer = now.Add(i.skewTime())
		i.sawResign = true
		return nil
	}
	lower := a.Priority < i.priority
	if lower && i.cfg.Preempt {
		if i.cfg.PreemptDelay <= 0 {
			// §6.4.2: preempt — discard, and let the down timer run out.
			i.sawLower = true
			return nil
		}
		if i.preemptUntil.IsZero() {
			i.preemptUntil = now.Add(i.cfg.PreemptDelay)
		}
		if !now.Before(i.preemptUntil) {
			i.sawLower = true
			return nil
		}
		// Still inside the preempt_delay window: follow this master for now.
	} else {
		i.preemptUntil = time.Time{}
	}
	// §6.4.2: Preempt_Mode False, or priority ≥ local: v3 learns
	// Master_Adver_Interval, recomputes Skew_Time and Master_Down_Interval,
	// and resets the down timer. v2 (RFC 3768) keeps its own interval.
	if i.cfg.Version == 3 {
		i.masterAdverInterval = a.Interval
	}
	i.downTimer = now.Add(i.masterDownInterval())
	i.sawResign, i.sawLower = false, false
	i.master, i.masterPriority = src, a.Priority
	return nil
}

// stepDown is §6.4.3's "a better master exists": Master → Backup,
// following its interval (v3) and arming Master_Down_Timer.
func (i *Instance) stepDown(now time.Time, a *Advert, src netip.Addr, cause Cause) []Action {
	i.adverTimer = time.Time{}
	if i.cfg.Version == 3 {
		i.masterAdverInterval = a.Interval
	} else {
		i.masterAdverInterval = i.cfg.AdvertInterval
	}
	i.downTimer = now.Add(i.masterDownInterval())
	i.sawResign, i.sawLower = false, false
	i.preemptUntil = time.Time{}
	prev := i.master
	i.master, i.masterPriority = src, a.Priority
	sc := i.change(now, StateBackup, cause)
	sc.PreviousMaster = prev
	return []Action{RemoveVIPs{}, sc}
}

func (i *Instance) masterReceive(now time.Time, a *Advert, src netip.Addr) []Action {
	if a.Priority == ResignPriority {
		// §6.4.3: another master resigned; re-assert at once.
		i.adverTimer = now.Add(i.cfg.AdvertInterval)
		return []Action{SendAdvert{Advert: i.Advert(i.priority)}}
	}
	if i.better(a.Priority, src) {
		// §6.4.3: a better master exists.
		return i.stepDown(now, a, src, CauseHigherPriority)
	}
	if i.cfg.LowerPrioNoAdvert {
		return nil
	}
	// RFC 9568 §6.4.3: a master that hears a lower priority sends an
	// advertisement at once, ending a dual-master window quickly; and, as
	// keepalived does, re-announces its addresses so that hosts which
	// followed the other master come back. At most once per
	// Advertisement_Interval: VRRPv3 has no authentication, and answering
	// every one of a flood of valid lower-priority adverts would turn each
	// into an advert and a GARP burst (the other master hears the first
	// answer anyway, and our regular adverts follow).
	if !i.lastLowerAnswer.IsZero() && now.Sub(i.lastLowerAnswer) < i.cfg.AdvertInterval {
		return nil
	}
	i.lastLowerAnswer = now
	i.adverTimer = now.Add(i.cfg.AdvertInterval)
	return []Action{SendAdvert{Advert: i.Advert(i.priority)}, Announce{LowerPrio: true}}
}
