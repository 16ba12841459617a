package vrrp_test

import (
	"errors"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/vrrp"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var (
	us   = netip.MustParseAddr("192.0.2.11")
	peer = netip.MustParseAddr("192.0.2.12") // higher address than us
	low  = netip.MustParseAddr("192.0.2.10") // lower address than us
	vip  = netip.MustParseAddr("192.0.2.100")
)

func baseConfig() vrrp.Config {
	return vrrp.Config{
		Name: "web", VRID: 51, Version: 3, Priority: 100, AdvertInterval: time.Second,
		Preempt: true, Accept: true, VIPs: []netip.Addr{vip}, Primary: us,
	}
}

func newInst(t *testing.T, mod func(*vrrp.Config)) *vrrp.Instance {
	t.Helper()
	c := baseConfig()
	if mod != nil {
		mod(&c)
	}
	i, err := vrrp.NewInstance(c)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// advert builds a decoded advert as the receive path would hand it over.
func advert(i *vrrp.Instance, prio uint8, src netip.Addr) (vrrp.Decoded, vrrp.RxInfo) {
	a := i.Advert(prio)
	dst := vrrp.GroupIPv4
	if src.Is6() {
		dst = vrrp.GroupIPv6
	}
	if c := i.Config(); c.Unicast {
		dst = c.Primary
	}
	return vrrp.Decoded{Advert: a}, vrrp.RxInfo{Src: src, Dst: dst, TTL: 255}
}

func recv(t *testing.T, i *vrrp.Instance, now time.Time, prio uint8, src netip.Addr) []vrrp.Action {
	t.Helper()
	d, rx := advert(i, prio, src)
	acts, err := i.Receive(now, d, rx)
	if err != nil {
		t.Fatalf("Receive(prio %d from %s): %v", prio, src, err)
	}
	return acts
}

// kinds renders an action list compactly, e.g. "send(100) add announce master".
func kinds(acts []vrrp.Action) string {
	var s []string
	for _, a := range acts {
		switch a := a.(type) {
		case vrrp.SendAdvert:
			s = append(s, "send("+strconv.Itoa(int(a.Advert.Priority))+")")
		case vrrp.AddVIPs:
			s = append(s, "add")
		case vrrp.RemoveVIPs:
			s = append(s, "remove")
		case vrrp.Announce:
			if a.LowerPrio {
				s = append(s, "announce-lower")
			} else {
				s = append(s, "announce")
			}
		case vrrp.StateChange:
			s = append(s, a.To.String()+":"+string(a.Cause))
		case vrrp.Notice:
			s = append(s, "notice:"+a.Reason.String())
		}
	}
	return strings.Join(s, " ")
}

func wantKinds(t *testing.T, acts []vrrp.Action, want string) {
	t.Helper()
	if got := kinds(acts); got != want {
		t.Fatalf("actions = %q, want %q", got, want)
	}
}

// §6.1 and the reference's worked numbers (vrrp-spec §1.6).
func TestSkewAndMasterDown(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		v        uint8
		interval time.Duration
		prio     uint8
		skew     time.Duration
		mdi      time.Duration
	}{
		{2, time.Second, 1, 996093750, 3996093750},
		{2, time.Second, 100, 609375 * time.Microsecond, 3609375 * time.Microsecond},
		{2, time.Second, 200, 218750 * time.Microsecond, 3218750 * time.Microsecond},
		{2, time.Second, 254, 7812500, 3007812500},
		// v2 skew does not scale with the interval (RFC 3768 §6.1).
		{2, 3 * time.Second, 100, 609375 * time.Microsecond, 9609375 * time.Microsecond},
		{3, time.Second, 100, 609375 * time.Microsecond, 3609375 * time.Microsecond},
		{3, 100 * ms, 100, 60937500, 360937500},
		{3, 50 * ms, 100, 30468750, 180468750},
		{3, 10 * ms, 100, 6093750, 36093750},
		{3, 10 * ms, 254, 78125, 30078125},
		{3, 40950 * ms, 100, 24953906250, 147803906250},
	} {
		if got := vrrp.SkewTime(c.v, c.prio, c.interval); got != c.skew {
			t.Errorf("v%d %s prio %d: skew %d, want %d", c.v, c.interval, c.prio, got, c.skew)
		}
		if got := vrrp.MasterDownInterval(c.v, c.prio, c.interval); got != c.mdi {
			t.Errorf("v%d %s prio %d: MDI %d, want %d", c.v, c.interval, c.prio, got, c.mdi)
		}
	}
}

