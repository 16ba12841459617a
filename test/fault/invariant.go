package fault

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"vigil/node"
	"vigil/test/netlab"
	"vigil/vrrp"
)

// FilterAll captures what the checker reads: VRRP over IPv4 and IPv6, ARP, and ICMPv6 (neighbour
// advertisements).
const FilterAll = netlab.FilterVRRP + " or arp or icmp6"

// Member is one VRRP speaker the checker watches.
type Member struct {
	Node *netlab.Node
	// Admin is the vigil admin socket the node's state is read from (`vigil status` reads the same
	// GET /v1/status). Empty for a speaker without one (keepalived): a node holding a virtual
	// address of a group then counts as that group's master, and the wire says the rest.
	Admin string
}

// Group is one virtual router the invariants are checked for.
type Group struct {
	VRID     int
	Version  int           // 2 or 3
	Interval time.Duration // advert interval
	// LowestPriority is the lowest priority among the nodes that may take over: it gives the
	// longest Master_Down_Interval, which sets the bound.
	LowestPriority int
	// VIPs are the group's virtual addresses, of one family.
	VIPs []netip.Addr
}

// IPv6 reports whether the group's addresses are IPv6.
func (g Group) IPv6() bool { return len(g.VIPs) > 0 && g.VIPs[0].Is6() }

// MDI is the longest Master_Down_Interval of the group (3 × interval + Skew_Time at
// LowestPriority).
func (g Group) MDI() time.Duration {
	return vrrp.MasterDownInterval(uint8(g.Version), uint8(g.LowestPriority), g.Interval)
}

// Bound is the time after a heal by which there must be one master: 2 × MDI.
func (g Group) Bound() time.Duration { return 2 * g.MDI() }

func (g Group) String() string {
	fam := "IPv4"
	if g.IPv6() {
		fam = "IPv6"
	}
	return fmt.Sprintf("VRID %d/%s", g.VRID, fam)
}

func (g Group) family() string {
	if g.IPv6() {
		return "ipv6"
	}
	return "ipv4"
}

// Checker holds a lab's VRRP speakers to the invariants after a fault heals. Build one per
// cluster; AfterHeal may be called after every heal.
type Checker struct {
	Members []Member
	Groups  []Group
	// Capture runs on the lab's bridge with FilterAll (or a filter that keeps at least VRRP, ARP and
	// neighbour advertisements) from before the heal.
	Capture *netlab.Capture
	// Dev is the interface the virtual addresses go on (netlab.Dev when empty).
	Dev string
	// Hold is how long the settled state must hold, sampled, before it counts (default: 3 advert
	// intervals of the slowest group, at least 500 ms).
	Hold time.Duration

	macs map[string]string // MAC → node name
}

// GroupReport is what AfterHeal measured for one group.
type GroupReport struct {
	Group  Group
	Master string // the node that was the one master once settled
	// StateOne is how long after the heal the nodes' state first showed one master and the
	// addresses on its interface only (and kept showing it for Hold): a sampled figure, an upper
	// bound when the first sample already found it so.
	StateOne time.Duration
	// WireOne is how long after the heal another node last advertised at a non-zero priority
	// (0 when no other node did): from the capture's kernel timestamps.
	WireOne time.Duration
	// MasterFirst is how long after the heal the master's first advert went out (a takeover's
	// time on the wire; up to one interval for a master that never stopped).
	MasterFirst time.Duration
	// Silence is the longest time from the heal on during which nobody advertised the group at a
	// non-zero priority: how long it may have had no master.
	Silence time.Duration
	Bound   time.Duration
	// HoldAdverts counts the master's adverts while the settled state was held.
	HoldAdverts int
	// Announcements counts gratuitous ARPs / neighbour advertisements for the group's addresses
	// after the heal; Stray describes those sent by a node that was not master.
	Announcements int
	Stray         []string
}

// Report is what AfterHeal measured.
type Report struct {
	Heal   time.Time
	Groups []GroupReport
}

// Summary is one line for the outcome table: the slowest group's figures and the stray count.
func (r *Report) Summary() string {
	if r == nil || len(r.Groups) == 0 {
		return "not settled: no figures"
	}
	var wire, state, bound, silence time.Duration
	var anns, stray int
	for _, g := range r.Groups {
		wire, state, bound, silence = max(wire, g.WireOne), max(state, g.StateOne), max(bound, g.Bound), max(silence, g.Silence)
		anns += g.Announcements
		stray += len(g.Stray)
	}
	return fmt.Sprintf("one master %.2f s after heal on the wire, %.2f s by state (bound %.2f s), longest silence %.2f s; %d stray GARP/NA of %d",
		wire.Seconds(), state.Seconds(), bound.Seconds(), silence.Seconds(), stray, anns)
}

