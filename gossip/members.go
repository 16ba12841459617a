package gossip

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Member states, as `vigil members` shows them.
const (
	StateAlive   = "alive"
	StateSuspect = "suspect"
	StateDead    = "dead"
	StateLeft    = "left"
)

// Member is one node of the fleet as this node sees it.
type Member struct {
	Name  string
	Addr  netip.AddrPort
	State string // StateAlive, StateSuspect, StateDead or StateLeft
	Since time.Time
}

// peer is the driver's record of a member (memberlist's own is behind its
// lock and its Node.State is never filled in v0.7.0).
type peer struct {
	node  memberlist.Node
	state string
	since time.Time
}

// The node meta every vigil node advertises in its alive messages:
//
//	"vigil" | protocol version (1 byte) | flags (1 byte: bit 0 leaving) | cluster name
//
// The alive delegate refuses a peer without it, of an incompatible
// version, or of another cluster: belt and braces with memberlist's Label,
// which a misconfigured or older peer might lack.
const (
	metaMagic        = "vigil"
	metaProtocol     = 1 // what this build speaks
	metaProtocolMin  = 1 // the oldest peer it understands
	metaFlagLeaving  = 1
	metaHeaderLength = len(metaMagic) + 2
)

func encodeMeta(cluster string, leaving bool) []byte {
	var flags byte
	if leaving {
		flags |= metaFlagLeaving
	}
	b := append([]byte(metaMagic), metaProtocol, flags)
	return append(b, cluster...)
}

// ErrPeerRefused is returned (wrapped) by the alive delegate for a peer it
// keeps out of the fleet.
var ErrPeerRefused = errors.New("peer refused")

// checkMeta tells whether a peer advertising meta may join this fleet.
func checkMeta(meta []byte, cluster string) error {
	if len(meta) < metaHeaderLength || !bytes.HasPrefix(meta, []byte(metaMagic)) {
		return fmt.Errorf("not a vigil node (no vigil meta): %w", ErrPeerRefused)
	}
	if v := meta[len(metaMagic)]; v < metaProtocolMin {
		return fmt.Errorf("gossip protocol %d, this node speaks %d..%d: %w", v, metaProtocolMin, metaProtocol, ErrPeerRefused)
	}
	// A newer peer may speak a higher version as long as it still
	// understands ours: that is its side's check (its own min).
	if got := string(meta[metaHeaderLength:]); got != cluster {
		return fmt.Errorf("cluster %q, this node is in %q: %w", got, cluster, ErrPeerRefused)
	}
	return nil
}

func metaLeaving(meta []byte) bool {
	return len(meta) >= metaHeaderLength && bytes.HasPrefix(meta, []byte(metaMagic)) && meta[len(metaMagic)+1]&metaFlagLeaving != 0
}

// maxRefusalLogs bounds the names remembered so that a refusal is logged
// once per peer; past it the memory starts over (a refused peer may then be
// logged again, never unboundedly often).
const maxRefusalLogs = 256

// aliveDelegate is the Cluster as memberlist's AliveDelegate. memberlist
// calls it with its node lock held: it only counts and logs.
type aliveDelegate Cluster

func (a *aliveDelegate) NotifyAlive(n *memberlist.Node) error {
	err := checkMeta(n.Meta, a.cluster)
	if err == nil {
		return nil
	}
	if (*Cluster)(a).countRefusal(n.Name) {
		a.log.Warn("gossip peer refused", "peer", n.Name, "addr", net.JoinHostPort(n.Addr.String(), fmt.Sprint(n.Port)), "err", err)
	}
	return err
}

// countRefusal counts one refusal and reports whether it is the first of
// key (a peer, or an address and reason) since the memory of logged keys
// last started over: the one to log.
func (c *Cluster) countRefusal(key string) bool {
	c.refused.Add(1)
	c.refusedMu.Lock()
	defer c.refusedMu.Unlock()
	if _, logged := c.refusedLog[key]; logged {
		return false
	}
	if len(c.refusedLog) >= maxRefusalLogs {
		clear(c.refusedLog)
	}
	c.refusedLog[key] = struct{}{}
	return true
}

