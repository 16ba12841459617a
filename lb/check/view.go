package check

import "vigil/lb"

// View is the local health view: an [lb.Health] over one scheduler's
// checks. A real server is up iff all its checks are up; one without checks
// is up. A fleet-wide view (gossip) implements lb.HealthSource too, fed
// from [Scheduler.Statuses] and [Scheduler.Changes], and replaces View in
// the balancer without changes to the checkers, to lb or to the balancer.
type View struct{ s *Scheduler }

var _ lb.Health = View{}

// View returns the local health view of s.
func (s *Scheduler) View() View { return View{s} }

// RealServer implements [lb.Health]. When several checks of the real server
// set a dynamic weight, the smallest wins: the most cautious check decides.
func (v View) RealServer(vs string, rs lb.DestKey) (up bool, weight int, dynamic bool) {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	up = true
	for _, id := range v.s.owners[Owner{vs, rs}] {
		st := v.s.probes[v.s.keys[id]].st
		up = up && st.Up
		if st.Dynamic && (!dynamic || st.Weight < weight) {
			weight, dynamic = st.Weight, true
		}
	}
	return up, weight, dynamic
}
