package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"vigil/internal/buildinfo"
)

// Instance labels: never "instance", which collides with Prometheus' own
// target label.
var instLabels = []string{"vrrp_instance", "vrid", "device", "family"}

// VRRPStates are the values of the state label, always all emitted so that
// "no master" is a visible zero.
var VRRPStates = []string{"init", "backup", "master", "fault"}

// VRRP holds the VRRP metric families.
type VRRP struct {
	State            *prometheus.GaugeVec
	BasePriority     *prometheus.GaugeVec
	Priority         *prometheus.GaugeVec
	MasterPriority   *prometheus.GaugeVec
	AdvertInterval   *prometheus.GaugeVec
	LastTransition   *prometheus.GaugeVec
	BecomeMaster     *prometheus.CounterVec
	ReleaseMaster    *prometheus.CounterVec
	Transitions      *prometheus.CounterVec
	AdvertsReceived  *prometheus.CounterVec
	AdvertsSent      *prometheus.CounterVec
	PrioZeroReceived *prometheus.CounterVec
	PrioZeroSent     *prometheus.CounterVec
	PacketErrors     *prometheus.CounterVec
	Notices          *prometheus.CounterVec
	AlternateForm    *prometheus.CounterVec
	SendErrors       *prometheus.CounterVec
	Gratuitous       *prometheus.CounterVec
	VIPOwned         *prometheus.GaugeVec
}

// Registry bundles a registry with vigil's metric families.
type Registry struct {
	Reg  *prometheus.Registry
	VRRP *VRRP
	LB   *LB
}

// NewRegistry creates a registry with the Go and process collectors,
// vigil_build_info and the VRRP families.
func NewRegistry() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	bi := buildinfo.Get()
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vigil_build_info", Help: "Build identity of the running vigil; always 1.",
	}, []string{"version", "revision", "goversion"})
	info.WithLabelValues(bi.Version, bi.Revision, bi.GoVersion).Set(1)
	reg.MustRegister(info, newPanicCollector())

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
	v := &VRRP{
		State: g("vigil_vrrp_instance_state",
			"VRRP state of the instance as a state set: 1 for the current state, 0 for the others. Alert on sum by (vrid) of state=\"master\" != 1.", "state"),
		BasePriority:   g("vigil_vrrp_base_priority", "Configured VRRP priority."),
		Priority:       g("vigil_vrrp_effective_priority", "Priority the instance currently advertises or would advertise."),
		MasterPriority: g("vigil_vrrp_master_priority", "Priority in the last advert heard from the current master (ours when master)."),
		AdvertInterval: g("vigil_vrrp_advert_interval_seconds", "Master_Adver_Interval: the interval of the current master's adverts."),
		LastTransition: g("vigil_vrrp_last_transition_timestamp_seconds", "Unix time of the last state change."),
		BecomeMaster:   c("vigil_vrrp_become_master_total", "Transitions into Master."),
		ReleaseMaster:  c("vigil_vrrp_release_master_total", "Transitions out of Master."),
		Transitions: c("vigil_vrrp_transitions_total",
			"State transitions by from, to and reason (startup, address_owner, master_down_timer, priority_zero_received, preempted, higher_priority_advert, interface_down, tracker_fault, fault_cleared, sync_group, admin, config_reload, shutdown).", "from", "to", "reason"),
		AdvertsReceived:  c("vigil_vrrp_adverts_received_total", "Adverts that passed every receive check."),
		AdvertsSent:      c("vigil_vrrp_adverts_sent_total", "Adverts sent (each unicast peer counts once)."),
		PrioZeroReceived: c("vigil_vrrp_priority_zero_received_total", "Priority-0 (master resigning) adverts received."),
		PrioZeroSent:     c("vigil_vrrp_priority_zero_sent_total", "Priority-0 adverts sent on leaving Master."),
		PacketErrors: c("vigil_vrrp_packet_errors_total",
			"Received packets discarded by a receive check, by reason (RFC 6527 counter set). vrrp_instance is empty when no instance has the VRID.", "reason"),
		Notices: c("vigil_vrrp_advert_notices_total",
			"Accepted adverts that differ from the local configuration (interval_mismatch, address_list, not_link_local).", "reason"),
		AlternateForm: c("vigil_vrrp_alternate_checksum_received_total",
			"v3/IPv4 adverts whose checksum verified only in the other form (a peer using the RFC 9568 or the RFC 5798 pseudo-header reading).", "form"),
		SendErrors: c("vigil_vrrp_send_errors_total", "Adverts that could not be sent."),
		Gratuitous: c("vigil_vrrp_gratuitous_sent_total", "Gratuitous ARP (IPv4) or unsolicited neighbour advertisements (IPv6) sent."),
		VIPOwned:   g("vigil_vip_owned", "1 while this node holds the virtual address (installed as master).", "address"),
	}
	r := &Registry{Reg: reg, VRRP: v}
	r.LB = r.newLBMetrics()
	return r
}

// Config holds the configuration-reload metric families.
type Config struct {
	Reloads     *prometheus.CounterVec
	LastOK      prometheus.Gauge
	LastSuccess prometheus.Gauge
	Duration    prometheus.Histogram
	Info        *prometheus.GaugeVec
}

// NewConfigMetrics registers the configuration metrics on r.
func (r *Registry) NewConfigMetrics(hash string) *Config {
	c := &Config{
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_config_reloads_total",
			Help: "Configuration reloads by trigger (sighup, api) and result (success, rejected: invalid file, nothing applied; failure: partly applied)."},
			[]string{"trigger", "result"}),
		LastOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_config_last_reload_successful",
			Help: "1 if the last reload was applied (or none was tried), 0 if it was rejected or failed."}),
		LastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_config_last_reload_success_timestamp_seconds",
			Help: "Unix time the configuration was last loaded successfully (start or reload)."}),
		Duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_config_apply_duration_seconds",
			Help: "Time to read, validate and apply a reload.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
		Info: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_config_info",
			Help: "The running configuration's sha256 (short); always 1."}, []string{"hash"}),
	}
	r.Reg.MustRegister(c.Reloads, c.LastOK, c.LastSuccess, c.Duration, c.Info)
	c.LastOK.Set(1)
	c.LastSuccess.SetToCurrentTime()
	c.SetHash(hash)
	return c
}

// SetHash records the running configuration's hash.
func (c *Config) SetHash(hash string) {
	if len(hash) > 12 {
		hash = hash[:12]
	}
	c.Info.Reset()
	c.Info.WithLabelValues(hash).Set(1)
}

// Reloaded records one reload.
func (c *Config) Reloaded(trigger, result string, took time.Duration) {
	c.Reloads.WithLabelValues(trigger, result).Inc()
	c.Duration.Observe(took.Seconds())
	if result == "success" {
		c.LastOK.Set(1)
		c.LastSuccess.SetToCurrentTime()
	} else {
		c.LastOK.Set(0)
	}
}
