package gossip

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// Calls: one member asks another and waits for the answer, over
// memberlist's reliable, encrypted stream (what gossip rows cannot carry).
// Fetch is a call for content too large for a row (issue 14: a pushed
// fleet document; gossip carries only its announcement), answered by
// ClusterConfig.Provide; the coordinated handoff's requests (issue 14:
// "told over gossip's reliable channel to take over at once") are calls
// answered by ClusterConfig.Serve.
//
//	request: msgCallRequest | id (uvarint) | method | body | requester name
//	reply:   msgCallReply | id (uvarint) | status (1 byte) | body or error text
const (
	msgCallRequest byte = 0x83
	msgCallReply   byte = 0x84
)

// methodFetch is Fetch's method: the body is the key.
const methodFetch = "fetch"

// Reply statuses.
const (
	callOK       byte = 0
	callNotFound byte = 1 // Fetch: no content under the key; Serve: no such method
	callFailed   byte = 2 // the body is the error's text
)

// MaxFetchSize bounds fetched content: a configuration file's limit.
const MaxFetchSize = 64 << 20

// ServeTimeout bounds how long ClusterConfig.Serve may take for one call.
const ServeTimeout = 30 * time.Second

// ErrNotFound is returned (wrapped) by Fetch when the member has no
// content under the key, and by Call when it serves no such method.
var ErrNotFound = errors.New("the member has no such content")

// RemoteError is an error a member answered a call with.
type RemoteError struct {
	Node, Method, Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("%s answered %s: %s", e.Node, e.Method, e.Message)
}

type callReply struct {
	status byte
	body   []byte
}

func encodeCallRequest(id uint64, method string, body []byte, from string) []byte {
	b := binary.AppendUvarint([]byte{msgCallRequest}, id)
	b = appendField(b, []byte(method))
	b = appendField(b, body)
	return appendField(b, []byte(from))
}

func decodeCallRequest(b []byte) (id uint64, method string, body []byte, from string, err error) {
	d := decoder{b: b}
	id = d.uvarint("id")
	method = string(d.field("method"))
	body = bytes.Clone(d.field("body"))
	from = string(d.field("requester"))
	return id, method, body, from, d.done("call request")
}

func encodeCallReply(id uint64, status byte, body []byte) []byte {
	b := binary.AppendUvarint([]byte{msgCallReply}, id)
	return append(append(b, status), body...)
}

func decodeCallReply(b []byte) (uint64, callReply, error) {
	d := decoder{b: b}
	id := d.uvarint("id")
	if d.err != nil || len(d.b) == 0 {
		return 0, callReply{}, fmt.Errorf("gossip: decoding call reply: %w", cmpErr(d.err, errors.New("no status")))
	}
	return id, callReply{status: d.b[0], body: bytes.Clone(d.b[1:])}, nil
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
	b, err := c.call(ctx, node, methodFetch, []byte(key))
	if err != nil {
		return nil, fmt.Errorf("gossip: fetch %q from %s: %w", key, node, err)
	}
	return b, nil
}

// Call sends a request to the live member node, served there by its
// ClusterConfig.Serve, and waits for the answer until ctx ends. An error
// the member answered is a *RemoteError; a method it does not serve,
// ErrNotFound.
func (c *Cluster) Call(ctx context.Context, node, method string, body []byte) ([]byte, error) {
	if method == methodFetch {
		return nil, fmt.Errorf("gossip: call %s: reserved method", method)
	}
	b, err := c.call(ctx, node, method, body)
	if err != nil {
		return nil, fmt.Errorf("gossip: call %s on %s: %w", method, node, err)
	}
	return b, nil
}

func (c *Cluster) call(ctx context.Context, node, method string, body []byte) ([]byte, error) {
	var target *memberlist.Node
	for _, n := range c.liveNodes() {
		if n.Name == node {
			target = &n
			break
		}
	}
	if target == nil || node == c.self {
		return nil, errors.New("not a live member")
	}
	id := c.keySeq.Add(1)
	answer := make(chan callReply, 1)
	c.pendMu.Lock()
	c.calls[id] = answer
	c.pendMu.Unlock()
	defer func() {
		c.pendMu.Lock()
		delete(c.calls, id)
		c.pendMu.Unlock()
	}()
	if err := c.ml.SendReliable(target, encodeCallRequest(id, method, body, c.self)); err != nil {
		return nil, err
	}
	select {
	case r := <-answer:
		switch r.status {
		case callOK:
			return r.body, nil
		case callNotFound:
			return nil, ErrNotFound
		default:
			return nil, &RemoteError{Node: node, Method: method, Message: string(r.body)}
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// callMessage handles a call request or reply (from Run). Fetches are
// answered from Provide at once (it never blocks); other methods run
// Serve on a goroutine of their own, as does every answer's sending: Run
// is never held.
func (c *Cluster) callMessage(b []byte) {
	switch b[0] {
	case msgCallRequest:
		id, method, body, from, err := decodeCallRequest(b[1:])
		if err != nil {
			c.log.Debug("gossip call request refused", "err", err)
			return
		}
		c.peerMu.Lock()
		p, ok := c.peers[from]
		var to memberlist.Node
		if ok {
			to = p.node
		}
		c.peerMu.Unlock()
		if !ok {
			c.log.Warn("gossip call from an unknown member: no answer", "requester", from, "method", method)
			return
		}
		if method == methodFetch {
			status, content := callNotFound, []byte(nil)
			if c.provide != nil {
				if got, found := c.provide(string(body)); found {
					status, content = callOK, got
				}
			}
			if len(content) > MaxFetchSize {
				c.log.Warn("gossip fetch: content over the limit, not sent", "key", string(body), "size", len(content), "requester", from)
				status, content = callNotFound, nil
			}
			c.wg.Go(func() { c.answer(&to, from, encodeCallReply(id, status, content)) })
			return
		}
		c.wg.Go(func() {
			status, out := callNotFound, []byte(nil)
			if c.serve != nil {
				ctx, cancel := context.WithTimeout(context.Background(), ServeTimeout)
				res, err := c.serve(ctx, from, method, body)
				cancel()
				switch {
				case errors.Is(err, ErrNotFound):
				case err != nil:
					status, out = callFailed, []byte(err.Error())
				default:
					status, out = callOK, res
				}
			}
			c.answer(&to, from, encodeCallReply(id, status, out))
		})
	case msgCallReply:
		id, r, err := decodeCallReply(b[1:])
		if err != nil {
			c.log.Debug("gossip call reply refused", "err", err)
			return
		}
		c.pendMu.Lock()
		ch := c.calls[id]
		c.pendMu.Unlock()
		if ch != nil {
			select {
			case ch <- r:
			default: // a duplicate
			}
		}
	}
}

func (c *Cluster) answer(to *memberlist.Node, name string, reply []byte) {
	if err := c.ml.SendReliable(to, reply); err != nil {
		c.log.Warn("gossip call answer not sent", "requester", name, "err", err)
	}
}
