package router

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/vishvananda/netlink"

	"vigil/config"
	"vigil/vrrp"
	"vigil/vrrp/accept"
	"vigil/vrrp/announce"
	"vigil/vrrp/vrrpnet"
)

// pending is what a start or a reload has opened for new instances and not
// yet handed to the running node. Everything that can fail (a missing
// interface, a socket, an address, a virtual MAC) happens while preparing,
// before anything running is stopped; then the preparation is committed
// whole, or aborted whole and the running node is as it was (issue 11
// item 1: a reload that failed half-way used to leave a master stopped
// with its VIPs gone).
type pending struct {
	insts  []*instance               // prepared, not registered
	socks  map[string]*sock          // opened for them, by "device/family"
	links  map[string]*announce.Link // opened for their announcers, by device
	vmacs  []string                  // virtual MAC interfaces this preparation created
	accept *accept.Filter            // opened for the first accept: false instance
}

func newPending() *pending {
	return &pending{socks: map[string]*sock{}, links: map[string]*announce.Link{}}
}

// abort closes what the preparation opened and removes what it created,
// the kernel's state newest first: the nftables table, then the virtual
// MAC interfaces (each taking back the settings it needed outside
// itself).
func (p *pending) abort(n *Router) {
	for _, in := range p.insts {
		closeAnnouncers(in.anns)
	}
	for _, l := range p.links {
		l.Close()
	}
	for _, s := range p.socks {
		s.conn.Close()
	}
	if p.accept != nil {
		if err := p.accept.Close(); err != nil {
			n.log.Error("removing the nftables table", "err", err)
		}
	}
	for _, name := range slices.Backward(p.vmacs) {
		n.removeVMAC(name)
	}
}

// commitPending hands what p opened to the node and registers its
// instances (not started). Called with n.mu held, or before Run. It cannot
// fail.
func (n *Router) commitPending(p *pending) {
	for key, s := range p.socks {
		n.socks[key] = s
		n.conns = append(n.conns, s)
		if n.running {
			n.startReader(s)
		}
	}
	for dev, l := range p.links {
		n.links[dev] = l
	}
	if p.accept != nil {
		n.accept = p.accept
	}
	for _, in := range p.insts {
		in.sock.byVRID[in.cfg.VRID] = in
		in.work = n.newWorker()
		in.met.Added(in.settings())
		n.insts = append(n.insts, in)
	}
	*p = pending{}
}

// prepareInstance makes one instance ready to run without touching the
// running ones: its interface must exist; its virtual MAC interface (if
// any) is created, its socket (shared by the instances of an interface and
// family) opened, its source address read, its state machine and
// announcers built. leaving are running instances the caller is about to
// stop: their VRIDs are free for this one.
func (n *Router) prepareInstance(ic *config.Instance, allVIPs []netip.Addr, primaries map[string]netip.Addr, p *pending, leaving map[*instance]bool) (*instance, error) {
	fail := func(err error) (*instance, error) { return nil, fmt.Errorf("instance %q: %w", ic.Name, err) }
	if _, err := netlink.LinkByName(ic.Interface); err != nil {
		return fail(fmt.Errorf("interface %q: %w", ic.Interface, err))
	}
	fam := ic.Family()
	dev := ic.Interface // where adverts and VIPs go: the interface, or its vmac
	if ic.VMAC != "" {
		created, err := n.ensureVMAC(ic)
		if err != nil {
			return fail(err)
		}
		if created {
			p.vmacs = append(p.vmacs, ic.VMAC)
		}
		dev = ic.VMAC
	}
	key := dev + "/" + strconv.Itoa(fam)
	s := n.socks[key]
	if s == nil {
		s = p.socks[key]
	}
	if s == nil {
		conn, err := vrrpnet.Listen(dev, fam, true)
		if err != nil {
			return fail(err)
		}
		s = &sock{conn: conn, ifname: dev, family: fam, byVRID: map[uint8]*instance{}}
		p.socks[key] = s
	}
	// Config validation rejects two instances on one VRID; keep the
	// driver safe regardless.
	if prev := s.byVRID[ic.VRID]; prev != nil && !leaving[prev] {
		return nil, fmt.Errorf("instances %q and %q both use VRID %d on %s", prev.cfg.Name, ic.Name, ic.VRID, key)
	}
	for _, q := range p.insts {
		if q.sock == s && q.cfg.VRID == ic.VRID {
			return nil, fmt.Errorf("instances %q and %q both use VRID %d on %s", q.cfg.Name, ic.Name, ic.VRID, key)
		}
	}
	in := &instance{cfg: ic, sock: s, met: n.metrics.Instance(ic.Name, ic.VRID, ic.Interface, fam)}
	if err := n.setSource(in, allVIPs, primaries); err != nil {
		return fail(err)
	}
	switch {
	case ic.Unicast != nil:
		in.dsts = ic.Unicast.Peers
	case fam == 6:
		in.dsts = []netip.Addr{vrrp.GroupIPv6}
	default:
		in.dsts = []netip.Addr{vrrp.GroupIPv4}
	}
	core, err := vrrp.NewInstance(ic.VRRP(in.src))
	if err != nil {
		return nil, err
	}
	in.core = core
	n.setVIPs(in, ic)
	if in.anns, err = n.buildAnnouncers(in, in.vips, ic.GARP, p); err != nil {
		return fail(err)
	}
	if !ic.Accept && ic.Priority != vrrp.OwnerPriority && n.accept == nil && p.accept == nil {
		f, err := accept.New()
		if err != nil {
			closeAnnouncers(in.anns)
			return fail(fmt.Errorf("accept: false needs nftables: %w", err))
		}
		p.accept = f
	}
	return in, nil
}

// srcDev is the interface whose address the instance sends from: the
// parent's primary IPv4 address even with a vmac (the vmac holds only
// VIPs); IPv6 sends from the vmac's own random link-local address.
func srcDev(ic *config.Instance) string {
	if ic.VMAC != "" && ic.Family() == 6 {
		return ic.VMAC
	}
	return ic.Interface
}

// setSource reads the instance's advert source: the configured unicast
// source, or the interface's primary IPv4 address or IPv6 link-local
// address. An interface that has none yet (down, or its link-local address
// still tentative after the link came up) is no error: the instance waits
// in FAULT for one (noSrc) and the address watcher gives it its address
// (issue 11 item 3; keepalived waits too).
func (n *Router) setSource(in *instance, allVIPs []netip.Addr, primaries map[string]netip.Addr) error {
	ic := in.cfg
	if ic.Unicast != nil && ic.Unicast.Source.IsValid() {
		in.src = ic.Unicast.Source
		if ok, err := vrrpnet.HasAddr(ic.Interface, in.src); err != nil {
			return err
		} else if !ok {
			n.log.Warn("unicast source address is not on the interface; adverts will still carry it",
				"vrrp_instance", ic.Name, "device", ic.Interface, "source", in.src)
		}
		return nil
	}
	dev := srcDev(ic)
	pkey := dev + "/" + strconv.Itoa(ic.Family())
	if a := primaries[pkey]; a.IsValid() {
		in.src = a
		return nil
	}
	src, err := vrrpnet.PrimaryAddr(dev, ic.Family(), allVIPs)
	switch {
	case errors.Is(err, vrrpnet.ErrNoAddress):
		in.src, in.noSrc = netip.Addr{}, true
		n.log.Warn("no address to send adverts from yet; the instance waits in FAULT until the interface has one",
			"vrrp_instance", ic.Name, "device", dev, "detail", err.Error())
		return nil
	case err != nil:
		return err
	}
	in.src, primaries[pkey] = src, src
	return nil
}
