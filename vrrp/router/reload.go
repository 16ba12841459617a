package router

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"vigil/config"
	"vigil/lb"
	"vigil/telemetry/events"
	"vigil/vrrp"
	"vigil/vrrp/policy"
	"vigil/vrrp/track"
	"vigil/vrrp/vip"
	"vigil/vrrp/vmac"

	"github.com/vishvananda/netlink"
)

// ensureVMAC creates (or adopts after a crash) the instance's macvlan with
// the virtual MAC (keepalived use_vmac); created says it did not exist.
func (n *Router) ensureVMAC(ic *config.Instance) (created bool, err error) {
	if err := n.openVMACs(); err != nil {
		return false, err
	}
	_, lerr := netlink.LinkByName(ic.VMAC)
	n.record.setVMAC(ic.VMAC, true)
	if _, err := n.vmacs.Ensure(ic.VMAC, ic.Interface, vmac.MAC(ic.VRID, ic.Family())); err != nil {
		return false, err
	}
	n.log.Info("virtual MAC interface ready", "vrrp_instance", ic.Name, "device", ic.VMAC, "parent", ic.Interface,
		"mac", vmac.MAC(ic.VRID, ic.Family()).String())
	return lerr != nil, nil
}

func (n *Router) openVMACs() error {
	if n.vmacs != nil {
		return nil
	}
	m, err := vmac.New()
	if err != nil {
		return err
	}
	m.SetLogger(n.log)
	n.vmacs = m
	return nil
}

// removeVMAC deletes a virtual MAC interface, and the settings it needed
// outside itself go back to what they were when no other vmac needs them
// (vmac.Manager.Remove), logging a failure.
func (n *Router) removeVMAC(name string) {
	if n.vmacs == nil {
		return
	}
	if err := n.vmacs.Remove(name); err != nil {
		n.log.Error("removing the virtual MAC interface", "device", name, "err", err)
		if !errors.Is(err, vmac.ErrNotRestored) {
			return // still there: the record keeps it
		}
	}
	n.record.setVMAC(name, false)
}

// ReloadReport says what a reload did, by instance name.
type ReloadReport struct {
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	Restarted []string `json:"restarted"` // protocol settings changed: stopped and started again
	Updated   []string `json:"updated"`   // changed in place, state and timers kept
	Unchanged []string `json:"unchanged"`
	Hash      string   `json:"config_hash"`
	// VirtualServers is what changed among the lb virtual servers, by name.
	VirtualServers VSChanges `json:"virtual_servers"`
}

// VSChanges lists virtual servers by what a reload did to them. Changed
// ones keep the state of their unchanged checks; the kernel table changes
// only where the desired table does.
type VSChanges struct {
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	Changed   []string `json:"changed"`
	Unchanged []string `json:"unchanged"`
}

func diffVirtualServers(old, next []config.VirtualServer) VSChanges {
	var c VSChanges
	prev := map[string]config.VirtualServer{}
	for _, vs := range old {
		prev[vs.Spec.Name] = vs
	}
	for _, vs := range next {
		o, ok := prev[vs.Spec.Name]
		switch {
		case !ok:
			c.Added = append(c.Added, vs.Spec.Name)
		case reflect.DeepEqual(o, vs):
			c.Unchanged = append(c.Unchanged, vs.Spec.Name)
		default:
			c.Changed = append(c.Changed, vs.Spec.Name)
		}
		delete(prev, vs.Spec.Name)
	}
	for _, vs := range old {
		if _, gone := prev[vs.Spec.Name]; gone {
			c.Removed = append(c.Removed, vs.Spec.Name)
		}
	}
	return c
}

