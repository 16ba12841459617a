package gossip

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
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
	// Join lists the peers ("host:port") Run joins at its start and then
	// retries, every Rejoin, for those that are not live members (a healed
	// partition re-merges). Rejoin: default DefaultRejoin; negative = join
	// once at the start only.
	Join   []string
	Rejoin time.Duration
	// OnKeyring persists this node's keyring after a fleet-wide key
	// operation changed it (primary first); nil = not persisted.
	OnKeyring func(keys [][]byte) error
	// Provide answers a member's Fetch: the content this node has under
	// key (a pushed fleet document, by its hash); nil = nothing to give.
	// Called from Run: it must not block.
	Provide func(key string) ([]byte, bool)
	// Serve answers a member's Call (method and body; ErrNotFound = no
	// such method); nil = none served. It runs on a goroutine of its own
	// with a context that ends after ServeTimeout.
	Serve func(ctx context.Context, from, method string, body []byte) ([]byte, error)
	// Fanout is how many members a new row of this node is sent to
	// directly, besides its gossip (0 = DefaultFanout, negative = none).
	Fanout int
	// RelayMult is the RetransmitMult of rows received by such a direct
	// send (0 = DefaultRelayMult, at most the memberlist configuration's).
	RelayMult int
}

// DefaultFanout is ClusterConfig.Fanout's default: every member of a
// fleet of directors (tens) hears a change from its origin at once.
const DefaultFanout = 64

// DefaultRelayMult is ClusterConfig.RelayMult's default. A member that
// lost the direct packet is missed by every relay with probability about
// e^-(2 × ceil(log10(n+1))): 1.8 % at 50 members, before the origin's own
// gossip and the next push/pull; a third of the relays lan-fast sent
// before (RetransmitMult 6), so a third of the packets.
const DefaultRelayMult = 2

