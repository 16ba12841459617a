package fault

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"vigil/test/netlab"
	"vigil/test/peer"
	"vigil/vrrp"
)

// Margin on top of a Master_Down_Interval for a takeover observed by polling the interfaces on
// this busy 2-core machine.
const takeoverMargin = 500 * time.Millisecond

// Master node loss: the master's link is cut (its bridge port down, so it loses carrier), then
// restored. Three nodes, two IPv4 virtual routers active-active and one IPv6. While cut, the
// next priority must take n1's routers and n1 must hold nothing (FAULT); after the restore, n1
// must take them back by preemption. Both times the invariants are checked from the cut / the
// restore.
func TestMasterLoss(t *testing.T) {
	netlab.Require(t)
	for _, impl := range bothImpls {
		t.Run(impl, func(t *testing.T) {
			c := newCluster(t, impl, 3, false)
			c.start("n1", inst(51, 150, vipA), inst(52, 100, vipB), inst(61, 150, vip6))
			c.start("n2", inst(51, 100, vipA), inst(52, 150, vipB), inst(61, 100, vip6))
			c.start("n3", inst(51, 50, vipA), inst(52, 50, vipB), inst(61, 50, vip6))
			g51, g52, g61 := c.group(51, false), c.group(52, false), c.group(61, true)
			c.waitSole("n1", 5*time.Second, g51, g61)
			c.waitSole("n2", 5*time.Second, g52)

			cut := time.Now()
			if err := c.node("n1").LinkDown(); err != nil {
				t.Fatal(err)
			}
			took := c.waitHolds(g51, "n2", cut, g51.MDI()+takeoverMargin)
			repCut := c.check(cut, "master cut off")
			if repCut.Groups[0].Master != "n2" || repCut.Groups[2].Master != "n2" {
				c.violation("[%s] after the cut: masters %s/%s, want n2", impl, repCut.Groups[0].Master, repCut.Groups[2].Master)
			}

			heal := time.Now()
			if err := c.node("n1").LinkUp(); err != nil {
				t.Fatal(err)
			}
			rep := c.check(heal, "link restored")
			if rep.Groups[0].Master != "n1" || rep.Groups[1].Master != "n2" || rep.Groups[2].Master != "n1" {
				c.violation("[%s] after the restore: masters %s/%s/%s, want n1/n2/n1", impl, rep.Groups[0].Master, rep.Groups[1].Master, rep.Groups[2].Master)
			}
			c.record("master node loss (link cut)", fmt.Sprintf("n2 took over in %.2f s (polled; MDI %.2f s); %s",
				took.Seconds(), g51.MDI().Seconds(), repCut.Summary()))
			c.record("master node returns (link restored)", "n1 preempted back; "+rep.Summary())
		})
	}
}

func sleepUntil(at time.Time) {
	if d := time.Until(at); d > 0 {
		time.Sleep(d)
	}
}

// faultEntries counts a daemon's log lines saying an instance entered FAULT.
func (c *cluster) faultEntries(name string) int {
	log := c.procs[name].Log()
	if c.impl == implVigil {
		return strings.Count(log, "to=fault")
	}
	return strings.Count(log, "Entering FAULT STATE")
}

