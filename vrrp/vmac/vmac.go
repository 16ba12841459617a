// Package vmac manages the per-instance virtual MAC interface of a VRRP
// instance (keepalived's use_vmac): a macvlan on the instance's interface
// carrying the RFC 5798 §7.3 virtual router MAC, 00-00-5E-00-01-{VRID} for
// IPv4 and 00-00-5E-00-02-{VRID} for IPv6, so that the hosts of the segment
// never change their ARP/neighbour caches on failover: the MAC moves with the
// VIPs.
//
// # How the daemon uses it
//
// Ensure creates (or adopts) the macvlan and returns its index; Remove
// deletes it when the instance goes away. With a vmac:
//
//   - The instance's VRRP socket is bound to the vmac, for sending and
//     receiving, and joins the group there: vrrpnet.Listen(name, family,
//     true). Sending from the vmac gives adverts the virtual MAC as source,
//     as RFC 5798 §7.2 requires. Receiving there is not a choice: the other
//     routers send from their vmacs with the same virtual MAC, and the
//     kernel delivers a multicast frame whose source is the MAC of one of our
//     own private-mode macvlans to that macvlan only, never to the parent
//     (TestAdvertsArriveOnTheVmac). A socket on the parent would hear no
//     advert of the instance's VRID from a vmac-using peer.
//   - IPv4 adverts carry the parent's primary address as source, set
//     explicitly (vrrpnet.PrimaryAddr(parent, 4, vips)): the vmac holds only
//     VIPs, or nothing in backup. IPv6 adverts come from the vmac's own
//     link-local address (vrrpnet.PrimaryAddr(name, 6, vips)), which is
//     random (see below), so each router's is unique.
//   - Joining 224.0.0.18 on the vmac makes the kernel send IGMP reports from
//     it, with the virtual MAC as source, also on the backup (keepalived
//     #882); DisableLinkLocalIGMPReports stops that (keepalived's
//     disable_local_igmp). Joining ff02::12 sends MLD reports the same way;
//     only a firewall rule stops those (keepalived uses nftables).
//   - VIPs go on the vmac (vip.VIP{Dev: name}), as /32 and /128. A VIP with
//     the parent's subnet prefix adds a second connected route for that
//     subnet through the vmac, and the host's own traffic may then leave
//     through the vmac with the virtual MAC (keepalived #2512/#2282).
//   - GARPs and NAs are sent on the vmac (announce.New(name, ...)): the
//     sender hardware address is the interface MAC, i.e. the virtual MAC.
//   - Replies from a VIP leave through the parent with the parent's MAC
//     (routing picks the parent's connected route); that is expected and is
//     what keepalived does. arp_announce=2 on the parent (below) keeps those
//     replies from teaching hosts the VIP with the parent's MAC.
//
// Nothing else must make a backup transmit on the vmac: every frame sent
// from it carries the virtual MAC as source and moves the switch's MAC table
// entry to the backup's port.
//
// # Interface settings
//
// Ensure sets, through /proc/sys/net in the Manager's namespace:
//
// On the vmac (every family):
//   - arp_ignore=1: answer ARP only for addresses configured on the vmac.
//     Broadcast ARP requests reach the parent and every macvlan; with the
//     default 0 the vmac would answer for the parent's own addresses with the
//     virtual MAC (keepalived #2348), and after a failover the host's own
//     address would point at the other router.
//   - arp_announce=2: ARP requests sent from the vmac use an address of the
//     vmac (a VIP) as sender, never the parent's address from the packet, so
//     the parent's address is never advertised with the virtual MAC.
//     keepalived leaves this at 0.
//   - accept_local=1 (keepalived): a packet arriving on the vmac whose
//     source is one of this host's addresses is otherwise dropped as a
//     martian, so another router in the same namespace (tests, two instances
//     sharing a host) could not be heard on it.
//   - rp_filter=0 (keepalived): frames for the virtual MAC arrive on the
//     vmac, but the route back to the sender goes through the parent, so
//     strict reverse-path filtering drops every packet from the hosts to the
//     VIPs (and adverts received on the vmac). The kernel applies
//     max(all, interface): when net.ipv4.conf.all.rp_filter is 1 (strict),
//     Ensure does what keepalived does: it raises default and every other
//     interface (except other VRRP vmacs) to 1, then sets all to 0, so the
//     effective filtering of every other interface is unchanged; the change
//     is logged, and given back when the last vmac goes (below). Loose
//     mode (2, systemd's default) lets the vmac work and is left alone.
//   - promote_secondaries=1 (keepalived): removing one VIP must not take the
//     other VIPs of the same subnet with it (package vip sets it too).
//
// On the parent, for IPv4 and custom MACs (IPv6 neighbour discovery only
// answers for addresses on the receiving interface, so an IPv6 vmac needs
// nothing there). A setting is only ever raised, never lowered, and is given
// back when the parent's last vmac goes (below):
//   - arp_ignore=1 (keepalived): the VIPs are local addresses of the host, so
//     with the default 0 the parent answers ARP for them with its own MAC,
//     and the host that asked keeps whichever answer came first.
//   - arp_announce=2 (not keepalived's): a reply from a VIP leaves through
//     the parent, whose ARP request for the destination would otherwise carry
//     the VIP as sender with the parent's MAC, and the destination would
//     replace the virtual MAC in its cache with the parent's.
//   - keepalived also sets arp_filter=1 on the parent. Ensure does not: with
//     a VIP whose prefix duplicates the parent's subnet, the route back to an
//     asker may point at the vmac and arp_filter then stops the parent from
//     answering for its own address (keepalived #2512).
//
// # Giving the settings back
//
// The vmac's own settings go with it. The others (the parent's, the
// rp_filter move) are journaled with the value they had, and Remove gives
// them back, newest first, once no vmac left in the namespace needs them:
// the parent's when no IPv4 vmac remains on that parent, the rp_filter move
// when none remains at all, counting the VRRP vmacs of another vigil in the
// namespace too. As keepalived does, a setting is only given back while it
// still has the value written: one changed since is someone's later choice
// and stays. A start that fails after making its vmacs, or a clean stop,
// thus leaves the host's settings as it found them (issue 11 item 6). The
// journal lives in the Manager: after a crash, the settings stay changed.
//
// IPv6 on the vmac:
//   - addrgenmode random (set before the vmac first comes up): an EUI-64
//     link-local address would be derived from the shared virtual MAC and be
//     the same on every router, so IPv6 adverts would carry the same source
//     and the tie-break could never resolve (FRR's warning). An adopted vmac
//     still holding that EUI-64 address gets it replaced by a random one.
//   - IPv4 vmac (00:00:5E:00:01:xx): disable_ipv6=1, as keepalived does: the
//     backup's vmac would otherwise send DAD, router solicitations and MLD
//     reports with the virtual MAC as source.
//   - IPv6 vmac (00:00:5E:00:02:xx) and custom MACs: accept_dad=0 (no DAD
//     probe from the virtual MAC, and the link-local is usable at once,
//     instead of tentative, for the first advert), accept_ra=0 (no router
//     solicitations, no SLAAC addresses or default route on the vmac); an
//     IPv6 vmac also gets disable_ipv6=0. MLD reports for the link-local's
//     solicited-node group cannot be switched off by a sysctl.
//
// Where systemd-udevd applies sysctl.d to new interfaces (the root namespace
// of a systemd host), it does so asynchronously and may overwrite a value
// Ensure has just written on the vmac (systemd ships net.ipv4.conf.*.rp_filter
// = 2, which is harmless); calling Ensure again repairs it.
//
// # Network namespaces
//
// The rtnetlink socket is bound to the Manager's namespace when it is made.
// /proc/sys/net is not: the kernel resolves it against the network namespace
// of the thread that opens the file. A Manager therefore keeps a handle on
// its namespace, and every sysctl is read and written from a goroutine locked
// to an OS thread that has entered that namespace (netns.Set), which returns
// to its own namespace afterwards (or is discarded, if it cannot).
package vmac

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"vigil/internal/nsdo"
)

