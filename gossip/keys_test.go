package gossip

import (
	"bytes"
	"context"
	"encoding/base64"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func b64(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// Key messages round-trip, and their type bytes are ones DecodeRows
// refuses, so a key message is never taken for rows (and the reverse).
func TestKeyMessages(t *testing.T) {
	req := encodeKeyRequest(7, KeyUse, key(1), "n3")
	got, err := decodeKeyRequest(req[1:])
	if err != nil || got.id != 7 || got.op != KeyUse || !bytes.Equal(got.key, key(1)) || got.from != "n3" {
		t.Errorf("request round trip: %+v, %v", got, err)
	}
	rep := encodeKeyReply(9, KeyResult{Node: "n1", Err: "boom"}, [][]byte{key(2), key(3)})
	id, res, err := decodeKeyReply(rep[1:])
	if err != nil || id != 9 || res.Node != "n1" || res.Err != "boom" || !slices.Equal(res.Keys, []string{b64(key(2)), b64(key(3))}) {
		t.Errorf("reply round trip: %d %+v, %v", id, res, err)
	}
	for _, m := range [][]byte{req, rep} {
		if _, err := DecodeRows(m); err == nil {
			t.Errorf("DecodeRows accepted key message %x", m[:1])
		}
	}
	if AppendRows(nil)[0] == msgKeyRequest || AppendRows(nil)[0] == msgKeyReply {
		t.Error("row messages start with a key message type")
	}
	for _, bad := range [][]byte{req[1 : len(req)-1], append(slices.Clone(req[1:]), 0), {0xff}} {
		if _, err := decodeKeyRequest(bad); err == nil {
			t.Errorf("decodeKeyRequest(%x) accepted", bad)
		}
	}
	if _, _, err := decodeKeyReply([]byte{1, 0, 0, 200}); err == nil {
		t.Error("decodeKeyReply accepted a key count beyond the message")
	}
}

// Fleet-wide rotation, serf's model (issue 13): three nodes share key A;
// install B, use B, remove A. The fleet stays joined throughout, every
// node persists each change, a row published afterwards reaches everyone,
// and a node that knows only A can no longer join. The primary cannot be
// removed and a key not installed cannot be used, on any node.
func TestKeyRotation(t *testing.T) {
	nw := newMemNet()
	a, b, c := key('A'), key('B'), key('C')
	var mu sync.Mutex
	persisted := map[string][][]byte{}
	opt := func(o *Options) {
		o.Keys = [][]byte{a}
		// Encryption costs CPU under -race: no false suspicions.
		o.Timing.ProbeInterval, o.Timing.ProbeTimeout, o.Timing.SuspicionMult = 500*time.Millisecond, 250*time.Millisecond, 4
	}
	var ns []*testNode
	for _, name := range []string{"n0", "n1", "n2"} {
		ns = append(ns, newNode(t, nw, name, opt, func(cc *ClusterConfig) {
			if len(ns) > 0 {
				cc.Join = []string{ns[0].tr.addr}
			}
			cc.OnKeyring = func(keys [][]byte) error {
				mu.Lock()
				defer mu.Unlock()
				persisted[cc.Name] = keys
				return nil
			}
		}).run(t))
	}
	waitMembers(t, "3 members", 3, ns...)
	eventually(t, "drivers see 3 alive", func() bool { return alive(ns...) == 9 })

	// Watch membership during the whole rotation.
	var shrunk atomic.Int64
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(5 * time.Millisecond):
			}
			for _, n := range ns {
				if n.c.ml.NumMembers() != 3 {
					shrunk.Add(1)
				}
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	step := func(op KeyOp, k []byte, wantKeys ...[]byte) {
		t.Helper()
		res, err := ns[1].c.KeyOp(ctx, op, k)
		if err != nil {
			t.Fatalf("%s: %v (%+v)", op, err, res)
		}
		if len(res) != 3 {
			t.Fatalf("%s: %d results, want one per member: %+v", op, len(res), res)
		}
		for _, n := range ns {
			if got := n.c.keyring.GetKeys(); !slices.EqualFunc(got, wantKeys, bytes.Equal) {
				t.Errorf("after %s, %s's keyring has %d keys (primary %v), want %d", op, n.c.Self(),
					len(got), bytes.Equal(got[0], wantKeys[0]), len(wantKeys))
			}
			mu.Lock()
			if p := persisted[n.c.Self()]; !slices.EqualFunc(p, wantKeys, bytes.Equal) {
				t.Errorf("after %s, %s persisted %d keys, want %d", op, n.c.Self(), len(p), len(wantKeys))
			}
			mu.Unlock()
		}
	}
	step(KeyInstall, b, a, b)
	step(KeyUse, b, b, a)
	// Refusals, on every node: each answers with an error.
	for _, bad := range []struct {
		op KeyOp
		k  []byte
	}{{KeyRemove, b}, {KeyUse, c}} {
		res, err := ns[0].c.KeyOp(ctx, bad.op, bad.k)
		if err == nil || len(res) != 3 {
			t.Fatalf("%s of a refused key: %v, %+v", bad.op, err, res)
		}
		for _, r := range res {
			if r.Err == "" {
				t.Errorf("%s of a refused key succeeded on %s", bad.op, r.Node)
			}
		}
	}
	step(KeyRemove, a, b)

	res, err := ns[2].c.KeyOp(ctx, KeyList, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !slices.Equal(r.Keys, []string{b64(b)}) {
			t.Errorf("list on %s: %v", r.Node, r.Keys)
		}
	}
	close(stopWatch)
	<-watched
	if n := shrunk.Load(); n > 0 {
		t.Errorf("membership dropped below 3 during the rotation (%d observations)", n)
	}

	if err := ns[0].c.Publish(KindHealth, "after-rotation", []byte("up")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the row on every node", func() bool {
		for _, n := range ns {
			if len(n.c.Get(KindHealth, "after-rotation")) != 1 {
				return false
			}
		}
		return true
	})

	late := newNode(t, nw, "late", func(o *Options) { o.Keys = [][]byte{a} }, nil).run(t)
	if n, err := late.c.Join([]string{ns[0].tr.addr}); err == nil {
		t.Errorf("a node with the removed key joined (%d answered)", n)
	}
	time.Sleep(300 * time.Millisecond)
	if got := ns[0].c.ml.NumMembers(); got != 3 {
		t.Errorf("n0 has %d members after the old-key node tried, want 3", got)
	}
}

// Without encryption there is no keyring to rotate; a bad operation or key
// is refused before anything is sent.
func TestKeyOpRefused(t *testing.T) {
	nw := newMemNet()
	plain := newNode(t, nw, "plain", nil, nil).run(t)
	if _, err := plain.c.KeyOp(context.Background(), KeyList, nil); err == nil {
		t.Error("KeyOp without a keyring succeeded")
	}
	enc := newNode(t, nw, "enc", func(o *Options) { o.Keys = [][]byte{key(1)} }, nil).run(t)
	for _, tt := range []struct {
		op KeyOp
		k  []byte
	}{{"rotate", key(2)}, {KeyInstall, []byte("short")}, {KeyUse, nil}} {
		if _, err := enc.c.KeyOp(context.Background(), tt.op, tt.k); err == nil {
			t.Errorf("KeyOp(%s, %d-byte key) succeeded", tt.op, len(tt.k))
		}
	}
	res, err := enc.c.KeyOp(context.Background(), KeyList, nil)
	if err != nil || len(res) != 1 || !slices.Equal(res[0].Keys, []string{b64(key(1))}) {
		t.Errorf("list on a lone node: %+v, %v", res, err)
	}

	// A member that never answers (its Run is not draining messages) is
	// reported as such when the context ends.
	idle := newNode(t, nw, "idle", func(o *Options) { o.Keys = [][]byte{key(1)} }, nil)
	t.Cleanup(idle.kill)
	if _, err := idle.c.Join([]string{enc.tr.addr}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "idle alive on enc", func() bool { m, _ := enc.state("idle"); return m.State == StateAlive })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res, err = enc.c.KeyOp(ctx, KeyList, nil)
	if err == nil || len(res) != 2 || res[1].Node != "idle" || res[1].Err != noAnswer || res[0].Err != "" {
		t.Errorf("list with a silent member: %+v, %v", res, err)
	}
}
