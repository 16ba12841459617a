package gossip

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// testFleet is clusters on memberlist's in-memory network (its
// MockTransport: real memberlist, packets in memory), each joined to the
// first, running until the test ends.
type testFleet struct {
	net memberlist.MockNetwork
	// transports are made before any node runs: MockNetwork's map of
	// them is not safe to add to while nodes send.
	transports []*memberlist.MockTransport
	cs         []*Cluster
	// tune, when set, changes each node's configuration before it starts.
	tune func(*memberlist.Config, *ClusterConfig)
	// cancels and dones stop the nodes, all at once (each leave may wait
	// out its timeout).
	cancels []context.CancelFunc
	dones   []chan error
}

// fleet starts n nodes; spare more can join later (add).
func fleet(t *testing.T, n, spare int) *testFleet {
	return tunedFleet(t, n, spare, nil)
}

// tunedFleet is fleet with tune applied to every node's configuration.
func tunedFleet(t *testing.T, n, spare int, tune func(*memberlist.Config, *ClusterConfig)) *testFleet {
	t.Helper()
	f := &testFleet{tune: tune}
	t.Cleanup(func() {
		for _, cancel := range f.cancels {
			cancel()
		}
		for _, done := range f.dones {
			<-done
		}
	})
	for i := range n + spare {
		f.transports = append(f.transports, f.net.NewTransport(fmt.Sprintf("n%d", i)))
	}
	for range n {
		f.add(t)
	}
	return f
}

