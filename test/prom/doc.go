// Package prom tests vigil's /metrics the way operators consume it: a real Prometheus (Debian's
// prometheus package) scrapes two vigil nodes running VRRP in network namespaces, and the tests
// assert, through Prometheus' HTTP API, what Prometheus saw: both targets up, exactly one master,
// vigil_build_info from both, and after a priority-0 handover and a preemption the new master and the
// transition counters. promtool (from the same package) and client_golang's promlint lint a live
// /metrics scrape, and an exposition holding one series of every family vigil's telemetry package
// defines (families a short run never produces included).
//
// The tests are root-only and gated by VIGIL_NETNS=1 (netlab.NewForTest); they need prometheus and
// promtool (test/deps.sh installs them) and use the vigil binary in $VIGIL_BIN (make netns sets it)
// or build one:
//
//	VIGIL_NETNS=1 go test -count=1 -v ./test/prom/
//
// The lab (prefix "vgpm") is one bridge with n1 (192.0.2.11) and n2 (192.0.2.12), whose telemetry
// listens on those addresses, and "prom" (192.0.2.9), where Prometheus scrapes both every 500 ms and
// serves its API on 127.0.0.1:9090 inside that namespace only. Its TSDB lives in the lab's
// directory; the lab removes every process, namespace and file when the test ends.
package prom