// Link flap storm: the master's link goes down and up every 100 ms for 10 s (50 cycles), then
// stays up. Up for 100 ms at a time, n1 never reaches its Master_Down_Interval (0.34 s), so it
// must not advertise as master during the storm, and n2, master after the first cut, must go on
// advertising without a gap. (Should the machine stretch an up period to a Master_Down_Interval,
// n1 may take over within that period only; the test says so and checks the rest.) After the
// storm n1 preempts back; then the invariants.
func TestLinkFlapStorm(t *testing.T) {
	netlab.Require(t)
	for _, impl := range bothImpls {
		t.Run(impl, func(t *testing.T) {
			c := newCluster(t, impl, 2, false)
			c.start("n1", inst(51, 150, vipA), inst(61, 150, vip6))
			c.start("n2", inst(51, 100, vipA), inst(61, 100, vip6))
			g51, g61 := c.group(51, false), c.group(61, true)
			c.waitSole("n1", 5*time.Second, g51, g61)
			time.Sleep(3 * iv) // n2 settled as backup after the start-up election
			port, err := OpenPort(c.node("n1"))
			if err != nil {
				t.Fatal(err)
			}
			defer port.Close()
			faultsBefore := c.faultEntries("n1")
			const period, cycles = 100 * time.Millisecond, 50
			type span struct{ from, to time.Time }
			var ups []span // from before the port went up to after it went down again
			var firstCut time.Time
			start := time.Now()
			for k := range cycles {
				sleepUntil(start.Add(time.Duration(2*k) * period))
				if err := port.Set(false); err != nil {
					t.Fatal(err)
				}
				if k > 0 {
					ups[k-1].to = time.Now()
				} else {
					firstCut = time.Now()
				}
				sleepUntil(start.Add(time.Duration(2*k+1) * period))
				ups = append(ups, span{from: time.Now()})
				if err := port.Set(true); err != nil {
					t.Fatal(err)
				}
			}
			heal := time.Now()
			ups = ups[:len(ups)-1] // the last up is the heal
			faults := c.faultEntries("n1") - faultsBefore
			mdi1 := vrrp.MasterDownInterval(3, 150, iv)
			var long []span
			var longest time.Duration
			for _, u := range ups {
				longest = max(longest, u.to.Sub(u.from))
				if u.to.Sub(u.from) >= mdi1-20*time.Millisecond {
					long = append(long, u)
				}
			}

			// n1 may advertise or announce only once an up period has lasted its
			// Master_Down_Interval (then it is rightly master until the next cut): anything it sends
			// earlier in an up period, or in one shorter than that, is a mastership it should not
			// have, or a burst left over from an earlier one.
			// Before the first cut n1 was master; after the heal it may be again.
			ups = append([]span{{from: start.Add(-time.Hour), to: firstCut}}, ups...)
			ups = append(ups, span{from: heal, to: heal.Add(time.Hour)})
			const skew = 30 * time.Millisecond // capture timestamps against the test's clock
			var early []string
			masterships := map[int]bool{}
			judge := func(at time.Time, what string) {
				i := slices.IndexFunc(ups, func(u span) bool { return !at.Before(u.from.Add(-skew)) && !at.After(u.to.Add(skew)) })
				switch {
				case i < 0:
					early = append(early, fmt.Sprintf("%s at %s while the link was down", what, at.Sub(start).Round(time.Millisecond)))
				case at.Sub(ups[i].from) < mdi1-skew:
					early = append(early, fmt.Sprintf("%s %s into an up period", what, at.Sub(ups[i].from).Round(time.Millisecond)))
				case i > 0 && i < len(ups)-1:
					masterships[i] = true
				}
			}
			frames := c.adverts()
			for _, g := range []Group{g51, g61} {
				for _, at := range masterAdverts(frames, g, 1, start.Add(10*time.Millisecond), heal) {
					judge(at, "advert")
				}
			}
			for _, a := range Announcements(mustFrames(t, c)) {
				if a.SrcMAC.String() == macOf(1) && a.Time.After(start.Add(10*time.Millisecond)) && a.Time.Before(heal) {
					judge(a.Time, "GARP/NA")
				}
			}
			var n2Gap time.Duration
			for _, g := range []Group{g51, g61} {
				n2From := start.Add(g.MDI() + 200*time.Millisecond)
				n2Gap = max(n2Gap, maxGap(masterAdverts(frames, g, 2, n2From, heal), n2From, heal))
			}
			t.Logf("[%s] storm: %d FAULT entries on n1, longest up period %s (%d of them ≥ MDI), n1 master in %d of them; %d early adverts or announcements from n1; n2's longest advert gap %s",
				impl, faults, longest.Round(time.Millisecond), len(long), len(masterships), len(early), n2Gap.Round(time.Millisecond))
			if len(early) > 0 {
				c.violation("[%s] the flapping node advertised or announced before an up period reached its Master_Down_Interval: %s", impl, strings.Join(firstN(early, 5), "; "))
			}
			if len(masterships) == 0 && n2Gap >= g51.MDI() {
				c.violation("[%s] n2's adverts paused for %s during the storm while n1 never became master", impl, n2Gap)
			}
			if faults < cycles {
				c.violation("[%s] n1 entered FAULT %d times in %d link cuts", impl, faults, cycles)
			}
			rep := c.check(heal, "after the flap storm")
			if rep.Groups[0].Master != "n1" || rep.Groups[1].Master != "n1" {
				c.violation("[%s] after the storm: masters %s/%s, want n1", impl, rep.Groups[0].Master, rep.Groups[1].Master)
			}
			c.record("link flap storm (100 ms down/up, 10 s)", fmt.Sprintf("%d FAULT entries (2 instances); flapping node master in %d up periods that reached its MDI, %d adverts/GARPs before one did; backup's longest advert gap %.2f s; %s",
				faults, len(masterships), len(early), n2Gap.Seconds(), rep.Summary()))
		})
	}
}

