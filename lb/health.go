package lb

// Health is what the desired table needs to know about real servers: the
// local checkers' view now, a fleet-wide view later. RealServer reports
// whether a real server of the named virtual server is up and, when dynamic
// is true, the weight a checker set for it (keepalived's misc_dynamic),
// which replaces the configured one. A real server without checks is up.
type Health interface {
	RealServer(vs string, rs DestKey) (up bool, weight int, dynamic bool)
}

// RealServerID names a real server of a virtual server.
type RealServerID struct {
	VS string
	RS DestKey
}

// HealthSource is a [Health] that says when it changed: what the balancer
// (lb/balancer) reads. The local checkers' view is one; a fleet-wide view
// is another, and the balancer cannot tell them apart.
type HealthSource interface {
	Health
	// Changes receives a value after a verdict may have changed; changes
	// between reads may coalesce into one.
	Changes() <-chan struct{}
	// Changed returns, and forgets, the real servers whose verdict may
	// have changed since the last call, so a reader recomputes only their
	// virtual servers. It has one reader.
	Changed() []RealServerID
}