// MAC returns the virtual router MAC of vrid: 00:00:5e:00:01:VRID for family
// 4 and 00:00:5e:00:02:VRID for family 6 (RFC 5798 §7.3). It returns nil for
// any other family. VRID 0 is not valid VRRP; checking that is the
// configuration's job.
func MAC(vrid uint8, family int) net.HardwareAddr {
	switch family {
	case 4:
		return net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, vrid}
	case 6:
		return net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x02, vrid}
	}
	return nil
}

// DefaultName returns keepalived's default name for the vmac of vrid:
// "vrrp.VRID" for family 4 and "vrrp6.VRID" for family 6 (at most 9 bytes,
// within the kernel's 15). It returns "" for any other family.
func DefaultName(vrid uint8, family int) string {
	switch family {
	case 4:
		return "vrrp." + strconv.Itoa(int(vrid))
	case 6:
		return "vrrp6." + strconv.Itoa(int(vrid))
	}
	return ""
}

// macFamily returns 4 or 6 when mac is a VRRP virtual router MAC of that
// family, 0 for any other MAC.
func macFamily(mac net.HardwareAddr) int {
	if len(mac) != 6 || !bytes.Equal(mac[:4], []byte{0x00, 0x00, 0x5e, 0x00}) {
		return 0
	}
	switch mac[4] {
	case 0x01:
		return 4
	case 0x02:
		return 6
	}
	return 0
}

