package gossip

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// Split-brain arbitration (issue 13): when the VRRP path between two
// directors breaks but gossip still passes, each node learns from the
// other's instance summaries that it is MASTER too. The functions here only
// find that master; the VRRP core treats it as an advertisement (RFC 9568
// §6.4.3), so VRRP stays the only authority over VIPs.

// VRKey identifies a virtual router across the fleet: the same VRID and
// family with the same VIP set.
type VRKey struct {
	VRID   uint8
	Family int
	VIPSet string
}

// Compare orders keys by VRID, family, then VIP set.
func (k VRKey) Compare(l VRKey) int {
	return cmp.Or(cmp.Compare(k.VRID, l.VRID), cmp.Compare(k.Family, l.Family), cmp.Compare(k.VIPSet, l.VIPSet))
}

// FleetMaster is another node that reports MASTER for the virtual router
// of one of this node's instances.
type FleetMaster struct {
	Instance string // this node's instance
	Node     string // the other node
	Priority uint8
	Primary  netip.Addr
	Interval time.Duration
}

// FleetMasters returns, for each own instance in state MASTER or BACKUP,
// the best other node that reports MASTER for the same virtual router:
// highest priority, then the higher primary address (the RFC 9568 §6.4.3
// tie-break). others must hold only live members with fresh summaries; an
// instance with the own instance's primary address is this node itself
// (no two routers send from one address) and is skipped, so passing this
// node among others is harmless. The result is sorted by instance name;
// the VRRP core decides, by its receive rules, whether the master wins.
func FleetMasters(own []InstanceSummary, others map[string][]InstanceSummary) []FleetMaster {
	var out []FleetMaster
	for _, o := range own {
		if o.State != StateMaster && o.State != StateBackup {
			continue
		}
		key := o.Key()
		var best *FleetMaster
		for node, insts := range others {
			for _, s := range insts {
				if s.State != StateMaster || s.Key() != key || s.Primary == o.Primary {
					continue
				}
				c := FleetMaster{Instance: o.Name, Node: node, Priority: s.Priority, Primary: s.Primary, Interval: s.Interval}
				if best == nil || betterMaster(c, *best) {
					best = &c
				}
			}
		}
		if best != nil {
			out = append(out, *best)
		}
	}
	slices.SortFunc(out, func(a, b FleetMaster) int { return cmp.Compare(a.Instance, b.Instance) })
	return out
}

// betterMaster reports whether a wins over b: priority, then primary
// address (compared as unsigned integers in network byte order, which
// netip.Addr.Compare does within a family), then node name so that the
// result does not depend on map order.
func betterMaster(a, b FleetMaster) bool {
	return cmp.Or(cmp.Compare(a.Priority, b.Priority), a.Primary.Compare(b.Primary), cmp.Compare(b.Node, a.Node)) > 0
}

// VRStatus is one virtual router as the fleet sees it.
type VRStatus struct {
	Key     VRKey
	Name    string   // an instance name seen for it (the smallest)
	Masters []string // nodes reporting MASTER, sorted: one is healthy
	Members []VRMember
}

// VRMember is one node's instance in a virtual router.
type VRMember struct {
	Node, Instance, State string
	Priority              uint8
}

// VirtualRouters groups every node's instances (this node's included) by
// virtual router, for status --fleet and the masters-per-virtual-router
// metric. nodes should hold the live members only. The routers are sorted
// by key, their members by node and instance.
func VirtualRouters(nodes map[string][]InstanceSummary) []VRStatus {
	byKey := map[VRKey]*VRStatus{}
	for node, insts := range nodes {
		for _, s := range insts {
			k := s.Key()
			vr := byKey[k]
			if vr == nil {
				vr = &VRStatus{Key: k, Name: s.Name}
				byKey[k] = vr
			}
			vr.Name = min(vr.Name, s.Name)
			vr.Members = append(vr.Members, VRMember{Node: node, Instance: s.Name, State: s.State, Priority: s.Priority})
			if s.State == StateMaster {
				vr.Masters = append(vr.Masters, node)
			}
		}
	}
	out := make([]VRStatus, 0, len(byKey))
	for _, vr := range byKey {
		slices.Sort(vr.Masters)
		vr.Masters = slices.Compact(vr.Masters)
		slices.SortFunc(vr.Members, func(a, b VRMember) int {
			return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Instance, b.Instance))
		})
		out = append(out, *vr)
	}
	slices.SortFunc(out, func(a, b VRStatus) int { return a.Key.Compare(b.Key) })
	return out
}
