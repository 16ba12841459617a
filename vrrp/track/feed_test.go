package track

import (
	"context"
	"testing"
	"time"

	"vigil/vrrp/policy"
)

// A feed starts at its initial state (Init) and emits what Set reports,
// the latest one when several came while nobody was listening.
func TestFeed(t *testing.T) {
	f := NewFeed(policy.KindVirtualServer, "http", Update{Up: true})
	if in := f.Initial(); !in.Init || !in.Up || in.Name != "http" || in.Kind != policy.KindVirtualServer {
		t.Fatalf("initial %+v", in)
	}
	f.Set(true, "quorum 2/1")
	f.Set(false, "quorum 0/1")
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Update, 4)
	done := make(chan error)
	go func() { done <- f.Run(ctx, func(u Update) { got <- u }) }()
	select {
	case u := <-got:
		if u.Up || u.Detail != "quorum 0/1" || u.Init {
			t.Fatalf("first emit %+v, want the latest state (down)", u)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no emit")
	}
	f.Set(true, "back")
	select {
	case u := <-got:
		if !u.Up || u.Detail != "back" {
			t.Fatalf("second emit %+v", u)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no second emit")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
