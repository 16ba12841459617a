package telemetry

import (
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// IPVSSnapshot is what the IPVS collector exports at one scrape: the
// virtual servers vigil manages, with the kernel's counters where the
// kernel has the entry and the configured weight and health of each real
// server. telemetry does not import lb; the node fills it in.
type IPVSSnapshot struct {
	VirtualServers []VSSnapshot
}

// VSSnapshot is one virtual server. Labels are vsLabels' values in order
// (virtual_server, local_address, local_port, proto, local_mark).
type VSSnapshot struct {
	Labels     []string
	Scheduler  string
	Forwarding string // nat, dr, tun, or mixed
	Persistent bool
	// InKernel says whether the kernel has the service; Stats is valid only
	// then.
	InKernel bool
	Stats    IPVSCounters
	// RealServers are the configured real servers and the sorry server
	// (Sorry true), plus whatever else the kernel holds under the service.
	RealServers []RSSnapshot
}

// RSSnapshot is one real server of a virtual server.
type RSSnapshot struct {
	Address, Port string // remote_address, remote_port
	Sorry         bool
	// Configured is false for a destination the kernel has that the config
	// does not name; Healthy and ConfiguredWeight are then not exported.
	Configured       bool
	ConfiguredWeight int
	Healthy          bool
	CheckFailures    int // the most probes failed in a row among its checks
	// Transitions, when set, are its transitions counted so far (given
	// once per real server: under its virtual server's first address).
	Transitions *RSTransitions
	// InKernel says whether the kernel has the destination now; the kernel
	// fields are valid only then.
	InKernel         bool
	Weight           int
	Active, Inactive uint32
	Stats            IPVSCounters
}

// RSTransitions count a real server going up and down as its checks
// decide, since the config first named it.
type RSTransitions struct{ Up, Down uint64 }

// IPVSCounters are the kernel's cumulative counters of a service or
// destination.
type IPVSCounters struct {
	Conns, InPkts, OutPkts, InBytes, OutBytes uint64
}

// IPVSSource produces a snapshot; it is called at most once per
// ipvsCacheFor, however many scrapes arrive. When the kernel cannot be
// read it returns the error with the configured side still filled in
// (InKernel false throughout).
type IPVSSource func() (IPVSSnapshot, error)

// ipvsCacheFor bounds how often the kernel is read: several Prometheus
// servers scraping the same node share one dump (a dump is a netlink
// round trip per service).
const ipvsCacheFor = time.Second

var rsLabels = append(append([]string{}, vsLabels...), "remote_address", "remote_port")

// ipvsCollector exports the kernel's per-service and per-destination
// counters and the real servers' configured weight and health, read at
// scrape time (the kernel keeps the counters; copying them into gauges on
// a timer would only make them staler).
type ipvsCollector struct {
	log *slog.Logger

	mu     sync.Mutex
	source IPVSSource
	cached IPVSSnapshot
	at     time.Time

	vsInfo, vsConns, vsInPkts, vsOutPkts, vsInBytes, vsOutBytes *prometheus.Desc
	vsReals, vsRealsUp                                          *prometheus.Desc
	rsConns, rsInPkts, rsOutPkts, rsInBytes, rsOutBytes         *prometheus.Desc
	rsActive, rsInactive, rsWeight                              *prometheus.Desc
	rsConfWeight, rsHealthy, rsFailures, rsTransitions          *prometheus.Desc
	up                                                          *prometheus.Desc
}

func newIPVSCollector() *ipvsCollector {
	vs := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string{}, vsLabels...), extra...), nil)
	}
	rs := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, rsLabels, nil) }
	return &ipvsCollector{
		vsInfo:       vs("vigil_ipvs_virtual_server_info", "A virtual server vigil manages; always 1. Join on the virtual-server labels for its scheduler, forwarding and persistence.", "scheduler", "forwarding", "persistent"),
		vsConns:      vs("vigil_ipvs_virtual_server_connections_total", "Connections the kernel scheduled for the virtual server."),
		vsInPkts:     vs("vigil_ipvs_virtual_server_incoming_packets_total", "Packets in to the virtual server."),
		vsOutPkts:    vs("vigil_ipvs_virtual_server_outgoing_packets_total", "Packets out of the virtual server (NAT only; zero for DR and TUN)."),
		vsInBytes:    vs("vigil_ipvs_virtual_server_incoming_bytes_total", "Bytes in to the virtual server."),
		vsOutBytes:   vs("vigil_ipvs_virtual_server_outgoing_bytes_total", "Bytes out of the virtual server (NAT only)."),
		vsReals:      vs("vigil_virtual_server_real_servers", "Configured real servers of the virtual server (the sorry server not counted)."),
		vsRealsUp:    vs("vigil_virtual_server_real_servers_up", "Configured real servers whose checks all pass. Alert when it nears the quorum."),
		rsConns:      rs("vigil_ipvs_real_server_connections_total", "Connections the kernel scheduled to the real server since it was added."),
		rsInPkts:     rs("vigil_ipvs_real_server_incoming_packets_total", "Packets in to the real server."),
		rsOutPkts:    rs("vigil_ipvs_real_server_outgoing_packets_total", "Packets out of the real server (NAT only)."),
		rsInBytes:    rs("vigil_ipvs_real_server_incoming_bytes_total", "Bytes in to the real server."),
		rsOutBytes:   rs("vigil_ipvs_real_server_outgoing_bytes_total", "Bytes out of the real server (NAT only)."),
		rsActive:     rs("vigil_ipvs_real_server_connections_active", "Established connections to the real server, as the kernel counts them."),
		rsInactive:   rs("vigil_ipvs_real_server_connections_inactive", "Connections to the real server in other states (for TCP: not established)."),
		rsWeight:     rs("vigil_ipvs_real_server_weight", "The real server's weight in the kernel now: 0 while inhibited or drained; absent while removed."),
		rsConfWeight: rs("vigil_real_server_configured_weight", "The real server's weight in the config, or the dynamic weight its check set."),
		rsHealthy:    rs("vigil_real_server_healthy", "1 while all the real server's checks pass."),
		rsFailures:   rs("vigil_real_server_check_failures", "Probes of the real server's checks that failed in a row (the most among its checks); 0 after a success. Rising while healthy: about to go down."),
		rsTransitions: prometheus.NewDesc("vigil_real_server_transitions_total",
			"Real servers going up or down as their checks decide (to: up, down). A fast rise means a flapping backend.",
			append(append([]string{}, rsLabels...), "to"), nil),
		up: prometheus.NewDesc("vigil_ipvs_scrape_success", "1 if this scrape could read the kernel's IPVS table; 0 means the kernel series are missing from it.", nil, nil),
	}
}

