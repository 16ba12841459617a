package vrrpnet

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoAddress is wrapped by PrimaryAddr's error when the interface exists
// but has no usable address of the family (yet: an IPv6 link-local address
// is tentative for the first second or so after the link comes up).
var ErrNoAddress = errors.New("no usable address")

// PrimaryAddr returns the address VRRP adverts on ifname are sent from: the
// interface's primary IPv4 address (RFC 5798 §5.1.1.1; the first
// non-secondary one) or its IPv6 link-local address (§5.1.2.1). Addresses in
// exclude (our VIPs) are never chosen.
func PrimaryAddr(ifname string, family int, exclude []netip.Addr) (netip.Addr, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("interface %q: %w", ifname, err)
	}
	fam := netlink.FAMILY_V4
	if family == 6 {
		fam = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(link, fam)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("listing addresses of %q: %w", ifname, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if slices.Contains(exclude, ip) {
			continue
		}
		if family == 4 && a.Flags&unix.IFA_F_SECONDARY == 0 {
			return ip, nil
		}
		if family == 6 && ip.IsLinkLocalUnicast() && a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 {
			return ip, nil
		}
	}
	if family == 6 {
		return netip.Addr{}, fmt.Errorf("interface %q has no usable IPv6 link-local address to send VRRPv3 adverts from (RFC 5798 §5.1.2.1): %w", ifname, ErrNoAddress)
	}
	return netip.Addr{}, fmt.Errorf("interface %q has no IPv4 address to send VRRP adverts from; add one or configure unicast.source: %w", ifname, ErrNoAddress)
}

// HasAddr reports whether a is configured on ifname.
func HasAddr(ifname string, a netip.Addr) (bool, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return false, fmt.Errorf("interface %q: %w", ifname, err)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return false, fmt.Errorf("listing addresses of %q: %w", ifname, err)
	}
	for _, x := range addrs {
		if ip, ok := netip.AddrFromSlice(x.IP); ok && ip.Unmap() == a {
			return true, nil
		}
	}
	return false, nil
}
