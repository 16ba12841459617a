package nslab

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Node is one host of a lab: a network namespace with an interface (eth0 unless NodeConfig.Dev
// says otherwise) on the lab's segment.
type Node struct {
	// Name is the node's short name in the lab.
	Name string
	// NS is the node's network namespace ("<prefix><name>").
	NS string
	// Port is the bridge-side end of the node's veth, in the switch namespace.
	Port string
	// Dev is the node's interface on the segment (Dev, "eth0", unless NodeConfig.Dev was set).
	Dev string

	lab *Lab
}

// Lab returns the lab the node belongs to.
func (n *Node) Lab() *Lab { return n.lab }

// Run runs `ip netns exec NS name args...` and returns its combined output; on failure the error
// (a *CmdError inside) names the command and includes the output. ctx bounds the run.
func (n *Node) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	bin, err := IPPath()
	if err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	out, err := runCmd(ctx, nil, bin, append([]string{"netns", "exec", n.NS, name}, args...)...)
	if err != nil {
		return out, fmt.Errorf("netlab: node %s: %w", n.Name, err)
	}
	return out, nil
}

// IP runs `ip -n NS args...` (bounded by a 15 s timeout) and returns its combined output.
func (n *Node) IP(args ...string) ([]byte, error) {
	out, err := ip(append([]string{"-n", n.NS}, args...)...)
	if err != nil {
		return out, fmt.Errorf("netlab: node %s: %w", n.Name, err)
	}
	return out, nil
}

// LinkDown cuts the node's link: the bridge-side port goes down, so the node's interface loses its
// carrier.
func (n *Node) LinkDown() error { return n.setPort("down") }

// LinkUp restores the link cut by LinkDown.
func (n *Node) LinkUp() error { return n.setPort("up") }

func (n *Node) setPort(state string) error {
	if _, err := ip("-n", n.lab.SwitchNS, "link", "set", "dev", n.Port, state); err != nil {
		return fmt.Errorf("netlab: node %s: set bridge port %s %s in namespace %s: %w", n.Name, n.Port, state, n.lab.SwitchNS, err)
	}
	return nil
}

// AddrInfo is one address of an interface as `ip -j addr` reports it.
type AddrInfo struct {
	Prefix    netip.Prefix
	Scope     string // "global", "link", "host"
	Tentative bool   // IPv6 DAD not finished
	Dadfailed bool
}

type ipLink struct {
	IfName    string   `json:"ifname"`
	Flags     []string `json:"flags"`
	OperState string   `json:"operstate"`
	Address   string   `json:"address"`
	AddrInfo  []struct {
		Family    string `json:"family"`
		Local     string `json:"local"`
		PrefixLen int    `json:"prefixlen"`
		Scope     string `json:"scope"`
		Tentative bool   `json:"tentative"`
		Dadfailed bool   `json:"dadfailed"`
	} `json:"addr_info"`
}

func (n *Node) link(dev string, withAddrs bool) (*ipLink, error) {
	obj := "link"
	if withAddrs {
		obj = "addr"
	}
	out, err := ipJSON("-n", n.NS, obj, "show", "dev", dev)
	if err != nil {
		return nil, fmt.Errorf("netlab: node %s: %w", n.Name, err)
	}
	var links []ipLink
	if err := json.Unmarshal(out, &links); err != nil {
		return nil, fmt.Errorf("netlab: node %s: parse `ip -j %s show dev %s` output %q: %w", n.Name, obj, dev, out, err)
	}
	if len(links) != 1 {
		return nil, fmt.Errorf("netlab: node %s: `ip -j %s show dev %s` returned %d links", n.Name, obj, dev, len(links))
	}
	return &links[0], nil
}

