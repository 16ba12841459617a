package router

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"vigil/config"
	"vigil/internal/safe"
	"vigil/telemetry/events"
	"vigil/vrrp"
	"vigil/vrrp/policy"
	"vigil/vrrp/track"
)

// Tracking, events and sync groups: trackers (scripts, files, processes,
// interfaces) feed vrrp/policy, which sets each instance's effective
// priority or holds it in FAULT; every state change becomes an event on an
// ordered bus (notify scripts, the notify FIFO, in-process subscribers);
// instances of a sync group move together (vrrp/policy.SyncGroup).

// trackRef is one object an instance tracks, with the instance's weight.
type trackRef struct {
	key     track.Key
	weight  int
	reverse bool
}

// group is a sync group at run time.
type group struct {
	cfg     *config.SyncGroup
	members []*instance
	state   string // the last state published for the group
}

// buildTracking creates the tracker manager, the event bus and its sinks,
// then the trackers, sync groups and notify settings of the configuration
// (applyTracking, shared with reload). Called from build, after the
// instances.
func (n *Router) buildTracking() error {
	n.states = map[track.Key]track.Update{}
	m, err := track.NewManager(n.log)
	if err != nil {
		return err
	}
	n.tracker = m
	n.bus = events.NewBus(n.log)
	n.notifier = events.NewNotifier(n.bus, n.log, events.NotifyConfig{})
	future := make([]planned, len(n.insts))
	for i, in := range n.insts {
		future[i] = planned{in, in.cfg}
	}
	tp, err := n.prepareTracking(n.cfg, future)
	if err != nil {
		return err
	}
	n.commitTracking(tp, time.Now())
	return nil
}

func (n *Router) newTracker(k track.Key, scripts map[string]*config.Script, files map[string]*config.File, procs map[string]*config.Process) (track.Tracker, error) {
	switch k.Kind {
	case policy.KindInterface:
		return track.NewInterface(track.InterfaceSpec{Name: k.Name}, n.log)
	case policy.KindScript:
		s := scripts[k.Name]
		if s == nil {
			return nil, fmt.Errorf("tracks unknown script %q", k.Name)
		}
		spec := track.ScriptSpec{Name: s.Name, Interval: s.Interval, Timeout: s.Timeout, Rise: s.Rise, Fall: s.Fall,
			InitFail: s.InitFail, User: s.User}
		if s.Shell {
			spec.Shell, spec.Command = true, s.Command
		} else {
			spec.Argv = s.Argv
		}
		return track.NewScript(spec, n.log)
	case policy.KindFile:
		f := files[k.Name]
		if f == nil {
			return nil, fmt.Errorf("tracks unknown file %q", k.Name)
		}
		return track.NewFile(track.FileSpec{Name: f.Name, Path: f.Path, Init: f.Init}, n.log)
	case policy.KindProcess:
		p := procs[k.Name]
		if p == nil {
			return nil, fmt.Errorf("tracks unknown process %q", k.Name)
		}
		spec := track.ProcessSpec{Name: p.Name, Process: p.Process, Quorum: p.Quorum, Delay: p.Delay}
		if p.Args != "" {
			spec.Args, spec.ArgMatch = strings.Fields(p.Args), track.ArgsExact
		}
		return track.NewProcess(spec, n.log)
	case policy.KindVirtualServer:
		return n.feeds.feed(k.Name), nil
	}
	return nil, fmt.Errorf("unknown tracker kind %q", k.Kind)
}

// vsFeeds are the trackers of virtual servers, by name: the load balancer
// sets their state, instances track them. A feed outlives reloads so the
// load balancer's latest report is never lost between the two.
type vsFeeds struct {
	mu sync.Mutex
	m  map[string]*track.Feed
}

// feed is the tracker of the virtual server name, made on first use.
func (f *vsFeeds) feed(name string) *track.Feed {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]*track.Feed{}
	}
	fd, ok := f.m[name]
	if !ok {
		// Until the checks report, a service counts as up, as keepalived
		// starts real servers up (unless alpha).
		fd = track.NewFeed(policy.KindVirtualServer, name, track.Update{Up: true, Detail: "not checked yet"})
		f.m[name] = fd
	}
	return fd
}

// Set reports a virtual server's quorum to the instances tracking it.
func (f *vsFeeds) Set(name string, up bool, detail string) { f.feed(name).Set(up, detail) }

// runTracking starts the trackers and applies their updates until ctx ends.
func (n *Router) runTracking(ctx context.Context) {
	updates := make(chan track.Update, 16)
	go func() {
		if err := n.tracker.Run(ctx, updates); err != nil {
			n.log.Error("trackers stopped", "err", err)
		}
	}()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case u := <-updates:
				if !n.trackerChanged(u) {
					return
				}
			}
		}
	}()
}

// trackerChanged applies one tracker update; false once the node stops.
func (n *Router) trackerChanged(u track.Update) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	defer safe.Recover(n.log, "tracking", n.fail)
	if n.stopping {
		return false
	}
	key := track.Key{Kind: u.Kind, Name: u.Name}
	prev, had := n.states[key]
	n.states[key] = u
	if !had || prev.Up != u.Up || prev.Value != u.Value {
		n.log.Info("tracker changed", "tracker", key.String(), "up", u.Up, "value", u.Value, "detail", u.Detail)
	}
	now := time.Now()
	for _, in := range n.insts {
		for _, r := range in.tracks {
			if r.key == key {
				n.evaluate(in, now)
				break
			}
		}
	}
	n.rearm()
	return true
}