// Unchanged is the report of a reload that finds the running
// configuration's file as it was (same hash): everything unchanged.
func (n *Router) Unchanged() ReloadReport {
	n.mu.Lock()
	defer n.mu.Unlock()
	rep := ReloadReport{Hash: n.cfg.Hash}
	for _, in := range n.insts {
		rep.Unchanged = append(rep.Unchanged, in.cfg.Name)
	}
	for _, vs := range n.cfg.LB.VirtualServers {
		rep.VirtualServers.Unchanged = append(rep.VirtualServers.Unchanged, vs.Spec.Name)
	}
	return rep
}

// Reload applies a new configuration. Instances are matched by (interface,
// VRID, family), not by name. One whose settings did not change keeps its
// state and timers (no advert gap, no election); one whose VIPs, name,
// announcements, trackers, notify or sync group changed is updated in place
// (a master adds and removes the VIP difference); one whose protocol
// settings changed is stopped (priority 0 from a master) and started again;
// removed ones stop, added ones start. The new configuration must already
// be validated (config.Load).
//
// A reload is all or nothing: everything that can fail (interfaces,
// sockets, addresses, virtual MACs, announcers, trackers, the FIFO, the
// load balancer's checks) is prepared before any running instance is
// touched, and a failure there leaves the node exactly as it was, running
// the previous configuration. Should something still fail while the change
// is applied, the previous configuration is applied again.
func (n *Router) Reload(next *config.Config) (ReloadReport, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopping {
		return ReloadReport{Hash: next.Hash}, fmt.Errorf("vigil is stopping")
	}
	prev := n.cfg
	rep, committed, err := n.reload(next)
	if err == nil || !committed {
		return rep, err
	}
	n.log.Error("configuration reload failed while being applied; applying the previous configuration again", "err", err)
	if _, _, rerr := n.reload(prev); rerr != nil {
		return rep, errors.Join(err, fmt.Errorf("restoring the previous configuration: %w", rerr))
	}
	return rep, fmt.Errorf("%w (the previous configuration was restored)", err)
}

// planned is a running instance that stays, with its new configuration.
type planned struct {
	in  *instance
	cfg *config.Instance
}

// inPlace is an in-place update, with what it needs prepared.
type inPlace struct {
	in     *instance
	old    *config.Instance // the running configuration (in.cfg is set to cfg before the update)
	cfg    *config.Instance
	change config.Change
	// With VIP or GARP changes: the new VIP lists and announcers.
	vips  []vip.VIP
	addrs []netip.Addr
	anns  []devAnnouncer
}