// maxNameLen is IFNAMSIZ-1.
const maxNameLen = 15

// validName reports why name cannot be an interface name (the kernel's
// dev_valid_name), or nil.
func validName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("vmac: no %s name given", what)
	case len(name) > maxNameLen:
		return fmt.Errorf("vmac: %s name %q longer than %d bytes", what, name, maxNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("vmac: invalid %s name %q", what, name)
	case strings.ContainsAny(name, "/: \t\n\v\f\r"):
		return fmt.Errorf("vmac: %s name %q contains '/', ':' or white space", what, name)
	}
	return nil
}

func validate(name, parent string, mac net.HardwareAddr) error {
	if err := validName("interface", name); err != nil {
		return err
	}
	if err := validName("parent interface", parent); err != nil {
		return err
	}
	if name == parent {
		return fmt.Errorf("vmac: interface %s cannot be its own parent", name)
	}
	if len(mac) != 6 || mac[0]&1 != 0 || bytes.Equal(mac, make(net.HardwareAddr, 6)) {
		return fmt.Errorf("vmac: %s: MAC %q is not a 6-byte unicast Ethernet address", name, mac)
	}
	return nil
}

// netlinkTimeout bounds one netlink round trip, so a wedged kernel call
// cannot stall the daemon for ever.
const netlinkTimeout = 5 * time.Second

// Manager creates, adopts and removes vmac interfaces in one network
// namespace. It is safe for concurrent use; Ensure and Remove are serialised.
type Manager struct {
	mu  sync.Mutex
	h   *netlink.Handle
	ns  netns.NsHandle // owned: where sysctls are written (see the package doc)
	log *slog.Logger
	// journal lists the settings outside the vmacs that Ensure changed
	// and no Remove gave back yet, oldest first (restore.go).
	journal []change
	// made are the vmacs Ensure made or adopted and Remove did not
	// delete: with a custom MAC, nothing else tells them from another
	// macvlan.
	made map[string]bool
}

// New returns a Manager for the network namespace of the calling thread.
func New() (*Manager, error) {
	return NewAt(netns.None())
}

// NewAt returns a Manager for the network namespace ns (tests, and anything
// that manages another namespace); netns.None() means the calling thread's
// namespace as it is when NewAt runs. The Manager keeps its own duplicate of ns, so the caller may
// close its handle. Both the rtnetlink socket and the sysctl writes (made
// from a thread that enters ns, see the package doc) reach ns.
func NewAt(ns netns.NsHandle) (*Manager, error) {
	var own netns.NsHandle
	if ns.IsOpen() {
		fd, err := unix.FcntlInt(uintptr(ns), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("vmac: duplicate namespace handle %s: %w", ns, err)
		}
		own = netns.NsHandle(fd)
	} else {
		var err error
		if own, err = netns.Get(); err != nil {
			return nil, fmt.Errorf("vmac: open current network namespace: %w", err)
		}
	}
	// The socket belongs to the namespace of the thread that creates it.
	// nsdo.Do enters own only when the thread is elsewhere: netlink's
	// NewHandleAt would call setns even for the current namespace, which
	// needs CAP_SYS_ADMIN, and the daemon runs without it.
	var h *netlink.Handle
	err := nsdo.Do(own, func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		err = fmt.Errorf("vmac: open rtnetlink socket in namespace %s: %w", own, err)
		own.Close()
		return nil, err
	}
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		h.Close()
		own.Close()
		return nil, fmt.Errorf("vmac: set rtnetlink timeout: %w", err)
	}
	return &Manager{h: h, ns: own, log: slog.New(slog.DiscardHandler), made: map[string]bool{}}, nil
}

