package telemetry

import (
	"net/netip"
	"slices"
	"strconv"
	"sync"
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
//
// The families with one series per instance (state, priorities, interval,
// the advert and transition counters, VIP ownership: about 18 series per
// instance) are not metric vectors: each instance keeps its figures in
// atomics and the families read them at scrape time (instanceFamily). A
// vector keeps every child with its label pairs on the heap: 3.5 MB of the
// 8 MB live heap of a node with 200 instances, the largest part of its
// RSS after the binary (issue 13's 30 MB goal). The sparse families (by
// reason, by transition, the failover histogram) stay vectors.
type VRRP struct {
	insts         instanceSet
	transitions   *prometheus.CounterVec
	packetErrors  *prometheus.CounterVec
	notices       *prometheus.CounterVec
	alternateForm *prometheus.CounterVec
	failover      *prometheus.HistogramVec
	dense         []*instanceFamily
}

// newVRRPMetrics registers the VRRP families on reg.
func newVRRPMetrics(reg *prometheus.Registry) *VRRP {
	m := &VRRP{}
	c := func(name, help string, extra ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, append(append([]string{}, instLabels...), extra...))
		reg.MustRegister(v)
		return v
	}
	d := func(name, help string, typ prometheus.ValueType, emit func(*instSeries, func(v float64, extra ...string)), extra ...string) {
		f := &instanceFamily{set: &m.insts, typ: typ, emit: emit,
			desc: prometheus.NewDesc(name, help, append(append([]string{}, instLabels...), extra...), nil)}
		reg.MustRegister(f)
		m.dense = append(m.dense, f)
	}
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	d("vigil_vrrp_instance_state",
		"VRRP state of the instance as a state set: 1 for the current state, 0 for the others. Alert on sum by (vrid) of state=\"master\" != 1.",
		gauge, func(s *instSeries, out func(float64, ...string)) {
			cur := int(s.state.Load())
			for i, st := range VRRPStates {
				out(b2f(i == cur), st)
			}
		}, "state")
	d("vigil_vrrp_base_priority", "Configured VRRP priority.", gauge,
		func(s *instSeries, out func(float64, ...string)) { out(float64(s.base.Load())) })
	d("vigil_vrrp_effective_priority", "Priority the instance currently advertises or would advertise.", gauge,
		func(s *instSeries, out func(float64, ...string)) { out(float64(s.prio.Load())) })
	d("vigil_vrrp_master_priority", "Priority in the last advert heard from the current master (ours when master).", gauge,
		func(s *instSeries, out func(float64, ...string)) {
			if p := s.masterPrio.Load(); p >= 0 { // set by the first transition
				out(float64(p))
			}
		})
	d("vigil_vrrp_advert_interval_seconds", "Master_Adver_Interval: the interval of the current master's adverts.", gauge,
		func(s *instSeries, out func(float64, ...string)) { out(time.Duration(s.interval.Load()).Seconds()) })
	d("vigil_vrrp_last_transition_timestamp_seconds", "Unix time of the last state change.", gauge,
		func(s *instSeries, out func(float64, ...string)) {
			if t := s.lastTransition.Load(); t != 0 {
				out(float64(t) / 1e9)
			}
		})
	cnt := func(name, help string, v func(*instSeries) *atomic.Uint64) {
		d(name, help, counter, func(s *instSeries, out func(float64, ...string)) { out(float64(v(s).Load())) })
	}
	cnt("vigil_vrrp_become_master_total", "Transitions into Master.", func(s *instSeries) *atomic.Uint64 { return &s.becomeMaster })
	cnt("vigil_vrrp_release_master_total", "Transitions out of Master.", func(s *instSeries) *atomic.Uint64 { return &s.releaseMaster })
	m.transitions = c("vigil_vrrp_transitions_total",
		"State transitions by from, to and reason (startup, address_owner, master_down_timer, priority_zero_received, preempted, higher_priority_advert, interface_down, tracker_fault, fault_cleared, sync_group, admin, config_reload, shutdown).", "from", "to", "reason")
	cnt("vigil_vrrp_adverts_received_total", "Adverts that passed every receive check.", func(s *instSeries) *atomic.Uint64 { return &s.received })
	cnt("vigil_vrrp_adverts_sent_total", "Adverts sent (each unicast peer counts once).", func(s *instSeries) *atomic.Uint64 { return &s.sent })
	cnt("vigil_vrrp_priority_zero_received_total", "Priority-0 (master resigning) adverts received.", func(s *instSeries) *atomic.Uint64 { return &s.zeroReceived })
	cnt("vigil_vrrp_priority_zero_sent_total", "Priority-0 adverts sent on leaving Master.", func(s *instSeries) *atomic.Uint64 { return &s.zeroSent })
	m.packetErrors = c("vigil_vrrp_packet_errors_total",
		"Received packets discarded by a receive check, by reason (RFC 6527 counter set). vrrp_instance is empty when no instance has the VRID.", "reason")
	m.notices = c("vigil_vrrp_advert_notices_total",
		"Accepted adverts that differ from the local configuration (interval_mismatch, address_list, not_link_local).", "reason")
	m.alternateForm = c("vigil_vrrp_alternate_checksum_received_total",
		"v3/IPv4 adverts whose checksum verified only in the other form (a peer using the RFC 9568 or the RFC 5798 pseudo-header reading).", "form")
	d("vigil_vrrp_send_errors_total", "Adverts that could not be sent.", counter,
		func(s *instSeries, out func(float64, ...string)) {
			if n := s.sendErrors.Load(); n > 0 { // a series from the first failure on, as before
				out(float64(n))
			}
		})
	cnt("vigil_vrrp_gratuitous_sent_total", "Gratuitous ARP (IPv4) or unsolicited neighbour advertisements (IPv6) sent.", func(s *instSeries) *atomic.Uint64 { return &s.garp })
	d("vigil_vip_owned", "1 while this node holds the virtual address (installed as master).", gauge,
		func(s *instSeries, out func(float64, ...string)) {
			s.vipMu.Lock()
			vips := slices.Clone(s.vips)
			s.vipMu.Unlock()
			for _, v := range vips {
				out(b2f(v.owned), v.addr)
			}
		}, "address")
	m.failover = newFailoverHistogram(reg)
	return m
}

