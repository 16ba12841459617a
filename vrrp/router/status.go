package router

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"vigil/config"
	"vigil/vrrp"
)

// Status is a snapshot of the running VRRP instances, the VRRP part of
// `vigil status` and the admin API.
type Status struct {
	Config    *config.Config // the configuration they run
	StartedAt time.Time
	Instances []InstanceStatus
	Drained   bool // every instance runs at DrainPriority (SetDrained)
}

// InstanceStatus is one VRRP instance.
type InstanceStatus struct {
	Name              string   `json:"name"`
	Interface         string   `json:"interface"`
	VRID              uint8    `json:"vrid"`
	Family            string   `json:"family"` // ipv4 or ipv6
	Version           uint8    `json:"version"`
	Mode              string   `json:"mode"` // multicast or unicast
	Peers             []string `json:"peers,omitempty"`
	Source            string   `json:"source,omitempty"` // our advert source address; empty while there is none
	State             string   `json:"state"`            // init, backup, master, fault
	Fault             string   `json:"fault,omitempty"`
	BasePriority      uint8    `json:"base_priority"`
	EffectivePriority uint8    `json:"effective_priority"`
	// Master is the address of the master we last heard (ours as master).
	Master         string `json:"master,omitempty"`
	MasterPriority uint8  `json:"master_priority,omitempty"`
	// AdvertInterval is ours; MasterAdvertInterval the current master's
	// (learned in v3). Seconds.
	AdvertInterval       float64     `json:"advert_interval_seconds"`
	MasterAdvertInterval float64     `json:"master_advert_interval_seconds"`
	MasterDownInterval   float64     `json:"master_down_interval_seconds"`
	Preempt              bool        `json:"preempt"`
	Accept               bool        `json:"accept"`
	VIPs                 []VIPStatus `json:"vips"`
	LastTransition       time.Time   `json:"last_transition,omitzero"`
	LastReason           string      `json:"last_reason,omitempty"`
	// LastTrace is the W3C traceparent of the last transition's span
	// (empty when tracing is off): gossip carries it so that the next
	// master's span links to it.
	LastTrace string `json:"last_transition_trace,omitempty"`
	SyncGroup string `json:"sync_group,omitempty"`
	VMAC      string `json:"vmac,omitempty"` // the macvlan carrying the virtual MAC
	// Trackers are the objects the instance tracks, with its weights.
	Trackers []TrackerStatus `json:"trackers,omitempty"`
}

// TrackerStatus is one tracked object as an instance sees it.
type TrackerStatus struct {
	Kind    string `json:"kind"` // interface, script, file, process
	Name    string `json:"name"`
	Up      bool   `json:"up"`
	Value   int    `json:"value,omitempty"` // files
	Weight  int    `json:"weight"`
	Reverse bool   `json:"reverse,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// VIPStatus is one virtual address of an instance.
type VIPStatus struct {
	Address string `json:"address"` // with prefix length, e.g. 192.0.2.100/24
	Dev     string `json:"dev"`
	Label   string `json:"label,omitempty"`
}

// String renders it as `ip addr` would: "192.0.2.100/24 dev eth0".
func (v VIPStatus) String() string {
	s := v.Address + " dev " + v.Dev
	if v.Label != "" {
		s += " label " + v.Label
	}
	return s
}

// Status returns a snapshot of the instances. It is safe to call while Run runs.
func (n *Router) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := Status{Config: n.cfg, StartedAt: n.started, Instances: make([]InstanceStatus, 0, len(n.insts)), Drained: n.drained}
	for _, in := range n.insts {
		c := in.core.Config()
		s := in.core.Status()
		is := InstanceStatus{
			Name: c.Name, Interface: in.cfg.Interface, VRID: c.VRID, Family: "ipv" + strconv.Itoa(in.sock.family), Version: c.Version,
			Mode: "multicast", State: s.State.String(),
			BasePriority: c.Priority, EffectivePriority: s.Priority,
			AdvertInterval: c.AdvertInterval.Seconds(), MasterAdvertInterval: s.MasterAdverInterval.Seconds(),
			MasterDownInterval: s.MasterDownInterval.Seconds(),
			Preempt:            c.Preempt, Accept: c.Accept || c.Owner(),
			LastTransition: s.LastTransition, LastReason: string(in.lastCause), LastTrace: in.lastTrace,
		}
		if in.src.IsValid() { // none yet: waiting in FAULT for an address
			is.Source = in.src.String()
		}
		if c.Unicast {
			is.Mode = "unicast"
			is.Peers = addrStrings(c.Peers)
		}
		if s.State == vrrp.StateFault {
			is.Fault = string(cmp.Or(in.faultCause, in.lastCause))
		}
		if s.Master.IsValid() {
			is.Master, is.MasterPriority = s.Master.String(), s.MasterPriority
		}
		for _, v := range in.vips {
			is.VIPs = append(is.VIPs, VIPStatus{Address: v.Prefix.String(), Dev: v.Dev, Label: v.Label})
		}
		if in.group != nil {
			is.SyncGroup = in.group.cfg.Name
		}
		is.VMAC = in.cfg.VMAC
		for _, r := range in.tracks {
			u := n.states[r.key]
			is.Trackers = append(is.Trackers, TrackerStatus{Kind: string(r.key.Kind), Name: r.key.Name, Up: u.Up,
				Value: u.Value, Weight: r.weight, Reverse: r.reverse, Detail: u.Detail})
		}
		st.Instances = append(st.Instances, is)
	}
	return st
}

func addrStrings(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// Alive reports whether the node's event loop answers: it takes the lock
// every packet, timer and reload takes, bounded by ctx. The systemd
// watchdog pings only while it does, so a wedged loop gets the daemon
// restarted instead of holding VIPs it no longer defends.
func (n *Router) Alive(ctx context.Context) error {
	select {
	case <-n.failed:
		return n.failErr
	default:
	}
	got := make(chan struct{})
	go func() {
		n.mu.Lock()
		n.mu.Unlock()
		close(got)
	}()
	select {
	case <-got:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the VRRP event loop did not answer: %w", ctx.Err())
	}
}