func mustFrames(t *testing.T, c *cluster) []netlab.Frame {
	t.Helper()
	fr, err := c.cap.Frames()
	if err != nil {
		t.Fatal(err)
	}
	return fr
}

// One-way loss of IP protocol 112: nftables in one node's namespace drops only what it
// receives, or only what it sends. "backup-deaf": the backup hears nothing; "master-mute": the
// master's adverts do not leave. Either way the backup must take over within its
// Master_Down_Interval while the master, hearing a lower priority, stays master: two holders
// until the heal, which VRRP cannot avoid without a path between them. After the rule goes, the
// lower priority must step down.
func TestOneWayLoss(t *testing.T) {
	netlab.Require(t)
	for _, tc := range []struct {
		name, node, hook string
	}{
		{"backup-deaf", "n2", "input"},
		{"master-mute", "n1", "output"},
	} {
		for _, impl := range bothImpls {
			t.Run(tc.name+"/"+impl, func(t *testing.T) {
				c := newCluster(t, impl, 2, false)
				c.start("n1", inst(51, 150, vipA), inst(61, 150, vip6))
				c.start("n2", inst(51, 100, vipA), inst(61, 100, vip6))
				g51, g61 := c.group(51, false), c.group(61, true)
				c.waitSole("n1", 5*time.Second, g51, g61)
				time.Sleep(3 * iv)
				lossy := c.node(tc.node)
				lossAt := time.Now()
				if err := DropVRRP(lossy, tc.hook, 100); err != nil {
					t.Fatal(err)
				}
				took := c.waitHolds(g51, "n2", lossAt, g51.MDI()+takeoverMargin)
				c.waitHolds(g61, "n2", lossAt, g61.MDI()+takeoverMargin)
				for _, g := range []Group{g51, g61} {
					if hs := c.holders(g.VIPs[0]); !slices.Equal(hs, []string{"n1", "n2"}) {
						c.violation("[%s] during the loss %s is held by %v, want n1 (hears a lower priority) and n2 (hears nothing)", impl, g.VIPs[0], hs)
					}
				}
				time.Sleep(time.Second)
				dropped, err := DroppedVRRP(lossy)
				if err != nil {
					t.Fatal(err)
				}
				heal := time.Now()
				if err := HealVRRP(lossy); err != nil {
					t.Fatal(err)
				}
				rep := c.check(heal, "one-way loss healed")
				if rep.Groups[0].Master != "n1" || rep.Groups[1].Master != "n1" {
					c.violation("[%s] after the heal: masters %s/%s, want n1", impl, rep.Groups[0].Master, rep.Groups[1].Master)
				}
				c.record(fmt.Sprintf("one-way loss of protocol 112 (%s drops its %s)", tc.node, tc.hook),
					fmt.Sprintf("n2 took over in %.2f s, two holders until the heal (%d adverts dropped); %s", took.Seconds(), dropped, rep.Summary()))
			})
		}
	}
}

