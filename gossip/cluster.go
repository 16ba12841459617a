package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// ClusterConfig configures the memberlist driver around a Store.
type ClusterConfig struct {
	// Name is this node's name in the fleet (and its rows' origin).
	Name string
	// Epoch is this run's epoch (see Config.Epoch).
	Epoch uint64
	// Memberlist is the memberlist configuration to start from (for
	// example memberlist.DefaultLANConfig()); Name, Delegate and Events
	// are set here. Its Label keeps two fleets on one network apart, its
	// Keyring encrypts.
	Memberlist *memberlist.Config
	// Grace and MaxRowSize: see Config.
	Grace      time.Duration
	MaxRowSize int
	// Inbound bounds the queue of received messages waiting for the
	// store; a message beyond it is dropped and counted (Dropped): the
	// delegate never blocks memberlist. Default 1024.
	Inbound int
	Log     *slog.Logger
}

// Cluster runs a Store over memberlist: broadcasts carry new rows, the
// push/pull exchange carries the whole store (anti-entropy, so a node
// that missed packets converges), and a receiver re-broadcasts every row
// it had not seen, once (memberlist relays nothing by itself).
//
// memberlist's delegates never block here and never call back into
// memberlist: NotifyMsg copies the message into a bounded queue that Run
// drains, membership events go through a channel, and the store has its
// own lock.
type Cluster struct {
	log   *slog.Logger
	ml    *memberlist.Memberlist
	queue *memberlist.TransmitLimitedQueue
	// members is ml.NumMembers once memberlist runs (the queue may ask
	// before Create returns).
	members atomic.Pointer[memberlist.Memberlist]

	mu    sync.Mutex // guards store
	store *Store

	inbound chan []byte
	events  chan memberlist.NodeEvent
	dropped atomic.Uint64
	changed chan struct{} // signalled (never blocking) when rows change

	stopOnce sync.Once
	stopErr  error
}

// NewCluster starts memberlist with the store's delegates. It does not
// join anyone yet (Join).
func NewCluster(cfg ClusterConfig) (*Cluster, error) {
	if cfg.Memberlist == nil {
		return nil, errors.New("gossip: cluster needs a memberlist configuration")
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	store, err := NewStore(Config{Self: cfg.Name, Epoch: cfg.Epoch, Grace: cfg.Grace, MaxRowSize: cfg.MaxRowSize})
	if err != nil {
		return nil, err
	}
	if cfg.Inbound <= 0 {
		cfg.Inbound = 1024
	}
	c := &Cluster{log: log, store: store, inbound: make(chan []byte, cfg.Inbound),
		events: make(chan memberlist.NodeEvent, cfg.Inbound), changed: make(chan struct{}, 1)}
	mc := *cfg.Memberlist
	mc.Name = cfg.Name
	mc.Delegate = (*delegate)(c)
	mc.Events = (*eventDelegate)(c)
	c.queue = &memberlist.TransmitLimitedQueue{RetransmitMult: mc.RetransmitMult, NumNodes: func() int {
		if m := c.members.Load(); m != nil {
			return m.NumMembers()
		}
		return 1
	}}
	ml, err := memberlist.Create(&mc)
	if err != nil {
		return nil, fmt.Errorf("gossip: starting memberlist: %w", err)
	}
	c.ml = ml
	c.members.Store(ml)
	return c, nil
}

// Join contacts the given members ("host:port", or names with a mock
// transport) and returns how many answered.
func (c *Cluster) Join(seeds []string) (int, error) {
	n, err := c.ml.Join(seeds)
	if err != nil {
		return n, fmt.Errorf("gossip: joining %v: %w", seeds, err)
	}
	return n, nil
}

// Members returns the names of the live members, this node included.
func (c *Cluster) Members() []string {
	var out []string
	for _, m := range c.ml.Members() {
		out = append(out, m.Name)
	}
	slices.Sort(out)
	return out
}

// Publish writes this node's row and queues its broadcast.
func (c *Cluster) Publish(kind, key string, value []byte) error {
	c.mu.Lock()
	r, err := c.store.Publish(kind, key, value)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.broadcast(r)
	c.signal()
	return nil
}

// Get returns every origin's live row for (kind, key).
func (c *Cluster) Get(kind, key string) []Row {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.store.Get(kind, key)
}

// Stale reports whether origin left or died (its rows are kept for the
// grace period).
func (c *Cluster) Stale(origin string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.store.Stale(origin)
}

// Changed is signalled when rows change (merged from a peer or
// published); signals merge.
func (c *Cluster) Changed() <-chan struct{} { return c.changed }

// Dropped counts received messages and membership events dropped because
// their queue was full.
func (c *Cluster) Dropped() uint64 { return c.dropped.Load() }

// Run merges received messages and follows membership until ctx ends,
// then leaves the fleet gracefully (bounded by leaveTimeout) and stops
// memberlist.
func (c *Cluster) Run(ctx context.Context) error {
	expire := time.NewTicker(10 * time.Second)
	defer expire.Stop()
	for {
		select {
		case <-ctx.Done():
			return c.stop()
		case b := <-c.inbound:
			c.receive(b, time.Now())
		case e := <-c.events:
			c.membership(e, time.Now())
		case now := <-expire.C:
			c.mu.Lock()
			c.store.Expire(now)
			c.mu.Unlock()
		}
	}
}

const leaveTimeout = 2 * time.Second

// stop leaves and shuts memberlist down, once (memberlist panics on a
// Leave after Shutdown).
func (c *Cluster) stop() error {
	c.stopOnce.Do(func() {
		err := c.ml.Leave(leaveTimeout)
		if serr := c.ml.Shutdown(); err == nil {
			err = serr
		}
		if err != nil {
			c.stopErr = fmt.Errorf("gossip: leaving the fleet: %w", err)
		}
	})
	return c.stopErr
}

func (c *Cluster) receive(b []byte, now time.Time) {
	rows, err := DecodeRows(b)
	if err != nil {
		c.log.Debug("gossip message refused", "err", err)
		return
	}
	c.merge(rows, now)
}

// merge merges rows and re-broadcasts what changed.
func (c *Cluster) merge(rows []Row, now time.Time) {
	c.mu.Lock()
	changed := c.store.Merge(now, rows...)
	c.mu.Unlock()
	for _, r := range changed {
		c.broadcast(r)
	}
	if len(changed) > 0 {
		c.signal()
	}
}

func (c *Cluster) membership(e memberlist.NodeEvent, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch e.Event {
	case memberlist.NodeLeave:
		c.store.NodeGone(e.Node.Name, now)
	case memberlist.NodeJoin, memberlist.NodeUpdate:
		c.store.NodeAlive(e.Node.Name)
	}
}

func (c *Cluster) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *Cluster) broadcast(r Row) {
	c.queue.QueueBroadcast(&rowBroadcast{name: r.Origin + "\x00" + r.Kind + "\x00" + r.Key, msg: AppendRows(nil, r)})
}

