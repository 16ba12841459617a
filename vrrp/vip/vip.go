// Package vip puts VRRP virtual addresses on interfaces and takes them off
// again, through rtnetlink (vishvananda/netlink).
//
// The VRRP driver calls Add on becoming master and Remove on leaving master
// or stopping; at start-up the daemon calls Present for its configured VIPs
// and removes what a crashed run left behind, so a restart never duplicates
// an address.
//
// Identity of an address. Add and Remove use the kernel's own identity: for
// IPv4 that is address and prefix length (the kernel lets 192.0.2.1/24 and
// 192.0.2.1/32 coexist on one interface, exactly as `ip addr add` does), so
// they never touch an IPv4 entry with another prefix length, which may
// belong to the administrator. For IPv6 it is the address alone: Add of an
// address present with another prefix length succeeds, updating flags and
// lifetimes but keeping the kernel's prefix length, and Remove deletes it
// whatever its prefix length. Present is looser on purpose: it matches on
// the address alone for both families and reports what the kernel holds, so
// a leftover from an older configuration with another prefix length is still
// found, and Remove(Present(...)) deletes exactly the entries found.
//
// Secondary addresses. When the primary IPv4 address of a subnet is deleted,
// the kernel deletes every secondary address of that subnet with it unless
// net.ipv4.conf.<dev>.promote_secondaries is set; removing one instance's
// VIP would then silently take the VIPs of other instances, or the
// administrator's address, off the interface. Remove therefore turns
// promote_secondaries on for the device before deleting an IPv4 VIP, as
// keepalived does. It is not turned off again: 1 is also systemd's default.
package vip

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// VIP is one virtual address on one interface.
type VIP struct {
	Prefix netip.Prefix // address and prefix length, e.g. 192.0.2.100/24; /32 or /128 when none is configured
	Dev    string       // interface the address goes on
	Label  string       // optional IPv4 label, e.g. "eth0:web"; empty means none
}

// String formats v the way `ip addr` reads it.
func (v VIP) String() string {
	s := v.Prefix.String() + " dev " + v.Dev
	if v.Label != "" {
		s += " label " + v.Label
	}
	return s
}

// maxLabelLen is IFNAMSIZ-1: the kernel rejects longer IFA_LABELs.
const maxLabelLen = 15

// validate rejects what the kernel would reject with a less helpful errno.
func (v VIP) validate() error {
	switch {
	case !v.Prefix.IsValid():
		return fmt.Errorf("vip: invalid prefix %q", v.Prefix)
	case v.Prefix.Addr().Is4In6():
		return fmt.Errorf("vip: %s: IPv4-mapped IPv6 address; use the IPv4 form", v.Prefix)
	case v.Prefix.Addr().IsUnspecified() || v.Prefix.Addr().IsMulticast():
		return fmt.Errorf("vip: %s: not a unicast address", v.Prefix)
	case v.Dev == "":
		return fmt.Errorf("vip: %s: no interface given", v.Prefix)
	case v.Label != "" && v.Prefix.Addr().Is6():
		return fmt.Errorf("vip: %s on %s: label %q: labels exist for IPv4 only", v.Prefix, v.Dev, v.Label)
	case len(v.Label) > maxLabelLen:
		return fmt.Errorf("vip: %s on %s: label %q longer than %d bytes", v.Prefix, v.Dev, v.Label, maxLabelLen)
	}
	return nil
}

// netlinkTimeout bounds one netlink round trip, so a wedged kernel call
// cannot stall the VRRP driver for ever.
const netlinkTimeout = 5 * time.Second

// lifetimeForever is INFINITY_LIFE_TIME in IFA_CACHEINFO. netlink.Addr
// carries lifetimes as int; converting at run time keeps 32-bit builds
// compiling (where the value cannot be represented, so the kernel default,
// forever for both lifetimes, applies).
var lifetimeForever = func() int { v := uint32(math.MaxUint32); return int(v) }()

// ipv4DevconfPromoteSecondaries is IPV4_DEVCONF_PROMOTE_SECONDARIES from
// linux/ip.h, which x/sys/unix does not define.
const ipv4DevconfPromoteSecondaries = 20

// Manager adds, removes and lists VIPs through rtnetlink. It is safe for
// concurrent use (each netlink socket serialises its requests).
type Manager struct {
	h *netlink.Handle
	// conf carries the one request the netlink library has no call for
	// (setting promote_secondaries); it is bound to the same namespace as h.
	conf *nl.SocketHandle
}

// New returns a Manager for the network namespace of the calling thread.
func New() (*Manager, error) {
	return NewAt(netns.None())
}