// 20 % random loss on the VRRP path: every node's namespace drops 20 % of the VRRP it receives
// (nftables numgen) for 10 s, three nodes, 100 ms adverts. A backup misses three adverts in a row
// now and then (0.8 % of the time) and takes over; the master, whose adverts all leave, must
// keep advertising without a gap, and every such episode must end at the backup's next heard
// advert (bounded here by 1 s, ten adverts). After the loss ends, the invariants.
func TestRandomLoss(t *testing.T) {
	netlab.Require(t)
	for _, impl := range bothImpls {
		t.Run(impl, func(t *testing.T) {
			c := newCluster(t, impl, 3, false)
			c.start("n1", inst(51, 150, vipA))
			c.start("n2", inst(51, 100, vipA))
			c.start("n3", inst(51, 50, vipA))
			g := c.group(51, false)
			c.waitSole("n1", 5*time.Second, g)
			time.Sleep(3 * iv)
			for _, nd := range c.nodes {
				if err := DropVRRP(nd, "input", 20); err != nil {
					t.Fatal(err)
				}
			}
			from := time.Now()
			time.Sleep(10 * time.Second)
			var dropped int
			for _, nd := range c.nodes {
				d, err := DroppedVRRP(nd)
				if err != nil {
					t.Fatal(err)
				}
				dropped += d
			}
			heal := time.Now()
			for _, nd := range c.nodes {
				if err := HealVRRP(nd); err != nil {
					t.Fatal(err)
				}
			}
			frames := c.adverts()
			n1 := masterAdverts(frames, g, 1, from, heal)
			gap := maxGap(n1, from, heal)
			// Episodes of another node advertising: runs of its adverts less than 1.5 intervals
			// apart.
			var episodes int
			var longest time.Duration
			for i := 2; i <= 3; i++ {
				ts := masterAdverts(frames, g, i, from, heal)
				for j := 0; j < len(ts); {
					k := j
					for k+1 < len(ts) && ts[k+1].Sub(ts[k]) < iv*3/2 {
						k++
					}
					episodes++
					longest = max(longest, ts[k].Sub(ts[j]))
					j = k + 1
				}
			}
			t.Logf("[%s] 10 s at 20 %% loss: %d VRRP packets dropped, n1's %d adverts with a longest gap of %s, %d takeover episodes by a backup, the longest %s",
				impl, dropped, len(n1), gap.Round(time.Millisecond), episodes, longest.Round(time.Millisecond))
			// (Only what n1 receives is lost: its own adverts all leave, and a gap as long as the
			// backups' Master_Down_Interval would be a takeover not caused by the loss.)
			if gap >= g.MDI() {
				c.violation("[%s] the master's adverts paused for %s under loss", impl, gap)
			}
			if longest > time.Second {
				c.violation("[%s] a backup advertised as master for %s under 20 %% loss", impl, longest)
			}
			rep := c.check(heal, "random loss ended")
			if rep.Groups[0].Master != "n1" {
				c.violation("[%s] after the loss: master %s, want n1", impl, rep.Groups[0].Master)
			}
			c.record("20 % random loss on VRRP (10 s, 3 nodes)", fmt.Sprintf("%d drops; master's longest advert gap %.2f s; %d backup takeover episodes, longest %.2f s; %s",
				dropped, gap.Seconds(), episodes, longest.Seconds(), rep.Summary()))
		})
	}
}

