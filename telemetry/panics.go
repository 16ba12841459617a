package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/safe"
)

// panicCollector exports the panics internal/safe recovered, read at
// scrape time.
type panicCollector struct{ desc *prometheus.Desc }

func newPanicCollector() panicCollector {
	return panicCollector{prometheus.NewDesc("vigil_panics_recovered_total",
		"Panics recovered at a goroutine boundary (a probe, reader, script runner or API handler), by component; each is logged with its stack.",
		[]string{"component"}, nil)}
}

func (c panicCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c panicCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range safe.Counts() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(p.Panics), p.Component)
	}
}
