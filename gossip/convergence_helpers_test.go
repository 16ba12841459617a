package gossip

// The measuring code behind convergence_test.go: fleets of real Clusters
// on loopback UDP/TCP in this process, a transport that counts what each
// node sends and can "kill" it, and the polling that times a row's spread.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// convPoll is how often the measurements look at every node: a measured
// time is late by at most this much.
const convPoll = 5 * time.Millisecond

// errKilled is what a killed node's sends get.
var errKilled = errors.New("node killed")

// countingTransport is vigil's transport (what the daemon runs) on
// 127.0.0.1 with a free port, counting the bytes this node sends (UDP packets and the
// streams it opens or accepts). kill closes its sockets and refuses every
// later send, as if the process got SIGKILL: no Leave goes out, peers'
// packets hit a closed port.
type countingTransport struct {
	*transport
	sent    atomic.Int64
	killed  atomic.Bool
	streams chan net.Conn
	done    chan struct{}
	stop    sync.Once
}

func newCountingTransport() (*countingTransport, error) {
	// Port 0: the transport picks one free for both TCP and UDP.
	nt, err := newTransport("127.0.0.1", 0, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("loopback transport: %w", err)
	}
	t := &countingTransport{transport: nt, streams: make(chan net.Conn), done: make(chan struct{})}
	go t.forward()
	return t, nil
}

