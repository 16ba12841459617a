package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// memNet is an in-memory network of memberlist transports, like
// memberlist's MockNetwork, with what the driver's tests need beyond it:
// transports may be added while nodes run, a stopped node's packets are
// dropped instead of blocking the sender, routing is by address only (a
// node restarted under its name at a new address is another endpoint), and
// a pair of endpoints can be cut apart (packets dropped, streams refused)
// and healed: a real partition, with memberlist's encryption and labels
// applied above it as on UDP/TCP. Packets may also be lost at random and
// delayed on every link (impair); streams stay reliable, as TCP is.
type memNet struct {
	mu    sync.Mutex
	port  int
	nodes map[string]*memTransport
	cut   map[[2]string]bool

	// Packet impairment, under mu: loss is each packet's probability of
	// being lost, a delivered one arrives after delay plus up to jitter.
	// rnd is seeded: the draws repeat (their order among senders
	// follows the scheduler).
	loss          float64
	delay, jitter time.Duration
	rnd           *rand.Rand
	// sent counts the packets routed to a live endpoint, lost those the
	// loss took, delayed those held back before delivery.
	sent, lost, delayed atomic.Uint64
}

func newMemNet() *memNet {
	return &memNet{port: 7946, nodes: map[string]*memTransport{}, cut: map[[2]string]bool{}}
}

func pair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// partition cuts (or heals) the link between two addresses.
func (n *memNet) partition(a, b string, cut bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if cut {
		n.cut[pair(a, b)] = true
	} else {
		delete(n.cut, pair(a, b))
	}
}

// impair sets every link's packet loss probability and delay (delay
// plus a uniform draw below jitter); all zero restores a perfect network.
func (n *memNet) impair(seed uint64, loss float64, delay, jitter time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.loss, n.delay, n.jitter = loss, delay, jitter
	n.rnd = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// fate draws a routed packet's: lost, or delivered after wait.
func (n *memNet) fate() (lost bool, wait time.Duration) {
	n.sent.Add(1)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.rnd == nil {
		return false, 0
	}
	if n.loss > 0 && n.rnd.Float64() < n.loss {
		n.lost.Add(1)
		return true, 0
	}
	wait = n.delay
	if n.jitter > 0 {
		wait += time.Duration(n.rnd.Int64N(int64(n.jitter)))
	}
	if wait > 0 {
		n.delayed.Add(1)
	}
	return false, wait
}

// route returns the destination of a send from src, or nil when it is
// unknown, stopped or cut off.
func (n *memNet) route(src, dst string) *memTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.nodes[dst]
	if d == nil || n.cut[pair(src, dst)] {
		return nil
	}
	select {
	case <-d.done:
		return nil
	default:
		return d
	}
}

// newTransport adds an endpoint at 127.0.0.1 on the next port.
func (n *memNet) newTransport() *memTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.port++
	t := &memTransport{net: n, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)), port: n.port,
		packets: make(chan *memberlist.Packet, 1024), received: make(chan *memberlist.Packet),
		streams: make(chan net.Conn), done: make(chan struct{})}
	n.nodes[t.addr] = t
	go t.receive()
	return t
}

// receive hands packets to memberlist stamped with their arrival time, as
// a UDP socket does (memberlist measures round trips with it).
func (t *memTransport) receive() {
	for {
		select {
		case p := <-t.packets:
			p.Timestamp = time.Now()
			select {
			case t.received <- p:
			case <-t.done:
				return
			}
		case <-t.done:
			return
		}
	}
}

type memTransport struct {
	net      *memNet
	addr     string
	port     int
	packets  chan *memberlist.Packet // in flight
	received chan *memberlist.Packet
	streams  chan net.Conn
	done     chan struct{}
	once     sync.Once
}

var _ memberlist.NodeAwareTransport = (*memTransport)(nil)

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

func (t *memTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return net.IPv4(127, 0, 0, 1), t.port, nil
}

