package router

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"vigil/internal/safe"
	"vigil/vrrp/vrrpnet"
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
func (n *Router) initLinks() error {
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
func (n *Router) watchLinks() error {
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
			n.linkChanged(u.Link.Attrs().Name, u.Header.Type != unix.RTM_DELLINK && linkUp(u.IfInfomsg.Flags))
		}
	}()
	return nil
}

// linkChanged moves the instances on the interface into or out of FAULT.
func (n *Router) linkChanged(name string, up bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	defer safe.Recover(n.log, "link_watch", n.fail)
	if n.stopping {
		return
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
}

// linkIsUp reads an interface's state once.
func linkIsUp(name string) (bool, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return false, fmt.Errorf("interface %q: %w", name, err)
	}
	return linkUp(l.Attrs().RawFlags), nil
}

// Address tracking: an instance sends from its interface's primary IPv4
// address or IPv6 link-local address, which can be missing at start (an
// IPv6 link-local address stays tentative for the first second or so after
// the link comes up, during duplicate address detection) and can go and
// come back (the kernel drops IPv6 addresses when the link goes down). An
// instance without one waits in FAULT (no_source_address) and starts as
// Backup once it has one, as keepalived does; before, an IPv6 instance
// could not start at all (issue 11 item 3). Addresses come from a netlink
// subscription; the VIPs' own changes are ignored.

// addrRecheckDelay gathers the address events of one change (a link coming
// up brings several) into one recheck.
const addrRecheckDelay = 20 * time.Millisecond

// watchAddrs follows address changes until done is closed.
func (n *Router) watchAddrs() error {
	ch := make(chan netlink.AddrUpdate, 64)
	err := netlink.AddrSubscribeWithOptions(ch, n.done, netlink.AddrSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case <-n.done:
			default:
				n.log.Error("address subscription failed; source address changes are no longer tracked", "err", err)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("subscribing to address changes: %w", err)
	}
	go func() {
		var pending *time.Timer
		for u := range ch {
			a, ok := netip.AddrFromSlice(u.LinkAddress.IP)
			if !ok {
				continue
			}
			a = a.Unmap()
			n.mu.Lock()
			ours := n.isVIP(a)
			n.mu.Unlock()
			if ours {
				continue
			}
			if pending == nil {
				pending = time.AfterFunc(addrRecheckDelay, n.recheckSources)
			} else {
				pending.Reset(addrRecheckDelay)
			}
		}
		if pending != nil {
			pending.Stop()
		}
	}()
	return nil
}

// isVIP reports whether a is a VIP of the running configuration. Called
// with n.mu held.
func (n *Router) isVIP(a netip.Addr) bool {
	for _, in := range n.insts {
		if slices.Contains(in.addrs, a) {
			return true
		}
	}
	return false
}

// recheckSources reads the source address of every instance that takes it
// from its interface and applies what changed. The address dumps happen
// without the lock, one per interface and family.
func (n *Router) recheckSources() {
	defer safe.Recover(n.log, "address_watch", n.fail)
	type cand struct {
		in  *instance
		dev string
		fam int
		key string // dev/family: one dump each
	}
	n.mu.Lock()
	if n.stopping {
		n.mu.Unlock()
		return
	}
	all := allVIPs(n.cfg)
	var cands []cand
	for _, in := range n.insts {
		if in.cfg.Unicast != nil && in.cfg.Unicast.Source.IsValid() {
			continue
		}
		dev, fam := srcDev(in.cfg), in.cfg.Family()
		cands = append(cands, cand{in, dev, fam, dev + "/" + strconv.Itoa(fam)})
	}
	n.mu.Unlock()
	found := map[string]netip.Addr{}
	for _, c := range cands {
		if _, ok := found[c.key]; ok {
			continue
		}
		a, err := vrrpnet.PrimaryAddr(c.dev, c.fam, all)
		if err != nil && !errors.Is(err, vrrpnet.ErrNoAddress) {
			n.log.Debug("reading the source address", "device", c.dev, "err", err)
		}
		found[c.key] = a // invalid on error
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopping {
		return
	}
	now := time.Now()
	for _, c := range cands {
		if slices.Contains(n.insts, c.in) {
			n.applySource(c.in, found[c.key], now)
		}
	}
	n.rearm()
}

// applySource gives the instance the source address a (invalid: none). A
// running instance whose address changes goes through FAULT: the tie-break
// compares the address, so it must not change under a running election.
// Called with n.mu held.
func (n *Router) applySource(in *instance, a netip.Addr, now time.Time) {
	switch {
	case !a.IsValid() && in.noSrc, a.IsValid() && a == in.src && !in.noSrc:
		return
	case !a.IsValid():
		n.log.Warn("no address to send adverts from; the instance waits in FAULT", "vrrp_instance", in.cfg.Name,
			"device", srcDev(in.cfg), "previous_source", in.src)
		in.noSrc = true
		n.applyFault(in, now)
		if err := in.core.SetPrimary(netip.Addr{}); err != nil {
			n.log.Error("clearing the source address", "vrrp_instance", in.cfg.Name, "err", err)
		}
		in.src = netip.Addr{}
		return
	}
	if !in.noSrc {
		in.noSrc = true
		n.applyFault(in, now)
	}
	if err := in.core.SetPrimary(a); err != nil {
		n.log.Error("setting the source address", "vrrp_instance", in.cfg.Name, "source", a, "err", err)
		return
	}
	n.log.Info("source address ready", "vrrp_instance", in.cfg.Name, "device", srcDev(in.cfg), "source", a)
	in.src, in.noSrc = a, false
	n.applyFault(in, now)
}