// SetLogger sets where the Manager reports the changes it makes outside the
// vmac itself (the parent's ARP settings, the namespace-wide rp_filter).
// nil discards them, which is the default.
func (m *Manager) SetLogger(l *slog.Logger) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	m.mu.Lock()
	m.log = l
	m.mu.Unlock()
}

// Close releases the netlink socket and the namespace handle.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h != nil {
		m.h.Close()
		m.h = nil
	}
	if m.ns.IsOpen() {
		m.ns.Close()
		m.ns = netns.None()
	}
}

// errClosed is returned after Close.
var errClosed = errors.New("vmac: manager closed")

// Ensure makes name a macvlan on parent with hardware address mac, mode
// private, configured as the package doc describes and up, and returns its
// interface index. Use MAC and DefaultName for the usual mac and name.
//
// It is idempotent and is how a restart reconciles: an interface called name
// that is already a macvlan on parent in private mode with mac is adopted
// (never duplicated) and brought back to the wanted settings; one that
// differs in type, parent, mode or MAC is left untouched and reported in an
// error naming each difference. The parent must exist and must not itself
// be a macvlan (the kernel would put the new one on the parent's own parent).
//
// Mode private, keepalived's choice: the vmac exchanges no frames with the
// other macvlans of the same parent. A broadcast or multicast frame from the
// wire whose source MAC is the vmac's own (that is, another router's advert
// or GARP, sent from its vmac with the same virtual MAC) is taken for one of
// our own frames reflected back and is delivered to the vmac alone: the
// parent never sees it, so the instance must receive on the vmac. Bridge mode
// would instead switch frames between the macvlans of one parent inside the
// kernel (unicast between them never reaches the wire, and a broadcast or
// multicast one of them sends is also delivered to the others), and a
// multicast frame from the wire carrying the vmac's own MAC as source would
// go to the parent and not to the vmac: adverts would then be heard on the
// parent only. That is FRR's model (it requires bridge mode, receives on the
// parent and keeps backup vmacs in protodown); vigil, like keepalived,
// receives on the vmac and removes the VIPs in backup. In no mode does a
// macvlan exchange frames with its own parent.
//
// The vmac is created down; addrgenmode and the sysctls are set before it
// first comes up, so no EUI-64 link-local address or IPv6 traffic ever comes
// from it.
func (m *Manager) Ensure(name, parent string, mac net.HardwareAddr) (int, error) {
	if err := validate(name, parent, mac); err != nil {
		return 0, err
	}
	mac = bytes.Clone(mac)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h == nil {
		return 0, errClosed
	}

	p, err := m.h.LinkByName(parent)
	if err != nil {
		return 0, fmt.Errorf("vmac: %s: parent interface %s: %w", name, parent, err)
	}
	if t := p.Type(); t == "macvlan" || t == "macvtap" {
		return 0, fmt.Errorf("vmac: %s: parent %s is itself a %s; give its lower interface", name, parent, t)
	}
	link, created, err := m.lookupOrCreate(name, p, mac)
	if err != nil {
		return 0, err
	}
	idx, err := m.configure(link, parent, mac)
	switch {
	case err == nil:
		m.made[name] = true
	case created:
		// Leave nothing half made behind, the parent's settings included.
		if derr := m.h.LinkDel(link); derr != nil && !errors.Is(derr, unix.ENODEV) {
			err = errors.Join(err, fmt.Errorf("vmac: remove %s again: %w", name, derr))
		} else if rerr := m.restoreUnneeded(); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return idx, err
}

// configure sets up the macvlan link (see Ensure and the package doc).
func (m *Manager) configure(link netlink.Link, parent string, mac net.HardwareAddr) (int, error) {
	name := link.Attrs().Name
	fam := macFamily(mac)

	// Address generation mode first: enabling IPv6 on the interface (a
	// sysctl below) or bringing it up generates the link-local address with
	// whatever mode is set then. EAFNOSUPPORT: no IPv6 for this interface
	// (IPv6 off in the kernel, or an MTU below 1280).
	ipv6 := true
	if err := m.h.LinkSetIP6AddrGenMode(link, nl.IN6_ADDR_GEN_MODE_RANDOM); err != nil {
		if !errors.Is(err, unix.EAFNOSUPPORT) {
			return 0, fmt.Errorf("vmac: %s: set addrgenmode random: %w", name, err)
		}
		if fam == 6 {
			return 0, fmt.Errorf("vmac: %s: IPv6 is not available on this interface: %w", name, err)
		}
		ipv6 = false
	}

	skip, err := m.vrrpMacvlans()
	if err != nil {
		return 0, fmt.Errorf("vmac: %s: %w", name, err)
	}
	if err := m.applySysctls(name, parent, fam, ipv6, skip); err != nil {
		return 0, fmt.Errorf("vmac: %s: %w", name, err)
	}

	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := m.h.LinkSetUp(link); err != nil {
			return 0, fmt.Errorf("vmac: %s: bring up: %w", name, err)
		}
	}
	if ipv6 && fam != 4 {
		if err := m.replaceEUI64LinkLocal(link, mac); err != nil {
			return 0, fmt.Errorf("vmac: %s: %w", name, err)
		}
	}
	return link.Attrs().Index, nil
}

