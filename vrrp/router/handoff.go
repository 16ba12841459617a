package router

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"vigil/internal/safe"
	"vigil/vrrp"
)

// Coordinated handoff and drain (issue 14): node picks a successor over
// gossip and tells it to expect the handoff (ExpectHandoff on the
// successor's router); then this router resigns (Resign, or SetDrained
// for every instance it is master of). The wire carries an ordinary
// priority-0 advert and the successor's ordinary first advert.

// DrainPriority is the effective priority of every instance of a drained
// node (but an address owner's, fixed at 255): the lowest a Backup can
// have, so any other live node wins the elections, while a drained node
// still takes over when it is the last one left.
const DrainPriority = 1

// ErrNoInstance is returned for an instance name the router does not run.
var ErrNoInstance = errors.New("no such VRRP instance")

// ErrNotMaster is returned by Resign for an instance that is not master.
var ErrNotMaster = errors.New("the instance is not master here")

// HandoffInfo is what a handoff needs to know of one local instance.
type HandoffInfo struct {
	State    vrrp.State
	Priority uint8
	Preempt  bool
	Owner    bool
	// Primary is the address its adverts come from (what a successor
	// expects the resignation from).
	Primary netip.Addr
}

// withInstance runs f on the named instance under the router's lock.
func (n *Router) withInstance(name string, f func(in *instance, now time.Time) error) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	defer safe.Recover(n.log, "vrrp_handoff", n.fail)
	if n.stopping {
		return errors.New("the node is stopping")
	}
	for _, in := range n.insts {
		if in.cfg.Name == name {
			err := f(in, time.Now())
			n.rearm()
			return err
		}
	}
	return fmt.Errorf("%w: %q", ErrNoInstance, name)
}

// Handoff returns what a handoff needs to know of the named instance.
func (n *Router) Handoff(name string) (HandoffInfo, error) {
	var hi HandoffInfo
	err := n.withInstance(name, func(in *instance, _ time.Time) error {
		c := in.core.Config()
		hi = HandoffInfo{State: in.core.State(), Priority: in.core.Priority(), Preempt: c.Preempt, Owner: c.Owner(), Primary: in.src}
		return nil
	})
	return hi, err
}

// ExpectHandoff tells the named Backup that the master at from will
// resign for it within the given time: it then takes over on that
// resignation at once (vrrp.Instance.ExpectHandoff).
func (n *Router) ExpectHandoff(name string, from netip.Addr, within time.Duration) error {
	return n.withInstance(name, func(in *instance, now time.Time) error {
		if err := in.core.ExpectHandoff(from, now.Add(within)); err != nil {
			return fmt.Errorf("vrrp instance %q: %w", name, err)
		}
		n.log.Info("vrrp instance expects a handoff", "vrrp_instance", name, "from", from, "within", within)
		return nil
	})
}

// Resign makes the named master resign at once for a successor
// (vrrp.Instance.Resign): a priority-0 advert, addresses removed, BACKUP.
func (n *Router) Resign(name string) error {
	return n.withInstance(name, func(in *instance, now time.Time) error {
		acts := in.core.Resign(now, vrrp.CauseHandoff)
		if len(acts) == 0 {
			return fmt.Errorf("vrrp instance %q: %w (%s)", name, ErrNotMaster, in.core.State())
		}
		n.do(in, acts)
		return nil
	})
}

// SetDrained drains or undrains the node: drained, every instance runs at
// DrainPriority and those that are master resign first (their successors
// told by the caller); undrained, the priorities come back (a Backup with
// preemption then takes its mastership back by the normal rules). It
// returns the instances that resigned.
func (n *Router) SetDrained(drained bool) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	defer safe.Recover(n.log, "vrrp_drain", n.fail)
	if n.stopping || n.drained == drained {
		n.drained = drained
		return nil
	}
	n.drained = drained
	now := time.Now()
	var resigned []string
	for _, in := range n.insts {
		if drained && !in.core.Config().Owner() {
			if acts := in.core.Resign(now, vrrp.CauseHandoff); len(acts) > 0 {
				n.do(in, acts)
				resigned = append(resigned, in.cfg.Name)
			}
		}
		if in.core.State() != vrrp.StateInit {
			n.evaluate(in, now)
		}
	}
	n.rearm()
	n.log.Info("node drain changed", "drained", drained, "resigned", resigned)
	return resigned
}

// Drained reports whether the node is drained.
func (n *Router) Drained() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.drained
}