// §6.4.1: a non-owner starts as Backup with Master_Down_Timer =
// Master_Down_Interval.
func TestStartupBackup(t *testing.T) {
	i := newInst(t, nil)
	wantKinds(t, i.Start(t0), "backup:startup")
	if got, want := i.NextDeadline(), t0.Add(3609375*time.Microsecond); !got.Equal(want) {
		t.Fatalf("down timer %s, want %s", got.Sub(t0), want.Sub(t0))
	}
	if i.Start(t0) != nil {
		t.Fatal("second Start acted")
	}
}

// §6.4.1: the owner (255) sends an advert, installs and announces the
// addresses, and becomes Master at once; Accept is implied for the owner.
func TestStartupOwner(t *testing.T) {
	i := newInst(t, func(c *vrrp.Config) { c.Priority = 255; c.Accept = false })
	acts := i.Start(t0)
	wantKinds(t, acts, "send(255) add announce master:address_owner")
	if !acts[1].(vrrp.AddVIPs).Accept {
		t.Fatal("owner must accept packets to its addresses (§6.4.3)")
	}
	if got := i.NextDeadline(); !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("Adver_Timer %s", got.Sub(t0))
	}
}

// §6.4.2: Master_Down_Timer fires → send advert, install addresses, announce,
// Adver_Timer = Advertisement_Interval, → Master. The advert goes first;
// announcements follow the addresses.
func TestBackupMasterDownTimer(t *testing.T) {
	i := newInst(t, func(c *vrrp.Config) { c.Accept = false })
	i.Start(t0)
	d := i.NextDeadline()
	if i.Tick(d.Add(-time.Nanosecond)) != nil {
		t.Fatal("fired early")
	}
	acts := i.Tick(d)
	wantKinds(t, acts, "send(100) add announce master:master_down_timer")
	if acts[1].(vrrp.AddVIPs).Accept {
		t.Fatal("non-owner with Accept_Mode False must not accept")
	}
	if got := i.NextDeadline(); !got.Equal(d.Add(time.Second)) {
		t.Fatalf("Adver_Timer %s", got.Sub(d))
	}
}

// §6.4.2: priority 0 → Master_Down_Timer = Skew_Time.
func TestBackupPriorityZero(t *testing.T) {
	i := newInst(t, nil)
	i.Start(t0)
	now := t0.Add(time.Second)
	recv(t, i, now, 150, peer)
	wantKinds(t, recv(t, i, now.Add(time.Second), 0, peer), "")
	at := now.Add(time.Second)
	if got, want := i.NextDeadline(), at.Add(609375*time.Microsecond); !got.Equal(want) {
		t.Fatalf("down timer %s after resign, want skew 609.375ms", got.Sub(at))
	}
	wantKinds(t, i.Tick(i.NextDeadline()), "send(100) add announce master:priority_zero_received")
}

// §6.4.2: with Preempt_Mode True, a lower-priority advert is discarded: the
// down timer keeps running and we take over.
func TestBackupPreempt(t *testing.T) {
	i := newInst(t, nil)
	i.Start(t0)
	recv(t, i, t0.Add(time.Second), 50, peer) // lower: discarded
	if got, want := i.NextDeadline(), t0.Add(3609375*time.Microsecond); !got.Equal(want) {
		t.Fatalf("down timer moved to %s", got.Sub(t0))
	}
	wantKinds(t, i.Tick(i.NextDeadline()), "send(100) add announce master:preempted")
}

// §6.4.2: with Preempt_Mode False any non-zero advert resets the timer.
func TestBackupNoPreempt(t *testing.T) {
	i := newInst(t, func(c *vrrp.Config) { c.Preempt = false })
	i.Start(t0)
	now := t0.Add(3 * time.Second)
	recv(t, i, now, 50, peer)
	if got, want := i.NextDeadline(), now.Add(3609375*time.Microsecond); !got.Equal(want) {
		t.Fatalf("down timer %s, want reset to MDI", got.Sub(now))
	}
	if i.State() != vrrp.StateBackup {
		t.Fatal("left Backup")
	}
}

// §6.4.2: priority ≥ local resets the timer (equal priority included: no
// tie-break in Backup).
func TestBackupEqualOrHigherResets(t *testing.T) {
	for _, p := range []uint8{100, 200, 255} {
		i := newInst(t, nil)
		i.Start(t0)
		now := t0.Add(3 * time.Second)
		recv(t, i, now, p, low)
		if got, want := i.NextDeadline(), now.Add(3609375*time.Microsecond); !got.Equal(want) {
			t.Fatalf("prio %d: down timer %s", p, got.Sub(now))
		}
		if st := i.Status(); st.Master != low || st.MasterPriority != p {
			t.Fatalf("prio %d: status master %s/%d", p, st.Master, st.MasterPriority)
		}
	}
}