// instSeries is one running instance's dense series: its label values and
// figures, read by the families at scrape time. A new one is made when the
// instance is added or renamed, so counters start from zero there as a
// new series does.
type instSeries struct {
	labels  []string // vrrp_instance, vrid, device, family
	created time.Time

	state          atomic.Int32  // index in VRRPStates (0, init, when added)
	base, prio     atomic.Uint32 // priorities
	masterPrio     atomic.Int32  // -1 until the first transition
	interval       atomic.Int64  // Master_Adver_Interval, ns
	lastTransition atomic.Int64  // Unix ns, 0 until the first transition

	becomeMaster, releaseMaster, received, sent, zeroReceived, zeroSent, sendErrors, garp atomic.Uint64

	vipMu sync.Mutex
	vips  []vipOwned
}

type vipOwned struct {
	addr  string
	owned bool
}

// instanceSet is the instances whose series are exposed.
type instanceSet struct {
	mu sync.RWMutex
	m  map[*instSeries]struct{}
}

func (s *instanceSet) add(ser *instSeries) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[*instSeries]struct{}{}
	}
	s.m[ser] = struct{}{}
	s.mu.Unlock()
}

func (s *instanceSet) remove(ser *instSeries) {
	s.mu.Lock()
	delete(s.m, ser)
	s.mu.Unlock()
}

// instanceFamily is one dense family: emit gives the series of one
// instance (value, then the values of the family's extra labels).
type instanceFamily struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	set  *instanceSet
	emit func(*instSeries, func(v float64, extra ...string))
}

func (f *instanceFamily) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }

func (f *instanceFamily) Collect(ch chan<- prometheus.Metric) {
	f.set.mu.RLock()
	sers := make([]*instSeries, 0, len(f.set.m))
	for s := range f.set.m {
		sers = append(sers, s)
	}
	f.set.mu.RUnlock()
	for _, s := range sers {
		f.emit(s, func(v float64, extra ...string) {
			l := s.labels
			if len(extra) > 0 {
				l = append(slices.Clone(l), extra...)
			}
			if f.typ == prometheus.CounterValue {
				ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(f.desc, f.typ, v, s.created, l...)
				return
			}
			ch <- prometheus.MustNewConstMetric(f.desc, f.typ, v, l...)
		})
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

// Collectors returns the VRRP families, one collector each, for tests that
// lint every family (the fields are unexported).
func (m *VRRP) Collectors() []prometheus.Collector {
	out := []prometheus.Collector{m.transitions, m.packetErrors, m.notices, m.alternateForm, m.failover}
	for _, f := range m.dense {
		out = append(out, f)
	}
	return out
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
	i.cur.Store(&instSeries{labels: []string{name, strconv.Itoa(int(vrid)), device, familyLabel(family)}})
	return i
}

// VRRPInstance reports one VRRP instance's events. The advert path only
// adds to atomics: it neither allocates nor looks labels up. Every method
// but GratuitousSent and the VIP ones runs under the driver's lock; those
// run on the instance's worker and announcers, so the series are swapped
// as a whole (Added, Removed, Renamed) through an atomic pointer. Counts
// into a series that is not exposed (before Added, after Removed) go
// nowhere.
type VRRPInstance struct {
	m   *VRRP
	cur atomic.Pointer[instSeries]
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

func (i *VRRPInstance) add(l []string, s VRRPSettings) *instSeries {
	ser := &instSeries{labels: l, created: time.Now()}
	ser.base.Store(uint32(s.BasePriority))
	ser.prio.Store(uint32(s.Priority))
	ser.masterPrio.Store(-1)
	ser.interval.Store(int64(s.AdvertInterval))
	for _, a := range s.VIPs {
		ser.vips = append(ser.vips, vipOwned{addr: a.String()})
	}
	i.cur.Store(ser)
	i.m.insts.add(ser)
	return ser
}

// Removed drops the instance's series (removed by a reload), so dashboards
// do not show ghosts. The transition, packet error, notice and
// checksum-form series stay, as they always have.
func (i *VRRPInstance) Removed([]netip.Addr) {
	ser := i.cur.Load()
	i.m.insts.remove(ser)
	i.cur.Store(&instSeries{labels: ser.labels})
}

// Renamed moves the instance's series to its new name: the old ones go,
// the new ones start as Added's, in the instance's current state.
func (i *VRRPInstance) Renamed(name, state string, s VRRPSettings) {
	i.Removed(s.VIPs)
	l := slices.Clone(i.cur.Load().labels)
	l[0] = name
	ser := i.add(l, s)
	ser.state.Store(stateIndex(state))
	i.setVIPs(s.VIPs, state == "master")
}

// stateIndex is st's index in VRRPStates, -1 for none of them (every
// state series 0, as the vectors had it).
func stateIndex(st string) int32 { return int32(slices.Index(VRRPStates, st)) }

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
	ser := i.cur.Load()
	ser.state.Store(stateIndex(t.To))
	i.m.transitions.WithLabelValues(append(slices.Clone(ser.labels), t.From, t.To, t.Cause)...).Inc()
	ser.lastTransition.Store(t.At.UnixNano())
	if t.To == "master" {
		ser.becomeMaster.Add(1)
	}
	if t.From == "master" {
		ser.releaseMaster.Add(1)
	}
	ser.prio.Store(uint32(t.Priority))
	ser.masterPrio.Store(int32(t.MasterPriority))
	ser.interval.Store(int64(t.MasterInterval))
}

// TransitionEffective records how long a state change took from its
// decision until the new state was in effect (the vrrp.transition span).
func (i *VRRPInstance) TransitionEffective(to, reason string, d time.Duration) {
	i.m.failover.WithLabelValues(append(slices.Clone(i.cur.Load().labels), to, reason)...).Observe(d.Seconds())
}

// PriorityChanged records a new effective priority (trackers).
func (i *VRRPInstance) PriorityChanged(p uint8) { i.cur.Load().prio.Store(uint32(p)) }

// AdvertSent counts one advert sent to one destination; zero: priority 0.
func (i *VRRPInstance) AdvertSent(zero bool) {
	ser := i.cur.Load()
	ser.sent.Add(1)
	if zero {
		ser.zeroSent.Add(1)
	}
}

// SendFailed counts an advert that could not be sent.
func (i *VRRPInstance) SendFailed() { i.cur.Load().sendErrors.Add(1) }

// AdvertReceived counts an advert that passed every receive check; zero:
// priority 0 (the master resigns).
func (i *VRRPInstance) AdvertReceived(zero bool) {
	ser := i.cur.Load()
	ser.received.Add(1)
	if zero {
		ser.zeroReceived.Add(1)
	}
}

// AlternateChecksum counts an advert whose checksum verified only in the
// other form.
func (i *VRRPInstance) AlternateChecksum(form string) {
	i.m.alternateForm.WithLabelValues(append(slices.Clone(i.cur.Load().labels), form)...).Inc()
}

// PacketError counts a packet for this instance that a receive check
// discarded.
func (i *VRRPInstance) PacketError(reason string) {
	i.m.packetErrors.WithLabelValues(append(slices.Clone(i.cur.Load().labels), reason)...).Inc()
}

// Notice counts an accepted advert that differs from the local
// configuration.
func (i *VRRPInstance) Notice(reason string) {
	i.m.notices.WithLabelValues(append(slices.Clone(i.cur.Load().labels), reason)...).Inc()
}

// GratuitousSent counts one gratuitous ARP or unsolicited neighbour
// advertisement. Safe from any goroutine.
func (i *VRRPInstance) GratuitousSent() { i.cur.Load().garp.Add(1) }

// VIPsOwned records that the instance installed vips as master.
func (i *VRRPInstance) VIPsOwned(vips []netip.Addr) { i.setVIPs(vips, true) }

// VIPsReleased records that the instance removed vips.
func (i *VRRPInstance) VIPsReleased(vips []netip.Addr) { i.setVIPs(vips, false) }

// VIPsChanged moves the instance's VIP series from old to cur (a reload
// changed them in place); owned: it holds them now.
func (i *VRRPInstance) VIPsChanged(old, cur []netip.Addr, owned bool) {
	ser := i.cur.Load()
	ser.vipMu.Lock()
	for _, a := range old {
		ser.vips = slices.DeleteFunc(ser.vips, func(v vipOwned) bool { return v.addr == a.String() })
	}
	ser.vipMu.Unlock()
	i.setVIPs(cur, owned)
}

func (i *VRRPInstance) setVIPs(vips []netip.Addr, owned bool) {
	ser := i.cur.Load()
	ser.vipMu.Lock()
	defer ser.vipMu.Unlock()
	for _, a := range vips {
		s := a.String()
		if k := slices.IndexFunc(ser.vips, func(v vipOwned) bool { return v.addr == s }); k >= 0 {
			ser.vips[k].owned = owned
		} else {
			ser.vips = append(ser.vips, vipOwned{addr: s, owned: owned})
		}
	}
}
