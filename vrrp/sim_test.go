package vrrp_test

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"vigil/vrrp"
)

// A deterministic LAN simulator: instances exchange real encoded adverts
// (Marshal → Decode → Receive) with small random delays, under random starts,
// stops, link losses and priority changes. After the chaos a lossless quiet
// period must leave exactly one master per VRID — the best one when everyone
// preempts — and nobody may ever hold the VIPs outside the Master state.

type simNode struct {
	name    string
	addr    netip.Addr
	inst    *vrrp.Instance
	running bool
	cutTill time.Time // link down until then
	holds   bool      // VIPs installed
}

type simPkt struct {
	at   time.Time
	to   *simNode
	data []byte
	rx   vrrp.RxInfo
	seq  int
}

type pktQueue []*simPkt

func (q pktQueue) Len() int { return len(q) }
func (q pktQueue) Less(i, j int) bool {
	if q[i].at.Equal(q[j].at) {
		return q[i].seq < q[j].seq
	}
	return q[i].at.Before(q[j].at)
}
func (q pktQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *pktQueue) Push(x any)   { *q = append(*q, x.(*simPkt)) }
func (q *pktQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

type sim struct {
	t     *testing.T
	rng   *rand.Rand
	now   time.Time
	vrid  uint8
	nodes []*simNode
	q     pktQueue
	seq   int
}

func newSim(t *testing.T, seed uint64, vrid uint8, version uint8, interval time.Duration, prios []uint8, preempt bool) *sim {
	s := &sim{t: t, rng: rand.New(rand.NewPCG(seed, uint64(vrid))), now: t0, vrid: vrid}
	for k, p := range prios {
		addr := netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + k)})
		cfg := vrrp.Config{
			Name: fmt.Sprintf("n%d", k), VRID: vrid, Version: version, Priority: p, AdvertInterval: interval,
			Preempt: preempt, Accept: true, VIPs: []netip.Addr{netip.MustParseAddr("192.0.2.100")}, Primary: addr,
		}
		inst, err := vrrp.NewInstance(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.nodes = append(s.nodes, &simNode{name: cfg.Name, addr: addr, inst: inst})
	}
	return s
}

func (s *sim) do(n *simNode, acts []vrrp.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case vrrp.SendAdvert:
			if !n.cutTill.IsZero() && s.now.Before(n.cutTill) {
				continue
			}
			b, err := a.Advert.Marshal(n.addr, vrrp.GroupIPv4, vrrp.ChecksumPseudoHeader)
			if err != nil {
				s.t.Fatal(err)
			}
			for _, m := range s.nodes {
				if m == n {
					continue
				}
				s.seq++
				delay := time.Duration(50+s.rng.IntN(400)) * time.Microsecond
				heap.Push(&s.q, &simPkt{at: s.now.Add(delay), to: m, data: b, seq: s.seq,
					rx: vrrp.RxInfo{Src: n.addr, Dst: vrrp.GroupIPv4, TTL: 255}})
			}
		case vrrp.AddVIPs:
			n.holds = true
		case vrrp.RemoveVIPs:
			n.holds = false
		}
	}
	// Invariant: addresses are held exactly in the Master state.
	if n.holds != (n.inst.State() == vrrp.StateMaster) {
		s.t.Fatalf("%s at %s: holds VIPs=%v in state %v", n.name, s.now.Sub(t0), n.holds, n.inst.State())
	}
}

// runUntil advances simulated time, delivering packets and firing timers.
func (s *sim) runUntil(end time.Time) {
	for {
		next := end
		var who *simNode
		for _, n := range s.nodes {
			if d := n.inst.NextDeadline(); n.running && !d.IsZero() && d.Before(next) {
				next, who = d, n
			}
		}
		if len(s.q) > 0 && !s.q[0].at.After(next) && (who == nil || s.q[0].at.Before(next)) {
			p := heap.Pop(&s.q).(*simPkt)
			s.now = p.at
			if !p.to.running || (!p.to.cutTill.IsZero() && s.now.Before(p.to.cutTill)) {
				continue
			}
			d, err := vrrp.Decode(p.data, p.rx, vrrp.ChecksumPseudoHeader)
			if err != nil {
				s.t.Fatalf("decode: %v", err)
			}
			acts, err := p.to.inst.Receive(s.now, d, p.rx)
			if err != nil {
				if d.Advert.VRID != p.to.inst.Config().VRID || p.to.inst.Config().Owner() {
					continue // the driver's VRID demux; the owner discards all (§7.1)
				}
				s.t.Fatalf("%s rejected an advert: %v", p.to.name, err)
			}
			s.do(p.to, acts)
			continue
		}
		if who == nil {
			s.now = end
			return
		}
		s.now = next
		s.do(who, who.inst.Tick(s.now))
	}
}

func (s *sim) masters(vrid uint8) []*simNode {
	var m []*simNode
	for _, n := range s.nodes {
		if n.running && n.inst.Config().VRID == vrid && n.inst.State() == vrrp.StateMaster {
			m = append(m, n)
		}
	}
	return m
}

