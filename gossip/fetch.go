package gossip

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Fetch carries content too large for a gossip row (issue 14: a pushed
// fleet document; gossip carries only its announcement) from one member
// to another over memberlist's reliable, encrypted stream. The requester
// names a key; the member answers with what its ClusterConfig.Provide
// gives for it, or that it has none.
//
//	request: msgFetchRequest | id (uvarint) | key | requester name
//	reply:   msgFetchReply | id (uvarint) | found (1 byte) | content
const (
	msgFetchRequest byte = 0x83
	msgFetchReply   byte = 0x84
)

// MaxFetchSize bounds fetched content: a configuration file's limit.
const MaxFetchSize = 64 << 20

// ErrNotFound is returned (wrapped) by Fetch when the member has no
// content under the key.
var ErrNotFound = errors.New("the member has no such content")

type fetchReply struct {
	found   bool
	content []byte
}

func encodeFetchRequest(id uint64, key, from string) []byte {
	b := binary.AppendUvarint([]byte{msgFetchRequest}, id)
	b = appendField(b, []byte(key))
	return appendField(b, []byte(from))
}

func decodeFetchRequest(b []byte) (id uint64, key, from string, err error) {
	d := decoder{b: b}
	id = d.uvarint("id")
	key = string(d.field("key"))
	from = string(d.field("requester"))
	return id, key, from, d.done("fetch request")
}

func encodeFetchReply(id uint64, found bool, content []byte) []byte {
	b := binary.AppendUvarint([]byte{msgFetchReply}, id)
	if !found {
		return append(b, 0)
	}
	return append(append(b, 1), content...)
}

func decodeFetchReply(b []byte) (uint64, fetchReply, error) {
	d := decoder{b: b}
	id := d.uvarint("id")
	if d.err != nil || len(d.b) == 0 {
		return 0, fetchReply{}, fmt.Errorf("gossip: decoding fetch reply: %w", cmpErr(d.err, errors.New("no found flag")))
	}
	r := fetchReply{found: d.b[0] == 1, content: bytes.Clone(d.b[1:])}
	return id, r, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// Fetch asks the live member node for the content under key and waits for
// its answer until ctx ends.
func (c *Cluster) Fetch(ctx context.Context, node, key string) ([]byte, error) {
	var target *memberlist.Node
	for _, n := range c.liveNodes() {
		if n.Name == node {
			target = &n
			break
		}
	}
	if target == nil || node == c.self {
		return nil, fmt.Errorf("gossip: fetch %q from %s: not a live member", key, node)
	}
	id := c.keySeq.Add(1)
	answer := make(chan fetchReply, 1)
	c.pendMu.Lock()
	c.fetches[id] = answer
	c.pendMu.Unlock()
	defer func() {
		c.pendMu.Lock()
		delete(c.fetches, id)
		c.pendMu.Unlock()
	}()
	if err := c.ml.SendReliable(target, encodeFetchRequest(id, key, c.self)); err != nil {
		return nil, fmt.Errorf("gossip: fetch %q from %s: %w", key, node, err)
	}
	select {
	case r := <-answer:
		if !r.found {
			return nil, fmt.Errorf("gossip: fetch %q from %s: %w", key, node, ErrNotFound)
		}
		return r.content, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("gossip: fetch %q from %s: %w", key, node, ctx.Err())
	}
}

// fetchMessage handles a fetch request or reply (from Run).
func (c *Cluster) fetchMessage(b []byte) {
	switch b[0] {
	case msgFetchRequest:
		id, key, from, err := decodeFetchRequest(b[1:])
		if err != nil {
			c.log.Debug("gossip fetch request refused", "err", err)
			return
		}
		var content []byte
		found := false
		if c.provide != nil {
			content, found = c.provide(key)
		}
		if len(content) > MaxFetchSize {
			c.log.Warn("gossip fetch: content over the limit, not sent", "key", key, "size", len(content), "requester", from)
			content, found = nil, false
		}
		c.peerMu.Lock()
		p, ok := c.peers[from]
		var to memberlist.Node
		if ok {
			to = p.node
		}
		c.peerMu.Unlock()
		if !ok {
			c.log.Warn("gossip fetch request from an unknown member: no answer", "requester", from)
			return
		}
		reply := encodeFetchReply(id, found, content)
		// On a stream of its own: a large answer must not hold Run.
		c.wg.Go(func() {
			if err := c.ml.SendReliable(&to, reply); err != nil {
				c.log.Warn("gossip fetch answer not sent", "requester", from, "err", err)
			}
		})
	case msgFetchReply:
		id, r, err := decodeFetchReply(b[1:])
		if err != nil {
			c.log.Debug("gossip fetch reply refused", "err", err)
			return
		}
		c.pendMu.Lock()
		ch := c.fetches[id]
		c.pendMu.Unlock()
		if ch != nil {
			select {
			case ch <- r:
			default: // a duplicate
			}
		}
	}
}
