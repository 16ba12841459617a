package gossip

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// The call messages round-trip, and DecodeRows refuses them (they share NotifyMsg with rows).
func TestCallMessages(t *testing.T) {
	req := encodeCallRequest(7, methodFetch, []byte("fleet/abc"), "n1")
	id, method, body, from, err := decodeCallRequest(req[1:])
	if err != nil || id != 7 || method != methodFetch || string(body) != "fleet/abc" || from != "n1" {
		t.Fatalf("request: %d %q %q %q %v", id, method, body, from, err)
	}
	for _, c := range []struct {
		status byte
		body   []byte
	}{{callOK, []byte("vrrp: {}\n")}, {callOK, nil}, {callNotFound, nil}, {callFailed, []byte("refused")}} {
		id, r, err := decodeCallReply(encodeCallReply(9, c.status, c.body)[1:])
		if err != nil || id != 9 || r.status != c.status || !bytes.Equal(r.body, c.body) {
			t.Fatalf("reply %+v: %d %+v %v", c, id, r, err)
		}
	}
	if _, _, err := decodeCallReply([]byte{}); err == nil {
		t.Fatal("an empty reply decoded")
	}
	if _, _, _, _, err := decodeCallRequest(req[1:4]); err == nil {
		t.Fatal("a truncated request decoded")
	}
	for _, m := range [][]byte{req, encodeCallReply(1, callOK, []byte("x"))} {
		if _, err := DecodeRows(m); err == nil {
			t.Fatalf("DecodeRows took a call message %x", m[:1])
		}
	}
}

// Issue 14's handoff requests are calls: the member's Serve answers with a body, an error
// (a *RemoteError naming the member) or ErrNotFound for a method it does not serve; the
// requester's name reaches Serve.
func TestCall(t *testing.T) {
	nw := newMemNet()
	a := newNode(t, nw, "n0", nil, nil).run(t)
	b := newNode(t, nw, "n1", nil, func(cc *ClusterConfig) {
		cc.Join = []string{a.tr.addr}
		cc.Serve = func(ctx context.Context, from, method string, body []byte) ([]byte, error) {
			switch method {
			case "echo":
				return append([]byte(from+":"), body...), nil
			case "fail":
				return nil, errors.New("not the master")
			}
			return nil, ErrNotFound
		}
	}).run(t)
	waitMembers(t, "2 members", 2, a, b)
	eventually(t, "drivers see 2 alive", func() bool { return alive(a, b) == 4 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := a.c.Call(ctx, "n1", "echo", []byte("hi")); err != nil || string(got) != "n0:hi" {
		t.Fatalf("echo: %q %v", got, err)
	}
	var re *RemoteError
	if _, err := a.c.Call(ctx, "n1", "fail", nil); !errors.As(err, &re) || re.Node != "n1" || re.Message != "not the master" {
		t.Fatalf("fail: %v", err)
	}
	if _, err := a.c.Call(ctx, "n1", "nothing", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown method: %v", err)
	}
	if _, err := b.c.Call(ctx, "n0", "echo", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a member without Serve: %v", err)
	}
	if _, err := a.c.Call(ctx, "n1", methodFetch, nil); err == nil {
		t.Fatal("Call took the reserved fetch method")
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