func (r *Report) String() string {
	if r == nil || len(r.Groups) == 0 {
		return "not settled: no figures"
	}
	var b strings.Builder
	for i, g := range r.Groups {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: one master (%s) %.3f s after heal on the wire, %.3f s by state (bound %.3f s), its first advert at %.3f s, %d while held, longest silence %.3f s; %d stray GARP/NA of %d",
			g.Group, g.Master, g.WireOne.Seconds(), g.StateOne.Seconds(), g.Bound.Seconds(), g.MasterFirst.Seconds(), g.HoldAdverts, g.Silence.Seconds(), len(g.Stray), g.Announcements)
	}
	return b.String()
}

// nodeView is one sample of a member: its state (vigil) and the addresses on its interface.
type nodeView struct {
	name      string
	admin     bool
	status    *node.Status
	statusErr error
	addrs     []netip.Addr
	addrErr   error
}

// AfterHeal checks the invariants for a fault healed at heal. It samples the members' state and
// addresses until, for every group, one node is master and holds every address of the group and
// no other node holds any, and that has lasted Hold; then it reads the capture and checks the
// wire from the heal on: nobody but that master advertised at a non-zero priority later than the
// group's Bound after the heal, the master advertised while the state held, and no node announced
// a group's address when it was not advertising as master. The report is returned with every
// violation joined in the error.
func (c *Checker) AfterHeal(heal time.Time) (*Report, error) {
	if err := c.learnMACs(); err != nil {
		return nil, err
	}
	var maxBound, slowest time.Duration
	for _, g := range c.Groups {
		maxBound, slowest = max(maxBound, g.Bound()), max(slowest, g.Interval)
	}
	hold := c.Hold
	if hold == 0 {
		hold = max(500*time.Millisecond, 3*slowest)
	}
	rep := &Report{Heal: heal}
	settled := make([]time.Time, len(c.Groups))   // since when each group has been settled
	unsettled := make([]time.Time, len(c.Groups)) // the last sample that found it not settled
	masters := make([]string, len(c.Groups))
	// Sampling ends at the latest bound plus the hold; more time for slow polling would only hide
	// a slow settlement, which the bound check reports anyway.
	deadline := heal.Add(maxBound + hold + time.Second)
	var why []string
	for {
		at := time.Now()
		views := c.sample()
		// A settled state counts from the end of the sample that found it (a node's last advert
		// as master may go out while the sample reads the other nodes); an unsettled one from
		// its start.
		done := time.Now()
		why = why[:0]
		allHeld := true
		for i, g := range c.Groups {
			m, problem := judgeState(g, views)
			switch {
			case problem != "":
				settled[i], masters[i], unsettled[i] = time.Time{}, "", at
				why = append(why, g.String()+": "+problem)
				allHeld = false
			case m != masters[i] || settled[i].IsZero():
				if masters[i] != "" {
					unsettled[i] = at // another master than in the last sample
				}
				settled[i], masters[i] = done, m
				allHeld = false
			case done.Sub(settled[i]) < hold:
				allHeld = false
			}
		}
		if allHeld {
			break
		}
		if at.After(deadline) {
			return rep, fmt.Errorf("fault: no single master %s after the heal (bound %s, hold %s): %s",
				at.Sub(heal).Round(time.Millisecond), maxBound, hold, strings.Join(why, "; "))
		}
		time.Sleep(10 * time.Millisecond)
	}
	end := time.Now()
	// tcpdump writes packet-buffered: give it a moment for the last frames of the hold.
	time.Sleep(50 * time.Millisecond)
	frames, err := c.Capture.Frames()
	if err != nil {
		return rep, fmt.Errorf("fault: read capture: %w", err)
	}
	adverts, anns := netlab.VRRPFrames(frames), Announcements(frames)
	var errs []error
	for i, g := range c.Groups {
		gr, gerrs := judgeWire(wireCase{
			Group: g, Heal: heal, Master: masters[i], HoldFrom: settled[i], End: end,
			Names: c.macs, Adverts: adverts, Anns: anns,
		})
		gr.StateOne = max(0, settled[i].Sub(heal))
		// A violation is a sample past the bound that was not settled; a checker called late
		// finds the state settled at its first sample, which only bounds StateOne from above.
		if late := unsettled[i].Sub(heal); !unsettled[i].IsZero() && late > gr.Bound {
			gerrs = append(gerrs, fmt.Errorf("%s: not one master by state %.3f s after the heal (settled at %.3f s), bound 2 × Master_Down_Interval = %.3f s",
				g, late.Seconds(), gr.StateOne.Seconds(), gr.Bound.Seconds()))
		}
		rep.Groups = append(rep.Groups, gr)
		errs = append(errs, gerrs...)
	}
	return rep, errors.Join(errs...)
}