// reload prepares next and, if that worked, applies it; committed says the
// running node was changed. Called with n.mu held.
func (n *Router) reload(next *config.Config) (rep ReloadReport, committed bool, err error) {
	prev := n.cfg
	ch := config.Diff(prev, next)
	rep = ReloadReport{Hash: next.Hash}
	now := time.Now()
	byID := map[config.Identity]*instance{}
	for _, in := range n.insts {
		byID[in.cfg.Identity()] = in
	}

	// What goes, what stays, what is new. An instance of the running
	// config that does not run (a restore that failed) is started now,
	// whatever the diff says of it.
	leaving := map[*instance]bool{}
	var fresh []*config.Instance
	var stay []planned
	var updates []*inPlace
	var added, missing []string
	for _, c := range ch.Removed {
		if in := byID[c.ID]; in != nil {
			leaving[in] = true
		}
		rep.Removed = append(rep.Removed, c.Old.Name)
	}
	for _, c := range ch.Changed {
		switch in := byID[c.ID]; {
		case in == nil:
			fresh = append(fresh, c.New)
			missing = append(missing, c.New.Name)
		case !c.Change.InPlace():
			leaving[in] = true
			fresh = append(fresh, c.New)
			rep.Restarted = append(rep.Restarted, c.New.Name)
		default:
			updates = append(updates, &inPlace{in: in, old: in.cfg, cfg: c.New, change: c.Change})
			stay = append(stay, planned{in, c.New})
			rep.Updated = append(rep.Updated, c.New.Name)
		}
	}
	for _, c := range ch.Unchanged {
		if in := byID[c.ID]; in != nil {
			stay = append(stay, planned{in, c.New})
			rep.Unchanged = append(rep.Unchanged, c.New.Name)
		} else {
			fresh = append(fresh, c.New)
			missing = append(missing, c.New.Name)
		}
	}
	for _, c := range ch.Added {
		fresh = append(fresh, c.New)
		added = append(added, c.New.Name)
	}
	rep.Added = append(added, missing...)

	// Prepare, changing nothing that runs.
	p := newPending()
	abort := func(err error) (ReloadReport, bool, error) {
		for _, u := range updates {
			closeAnnouncers(u.anns)
		}
		p.abort(n)
		return rep, false, err
	}
	all := allVIPs(next)
	primaries := map[string]netip.Addr{}
	for _, ic := range fresh {
		in, err := n.prepareInstance(ic, all, primaries, p, leaving)
		if err != nil {
			return abort(err)
		}
		p.insts = append(p.insts, in)
	}
	for _, u := range updates {
		if err := n.prepareUpdate(u, p); err != nil {
			return abort(err)
		}
	}
	future := slices.Clone(stay)
	for _, in := range p.insts {
		future = append(future, planned{in, in.cfg})
	}
	tp, err := n.prepareTracking(next, future)
	if err != nil {
		return abort(err)
	}
	// The load balancer's change is all or nothing by itself (its checks
	// are built before anything is replaced): the last thing that may
	// refuse the configuration.
	if n.hooks.Prepare != nil {
		if err := n.hooks.Prepare(next); err != nil {
			tp.abort()
			return abort(err)
		}
	}

	// Apply. Nothing below refuses the configuration. The new VIPs are
	// recorded before any can be added; the old ones stay recorded until
	// a start or a graceful stop (a removed instance's may still be on the
	// interface for a moment).
	var newVIPs []vip.VIP
	for _, in := range p.insts {
		newVIPs = append(newVIPs, in.vips...)
	}
	for _, u := range updates {
		newVIPs = append(newVIPs, u.vips...)
	}
	n.record.addVIPs(newVIPs)
	keep := kept{socks: map[*sock]bool{}, vmacs: map[string]bool{}} // what the new instances use
	for _, in := range p.insts {
		keep.socks[in.sock] = true
		if in.cfg.VMAC != "" {
			keep.vmacs[in.cfg.VMAC] = true
		}
	}
	for _, x := range stay {
		if x.cfg.VMAC != "" {
			keep.vmacs[x.cfg.VMAC] = true
		}
	}
	for _, in := range slices.Clone(n.insts) {
		if leaving[in] {
			n.removeInstance(in, now, keep)
		}
	}
	n.cfg = next
	for _, x := range stay {
		x.in.cfg = x.cfg
	}
	for _, u := range updates {
		n.commitUpdate(u)
	}
	started := slices.Clone(p.insts)
	n.commitPending(p)
	// Keep the instance list in the configuration's order (status output).
	order := map[*config.Instance]int{}
	for i := range next.VRRP.Instances {
		order[&next.VRRP.Instances[i]] = i
	}
	slices.SortFunc(n.insts, func(a, b *instance) int { return order[a.cfg] - order[b.cfg] })
	rep.VirtualServers = diffVirtualServers(prev.LB.VirtualServers, next.LB.VirtualServers)
	n.commitTracking(tp, now)
	if err := n.blockNonAccepting(); err != nil {
		return rep, true, err
	}
	for _, in := range started {
		n.setLinkState(in)
		n.evaluate(in, now)
		n.do(in, in.core.Start(now))
	}
	n.rearm()
	return rep, true, nil
}

// kept is what instances of the new configuration use: a removed
// instance's socket and virtual MAC interface stay when listed.
type kept struct {
	socks map[*sock]bool
	vmacs map[string]bool
}

