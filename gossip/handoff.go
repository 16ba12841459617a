package gossip

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// Coordinated handoff (issue 14: vigil vrrp failover, vigil drain): who
// takes over a virtual router from its master, and whether the normal VRRP
// rules would let the successor keep it. Pure: the node feeds the live
// members' instance summaries.

// Candidate is a member that could take over a virtual router.
type Candidate struct {
	Node, Instance string
	Priority       uint8
	Primary        netip.Addr
}

// Successors returns the members other than self whose instance of the
// virtual router of own is BACKUP (not FAULT, not starting) on a node that
// is not drained, best first: the highest effective priority, then the
// higher primary address (who would win the election anyway, RFC 9568
// §6.4.3's tie-break), then the node name. nodes holds the live members'
// instances.
func Successors(self string, own InstanceSummary, nodes map[string][]InstanceSummary, drained map[string]bool) []Candidate {
	key := own.Key()
	var out []Candidate
	for node, insts := range nodes {
		if node == self || drained[node] {
			continue
		}
		for _, s := range insts {
			if s.Key() == key && s.State == StateBackup && s.Primary != own.Primary {
				out = append(out, Candidate{Node: node, Instance: s.Name, Priority: s.Priority, Primary: s.Primary})
			}
		}
	}
	slices.SortFunc(out, func(a, b Candidate) int {
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), b.Primary.Compare(a.Primary), cmp.Compare(a.Node, b.Node))
	})
	return out
}

// MasterOf finds the member reporting MASTER for the virtual router of the
// instances named name (any member's), the best one if several do (a split
// brain). ok is false when none does.
func MasterOf(name string, nodes map[string][]InstanceSummary) (node string, s InstanceSummary, ok bool) {
	keys := map[VRKey]bool{}
	for _, insts := range nodes {
		for _, x := range insts {
			if x.Name == name {
				keys[x.Key()] = true
			}
		}
	}
	var best *FleetMaster
	for n, insts := range nodes {
		for _, x := range insts {
			if x.State != StateMaster || !keys[x.Key()] {
				continue
			}
			c := FleetMaster{Instance: x.Name, Node: n, Priority: x.Priority, Primary: x.Primary}
			if best == nil || betterMaster(c, *best) {
				best, s = &c, x
			}
		}
	}
	if best == nil {
		return "", InstanceSummary{}, false
	}
	return best.Node, s, true
}

// Resigning is the master that hands off, as the check needs it.
type Resigning struct {
	Node     string
	Priority uint8 // its effective priority once it has resigned
	Preempt  bool
}

// HandoffProblems lists why the successor would not keep mastership by the
// normal VRRP rules (RFC 9568 §6.4.2: a Backup with preemption whose
// priority is higher than the master's discards its adverts and takes
// over when Master_Down_Timer fires; an equal priority does not preempt):
// the resigning master itself, or another candidate that outranks the
// successor. Other nodes' preemption settings are not gossiped: a
// candidate is assumed to preempt (the default). Empty means the handoff
// holds.
func HandoffProblems(old Resigning, to Candidate, others []Candidate) []string {
	var out []string
	if old.Preempt && old.Priority > to.Priority {
		out = append(out, fmt.Sprintf("%s (priority %d, preempt) would take mastership back from %s (priority %d) by preemption: lower its priority or drain it (vigil drain)",
			old.Node, old.Priority, to.Node, to.Priority))
	}
	for _, c := range others {
		if c.Node != to.Node && c.Priority > to.Priority {
			out = append(out, fmt.Sprintf("%s (priority %d) outranks %s (priority %d) and would take over by preemption",
				c.Node, c.Priority, to.Node, to.Priority))
		}
	}
	return out
}
