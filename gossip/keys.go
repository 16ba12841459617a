package gossip

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/memberlist"
)

// KeyOp is a fleet-wide keyring operation (serf's key manager model).
type KeyOp string

// The key operations.
const (
	KeyInstall KeyOp = "install" // add a key (not primary)
	KeyUse     KeyOp = "use"     // make an installed key the primary
	KeyRemove  KeyOp = "remove"  // remove a key that is not the primary
	KeyList    KeyOp = "list"    // report the keys
)

// KeyResult is one member's answer to a KeyOp.
type KeyResult struct {
	Node string
	Err  string   // "" = done
	Keys []string // for list: base64, primary first
}

// ErrNoKeyring is returned (wrapped) by KeyOp on a fleet without
// encryption: there is no keyring to change.
var ErrNoKeyring = errors.New("gossip encryption is off: no keyring")

// Key messages travel over memberlist's reliable stream (SendReliable),
// encrypted with the sender's primary key, and arrive through NotifyMsg
// beside row messages. Their first byte tells them apart: row messages
// start with the schema version (1), which DecodeRows checks.
//
//	request: msgKeyRequest | id (uvarint) | op | key | requester name   (fields: uvarint length + bytes)
//	reply:   msgKeyReply | id (uvarint) | node | error | key count (uvarint) | keys
const (
	msgKeyRequest byte = 0x80
	msgKeyReply   byte = 0x81
)

// noAnswer is the error of a member that did not answer before the
// context ended.
const noAnswer = "no answer"

type keyRequest struct {
	id   uint64
	op   KeyOp
	key  []byte
	from string
}

func appendField(b, f []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(f))), f...)
}

func encodeKeyRequest(id uint64, op KeyOp, key []byte, from string) []byte {
	b := binary.AppendUvarint([]byte{msgKeyRequest}, id)
	b = appendField(b, []byte(op))
	b = appendField(b, key)
	return appendField(b, []byte(from))
}

func decodeKeyRequest(b []byte) (keyRequest, error) {
	d := decoder{b: b}
	r := keyRequest{id: d.uvarint("id"), op: KeyOp(d.field("op"))}
	r.key = bytes.Clone(d.field("key"))
	r.from = string(d.field("requester"))
	return r, d.done("key request")
}

func encodeKeyReply(id uint64, res KeyResult, keys [][]byte) []byte {
	b := binary.AppendUvarint([]byte{msgKeyReply}, id)
	b = appendField(b, []byte(res.Node))
	b = appendField(b, []byte(res.Err))
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendField(b, k)
	}
	return b
}

func decodeKeyReply(b []byte) (uint64, KeyResult, error) {
	d := decoder{b: b}
	id := d.uvarint("id")
	res := KeyResult{Node: string(d.field("node")), Err: string(d.field("error"))}
	n := d.uvarint("key count")
	if d.err == nil && n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%d keys cannot fit in %d bytes", n, len(d.b))
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		if k := d.field("key"); d.err == nil {
			res.Keys = append(res.Keys, base64.StdEncoding.EncodeToString(k))
		}
	}
	return id, res, d.done("key reply")
}

// done reports the decoding error, or trailing bytes, for what.
func (d *decoder) done(what string) error {
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes after the end", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("gossip: decoding %s: %w", what, d.err)
	}
	return nil
}

func validKeyOp(op KeyOp) bool {
	return op == KeyInstall || op == KeyUse || op == KeyRemove || op == KeyList
}

// applyKeyOp changes this node's keyring and persists it (OnKeyring). The
// error text never contains key material.
func (c *Cluster) applyKeyOp(op KeyOp, key []byte) (KeyResult, [][]byte) {
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	res := KeyResult{Node: c.self}
	fail := func(format string, a ...any) (KeyResult, [][]byte) {
		res.Err = fmt.Sprintf(format, a...)
		return res, nil
	}
	if c.keyring == nil {
		return fail("%v", ErrNoKeyring)
	}
	if !validKeyOp(op) {
		return fail("unknown key operation %q", op)
	}
	if op == KeyList {
		keys := slices.Clone(c.keyring.GetKeys())
		for _, k := range keys {
			res.Keys = append(res.Keys, base64.StdEncoding.EncodeToString(k))
		}
		return res, keys
	}
	if err := memberlist.ValidateKey(key); err != nil {
		return fail("%s: %v", op, err)
	}
	installed := slices.ContainsFunc(c.keyring.GetKeys(), func(k []byte) bool { return bytes.Equal(k, key) })
	var err error
	switch op {
	case KeyInstall:
		err = c.keyring.AddKey(key)
	case KeyUse:
		if !installed {
			return fail("use: the key is not installed")
		}
		err = c.keyring.UseKey(key)
	case KeyRemove:
		if bytes.Equal(key, c.keyring.GetPrimaryKey()) {
			return fail("remove: the key is the primary key (use another first)")
		}
		err = c.keyring.RemoveKey(key)
	}
	if err != nil {
		return fail("%s: %v", op, err)
	}
	if c.onKeyring != nil {
		keys := make([][]byte, 0, len(c.keyring.GetKeys()))
		for _, k := range c.keyring.GetKeys() {
			keys = append(keys, bytes.Clone(k))
		}
		if err := c.onKeyring(keys); err != nil {
			return fail("%s: persisting the keyring: %v", op, err)
		}
	}
	return res, nil
}

