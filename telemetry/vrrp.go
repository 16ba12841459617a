package telemetry

import (
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Instance labels: never "instance", which collides with Prometheus' own
// target label.
var instLabels = []string{"vrrp_instance", "vrid", "device", "family"}

// VRRPStates are the values of the state label, always all emitted so that
// "no master" is a visible zero.
var VRRPStates = []string{"init", "backup", "master", "fault"}

// VRRP holds the VRRP metric families. The driver reports events through
// its methods and its instances' VRRPInstance handles, named for the event
// rather than the vector, so that another consumer of the same events
// (tracing) can hang off the same calls.
type VRRP struct {
	state            *prometheus.GaugeVec
	basePriority     *prometheus.GaugeVec
	priority         *prometheus.GaugeVec
	masterPriority   *prometheus.GaugeVec
	advertInterval   *prometheus.GaugeVec
	lastTransition   *prometheus.GaugeVec
	becomeMaster     *prometheus.CounterVec
	releaseMaster    *prometheus.CounterVec
	transitions      *prometheus.CounterVec
	advertsReceived  *prometheus.CounterVec
	advertsSent      *prometheus.CounterVec
	prioZeroReceived *prometheus.CounterVec
	prioZeroSent     *prometheus.CounterVec
	packetErrors     *prometheus.CounterVec
	notices          *prometheus.CounterVec
	alternateForm    *prometheus.CounterVec
	sendErrors       *prometheus.CounterVec
	gratuitous       *prometheus.CounterVec
	vipOwned         *prometheus.GaugeVec
	failover         *prometheus.HistogramVec
}

// newVRRPMetrics registers the VRRP families on reg.
func newVRRPMetrics(reg *prometheus.Registry) *VRRP {
	g := func(name, help string, extra ...string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, append(append([]string{}, instLabels...), extra...))
		reg.MustRegister(v)
		return v
	}
	c := func(name, help string, extra ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, append(append([]string{}, instLabels...), extra...))
		reg.MustRegister(v)
		return v
	}
	return &VRRP{
		state: g("vigil_vrrp_instance_state",
			"VRRP state of the instance as a state set: 1 for the current state, 0 for the others. Alert on sum by (vrid) of state=\"master\" != 1.", "state"),
		basePriority:   g("vigil_vrrp_base_priority", "Configured VRRP priority."),
		priority:       g("vigil_vrrp_effective_priority", "Priority the instance currently advertises or would advertise."),
		masterPriority: g("vigil_vrrp_master_priority", "Priority in the last advert heard from the current master (ours when master)."),
		advertInterval: g("vigil_vrrp_advert_interval_seconds", "Master_Adver_Interval: the interval of the current master's adverts."),
		lastTransition: g("vigil_vrrp_last_transition_timestamp_seconds", "Unix time of the last state change."),
		becomeMaster:   c("vigil_vrrp_become_master_total", "Transitions into Master."),
		releaseMaster:  c("vigil_vrrp_release_master_total", "Transitions out of Master."),
		transitions: c("vigil_vrrp_transitions_total",
			"State transitions by from, to and reason (startup, address_owner, master_down_timer, priority_zero_received, preempted, higher_priority_advert, interface_down, tracker_fault, fault_cleared, sync_group, admin, config_reload, shutdown).", "from", "to", "reason"),
		advertsReceived:  c("vigil_vrrp_adverts_received_total", "Adverts that passed every receive check."),
		advertsSent:      c("vigil_vrrp_adverts_sent_total", "Adverts sent (each unicast peer counts once)."),
		prioZeroReceived: c("vigil_vrrp_priority_zero_received_total", "Priority-0 (master resigning) adverts received."),
		prioZeroSent:     c("vigil_vrrp_priority_zero_sent_total", "Priority-0 adverts sent on leaving Master."),
		packetErrors: c("vigil_vrrp_packet_errors_total",
			"Received packets discarded by a receive check, by reason (RFC 6527 counter set). vrrp_instance is empty when no instance has the VRID.", "reason"),
		notices: c("vigil_vrrp_advert_notices_total",
			"Accepted adverts that differ from the local configuration (interval_mismatch, address_list, not_link_local).", "reason"),
		alternateForm: c("vigil_vrrp_alternate_checksum_received_total",
			"v3/IPv4 adverts whose checksum verified only in the other form (a peer using the RFC 9568 or the RFC 5798 pseudo-header reading).", "form"),
		sendErrors: c("vigil_vrrp_send_errors_total", "Adverts that could not be sent."),
		gratuitous: c("vigil_vrrp_gratuitous_sent_total", "Gratuitous ARP (IPv4) or unsolicited neighbour advertisements (IPv6) sent."),
		vipOwned:   g("vigil_vip_owned", "1 while this node holds the virtual address (installed as master).", "address"),
		failover:   newFailoverHistogram(reg),
	}
}

