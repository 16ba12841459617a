package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"vigil/config"
	"vigil/gossip"
	"vigil/vrrp"
	"vigil/vrrp/router"
)

// Coordinated handoff and drain (issue 14). `vigil vrrp failover` on any
// member reaches the master of the instance's virtual router (a gossip
// call); the master picks the successor (gossip.Successors: the best live
// BACKUP, or the one named), checks that the normal VRRP rules would let
// it keep mastership (gossip.HandoffProblems), tells it to expect the
// handoff (a call: it then takes over on the resignation itself instead
// of after Skew_Time), and resigns with a priority-0 advert. keepalived
// peers see an ordinary resignation. `vigil drain` does that for every
// instance a node is master of and holds it at router.DrainPriority until
// `vigil undrain`; the drain is kept in the state directory and shown
// fleet-wide (the node summary's Drained).

// Call methods between members.
const (
	callExpect   = "vrrp.expect"   // expectRequest → nothing
	callFailover = "vrrp.failover" // failoverRequest → HandoffResult
	callDrain    = "node.drain"    // drainRequest → DrainResult
)

// expectWithin is how long a successor waits for the resignation it was
// told of; after it, a resignation is an ordinary one again.
const expectWithin = 2 * time.Second

// confirmWait bounds how long a handoff waits to see, by gossip, the
// successor report MASTER.
const confirmWait = 5 * time.Second

// ErrNoInstance is returned for an instance this node does not run.
var ErrNoInstance = router.ErrNoInstance

// ErrHandoffRefused refuses a handoff or drain; the error says why.
var ErrHandoffRefused = errors.New("handoff refused")

// HandoffResult is one instance's handoff. The JSON keys are stable.
type HandoffResult struct {
	Instance string `json:"instance"`
	From     string `json:"from"`
	To       string `json:"to"`
	// ToInstance is the successor's instance of the virtual router.
	ToInstance string `json:"to_instance"`
	ToPriority uint8  `json:"to_priority"`
	// ConfirmedMS is how long after the resignation the successor was
	// seen MASTER by gossip (-1: not within the wait). The takeover on
	// the wire is faster: gossip carries the news after it.
	ConfirmedMS float64 `json:"confirmed_ms"`
	// Warnings are the problems --force overrode.
	Warnings []string `json:"warnings,omitempty"`
}

// DrainResult is `vigil drain` / `vigil undrain`. The JSON keys are stable.
type DrainResult struct {
	Node     string          `json:"node"`
	Drained  bool            `json:"drained"`
	Changed  bool            `json:"changed"`
	Handoffs []HandoffResult `json:"handoffs,omitempty"`
	Warnings []string        `json:"warnings,omitempty"`
}

type expectRequest struct {
	Instance string        `json:"instance"`
	From     netip.Addr    `json:"from"`
	Within   time.Duration `json:"within"`
}

type failoverRequest struct {
	Instance string `json:"instance"`
	To       string `json:"to,omitempty"`
	Force    bool   `json:"force,omitempty"`
}

type drainRequest struct {
	Drain bool `json:"drain"`
	Force bool `json:"force,omitempty"`
}

// refused builds an ErrHandoffRefused listing the problems.
func refused(what string, problems []string) error {
	return fmt.Errorf("%w: %s:\n%s", ErrHandoffRefused, what, strings.Join(problems, "\n"))
}

// refusal is a refused handoff's reason, without the ErrHandoffRefused
// prefix (a member's answer, or a problem listed among others).
func refusal(msg string) string { return strings.TrimPrefix(msg, ErrHandoffRefused.Error()+": ") }

// Failover hands the mastership of instance's virtual router to a
// successor (to, or the best one), from whichever member is master.
func (n *Node) Failover(ctx context.Context, instance, to string, force bool) (HandoffResult, error) {
	f := n.fleet
	if f == nil {
		return HandoffResult{}, ErrNoFleet
	}
	master, ms, ok := gossip.MasterOf(instance, f.instancesByNode())
	if !ok {
		return HandoffResult{}, fmt.Errorf("%w: no live member reports MASTER for %q", ErrHandoffRefused, instance)
	}
	if master == f.self {
		return n.failoverHere(ctx, ms.Name, to, force)
	}
	var res HandoffResult
	err := f.callJSON(ctx, master, callFailover, failoverRequest{Instance: ms.Name, To: to, Force: force}, &res)
	return res, err
}

