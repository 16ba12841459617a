package balancer

import (
	"context"
	"maps"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"vigil/lb"
)

// ha_suspend (keepalived): the checks of a virtual server that asks for it
// run only while one of its addresses is on this host, so the directors
// without the VIP do not probe the real servers. The host's addresses are
// followed through netlink, as keepalived does.

// localAddr is an address on one interface: the same address on two
// interfaces counts twice, so removing one leaves it local.
type localAddr struct {
	addr  netip.Addr
	index int
}

// suspendedVSs are the virtual servers with ha_suspend none of whose
// addresses is in local.
func suspendedVSs(haSuspend map[string][]netip.Addr, local map[localAddr]bool) map[string]bool {
	have := make(map[netip.Addr]bool, len(local))
	for la := range local {
		have[la.addr] = true
	}
	out := map[string]bool{}
	for name, addrs := range haSuspend {
		up := false
		for _, a := range addrs {
			up = up || have[a]
		}
		if !up {
			out[name] = true
		}
	}
	return out
}

// haSuspendAddrs are the addresses of the virtual servers with ha_suspend.
func haSuspendAddrs(specs []lb.VirtualServer, on map[string]bool) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for _, vs := range specs {
		if !on[vs.Name] {
			continue
		}
		for _, k := range vs.Keys() {
			out[vs.Name] = append(out[vs.Name], k.Addr.Unmap())
		}
	}
	return out
}

// applySuspended gives the scheduler the virtual servers to suspend now,
// logging each change; b.mu is held.
func (b *Balancer) applySuspended() {
	next := suspendedVSs(b.haSuspend, b.local)
	if maps.Equal(next, b.suspended) {
		return
	}
	for name := range next {
		if !b.suspended[name] {
			b.log.Info("suspending health checks: none of the virtual server's addresses is on this host (ha_suspend)", "virtual_server", name)
		}
	}
	for name := range b.suspended {
		if !next[name] {
			if _, still := b.haSuspend[name]; still {
				b.log.Info("resuming health checks: the virtual server's address is on this host (ha_suspend)", "virtual_server", name)
			}
		}
	}
	b.suspended = next
	b.checks.SetSuspended(next)
}

// watchAddrs follows the host's addresses until ctx ends. A subscription
// that fails or ends is made again a second later, listing the addresses
// afresh (events may have been missed meanwhile).
func (b *Balancer) watchAddrs(ctx context.Context) {
	for {
		b.followAddrs(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// followAddrs is one netlink address subscription, until it ends or ctx
// does.
func (b *Balancer) followAddrs(ctx context.Context) {
	updates := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	end := sync.OnceFunc(func() { close(done) }) // closes the subscription's socket
	defer end()
	err := netlink.AddrSubscribeWithOptions(updates, done, netlink.AddrSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case <-done:
				return // closing the socket at the end fails its read: expected
			default:
			}
			b.log.Warn("following the host's addresses (ha_suspend)", "err", err)
		},
	})
	if err != nil {
		b.log.Error("cannot follow the host's addresses; ha_suspend virtual servers keep their state", "err", err)
		return
	}
	b.mu.Lock()
	clear(b.local) // the subscription lists them all again
	b.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			// The receiver ends once the socket is closed; wait for it,
			// so nothing of it outlives the balancer.
			end()
			for range updates {
			}
			return
		case u, ok := <-updates:
			if !ok {
				b.log.Warn("the host's address events ended; following them again (ha_suspend)")
				return
			}
			a, ok := netip.AddrFromSlice(u.LinkAddress.IP)
			if !ok {
				continue
			}
			la := localAddr{a.Unmap(), u.LinkIndex}
			b.mu.Lock()
			if u.NewAddr {
				b.local[la] = true
			} else {
				delete(b.local, la)
			}
			b.applySuspended()
			b.mu.Unlock()
		}
	}
}
