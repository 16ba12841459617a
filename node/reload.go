package node

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"vigil/node/config"
	"vigil/node/events"
	"vigil/node/policy"
	"vigil/node/track"
	"vigil/vrrp"
	"vigil/vrrp/vip"
	"vigil/vrrp/vmac"
)

// ensureVMAC creates (or adopts after a crash) the instance's macvlan with
// the virtual MAC (keepalived use_vmac).
func (n *Node) ensureVMAC(ic *config.Instance) error {
	if n.vmacs == nil {
		m, err := vmac.New()
		if err != nil {
			return err
		}
		m.SetLogger(n.log)
		n.vmacs = m
	}
	if _, err := n.vmacs.Ensure(ic.VMAC, ic.Interface, vmac.MAC(ic.VRID, ic.Family())); err != nil {
		return err
	}
	n.log.Info("virtual MAC interface ready", "vrrp_instance", ic.Name, "device", ic.VMAC, "parent", ic.Interface,
		"mac", vmac.MAC(ic.VRID, ic.Family()).String())
	return nil
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
func (n *Node) Unchanged() ReloadReport {
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
// be validated (config.Load). If something cannot be applied (an interface
// is missing), the instances processed so far keep their new settings and
// the error says which instance failed.
func (n *Node) Reload(next *config.Config) (ReloadReport, error) {
	ch := config.Diff(n.cfg, next)
	n.mu.Lock()
	defer n.mu.Unlock()
	rep := ReloadReport{Hash: next.Hash}
	if n.stopping {
		return rep, fmt.Errorf("vigil is stopping")
	}
	now := time.Now()
	byID := map[config.Identity]*instance{}
	for _, in := range n.insts {
		byID[in.cfg.Identity()] = in
	}

	// Stop what goes away or restarts, before anything is added: a
	// restarted instance re-uses its VRID on its socket. An instance of
	// the running config that does not run (an earlier reload failed
	// before starting it) is started now, whatever the diff says of it.
	var restart, missing []*config.Instance
	for _, c := range ch.Removed {
		if in := byID[c.ID]; in != nil {
			n.removeInstance(in, now)
		}
		rep.Removed = append(rep.Removed, c.Old.Name)
	}
	for _, c := range ch.Changed {
		switch in := byID[c.ID]; {
		case in == nil:
			missing = append(missing, c.New)
		case !c.Change.InPlace():
			n.removeInstance(in, now)
			restart = append(restart, c.New)
			rep.Restarted = append(rep.Restarted, c.New.Name)
		}
	}
	prevLB := n.cfg.LB.VirtualServers
	n.cfg = next
	for _, c := range ch.Unchanged {
		in := byID[c.ID]
		if in == nil {
			missing = append(missing, c.New)
			continue
		}
		in.cfg = c.New
		rep.Unchanged = append(rep.Unchanged, c.New.Name)
	}
	for _, c := range ch.Changed {
		if c.Change.InPlace() && byID[c.ID] != nil {
			if err := n.updateInstance(byID[c.ID], c.New, c.Change, now); err != nil {
				return rep, err
			}
			rep.Updated = append(rep.Updated, c.New.Name)
		}
	}
	allVIPs := allVIPs(next)
	primaries := map[string]netip.Addr{}
	var started []*instance
	add := func(ic *config.Instance) error {
		in, err := n.newInstance(ic, allVIPs, primaries)
		if err != nil {
			return err
		}
		in.work = n.newWorker()
		n.insts = append(n.insts, in)
		started = append(started, in)
		return nil
	}
	for _, c := range ch.Added {
		if err := add(c.New); err != nil {
			return rep, err
		}
		rep.Added = append(rep.Added, c.New.Name)
	}
	for _, ic := range missing {
		if err := add(ic); err != nil {
			return rep, err
		}
		rep.Added = append(rep.Added, ic.Name)
	}
	for _, ic := range restart {
		if err := add(ic); err != nil {
			return rep, err
		}
	}
	// Keep the instance list in the configuration's order (status output).
	order := map[*config.Instance]int{}
	for i := range next.VRRP.Instances {
		order[&next.VRRP.Instances[i]] = i
	}
	slices.SortFunc(n.insts, func(a, b *instance) int { return order[a.cfg] - order[b.cfg] })

	rep.VirtualServers = diffVirtualServers(prevLB, next.LB.VirtualServers)
	if err := n.setLB(next); err != nil {
		return rep, err
	}
	if err := n.applyTracking(now); err != nil {
		return rep, err
	}
	if err := n.blockNonAccepting(); err != nil {
		return rep, err
	}
	for _, in := range started {
		n.setLinkState(in)
		n.evaluate(in, now)
		n.do(in, in.core.Start(now))
	}
	n.rearm()
	return rep, nil
}

// removeInstance stops an instance (a master sends priority 0 and removes
// its VIPs) and releases what only it used. Called with n.mu held.
func (n *Node) removeInstance(in *instance, now time.Time) {
	n.do(in, in.core.Stop(now, vrrp.CauseConfigReload))
	in.work.close()
	for _, da := range in.anns {
		da.ann.Close()
	}
	if n.accept != nil {
		n.accept.Unblock(in.cfg.Name)
	}
	s := in.sock
	delete(s.byVRID, in.cfg.VRID)
	if len(s.byVRID) == 0 {
		s.closed.Store(true)
		s.conn.Close()
		for k, v := range n.socks {
			if v == s {
				delete(n.socks, k)
			}
		}
		n.conns = slices.DeleteFunc(n.conns, func(x *sock) bool { return x == s })
	}
	if in.cfg.VMAC != "" && n.vmacs != nil {
		name := in.cfg.VMAC
		// After the worker has removed the VIPs from it.
		go func() {
			<-in.work.done
			if err := n.vmacs.Remove(name); err != nil {
				n.log.Error("removing the virtual MAC interface", "device", name, "err", err)
			}
		}()
	}
	n.deleteMetrics(in)
	n.insts = slices.DeleteFunc(n.insts, func(x *instance) bool { return x == in })
}

// updateInstance applies in-place changes: name, VIPs, announcements,
// trackers, notify, sync group. The state machine keeps its state and
// timers. Called with n.mu held.
func (n *Node) updateInstance(in *instance, ic *config.Instance, c config.Change, now time.Time) error {
	old := in.cfg
	in.cfg = ic
	if c&config.ChangeName != 0 {
		n.deleteMetrics(in)
		if n.accept != nil {
			n.accept.Unblock(old.Name)
		}
		in.core.Rename(ic.Name)
		in.labels[0] = ic.Name
		n.initMetrics(in)
		n.setStateMetrics(in)
	}
	if c&config.ChangeVIPs != 0 {
		oldVIPs := in.vips
		n.setVIPs(in, ic)
		if err := in.core.SetVIPs(in.addrs); err != nil {
			return err
		}
		if in.core.State() == vrrp.StateMaster {
			gone, added := vipDelta(oldVIPs, in.vips)
			// The removal always runs; the addition belongs to this
			// mastership and is dropped if it ends first.
			in.work.push(func() {
				if err := n.vips.Remove(gone); err != nil {
					n.log.Error("removing virtual addresses", "vrrp_instance", in.cfg.Name, "err", err)
				}
			})
			in.work.pushJob(jobMaster, func() {
				if err := n.vips.Add(added); err != nil {
					n.log.Error("adding virtual addresses", "vrrp_instance", in.cfg.Name, "err", err)
				}
			})
			n.log.Info("virtual addresses changed in place", "vrrp_instance", ic.Name, "added", fmt.Sprint(added), "removed", fmt.Sprint(gone))
		}
		for _, a := range vipAddrs(oldVIPs) {
			n.metrics.VIPOwned.DeleteLabelValues(append(slices.Clone(in.labels), a.String())...)
		}
		for _, a := range in.addrs {
			n.metrics.VIPOwned.WithLabelValues(append(slices.Clone(in.labels), a.String())...).Set(b2f(in.core.State() == vrrp.StateMaster))
		}
	}
	if c&(config.ChangeVIPs|config.ChangeGARP) != 0 {
		for _, da := range in.anns {
			da.ann.Close()
		}
		in.anns = nil
		if err := n.buildAnnouncers(in); err != nil {
			return fmt.Errorf("instance %q: %w", ic.Name, err)
		}
		if in.core.State() == vrrp.StateMaster {
			in.work.pushJob(jobMaster, func() { n.announce(in, false) })
		}
	}
	return nil
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

// applyTracking makes the trackers, sync groups and notify sinks match the
// configuration: at start, and on a reload (where only trackers whose spec
// changed restart). Called with n.mu held, or before Run.
func (n *Node) applyTracking(now time.Time) error {
	v := &n.cfg.VRRP
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
	want := map[track.Key]track.Tracker{}
	for _, in := range n.insts {
		in.tracks = nil
		tr := in.cfg.Track
		for _, x := range []struct {
			kind string
			refs []config.TrackRef
		}{{"interface", tr.Interfaces}, {"script", tr.Scripts}, {"file", tr.Files}, {"process", tr.Processes},
			{string(policy.KindVirtualServer), tr.VirtualServers}} {
			for _, r := range x.refs {
				k := trackKey(x.kind, r.Name)
				in.tracks = append(in.tracks, trackRef{key: k, weight: r.Weight, reverse: r.Reverse})
				if _, ok := want[k]; ok {
					continue
				}
				t, err := n.newTracker(k, scripts, files, procs)
				if err != nil {
					return fmt.Errorf("instance %q: %w", in.cfg.Name, err)
				}
				want[k] = t
			}
		}
	}
	// Remove trackers no longer wanted or whose spec changed; add new ones.
	for _, u := range n.tracker.States() {
		k := track.Key{Kind: u.Kind, Name: u.Name}
		t, ok := want[k]
		if ok && n.sameTracker(k, t) {
			delete(want, k) // keep the running one and its state
			continue
		}
		n.tracker.Remove(k.Kind, k.Name)
		delete(n.states, k)
	}
	for k, t := range want {
		if err := n.tracker.Add(t); err != nil {
			return err
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
	nc.VirtualServers = lbScripts(n.cfg.LB.VirtualServers)
	n.notifier.Update(nc)
	if n.fifo == nil || n.fifo.Path() != v.NotifyFIFO {
		if n.fifo != nil {
			n.fifo.Close()
			n.fifo = nil
		}
		if v.NotifyFIFO != "" {
			f, err := events.OpenFIFO(n.bus, n.log, events.FIFOConfig{Path: v.NotifyFIFO})
			if err != nil {
				return err
			}
			n.fifo = f
		}
	}
	for _, in := range n.insts {
		if in.core.State() != vrrp.StateInit {
			n.evaluate(in, now)
		}
	}
	return nil
}

// sameTracker reports whether the running tracker k has t's spec.
func (n *Node) sameTracker(k track.Key, t track.Tracker) bool {
	cur, ok := n.tracker.Tracker(k.Kind, k.Name)
	return ok && track.SameSpec(cur, t)
}

// setLinkState reads the instance interface's state for a new instance.
func (n *Node) setLinkState(in *instance) {
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
				sc.RealServers[kaRealServer(vs.Spec, vs.Spec.Reals[i].Key())] = events.RSScripts{Up: rs.NotifyUp, Down: rs.NotifyDown}
			}
		}
		out[vs.Spec.Name] = sc
	}
	return out
}