// A master stalled with SIGSTOP for three Master_Down_Intervals, then resumed with SIGCONT.
// "higher": n1 (150) over n2 (100): n2 takes over during the stall; once resumed, n1 (still master
// in its own eyes) must win back and n2 step down. "equal": both 100, n1 master first (started
// first); n2 (higher address) takes over during the stall and, hearing the resumed n1 at its own
// priority from a lower address, stays master while n1 must step down. Never two holders once
// settled, and no announcement from the node that lost: the second announcement burst is set 3 s
// after becoming master and the stall starts 2.5 s after n1 became master, so that burst falls due
// while n1 is stopped.
func TestMasterStalled(t *testing.T) {
	netlab.Require(t)
	for _, tc := range []struct {
		name   string
		p1, p2 int
		winner string
	}{
		{"higher", 150, 100, "n1"},
		{"equal", 100, 100, "n2"},
	} {
		for _, impl := range bothImpls {
			t.Run(tc.name+"/"+impl, func(t *testing.T) {
				c := newCluster(t, impl, 2, false)
				c.garpDelay = 3 * time.Second
				c.start("n1", inst(51, tc.p1, vipA), inst(61, tc.p1, vip6))
				g51, g61 := c.group(51, false), c.group(61, true)
				c.waitSole("n1", 5*time.Second, g51, g61)
				masterAt := time.Now()
				c.start("n2", inst(51, tc.p2, vipA), inst(61, tc.p2, vip6))
				g51, g61 = c.group(51, false), c.group(61, true)
				c.waitUp("n2", 5*time.Second)
				time.Sleep(3 * iv) // n2 hears n1
				sleepUntil(masterAt.Add(2500 * time.Millisecond))
				c.waitSole("n1", time.Second, g51, g61)
				if since := time.Since(masterAt); since > 2800*time.Millisecond {
					t.Logf("[%s] the stall starts %s after n1 became master: its second burst may come after the stall", impl, since.Round(time.Millisecond))
				}
				pid := c.vrrpPID("n1")
				stoppedAt := time.Now()
				if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				stopped := true
				defer func() {
					if stopped {
						_ = syscall.Kill(pid, syscall.SIGCONT)
					}
				}()
				took := c.waitHolds(g51, "n2", stoppedAt, g51.MDI()+takeoverMargin)
				sleepUntil(stoppedAt.Add(3 * g51.MDI()))
				heal := time.Now()
				if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
					t.Fatal(err)
				}
				stopped = false
				rep := c.check(heal, "stalled master resumed")
				// The node that lost was not master for the whole stall: whatever its timers say on
				// resume, it must not tell the segment the addresses are at its MAC (the invariant
				// checker tolerates an announcement next to the node's own advert, which a resumed
				// master sends before it hears the other).
				if tc.winner != "n1" {
					var late []string
					for _, a := range Announcements(mustFrames(t, c)) {
						if a.SrcMAC.String() == macOf(1) && !a.Time.Before(heal) {
							late = append(late, fmt.Sprintf("%s %.3f s after SIGCONT", a.Addr, a.Time.Sub(heal).Seconds()))
						}
					}
					if len(late) > 0 {
						c.violation("[%s] n1, master before the stall and not after it, announced %d addresses after SIGCONT: %s", impl, len(late), strings.Join(firstN(late, 4), ", "))
					}
				}
				if rep.Groups[0].Master != tc.winner || rep.Groups[1].Master != tc.winner {
					c.violation("[%s] after SIGCONT: masters %s/%s, want %s", impl, rep.Groups[0].Master, rep.Groups[1].Master, tc.winner)
				}
				c.record(fmt.Sprintf("master stalled (SIGSTOP %.1f s, %s priority), then SIGCONT", (3*g51.MDI()).Seconds(), tc.name),
					fmt.Sprintf("n2 took over in %.2f s; %s master after resume; %s", took.Seconds(), rep.Groups[0].Master, rep.Summary()))
			})
		}
	}
}