// learnMACs maps the members' interface MACs to their names (once).
func (c *Checker) learnMACs() error {
	if c.macs != nil {
		return nil
	}
	c.macs = map[string]string{}
	for _, m := range c.Members {
		mac, err := m.Node.MAC(c.dev())
		if err != nil {
			c.macs = nil
			return fmt.Errorf("fault: MAC of %s: %w", m.Node.Name, err)
		}
		c.macs[mac.String()] = m.Node.Name
	}
	return nil
}

func (c *Checker) dev() string {
	if c.Dev == "" {
		return netlab.Dev
	}
	return c.Dev
}

func (c *Checker) sample() []nodeView {
	views := make([]nodeView, len(c.Members))
	for i, m := range c.Members {
		v := nodeView{name: m.Node.Name, admin: m.Admin != ""}
		if v.admin {
			v.status, v.statusErr = Status(m.Admin)
		}
		v.addrs, v.addrErr = Addrs(m.Node, c.dev())
		views[i] = v
	}
	return views
}

// judgeState returns the group's one master in a sample, or what is wrong.
func judgeState(g Group, views []nodeView) (master string, problem string) {
	var masters []string
	for _, v := range views {
		if v.addrErr != nil {
			return "", fmt.Sprintf("addresses of %s: %v", v.name, v.addrErr)
		}
		if !v.admin {
			if slices.ContainsFunc(g.VIPs, func(a netip.Addr) bool { return slices.Contains(v.addrs, a) }) {
				masters = append(masters, v.name)
			}
			continue
		}
		if v.statusErr != nil {
			return "", fmt.Sprintf("status of %s: %v", v.name, v.statusErr)
		}
		for _, in := range v.status.Instances {
			if int(in.VRID) == g.VRID && in.Family == g.family() && in.State == "master" {
				masters = append(masters, v.name)
			}
		}
	}
	if len(masters) != 1 {
		return "", fmt.Sprintf("masters %v", masters)
	}
	for _, a := range g.VIPs {
		var holders []string
		for _, v := range views {
			if slices.Contains(v.addrs, a) {
				holders = append(holders, v.name)
			}
		}
		if !slices.Equal(holders, masters) {
			return "", fmt.Sprintf("master %s, %s held by %v", masters[0], a, holders)
		}
	}
	return masters[0], ""
}

// wireCase is what judgeWire reads for one group.
type wireCase struct {
	Group    Group
	Heal     time.Time
	Master   string    // the one master the state settled on
	HoldFrom time.Time // the state held from here...
	End      time.Time // ...to here
	Names    map[string]string
	Adverts  []netlab.VRRPFrame
	Anns     []Announcement
}

// announceSlack is how far from one of its own master adverts a node's announcement may be:
// announcements go out with the advert that starts mastership (vigil adds the addresses and
// announces from a worker, tens of ms later on a busy machine), so an announcement farther than
// one interval plus this from every master advert of the node came from a node that was not
// advertising as master: after its release, or before it took over.
const announceSlack = 100 * time.Millisecond

