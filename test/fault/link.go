package fault

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"vigil/test/netlab"
)

// Port sets a node's bridge port up or down over a netlink handle kept open in the switch
// namespace: what netlab.Node.LinkDown and LinkUp do, without an exec of ip each time, so that
// a flap storm keeps its pace on a busy machine.
type Port struct {
	h    *netlink.Handle
	link netlink.Link
	name string
}

// OpenPort opens n's bridge port.
func OpenPort(n *netlab.Node) (*Port, error) {
	ns, err := netns.GetFromName(n.Lab().SwitchNS)
	if err != nil {
		return nil, fmt.Errorf("fault: switch namespace %s: %w", n.Lab().SwitchNS, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("fault: netlink in %s: %w", n.Lab().SwitchNS, err)
	}
	link, err := h.LinkByName(n.Port)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("fault: bridge port %s: %w", n.Port, err)
	}
	return &Port{h: h, link: link, name: n.Port}, nil
}

// Set brings the port up or down.
func (p *Port) Set(up bool) error {
	var err error
	if up {
		err = p.h.LinkSetUp(p.link)
	} else {
		err = p.h.LinkSetDown(p.link)
	}
	if err != nil {
		return fmt.Errorf("fault: bridge port %s up=%v: %w", p.name, up, err)
	}
	return nil
}

// Close closes the netlink handle.
func (p *Port) Close() { p.h.Close() }