// SIGKILL of the master's daemon (no priority 0, no cleanup: its addresses stay on the
// interface), then a restart on the same node. "same-config": the restarted daemon must remove the
// crash's leftovers or take them over as master, and preempt back. "vip-removed-while-down": while
// n1 is down, 192.0.2.110 is removed from the cluster's configuration (n2 reloads); n1 restarts
// without it and must not keep the crash's copy of an address nobody configures any more.
func TestKillAndRestart(t *testing.T) {
	netlab.Require(t)
	for _, tc := range []struct {
		name       string
		removeVIP2 bool
	}{
		{"same-config", false},
		{"vip-removed-while-down", true},
	} {
		for _, impl := range bothImpls {
			t.Run(tc.name+"/"+impl, func(t *testing.T) {
				c := newCluster(t, impl, 2, false)
				c.start("n1", inst(51, 150, vipA, vipA2), inst(61, 150, vip6))
				c.start("n2", inst(51, 100, vipA, vipA2), inst(61, 100, vip6))
				g51, g61 := c.group(51, false), c.group(61, true)
				c.waitSole("n1", 5*time.Second, g51, g61)
				time.Sleep(3 * iv)
				killedAt := time.Now()
				c.kill("n1")
				took := c.waitHolds(g51, "n2", killedAt, g51.MDI()+takeoverMargin)
				c.waitHolds(g61, "n2", killedAt, g61.MDI()+takeoverMargin)
				var stale []string
				for _, a := range append(slices.Clone(g51.VIPs), g61.VIPs...) {
					if slices.Contains(c.holders(a), "n1") {
						stale = append(stale, a.String())
					}
				}
				n1Insts := c.insts["n1"]
				if tc.removeVIP2 {
					n1Insts = []peer.Instance{inst(51, 150, vipA), inst(61, 150, vip6)}
					c.reload("n2", []peer.Instance{inst(51, 100, vipA), inst(61, 100, vip6)})
				}
				c.waitGone()
				c.start("n1", n1Insts...)
				c.waitUp("n1", 5*time.Second)
				heal := time.Now()
				rep := c.check(heal, "restarted after SIGKILL")
				if rep.Groups[0].Master != "n1" || rep.Groups[1].Master != "n1" {
					c.violation("[%s] after the restart: masters %s/%s, want n1", impl, rep.Groups[0].Master, rep.Groups[1].Master)
				}
				// One copy of each address on n1, none of an address no node configures.
				addrs, err := c.node("n1").Addrs(netlab.Dev)
				if err != nil {
					t.Fatal(err)
				}
				copies := map[netip.Addr]int{}
				for _, p := range addrs {
					copies[p.Addr()]++
				}
				for _, a := range []netip.Addr{vipA.Addr(), vip6.Addr()} {
					if copies[a] != 1 {
						c.violation("[%s] %d copies of %s on n1 after the restart: %v", impl, copies[a], a, addrs)
					}
				}
				orphan := "none"
				if tc.removeVIP2 {
					if hs := c.holders(vipA2.Addr()); len(hs) != 0 {
						orphan = fmt.Sprintf("%s still on %v", vipA2.Addr(), hs)
						c.violation("[%s] %s, removed from every configuration while n1 was down, is still on %v after the restart", impl, vipA2.Addr(), hs)
					} else {
						orphan = fmt.Sprintf("%s removed", vipA2.Addr())
					}
				}
				row := "SIGKILL of the master, restart with the same configuration"
				if tc.removeVIP2 {
					row = "SIGKILL of the master, a VIP removed from the configuration, restart"
				}
				c.record(row, fmt.Sprintf("n2 took over in %.2f s; crash left %d addresses on n1; after restart: orphan %s; %s",
					took.Seconds(), len(stale), orphan, rep.Summary()))
			})
		}
	}
}

// A backup stalled with SIGSTOP for three Master_Down_Intervals, then resumed: its master-down
// timer is overdue and the master's adverts wait in its socket. Whichever it handles first, it
// must end as backup, without the addresses, and announce nothing it does not hold.
func TestBackupStalled(t *testing.T) {
	netlab.Require(t)
	for _, impl := range bothImpls {
		t.Run(impl, func(t *testing.T) {
			c := newCluster(t, impl, 2, false)
			c.start("n1", inst(51, 150, vipA, vipA2), inst(61, 150, vip6))
			c.start("n2", inst(51, 100, vipA, vipA2), inst(61, 100, vip6))
			g51, g61 := c.group(51, false), c.group(61, true)
			c.waitSole("n1", 5*time.Second, g51, g61)
			time.Sleep(1500 * time.Millisecond) // n1's second burst is out; n2 settled as backup
			pid := c.vrrpPID("n2")
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			stopped := true
			defer func() {
				if stopped {
					_ = syscall.Kill(pid, syscall.SIGCONT)
				}
			}()
			time.Sleep(3 * g51.MDI())
			heal := time.Now()
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			stopped = false
			rep := c.check(heal, "stalled backup resumed")
			if rep.Groups[0].Master != "n1" || rep.Groups[1].Master != "n1" {
				c.violation("[%s] after SIGCONT: masters %s/%s, want n1", impl, rep.Groups[0].Master, rep.Groups[1].Master)
			}
			c.record("backup stalled (SIGSTOP 1.1 s), then SIGCONT", rep.Summary())
		})
	}
}