// set installs the snapshot source (nil: nothing is exported).
func (c *ipvsCollector) set(src IPVSSource, log *slog.Logger) {
	c.mu.Lock()
	c.source, c.log, c.at = src, log, time.Time{}
	c.mu.Unlock()
}

func (c *ipvsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.vsInfo, c.vsConns, c.vsInPkts, c.vsOutPkts, c.vsInBytes, c.vsOutBytes,
		c.vsReals, c.vsRealsUp, c.rsConns, c.rsInPkts, c.rsOutPkts, c.rsInBytes, c.rsOutBytes,
		c.rsActive, c.rsInactive, c.rsWeight, c.rsConfWeight, c.rsHealthy, c.rsFailures, c.rsTransitions, c.up} {
		ch <- d
	}
}

// snapshot returns the cached snapshot, refreshing it when older than
// ipvsCacheFor. kernelOK is false when the kernel could not be read (the
// source still fills in the configured side); have is false without a
// source.
func (c *ipvsCollector) snapshot() (snap IPVSSnapshot, kernelOK, have bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.source == nil {
		return IPVSSnapshot{}, false, false
	}
	if time.Since(c.at) < ipvsCacheFor {
		return c.cached, true, true
	}
	s, err := c.source()
	if err != nil {
		if c.log != nil {
			c.log.Warn("reading IPVS counters for /metrics", "err", err)
		}
		return s, false, true // not cached: the next scrape tries again
	}
	c.cached, c.at = s, time.Now()
	return s, true, true
}

func (c *ipvsCollector) Collect(ch chan<- prometheus.Metric) {
	snap, kernelOK, have := c.snapshot()
	if !have {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, b2f(kernelOK))
	counter := func(d *prometheus.Desc, v uint64, labels []string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels []string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, vs := range snap.VirtualServers {
		gauge(c.vsInfo, 1, append(append([]string{}, vs.Labels...), vs.Scheduler, vs.Forwarding, boolLabel(vs.Persistent)))
		if vs.InKernel {
			counter(c.vsConns, vs.Stats.Conns, vs.Labels)
			counter(c.vsInPkts, vs.Stats.InPkts, vs.Labels)
			counter(c.vsOutPkts, vs.Stats.OutPkts, vs.Labels)
			counter(c.vsInBytes, vs.Stats.InBytes, vs.Labels)
			counter(c.vsOutBytes, vs.Stats.OutBytes, vs.Labels)
		}
		reals, up := 0, 0
		for _, rs := range vs.RealServers {
			l := append(append(make([]string, 0, len(rsLabels)), vs.Labels...), rs.Address, rs.Port)
			if rs.Configured && !rs.Sorry {
				reals++
				if rs.Healthy {
					up++
				}
			}
			if rs.Configured {
				gauge(c.rsConfWeight, float64(rs.ConfiguredWeight), l)
				gauge(c.rsHealthy, b2f(rs.Healthy), l)
				gauge(c.rsFailures, float64(rs.CheckFailures), l)
			}
			if t := rs.Transitions; t != nil {
				counter(c.rsTransitions, t.Up, append(l[:len(l):len(l)], "up"))
				counter(c.rsTransitions, t.Down, append(l[:len(l):len(l)], "down"))
			}
			if rs.InKernel {
				counter(c.rsConns, rs.Stats.Conns, l)
				counter(c.rsInPkts, rs.Stats.InPkts, l)
				counter(c.rsOutPkts, rs.Stats.OutPkts, l)
				counter(c.rsInBytes, rs.Stats.InBytes, l)
				counter(c.rsOutBytes, rs.Stats.OutBytes, l)
				gauge(c.rsActive, float64(rs.Active), l)
				gauge(c.rsInactive, float64(rs.Inactive), l)
				gauge(c.rsWeight, float64(rs.Weight), l)
			}
		}
		gauge(c.vsReals, float64(reals), vs.Labels)
		gauge(c.vsRealsUp, float64(up), vs.Labels)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func boolLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
