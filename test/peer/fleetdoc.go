package peer

import (
	"fmt"
	"net/netip"
	"strings"
)

// RolloutDocument is the rollout benchmarks' fleet document (test/fleet on the host, test/lbe2e
// in the VM): one VRRP instance vr51 on eth0 (VRID 51, 1 s adverts, vip), vs virtual servers of
// rs NAT real servers each, weight 1 (with alt, vs0's first real server weighs 2), and under
// nodes: each of names with the priority prio gives it (by its 1-based place in names).
func RolloutDocument(vip netip.Prefix, names []string, prio func(i int) int, vs, rs int, alt bool) string {
	var d strings.Builder
	fmt.Fprintf(&d, "vrrp:\n  instances:\n    - { name: vr51, interface: eth0, vrid: 51, priority: 100, advert_interval: 1s, vips: [%s] }\n", vip)
	if vs > 0 {
		d.WriteString("lb:\n  virtual_servers:\n")
		for i := range vs {
			var reals []string
			for j := range rs {
				w := 1
				if alt && i == 0 && j == 0 {
					w = 2
				}
				reals = append(reals, fmt.Sprintf("{address: \"203.0.113.%d:%d\", weight: %d}", j+1, 8000+i, w))
			}
			fmt.Fprintf(&d, "    - {name: vs%d, address: \"198.51.100.%d:%d\", protocol: tcp, scheduler: wrr, real_servers: [%s]}\n",
				i, 1+i/4, 80+i%4, strings.Join(reals, ", "))
		}
	}
	d.WriteString("nodes:\n")
	for i, name := range names {
		fmt.Fprintf(&d, "  %s: { vrrp: { instances: [ { name: vr51, priority: %d } ] } }\n", name, prio(i+1))
	}
	return d.String()
}
