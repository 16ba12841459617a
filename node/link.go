package node

import (
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link tracking: an instance whose interface is down (administratively, or
// without carrier) goes to FAULT, as in keepalived: it cannot serve, and a
// master that keeps its VIP on a dead link only delays the takeover and
// causes a second election when the link returns. Link state comes from a
// netlink subscription, not polling.

// linkUp reports whether flags say the link can carry traffic.
func linkUp(flags uint32) bool {
	return flags&unix.IFF_UP != 0 && flags&unix.IFF_RUNNING != 0
}

// initLinks reads the current state of every instance interface, so that
// Start already knows which instances begin in FAULT. Called before Start.
func (n *Node) initLinks() error {
	seen := map[string]bool{}
	for _, in := range n.insts {
		if in.cfg.DontTrackPrimary {
			continue
		}
		name := in.cfg.Interface
		if !seen[name] {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return fmt.Errorf("interface %q: %w", name, err)
			}
			seen[name] = linkUp(l.Attrs().RawFlags)
			if !seen[name] {
				n.log.Warn("interface is down; its instances start in FAULT", "device", name, "oper_state", l.Attrs().OperState.String())
			}
		}
		in.ifDown = !seen[name]
		n.applyFault(in, time.Now())
	}
	return nil
}

// watchLinks follows link changes until done is closed.
func (n *Node) watchLinks() error {
	ch := make(chan netlink.LinkUpdate, 64)
	err := netlink.LinkSubscribeWithOptions(ch, n.done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case <-n.done: // closing the subscription at stop makes its read fail
			default:
				n.log.Error("link state subscription failed; link changes are no longer tracked", "err", err)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("subscribing to link changes: %w", err)
	}
	go func() {
		for u := range ch {
			name := u.Link.Attrs().Name
			up := u.Header.Type != unix.RTM_DELLINK && linkUp(u.IfInfomsg.Flags)
			n.mu.Lock()
			if n.stopping {
				n.mu.Unlock()
				continue
			}
			now := time.Now()
			for _, in := range n.insts {
				if in.cfg.Interface != name || in.ifDown == !up || in.cfg.DontTrackPrimary {
					continue
				}
				if !in.ifDown {
					n.log.Warn("interface down", "device", name, "vrrp_instance", in.cfg.Name)
				} else {
					n.log.Info("interface up", "device", name, "vrrp_instance", in.cfg.Name)
				}
				in.ifDown = !up
				n.applyFault(in, now)
			}
			n.rearm()
			n.mu.Unlock()
		}
	}()
	return nil
}

// linkIsUp reads an interface's state once.
func linkIsUp(name string) (bool, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return false, fmt.Errorf("interface %q: %w", name, err)
	}
	return linkUp(l.Attrs().RawFlags), nil
}
