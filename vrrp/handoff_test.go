package vrrp_test

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"vigil/vrrp"
)

// Coordinated handoff (issue 14, vigil vrrp failover / drain): the master
// resigns with a priority-0 advert (RFC 9568 §6.4.3's Shutdown advert) but
// stays a Backup; the successor told to expect it takes over on that
// advert instead of after Skew_Time (§6.4.2).
func TestResign(t *testing.T) {
	i, now := masterAt(t, nil)
	now = now.Add(100 * time.Millisecond)
	wantKinds(t, i.Resign(now, vrrp.CauseHandoff), "send(0) remove backup:admin_handoff")
	if i.State() != vrrp.StateBackup {
		t.Fatalf("state %s, want backup", i.State())
	}
	// A Backup again: Master_Down_Interval armed (3 s + skew at 1 s adverts, priority 100).
	if want := now.Add(3*time.Second + 156*time.Second/256); !i.NextDeadline().Equal(want) {
		t.Fatalf("down timer %s, want %s", i.NextDeadline(), want)
	}
	// Not a master: nothing to resign.
	if acts := i.Resign(now, vrrp.CauseHandoff); len(acts) != 0 {
		t.Fatalf("a Backup resigned: %s", kinds(acts))
	}
}

func TestExpectHandoff(t *testing.T) {
	other := netip.MustParseAddr("192.0.2.9")
	cases := []struct {
		name string
		// expect is the resigning master's address the successor is told
		// of; zero = not told.
		expect netip.Addr
		within time.Duration
		// at is when the priority-0 advert arrives, after the expectation.
		at   time.Duration
		from netip.Addr
		want string
	}{
		// The told successor takes over on the resignation itself.
		{"told, resignation in time", peer, 2 * time.Second, 10 * time.Millisecond, peer, "send(100) add announce master:admin_handoff"},
		// §6.4.2 otherwise: Master_Down_Timer set to Skew_Time, nothing sent yet.
		{"not told", netip.Addr{}, 0, 10 * time.Millisecond, peer, ""},
		{"told, too late", peer, 2 * time.Second, 3 * time.Second, peer, ""},
		{"told of another master", other, 2 * time.Second, 10 * time.Millisecond, peer, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			i := newInst(t, nil)
			i.Start(t0)
			now := t0.Add(time.Second)
			recv(t, i, now, 150, peer) // peer is master
			if c.expect.IsValid() {
				if err := i.ExpectHandoff(c.expect, now.Add(c.within)); err != nil {
					t.Fatal(err)
				}
			}
			at := now.Add(c.at)
			wantKinds(t, recv(t, i, at, 0, c.from), c.want)
			if c.want == "" {
				// Skew_Time = (256-100)/256 s at 1 s adverts.
				if want := at.Add(156 * time.Second / 256); !i.NextDeadline().Equal(want) {
					t.Fatalf("down timer %s, want Skew_Time at %s", i.NextDeadline(), want)
				}
				wantKinds(t, i.Tick(i.NextDeadline()), "send(100) add announce master:priority_zero_received")
			}
		})
	}
}

// Only a Backup can be a successor, of a master of its own family; a state
// change ends the expectation (a Backup that went to FAULT and back waits
// Skew_Time again).
func TestExpectHandoffRefusedAndCleared(t *testing.T) {
	m, _ := masterAt(t, nil)
	if err := m.ExpectHandoff(peer, t0.Add(time.Hour)); !errors.Is(err, vrrp.ErrNotBackup) {
		t.Fatalf("a Master took an expectation: %v", err)
	}
	i := newInst(t, nil)
	i.Start(t0)
	if err := i.ExpectHandoff(netip.MustParseAddr("2001:db8::1"), t0.Add(time.Hour)); err == nil {
		t.Fatal("an IPv4 instance expected an IPv6 master")
	}
	now := t0.Add(time.Second)
	if err := i.ExpectHandoff(peer, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	i.SetFault(now, true, vrrp.CauseInterfaceDown)
	i.SetFault(now, false, vrrp.CauseFaultCleared)
	wantKinds(t, recv(t, i, now.Add(time.Millisecond), 0, peer), "")
}

// A resignation heard on the wire outweighs gossip's older report that its sender is master
// (the sender's new summary is still on its way): the successor of a handoff must not step
// down for that report (issue 13's arbitration, issue 14's handoff). A wire advert from the
// sender, or ResignMemory, ends it.
func TestResignationOutweighsFleetReport(t *testing.T) {
	i := newInst(t, nil)
	i.Start(t0)
	now := t0.Add(time.Second)
	recv(t, i, now, 150, peer)
	if err := i.ExpectHandoff(peer, now.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(10 * time.Millisecond)
	wantKinds(t, recv(t, i, now, 0, peer), "send(100) add announce master:admin_handoff")
	stale := vrrp.FleetMaster{Priority: 150, Primary: peer, Interval: time.Second}
	wantKinds(t, i.FleetAdvert(now.Add(500*time.Millisecond), stale), "")
	if i.State() != vrrp.StateMaster {
		t.Fatalf("state %s after a stale report", i.State())
	}
	// Past ResignMemory the report counts again (§6.4.3 via FleetAdvert).
	wantKinds(t, i.FleetAdvert(now.Add(vrrp.ResignMemory), stale), "remove backup:gossip_arbitration")

	// A wire advert from the sender ends the memory at once.
	j, at := masterAt(t, nil)
	recv(t, j, at.Add(time.Millisecond), 0, peer)
	recv(t, j, at.Add(2*time.Millisecond), 50, peer)
	wantKinds(t, j.FleetAdvert(at.Add(3*time.Millisecond), stale), "remove backup:gossip_arbitration")
}
