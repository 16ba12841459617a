package vrrp_test

import (
	"net/netip"
	"testing"
	"time"

	"vigil/vrrp"
)

// Split-brain arbitration (issue 13): a fresh gossip report that another
// live member is master counts as an advert from it, through the receive
// rules of RFC 9568 §6.4.2 (Backup) and §6.4.3 (Master), with nothing sent.
func TestFleetAdvert(t *testing.T) {
	fm := func(p uint8, a netip.Addr) vrrp.FleetMaster {
		return vrrp.FleetMaster{Priority: p, Primary: a, Interval: time.Second}
	}
	cases := []struct {
		name   string
		master bool // start as Master (else Backup)
		mod    func(*vrrp.Config)
		in     vrrp.FleetMaster
		want   string
		state  vrrp.State
	}{
		// §6.4.3: a better master exists → Backup, addresses removed, no advert.
		{"master/higher priority", true, nil, fm(150, low), "remove backup:gossip_arbitration", vrrp.StateBackup},
		// §6.4.3 tie-break: equal priority, the higher primary address wins.
		{"master/equal priority higher address", true, nil, fm(100, peer), "remove backup:gossip_arbitration", vrrp.StateBackup},
		{"master/equal priority lower address", true, nil, fm(100, low), "", vrrp.StateMaster},
		// Unlike a wire advert, a lower fleet master gets no answer: it
		// steps down on our own report.
		{"master/lower priority", true, nil, fm(50, peer), "", vrrp.StateMaster},
		// §6.4.2: Backup, priority ≥ ours → reset the down timer (the hold).
		{"backup/higher priority holds", false, nil, fm(150, peer), "", vrrp.StateBackup},
		// §6.4.2 preempt: a lower master is discarded: the timer runs out.
		{"backup/lower priority preempts", false, nil, fm(50, peer), "", vrrp.StateBackup},
		// A report of the other family, or of priority 0, is not ours.
		{"master/other family", true, nil, fm(200, netip.MustParseAddr("fe80::1")), "", vrrp.StateMaster},
		{"master/priority zero", true, nil, fm(0, peer), "", vrrp.StateMaster},
		{"master/no address", true, nil, fm(200, netip.Addr{}), "", vrrp.StateMaster},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var i *vrrp.Instance
			now := t0
			if c.master {
				i, now = masterAt(t, c.mod)
			} else {
				i = newInst(t, c.mod)
				i.Start(t0)
			}
			now = now.Add(10 * time.Millisecond)
			wantKinds(t, i.FleetAdvert(now, c.in), c.want)
			if i.State() != c.state {
				t.Fatalf("state %s, want %s", i.State(), c.state)
			}
		})
	}
}

// §6.4.2: while the fleet master's reports go on, a Backup's
// Master_Down_Timer never fires; when they stop, it fires one
// Master_Down_Interval after the last one.
func TestFleetAdvertHoldsMasterDownTimer(t *testing.T) {
	i := newInst(t, nil)
	i.Start(t0)
	now := t0
	m := vrrp.FleetMaster{Priority: 150, Primary: peer, Interval: time.Second}
	for range 10 {
		now = now.Add(time.Second)
		i.FleetAdvert(now, m)
		if acts := i.Tick(now); len(acts) != 0 {
			t.Fatalf("timer fired while the fleet master reports: %s", kinds(acts))
		}
	}
	if i.Status().Master != peer {
		t.Fatalf("master %s, want the fleet master %s", i.Status().Master, peer)
	}
	// 3 × 1 s + (256-100) × 1 s / 256 after the last report.
	want := now.Add(3*time.Second + 156*time.Second/256)
	if !i.NextDeadline().Equal(want) {
		t.Fatalf("down timer at %s, want %s", i.NextDeadline(), want)
	}
	wantKinds(t, i.Tick(want), "send(100) add announce master:master_down_timer")
}

// A lower fleet master with preemption: the Backup's timer is left to run
// out and it takes over (§6.4.2 "discard the ADVERTISEMENT"), reason
// preempted, as for a wire advert.
func TestFleetAdvertPreempts(t *testing.T) {
	i := newInst(t, nil)
	i.Start(t0)
	i.FleetAdvert(t0.Add(time.Second), vrrp.FleetMaster{Priority: 50, Primary: peer, Interval: time.Second})
	acts := i.Tick(i.NextDeadline())
	wantKinds(t, acts, "send(100) add announce master:preempted")
}

// A fleet report older than the last wire advert never brings the
// Master_Down_Timer forward (§6.4.2 resets it from the advert; the report
// only keeps it from expiring).
func TestFleetAdvertNeverShortensTimer(t *testing.T) {
	i := newInst(t, nil)
	i.Start(t0)
	now := t0.Add(time.Second)
	recv(t, i, now, 150, peer)
	want := i.NextDeadline()
	i.FleetAdvert(now.Add(-500*time.Millisecond), vrrp.FleetMaster{Priority: 150, Primary: peer, Interval: time.Second})
	if !i.NextDeadline().Equal(want) {
		t.Fatalf("down timer moved from %s to %s", want, i.NextDeadline())
	}
}