// RFC 5798 §6.4.2: a v3 backup adopts the master's interval and recomputes
// Skew_Time and Master_Down_Interval; a mismatch is a notice, not a drop
// (RFC 9568 §7.1).
func TestV3IntervalLearning(t *testing.T) {
	i := newInst(t, nil)
	i.Start(t0)
	d, rx := advert(i, 200, peer)
	d.Advert.Interval = 2 * time.Second
	acts, err := i.Receive(t0, d, rx)
	if err != nil {
		t.Fatal(err)
	}
	wantKinds(t, acts, "notice:interval_mismatch")
	// 3 × 2 s + (156 × 2 s)/256 = 7.21875 s
	if got := i.NextDeadline().Sub(t0); got != 7218750*time.Microsecond {
		t.Fatalf("MDI %s, want 7.21875s", got)
	}
	if i.Status().MasterAdverInterval != 2*time.Second {
		t.Fatal("Master_Adver_Interval not learned")
	}
}

// RFC 3768 §7.1 step 8: a v2 advert with another interval is discarded, and
// v2 backups never learn the interval.
func TestV2IntervalMismatchDropped(t *testing.T) {
	i := newInst(t, func(c *vrrp.Config) { c.Version = 2 })
	i.Start(t0)
	d, rx := advert(i, 200, peer)
	d.Advert.Interval = 2 * time.Second
	_, err := i.Receive(t0.Add(time.Second), d, rx)
	wantReason(t, err, vrrp.ReasonAdvertInterval)
	if got := i.NextDeadline().Sub(t0); got != 3609375*time.Microsecond {
		t.Fatalf("timer moved: %s", got)
	}
}

func masterAt(t *testing.T, mod func(*vrrp.Config)) (*vrrp.Instance, time.Time) {
	t.Helper()
	i := newInst(t, mod)
	i.Start(t0)
	now := i.NextDeadline()
	i.Tick(now)
	if i.State() != vrrp.StateMaster {
		t.Fatal("not master")
	}
	return i, now
}

// §6.4.3: Adver_Timer fires → send an advert and reset the timer.
func TestMasterAdverTimer(t *testing.T) {
	i, now := masterAt(t, nil)
	for k := 1; k <= 3; k++ {
		now = i.NextDeadline()
		wantKinds(t, i.Tick(now), "send(100)")
		if !i.NextDeadline().Equal(now.Add(time.Second)) {
			t.Fatal("Adver_Timer not reset")
		}
	}
}

// §6.4.3: priority 0 → send an advert at once and reset the Adver_Timer.
func TestMasterPriorityZero(t *testing.T) {
	i, now := masterAt(t, nil)
	now = now.Add(300 * time.Millisecond)
	wantKinds(t, recv(t, i, now, 0, peer), "send(100)")
	if !i.NextDeadline().Equal(now.Add(time.Second)) {
		t.Fatal("Adver_Timer not reset")
	}
}

// §6.4.3: higher priority → cancel Adver_Timer, learn the interval (v3), set
// Master_Down_Timer, → Backup; the addresses go.
func TestMasterHigherPriority(t *testing.T) {
	i, now := masterAt(t, nil)
	now = now.Add(100 * time.Millisecond)
	d, rx := advert(i, 150, low)
	d.Advert.Interval = 500 * time.Millisecond
	acts, err := i.Receive(now, d, rx)
	if err != nil {
		t.Fatal(err)
	}
	wantKinds(t, acts, "notice:interval_mismatch remove backup:higher_priority_advert")
	// 3 × 0.5 s + 156 × 0.5 s / 256
	if got := i.NextDeadline().Sub(now); got != 1804687500 {
		t.Fatalf("down timer %s", got)
	}
}

// §6.4.3 tie-break: equal priority and a greater sender address → Backup;
// a smaller one → we stay, and RFC 9568 has us re-advertise at once.
func TestMasterTieBreak(t *testing.T) {
	i, now := masterAt(t, nil)
	wantKinds(t, recv(t, i, now, 100, low), "send(100) announce-lower")
	wantKinds(t, recv(t, i, now, 100, peer), "remove backup:higher_priority_advert")

	// IPv6: addresses compare as 128-bit unsigned integers.
	i6, now := masterAt(t, func(c *vrrp.Config) {
		c.VIPs = []netip.Addr{netip.MustParseAddr("2001:db8::100")}
		c.Primary = netip.MustParseAddr("fe80::11")
	})
	wantKinds(t, recv(t, i6, now, 100, netip.MustParseAddr("fe80::10")), "notice:not_link_local send(100) announce-lower")
	wantKinds(t, recv(t, i6, now, 100, netip.MustParseAddr("fe80::1:0")), "notice:not_link_local remove backup:higher_priority_advert")
}

