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
}

// fleet starts n nodes; spare more can join later (add).
func fleet(t *testing.T, n, spare int) *testFleet {
	t.Helper()
	f := &testFleet{}
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
	c, err := NewCluster(ClusterConfig{Name: name, Epoch: 1, Memberlist: mc, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	if len(f.cs) > 0 {
		if _, err := c.Join([]string{f.cs[0].ml.LocalNode().Address()}); err != nil {
			t.Fatal(err)
		}
	}
	f.cs = append(f.cs, c)
	return c
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
	f := fleet(t, 5, 0).cs
	eventually(t, "5 members everywhere", func() bool {
		for _, c := range f {
			if len(c.Members()) != 5 {
				return false
			}
		}
		return true
	})
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