// failoverHere is Failover on the master.
func (n *Node) failoverHere(ctx context.Context, instance, to string, force bool) (HandoffResult, error) {
	f := n.fleet
	hi, err := n.router.Handoff(instance)
	if err != nil {
		return HandoffResult{}, err
	}
	if hi.State != vrrp.StateMaster {
		return HandoffResult{}, fmt.Errorf("%w: %s is %s here, not master", ErrHandoffRefused, instance, hi.State)
	}
	if hi.Owner {
		return HandoffResult{}, fmt.Errorf("%w: %s is the address owner (priority 255): it takes the router back at once", ErrHandoffRefused, instance)
	}
	succ, cands, err := f.successor(instance, to)
	if err != nil {
		return HandoffResult{}, err
	}
	old := gossip.Resigning{Node: f.self, Priority: hi.Priority, Preempt: hi.Preempt}
	if n.router.Drained() {
		old.Priority = router.DrainPriority
	}
	problems := gossip.HandoffProblems(old, succ, cands)
	if len(problems) > 0 && !force {
		return HandoffResult{}, refused(fmt.Sprintf("%s would not keep %s (--force to move it anyway)", succ.Node, instance), problems)
	}
	if err := f.tellSuccessor(ctx, succ, hi.Primary); err != nil {
		return HandoffResult{}, err
	}
	start := time.Now()
	if err := n.router.Resign(instance); err != nil {
		return HandoffResult{}, err
	}
	res := HandoffResult{Instance: instance, From: f.self, To: succ.Node, ToInstance: succ.Instance, ToPriority: succ.Priority, Warnings: problems}
	f.poke()
	res.ConfirmedMS = f.confirm(ctx, succ, start)
	f.log.Info("vrrp handoff", "vrrp_instance", instance, "to", succ.Node, "to_priority", succ.Priority,
		"confirmed_ms", res.ConfirmedMS, "forced", len(problems) > 0)
	return res, nil
}

// successor picks the successor of this node's instance: to, or the best.
func (f *fleet) successor(instance, to string) (gossip.Candidate, []gossip.Candidate, error) {
	nodes := f.instancesByNode()
	i := slices.IndexFunc(nodes[f.self], func(s gossip.InstanceSummary) bool { return s.Name == instance })
	if i < 0 {
		return gossip.Candidate{}, nil, fmt.Errorf("%w: %q", router.ErrNoInstance, instance)
	}
	cands := gossip.Successors(f.self, nodes[f.self][i], nodes, f.drainedMembers())
	if to == "" {
		if len(cands) == 0 {
			return gossip.Candidate{}, nil, fmt.Errorf("%w: no other live member could take over %s (none is BACKUP for its virtual router and undrained)", ErrHandoffRefused, instance)
		}
		return cands[0], cands, nil
	}
	j := slices.IndexFunc(cands, func(c gossip.Candidate) bool { return c.Node == to })
	if j < 0 {
		return gossip.Candidate{}, nil, fmt.Errorf("%w: %s cannot take over %s: it is not a live, undrained member in BACKUP for its virtual router", ErrHandoffRefused, to, instance)
	}
	return cands[j], cands, nil
}

// drainedMembers returns the live members whose summary says drained.
func (f *fleet) drainedMembers() map[string]bool {
	out := map[string]bool{}
	for _, r := range f.cl.Rows(gossip.KindNode) {
		if r.Deleted || !f.live(r.Origin) {
			continue
		}
		if s, err := gossip.DecodeNodeSummary(r.Value); err == nil && s.Drained {
			out[r.Origin] = true
		}
	}
	return out
}

// tellSuccessor tells succ to take over on this node's resignation.
func (f *fleet) tellSuccessor(ctx context.Context, succ gossip.Candidate, from netip.Addr) error {
	err := f.callJSON(ctx, succ.Node, callExpect, expectRequest{Instance: succ.Instance, From: from, Within: expectWithin}, nil)
	if err != nil {
		return fmt.Errorf("%w: telling %s to take over %s: %w", ErrHandoffRefused, succ.Node, succ.Instance, err)
	}
	return nil
}

// confirm waits until gossip shows succ MASTER; milliseconds since start,
// or -1.
func (f *fleet) confirm(ctx context.Context, succ gossip.Candidate, start time.Time) float64 {
	ctx, cancel := context.WithTimeout(ctx, confirmWait)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		for _, s := range f.instancesByNode()[succ.Node] {
			if s.Name == succ.Instance && s.State == gossip.StateMaster {
				return float64(time.Since(start).Microseconds()) / 1000
			}
		}
		select {
		case <-ctx.Done():
			return -1
		case <-t.C:
		}
	}
}

// callJSON calls method on a member with a JSON body and decodes the
// answer into out (nil: ignored). An answer the member refused comes back
// as ErrHandoffRefused with its text.
func (f *fleet) callJSON(ctx context.Context, node, method string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	b, err := f.cl.Call(ctx, node, method, body)
	var re *gossip.RemoteError
	switch {
	case errors.As(err, &re):
		return fmt.Errorf("%w: %s: %s", ErrHandoffRefused, node, refusal(re.Message))
	case err != nil:
		return err
	case out == nil:
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding %s's answer to %s: %w", node, method, err)
	}
	return nil
}