// RFC 9568 §6.4.3: a master hearing a lower priority advertises at once;
// lower_prio_no_advert restores the RFC 5798 behaviour (discard silently).
func TestMasterLowerPriority(t *testing.T) {
	i, now := masterAt(t, nil)
	wantKinds(t, recv(t, i, now.Add(time.Millisecond), 50, peer), "send(100) announce-lower")
	j, now := masterAt(t, func(c *vrrp.Config) { c.LowerPrioNoAdvert = true })
	wantKinds(t, recv(t, j, now, 50, peer), "")
}

// §6.4.3 Shutdown: a master sends priority 0 and leaves; §6.4.2: a backup
// just cancels its timer.
func TestShutdown(t *testing.T) {
	i, now := masterAt(t, nil)
	wantKinds(t, i.Shutdown(now), "send(0) remove init:shutdown")
	if !i.NextDeadline().IsZero() {
		t.Fatal("timer still armed")
	}
	b := newInst(t, nil)
	b.Start(t0)
	wantKinds(t, b.Shutdown(t0), "init:shutdown")
	if b.Shutdown(t0) != nil {
		t.Fatal("second Shutdown acted")
	}
	// A stopped instance can start again.
	wantKinds(t, b.Start(t0), "backup:startup")
}

// keepalived's preempt_delay: a higher-priority backup follows a lower master
// for PreemptDelay, then discards its adverts and takes over one
// Master_Down_Interval after the last advert it accepted.
func TestPreemptDelay(t *testing.T) {
	i := newInst(t, func(c *vrrp.Config) { c.Priority = 128; c.PreemptDelay = 2 * time.Second })
	i.Start(t0)
	var took time.Time
	for k := 0; k < 20 && took.IsZero(); k++ {
		now := t0.Add(time.Duration(k) * time.Second)
		if dl := i.NextDeadline(); !dl.After(now) {
			i.Tick(dl)
			took = dl
			break
		}
		recv(t, i, now, 100, peer)
	}
	// Adverts at 0 s and 1 s are followed, 2 s onwards discarded; MDI at
	// priority 128 is 3.5 s, so takeover at 1 + 3.5 s.
	if got := took.Sub(t0); got != 4500*time.Millisecond {
		t.Fatalf("took over after %s, want 4.5s", got)
	}
	// A higher-priority advert closes the window.
	j := newInst(t, func(c *vrrp.Config) { c.Priority = 128; c.PreemptDelay = 2 * time.Second })
	j.Start(t0)
	recv(t, j, t0, 100, peer)
	recv(t, j, t0.Add(time.Second), 200, peer)
	recv(t, j, t0.Add(5*time.Second), 100, peer) // a new window starts here
	if got := j.NextDeadline().Sub(t0); got != 8500*time.Millisecond {
		t.Fatalf("down timer at %s, want 8.5s (window restarted)", got)
	}
}

// SetPriority (trackers, operator): a master re-advertises at once; the
// owner's priority is fixed; 0 and 255 cannot be set.
func TestSetPriority(t *testing.T) {
	i, now := masterAt(t, nil)
	acts, err := i.SetPriority(now, 90)
	if err != nil {
		t.Fatal(err)
	}
	wantKinds(t, acts, "send(90)")
	if acts, _ := i.SetPriority(now, 90); acts != nil {
		t.Fatal("unchanged priority acted")
	}
	for _, p := range []uint8{0, 255} {
		if _, err := i.SetPriority(now, p); err == nil {
			t.Errorf("SetPriority(%d) accepted", p)
		}
	}
	o, _ := masterAt(t, func(c *vrrp.Config) { c.Priority = 255 })
	if _, err := o.SetPriority(now, 100); err == nil {
		t.Fatal("owner priority changed")
	}
	// A backup's new priority changes its skew.
	b := newInst(t, nil)
	b.Start(t0)
	b.SetPriority(t0, 200)
	recv(t, b, t0, 250, peer)
	if got := b.NextDeadline().Sub(t0); got != 3218750*time.Microsecond {
		t.Fatalf("MDI at priority 200: %s", got)
	}
}

func wantReason(t *testing.T, err error, r vrrp.Reason) {
	t.Helper()
	var rxe *vrrp.RxError
	if !errors.As(err, &rxe) || rxe.Reason != r {
		t.Fatalf("error %v, want reason %v", err, r)
	}
}