// removeInstance stops an instance (a master sends priority 0 and removes
// its VIPs) and releases what only it used. Called with n.mu held.
func (n *Router) removeInstance(in *instance, now time.Time, keep kept) {
	n.do(in, in.core.Stop(now, vrrp.CauseConfigReload))
	in.work.close()
	closeAnnouncers(in.anns)
	if n.accept != nil {
		n.accept.Unblock(in.cfg.Name)
	}
	s := in.sock
	delete(s.byVRID, in.cfg.VRID)
	if len(s.byVRID) == 0 && !keep.socks[s] {
		s.closed.Store(true)
		s.conn.Close()
		for k, v := range n.socks {
			if v == s {
				delete(n.socks, k)
			}
		}
		n.conns = slices.DeleteFunc(n.conns, func(x *sock) bool { return x == s })
	}
	if in.cfg.VMAC != "" && !keep.vmacs[in.cfg.VMAC] {
		name := in.cfg.VMAC
		// After the worker has removed the VIPs from it.
		go func() {
			<-in.work.done
			n.removeVMAC(name)
		}()
	}
	in.met.Removed(in.addrs)
	n.insts = slices.DeleteFunc(n.insts, func(x *instance) bool { return x == in })
}

// prepareUpdate builds what an in-place update needs that can fail: the
// new VIP list, checked against the protocol's limits, and new announcers
// when the VIPs or the announcement settings change.
func (n *Router) prepareUpdate(u *inPlace, p *pending) error {
	if u.change&(config.ChangeVIPs|config.ChangeGARP) == 0 {
		return nil
	}
	tmp := &instance{}
	n.setVIPs(tmp, u.cfg)
	u.vips, u.addrs = tmp.vips, tmp.addrs
	c := u.in.core.Config()
	c.VIPs = u.addrs
	if err := c.Validate(); err != nil {
		return fmt.Errorf("instance %q: %w", u.cfg.Name, err)
	}
	anns, err := n.buildAnnouncers(u.in, u.vips, u.cfg.GARP, p)
	if err != nil {
		return fmt.Errorf("instance %q: %w", u.cfg.Name, err)
	}
	u.anns = anns
	return nil
}

// commitUpdate applies an in-place update prepared by prepareUpdate: name,
// VIPs, announcements, trackers, notify, sync group. The state machine
// keeps its state and timers. Called with n.mu held.
func (n *Router) commitUpdate(u *inPlace) {
	in, ic, c, old := u.in, u.cfg, u.change, u.old
	in.cfg = ic
	if c&config.ChangeName != 0 {
		if n.accept != nil {
			n.accept.Unblock(old.Name)
		}
		in.core.Rename(ic.Name)
		in.met.Renamed(ic.Name, in.core.State().String(), in.settings())
	}
	if c&config.ChangeVIPs != 0 {
		oldVIPs := in.vips
		in.vips, in.addrs = u.vips, u.addrs
		if err := in.core.SetVIPs(in.addrs); err != nil {
			// prepareUpdate checked the list: cannot happen.
			n.log.Error("changing the advertised addresses", "vrrp_instance", ic.Name, "err", err)
		}
		if in.core.State() == vrrp.StateMaster {
			gone, added := vipDelta(oldVIPs, in.vips)
			// The removal always runs; the addition belongs to this
			// mastership and is dropped if it ends first.
			name := in.cfg.Name
			in.work.push(func() { n.removeVIPList(name, gone) })
			in.work.pushJob(jobMaster, func() { n.addVIPList(name, added) })
			n.log.Info("virtual addresses changed in place", "vrrp_instance", ic.Name, "added", fmt.Sprint(added), "removed", fmt.Sprint(gone))
		}
		in.met.VIPsChanged(vipAddrs(oldVIPs), in.addrs, in.core.State() == vrrp.StateMaster)
	}
	if c&(config.ChangeVIPs|config.ChangeGARP) != 0 {
		closeAnnouncers(in.anns)
		in.anns = u.anns
		if in.core.State() == vrrp.StateMaster {
			w := in.snap()
			in.work.pushJob(jobMaster, func() { n.announce(w, false) })
		}
	}
}