// newFailoverHistogram is vigil_vrrp_failover_duration_seconds: the
// vrrp.transition span's interval, from the decision (timer, advert,
// tracker, operator) until the new state is in effect (VIPs added or
// removed, announcements sent).
func newFailoverHistogram(reg *prometheus.Registry) *prometheus.HistogramVec {
	v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vigil_vrrp_failover_duration_seconds",
		Help: "Time from a VRRP state change's decision until the new state is in effect (VIPs changed, announcements sent), by the state entered and the reason.",
		// 100 µs to 10 s: netlink work is sub-millisecond, a loaded host's
		// tens of milliseconds.
		Buckets: prometheus.ExponentialBucketsRange(0.0001, 10, 16)},
		append(append([]string{}, instLabels...), "to", "reason"))
	reg.MustRegister(v)
	return v
}

// Collectors returns the VRRP families, for tests that lint every family
// (the fields are unexported).
func (m *VRRP) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.state, m.basePriority, m.priority, m.masterPriority, m.advertInterval, m.lastTransition,
		m.becomeMaster, m.releaseMaster, m.transitions, m.advertsReceived, m.advertsSent, m.prioZeroReceived, m.prioZeroSent,
		m.packetErrors, m.notices, m.alternateForm, m.sendErrors, m.gratuitous, m.vipOwned, m.failover}
}

// familyLabel is the family label's value: "ipv4" or "ipv6".
func familyLabel(family int) string { return "ipv" + strconv.Itoa(family) }

// PacketError records a packet discarded before it reached an instance
// (no instance has its VRID, or it could not be decoded far enough to
// tell): the instance labels are empty but for the socket's.
func (m *VRRP) PacketError(device string, family int, reason string) {
	m.packetErrors.WithLabelValues("", "", device, familyLabel(family), reason).Inc()
}

// Instance returns the handle through which one instance's events are
// reported. It creates no series: Added does, once the instance runs.
func (m *VRRP) Instance(name string, vrid uint8, device string, family int) *VRRPInstance {
	i := &VRRPInstance{m: m}
	i.cur.Store(&vrrpSeries{labels: []string{name, strconv.Itoa(int(vrid)), device, familyLabel(family)}})
	return i
}

// VRRPInstance reports one VRRP instance's events. The per-advert counters
// are resolved once (Added) so the advert path neither allocates nor looks
// labels up. Every method but GratuitousSent and the VIP ones runs under
// the driver's lock; those run on the instance's worker and announcers,
// so the labels and counters are swapped as a whole (Renamed) through an
// atomic pointer.
type VRRPInstance struct {
	m   *VRRP
	cur atomic.Pointer[vrrpSeries]
}

// vrrpSeries is an instance's label values and resolved counters; it never
// changes once stored.
type vrrpSeries struct {
	labels []string // vrrp_instance, vrid, device, family
	// nil until Added and after Removed: counting then goes nowhere, as
	// it did to a counter whose series was deleted.
	sent, received, zeroSent, zeroReceived, garp prometheus.Counter
}

// with returns the labels followed by extra, in a new slice.
func (s *vrrpSeries) with(extra ...string) []string {
	return append(slices.Clone(s.labels), extra...)
}

