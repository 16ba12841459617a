package balancer

import (
	"fmt"
	"strconv"

	"vigil/lb"
	"vigil/lb/check"
	"vigil/telemetry"
	"vigil/telemetry/events"
)

// statsReader reads the kernel's table with its counters for /metrics. It
// is a second IPVS handle: a netlink socket serves one request at a time,
// and scrapes must not interleave with the balancer's changes.
type statsReader interface {
	Stats() (lb.Table, lb.Stats, error)
	Close()
}

// metricsSnapshot is the IPVS collector's source: the virtual servers of
// the current config, their real servers' health and configured weight,
// and the kernel's counters for what the kernel holds. A kernel that
// cannot be read still yields the configured side, with the error.
func (b *Balancer) metricsSnapshot() (telemetry.IPVSSnapshot, error) {
	b.mu.Lock()
	specs := b.specs
	b.mu.Unlock()
	var tab lb.Table
	var st lb.Stats
	var err error
	if b.stats != nil {
		if tab, st, err = b.stats.Stats(); err != nil {
			err = fmt.Errorf("lb: IPVS counters: %w", err)
		}
	}
	h := b.health
	failures := map[check.Owner]int{}
	for _, cs := range b.checks.Statuses() {
		failures[cs.Owner] = max(failures[cs.Owner], cs.Failures)
	}
	snap := telemetry.IPVSSnapshot{VirtualServers: make([]telemetry.VSSnapshot, 0, len(specs))}
	b.rsMu.Lock() // the transition counts
	defer b.rsMu.Unlock()
	for _, vs := range specs {
		svc := vs.Service.Normal()
		for _, key := range vs.Keys() { // several for a group
			e, inKernel := tab[key]
			v := telemetry.VSSnapshot{
				Labels: vsKeyLabels(vs.Name, key), Scheduler: svc.Scheduler, Forwarding: forwarding(vs),
				Persistent: svc.Persistence > 0, InKernel: inKernel, Stats: ipvsCounters(st.Services[key]),
			}
			seen := make(map[lb.DestKey]bool, len(vs.Reals)+1)
			add := func(k lb.DestKey, r telemetry.RSSnapshot) {
				seen[k] = true
				r.Address, r.Port = k.Addr.String(), strconv.Itoa(int(k.Port))
				if d, ok := e.Dests[k]; ok {
					dc := st.Dests[key][k]
					r.InKernel, r.Weight = true, d.Weight
					r.Active, r.Inactive, r.Stats = dc.ActiveConns, dc.InactConns, ipvsCounters(dc.Counters)
				}
				v.RealServers = append(v.RealServers, r)
			}
			for _, rs := range vs.Reals {
				k := rs.Dest.Normal().Key()
				up, w, dyn := h.RealServer(vs.Name, rs.Key())
				if !dyn {
					w = rs.Weight
				}
				r := telemetry.RSSnapshot{Configured: true, ConfiguredWeight: w, Healthy: up, CheckFailures: failures[check.Owner{VS: vs.Name, RS: rs.Key()}]}
				if key == vs.Service.Key {
					if tr, ok := b.rsUp[rsID{vs.Name, rs.Key()}]; ok {
						r.Transitions = &telemetry.RSTransitions{Up: tr.toUp, Down: tr.toDown}
					}
				}
				add(k, r)
			}
			if vs.Sorry != nil {
				if k := vs.Sorry.Normal().Key(); !seen[k] {
					add(k, telemetry.RSSnapshot{Sorry: true})
				}
			}
			for _, d := range e.SortedDests() {
				if !seen[d.Key()] {
					add(d.Key(), telemetry.RSSnapshot{})
				}
			}
			snap.VirtualServers = append(snap.VirtualServers, v)
		}
	}
	return snap, err
}

// forwarding is the virtual server's forwarding method for its info
// series: the real servers' one, or "mixed".
func forwarding(vs lb.VirtualServer) string {
	f := ""
	for _, rs := range vs.Reals {
		switch s := rs.Forward.String(); {
		case f == "":
			f = s
		case f != s:
			return "mixed"
		}
	}
	return f
}

func ipvsCounters(c lb.Counters) telemetry.IPVSCounters {
	return telemetry.IPVSCounters{Conns: c.Conns, InPkts: c.InPkts, OutPkts: c.OutPkts, InBytes: c.InBytes, OutBytes: c.OutBytes}
}

// countTransitions counts real servers whose combined check state changed
// since the last pass (vigil_real_server_transitions_total) and publishes
// each change (notify_up/notify_down, the FIFO). A real server first seen
// is not a transition; with lb.rs_init_notifies one first seen up is
// published all the same, as keepalived's rs_init_notifies does.
func (b *Balancer) countTransitions(specs []lb.VirtualServer, h lb.Health, same bool, pass passTimes) {
	var evs []events.Event
	var changes []rsChange
	b.mu.Lock()
	initNotifies := b.initNotifies
	b.mu.Unlock()
	b.rsMu.Lock()
	// same: the specs of the last pass (no reload since): update in place;
	// after a reload a new map, which leaves removed real servers out.
	next := b.rsUp
	if !same {
		n := 0
		for _, vs := range specs {
			n += len(vs.Reals)
		}
		next = make(map[rsID]rsTrack, n) // sized: a start adds thousands
	}
	for _, vs := range specs {
		for _, rs := range vs.Reals {
			id := rsID{vs.Name, rs.Key()}
			up, _, _ := h.RealServer(vs.Name, rs.Key())
			tr, ok := b.rsUp[id]
			if ok && tr.up == up && same {
				continue
			}
			if !ok && up && initNotifies {
				// Not a transition (nothing counted), but reported as
				// keepalived's rs_init_notifies does.
				evs = append(evs, events.Event{Kind: events.KindRealServer, Name: vs.Name, Service: lb.KeepalivedService(vs.Service.Key),
					RealServer: lb.KeepalivedRealServer(vs, rs.Key()), From: events.StateInit, To: events.StateUp, Reason: "first check state"})
			}
			if ok && tr.up != up {
				if up {
					tr.toUp++
				} else {
					tr.toDown++
				}
				evs = append(evs, events.Event{Kind: events.KindRealServer, Name: vs.Name, Service: lb.KeepalivedService(vs.Service.Key),
					RealServer: lb.KeepalivedRealServer(vs, rs.Key()), From: upDown(tr.up), To: upDown(up)})
				changes = append(changes, rsChange{id: id, up: up})
			}
			tr.up = up
			next[id] = tr
		}
	}
	b.rsUp = next
	b.rsMu.Unlock()
	b.traceTransitions(changes, pass)
	for _, e := range evs {
		b.notify(e)
	}
}

// rsTrack is a real server's combined check state at the last pass and
// its transitions counted so far (vigil_real_server_transitions_total,
// exported at scrape time: creating 20,000 series for 10,000 real servers
// in client_golang took most of a start's first pass).
type rsTrack struct {
	up           bool
	toUp, toDown uint64
}

// rsID names a real server of a virtual server.
type rsID struct {
	vs string
	rs lb.DestKey
}