// evaluate recomputes the instance's effective priority and tracker fault
// from the current tracker states, and the drain (a drained node runs at
// DrainPriority). Called with n.mu held (or before Run).
func (n *Router) evaluate(in *instance, now time.Time) {
	prio := in.cfg.Priority
	in.trackFault = ""
	if len(in.tracks) > 0 {
		trs := make([]policy.Tracker, 0, len(in.tracks))
		for _, r := range in.tracks {
			u := n.states[r.key]
			trs = append(trs, policy.Tracker{Name: r.key.Name, Kind: r.key.Kind, Weight: r.weight, Reverse: r.reverse, Up: u.Up, Value: u.Value})
		}
		res := policy.Effective(in.cfg.Priority, trs)
		if res.Fault {
			in.trackFault = res.Reason
		}
		prio = res.Priority
	}
	if n.drained {
		prio = DrainPriority
	}
	if in.trackFault == "" && prio != in.core.Priority() && !in.core.Config().Owner() {
		from := in.core.Priority()
		acts, err := in.core.SetPriority(now, prio)
		if err != nil {
			n.log.Error("setting the effective priority", "vrrp_instance", in.cfg.Name, "err", err)
		} else {
			n.log.Info("effective priority changed", "vrrp_instance", in.cfg.Name, "from", from, "to", prio, "drained", n.drained)
			in.met.PriorityChanged(prio)
			n.do(in, acts)
		}
	}
	if len(in.tracks) > 0 {
		n.applyFault(in, now)
	}
}

// ownFault reports the instance's own reason to be in FAULT ("" = none).
func (in *instance) ownFault() vrrp.Cause {
	switch {
	case in.ifDown:
		return vrrp.CauseInterfaceDown
	case in.noSrc:
		return vrrp.CauseNoSource
	case in.trackFault != "":
		return vrrp.CauseTrackerFault
	}
	return ""
}

// applyFault moves the instance into or out of FAULT from its own state and
// its group's. Called with n.mu held (or before the instances run).
func (n *Router) applyFault(in *instance, now time.Time) {
	own := in.ownFault()
	cause := own
	if cause == "" && in.groupFault {
		cause = vrrp.CauseSyncGroup
	}
	n.do(in, in.core.SetFault(now, cause != "", cause))
	if in.core.State() == vrrp.StateFault && cause != "" && in.faultCause != "" && cause != in.faultCause {
		// Still in FAULT, for another reason now (the link came back but
		// its address is not usable yet, say): status shows the current
		// reason, the log says when it changed.
		n.log.Info("vrrp instance still in fault", "vrrp_instance", in.cfg.Name, "reason", string(cause), "previous_reason", string(in.faultCause))
		in.faultCause = cause
	}
	if in.group != nil && (own != "") != in.lastOwnFault {
		in.lastOwnFault = own != ""
		n.syncGroup(in.group, in, "", "", now)
	}
}

// syncGroup applies the moves that keep a sync group together after
// changed went from one state to another.
func (n *Router) syncGroup(g *group, changed *instance, from, to string, now time.Time) {
	members := make([]policy.Member, len(g.members))
	for i, m := range g.members {
		members[i] = policy.Member{Name: m.cfg.Name, State: m.core.State().String(), OwnFault: m.ownFault() != ""}
	}
	for _, mv := range policy.SyncGroup(members, changed.cfg.Name, from, to) {
		var m *instance
		for _, x := range g.members {
			if x.cfg.Name == mv.Name {
				m = x
			}
		}
		switch mv.To {
		case "master":
			n.do(m, m.core.GoMaster(now, vrrp.CauseSyncGroup))
		case "backup":
			n.do(m, m.core.GoBackup(now, vrrp.CauseSyncGroup))
		case "fault":
			m.groupFault = true
			n.applyFault(m, now)
		case "unfault":
			m.groupFault = false
			n.applyFault(m, now)
		}
	}
	n.publishGroup(g, now)
}

// publishGroup publishes the group's state when it settles somewhere new:
// fault if any member is in FAULT, else master or backup when all agree.
func (n *Router) publishGroup(g *group, now time.Time) {
	state, all := "", true
	for _, m := range g.members {
		s := m.core.State().String()
		if s == "fault" {
			state, all = "fault", true
			break
		}
		if state == "" {
			state = s
		} else if s != state {
			all = false
		}
	}
	if !all || state == "" || state == g.state {
		return
	}
	from := g.state
	if from == "" {
		from = "init"
	}
	g.state = state
	n.bus.Publish(events.Event{Time: now, Kind: events.KindGroup, Name: g.cfg.Name, From: from, To: state, Reason: "sync_group"})
	n.log.Info("sync group state change", "sync_group", g.cfg.Name, "from", from, "to", state)
}

func trackKey(kind, name string) track.Key {
	return track.Key{Kind: policy.Kind(kind), Name: name}
}

// SetVirtualServer reports a virtual server's quorum (from the load
// balancer) to the instances that track it.
func (n *Router) SetVirtualServer(name string, up bool, detail string) { n.feeds.Set(name, up, detail) }

// Publish sends an event to the bus the router's notify scripts and FIFO
// listen on (the load balancer's virtual and real server changes).
func (n *Router) Publish(e events.Event) { n.bus.Publish(e) }

// FleetAdvert is split-brain arbitration's input (vrrp.Instance.FleetAdvert):
// gossip reports that m, another live vigil node, is master of the named
// instance's virtual router, and was last known alive at at. The caller feeds
// it while the report is fresh.
func (n *Router) FleetAdvert(instance string, at time.Time, m vrrp.FleetMaster) {
	n.mu.Lock()
	defer n.mu.Unlock()
	defer safe.Recover(n.log, "vrrp_fleet_advert", n.fail)
	if n.stopping {
		return
	}
	for _, in := range n.insts {
		if in.cfg.Name == instance {
			n.do(in, in.core.FleetAdvert(at, m))
			n.rearm()
			return
		}
	}
}