// VRRPSettings are the values an instance's series start from.
type VRRPSettings struct {
	BasePriority   uint8
	Priority       uint8 // effective
	AdvertInterval time.Duration
	VIPs           []netip.Addr
}

// Added creates the instance's series: state init, priorities, interval,
// the counters at zero and every VIP not owned.
func (i *VRRPInstance) Added(s VRRPSettings) {
	i.add(i.cur.Load().labels, s)
}

func (i *VRRPInstance) add(l []string, s VRRPSettings) {
	m := i.m
	ser := &vrrpSeries{labels: l}
	for _, st := range VRRPStates {
		m.state.WithLabelValues(ser.with(st)...).Set(b2f(st == "init"))
	}
	m.basePriority.WithLabelValues(l...).Set(float64(s.BasePriority))
	m.priority.WithLabelValues(l...).Set(float64(s.Priority))
	m.advertInterval.WithLabelValues(l...).Set(s.AdvertInterval.Seconds())
	m.becomeMaster.WithLabelValues(l...)
	m.releaseMaster.WithLabelValues(l...)
	ser.received = m.advertsReceived.WithLabelValues(l...)
	ser.sent = m.advertsSent.WithLabelValues(l...)
	ser.zeroReceived = m.prioZeroReceived.WithLabelValues(l...)
	ser.zeroSent = m.prioZeroSent.WithLabelValues(l...)
	ser.garp = m.gratuitous.WithLabelValues(l...)
	for _, a := range s.VIPs {
		m.vipOwned.WithLabelValues(ser.with(a.String())...).Set(0)
	}
	i.cur.Store(ser)
}

// Removed drops the instance's series (removed by a reload), so dashboards
// do not show ghosts; vips are its VIPs. The transition, packet error,
// notice and checksum-form series stay, as they always have.
func (i *VRRPInstance) Removed(vips []netip.Addr) {
	m, ser := i.m, i.cur.Load()
	l := ser.labels
	for _, st := range VRRPStates {
		m.state.DeleteLabelValues(ser.with(st)...)
	}
	for _, v := range []interface{ DeleteLabelValues(...string) bool }{m.basePriority, m.priority, m.masterPriority,
		m.advertInterval, m.lastTransition, m.becomeMaster, m.releaseMaster, m.advertsReceived, m.advertsSent,
		m.prioZeroReceived, m.prioZeroSent, m.sendErrors, m.gratuitous} {
		v.DeleteLabelValues(l...)
	}
	for _, a := range vips {
		m.vipOwned.DeleteLabelValues(ser.with(a.String())...)
	}
	i.cur.Store(&vrrpSeries{labels: l})
}

// Renamed moves the instance's series to its new name: the old ones go,
// the new ones start as Added's, in the instance's current state.
func (i *VRRPInstance) Renamed(name, state string, s VRRPSettings) {
	i.Removed(s.VIPs)
	l := slices.Clone(i.cur.Load().labels)
	l[0] = name
	i.add(l, s)
	ser := i.cur.Load()
	for _, st := range VRRPStates {
		i.m.state.WithLabelValues(ser.with(st)...).Set(b2f(st == state))
	}
	i.setVIPs(s.VIPs, state == "master")
}

// VRRPTransition is one state change and the instance's figures after it.
type VRRPTransition struct {
	From, To, Cause string
	At              time.Time
	Priority        uint8 // effective
	MasterPriority  uint8
	MasterInterval  time.Duration // Master_Adver_Interval
}

