package track

import (
	"context"
	"sync"

	"vigil/vrrp/policy"
)

// Feed is a tracker whose state another part of vigil sets rather than
// observes itself: the load balancer reports a virtual server's quorum
// through one. Set never blocks; Run emits the latest state (intermediate
// ones may be skipped, which is all the policy needs).
type Feed struct {
	kind    policy.Kind
	name    string
	initial Update

	mu   sync.Mutex
	cur  Update
	have bool          // Set was called since the last emit
	wake chan struct{} // capacity 1
}

// NewFeed returns a feed that reports initial (with Init set) until the
// first Set.
func NewFeed(kind policy.Kind, name string, initial Update) *Feed {
	initial.Kind, initial.Name, initial.Init = kind, name, true
	return &Feed{kind: kind, name: name, initial: initial, wake: make(chan struct{}, 1)}
}

func (f *Feed) Kind() policy.Kind { return f.kind }
func (f *Feed) Name() string      { return f.name }
func (f *Feed) Initial() Update   { return f.initial }

// Set records the object's state.
func (f *Feed) Set(up bool, detail string) {
	f.mu.Lock()
	f.cur = Update{Kind: f.kind, Name: f.name, Up: up, Detail: detail}
	f.have = true
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run emits each new state until ctx ends.
func (f *Feed) Run(ctx context.Context, emit func(Update)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.wake:
		}
		f.mu.Lock()
		u, ok := f.cur, f.have
		f.have = false
		f.mu.Unlock()
		if ok {
			emit(u)
		}
	}
}