// chaos applies random events for the given duration.
func (s *sim) chaos(d time.Duration, interval time.Duration) {
	end := s.now.Add(d)
	for s.now.Before(end) {
		s.runUntil(s.now.Add(time.Duration(s.rng.Int64N(int64(6 * interval)))))
		n := s.nodes[s.rng.IntN(len(s.nodes))]
		switch s.rng.IntN(6) {
		case 0: // start or stop (graceful, priority 0)
			if n.running {
				s.do(n, n.inst.Shutdown(s.now))
				n.running = false
			} else {
				n.running = true
				s.do(n, n.inst.Start(s.now))
			}
		case 1: // crash: no priority 0; the restarted process starts afresh
			if n.running {
				n.running, n.holds = false, false
				n.inst = mustReset(s.t, n.inst)
			}
		case 2: // link loss for a while (both directions)
			n.cutTill = s.now.Add(time.Duration(s.rng.Int64N(int64(8 * interval))))
		case 3: // priority change (trackers)
			if acts, err := n.inst.SetPriority(s.now, uint8(1+s.rng.IntN(254))); err == nil {
				s.do(n, acts)
			}
		case 4: // a burst of packet loss on the whole LAN: drop what is in flight
			s.q = s.q[:0]
		case 5: // interface down/up or a weight-0 tracker: FAULT in or out
			s.do(n, n.inst.SetFault(s.now, !n.inst.Faulted(), vrrp.CauseInterfaceDown))
		}
	}
	for _, n := range s.nodes {
		n.cutTill = time.Time{}
		s.do(n, n.inst.SetFault(s.now, false, ""))
	}
}

// mustReset gives a crashed node a fresh instance with the same config (a
// restarted process).
func mustReset(t *testing.T, i *vrrp.Instance) *vrrp.Instance {
	n, err := vrrp.NewInstance(i.Config())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSimulatorOneMasterPerVRID(t *testing.T) {
	type scenario struct {
		name     string
		version  uint8
		interval time.Duration
		prios    []uint8
		preempt  bool
	}
	scenarios := []scenario{
		{"v3 three nodes 1s", 3, time.Second, []uint8{150, 100, 50}, true},
		{"v3 equal priorities 100ms", 3, 100 * time.Millisecond, []uint8{100, 100, 100}, true},
		{"v2 two nodes", 2, time.Second, []uint8{200, 100}, true},
		{"v3 owner and two backups 10ms", 3, 10 * time.Millisecond, []uint8{255, 120, 110}, true},
		{"v3 nopreempt five nodes", 3, 50 * time.Millisecond, []uint8{90, 80, 70, 60, 50}, false},
	}
	seeds := 60
	if testing.Short() {
		seeds = 10
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			for seed := range seeds {
				s := newSim(t, uint64(seed), 51, sc.version, sc.interval, sc.prios, sc.preempt)
				for _, n := range s.nodes {
					if s.rng.IntN(4) != 0 {
						n.running = true
						s.do(n, n.inst.Start(s.now))
					}
				}
				s.chaos(60*sc.interval, sc.interval)
				// Bring everyone up so the quiet period has a full cluster to
				// converge (stopped nodes come back as a restart would).
				for _, n := range s.nodes {
					if !n.running {
						n.running = true
						s.do(n, n.inst.Start(s.now))
					}
				}
				// Quiet, lossless: enough for a down interval plus skew, twice.
				s.runUntil(s.now.Add(10 * sc.interval))
				ms := s.masters(51)
				if len(ms) != 1 {
					t.Fatalf("seed %d: %d masters after quiet period", seed, len(ms))
				}
				// With preemption no node may outrank the master: a backup
				// preempts only a strictly lower priority (§6.4.2), and equal
				// priorities are settled only between masters (§6.4.3).
				if sc.preempt {
					for _, n := range s.nodes {
						if n.inst.Priority() > ms[0].inst.Priority() {
							t.Fatalf("seed %d: master %s (prio %d) outranked by %s (prio %d)", seed,
								ms[0].name, ms[0].inst.Priority(), n.name, n.inst.Priority())
						}
					}
				}
			}
		})
	}
}

// Two VRIDs on one LAN, each host running an instance of both (same primary
// address): every advert reaches every instance and is demultiplexed by VRID;
// each VRID ends with exactly one master, the best one.
func TestSimulatorTwoVRIDs(t *testing.T) {
	for seed := range 30 {
		s := newSim(t, uint64(seed), 51, 3, 100*time.Millisecond, []uint8{150, 100, 50}, true)
		other := newSim(t, uint64(seed), 52, 3, 100*time.Millisecond, []uint8{50, 100, 150}, true)
		s.nodes = append(s.nodes, other.nodes...)
		for _, n := range s.nodes {
			n.running = true
			s.do(n, n.inst.Start(s.now))
		}
		s.chaos(6*time.Second, 100*time.Millisecond)
		for _, n := range s.nodes {
			if !n.running {
				n.running = true
				s.do(n, n.inst.Start(s.now))
			}
		}
		s.runUntil(s.now.Add(time.Second))
		for _, vrid := range []uint8{51, 52} {
			ms := s.masters(vrid)
			if len(ms) != 1 {
				t.Fatalf("seed %d vrid %d: %d masters", seed, vrid, len(ms))
			}
			for _, n := range s.nodes {
				if n.inst.Config().VRID == vrid && n.inst.Priority() > ms[0].inst.Priority() {
					t.Fatalf("seed %d vrid %d: master %s outranked by %s", seed, vrid, ms[0].name, n.name)
				}
			}
		}
	}
}