// The per-instance receive checks of §7.1 and the modes, one reason each.
func TestInstanceChecks(t *testing.T) {
	pass := [8]byte{'s', '3', 'c', 'r', 'e', 't'}
	v6 := func(c *vrrp.Config) {
		c.VIPs = []netip.Addr{netip.MustParseAddr("fe80::100"), netip.MustParseAddr("2001:db8::100")}
		c.Primary = netip.MustParseAddr("fe80::11")
	}
	cases := []struct {
		name   string
		mod    func(*vrrp.Config)
		edit   func(*vrrp.Decoded, *vrrp.RxInfo)
		reason vrrp.Reason // ReasonNone: accepted
		notice string
	}{
		{"VRID not ours (§7.1 step 5)", nil, func(d *vrrp.Decoded, _ *vrrp.RxInfo) { d.Advert.VRID = 52 }, vrrp.ReasonVRID, ""},
		{"version not configured (§7.1 step 2)", nil, func(d *vrrp.Decoded, _ *vrrp.RxInfo) { d.Advert.Version = 2 }, vrrp.ReasonVersion, ""},
		{"owner discards (§7.1 step 5)", func(c *vrrp.Config) { c.Priority = 255 }, nil, vrrp.ReasonOwner, ""},
		{"own address looped back", nil, func(_ *vrrp.Decoded, rx *vrrp.RxInfo) { rx.Src = us }, vrrp.ReasonOwnAddress, ""},
		{"IPv6 advert to IPv4 instance", nil, func(_ *vrrp.Decoded, rx *vrrp.RxInfo) {
			rx.Src, rx.Dst = netip.MustParseAddr("fe80::1"), vrrp.GroupIPv6
		}, vrrp.ReasonFamily, ""},
		{"unicast advert to multicast instance", nil, func(_ *vrrp.Decoded, rx *vrrp.RxInfo) { rx.Dst = us }, vrrp.ReasonMode, ""},
		{"multicast advert to unicast instance", func(c *vrrp.Config) { c.Unicast, c.Peers = true, []netip.Addr{peer} },
			func(_ *vrrp.Decoded, rx *vrrp.RxInfo) { rx.Dst = vrrp.GroupIPv4 }, vrrp.ReasonMode, ""},
		{"unicast from unknown peer", func(c *vrrp.Config) { c.Unicast, c.Peers = true, []netip.Addr{low} }, nil, vrrp.ReasonUnknownPeer, ""},
		{"unicast from peer", func(c *vrrp.Config) { c.Unicast, c.Peers = true, []netip.Addr{peer} }, nil, vrrp.ReasonNone, ""},
		{"v2 auth type mismatch (RFC 3768 §7.1 step 6)", func(c *vrrp.Config) { c.Version = 2 },
			func(d *vrrp.Decoded, _ *vrrp.RxInfo) { d.Advert.AuthType = vrrp.AuthPass }, vrrp.ReasonAuthType, ""},
		{"v2 PASS wrong password", func(c *vrrp.Config) { c.Version, c.AuthType, c.AuthData = 2, vrrp.AuthPass, pass },
			func(d *vrrp.Decoded, _ *vrrp.RxInfo) { d.Advert.AuthData[0] = 'X' }, vrrp.ReasonAuthFailure, ""},
		{"v2 PASS right password", func(c *vrrp.Config) { c.Version, c.AuthType, c.AuthData = 2, vrrp.AuthPass, pass }, nil, vrrp.ReasonNone, ""},
		{"v2 no auth ignores auth data (RFC 3768 §5.3.10)", func(c *vrrp.Config) { c.Version = 2 },
			func(d *vrrp.Decoded, _ *vrrp.RxInfo) { d.Advert.AuthData[3] = 9 }, vrrp.ReasonNone, ""},
		{"v3 address list mismatch is a notice (RFC 5798 §7.1)", nil,
			func(d *vrrp.Decoded, _ *vrrp.RxInfo) {
				d.Advert.Addrs = []netip.Addr{netip.MustParseAddr("192.0.2.101")}
			}, vrrp.ReasonNone, "notice:address_list"},
		{"v2 address list mismatch is a notice by default", func(c *vrrp.Config) { c.Version = 2 },
			func(d *vrrp.Decoded, _ *vrrp.RxInfo) {
				d.Advert.Addrs = []netip.Addr{netip.MustParseAddr("192.0.2.101")}
			}, vrrp.ReasonNone, "notice:address_list"},
		{"v2 address list checked: drop from non-owner (RFC 3768 §7.1 step 7)", func(c *vrrp.Config) { c.Version, c.CheckAddressList = 2, true },
			func(d *vrrp.Decoded, _ *vrrp.RxInfo) {
				d.Advert.Addrs = []netip.Addr{netip.MustParseAddr("192.0.2.101")}
			}, vrrp.ReasonAddressList, ""},
		{"v2 address list checked: owner's advert continues", func(c *vrrp.Config) { c.Version, c.CheckAddressList = 2, true },
			func(d *vrrp.Decoded, _ *vrrp.RxInfo) {
				d.Advert.Addrs = []netip.Addr{netip.MustParseAddr("192.0.2.101")}
				d.Advert.Priority = 255
			}, vrrp.ReasonNone, "notice:address_list"},
		{"address order does not matter", func(c *vrrp.Config) { c.VIPs = []netip.Addr{vip, netip.MustParseAddr("192.0.2.101")} },
			func(d *vrrp.Decoded, _ *vrrp.RxInfo) {
				d.Advert.Addrs = []netip.Addr{netip.MustParseAddr("192.0.2.101"), vip}
			}, vrrp.ReasonNone, ""},
		{"IPv6 first address link-local: accepted", v6, nil, vrrp.ReasonNone, ""},
		{"IPv6 first address global: notice (erratum 8300)", v6, func(d *vrrp.Decoded, _ *vrrp.RxInfo) {
			d.Advert.Addrs[0], d.Advert.Addrs[1] = d.Advert.Addrs[1], d.Advert.Addrs[0]
		}, vrrp.ReasonNone, "notice:not_link_local"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			i := newInst(t, c.mod)
			cfg := i.Config()
			src := peer
			if cfg.Family() == 6 {
				src = netip.MustParseAddr("fe80::12")
			}
			d, rx := advert(i, 150, src)
			d.Advert.Addrs = append([]netip.Addr(nil), d.Advert.Addrs...)
			if c.edit != nil {
				c.edit(&d, &rx)
			}
			notices, err := i.Check(d, rx)
			if c.reason != vrrp.ReasonNone {
				wantReason(t, err, c.reason)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var acts []vrrp.Action
			for _, n := range notices {
				acts = append(acts, n)
			}
			wantKinds(t, acts, c.notice)
		})
	}
}

