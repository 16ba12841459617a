package track

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"vigil/vrrp/policy"
)

// InterfaceSpec configures an interface tracker (keepalived
// track_interface). The interface is up while it is administratively up and
// running (IFF_UP and IFF_RUNNING: carrier present, not dormant), as
// node/link.go decides for an instance's own interface. A missing, deleted
// or renamed-away interface is down; an interface created (or renamed) with
// the name later is tracked from then on.
//
// Link state comes from a netlink subscription (RTNLGRP_LINK), not polling.
// The tracker reads the link once, then subscribes and asks for a dump of
// all links through the subscription socket, so that what it processes is
// in kernel order and nothing between the read and the subscription is
// lost. If the subscription breaks (e.g. its receive buffer overflowed), it
// is re-established the same way.
type InterfaceSpec struct {
	// Name is the interface name.
	Name string
	// Netns names the network namespace the interface lives in (as `ip
	// netns` names it, /run/netns/NAME), or is an absolute path to a
	// namespace file. Empty: vigil's own namespace.
	Netns string
}

// Interface is an interface tracker.
type Interface struct {
	spec InterfaceSpec
	log  *slog.Logger
}

const ifResubscribe = time.Second

// NewInterface validates spec and returns the tracker. log may be nil.
func NewInterface(spec InterfaceSpec, log *slog.Logger) (*Interface, error) {
	if spec.Name == "" || len(spec.Name) > unix.IFNAMSIZ-1 || strings.ContainsAny(spec.Name, "/: \t\n") ||
		spec.Name == "." || spec.Name == ".." {
		return nil, fmt.Errorf("track: interface %q: not a valid interface name", spec.Name)
	}
	return &Interface{spec: spec, log: orDiscard(log).With("tracker", "interface "+spec.Name)}, nil
}

func (i *Interface) Kind() policy.Kind { return policy.KindInterface }
func (i *Interface) Name() string      { return i.spec.Name }

// Spec returns the spec.
func (i *Interface) Spec() InterfaceSpec { return i.spec }

func (i *Interface) Initial() Update {
	return Update{Kind: policy.KindInterface, Name: i.spec.Name, Init: true, Detail: "init: not read yet, assumed down"}
}

// ifState is the tracked link as last seen.
type ifState struct {
	index  int // 0: no such link
	up     bool
	detail string
}

// Run follows the interface until ctx ends.
func (i *Interface) Run(ctx context.Context, emit func(Update)) error {
	ns := netns.None()
	if i.spec.Netns != "" {
		var err error
		if strings.HasPrefix(i.spec.Netns, "/") {
			ns, err = netns.GetFromPath(i.spec.Netns)
		} else {
			ns, err = netns.GetFromName(i.spec.Netns)
		}
		if err != nil {
			return fmt.Errorf("track: interface %q: network namespace %q: %w", i.spec.Name, i.spec.Netns, err)
		}
		defer ns.Close()
	}

	var last *ifState
	apply := func(s ifState) {
		if last != nil && last.up == s.up && last.index == s.index && last.detail == s.detail {
			return
		}
		switch {
		case last == nil:
			i.log.Info("interface tracker settled", "up", s.up, "detail", s.detail)
		case last.up != s.up && s.up:
			i.log.Info("interface up", "detail", s.detail)
		case last.up != s.up:
			i.log.Warn("interface down", "detail", s.detail)
		}
		last = &s
		emit(Update{Up: s.up, Detail: s.detail, At: time.Now()})
	}

	for {
		err := i.follow(ctx, ns, apply)
		if ctx.Err() != nil {
			return nil
		}
		i.log.Warn("link subscription ended; subscribing again", "err", err, "retry_in", ifResubscribe)
		t := time.NewTimer(ifResubscribe)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// follow reads the link, subscribes and applies link updates until ctx ends
// (nil) or the subscription fails (the error).
func (i *Interface) follow(ctx context.Context, ns netns.NsHandle, apply func(ifState)) error {
	cur, err := i.read(ns)
	if err != nil {
		// Cannot read links at all: say so, keep following the events.
		cur = ifState{detail: "cannot read link: " + err.Error()}
	}
	apply(cur)

	ch := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	var failure error
	failed := make(chan struct{})
	opts := netlink.LinkSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case <-done: // closing the subscription at the end makes its read fail
				return
			default:
			}
			if strings.HasPrefix(err.Error(), "Receive failed") {
				// The subscription goroutine ends and closes ch after this.
				select {
				case <-failed:
				default:
					failure = err
					close(failed)
				}
				return
			}
			i.log.Warn("link subscription error", "err", err)
		},
	}
	if ns.IsOpen() {
		opts.Namespace = &ns
	}
	if err := netlink.LinkSubscribeWithOptions(ch, done, opts); err != nil {
		close(done)
		return fmt.Errorf("track: interface %q: subscribing to link changes: %w", i.spec.Name, err)
	}
	// However this ends, stop the subscription and drain ch until its
	// goroutine closed it, so that it never blocks on a send.
	defer func() {
		close(done)
		for range ch {
		}
	}()

	for {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-ch:
			if !ok {
				select {
				case <-failed: // the callback ran before ch was closed
					return fmt.Errorf("track: interface %q: %w", i.spec.Name, failure)
				default:
					return fmt.Errorf("track: interface %q: link subscription closed", i.spec.Name)
				}
			}
			if s, mine := i.update(cur, u); mine {
				cur = s
				apply(cur)
			}
		}
	}
}

// read reads the link's current state.
func (i *Interface) read(ns netns.NsHandle) (ifState, error) {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return ifState{}, err
	}
	defer h.Close()
	l, err := h.LinkByName(i.spec.Name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return ifState{detail: "no such interface"}, nil
		}
		return ifState{}, err
	}
	a := l.Attrs()
	return linkState(a.Index, a.RawFlags, a.OperState), nil
}

// update applies a link message to cur; mine is false when the message is
// about another link.
func (i *Interface) update(cur ifState, u netlink.LinkUpdate) (ifState, bool) {
	a := u.Link.Attrs()
	byIndex := cur.index != 0 && int(u.IfInfomsg.Index) == cur.index
	switch {
	case u.Header.Type == unix.RTM_DELLINK && (byIndex || a.Name == i.spec.Name):
		return ifState{detail: "interface deleted"}, true
	case u.Header.Type != unix.RTM_NEWLINK:
		return cur, false
	case a.Name == i.spec.Name:
		return linkState(int(u.IfInfomsg.Index), u.IfInfomsg.Flags, a.OperState), true
	case byIndex: // our link got another name
		return ifState{detail: "interface renamed to " + a.Name}, true
	}
	return cur, false
}

func linkState(index int, flags uint32, oper netlink.LinkOperState) ifState {
	s := ifState{index: index, up: flags&unix.IFF_UP != 0 && flags&unix.IFF_RUNNING != 0}
	switch {
	case flags&unix.IFF_UP == 0:
		s.detail = "administratively down"
	case flags&unix.IFF_RUNNING == 0:
		s.detail = "no carrier (oper state " + oper.String() + ")"
	default:
		s.detail = "up (oper state " + oper.String() + ")"
	}
	return s
}
