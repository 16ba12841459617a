package gossip

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func newTestTransport(t *testing.T) *transport {
	t.Helper()
	tr, err := newTransport("127.0.0.1", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown() })
	return tr
}

func (t *transport) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(t.port)) }

func receive(t *testing.T, tr *transport) *memberlist.Packet {
	t.Helper()
	select {
	case p := <-tr.PacketCh():
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no packet within 5s")
		return nil
	}
}

// Packets arrive whole, from the sender's port, each in a buffer of its own: the transport reads
// into one buffer it reuses, so a copy handed out must not change with the next packet.
func TestTransportPackets(t *testing.T) {
	a, b := newTestTransport(t), newTestTransport(t)
	first, second := bytes.Repeat([]byte{1}, 1400), bytes.Repeat([]byte{2}, 60000)
	if _, err := a.WriteTo(first, b.addr()); err != nil {
		t.Fatal(err)
	}
	p1 := receive(t, b)
	if _, err := a.WriteToAddress(second, memberlist.Address{Addr: b.addr(), Name: "b"}); err != nil {
		t.Fatal(err)
	}
	p2 := receive(t, b)
	if !bytes.Equal(p1.Buf, first) || !bytes.Equal(p2.Buf, second) {
		t.Fatalf("received %d and %d bytes, the first starting %v: not what was sent", len(p1.Buf), len(p2.Buf), p1.Buf[:4])
	}
	if cap(p1.Buf) >= maxPacket {
		t.Errorf("a %d-byte packet kept a %d-byte buffer alive", len(p1.Buf), cap(p1.Buf))
	}
	if p1.From.String() != a.addr() || p1.Timestamp.IsZero() {
		t.Errorf("from %v at %v, want %s and a time", p1.From, p1.Timestamp, a.addr())
	}
	if _, err := a.WriteTo([]byte("x"), "localhost:"+strconv.Itoa(b.port)); err != nil {
		t.Fatalf("a host name is resolved: %v", err)
	}
	if p := receive(t, b); string(p.Buf) != "x" {
		t.Errorf("got %q", p.Buf)
	}
}

// Streams: a dial reaches the other's StreamCh.
func TestTransportStreams(t *testing.T) {
	a, b := newTestTransport(t), newTestTransport(t)
	c, err := a.DialAddressTimeout(memberlist.Address{Addr: b.addr()}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var s net.Conn
	select {
	case s = <-b.StreamCh():
	case <-time.After(5 * time.Second):
		t.Fatal("no stream within 5s")
	}
	defer s.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(s, got); err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v", got, err)
	}
}

// Shutdown returns while a packet waits for a reader that is gone (memberlist stops reading before
// it shuts the transport down), closes the port, and may be called again.
func TestTransportShutdown(t *testing.T) {
	a, b := newTestTransport(t), newTestTransport(t)
	if _, err := a.WriteTo([]byte("unread"), b.addr()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the reader now blocks on the channel
	done := make(chan struct{})
	go func() {
		_ = b.Shutdown()
		_ = b.Shutdown()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown blocked")
	}
	if c, err := net.DialTimeout("tcp", b.addr(), time.Second); err == nil {
		c.Close()
		t.Error("the TCP port still accepts after Shutdown")
	}
}

// The advertised address: the configured one, else the bound one with the bound port (port 0
// takes the kernel's choice for TCP and UDP alike).
func TestTransportAdvertise(t *testing.T) {
	tr := newTestTransport(t)
	if tr.port == 0 {
		t.Fatal("port 0 was not replaced by the bound port")
	}
	ip, port, err := tr.FinalAdvertiseAddr("", 0)
	if err != nil || ip.String() != "127.0.0.1" || port != tr.port {
		t.Errorf("bound: %v %d %v", ip, port, err)
	}
	ip, port, err = tr.FinalAdvertiseAddr("192.0.2.7", 7946)
	if err != nil || ip.String() != "192.0.2.7" || len(ip) != 4 || port != 7946 {
		t.Errorf("configured: %v (%d bytes) %d %v", ip, len(ip), port, err)
	}
	if _, _, err := tr.FinalAdvertiseAddr("not an address", 7946); err == nil {
		t.Error("a bad advertise address accepted")
	}
	if _, err := newTransport("not an address", 0, nil); err == nil {
		t.Error("a bad bind address accepted")
	}
	if _, err := newTransport("127.0.0.1", tr.port, nil); err == nil {
		t.Error("a port in use accepted")
	}
}

// Two clusters on the real transport (not the mock network of the other tests) join and see each
// other's rows.
func TestClusterOnTransport(t *testing.T) {
	mk := func(name string) *Cluster {
		mc, err := MemberlistConfig(Options{Name: name, Profile: "local", Cluster: "test"})
		if err != nil {
			t.Fatal(err)
		}
		mc.BindAddr, mc.BindPort = "127.0.0.1", 0
		c, err := NewCluster(ClusterConfig{Name: name, Memberlist: mc, Epoch: 1})
		if err != nil {
			t.Fatal(err)
		}
		// Run leaves and shuts memberlist down once the test's context ends.
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = c.Run(t.Context())
		}()
		t.Cleanup(func() { <-done })
		return c
	}
	a, b := mk("a"), mk("b")
	if a.selfAddr == "127.0.0.1:0" {
		t.Fatalf("a advertises %s: port 0 not replaced by the bound port", a.selfAddr)
	}
	if _, err := b.Join([]string{a.selfAddr}); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(KindNode, KeySummary, []byte(`{"b":"x"}`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(b.Rows(KindNode)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("b did not get a's row; b's members %v", b.Members())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