// NewAt returns a Manager for the network namespace ns (used by tests and
// anything that manages another namespace); netns.None() means the calling
// thread's namespace.
func NewAt(ns netns.NsHandle) (*Manager, error) {
	where := "current namespace"
	if ns.IsOpen() {
		where = "namespace " + ns.String()
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("vip: open rtnetlink socket in %s: %w", where, err)
	}
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("vip: set rtnetlink timeout: %w", err)
	}
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("vip: open rtnetlink socket in %s: %w", where, err)
	}
	tv := unix.NsecToTimeval(netlinkTimeout.Nanoseconds())
	if err := errors.Join(s.SetSendTimeout(&tv), s.SetReceiveTimeout(&tv)); err != nil {
		s.Close()
		h.Close()
		return nil, fmt.Errorf("vip: set rtnetlink timeout: %w", err)
	}
	return &Manager{h: h, conf: &nl.SocketHandle{Socket: s}}, nil
}

// Close releases the netlink sockets.
func (m *Manager) Close() {
	m.h.Close()
	m.conf.Close()
}

// Add puts every VIP on its interface. It is idempotent: an address that is
// already there (same address and, for IPv4, same prefix length) is success
// and is never duplicated. IPv6 VIPs get IFA_F_NODAD so they are usable at
// once; an IPv6 /128 is also deprecated (preferred lifetime 0, valid for
// ever), as keepalived does, so the kernel never picks it as a source
// address. IPv4 VIPs get the broadcast address `ip addr add ... brd +` would
// and their label when set. Add tries every VIP and returns a joined error
// naming each one that failed.
func (m *Manager) Add(vips []VIP) error {
	links := linkCache{}
	var errs []error
	for _, v := range vips {
		if err := v.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		link, err := links.get(m.h, v.Dev)
		if err != nil {
			errs = append(errs, fmt.Errorf("vip: add %s: %w", v, err))
			continue
		}
		// Replace rather than add: for an address already present it is a
		// no-op success instead of EEXIST, and it repairs flags and
		// lifetimes that something else may have set differently.
		if err := m.h.AddrReplace(link, toNetlink(v)); err != nil {
			errs = append(errs, fmt.Errorf("vip: add %s: %w", v, err))
		}
	}
	return errors.Join(errs...)
}

// Remove takes every VIP off its interface. It is idempotent: an address
// that is not there, or an interface that no longer exists, is success. The
// match is the kernel's (address and prefix length); the label is ignored.
// Remove tries every VIP and returns a joined error naming each failure.
func (m *Manager) Remove(vips []VIP) error {
	links := linkCache{}
	promoted := map[string]bool{}
	var errs []error
	for _, v := range vips {
		if err := v.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		link, err := links.get(m.h, v.Dev)
		if errors.As(err, &netlink.LinkNotFoundError{}) {
			continue // the interface took its addresses with it
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("vip: remove %s: %w", v, err))
			continue
		}
		if v.Prefix.Addr().Is4() && !promoted[v.Dev] {
			promoted[v.Dev] = true
			// On failure still delete: a VIP left on a node that is no
			// longer master is worse than the risk of the cascade.
			if err := m.promoteSecondaries(link); err != nil {
				errs = append(errs, fmt.Errorf("vip: remove %s: %w", v, err))
			}
		}
		if err := m.remove(link, v); err != nil {
			errs = append(errs, fmt.Errorf("vip: remove %s: %w", v, err))
		}
	}
	return errors.Join(errs...)
}

// remove deletes one VIP; absent is success.
func (m *Manager) remove(link netlink.Link, v VIP) error {
	// No label: IPv4 deletion would then also have to match the label, and
	// a VIP is ours whatever label it carries.
	err := m.h.AddrDel(link, &netlink.Addr{IPNet: toIPNet(v.Prefix)})
	switch {
	case err == nil:
		return nil
	case !absent(err):
		return err
	case v.Prefix.Addr().Is4():
		return nil
	}
	// IPv6 keeps one entry per address and Add accepts it whatever its
	// prefix length, but deletion matches the prefix length too: find the
	// kernel's entry and delete that, so Add and Remove agree.
	addrs, err := m.addrList(link, netlink.FAMILY_V6)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		got, ok := fromNetlink(a, v.Dev)
		if !ok || got.Prefix.Addr() != v.Prefix.Addr() {
			continue
		}
		if err := m.h.AddrDel(link, &netlink.Addr{IPNet: toIPNet(got.Prefix)}); err != nil && !absent(err) {
			return err
		}
	}
	return nil
}

// absent reports whether a deletion failed only because the address was
// not there.
func absent(err error) bool {
	return errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ESRCH)
}

