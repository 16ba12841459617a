package lb

import "maps"

// QuorumState carries, per virtual server name, whether the service had
// quorum after the last [Desired] call. Hysteresis needs it: between the
// two thresholds the previous state holds. A nil or empty state is fine.
type QuorumState map[string]bool

// Desired computes the IPVS table vigil wants from the configured virtual
// servers and the health of their real servers, and the quorum state to
// pass to the next call. It follows keepalived's checker (ipwrapper.c):
//
//   - A real server is up or down as h says. Down, it is left out of the
//     table, or kept with weight 0 when Inhibit is set
//     (inhibit_on_failure), so its existing connections drain.
//   - A dynamic weight from h (misc_dynamic) replaces the configured one.
//   - Quorum is the sum of the weights of the live real servers. A service
//     gains quorum at ≥ Quorum+Hysteresis and loses it below
//     Quorum−Hysteresis; in between the previous state holds. With no
//     previous state (first call, or a new virtual server) the plain
//     threshold decides: quorum iff sum ≥ Quorum. A Quorum below 1 counts
//     as 1, keepalived's default and minimum.
//   - While quorum is lost and a sorry server is configured, every live
//     real server is pulled and the sorry server added; inhibited real
//     servers stay at weight 0 (keepalived's clear_service_rs sets them to
//     0 rather than deleting them), so the sorry server is the only
//     destination that takes new connections. A sorry server with weight 0
//     gets weight 1. When quorum returns, the sorry server goes and the
//     real servers come back; with SorryInhibit (sorry_server_inhibit) the
//     sorry server stays with weight 0 instead, so its connections drain
//     (it is then in the table at weight 0 whenever quorum holds, unless a
//     real server has its address).
//   - Without a sorry server, losing quorum changes nothing in the table
//     (keepalived then only runs quorum_down scripts).
//
// A virtual server with a Group puts the same destinations under each of
// its services. Virtual servers are expected to have distinct service keys
// (the config validates that); if two share one, the later wins. prev is
// not modified.
func Desired(vss []VirtualServer, h Health, prev QuorumState) (Table, QuorumState) {
	t := make(Table, len(vss))
	next := make(QuorumState, len(vss))
	for _, vs := range vss {
		svc := vs.Service.Normal()
		type rsView struct {
			d       Dest
			up      bool
			inhibit bool
		}
		views := make([]rsView, 0, len(vs.Reals))
		sum := 0
		for _, rs := range vs.Reals {
			d := rs.Dest.Normal()
			up, w, dyn := true, 0, false
			if h != nil {
				up, w, dyn = h.RealServer(vs.Name, d.Key())
			}
			if dyn {
				d.Weight = max(w, 0)
			}
			if up {
				sum += d.Weight
			}
			views = append(views, rsView{d: d, up: up, inhibit: rs.Inhibit})
		}

		quorum := max(vs.Quorum, 1)
		had, known := prev[vs.Name]
		var has bool
		switch {
		case !known:
			has = sum >= quorum
		case had:
			has = sum >= quorum-vs.Hysteresis
		default:
			has = sum >= quorum+vs.Hysteresis
		}
		next[vs.Name] = has

		dests := make(map[DestKey]Dest, len(views)+1)
		sorry := !has && vs.Sorry != nil
		for _, v := range views {
			switch {
			case v.up && !sorry:
				dests[v.d.Key()] = v.d
			case v.inhibit:
				// Down, or pulled for the sorry server: kept to drain.
				v.d.Weight = 0
				dests[v.d.Key()] = v.d
			}
		}
		if vs.Sorry != nil {
			s := vs.Sorry.Normal()
			_, taken := dests[s.Key()]
			switch {
			case sorry:
				if s.Weight == 0 {
					s.Weight = 1
				}
				dests[s.Key()] = s
			case vs.SorryInhibit && !taken:
				s.Weight = 0 // kept to drain, as an inhibited real server
				dests[s.Key()] = s
			}
		}
		t[svc.Key] = Entry{Service: svc, Dests: dests}
		for _, k := range vs.Group {
			// Each member its own map: tables are changed in place.
			g := svc
			g.Key = k.Normal()
			t[g.Key] = Entry{Service: g, Dests: maps.Clone(dests)}
		}
	}
	return t, next
}
