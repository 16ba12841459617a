package telemetry

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LB holds the load-balancer metric families: health checks, virtual
// server quorum and the IPVS reconcile loop.
type LB struct {
	checkRuns     *prometheus.CounterVec
	checkDuration *prometheus.HistogramVec
	quorumUp      *prometheus.GaugeVec
	reconciles    *prometheus.CounterVec
	ops           prometheus.Counter
	reconcileTime prometheus.Histogram
	ipvs          *ipvsCollector
}

// vsLabels name a virtual server as node_exporter's ipvs collector does,
// plus its configured name.
var vsLabels = []string{"virtual_server", "local_address", "local_port", "proto", "local_mark"}

// newLBMetrics registers the load-balancer families on r.
func (r *Registry) newLBMetrics() *LB {
	m := &LB{
		checkRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_check_runs_total",
			Help: "Health-check probes by check_type and result (success, failure, timeout, error)."}, []string{"check_type", "result"}),
		checkDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vigil_check_duration_seconds",
			Help: "Time one health-check probe took.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"check_type"}),
		quorumUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_virtual_server_quorum_up",
			Help: "1 while the virtual server has quorum (live real-server weight at or above its quorum)."}, vsLabels),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_ipvs_reconciles_total",
			Help: "Passes that compared the IPVS table with the desired one, by result (success, failure)."}, []string{"result"}),
		ops: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_ipvs_operations_total",
			Help: "IPVS changes made (service or destination added, updated or deleted)."}),
		reconcileTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_ipvs_reconcile_duration_seconds",
			Help: "Time of one reconcile pass: desired table, kernel dump, diff and apply.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}),
		ipvs: newIPVSCollector(),
	}
	r.Reg.MustRegister(m.checkRuns, m.checkDuration, m.quorumUp, m.reconciles, m.ops, m.reconcileTime, m.ipvs)
	return m
}

// Collectors are the families reported through the methods, for tests
// that lint every family (the IPVS snapshot collector is not among them:
// it reports at scrape time).
func (m *LB) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.checkRuns, m.checkDuration, m.quorumUp, m.reconciles, m.ops, m.reconcileTime}
}

// CheckProbed records one probe.
func (m *LB) CheckProbed(typ, result string, took time.Duration) {
	if m == nil {
		return
	}
	m.checkRuns.WithLabelValues(typ, result).Inc()
	m.checkDuration.WithLabelValues(typ).Observe(took.Seconds())
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
	m.reconciles.WithLabelValues(result).Inc()
	m.ops.Add(float64(ops))
	m.reconcileTime.Observe(took.Seconds())
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
	m.quorumUp.WithLabelValues(labels...).Set(v)
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
	m.quorumUp.DeletePartialMatch(prometheus.Labels{"virtual_server": name})
}

// ForgetQuorum drops one quorum series (a group member a reload removed);
// labels as SetQuorum.
func (m *LB) ForgetQuorum(labels ...string) {
	if m == nil {
		return
	}
	m.quorumUp.DeleteLabelValues(labels...)
}
