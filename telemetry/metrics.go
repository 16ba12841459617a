package telemetry

import (
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"vigil/internal/buildinfo"
)

// Registry bundles a registry with vigil's metric families.
type Registry struct {
	Reg  *prometheus.Registry
	VRRP *VRRP
	LB   *LB
	// Fleet is nil until NewFleet (a node with a gossip section).
	Fleet *Fleet
	// Tracer makes the node's spans (Tracing.Tracer; a no-op tracer until
	// set).
	Tracer trace.Tracer
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

	r := &Registry{Reg: reg, VRRP: newVRRPMetrics(reg), Tracer: noop.NewTracerProvider().Tracer("vigil")}
	r.LB = r.newLBMetrics()
	return r
}

// Config holds the configuration-reload metric families.
type Config struct {
	reloads     *prometheus.CounterVec
	lastOK      prometheus.Gauge
	lastSuccess prometheus.Gauge
	duration    prometheus.Histogram
	info        *prometheus.GaugeVec
}

// NewConfigMetrics registers the configuration metrics on r.
func (r *Registry) NewConfigMetrics(hash string) *Config {
	c := &Config{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_config_reloads_total",
			Help: "Configuration reloads by trigger (sighup, api) and result (success, rejected: invalid file, nothing applied; failure: partly applied)."},
			[]string{"trigger", "result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_config_last_reload_successful",
			Help: "1 if the last reload was applied (or none was tried), 0 if it was rejected or failed."}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_config_last_reload_success_timestamp_seconds",
			Help: "Unix time the configuration was last loaded successfully (start or reload)."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_config_apply_duration_seconds",
			Help: "Time to read, validate and apply a reload.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_config_info",
			Help: "The running configuration's sha256 (short); always 1."}, []string{"hash"}),
	}
	r.Reg.MustRegister(c.reloads, c.lastOK, c.lastSuccess, c.duration, c.info)
	c.lastOK.Set(1)
	c.lastSuccess.SetToCurrentTime()
	c.SetHash(hash)
	return c
}

// SetHash records the running configuration's hash.
func (c *Config) SetHash(hash string) {
	if len(hash) > 12 {
		hash = hash[:12]
	}
	c.info.Reset()
	c.info.WithLabelValues(hash).Set(1)
}

// Reloaded records one reload.
func (c *Config) Reloaded(trigger, result string, took time.Duration) {
	c.reloads.WithLabelValues(trigger, result).Inc()
	c.duration.Observe(took.Seconds())
	if result == "success" {
		c.lastOK.Set(1)
		c.lastSuccess.SetToCurrentTime()
	} else {
		c.lastOK.Set(0)
	}
}

// Collectors are the configuration families, for tests that lint every
// family.
func (c *Config) Collectors() []prometheus.Collector {
	return []prometheus.Collector{c.reloads, c.lastOK, c.lastSuccess, c.duration, c.info}
}