// Refused counts what was refused from peers of another fleet: alive
// messages of another cluster or protocol (the alive delegate), packets
// and streams of another cluster label or gossip key (memberlist drops
// them before any delegate; its log line tells).
func (c *Cluster) Refused() uint64 { return c.refused.Load() }

// refuse counts traffic refused from host and logs it once per host and
// reason (memberlist's line, detail, included).
func (c *Cluster) refuse(host, reason, detail string) {
	if c.countRefusal(reason + "\x00" + host) {
		c.log.Warn("gossip traffic of another fleet refused (logged once per address)", "addr", host, "reason", reason, "detail", detail)
	}
}

// pingDelegate is the Cluster as memberlist's PingDelegate: a completed
// probe of a suspect tells that it is alive again (memberlist reports no
// event for a refuted suspicion).
type pingDelegate Cluster

func (p *pingDelegate) AckPayload() []byte { return nil }
func (p *pingDelegate) NotifyPingComplete(n *memberlist.Node, _ time.Duration, _ []byte) {
	(*Cluster)(p).enqueue(evAck, n)
}

// logTap passes memberlist's log lines on and notices the one that says
// this node's probe made a member suspect: memberlist v0.7.0 exposes
// suspicion nowhere else (Members() includes suspects but never fills in
// Node.State). Suspicions other nodes raise are not seen.
type logTap struct {
	c    *Cluster
	next *log.Logger
}

var (
	suspectPrefix = []byte("memberlist: Suspect ")
	suspectSuffix = []byte(" has failed, no acks received")
)

func (t logTap) Write(p []byte) (int, error) {
	if name, ok := suspectName(p); ok {
		t.c.enqueue(evSuspect, &memberlist.Node{Name: name})
	}
	if host, reason, ok := refusedTraffic(p); ok {
		// memberlist logs each such packet and stream: a peer of another
		// fleet would write a line per probe. Counted, and logged once.
		t.c.refuse(host, reason, string(bytes.TrimSpace(p)))
		return len(p), nil
	}
	return len(p), t.next.Output(2, string(p))
}

// refusedTraffic recognises memberlist's lines for a packet or stream it
// dropped because it came from another fleet: another cluster label, or
// encrypted with no key of this keyring (or not at all). host is the
// sender's address without its port (a stream's port is ephemeral).
func refusedTraffic(p []byte) (host, reason string, ok bool) {
	switch {
	case bytes.Contains(p, []byte("with unacceptable label")):
		reason = "cluster label"
	case bytes.Contains(p, []byte("Decrypt packet failed")),
		bytes.Contains(p, []byte("failed to receive: ")) && bytes.Contains(p, []byte("decrypt")),
		bytes.Contains(p, []byte("failed to receive: ")) && bytes.Contains(p, []byte("encryption")):
		reason = "gossip key"
	default:
		return "", "", false
	}
	_, from, found := bytes.Cut(p, []byte("from="))
	if !found {
		return "", "", false
	}
	if i := bytes.IndexAny(from, " \n"); i >= 0 {
		from = from[:i]
	}
	host = string(from)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return host, reason, host != ""
}

func suspectName(p []byte) (string, bool) {
	_, rest, ok := bytes.Cut(p, suspectPrefix)
	if !ok {
		return "", false
	}
	name, _, ok := bytes.Cut(rest, suspectSuffix)
	return string(name), ok && len(name) > 0
}

type memberEventKind int

const (
	evJoin memberEventKind = iota
	evLeave
	evUpdate
	evSuspect // this node's probe failed
	evAck     // this node's probe succeeded
)

type memberEvent struct {
	kind memberEventKind
	node memberlist.Node
}

// enqueue queues a membership event without blocking (memberlist calls
// with its own locks held) and counts what a full queue drops.
func (c *Cluster) enqueue(kind memberEventKind, n *memberlist.Node) {
	select {
	case c.events <- memberEvent{kind: kind, node: *n}:
	default:
		c.dropped.Add(1)
	}
}