// A burst of 20 reloads during a failover: n1 (master of VRID 51) is cut off, and at once n2 and
// n3 are reloaded ten times each, their VRID 51 priorities swapping every round (100/50, then
// 60/120), so the election among them is redone while it runs. VRID 52 (n2 master) is in every
// file unchanged: reloads must not disturb it (no state change, no advert gap). After the burst
// the last files decide: n3 (120) master of VRID 51, checked from the end of the burst; then n1's
// link returns and it takes VRID 51 back.
func TestReloadBurstDuringFailover(t *testing.T) {
	netlab.Require(t)
	for _, impl := range bothImpls {
		t.Run(impl, func(t *testing.T) {
			c := newCluster(t, impl, 3, false)
			cfg := func(p51, p52 int) []peer.Instance { return []peer.Instance{inst(51, p51, vipA), inst(52, p52, vipB)} }
			c.start("n1", cfg(150, 100)...)
			c.start("n2", cfg(100, 150)...)
			c.start("n3", cfg(50, 50)...)
			g51, g52 := c.group(51, false), c.group(52, false)
			c.waitSole("n1", 5*time.Second, g51)
			c.waitSole("n2", 5*time.Second, g52)
			time.Sleep(3 * iv)
			changes52 := func() int {
				n := 0
				for _, name := range []string{"n2", "n3"} {
					for _, line := range strings.Split(c.procs[name].Log(), "\n") {
						if (impl == implVigil && strings.Contains(line, `msg="vrrp state change"`) && strings.Contains(line, "vrrp_instance=vr52 ")) ||
							(impl == implKeepalived && strings.Contains(line, "(vr52) Entering")) {
							n++
						}
					}
				}
				return n
			}
			before52 := changes52()
			cut := time.Now()
			if err := c.node("n1").LinkDown(); err != nil {
				t.Fatal(err)
			}
			var took []time.Duration
			for round := range 10 {
				p2, p3 := 100, 50
				if round%2 == 1 {
					p2, p3 = 60, 120
				}
				for _, r := range []struct {
					name string
					p51  int
				}{{"n2", p2}, {"n3", p3}} {
					p52 := 150
					if r.name == "n3" {
						p52 = 50
					}
					start := time.Now()
					c.reload(r.name, cfg(r.p51, p52))
					took = append(took, time.Since(start))
				}
			}
			heal := time.Now()
			rep := c.check(heal, "after the reload burst")
			if rep.Groups[0].Master != "n3" || rep.Groups[1].Master != "n2" {
				c.violation("[%s] after the burst: masters %s/%s, want n3 (120) / n2", impl, rep.Groups[0].Master, rep.Groups[1].Master)
			}
			end := time.Now()
			gap52 := maxGap(masterAdverts(c.adverts(), g52, 2, cut, end), cut, end)
			moved52 := changes52() - before52
			// A gap as long as the backups' Master_Down_Interval would let one of them take over.
			if gap52 >= g52.MDI() || moved52 != 0 {
				c.violation("[%s] VRID 52, unchanged in every file, was disturbed by the reloads: %d state changes, n2's longest advert gap %s", impl, moved52, gap52.Round(time.Millisecond))
			}
			if impl == implVigil {
				st, err := Status(c.admin("n3"))
				if err != nil {
					t.Fatal(err)
				}
				if in := st.Instances[0]; in.Name != "vr51" || in.BasePriority != 120 {
					c.violation("[vigil] n3's vr51 after the burst: %+v, want priority 120", in)
				}
			}
			slices.Sort(took)
			t.Logf("[%s] 20 reloads in %s: each %s min, %s median, %s max", impl, heal.Sub(cut).Round(time.Millisecond),
				took[0].Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))

			heal2 := time.Now()
			if err := c.node("n1").LinkUp(); err != nil {
				t.Fatal(err)
			}
			rep2 := c.check(heal2, "n1's link restored after the burst")
			if rep2.Groups[0].Master != "n1" {
				c.violation("[%s] after the restore: VRID 51 master %s, want n1", impl, rep2.Groups[0].Master)
			}
			c.record("20 reloads (priority swaps) during a failover", fmt.Sprintf("reloads %.2f s median; untouched VRID: %d state changes, longest advert gap %.2f s; after the burst %s; after n1 returns %s",
				took[len(took)/2].Seconds(), moved52, gap52.Seconds(), rep.Summary(), rep2.Summary()))
		})
	}
}