func vipDelta(old, cur []vip.VIP) (gone, added []vip.VIP) {
	for _, v := range old {
		if !slices.Contains(cur, v) {
			gone = append(gone, v)
		}
	}
	for _, v := range cur {
		if !slices.Contains(old, v) {
			added = append(added, v)
		}
	}
	return gone, added
}

func vipAddrs(vs []vip.VIP) []netip.Addr {
	out := make([]netip.Addr, len(vs))
	for i, v := range vs {
		out[i] = v.Prefix.Addr()
	}
	return out
}

// trackPlan is what a configuration asks of the trackers, sync groups and
// notify sinks, built (and checked) before anything changes.
type trackPlan struct {
	cfg     *config.Config
	tracks  map[*instance][]trackRef
	add     map[track.Key]track.Tracker // new trackers, or ones whose spec changed
	remove  []track.Key                 // running trackers not wanted as they are
	fifo    *events.FIFO                // opened for a new notify_fifo path
	newFIFO bool                        // the FIFO changes (fifo nil: goes away)
}

// abort closes what the plan opened.
func (tp *trackPlan) abort() {
	if tp.fifo != nil {
		tp.fifo.Close()
	}
}

// prepareTracking builds the trackers of cfg for the instances that will
// run (each with its new configuration) and opens a new notify FIFO.
// Called with n.mu held, or before Run.
func (n *Router) prepareTracking(cfg *config.Config, insts []planned) (*trackPlan, error) {
	v := &cfg.VRRP
	scripts := map[string]*config.Script{}
	for i := range v.Scripts {
		scripts[v.Scripts[i].Name] = &v.Scripts[i]
	}
	files := map[string]*config.File{}
	for i := range v.Files {
		files[v.Files[i].Name] = &v.Files[i]
	}
	procs := map[string]*config.Process{}
	for i := range v.Processes {
		procs[v.Processes[i].Name] = &v.Processes[i]
	}
	tp := &trackPlan{cfg: cfg, tracks: map[*instance][]trackRef{}, add: map[track.Key]track.Tracker{}}
	want := map[track.Key]track.Tracker{}
	for _, x := range insts {
		tr := x.cfg.Track
		var refs []trackRef
		for _, kind := range []struct {
			kind string
			refs []config.TrackRef
		}{{"interface", tr.Interfaces}, {"script", tr.Scripts}, {"file", tr.Files}, {"process", tr.Processes},
			{string(policy.KindVirtualServer), tr.VirtualServers}} {
			for _, r := range kind.refs {
				k := trackKey(kind.kind, r.Name)
				refs = append(refs, trackRef{key: k, weight: r.Weight, reverse: r.Reverse})
				if _, ok := want[k]; ok {
					continue
				}
				t, err := n.newTracker(k, scripts, files, procs)
				if err != nil {
					return nil, fmt.Errorf("instance %q: %w", x.cfg.Name, err)
				}
				want[k] = t
			}
		}
		tp.tracks[x.in] = refs
	}
	// Keep running trackers whose spec is the same (and their state);
	// replace the others.
	for _, u := range n.tracker.States() {
		k := track.Key{Kind: u.Kind, Name: u.Name}
		if t, ok := want[k]; ok && n.sameTracker(k, t) {
			delete(want, k)
			continue
		}
		tp.remove = append(tp.remove, k)
	}
	tp.add = want
	if n.fifo == nil || n.fifo.Path() != v.NotifyFIFO || n.fifoGroup != v.NotifyFIFOGroup {
		tp.newFIFO = true
		if v.NotifyFIFO != "" {
			f, err := events.OpenFIFO(n.bus, n.log, events.FIFOConfig{Path: v.NotifyFIFO, Group: v.NotifyFIFOGroup})
			if err != nil {
				return nil, err
			}
			tp.fifo = f
		}
	}
	return tp, nil
}