// lookupOrCreate returns the macvlan called name, creating it (down) when
// there is none (created is then true), or an error when an interface of
// that name differs from what is wanted.
func (m *Manager) lookupOrCreate(name string, parent netlink.Link, mac net.HardwareAddr) (link netlink.Link, created bool, err error) {
	link, err = m.h.LinkByName(name)
	if err == nil {
		return link, false, m.check(link, parent, mac)
	}
	if !errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil, false, fmt.Errorf("vmac: look up interface %s: %w", name, err)
	}
	// The kernel lets a second macvlan with the same MAC be created on a
	// parent and only refuses to bring it up (EADDRINUSE).
	if other, err := m.macvlanWithMAC(parent, mac); err != nil {
		return nil, false, fmt.Errorf("vmac: create %s: %w", name, err)
	} else if other != "" {
		return nil, false, fmt.Errorf("vmac: create %s: MAC %s is already used by macvlan %s on %s", name, mac, other, parent.Attrs().Name)
	}
	la := netlink.NewLinkAttrs()
	la.Name = name
	la.ParentIndex = parent.Attrs().Index
	la.HardwareAddr = mac
	err = m.h.LinkAdd(&netlink.Macvlan{LinkAttrs: la, Mode: netlink.MACVLAN_MODE_PRIVATE})
	switch {
	case errors.Is(err, unix.EEXIST):
		// Created meanwhile by someone else: adopt it if it is right.
	case err != nil:
		return nil, false, fmt.Errorf("vmac: create macvlan %s on %s with MAC %s: %w", name, parent.Attrs().Name, mac, err)
	default:
		created = true
	}
	link, err = m.h.LinkByName(name)
	if err != nil {
		return nil, false, fmt.Errorf("vmac: look up interface %s after creating it: %w", name, err)
	}
	return link, created, m.check(link, parent, mac)
}

// macvlanWithMAC names a macvlan on parent that has mac, or returns "".
func (m *Manager) macvlanWithMAC(parent netlink.Link, mac net.HardwareAddr) (string, error) {
	links, err := m.h.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return "", fmt.Errorf("list interfaces: %w", err)
	}
	for _, l := range links {
		a := l.Attrs()
		if _, ok := l.(*netlink.Macvlan); ok && a.ParentIndex == parent.Attrs().Index && a.NetNsID < 0 && bytes.Equal(a.HardwareAddr, mac) {
			return a.Name, nil
		}
	}
	return "", nil
}

// check reports how an existing interface differs from the vmac wanted.
func (m *Manager) check(link netlink.Link, parent netlink.Link, mac net.HardwareAddr) error {
	name := link.Attrs().Name
	mv, ok := link.(*netlink.Macvlan)
	if !ok {
		return fmt.Errorf("vmac: interface %s exists but is not the vmac wanted: type %s (want macvlan); remove it or choose another name", name, link.Type())
	}
	var diffs []string
	switch a := mv.Attrs(); {
	case a.NetNsID >= 0:
		diffs = append(diffs, fmt.Sprintf("parent in another namespace (want %s)", parent.Attrs().Name))
	case a.ParentIndex != parent.Attrs().Index:
		diffs = append(diffs, fmt.Sprintf("parent %s (want %s)", m.linkName(a.ParentIndex), parent.Attrs().Name))
	}
	if mv.Mode != netlink.MACVLAN_MODE_PRIVATE {
		diffs = append(diffs, fmt.Sprintf("mode %s (want private)", modeName(mv.Mode)))
	}
	if !bytes.Equal(mv.HardwareAddr, mac) {
		diffs = append(diffs, fmt.Sprintf("MAC %s (want %s)", mv.HardwareAddr, mac))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("vmac: interface %s exists but is not the vmac wanted: %s; remove it or choose another name", name, strings.Join(diffs, ", "))
	}
	return nil
}