// serve answers the members' calls (gossip.ClusterConfig.Serve).
func (n *Node) serve(ctx context.Context, from, method string, body []byte) ([]byte, error) {
	switch method {
	case callExpect:
		var r expectRequest
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, fmt.Errorf("bad %s request: %w", method, err)
		}
		if n.router.Drained() {
			return nil, fmt.Errorf("%s is drained", n.fleet.self)
		}
		if err := n.router.ExpectHandoff(r.Instance, r.From, min(r.Within, expectWithin)); err != nil {
			return nil, err
		}
		n.fleet.log.Info("told to take over on a handoff", "vrrp_instance", r.Instance, "from", from, "resigning", r.From)
		return nil, nil
	case callFailover:
		var r failoverRequest
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, fmt.Errorf("bad %s request: %w", method, err)
		}
		res, err := n.failoverHere(ctx, r.Instance, r.To, r.Force)
		if err != nil {
			return nil, err
		}
		return json.Marshal(res)
	case callDrain:
		var r drainRequest
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, fmt.Errorf("bad %s request: %w", method, err)
		}
		res, err := n.drainHere(ctx, r.Drain, r.Force)
		if err != nil {
			return nil, err
		}
		return json.Marshal(res)
	}
	return nil, gossip.ErrNotFound
}

// Drain drains (or, drain false, undrains) the member target ("" = this
// node).
func (n *Node) Drain(ctx context.Context, target string, drain, force bool) (DrainResult, error) {
	f := n.fleet
	if f == nil {
		return DrainResult{}, ErrNoFleet
	}
	if target == "" || target == f.self {
		return n.drainHere(ctx, drain, force)
	}
	var res DrainResult
	err := f.callJSON(ctx, target, callDrain, drainRequest{Drain: drain, Force: force}, &res)
	return res, err
}

// handoffPlan is one instance a drain hands off.
type handoffPlan struct {
	instance string
	from     netip.Addr
	succ     gossip.Candidate
}

// drainHere drains or undrains this node.
func (n *Node) drainHere(ctx context.Context, drain, force bool) (DrainResult, error) {
	f := n.fleet
	n.drainMu.Lock()
	defer n.drainMu.Unlock()
	res := DrainResult{Node: f.self, Drained: drain}
	if n.router.Drained() == drain {
		return res, nil
	}
	if !drain {
		if err := n.keepDrained(false); err != nil {
			return res, err
		}
		n.router.SetDrained(false)
		res.Changed = true
		f.poke()
		f.log.Info("node undrained")
		return res, nil
	}
	var plans []handoffPlan
	var problems []string
	for _, is := range n.router.Status().Instances {
		if is.State != vrrp.StateMaster.String() {
			continue
		}
		hi, err := n.router.Handoff(is.Name)
		if err != nil {
			return res, err
		}
		if hi.Owner {
			problems = append(problems, fmt.Sprintf("%s is the address owner (priority 255): it stays master", is.Name))
			continue
		}
		succ, _, err := f.successor(is.Name, "")
		if err != nil {
			problems = append(problems, refusal(err.Error()))
			continue
		}
		plans = append(plans, handoffPlan{instance: is.Name, from: hi.Primary, succ: succ})
	}
	if len(problems) > 0 && !force {
		return res, refused("no other member could take over (--force to drain anyway: VRRP then elects without coordination)", problems)
	}
	res.Warnings = problems
	told := plans[:0]
	for _, p := range plans {
		if err := f.tellSuccessor(ctx, p.succ, p.from); err != nil {
			if !force {
				return res, err
			}
			res.Warnings = append(res.Warnings, err.Error())
			continue
		}
		told = append(told, p)
	}
	if err := n.keepDrained(true); err != nil {
		return res, err
	}
	start := time.Now()
	n.router.SetDrained(true)
	res.Changed = true
	f.poke()
	for _, p := range told {
		h := HandoffResult{Instance: p.instance, From: f.self, To: p.succ.Node, ToInstance: p.succ.Instance, ToPriority: p.succ.Priority}
		h.ConfirmedMS = f.confirm(ctx, p.succ, start)
		res.Handoffs = append(res.Handoffs, h)
	}
	f.log.Info("node drained", "handoffs", len(res.Handoffs), "warnings", len(res.Warnings))
	return res, nil
}

// drainFile is where a drain is kept across restarts.
func drainFile(cfg *config.Config) string { return filepath.Join(cfg.Fleet.StateDir, "drained") }

// keepDrained records the drain (or removes the record).
func (n *Node) keepDrained(drained bool) error {
	path := drainFile(n.fleet.startCfg)
	if !drained {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing the drain record: %w", err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("keeping the drain: %w", err)
	}
	if err := os.WriteFile(path, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return fmt.Errorf("keeping the drain: %w", err)
	}
	return nil
}

// startsDrained reports whether a drain was recorded (a node with a
// gossip section only: drain is a fleet operation).
func startsDrained(cfg *config.Config) bool {
	if cfg.Gossip == nil {
		return false
	}
	_, err := os.Stat(drainFile(cfg))
	return err == nil
}