// Cluster runs a Store over memberlist: broadcasts carry new rows, the
// push/pull exchange carries the whole store (anti-entropy, so a node
// that missed packets converges), and a receiver re-broadcasts every row
// it had not seen, once (memberlist relays nothing by itself).
//
// A new row of this node is also sent at once to up to Fanout members
// directly (one UDP packet each, batched): gossip alone needs several
// rounds of GossipInterval to reach everyone (at 50 members the p99 of a
// summary was 0.39–0.58 s with lan-fast), a direct send one packet's
// time. Its receivers relay it with a smaller retransmit budget
// (RelayMult), since nearly every member already has it; the origin's
// own broadcast keeps the full budget, so a member that lost the direct
// packet still hears it by gossip.
//
// memberlist's delegates never block here and never call back into
// memberlist: NotifyMsg copies the message into a bounded queue that Run
// drains, membership events go through a channel, and the store has its
// own lock.
type Cluster struct {
	log   *slog.Logger
	ml    *memberlist.Memberlist
	queue *memberlist.TransmitLimitedQueue
	// relay queues rows received by a direct send (RelayMult).
	relay *memberlist.TransmitLimitedQueue

	fanout     int
	packetSize int           // a direct packet's payload limit
	directMu   sync.Mutex    // guards direct
	direct     []Row         // rows waiting for their direct send
	directKick chan struct{} // signalled when direct gets rows
	// members is ml.NumMembers once memberlist runs (the queue may ask
	// before Create returns).
	members atomic.Pointer[memberlist.Memberlist]

	mu    sync.Mutex // guards store
	store *Store

	inbound chan []byte
	events  chan memberEvent
	dropped atomic.Uint64
	changed chan struct{} // signalled (never blocking) when rows change

	self    string
	cluster string // memberlist's Label, also in the node meta
	grace   time.Duration
	leaving atomic.Bool // set by stop: the meta says so (left, not dead)

	refused    atomic.Uint64
	refusedMu  sync.Mutex
	refusedLog map[string]struct{}

	peerMu sync.Mutex // guards peers and leavers
	peers  map[string]*peer
	// leavers are the members that said they are leaving (msgLeaving)
	// and have not left yet: their leave event means "left", not "dead".
	leavers map[string]bool

	join        []string
	rejoinEvery time.Duration
	// reclaim is memberlist's DeadNodeReclaimTime; self the address this
	// node advertises (not a join target).
	reclaim               time.Duration
	selfAddr              string
	joinTried, joinFailed bool // the last join's outcome (rejoinLoop only)

	keyring   *memberlist.Keyring // nil without encryption
	onKeyring func([][]byte) error
	keyMu     sync.Mutex // serialises key operations and their persisting
	keySeq    atomic.Uint64
	pendMu    sync.Mutex
	pending   map[uint64]chan KeyResult
	calls     map[uint64]chan callReply // Fetch and Call waiting, under pendMu
	provide   func(key string) ([]byte, bool)
	serve     func(ctx context.Context, from, method string, body []byte) ([]byte, error)

	stats stats
	wg    sync.WaitGroup // Run's helpers

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
	if cfg.Rejoin == 0 {
		cfg.Rejoin = DefaultRejoin
	}
	if cfg.Fanout == 0 {
		cfg.Fanout = DefaultFanout
	}
	mc := *cfg.Memberlist
	if cfg.RelayMult <= 0 {
		cfg.RelayMult = DefaultRelayMult
	}
	cfg.RelayMult = max(1, min(cfg.RelayMult, mc.RetransmitMult))
	if len(mc.Label) > memberlist.LabelMaxSize {
		return nil, fmt.Errorf("gossip: cluster label is %d bytes, over %d", len(mc.Label), memberlist.LabelMaxSize)
	}
	// vigil's own transport unless one is given (tests' mock networks).
	var own *transport
	if mc.Transport == nil {
		if own, err = newTransport(mc.BindAddr, mc.BindPort, log); err != nil {
			return nil, err
		}
		mc.Transport = own
		if mc.BindPort == 0 { // as memberlist does for its own transport
			mc.BindPort, mc.AdvertisePort = own.Port(), own.Port()
		}
	}
	c := &Cluster{log: log, store: store, inbound: make(chan []byte, cfg.Inbound),
		events: make(chan memberEvent, cfg.Inbound), changed: make(chan struct{}, 1),
		self: cfg.Name, cluster: mc.Label, grace: store.cfg.Grace, refusedLog: map[string]struct{}{},
		peers: map[string]*peer{}, leavers: map[string]bool{}, join: slices.Clone(cfg.Join), rejoinEvery: cfg.Rejoin,
		reclaim: cfg.Memberlist.DeadNodeReclaimTime, selfAddr: advertised(&mc),
		onKeyring: cfg.OnKeyring, pending: map[uint64]chan KeyResult{}, stats: newStats(),
		calls: map[uint64]chan callReply{}, provide: cfg.Provide, serve: cfg.Serve,
		fanout: max(cfg.Fanout, 0), packetSize: directPacketSize(&mc), directKick: make(chan struct{}, 1)}
	mc.Name = cfg.Name
	mc.Delegate = (*delegate)(c)
	mc.Events = (*eventDelegate)(c)
	mc.Alive = (*aliveDelegate)(c)
	mc.Ping = (*pingDelegate)(c)
	next := mc.Logger
	if next == nil {
		out := mc.LogOutput
		if out == nil {
			out = os.Stderr
		}
		next = stdlog.New(out, "", stdlog.LstdFlags) // memberlist's own default
	}
	mc.Logger, mc.LogOutput = stdlog.New(logTap{c: c, next: next}, "", 0), nil
	numNodes := func() int {
		if m := c.members.Load(); m != nil {
			return m.NumMembers()
		}
		return 1
	}
	c.queue = &memberlist.TransmitLimitedQueue{RetransmitMult: mc.RetransmitMult, NumNodes: numNodes}
	c.relay = &memberlist.TransmitLimitedQueue{RetransmitMult: cfg.RelayMult, NumNodes: numNodes}
	ml, err := memberlist.Create(&mc)
	if err != nil {
		if own != nil {
			_ = own.Shutdown()
		}
		return nil, fmt.Errorf("gossip: starting memberlist: %w", err)
	}
	c.ml = ml
	c.members.Store(ml)
	// memberlist makes a keyring from SecretKey itself, after the copy.
	c.keyring = mc.Keyring
	c.peers[c.self] = &peer{node: *ml.LocalNode(), state: StateAlive, since: time.Now()}
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

// Publish writes this node's row and queues its broadcast. A row whose
// value did not change (a periodic refresh) is not sent directly: nobody
// waits for it, and at 50 members the direct packets of every member's
// refreshes cost more CPU than gossip's batched ones.
func (c *Cluster) Publish(kind, key string, value []byte) error {
	return c.write(func(s *Store) (Row, bool, error) {
		prev, had := s.rows[RowID{Origin: c.self, Kind: kind, Key: key}]
		r, err := s.Publish(kind, key, value)
		return r, !had || prev.Deleted || !bytes.Equal(prev.Value, value), err
	})
}

// write makes one change of this node's rows and queues its broadcast,
// and its direct send when change says so.
func (c *Cluster) write(change func(*Store) (Row, bool, error)) error {
	c.mu.Lock()
	r, direct, err := change(c.store)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.broadcast(c.queue, r)
	if direct && c.fanout > 0 {
		c.directMu.Lock()
		c.direct = append(c.direct, r)
		c.directMu.Unlock()
		select {
		case c.directKick <- struct{}{}:
		default:
		}
	}
	c.signal()
	return nil
}

// Get returns every origin's live row for (kind, key).
func (c *Cluster) Get(kind, key string) []Row {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.store.Get(kind, key)
}

// Rows returns every live row of a kind, of all origins, ordered by
// origin and key.
func (c *Cluster) Rows(kind string) []Row {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.store.Rows(kind)
}

// Generation counts the changes to kind's rows (Store.Generation).
func (c *Cluster) Generation(kind string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.store.Generation(kind)
}

// Withdraw deletes this node's row for (kind, key) and queues the
// tombstone's broadcast.
func (c *Cluster) Withdraw(kind, key string) error {
	return c.write(func(s *Store) (Row, bool, error) {
		r, err := s.Withdraw(kind, key, time.Now())
		return r, true, err
	})
}

// Self is this node's name.
func (c *Cluster) Self() string { return c.self }

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

// Run merges received messages, follows membership, joins the join list
// (and retries it, see ClusterConfig.Join) and answers key operations
// until ctx ends, then leaves the fleet gracefully (bounded by
// leaveTimeout), stops memberlist and waits for its own goroutines.
func (c *Cluster) Run(ctx context.Context) error {
	expire := time.NewTicker(10 * time.Second)
	defer expire.Stop()
	rctx, cancel := context.WithCancel(ctx)
	c.wg.Go(func() { c.rejoinLoop(rctx, c.rejoinEvery) })
	for {
		select {
		case <-ctx.Done():
			cancel()
			err := c.stop()
			c.wg.Wait()
			return err
		case b := <-c.inbound:
			c.receive(b, time.Now())
		case <-c.directKick:
			c.sendDirect()
		case e := <-c.events:
			c.membership(e, time.Now())
		case now := <-expire.C:
			c.mu.Lock()
			c.store.Expire(now)
			c.mu.Unlock()
			c.expirePeers(now, c.grace)
		}
	}
}

const leaveTimeout = 2 * time.Second

// stop leaves and shuts memberlist down, once (memberlist panics on a
// Leave after Shutdown).
func (c *Cluster) stop() error {
	c.stopOnce.Do(func() {
		// The leaving flag in the meta first, so that the others report
		// this node as left, not dead (memberlist's event does not say).
		c.leaving.Store(true)
		if err := c.ml.UpdateNode(leaveTimeout / 2); err != nil {
			c.log.Debug("gossip leaving flag not spread", "err", err)
		}
		// The flag travels by gossip and may reach a member after the
		// leave itself: say it to each member directly too.
		c.tellLeaving(leaveTimeout / 2)
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
	if len(b) > 0 && (b[0] == msgKeyRequest || b[0] == msgKeyReply) {
		c.keyMessage(b)
		return
	}
	if len(b) > 0 && (b[0] == msgCallRequest || b[0] == msgCallReply) {
		c.callMessage(b)
		return
	}
	q := c.queue
	if len(b) > 0 && b[0] == msgDirect {
		b, q = b[1:], c.relay
	}
	rows, err := DecodeRows(b)
	if err != nil {
		c.log.Debug("gossip message refused", "err", err)
		return
	}
	c.stats.received(rows)
	c.merge(q, rows, now)
}

// merge merges rows and re-broadcasts what changed on q.
func (c *Cluster) merge(q *memberlist.TransmitLimitedQueue, rows []Row, now time.Time) {
	c.mu.Lock()
	changed := c.store.Merge(now, rows...)
	c.mu.Unlock()
	for _, r := range changed {
		c.broadcast(q, r)
	}
	if len(changed) > 0 {
		c.signal()
	}
}

func (c *Cluster) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *Cluster) broadcast(q *memberlist.TransmitLimitedQueue, r Row) {
	b := &rowBroadcast{name: r.Origin + "\x00" + r.Kind + "\x00" + r.Key, msg: AppendRows(nil, r), stats: &c.stats}
	c.stats.queued(b.msg, r.Kind)
	q.QueueBroadcast(b)
}

// msgDirect starts a message of rows sent by their origin to members
// directly (the rows' wire form follows). A member of a build before it
// refuses the message as of an unknown schema and hears the rows by
// gossip.
const msgDirect byte = 0x85

// directPacketSize is a direct message's limit: memberlist's UDP buffer
// size less what it adds (message type, label header, encryption's
// version, nonce and tag, and slack); at least one row of the largest
// size fits.
func directPacketSize(mc *memberlist.Config) int {
	overhead := 1 + 2 + len(mc.Label) + 1 + 12 + 16 + 32
	return max(mc.UDPBufferSize-overhead, DefaultMaxRowSize+1)
}

// sendDirect sends the rows waiting for it, batched into packets, to up
// to fanout live members (randomly chosen when there are more). Loss is
// covered by the rows' gossip.
func (c *Cluster) sendDirect() {
	c.directMu.Lock()
	rows := c.direct
	c.direct = nil
	c.directMu.Unlock()
	if len(rows) == 0 {
		return
	}
	var to []*memberlist.Node
	for _, m := range c.ml.Members() {
		if m.Name != c.self {
			to = append(to, m)
		}
	}
	if len(to) > c.fanout {
		rand.Shuffle(len(to), func(i, j int) { to[i], to[j] = to[j], to[i] })
		to = to[:c.fanout]
	}
	if len(to) == 0 {
		return
	}
	for len(rows) > 0 {
		n, size := 0, 1+binary.MaxVarintLen16
		for n < len(rows) {
			s := EncodedSize(rows[n]) - 2 // its own schema byte and count
			if n > 0 && size+s > c.packetSize {
				break
			}
			size += s
			n++
		}
		msg := AppendRows([]byte{msgDirect}, rows[:n]...)
		for _, m := range to {
			if err := c.ml.SendBestEffort(m, msg); err != nil {
				c.log.Debug("gossip direct send failed", "member", m.Name, "err", err)
				continue
			}
			c.stats.sentRows(rows[:n])
		}
		rows = rows[n:]
	}
}

// rowBroadcast is one row's broadcast; a newer one of the same row
// replaces it in the queue.
type rowBroadcast struct {
	name  string
	msg   []byte
	stats *stats
}

func (b *rowBroadcast) Name() string    { return b.name }
func (b *rowBroadcast) Message() []byte { return b.msg }
func (b *rowBroadcast) Finished()       { b.stats.finished(b.msg) }
func (b *rowBroadcast) Invalidates(o memberlist.Broadcast) bool {
	nb, ok := o.(memberlist.NamedBroadcast)
	return ok && nb.Name() == b.name
}

// delegate is the Cluster as memberlist's Delegate.
type delegate Cluster

// NodeMeta is vigil's meta (see encodeMeta), at most 7+255 bytes: always
// within memberlist's MetaMaxSize (512).
func (d *delegate) NodeMeta(limit int) []byte {
	m := encodeMeta(d.cluster, d.leaving.Load())
	if len(m) > limit {
		return nil // cannot happen with a valid label; peers then refuse this node
	}
	return m
}

// NotifyMsg copies the message (memberlist reuses its buffer) and queues
// it without blocking.
func (d *delegate) NotifyMsg(b []byte) {
	if len(b) > 0 && b[0] == msgLeaving {
		// Handled here, not queued: it must be seen before the leave
		// event that follows it, which comes through another queue.
		(*Cluster)(d).markLeaving(string(b[1:]))
		return
	}
	select {
	case d.inbound <- slices.Clone(b):
	default:
		d.dropped.Add(1)
	}
}

// GetBroadcasts hands out this node's and gossip-relayed rows first,
// then the relays of rows received directly, in the space left.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	out := d.queue.GetBroadcasts(overhead, limit)
	for _, m := range out {
		limit -= overhead + len(m)
	}
	if limit > overhead {
		out = append(out, d.relay.GetBroadcasts(overhead, limit)...)
	}
	d.stats.sent(out)
	return out
}

// LocalState is the whole store, for a push/pull.
func (d *delegate) LocalState(join bool) []byte {
	d.mu.Lock()
	rows := d.store.Snapshot()
	d.mu.Unlock()
	d.stats.sentRows(rows)
	return AppendRows(nil, rows...)
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
	d.stats.received(rows)
	(*Cluster)(d).merge(d.queue, rows, time.Now())
}

// eventDelegate is the Cluster as memberlist's EventDelegate: it queues
// without blocking (see enqueue).
type eventDelegate Cluster

func (e *eventDelegate) NotifyJoin(n *memberlist.Node)   { (*Cluster)(e).enqueue(evJoin, n) }
func (e *eventDelegate) NotifyLeave(n *memberlist.Node)  { (*Cluster)(e).enqueue(evLeave, n) }
func (e *eventDelegate) NotifyUpdate(n *memberlist.Node) { (*Cluster)(e).enqueue(evUpdate, n) }

// KindStats counts rows of one kind: Msgs rows (a broadcast carries one,
// a push/pull many, each counted), Bytes their encoded size.
type KindStats struct {
	Msgs, Bytes uint64
}

// Stats is what the driver counts, for metrics.
type Stats struct {
	// Sent counts rows by kind in broadcasts as memberlist hands them out
	// (every retransmission) and in push/pull states; Received counts
	// rows received by broadcast and push/pull.
	Sent, Received map[string]KindStats
	Dropped        uint64         // messages and events dropped on full queues
	Refused        uint64         // alive messages the alive delegate refused
	Unknown        uint64         // rows of unknown kinds ignored
	HealthScore    int            // memberlist's awareness score (0 = healthy)
	Members        map[string]int // members by state (MemberStates)
}

// Stats returns the counters.
func (c *Cluster) Stats() Stats {
	st := Stats{Dropped: c.Dropped(), Refused: c.Refused(), HealthScore: c.ml.GetHealthScore(), Members: map[string]int{}}
	c.mu.Lock()
	st.Unknown = c.store.Unknown()
	c.mu.Unlock()
	st.Sent, st.Received = c.stats.snapshot()
	for _, m := range c.MemberStates() {
		st.Members[m.State]++
	}
	return st
}

// stats counts rows by kind. A broadcast's kind is looked up by its
// message's address (GetBroadcasts hands out the very slice queued), so
// nothing is decoded to count it.
type stats struct {
	mu             sync.Mutex
	sentBy, recvBy map[string]KindStats
	// live holds the kinds of queued broadcasts; finished ones move to
	// done, kept until the next hand-out, because the queue finishes a
	// broadcast on its last transmission before handing it out.
	live, done, older map[*byte]string
}

func newStats() stats {
	return stats{sentBy: map[string]KindStats{}, recvBy: map[string]KindStats{},
		live: map[*byte]string{}, done: map[*byte]string{}, older: map[*byte]string{}}
}

func (s *stats) queued(msg []byte, kind string) {
	s.mu.Lock()
	s.live[&msg[0]] = kind
	s.mu.Unlock()
}

func (s *stats) finished(msg []byte) {
	s.mu.Lock()
	if k, ok := s.live[&msg[0]]; ok {
		delete(s.live, &msg[0])
		s.done[&msg[0]] = k
	}
	s.mu.Unlock()
}

func (s *stats) sent(msgs [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		if len(m) == 0 {
			continue
		}
		k, ok := s.live[&m[0]]
		if !ok {
			k, ok = s.done[&m[0]]
		}
		if !ok {
			k, ok = s.older[&m[0]]
		}
		if ok {
			st := s.sentBy[k]
			st.Msgs++
			st.Bytes += uint64(len(m))
			s.sentBy[k] = st
		}
	}
	// Two generations: a broadcast finished in a concurrent hand-out is
	// still found by that hand-out's count.
	s.older, s.done = s.done, s.older
	clear(s.done)
}

func (s *stats) sentRows(rows []Row) { s.count(s.sentBy, rows) }
func (s *stats) received(rows []Row) { s.count(s.recvBy, rows) }

func (s *stats) count(m map[string]KindStats, rows []Row) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		st := m[r.Kind]
		st.Msgs++
		st.Bytes += uint64(EncodedSize(r))
		m[r.Kind] = st
	}
}

func (s *stats) snapshot() (sent, received map[string]KindStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.sentBy), maps.Clone(s.recvBy)
}