// membership applies one event, in Run.
func (c *Cluster) membership(e memberEvent, now time.Time) {
	name := e.node.Name
	c.mu.Lock()
	switch e.kind {
	case evLeave:
		c.store.NodeGone(name, now)
	case evJoin, evUpdate:
		c.store.NodeAlive(name)
	}
	c.mu.Unlock()

	c.peerMu.Lock()
	defer c.peerMu.Unlock()
	p, known := c.peers[name]
	set := func(state string) {
		if p.state != state {
			p.state, p.since = state, now
		}
	}
	switch e.kind {
	case evJoin, evUpdate:
		if e.kind == evJoin {
			delete(c.leavers, name)
		}
		if !known {
			p = &peer{}
			c.peers[name] = p
		}
		p.node = e.node
		set(StateAlive)
	case evLeave:
		if !known {
			return
		}
		p.node = e.node
		// A node that leaves gracefully first advertises the leaving flag
		// (stop): memberlist's event does not say dead from left.
		if metaLeaving(e.node.Meta) || c.leavers[name] {
			set(StateLeft)
		} else {
			set(StateDead)
		}
		delete(c.leavers, name)
	case evSuspect:
		if known && p.state == StateAlive {
			set(StateSuspect)
		}
	case evAck:
		if known && p.state == StateSuspect {
			set(StateAlive)
		}
	}
}

// expirePeers forgets the dead and left after grace.
func (c *Cluster) expirePeers(now time.Time, grace time.Duration) {
	c.peerMu.Lock()
	defer c.peerMu.Unlock()
	for name, p := range c.peers {
		if (p.state == StateDead || p.state == StateLeft) && now.Sub(p.since) >= grace {
			delete(c.peers, name)
		}
	}
}

func nodeAddr(n memberlist.Node) netip.AddrPort {
	a, _ := netip.AddrFromSlice(n.Addr)
	return netip.AddrPortFrom(a.Unmap(), n.Port)
}

// MemberStates returns every member this node knows, itself included,
// sorted by name: alive and suspect ones, and the dead and left for the
// store's grace period. Peers the alive delegate refused never appear.
func (c *Cluster) MemberStates() []Member {
	c.peerMu.Lock()
	defer c.peerMu.Unlock()
	out := make([]Member, 0, len(c.peers))
	for name, p := range c.peers {
		out = append(out, Member{Name: name, Addr: nodeAddr(p.node), State: p.state, Since: p.since})
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Ping sends a direct memberlist ping to a live member and returns the
// round-trip time: fresh evidence that the member is up (split-brain
// arbitration), independent of the probe schedule.
func (c *Cluster) Ping(name string) (time.Duration, error) {
	c.peerMu.Lock()
	p, ok := c.peers[name]
	var addr netip.AddrPort
	var state string
	if ok {
		addr, state = nodeAddr(p.node), p.state
	}
	c.peerMu.Unlock()
	switch {
	case !ok:
		return 0, fmt.Errorf("gossip: ping %s: not a member", name)
	case name == c.self:
		return 0, fmt.Errorf("gossip: ping %s: that is this node", name)
	case state == StateDead || state == StateLeft:
		return 0, fmt.Errorf("gossip: ping %s: member is %s", name, state)
	}
	rtt, err := c.ml.Ping(name, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return 0, fmt.Errorf("gossip: ping %s at %v: %w", name, addr, err)
	}
	// memberlist measures from after its send returned to the ack's
	// arrival stamp: on loopback the ack can beat the clock read.
	return max(rtt, 0), nil
}

// DefaultRejoin is how often Run retries the join list by default.
const DefaultRejoin = 30 * time.Second

// joinTargets returns the entries of the join list that are not live
// members (by address; an entry that is not an IP:port, a DNS name, is
// always retried: a join of a member is a harmless push/pull).
func joinTargets(join []string, live []netip.AddrPort) []string {
	var out []string
	for _, j := range join {
		if ap, err := netip.ParseAddrPort(j); err == nil && slices.Contains(live, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())) {
			continue
		}
		out = append(out, j)
	}
	return out
}

// rejoinLoop joins the join list at once, then every interval retries the
// entries that are not live members: memberlist forgets the dead after
// GossipToTheDead and never contacts them again, so without this a healed
// partition stays two fleets. A negative interval joins once only.
func (c *Cluster) rejoinLoop(ctx context.Context, every time.Duration) {
	if len(c.join) == 0 {
		return
	}
	c.rejoin()
	if every < 0 {
		return
	}
	// A node restarted at a new address soon after it was declared dead
	// is refused ("conflicting address") until DeadNodeReclaimTime has
	// passed, and nothing resends its alive message until a push/pull: one
	// more exchange with every join target once that time is over makes
	// the others take the new address.
	reclaimed := time.NewTimer(c.reclaim + time.Second)
	defer reclaimed.Stop()
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-reclaimed.C:
			c.pushPull()
		case <-tick:
			c.rejoin()
		}
	}
}

