package telemetry

import "github.com/prometheus/client_golang/prometheus"

// ConfigRejected counts fleet documents a node refused for their signature
// (issue 14): pushes refused by the node that took them, and versions a
// follower would not apply, by reason.
type ConfigRejected struct{ c *prometheus.CounterVec }

// NewConfigRejected registers vigil_fleet_config_rejected_total with every
// reason present from the start, so increase() sees the first refusal.
func (r *Registry) NewConfigRejected(reasons []string) *ConfigRejected {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_fleet_config_rejected_total",
		Help: "Fleet documents refused for their signature (a push taken here, or a version to apply), by reason: unsigned, bad_signature, untrusted_key."},
		[]string{"reason"})
	for _, reason := range reasons {
		c.WithLabelValues(reason)
	}
	r.Reg.MustRegister(c)
	return &ConfigRejected{c: c}
}

// Inc counts one refusal; a nil ConfigRejected counts nothing.
func (m *ConfigRejected) Inc(reason string) {
	if m != nil {
		m.c.WithLabelValues(reason).Inc()
	}
}