// judgeWire checks one group's adverts and announcements from the heal on.
func judgeWire(wc wireCase) (GroupReport, []error) {
	g := wc.Group
	gr := GroupReport{Group: g, Master: wc.Master, Bound: g.Bound()}
	name := func(mac net.HardwareAddr) string {
		if n, ok := wc.Names[mac.String()]; ok {
			return n
		}
		return "unknown " + mac.String()
	}
	var errs []error
	// Master adverts of the group after the heal, per node.
	mine := map[string][]time.Time{}
	last := wc.Heal
	for _, f := range wc.Adverts {
		if f.VRID != g.VRID || f.Src.Is6() != g.IPv6() || f.Type != vrrp.TypeAdvert || f.Priority == 0 {
			continue
		}
		n := name(f.SrcMAC)
		mine[n] = append(mine[n], f.Time)
		if f.Time.Before(wc.Heal) {
			continue
		}
		if !f.Time.After(wc.End) {
			gr.Silence = max(gr.Silence, f.Time.Sub(last))
			last = f.Time
		}
		if n != wc.Master {
			gr.WireOne = max(gr.WireOne, f.Time.Sub(wc.Heal))
			if !f.Time.Before(wc.HoldFrom) {
				errs = append(errs, fmt.Errorf("%s: %s advertised at priority %d %.3f s after the heal, while %s was master and the state held",
					g, n, f.Priority, f.Time.Sub(wc.Heal).Seconds(), wc.Master))
			}
		} else {
			if gr.MasterFirst == 0 {
				gr.MasterFirst = f.Time.Sub(wc.Heal)
			}
			if !f.Time.Before(wc.HoldFrom) && !f.Time.After(wc.End) {
				gr.HoldAdverts++
			}
		}
	}
	gr.Silence = max(gr.Silence, wc.End.Sub(last))
	if gr.WireOne > gr.Bound {
		errs = append(errs, fmt.Errorf("%s: another node still advertised as master %.3f s after the heal, bound 2 × Master_Down_Interval = %.3f s",
			g, gr.WireOne.Seconds(), gr.Bound.Seconds()))
	}
	// At least half the adverts the hold should have seen (a master that stopped advertising
	// but kept its state would fail here).
	if want := int(wc.End.Sub(wc.HoldFrom)/g.Interval) / 2; gr.HoldAdverts < max(1, want) {
		errs = append(errs, fmt.Errorf("%s: master %s sent %d adverts in the %.3f s the state held, want at least %d",
			g, wc.Master, gr.HoldAdverts, wc.End.Sub(wc.HoldFrom).Seconds(), max(1, want)))
	}
	tol := g.Interval + announceSlack
	for _, a := range wc.Anns {
		if a.Time.Before(wc.Heal) || !slices.Contains(g.VIPs, a.Addr) {
			continue
		}
		gr.Announcements++
		n := name(a.SrcMAC)
		near := slices.ContainsFunc(mine[n], func(t time.Time) bool { return t.Sub(a.Time).Abs() <= tol })
		if !near {
			kind := "GARP"
			if a.NA {
				kind = "NA"
			}
			gr.Stray = append(gr.Stray, fmt.Sprintf("%s for %s from %s %.3f s after the heal, no master advert of %s within %s",
				kind, a.Addr, n, a.Time.Sub(wc.Heal).Seconds(), n, tol))
		}
	}
	if len(gr.Stray) > 0 {
		errs = append(errs, fmt.Errorf("%s: %d stray announcements: %s", g, len(gr.Stray), strings.Join(firstN(gr.Stray, 5), "; ")))
	}
	return gr, errs
}

func firstN(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(slices.Clone(s[:n]), fmt.Sprintf("... %d more", len(s)-n))
}

// Status reads a vigil's state over its admin socket (GET /v1/status, what `vigil status -o
// json` prints), bounded by 2 s.
func Status(socket string) (*node.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("fault: admin socket %s: %w", socket, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://vigil/v1/status", nil)
	if err != nil {
		return nil, err
	}
	req.Close = true
	if err := req.Write(conn); err != nil {
		return nil, fmt.Errorf("fault: status request on %s: %w", socket, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, fmt.Errorf("fault: status answer on %s: %w", socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fault: status on %s: %s", socket, resp.Status)
	}
	var st node.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("fault: decode status from %s: %w", socket, err)
	}
	return &st, nil
}

// Addrs lists the addresses on a node's interface over netlink (what `ip -j addr show dev` prints,
// without an exec of ip per sample, so that sampling every 10 ms is cheap).
func Addrs(n *netlab.Node, dev string) ([]netip.Addr, error) {
	ns, err := netns.GetFromName(n.NS)
	if err != nil {
		return nil, fmt.Errorf("fault: namespace %s: %w", n.NS, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("fault: netlink in %s: %w", n.NS, err)
	}
	defer h.Close()
	link, err := h.LinkByName(dev)
	if err != nil {
		return nil, fmt.Errorf("fault: %s in %s: %w", dev, n.NS, err)
	}
	list, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("fault: addresses of %s in %s: %w", dev, n.NS, err)
	}
	out := make([]netip.Addr, 0, len(list))
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}