// An instance that has not started ignores adverts.
func TestInitIgnoresAdverts(t *testing.T) {
	i := newInst(t, nil)
	d, rx := advert(i, 200, peer)
	acts, err := i.Receive(t0, d, rx)
	if acts != nil || err != nil {
		t.Fatalf("%v %v", acts, err)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := map[string]func(*vrrp.Config){
		"vrid 0":        func(c *vrrp.Config) { c.VRID = 0 },
		"version 4":     func(c *vrrp.Config) { c.Version = 4 },
		"priority 0":    func(c *vrrp.Config) { c.Priority = 0 },
		"v2 sub-second": func(c *vrrp.Config) { c.Version = 2; c.AdvertInterval = 500 * time.Millisecond },
		"v3 15ms":       func(c *vrrp.Config) { c.AdvertInterval = 15 * time.Millisecond },
		"no VIPs":       func(c *vrrp.Config) { c.VIPs = nil },
		"mixed family":  func(c *vrrp.Config) { c.VIPs = append(c.VIPs, netip.MustParseAddr("2001:db8::1")) },
		"v2 IPv6":       func(c *vrrp.Config) { c.Version = 2; c.VIPs = []netip.Addr{netip.MustParseAddr("2001:db8::1")} },
		"primary wrong family": func(c *vrrp.Config) {
			c.Primary = netip.MustParseAddr("fe80::1")
		},
		"unicast no peers":  func(c *vrrp.Config) { c.Unicast = true },
		"peer multicast":    func(c *vrrp.Config) { c.Unicast, c.Peers = true, []netip.Addr{vrrp.GroupIPv4} },
		"auth on v3":        func(c *vrrp.Config) { c.AuthType = vrrp.AuthPass },
		"preempt_delay big": func(c *vrrp.Config) { c.PreemptDelay = 1001 * time.Second },
	}
	for name, mod := range bad {
		c := baseConfig()
		mod(&c)
		if _, err := vrrp.NewInstance(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c := baseConfig()
	c.VRID, c.Priority = 0, 0
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "vrid") || !strings.Contains(err.Error(), "priority") {
		t.Fatalf("want both problems reported, got %v", err)
	}
}

// The StateChange carries what an event needs.
func TestStateChangeFields(t *testing.T) {
	j, now := masterAt(t, nil)
	acts := recv(t, j, now, 200, peer)
	sc := acts[len(acts)-1].(vrrp.StateChange)
	// PreviousMaster: the master before the change, this instance itself.
	want := vrrp.StateChange{From: vrrp.StateMaster, To: vrrp.StateBackup, Cause: vrrp.CauseHigherPriority, Priority: 100, Master: peer, PreviousMaster: us, At: now}
	if !reflect.DeepEqual(sc, want) {
		t.Fatalf("%+v\nwant %+v", sc, want)
	}
}

// keepalived's FAULT (not in the RFC): a master drops its addresses (and,
// for a tracker fault with the link still up, resigns with priority 0); in
// FAULT nothing is sent or held and adverts are ignored; leaving it is a
// fresh Startup (§6.4.1): Backup, or Master at once for the owner.
func TestFault(t *testing.T) {
	i, now := masterAt(t, nil)
	wantKinds(t, i.SetFault(now, true, vrrp.CauseInterfaceDown), "remove fault:interface_down")
	if i.SetFault(now, true, vrrp.CauseInterfaceDown) != nil {
		t.Fatal("repeated SetFault acted")
	}
	if !i.NextDeadline().IsZero() || i.Tick(now.Add(time.Hour)) != nil {
		t.Fatal("timers run in FAULT")
	}
	wantKinds(t, recv(t, i, now, 200, peer), "")
	if acts, _ := i.SetPriority(now, 120); acts != nil {
		t.Fatal("FAULT advertised a priority change")
	}
	later := now.Add(time.Second)
	wantKinds(t, i.SetFault(later, false, ""), "backup:fault_cleared")
	// MDI at priority 120: 3 s + 136/256 s.
	if got := i.NextDeadline().Sub(later); got != 3531250*time.Microsecond {
		t.Fatalf("down timer %s after FAULT", got)
	}

	b := newInst(t, nil)
	b.Start(t0)
	wantKinds(t, b.SetFault(t0, true, vrrp.CauseTrackerFault), "fault:tracker_fault")

	o := newInst(t, func(c *vrrp.Config) { c.Priority = 255 })
	o.Start(t0)
	wantKinds(t, o.SetFault(t0, true, vrrp.CauseTrackerFault), "send(0) remove fault:tracker_fault")
	wantKinds(t, o.SetFault(t0, false, ""), "send(255) add announce master:fault_cleared")

	// Before Start, SetFault decides where Start goes.
	p := newInst(t, nil)
	if p.SetFault(t0, true, vrrp.CauseInterfaceDown) != nil {
		t.Fatal("SetFault acted before Start")
	}
	wantKinds(t, p.Start(t0), "fault:interface_down")
	wantKinds(t, p.Shutdown(t0), "init:shutdown")
}

// Sync-group moves (keepalived vrrp_sync_group): GoMaster takes over from
// Backup only; GoBackup steps a master down without a priority-0 advert.
func TestGoMasterGoBackup(t *testing.T) {
	i := newInst(t, nil)
	i.Start(t0)
	wantKinds(t, i.GoMaster(t0, vrrp.CauseSyncGroup), "send(100) add announce master:sync_group")
	if i.GoMaster(t0, vrrp.CauseSyncGroup) != nil {
		t.Fatal("GoMaster acted on a master")
	}
	wantKinds(t, i.GoBackup(t0, vrrp.CauseSyncGroup), "remove backup:sync_group")
	if got := i.NextDeadline().Sub(t0); got != 3609375*time.Microsecond {
		t.Fatalf("down timer %s after GoBackup", got)
	}
	if i.GoBackup(t0, vrrp.CauseSyncGroup) != nil {
		t.Fatal("GoBackup acted on a backup")
	}
	i.SetFault(t0, true, vrrp.CauseTrackerFault)
	if i.GoMaster(t0, vrrp.CauseSyncGroup) != nil {
		t.Fatal("GoMaster took a faulted instance to master")
	}
}

// A live reload can change the VIPs or the name without touching the state
// or the timers; Stop gives a reason other than shutdown.
func TestSetVIPsRenameStop(t *testing.T) {
	i, now := masterAt(t, nil)
	dl := i.NextDeadline()
	b := netip.MustParseAddr("192.0.2.101")
	if err := i.SetVIPs([]netip.Addr{vip, b}); err != nil {
		t.Fatal(err)
	}
	if i.State() != vrrp.StateMaster || !i.NextDeadline().Equal(dl) {
		t.Fatal("SetVIPs disturbed the state or the timer")
	}
	acts := i.Tick(dl)
	if got := acts[0].(vrrp.SendAdvert).Advert.Addrs; len(got) != 2 || got[1] != b {
		t.Fatalf("advert after SetVIPs carries %v", got)
	}
	if err := i.SetVIPs([]netip.Addr{netip.MustParseAddr("2001:db8::1")}); err == nil {
		t.Fatal("SetVIPs accepted another family")
	}
	i.Rename("web2")
	if i.Config().Name != "web2" {
		t.Fatal("not renamed")
	}
	wantKinds(t, i.Stop(now, vrrp.CauseConfigReload), "send(0) remove init:config_reload")
}

// RFC 9568 §6.4.3 answers a lower priority with an advert at once; vigil
// answers at most once per Advertisement_Interval, so a flood of valid
// lower-priority adverts (VRRPv3 has no authentication) cannot be
// amplified into adverts and GARP bursts (issue 11 item 2).
func TestMasterLowerPriorityAnsweredOncePerInterval(t *testing.T) {
	i, now := masterAt(t, nil)
	wantKinds(t, recv(t, i, now.Add(time.Millisecond), 50, peer), "send(100) announce-lower")
	for k := 2; k < 1000; k++ { // 1,000 adverts/s for the rest of the interval
		wantKinds(t, recv(t, i, now.Add(time.Duration(k)*time.Millisecond), 50, peer), "")
	}
	// One interval after the first answer, the next lower advert is
	// answered again.
	wantKinds(t, recv(t, i, now.Add(time.Second+time.Millisecond), 50, peer), "send(100) announce-lower")
	// Higher priority still wins at once, whatever the answer budget.
	wantKinds(t, recv(t, i, now.Add(time.Second+2*time.Millisecond), 250, peer), "remove backup:higher_priority_advert")
	// A new mastership starts with a fresh budget.
	wantKinds(t, i.GoMaster(now.Add(2*time.Second), vrrp.CauseAdmin), "send(100) add announce master:admin")
	wantKinds(t, recv(t, i, now.Add(2*time.Second+time.Millisecond), 50, peer), "send(100) announce-lower")
}

// RFC 9568 §7.1 step 1 requires TTL 255 on every advert; Decode checks it
// for the group, Check for unicast, where a configured floor admits peers
// behind routers (keepalived's per-peer min_ttl).
func TestUnicastTTL(t *testing.T) {
	uni := func(c *vrrp.Config) { c.Unicast, c.Peers = true, []netip.Addr{peer} }
	i := newInst(t, uni)
	i.Start(t0)
	d, rx := advert(i, 100, peer)
	rx.TTL = 254
	if _, err := i.Receive(t0, d, rx); !isReason(err, vrrp.ReasonTTL) {
		t.Fatalf("unicast TTL 254: err = %v, want reason ttl", err)
	}
	rx.TTL = 255
	if _, err := i.Receive(t0, d, rx); err != nil {
		t.Fatalf("unicast TTL 255: %v", err)
	}
	j := newInst(t, func(c *vrrp.Config) { uni(c); c.UnicastMinTTL = 64 })
	j.Start(t0)
	d, rx = advert(j, 100, peer)
	rx.TTL = 64
	if _, err := j.Receive(t0, d, rx); err != nil {
		t.Fatalf("TTL 64 with floor 64: %v", err)
	}
	rx.TTL = 63
	if _, err := j.Receive(t0, d, rx); !isReason(err, vrrp.ReasonTTL) {
		t.Fatalf("TTL 63 with floor 64: err = %v, want reason ttl", err)
	}
}

func isReason(err error, r vrrp.Reason) bool {
	var rxe *vrrp.RxError
	return errors.As(err, &rxe) && rxe.Reason == r
}

// An instance whose interface has no usable address yet (an IPv6
// link-local address still tentative) waits in FAULT, sends nothing, and
// starts as Backup once the driver gives it the address (issue 11 item 3;
// keepalived does the same).
func TestNoPrimaryWaitsInFault(t *testing.T) {
	i := newInst(t, func(c *vrrp.Config) { c.Primary = netip.Addr{} })
	wantKinds(t, i.Start(t0), "fault:no_source_address")
	if !i.NextDeadline().IsZero() {
		t.Fatal("a timer runs without a source address")
	}
	// Clearing other faults does not let it out without an address.
	wantKinds(t, i.SetFault(t0, false, ""), "")
	if i.State() != vrrp.StateFault {
		t.Fatalf("state %s, want fault", i.State())
	}
	if err := i.SetPrimary(netip.MustParseAddr("2001:db8::1")); err == nil {
		t.Fatal("SetPrimary accepted an address of the other family")
	}
	if err := i.SetPrimary(us); err != nil {
		t.Fatal(err)
	}
	wantKinds(t, i.SetFault(t0.Add(time.Second), false, ""), "backup:fault_cleared")
	if err := i.SetPrimary(peer); err == nil {
		t.Fatal("SetPrimary changed the address of a running backup")
	}
}