// add starts one more cluster and joins it to the first.
func (f *testFleet) add(t *testing.T) *Cluster {
	t.Helper()
	name := fmt.Sprintf("n%d", len(f.cs))
	mc := memberlist.DefaultLocalConfig()
	mc.Transport = f.transports[len(f.cs)]
	mc.Logger = log.New(io.Discard, "", 0)
	mc.GossipInterval = 20 * time.Millisecond
	mc.PushPullInterval = 500 * time.Millisecond
	mc.ProbeInterval = 200 * time.Millisecond
	cc := ClusterConfig{Name: name, Epoch: 1, Memberlist: mc, Log: slog.New(slog.DiscardHandler)}
	if f.tune != nil {
		f.tune(mc, &cc)
	}
	c, err := NewCluster(cc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	f.cancels, f.dones = append(f.cancels, cancel), append(f.dones, done)
	if len(f.cs) > 0 {
		seeds := []string{f.cs[0].ml.LocalNode().Address()}
		if f.tune != nil {
			// Tuned fleets may gossip nothing: each node learns of
			// the others by joining every one.
			seeds = seeds[:0]
			for _, o := range f.cs {
				seeds = append(seeds, o.ml.LocalNode().Address())
			}
		}
		if _, err := c.Join(seeds); err != nil {
			t.Fatal(err)
		}
	}
	f.cs = append(f.cs, c)
	return c
}

// formed waits until every node lists every node, and returns them.
func (f *testFleet) formed(t *testing.T) []*Cluster {
	t.Helper()
	eventually(t, fmt.Sprintf("%d members everywhere", len(f.cs)), func() bool {
		for _, c := range f.cs {
			if len(c.Members()) != len(f.cs) {
				return false
			}
		}
		return true
	})
	return f.cs
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A row one node publishes reaches every node; so does a later value of
// it, which replaces the first everywhere.
func TestClusterSpreadsRows(t *testing.T) {
	f := fleet(t, 5, 0).formed(t)
	if err := f[3].Publish(KindHealth, "web/198.51.100.11:80", []byte("down")); err != nil {
		t.Fatal(err)
	}
	seen := func(want string) func() bool {
		return func() bool {
			for _, c := range f {
				rows := c.Get(KindHealth, "web/198.51.100.11:80")
				if len(rows) != 1 || rows[0].Origin != "n3" || string(rows[0].Value) != want {
					return false
				}
			}
			return true
		}
	}
	eventually(t, "n3's row on every node", seen("down"))
	if err := f[3].Publish(KindHealth, "web/198.51.100.11:80", []byte("up")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "n3's new value on every node", seen("up"))
}

// A node that joins later gets what was published before it came, by the
// push/pull exchange of whole stores (no broadcast is sent for it).
func TestClusterLateJoinerConverges(t *testing.T) {
	f := fleet(t, 2, 1)
	for i, c := range f.cs {
		if err := c.Publish(KindNode, "summary", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "both rows on n1", func() bool { return len(f.cs[1].Get(KindNode, "summary")) == 2 })
	time.Sleep(300 * time.Millisecond) // the broadcasts' retransmissions are over
	late := f.add(t)
	eventually(t, "both rows on the late joiner", func() bool { return len(late.Get(KindNode, "summary")) == 2 })
}

// A node that leaves gracefully is marked stale on the others; its rows
// stay until the grace period ends.
func TestClusterLeaveMarksStale(t *testing.T) {
	f := fleet(t, 3, 0).cs
	if err := f[2].Publish(KindHealth, "k", []byte("up")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "n2's row on n0", func() bool { return len(f[0].Get(KindHealth, "k")) == 1 })
	if err := f[2].stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "n2 stale on n0", func() bool { return f[0].Stale("n2") })
	if got := f[0].Get(KindHealth, "k"); len(got) != 1 {
		t.Errorf("n2's row went before the grace period: %v", got)
	}
}

// The delegate never blocks memberlist: with the inbound queue full, a
// message is dropped and counted.
func TestNotifyMsgNeverBlocks(t *testing.T) {
	c := &Cluster{inbound: make(chan []byte, 1)}
	d := (*delegate)(c)
	msg := []byte{1, 2, 3}
	d.NotifyMsg(msg)
	msg[0] = 9 // memberlist reuses its buffer: the queued copy keeps the old bytes
	done := make(chan struct{})
	go func() {
		d.NotifyMsg([]byte{4})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("NotifyMsg blocked on a full queue")
	}
	if c.Dropped() != 1 {
		t.Errorf("dropped %d, want 1", c.Dropped())
	}
	if got := <-c.inbound; got[0] != 1 {
		t.Errorf("queued message %v changed with the caller's buffer", got)
	}
}

// A new row reaches every member by its origin's direct send alone (no
// gossip rounds, no push/pull here), and its receivers queue it for a
// relay on the smaller budget, not as a row of their own; a refresh of
// the same value is not sent directly, a new value is; with the direct
// send off the same row reaches nobody.
func TestClusterDirectSend(t *testing.T) {
	for _, fanout := range []int{0, -1} {
		t.Run(fmt.Sprintf("fanout=%d", fanout), func(t *testing.T) {
			f := tunedFleet(t, 5, 0, func(mc *memberlist.Config, cc *ClusterConfig) {
				mc.GossipNodes = 0      // no gossip rounds
				mc.PushPullInterval = 0 // no periodic state exchange
				mc.ProbeInterval = time.Hour
				cc.Fanout = fanout
			}).formed(t)
			if err := f[2].Publish(KindHealth, "web/198.51.100.12:80", []byte("down")); err != nil {
				t.Fatal(err)
			}
			got := func() int {
				n := 0
				for _, c := range f {
					if len(c.Get(KindHealth, "web/198.51.100.12:80")) == 1 {
						n++
					}
				}
				return n
			}
			if fanout < 0 {
				time.Sleep(500 * time.Millisecond)
				if n := got(); n != 1 {
					t.Fatalf("without direct sends and gossip the row is on %d nodes, want 1 (its origin)", n)
				}
				return
			}
			eventually(t, "the row on every node", func() bool { return got() == 5 })
			for i, c := range f {
				if i == 2 {
					if c.queue.NumQueued() != 1 || c.relay.NumQueued() != 0 {
						t.Errorf("origin: %d queued, %d relays; want its own broadcast only", c.queue.NumQueued(), c.relay.NumQueued())
					}
					continue
				}
				if c.queue.NumQueued() != 0 || c.relay.NumQueued() != 1 {
					t.Errorf("n%d: %d queued, %d relays; want one relay", i, c.queue.NumQueued(), c.relay.NumQueued())
				}
			}
			// A refresh (the same value again) is left to gossip: here,
			// nobody hears of it.
			first := f[0].Get(KindHealth, "web/198.51.100.12:80")[0].Version
			if err := f[2].Publish(KindHealth, "web/198.51.100.12:80", []byte("down")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			if v := f[0].Get(KindHealth, "web/198.51.100.12:80")[0].Version; v != first {
				t.Errorf("a refresh was sent directly: n0 has version %v, had %v", v, first)
			}
			if err := f[2].Publish(KindHealth, "web/198.51.100.12:80", []byte("up")); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the new value everywhere", func() bool {
				for _, c := range f {
					if r := c.Get(KindHealth, "web/198.51.100.12:80"); len(r) != 1 || string(r[0].Value) != "up" {
						return false
					}
				}
				return true
			})
		})
	}
}

// Members that compress (memberlist's default, the wan profile) and members
// that do not (lan, lan-fast, local) gossip together: a receiver decodes
// compressed packets and push/pull whatever its own setting.
func TestMixedCompression(t *testing.T) {
	n := 0
	f := tunedFleet(t, 3, 0, func(mc *memberlist.Config, _ *ClusterConfig) {
		mc.EnableCompression = n%2 == 0
		n++
	})
	cs := f.formed(t)
	for i, c := range cs {
		if err := c.Publish(KindHealth, fmt.Sprintf("web/198.51.100.%d:80", 10+i), []byte("up")); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every row on every member", func() bool {
		for _, c := range cs {
			if len(c.Rows(KindHealth)) != len(cs) {
				return false
			}
		}
		return true
	})
}