// rowBroadcast is one row's broadcast; a newer one of the same row
// replaces it in the queue.
type rowBroadcast struct {
	name string
	msg  []byte
}

func (b *rowBroadcast) Name() string    { return b.name }
func (b *rowBroadcast) Message() []byte { return b.msg }
func (b *rowBroadcast) Finished()       {}
func (b *rowBroadcast) Invalidates(o memberlist.Broadcast) bool {
	nb, ok := o.(memberlist.NamedBroadcast)
	return ok && nb.Name() == b.name
}

// delegate is the Cluster as memberlist's Delegate.
type delegate Cluster

func (d *delegate) NodeMeta(limit int) []byte { return nil }

// NotifyMsg copies the message (memberlist reuses its buffer) and queues
// it without blocking.
func (d *delegate) NotifyMsg(b []byte) {
	select {
	case d.inbound <- slices.Clone(b):
	default:
		d.dropped.Add(1)
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

// LocalState is the whole store, for a push/pull.
func (d *delegate) LocalState(join bool) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return AppendRows(nil, d.store.Snapshot()...)
}

// MergeRemoteState merges a peer's whole store. It runs on memberlist's
// push/pull goroutine, not its packet handler: merging here keeps a
// snapshot from being dropped by a full inbound queue.
func (d *delegate) MergeRemoteState(b []byte, join bool) {
	rows, err := DecodeRows(b)
	if err != nil {
		d.log.Debug("gossip state refused", "err", err)
		return
	}
	(*Cluster)(d).merge(rows, time.Now())
}

// eventDelegate is the Cluster as memberlist's EventDelegate: it queues without
// blocking (memberlist calls it with its own locks held) and counts what a
// full queue drops.
type eventDelegate Cluster

func (e *eventDelegate) enqueue(kind memberlist.NodeEventType, n *memberlist.Node) {
	cp := *n
	select {
	case e.events <- memberlist.NodeEvent{Event: kind, Node: &cp}:
	default:
		e.dropped.Add(1)
	}
}

func (e *eventDelegate) NotifyJoin(n *memberlist.Node)   { e.enqueue(memberlist.NodeJoin, n) }
func (e *eventDelegate) NotifyLeave(n *memberlist.Node)  { e.enqueue(memberlist.NodeLeave, n) }
func (e *eventDelegate) NotifyUpdate(n *memberlist.Node) { e.enqueue(memberlist.NodeUpdate, n) }