// AddrInfos returns the addresses on dev with their scope and DAD state.
func (n *Node) AddrInfos(dev string) ([]AddrInfo, error) {
	l, err := n.link(dev, true)
	if err != nil {
		return nil, err
	}
	var infos []AddrInfo
	for _, a := range l.AddrInfo {
		addr, err := netip.ParseAddr(a.Local)
		if err != nil {
			return nil, fmt.Errorf("netlab: node %s: dev %s: bad address %q from ip: %w", n.Name, dev, a.Local, err)
		}
		p := netip.PrefixFrom(addr, a.PrefixLen)
		if !p.IsValid() {
			return nil, fmt.Errorf("netlab: node %s: dev %s: bad prefix %s/%d from ip", n.Name, dev, a.Local, a.PrefixLen)
		}
		infos = append(infos, AddrInfo{Prefix: p, Scope: a.Scope, Tentative: a.Tentative, Dadfailed: a.Dadfailed})
	}
	return infos, nil
}

// Addrs returns the addresses currently on dev (IPv4 and IPv6, link-local included).
func (n *Node) Addrs(dev string) ([]netip.Prefix, error) {
	infos, err := n.AddrInfos(dev)
	if err != nil {
		return nil, err
	}
	ps := make([]netip.Prefix, 0, len(infos))
	for _, i := range infos {
		ps = append(ps, i.Prefix)
	}
	return ps, nil
}

// HasAddr reports whether address a is on dev.
func (n *Node) HasAddr(dev string, a netip.Addr) (bool, error) {
	ps, err := n.Addrs(dev)
	if err != nil {
		return false, err
	}
	a = a.WithZone("").Unmap()
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Addr() == a }), nil
}

// WaitAddr waits until address a is on dev (present) or gone from it (!present), polling every
// 10 ms for at most timeout.
func (n *Node) WaitAddr(dev string, a netip.Addr, present bool, timeout time.Duration) error {
	err := Poll(timeout, 10*time.Millisecond, func() (bool, error) {
		has, err := n.HasAddr(dev, a)
		return has == present, err
	})
	if err != nil {
		want := "present"
		if !present {
			want = "absent"
		}
		return fmt.Errorf("netlab: node %s: address %v %s on %s: %w", n.Name, a, want, dev, err)
	}
	return nil
}

// LinkLocal returns dev's IPv6 link-local address (without zone); it is an error when there is
// none or it is still tentative.
func (n *Node) LinkLocal(dev string) (netip.Addr, error) {
	infos, err := n.AddrInfos(dev)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, i := range infos {
		if a := i.Prefix.Addr(); a.Is6() && a.IsLinkLocalUnicast() {
			if i.Tentative || i.Dadfailed {
				return netip.Addr{}, fmt.Errorf("netlab: node %s: link-local %v on %s is tentative or failed DAD", n.Name, a, dev)
			}
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("netlab: node %s: no IPv6 link-local address on %s", n.Name, dev)
}

// MAC returns dev's hardware address.
func (n *Node) MAC(dev string) (net.HardwareAddr, error) {
	l, err := n.link(dev, false)
	if err != nil {
		return nil, err
	}
	mac, err := net.ParseMAC(l.Address)
	if err != nil {
		return nil, fmt.Errorf("netlab: node %s: dev %s: bad MAC %q from ip: %w", n.Name, dev, l.Address, err)
	}
	return mac, nil
}

// OperState returns dev's operational state as the kernel reports it ("UP", "DOWN",
// "LOWERLAYERDOWN", ...); eth0 is "DOWN" (flag NO-CARRIER) while the link is cut.
func (n *Node) OperState(dev string) (string, error) {
	l, err := n.link(dev, false)
	if err != nil {
		return "", err
	}
	return l.OperState, nil
}

// HasCarrier reports whether dev is up with carrier (flags UP and LOWER_UP).
func (n *Node) HasCarrier(dev string) (bool, error) {
	l, err := n.link(dev, false)
	if err != nil {
		return false, err
	}
	return slices.Contains(l.Flags, "UP") && slices.Contains(l.Flags, "LOWER_UP"), nil
}