// Present reports which of vips are on their interfaces now. It matches on
// the address alone and returns the kernel's entries, with the prefix length
// and label the kernel holds (Label is empty when the kernel's label is just
// the interface name), one per entry and without duplicates. A missing
// interface holds no addresses and is not an error. Passing the result to
// Remove deletes exactly what was found.
func (m *Manager) Present(vips []VIP) ([]VIP, error) {
	// One dump per interface, however many VIPs it carries.
	byDev := map[string][]netlink.Addr{}
	seen := map[VIP]bool{}
	var out []VIP
	var errs []error
	for _, v := range vips {
		if err := v.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		addrs, ok := byDev[v.Dev]
		if !ok {
			var err error
			addrs, err = m.list(v.Dev)
			if err != nil {
				errs = append(errs, fmt.Errorf("vip: list addresses: %w", err))
			}
			byDev[v.Dev] = addrs // a failed device is reported once
		}
		for _, a := range addrs {
			got, ok := fromNetlink(a, v.Dev)
			if !ok || got.Prefix.Addr() != v.Prefix.Addr() || seen[got] {
				continue
			}
			seen[got] = true
			out = append(out, got)
		}
	}
	return out, errors.Join(errs...)
}

// promoteSecondaries sets net.ipv4.conf.<dev>.promote_secondaries to 1
// through RTM_SETLINK (IFLA_AF_SPEC/AF_INET/IFLA_INET_CONF), which reaches
// the Manager's namespace where /proc/sys would reach the caller's.
func (m *Manager) promoteSecondaries(link netlink.Link) error {
	req := &nl.NetlinkRequest{
		NlMsghdr: unix.NlMsghdr{
			Len:   uint32(unix.SizeofNlMsghdr),
			Type:  unix.RTM_SETLINK,
			Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK,
		},
		Sockets: map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: m.conf},
	}
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(link.Attrs().Index)
	req.AddData(msg)
	spec := nl.NewRtAttr(unix.IFLA_AF_SPEC, nil)
	conf := spec.AddRtAttr(unix.AF_INET, nil).AddRtAttr(unix.IFLA_INET_CONF, nil)
	conf.AddRtAttr(ipv4DevconfPromoteSecondaries, nl.Uint32Attr(1))
	req.AddData(spec)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("set promote_secondaries on %s: %w", link.Attrs().Name, err)
	}
	return nil
}

// list returns the addresses on dev; none when dev does not exist.
func (m *Manager) list(dev string) ([]netlink.Addr, error) {
	link, err := m.h.LinkByName(dev)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up interface %s: %w", dev, err)
	}
	return m.addrList(link, netlink.FAMILY_ALL)
}

// addrList dumps link's addresses, retrying a dump that the kernel marks as
// interrupted (addresses changed meanwhile), whose result may be partial.
func (m *Manager) addrList(link netlink.Link, family int) ([]netlink.Addr, error) {
	const attempts = 3
	var err error
	for range attempts {
		var addrs []netlink.Addr
		addrs, err = m.h.AddrList(link, family)
		if err == nil {
			return addrs, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return nil, fmt.Errorf("dump addresses of %s: %w", link.Attrs().Name, err)
}

// linkCache resolves each interface once per call, remembering failures too.
type linkCache map[string]struct {
	link netlink.Link
	err  error
}

func (c linkCache) get(h *netlink.Handle, dev string) (netlink.Link, error) {
	if e, ok := c[dev]; ok {
		return e.link, e.err
	}
	link, err := h.LinkByName(dev)
	if err != nil {
		err = fmt.Errorf("look up interface %s: %w", dev, err)
	}
	c[dev] = struct {
		link netlink.Link
		err  error
	}{link, err}
	return link, err
}

func toIPNet(p netip.Prefix) *net.IPNet {
	a := p.Addr()
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), a.BitLen())}
}

func toNetlink(v VIP) *netlink.Addr {
	a := &netlink.Addr{IPNet: toIPNet(v.Prefix), Label: v.Label}
	if v.Prefix.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
		if v.Prefix.Bits() == 128 {
			a.PreferedLft = 0
			a.ValidLft = lifetimeForever
		}
	}
	return a
}

func fromNetlink(a netlink.Addr, dev string) (VIP, bool) {
	if a.IPNet == nil {
		return VIP{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return VIP{}, false
	}
	ip = ip.Unmap()
	bits, _ := a.Mask.Size()
	v := VIP{Prefix: netip.PrefixFrom(ip, bits), Dev: dev}
	if a.Label != dev {
		v.Label = a.Label
	}
	return v, true
}