// commitTracking makes the trackers, sync groups and notify sinks what tp
// says, and re-evaluates the running instances. Called with n.mu held, or
// before Run.
func (n *Router) commitTracking(tp *trackPlan, now time.Time) {
	v := &tp.cfg.VRRP
	for _, in := range n.insts {
		in.tracks = tp.tracks[in]
	}
	for _, k := range tp.remove {
		n.tracker.Remove(k.Kind, k.Name)
		delete(n.states, k)
	}
	for k, t := range tp.add {
		if err := n.tracker.Add(t); err != nil {
			// Only a duplicate can fail here, which the plan rules out.
			n.log.Error("adding a tracker", "tracker", k.String(), "err", err)
			continue
		}
		n.states[k] = t.Initial()
	}
	for _, in := range n.insts {
		in.group = nil
		in.groupFault, in.lastOwnFault = false, false
	}
	n.groups = map[string]*group{}
	for i := range v.SyncGroups {
		g := &group{cfg: &v.SyncGroups[i]}
		for _, name := range g.cfg.Instances {
			for _, in := range n.insts {
				if in.cfg.Name == name {
					g.members = append(g.members, in)
					in.group = g
				}
			}
		}
		n.groups[g.cfg.Name] = g
	}
	nc := events.NotifyConfig{Instances: map[string]events.ScriptSpec{}, Groups: map[string]events.ScriptSpec{}}
	for _, in := range n.insts {
		nc.Instances[in.cfg.Name] = events.ScriptSpec(in.cfg.Notify)
	}
	for _, g := range n.groups {
		nc.Groups[g.cfg.Name] = events.ScriptSpec(g.cfg.Notify)
	}
	nc.VirtualServers = lbScripts(tp.cfg.LB.VirtualServers)
	n.notifier.Update(nc)
	if tp.newFIFO {
		if n.fifo != nil {
			n.fifo.Close()
		}
		n.fifo, n.fifoGroup = tp.fifo, v.NotifyFIFOGroup
	}
	for _, in := range n.insts {
		if in.core.State() != vrrp.StateInit {
			n.evaluate(in, now)
		}
	}
}

// sameTracker reports whether the running tracker k has t's spec.
func (n *Router) sameTracker(k track.Key, t track.Tracker) bool {
	cur, ok := n.tracker.Tracker(k.Kind, k.Name)
	return ok && track.SameSpec(cur, t)
}

// setLinkState reads the instance interface's state for a new instance.
func (n *Router) setLinkState(in *instance) {
	if in.cfg.DontTrackPrimary {
		return
	}
	for _, x := range n.insts {
		if x != in && x.cfg.Interface == in.cfg.Interface && !x.cfg.DontTrackPrimary {
			in.ifDown = x.ifDown
			return
		}
	}
	up, err := linkIsUp(in.cfg.Interface)
	if err != nil {
		n.log.Error("reading the interface state", "device", in.cfg.Interface, "err", err)
		return
	}
	in.ifDown = !up
}

// lbScripts are the notify commands of the virtual servers and their real
// servers, for the notifier.
func lbScripts(vss []config.VirtualServer) map[string]events.LBScripts {
	out := map[string]events.LBScripts{}
	for _, vs := range vss {
		sc := events.LBScripts{QuorumUp: vs.Notify.QuorumUp, QuorumDown: vs.Notify.QuorumDown,
			User: vs.Notify.User, Timeout: vs.Notify.Timeout, RealServers: map[string]events.RSScripts{}}
		for i, rs := range vs.Reals {
			if len(rs.NotifyUp) > 0 || len(rs.NotifyDown) > 0 {
				sc.RealServers[lb.KeepalivedRealServer(vs.Spec, vs.Spec.Reals[i].Key())] = events.RSScripts{Up: rs.NotifyUp, Down: rs.NotifyDown}
			}
		}
		out[vs.Spec.Name] = sc
	}
	return out
}
