package telemetry

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LB holds the load-balancer metric families: health checks, virtual
// server quorum and the IPVS reconcile loop.
type LB struct {
	CheckRuns     *prometheus.CounterVec
	CheckDuration *prometheus.HistogramVec
	QuorumUp      *prometheus.GaugeVec
	Reconciles    *prometheus.CounterVec
	Ops           prometheus.Counter
	ReconcileTime prometheus.Histogram
	ipvs          *ipvsCollector
}

// vsLabels name a virtual server as node_exporter's ipvs collector does,
// plus its configured name.
var vsLabels = []string{"virtual_server", "local_address", "local_port", "proto", "local_mark"}

// newLBMetrics registers the load-balancer families on r.
func (r *Registry) newLBMetrics() *LB {
	m := &LB{
		CheckRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_check_runs_total",
			Help: "Health-check probes by check_type and result (success, failure, timeout, error)."}, []string{"check_type", "result"}),
		CheckDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vigil_check_duration_seconds",
			Help: "Time one health-check probe took.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"check_type"}),
		QuorumUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_virtual_server_quorum_up",
			Help: "1 while the virtual server has quorum (live real-server weight at or above its quorum)."}, vsLabels),
		Reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_ipvs_reconciles_total",
			Help: "Passes that compared the IPVS table with the desired one, by result (success, failure)."}, []string{"result"}),
		Ops: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_ipvs_operations_total",
			Help: "IPVS changes made (service or destination added, updated or deleted)."}),
		ReconcileTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_ipvs_reconcile_duration_seconds",
			Help: "Time of one reconcile pass: desired table, kernel dump, diff and apply.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}),
		ipvs: newIPVSCollector(),
	}
	r.Reg.MustRegister(m.CheckRuns, m.CheckDuration, m.QuorumUp, m.Reconciles, m.Ops, m.ReconcileTime, m.ipvs)
	return m
}

// CheckProbed records one probe.
func (m *LB) CheckProbed(typ, result string, took time.Duration) {
	if m == nil {
		return
	}
	m.CheckRuns.WithLabelValues(typ, result).Inc()
	m.CheckDuration.WithLabelValues(typ).Observe(took.Seconds())
}

// Reconciled records one reconcile pass that made ops changes.
func (m *LB) Reconciled(ops int, err error, took time.Duration) {
	if m == nil {
		return
	}
	result := "success"
	if err != nil {
		result = "failure"
	}
	m.Reconciles.WithLabelValues(result).Inc()
	m.Ops.Add(float64(ops))
	m.ReconcileTime.Observe(took.Seconds())
}

// SetQuorum records a virtual server's quorum state; labels are vsLabels'
// values in order.
func (m *LB) SetQuorum(up bool, labels ...string) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.QuorumUp.WithLabelValues(labels...).Set(v)
}

// SetIPVSSource makes /metrics export the kernel's counters and the real
// servers' health for the virtual servers src reports; nil stops it.
func (m *LB) SetIPVSSource(src IPVSSource, log *slog.Logger) {
	if m == nil {
		return
	}
	m.ipvs.set(src, log)
}

// ForgetVirtualServer drops a virtual server's quorum series once the
// config no longer has it. (Its real servers' series are made at scrape
// time from the current config, so they go by themselves.)
func (m *LB) ForgetVirtualServer(name string) {
	if m == nil {
		return
	}
	m.QuorumUp.DeletePartialMatch(prometheus.Labels{"virtual_server": name})
}

// ForgetQuorum drops one quorum series (a group member a reload removed);
// labels as SetQuorum.
func (m *LB) ForgetQuorum(labels ...string) {
	if m == nil {
		return
	}
	m.QuorumUp.DeleteLabelValues(labels...)
}
