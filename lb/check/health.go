package check

import "vigil/lb"

var _ lb.HealthSource = View{}

// Changes implements [lb.HealthSource]: it is [Scheduler.Changes].
func (v View) Changes() <-chan struct{} { return v.s.Changes() }

// Changed implements [lb.HealthSource]: the owners of
// [Scheduler.ChangedOwners].
func (v View) Changed() []lb.RealServerID {
	owners := v.s.ChangedOwners()
	out := make([]lb.RealServerID, len(owners))
	for i, o := range owners {
		out[i] = lb.RealServerID(o)
	}
	return out
}
