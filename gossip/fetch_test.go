package gossip

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// The fetch messages round-trip, and DecodeRows refuses them (they share NotifyMsg with rows).
func TestFetchMessages(t *testing.T) {
	req := encodeFetchRequest(7, "fleet/abc", "n1")
	id, key, from, err := decodeFetchRequest(req[1:])
	if err != nil || id != 7 || key != "fleet/abc" || from != "n1" {
		t.Fatalf("request: %d %q %q %v", id, key, from, err)
	}
	for _, c := range []struct {
		found   bool
		content []byte
	}{{true, []byte("vrrp: {}\n")}, {true, nil}, {false, nil}} {
		id, r, err := decodeFetchReply(encodeFetchReply(9, c.found, c.content)[1:])
		if err != nil || id != 9 || r.found != c.found || !bytes.Equal(r.content, c.content) {
			t.Fatalf("reply %+v: %d %+v %v", c, id, r, err)
		}
	}
	if _, _, err := decodeFetchReply([]byte{}); err == nil {
		t.Fatal("an empty reply decoded")
	}
	for _, m := range [][]byte{req, encodeFetchReply(1, true, []byte("x"))} {
		if _, err := DecodeRows(m); err == nil {
			t.Fatalf("DecodeRows took a fetch message %x", m[:1])
		}
	}
}

// Issue 14's documents travel by Fetch: a member asks another for content by key over the
// reliable stream and gets it whole (here 300 kB, far beyond a gossip packet), or ErrNotFound.
func TestFetch(t *testing.T) {
	nw := newMemNet()
	doc := bytes.Repeat([]byte("lb:\n  virtual_servers: []\n"), 12000)
	provider := func(key string) ([]byte, bool) {
		if key == "fleet/v1" {
			return doc, true
		}
		return nil, false
	}
	a := newNode(t, nw, "n0", nil, nil).run(t)
	b := newNode(t, nw, "n1", nil, func(cc *ClusterConfig) {
		cc.Join = []string{a.tr.addr}
		cc.Provide = provider
	}).run(t)
	waitMembers(t, "2 members", 2, a, b)
	eventually(t, "drivers see 2 alive", func() bool { return alive(a, b) == 4 })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := a.c.Fetch(ctx, "n1", "fleet/v1")
	if err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("fetch: %d bytes, %v (want %d)", len(got), err, len(doc))
	}
	if _, err := a.c.Fetch(ctx, "n1", "fleet/v2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fetch of missing content: %v", err)
	}
	// n0 has no provider: nothing to give.
	if _, err := b.c.Fetch(ctx, "n0", "fleet/v1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fetch from a member without content: %v", err)
	}
	if _, err := a.c.Fetch(ctx, "n9", "fleet/v1"); err == nil || !strings.Contains(err.Error(), "not a live member") {
		t.Fatalf("fetch from a stranger: %v", err)
	}
	// A member cut off does not answer: the context ends the wait.
	nw.partition(a.tr.addr, b.tr.addr, true)
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, err := a.c.Fetch(short, "n1", "fleet/v1"); err == nil {
		t.Fatal("a fetch across a partition answered")
	}
}