// pushPull exchanges state with every join target but this node.
func (c *Cluster) pushPull() {
	var targets []string
	for _, j := range c.join {
		if j != c.selfAddr {
			targets = append(targets, j)
		}
	}
	if len(targets) == 0 {
		return
	}
	if _, err := c.ml.Join(targets); err != nil {
		c.log.Debug("gossip state exchange after the reclaim time", "peers", targets, "err", err)
	}
}

// advertised is the "host:port" mc advertises (its bind address when no
// advertise address is set).
func advertised(mc *memberlist.Config) string {
	if mc.AdvertiseAddr != "" {
		return net.JoinHostPort(mc.AdvertiseAddr, strconv.Itoa(mc.AdvertisePort))
	}
	return net.JoinHostPort(mc.BindAddr, strconv.Itoa(mc.BindPort))
}

// liveNodes returns copies of the alive and suspect members' nodes, this
// node included. It reads the driver's record, not memberlist's: the
// nodes Members() and LocalNode() return are memberlist's own, which it
// changes under its lock (reading them races with UpdateNode).
func (c *Cluster) liveNodes() []memberlist.Node {
	c.peerMu.Lock()
	defer c.peerMu.Unlock()
	var out []memberlist.Node
	for _, p := range c.peers {
		if p.state == StateAlive || p.state == StateSuspect {
			out = append(out, p.node)
		}
	}
	return out
}

func (c *Cluster) rejoin() {
	var live []netip.AddrPort
	for _, n := range c.liveNodes() {
		live = append(live, nodeAddr(n))
	}
	targets := joinTargets(c.join, live)
	if len(targets) == 0 {
		return
	}
	n, err := c.ml.Join(targets)
	// Logged once per change of outcome, not every interval.
	failed := err != nil
	if c.joinTried && failed == c.joinFailed {
		return
	}
	c.joinTried, c.joinFailed = true, failed
	if failed {
		c.log.Warn("gossip join failed; retrying", "peers", targets, "err", err)
	} else {
		c.log.Info("gossip joined", "peers", targets, "answered", n)
	}
}

// msgLeaving is a member's notice, sent to each live member over a stream
// just before it leaves: msgLeaving | its name.
const msgLeaving byte = 0x82

// tellLeaving sends msgLeaving to every live member, in parallel, for at
// most timeout.
func (c *Cluster) tellLeaving(timeout time.Duration) {
	msg := append([]byte{msgLeaving}, c.self...)
	var wg sync.WaitGroup
	done := make(chan struct{})
	for _, n := range c.liveNodes() {
		wg.Go(func() {
			if err := c.ml.SendReliable(&n, msg); err != nil {
				c.log.Debug("gossip leaving notice not sent", "member", n.Name, "err", err)
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// markLeaving records a member's leaving notice.
func (c *Cluster) markLeaving(name string) {
	c.peerMu.Lock()
	defer c.peerMu.Unlock()
	if _, ok := c.peers[name]; ok {
		c.leavers[name] = true
	}
}