func (t *memTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress delivers like UDP: to a stopped, unknown or cut-off
// node, or a full queue, the packet is lost without an error; so is one
// the network's loss takes. A delayed packet is delivered by a timer,
// and may overtake an earlier one (UDP keeps no order either).
func (t *memTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	d := t.net.route(t.addr, a.Addr)
	if d == nil {
		return now, nil
	}
	lost, wait := t.net.fate()
	if lost {
		return now, nil
	}
	p := &memberlist.Packet{Buf: slices.Clone(b), From: memAddr(t.addr), Timestamp: now}
	if wait > 0 {
		time.AfterFunc(wait, func() { d.deliver(p) })
		return now, nil
	}
	d.deliver(p)
	return now, nil
}

// deliver queues an arriving packet unless the node stopped or its queue
// is full.
func (t *memTransport) deliver(p *memberlist.Packet) {
	select {
	case <-t.done:
		return
	default:
	}
	select {
	case t.packets <- p:
	default:
	}
}

func (t *memTransport) PacketCh() <-chan *memberlist.Packet { return t.received }

func (t *memTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *memTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := t.net.route(t.addr, a.Addr)
	if d == nil {
		return nil, fmt.Errorf("dial %s: connection refused", a.Addr)
	}
	local, remote := net.Pipe()
	select {
	case d.streams <- remote:
		return local, nil
	case <-d.done:
	case <-time.After(timeout):
	}
	local.Close()
	remote.Close()
	return nil, fmt.Errorf("dial %s: %w", a.Addr, errors.New("timed out"))
}

func (t *memTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *memTransport) Shutdown() error {
	t.once.Do(func() { close(t.done) })
	return nil
}

// testNode is a Cluster on a memNet, run by the test.
type testNode struct {
	c      *Cluster
	tr     *memTransport
	cancel context.CancelFunc
	done   chan error
}

// fastTiming makes failure detection take a few hundred milliseconds.
func fastTiming() Timing {
	return Timing{ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond,
		GossipInterval: 20 * time.Millisecond, PushPullInterval: 300 * time.Millisecond,
		SuspicionMult: 2, GossipToTheDead: 500 * time.Millisecond}
}

// newNode builds (does not run) a cluster named name on nw, with the
// local profile and fastTiming; opt and cfg may change the options and
// the cluster configuration.
func newNode(t *testing.T, nw *memNet, name string, opt func(*Options), cfg func(*ClusterConfig)) *testNode {
	t.Helper()
	o := Options{Name: name, Profile: "local", Timing: fastTiming(), Log: slog.New(slog.DiscardHandler)}
	if opt != nil {
		opt(&o)
	}
	mc, err := MemberlistConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	tr := nw.newTransport()
	mc.Transport = tr
	cc := ClusterConfig{Name: name, Epoch: uint64(time.Now().UnixNano()), Memberlist: mc, Log: slog.New(slog.DiscardHandler)}
	if cfg != nil {
		cfg(&cc)
	}
	c, err := NewCluster(cc)
	if err != nil {
		t.Fatal(err)
	}
	return &testNode{c: c, tr: tr}
}

// run starts the node's Run until the test ends.
func (n *testNode) run(t *testing.T) *testNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- n.c.Run(ctx) }()
	t.Cleanup(n.stop)
	return n
}

// stop leaves gracefully (Run's end); idempotent.
func (n *testNode) stop() {
	if n.cancel != nil {
		n.cancel()
		<-n.done
		n.cancel = nil
	}
}

// kill stops the node without leaving: others must detect it.
func (n *testNode) kill() {
	n.c.stopOnce.Do(func() { n.c.stopErr = n.c.ml.Shutdown() })
	n.stop()
}

func (n *testNode) state(name string) (Member, bool) {
	for _, m := range n.c.MemberStates() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

func alive(nodes ...*testNode) int {
	n := 0
	for _, t := range nodes {
		for _, m := range t.c.MemberStates() {
			if m.State == StateAlive {
				n++
			}
		}
	}
	return n
}