// KeyOp applies op (with key; none for list) to this node's keyring, then
// asks every live member to do the same over the reliable stream, and
// collects their answers until all answered or ctx ends. It returns one
// result per member, this node included, sorted by name (a member that did
// not answer: Err "no answer"), and an error if any member failed. Run
// must be running (it receives the answers). Rotation goes install (the
// new key everywhere), use (it becomes primary), remove (the old one):
// each step must have reached every member before the next.
func (c *Cluster) KeyOp(ctx context.Context, op KeyOp, key []byte) ([]KeyResult, error) {
	if c.keyring == nil {
		return nil, fmt.Errorf("gossip: key %s: %w", op, ErrNoKeyring)
	}
	if !validKeyOp(op) {
		return nil, fmt.Errorf("gossip: unknown key operation %q: want install, use, remove or list", op)
	}
	if op == KeyList {
		key = nil
	} else if err := memberlist.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("gossip: key %s: %w", op, err)
	}
	var targets []*memberlist.Node
	for _, n := range c.liveNodes() {
		if n.Name != c.self {
			targets = append(targets, &n)
		}
	}
	id := c.keySeq.Add(1)
	answers := make(chan KeyResult, len(targets))
	c.pendMu.Lock()
	c.pending[id] = answers
	c.pendMu.Unlock()
	defer func() {
		c.pendMu.Lock()
		delete(c.pending, id)
		c.pendMu.Unlock()
	}()

	// This node first: for use, the request then goes out under the new
	// primary, which every receiver has installed.
	self, _ := c.applyKeyOp(op, key)
	results := map[string]KeyResult{c.self: self}
	msg := encodeKeyRequest(id, op, key, c.self)
	waiting := map[string]bool{}
	for _, n := range targets {
		if err := c.ml.SendReliable(n, msg); err != nil {
			results[n.Name] = KeyResult{Node: n.Name, Err: fmt.Sprintf("sending the request: %v", err)}
			continue
		}
		waiting[n.Name] = true
	}
	for len(waiting) > 0 {
		select {
		case r := <-answers:
			if waiting[r.Node] {
				delete(waiting, r.Node)
				results[r.Node] = r
			}
		case <-ctx.Done():
			for name := range waiting {
				results[name] = KeyResult{Node: name, Err: noAnswer}
			}
			waiting = nil
		}
	}
	out := make([]KeyResult, 0, len(results))
	var failed []string
	for _, r := range results {
		out = append(out, r)
		if r.Err != "" {
			failed = append(failed, r.Node)
		}
	}
	slices.SortFunc(out, func(a, b KeyResult) int { return strings.Compare(a.Node, b.Node) })
	if len(failed) > 0 {
		slices.Sort(failed)
		return out, fmt.Errorf("gossip: key %s failed on %d of %d members (%s)", op, len(failed), len(out), strings.Join(failed, ", "))
	}
	return out, nil
}

// keyMessage handles a key request or reply, in Run.
func (c *Cluster) keyMessage(b []byte) {
	switch b[0] {
	case msgKeyRequest:
		req, err := decodeKeyRequest(b[1:])
		if err != nil {
			c.log.Debug("gossip key request refused", "err", err)
			return
		}
		res, keys := c.applyKeyOp(req.op, req.key)
		if res.Err != "" {
			c.log.Warn("gossip key operation failed", "op", req.op, "requester", req.from, "err", res.Err)
		} else {
			c.log.Info("gossip key operation done", "op", req.op, "requester", req.from)
		}
		c.peerMu.Lock()
		p, ok := c.peers[req.from]
		var to memberlist.Node
		if ok {
			to = p.node
		}
		c.peerMu.Unlock()
		if !ok {
			c.log.Warn("gossip key request from an unknown member: no answer", "requester", req.from)
			return
		}
		reply := encodeKeyReply(req.id, res, keys)
		// The answer goes on a stream of its own: a slow requester must
		// not hold Run.
		c.wg.Go(func() {
			if err := c.ml.SendReliable(&to, reply); err != nil {
				c.log.Warn("gossip key answer not sent", "requester", req.from, "err", err)
			}
		})
	case msgKeyReply:
		id, res, err := decodeKeyReply(b[1:])
		if err != nil {
			c.log.Debug("gossip key reply refused", "err", err)
			return
		}
		c.pendMu.Lock()
		ch := c.pending[id]
		c.pendMu.Unlock()
		if ch != nil {
			select {
			case ch <- res:
			default: // a duplicate beyond the members asked
			}
		}
	}
}