// forward wraps accepted streams so that their replies (push/pull
// answers) are counted too.
func (t *countingTransport) forward() {
	for {
		select {
		case c := <-t.transport.StreamCh():
			select {
			case t.streams <- &countingConn{Conn: c, sent: &t.sent}:
			case <-t.done:
				c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.killed.Load() {
		return time.Time{}, errKilled
	}
	t.sent.Add(int64(len(b)))
	return t.transport.WriteTo(b, addr)
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.killed.Load() {
		return nil, errKilled
	}
	c, err := t.transport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, sent: &t.sent}, nil
}

// WriteToAddress and DialAddressTimeout are what memberlist calls (the
// embedded transport is a NodeAwareTransport); they must count too.
func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

func (t *countingTransport) kill() {
	t.killed.Store(true)
	t.Shutdown()
}

// Shutdown runs once: kill and memberlist's own shutdown both call it.
func (t *countingTransport) Shutdown() error {
	var err error
	t.stop.Do(func() {
		close(t.done)
		// forward has stopped: a stream accepted meanwhile (another
		// node's leave notice, all stop at once) would block the
		// transport's listener, and its Shutdown waiting for it, for
		// good. Close such streams until Shutdown returns.
		drained := make(chan struct{})
		go func() {
			for {
				select {
				case c := <-t.transport.StreamCh():
					c.Close()
				case <-drained:
					return
				}
			}
		}()
		err = t.transport.Shutdown()
		close(drained)
	})
	return err
}

type countingConn struct {
	net.Conn
	sent *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.sent.Add(int64(n))
	return n, err
}

// profiles are the memberlist configurations measured, as the daemon
// builds them (ProfileConfig); each call returns a fresh one.
var profiles = map[string]func() *memberlist.Config{
	"lan":      profile("lan"),
	"local":    profile("local"),
	"lan-fast": profile("lan-fast"),
}

func profile(name string) func() *memberlist.Config {
	return func() *memberlist.Config {
		mc, err := ProfileConfig(name)
		if err != nil {
			panic(err) // the names above are ProfileConfig's
		}
		if os.Getenv("VIGIL_GOSSIP_COMPRESS") == "1" { // to measure memberlist's default
			mc.EnableCompression = true
		}
		return mc
	}
}

// convNode is one node of a fleet with its transport: a Cluster, or
// (plain) a bare memberlist whose delegate only records what it receives.
type convNode struct {
	name   string
	c      *Cluster
	p      *plainNode
	tr     *countingTransport
	addr   string
	cancel context.CancelFunc
	done   chan error
}

func (nd *convNode) members() []string {
	if nd.c != nil {
		return nd.c.Members()
	}
	var out []string
	for _, m := range nd.p.ml.Members() {
		out = append(out, m.Name)
	}
	return out
}

// convFleet is n nodes on loopback, each joined to the first.
type convFleet struct {
	nodes []*convNode
	// formed is how long the joins took until every node listed every
	// member; rejoins counts the extra joins that needed.
	formed  time.Duration
	rejoins int
}

// startConvFleet starts n Clusters with the given memberlist profile and
// waits (up to 30 s, rejoining stragglers) until every node lists all n
// members.
func startConvFleet(tb testing.TB, n int, profile func() *memberlist.Config) *convFleet {
	return startFleet(tb, n, profile, modeCluster)
}

// fleetMode is what a measured fleet's nodes run.
type fleetMode int

const (
	modeCluster    fleetMode = iota // Cluster as vigil runs it
	modePlain                       // plain memberlist broadcasts (plainNode)
	modeGossipOnly                  // Cluster without direct sends (Fanout < 0)
)

func startFleet(tb testing.TB, n int, profile func() *memberlist.Config, mode fleetMode) *convFleet {
	tb.Helper()
	f := &convFleet{}
	tb.Cleanup(f.stop)
	start := time.Now()
	for i := range n {
		tr, err := newCountingTransport()
		if err != nil {
			tb.Fatal(err)
		}
		nd, err := startNode(fmt.Sprintf("n%02d", i), tr, profile(), mode)
		if err != nil {
			tr.Shutdown()
			tb.Fatal(err)
		}
		f.nodes = append(f.nodes, nd)
		if i > 0 {
			if err := nd.join(f.nodes[0].addr); err != nil {
				tb.Fatal(err)
			}
		}
	}
	// A node that missed a later joiner's alive message learns of it
	// only at its next push/pull (30 s × 2 at 50 members with the LAN
	// profile): rejoining the first node is that push/pull now, what
	// vigil's periodic rejoin does.
	var err error
	for try := 0; try < 6; try++ {
		if err = f.waitMembers(n, 5*time.Second); err == nil {
			break
		}
		for _, nd := range f.nodes[1:] {
			if len(nd.members()) != n {
				f.rejoins++
				if err := nd.join(f.nodes[0].addr); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
	if err != nil {
		tb.Fatal(err)
	}
	f.formed = time.Since(start)
	return f
}

func (nd *convNode) join(seed string) error {
	var err error
	if nd.c != nil {
		_, err = nd.c.Join([]string{seed})
	} else {
		_, err = nd.p.ml.Join([]string{seed})
	}
	if err != nil {
		return fmt.Errorf("joining %s to %s: %w", nd.name, seed, err)
	}
	return nil
}

func startNode(name string, tr *countingTransport, mc *memberlist.Config, mode fleetMode) (*convNode, error) {
	mc.Transport = tr
	mc.Logger = log.New(io.Discard, "", 0)
	ctx, cancel := context.WithCancel(context.Background())
	nd := &convNode{name: name, tr: tr, cancel: cancel, done: make(chan error, 1),
		addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(tr.Port()))}
	if mode == modePlain {
		p, err := newPlainNode(name, mc)
		if err != nil {
			cancel()
			return nil, err
		}
		nd.p = p
		// No Leave: the plain fleet only measures broadcasts.
		go func() { <-ctx.Done(); nd.done <- p.ml.Shutdown() }()
		return nd, nil
	}
	cc := ClusterConfig{Name: name, Epoch: 1, Memberlist: mc, Log: slog.New(slog.DiscardHandler)}
	if mode == modeGossipOnly {
		cc.Fanout = -1
	}
	c, err := NewCluster(cc)
	if err != nil {
		cancel()
		return nil, err
	}
	nd.c = c
	go func() { nd.done <- c.Run(ctx) }()
	return nd, nil
}

// plainNode is memberlist with a delegate that broadcasts through a
// TransmitLimitedQueue and records what it receives, but neither
// re-broadcasts it nor exchanges state in push/pull: plain memberlist
// dissemination, the baseline the Cluster's re-gossip is compared with.
type plainNode struct {
	ml   *memberlist.Memberlist
	live atomic.Pointer[memberlist.Memberlist] // ml, for the queue, which may ask before Create returns
	q    *memberlist.TransmitLimitedQueue
	mu   sync.Mutex
	seen map[string]bool
	// stats is what the broadcasts' Finished reports to (not read here).
	stats stats
}

func newPlainNode(name string, mc *memberlist.Config) (*plainNode, error) {
	p := &plainNode{seen: map[string]bool{}, stats: newStats()}
	p.q = &memberlist.TransmitLimitedQueue{RetransmitMult: mc.RetransmitMult, NumNodes: func() int {
		if m := p.live.Load(); m != nil {
			return m.NumMembers()
		}
		return 1
	}}
	mc.Name = name
	mc.Delegate = p
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("starting plain memberlist %s: %w", name, err)
	}
	p.ml = ml
	p.live.Store(ml)
	return p, nil
}

func (p *plainNode) publish(msg string) {
	p.q.QueueBroadcast(&rowBroadcast{name: msg, msg: []byte(msg), stats: &p.stats})
}

func (p *plainNode) has(msg string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[msg]
}

func (p *plainNode) NodeMeta(int) []byte { return nil }
func (p *plainNode) NotifyMsg(b []byte) {
	p.mu.Lock()
	p.seen[string(b)] = true
	p.mu.Unlock()
}
func (p *plainNode) GetBroadcasts(overhead, limit int) [][]byte {
	return p.q.GetBroadcasts(overhead, limit)
}
func (p *plainNode) LocalState(bool) []byte        { return nil }
func (p *plainNode) MergeRemoteState([]byte, bool) {}

// waitMembers waits until every live node lists want members.
func (f *convFleet) waitMembers(want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		short := ""
		for _, nd := range f.nodes {
			if !nd.tr.killed.Load() && len(nd.members()) != want {
				short = nd.name
				break
			}
		}
		if short == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s lists %d members after %v, want %d", short, len(f.nodeByName(short).members()), timeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *convFleet) nodeByName(name string) *convNode {
	for _, nd := range f.nodes {
		if nd.name == name {
			return nd
		}
	}
	return nil
}

// stop ends every node at once (each Run leaves, bounded by leaveTimeout).
func (f *convFleet) stop() {
	for _, nd := range f.nodes {
		nd.cancel()
	}
	for _, nd := range f.nodes {
		<-nd.done
	}
	f.nodes = nil
}

// sentBytes is what all nodes have sent so far.
func (f *convFleet) sentBytes() int64 {
	var sum int64
	for _, nd := range f.nodes {
		sum += nd.tr.sent.Load()
	}
	return sum
}

// spread is one change's outcome: how long until the last other node had
// it (only when all did), and how many of them had it by the timeout.
type spread struct {
	took              time.Duration
	reached, of       int
	deliveredEveryone bool
}

// change is one published change on its way to the other live nodes.
type change struct {
	has     func(*convNode) bool // whether a node has the change
	start   time.Time
	waiting map[*convNode]bool
	spread
}

// newChange starts tracking a change that from publishes right after.
func (f *convFleet) newChange(from *convNode, has func(*convNode) bool) *change {
	c := &change{has: has, waiting: map[*convNode]bool{}}
	for _, nd := range f.nodes {
		if nd != from && !nd.tr.killed.Load() {
			c.waiting[nd] = true
		}
	}
	c.of = len(c.waiting)
	c.start = time.Now()
	return c
}

// poll looks at the nodes still waiting and reports whether the change is
// still open: not yet everywhere, and not past timeout.
func (c *change) poll(timeout time.Duration) bool {
	if len(c.waiting) == 0 || c.deliveredEveryone || time.Since(c.start) > timeout {
		return false
	}
	for nd := range c.waiting {
		if c.has(nd) {
			delete(c.waiting, nd)
		}
	}
	c.reached = c.of - len(c.waiting)
	if len(c.waiting) == 0 {
		c.took, c.deliveredEveryone = time.Since(c.start), true
		return false
	}
	return true
}

// trackAll polls the changes every convPoll until none is open.
func trackAll(cs []*change, timeout time.Duration) {
	for {
		open := false
		for _, c := range cs {
			open = c.poll(timeout) || open
		}
		if !open {
			return
		}
		time.Sleep(convPoll)
	}
}

// publishRow publishes value under (kind, key) on node origin and
// returns the change, to be tracked until each other live node holds
// origin's row with that value.
func (f *convFleet) publishRow(origin int, kind, key string, value []byte) (*change, error) {
	from := f.nodes[origin]
	c := f.newChange(from, func(nd *convNode) bool { return holds(nd.c, kind, key, from.name, value) })
	if err := from.c.Publish(kind, key, value); err != nil {
		return nil, fmt.Errorf("publishing on %s: %w", from.name, err)
	}
	return c, nil
}

// publishAndTrack is publishRow tracked alone until timeout.
func (f *convFleet) publishAndTrack(origin int, kind, key string, value []byte, timeout time.Duration) (spread, error) {
	c, err := f.publishRow(origin, kind, key, value)
	if err != nil {
		return spread{}, err
	}
	trackAll([]*change{c}, timeout)
	return c.spread, nil
}

func holds(c *Cluster, kind, key, origin string, value []byte) bool {
	for _, r := range c.Get(kind, key) {
		if r.Origin == origin {
			return bytes.Equal(r.Value, value)
		}
	}
	return false
}

// detection is one killed node's outcome: when the first and the last
// other node stopped listing it.
type detection struct {
	first, all time.Duration
	ok         bool
}

// killAndTrack kills node victim without a Leave and polls the others'
// Members() (which memberlist fills with alive and suspect nodes: gone
// from it means dead) until none lists the victim, or timeout.
func (f *convFleet) killAndTrack(victim int, timeout time.Duration) detection {
	v := f.nodes[victim]
	var watchers []*convNode
	for _, nd := range f.nodes {
		if nd != v && !nd.tr.killed.Load() {
			watchers = append(watchers, nd)
		}
	}
	var d detection
	start := time.Now()
	v.tr.kill()
	// Its Leave sends nothing now; ending it here keeps the 2 s it waits
	// for that out of the fleet's stop.
	v.cancel()
	for {
		listing := 0
		for _, nd := range watchers {
			if slices.Contains(nd.members(), v.name) {
				listing++
			}
		}
		elapsed := time.Since(start)
		if listing < len(watchers) && d.first == 0 {
			d.first = elapsed
		}
		if listing == 0 {
			d.all, d.ok = elapsed, true
			return d
		}
		if elapsed > timeout {
			return d
		}
		time.Sleep(convPoll)
	}
}

// quantile is the nearest-rank q-quantile (0 < q ≤ 1) of ds, 0 if empty.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(q*float64(len(s)) + 0.999999999) // ceil without float surprises at exact ranks
	return s[min(max(rank, 1), len(s))-1]
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// rssBytes is this process's resident set (VmRSS in /proc/self/status).
func rssBytes() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("reading RSS: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing VmRSS %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc/self/status")
}