// linkName names the interface with index i for a message.
func (m *Manager) linkName(i int) string {
	if l, err := m.h.LinkByIndex(i); err == nil {
		return l.Attrs().Name
	}
	return "index " + strconv.Itoa(i)
}

func modeName(mode netlink.MacvlanMode) string {
	switch mode {
	case netlink.MACVLAN_MODE_PRIVATE:
		return "private"
	case netlink.MACVLAN_MODE_VEPA:
		return "vepa"
	case netlink.MACVLAN_MODE_BRIDGE:
		return "bridge"
	case netlink.MACVLAN_MODE_PASSTHRU:
		return "passthru"
	case netlink.MACVLAN_MODE_SOURCE:
		return "source"
	}
	return "unknown (" + strconv.Itoa(int(mode)) + ")"
}

// vrrpMacvlans lists the macvlans carrying a VRRP virtual MAC: the rp_filter
// adjustment must not raise them back to strict.
func (m *Manager) vrrpMacvlans() (map[string]bool, error) {
	links, err := m.h.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	out := map[string]bool{}
	for _, l := range links {
		if mv, ok := l.(*netlink.Macvlan); ok && macFamily(mv.HardwareAddr) != 0 {
			out[mv.Attrs().Name] = true
		}
	}
	return out, nil
}

// eui64LinkLocal is the link-local address the kernel would derive from mac
// (addrgenmode eui64).
func eui64LinkLocal(mac net.HardwareAddr) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8] = mac[0] ^ 0x02
	a[9], a[10] = mac[1], mac[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a)
}

// replaceEUI64LinkLocal replaces a link-local address derived from the
// virtual MAC (an adopted vmac made without addrgenmode random) by a random
// one. The new address goes on first, so the interface is never without one.
func (m *Manager) replaceEUI64LinkLocal(link netlink.Link, mac net.HardwareAddr) error {
	addrs, err := m.h.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		return fmt.Errorf("list IPv6 addresses: %w", err)
	}
	bad := eui64LinkLocal(mac)
	var found []netlink.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip == bad {
			found = append(found, a)
		}
	}
	if len(found) == 0 {
		return nil
	}
	var iid [8]byte
	if _, err := rand.Read(iid[:]); err != nil {
		return fmt.Errorf("random link-local address: %w", err)
	}
	ll := append([]byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0}, iid[:]...)
	add := &netlink.Addr{
		IPNet: &net.IPNet{IP: ll, Mask: net.CIDRMask(64, 128)},
		Scope: unix.RT_SCOPE_LINK,
		Flags: unix.IFA_F_NODAD,
	}
	if err := m.h.AddrAdd(link, add); err != nil {
		return fmt.Errorf("add random link-local %s: %w", net.IP(ll), err)
	}
	for _, a := range found {
		if err := m.h.AddrDel(link, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove EUI-64 link-local %s: %w", a.IP, err)
		}
	}
	return nil
}

// Remove deletes the vmac called name. It is idempotent: no interface of that
// name is success. An interface of that name that is not a macvlan is never
// deleted (an error says so), so a wrong name cannot take a physical
// interface down. The VIPs on the vmac go with it; then the settings Ensure
// changed outside the vmacs are given back where no vmac left needs them
// (see the package doc). An error wrapping ErrNotRestored says the vmac is
// gone but a setting could not be given back.
func (m *Manager) Remove(name string) error {
	if err := validName("interface", name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h == nil {
		return errClosed
	}
	link, err := m.h.LinkByName(name)
	switch {
	case errors.As(err, &netlink.LinkNotFoundError{}):
	case err != nil:
		return fmt.Errorf("vmac: remove %s: look up: %w", name, err)
	default:
		if _, ok := link.(*netlink.Macvlan); !ok {
			return fmt.Errorf("vmac: remove %s: it is a %s, not a macvlan; not deleting it", name, link.Type())
		}
		if err := m.h.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("vmac: remove %s: %w", name, err)
		}
	}
	delete(m.made, name)
	if err := m.restoreUnneeded(); err != nil {
		return fmt.Errorf("vmac: removed %s, but: %w", name, err)
	}
	return nil
}