// StateChanged records a state change.
func (i *VRRPInstance) StateChanged(t VRRPTransition) {
	m, ser := i.m, i.cur.Load()
	l := ser.labels
	for _, st := range VRRPStates {
		m.state.WithLabelValues(ser.with(st)...).Set(b2f(st == t.To))
	}
	m.transitions.WithLabelValues(ser.with(t.From, t.To, t.Cause)...).Inc()
	m.lastTransition.WithLabelValues(l...).Set(float64(t.At.UnixNano()) / 1e9)
	if t.To == "master" {
		m.becomeMaster.WithLabelValues(l...).Inc()
	}
	if t.From == "master" {
		m.releaseMaster.WithLabelValues(l...).Inc()
	}
	m.priority.WithLabelValues(l...).Set(float64(t.Priority))
	m.masterPriority.WithLabelValues(l...).Set(float64(t.MasterPriority))
	m.advertInterval.WithLabelValues(l...).Set(t.MasterInterval.Seconds())
}

// TransitionEffective records how long a state change took from its
// decision until the new state was in effect (the vrrp.transition span).
func (i *VRRPInstance) TransitionEffective(to, reason string, d time.Duration) {
	i.m.failover.WithLabelValues(i.cur.Load().with(to, reason)...).Observe(d.Seconds())
}

// PriorityChanged records a new effective priority (trackers).
func (i *VRRPInstance) PriorityChanged(p uint8) {
	i.m.priority.WithLabelValues(i.cur.Load().labels...).Set(float64(p))
}

// AdvertSent counts one advert sent to one destination; zero: priority 0.
func (i *VRRPInstance) AdvertSent(zero bool) {
	ser := i.cur.Load()
	countAdvert(ser.sent, ser.zeroSent, zero)
}

// SendFailed counts an advert that could not be sent.
func (i *VRRPInstance) SendFailed() {
	i.m.sendErrors.WithLabelValues(i.cur.Load().labels...).Inc()
}

// AdvertReceived counts an advert that passed every receive check; zero:
// priority 0 (the master resigns).
func (i *VRRPInstance) AdvertReceived(zero bool) {
	ser := i.cur.Load()
	countAdvert(ser.received, ser.zeroReceived, zero)
}

// countAdvert counts an advert in all, and in zeroes too if zero; all is
// nil while the instance has no series.
func countAdvert(all, zeroes prometheus.Counter, zero bool) {
	if all == nil {
		return
	}
	all.Inc()
	if zero {
		zeroes.Inc()
	}
}

// AlternateChecksum counts an advert whose checksum verified only in the
// other form.
func (i *VRRPInstance) AlternateChecksum(form string) {
	i.m.alternateForm.WithLabelValues(i.cur.Load().with(form)...).Inc()
}

// PacketError counts a packet for this instance that a receive check
// discarded.
func (i *VRRPInstance) PacketError(reason string) {
	i.m.packetErrors.WithLabelValues(i.cur.Load().with(reason)...).Inc()
}

// Notice counts an accepted advert that differs from the local
// configuration.
func (i *VRRPInstance) Notice(reason string) {
	i.m.notices.WithLabelValues(i.cur.Load().with(reason)...).Inc()
}

// GratuitousSent counts one gratuitous ARP or unsolicited neighbour
// advertisement. Safe from any goroutine.
func (i *VRRPInstance) GratuitousSent() {
	if c := i.cur.Load().garp; c != nil {
		c.Inc()
	}
}

// VIPsOwned records that the instance installed vips as master.
func (i *VRRPInstance) VIPsOwned(vips []netip.Addr) { i.setVIPs(vips, true) }

// VIPsReleased records that the instance removed vips.
func (i *VRRPInstance) VIPsReleased(vips []netip.Addr) { i.setVIPs(vips, false) }

// VIPsChanged moves the instance's VIP series from old to cur (a reload
// changed them in place); owned: it holds them now.
func (i *VRRPInstance) VIPsChanged(old, cur []netip.Addr, owned bool) {
	ser := i.cur.Load()
	for _, a := range old {
		i.m.vipOwned.DeleteLabelValues(ser.with(a.String())...)
	}
	i.setVIPs(cur, owned)
}

func (i *VRRPInstance) setVIPs(vips []netip.Addr, owned bool) {
	ser := i.cur.Load()
	for _, a := range vips {
		i.m.vipOwned.WithLabelValues(ser.with(a.String())...).Set(b2f(owned))
	}
}
