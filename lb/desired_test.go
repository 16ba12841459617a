package lb

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
)

// health is a fake [Health]: real servers listed in down are down; those in
// dyn carry a dynamic weight.
type health struct {
	down map[string]bool
	dyn  map[string]int
}

func (h health) RealServer(vs string, rs DestKey) (bool, int, bool) {
	k := vs + " " + netip.AddrPortFrom(rs.Addr, rs.Port).String()
	w, ok := h.dyn[k]
	return !h.down[k], w, ok
}

var web = Service{Key: ServiceKey{Protocol: TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}, Scheduler: "wrr"}

func rs(addr string, w int, inhibit bool) RealServer {
	return RealServer{Dest: Dest{Addr: netip.MustParseAddr(addr), Port: 8080, Weight: w}, Inhibit: inhibit}
}

// weights renders an entry's destinations as "addr=weight ..." in order.
func weights(e Entry) string {
	s := ""
	for _, d := range e.SortedDests() {
		if s != "" {
			s += " "
		}
		s += d.Addr.String() + "=" + strconv.Itoa(d.Weight)
	}
	return s
}

func TestDesired(t *testing.T) {
	sorry := &Dest{Addr: netip.MustParseAddr("203.0.113.9"), Port: 80}
	three := []RealServer{rs("198.51.100.11", 1, false), rs("198.51.100.12", 2, true), rs("198.51.100.13", 3, false)}
	tests := []struct {
		name       string
		quorum     int
		hysteresis int
		sorry      *Dest
		sorryInh   bool
		down       []string
		dyn        map[string]int
		prev       QuorumState
		want       string
		wantQuorum bool
	}{
		{name: "all up", want: "198.51.100.11=1 198.51.100.12=2 198.51.100.13=3", wantQuorum: true},
		// keepalived 2.7: a failed RS is deleted ...
		{name: "down removed", down: []string{".11"}, want: "198.51.100.12=2 198.51.100.13=3", wantQuorum: true},
		// ... or kept with weight 0 under inhibit_on_failure.
		{name: "down inhibited", down: []string{".12"}, want: "198.51.100.11=1 198.51.100.12=0 198.51.100.13=3", wantQuorum: true},
		// misc_dynamic: the checker's weight replaces the configured one
		// and counts towards quorum.
		{name: "dynamic weight", dyn: map[string]int{".13": 7}, want: "198.51.100.11=1 198.51.100.12=2 198.51.100.13=7", wantQuorum: true},
		// 1.7: without a sorry server, quorum loss only fires scripts.
		{name: "lost without sorry", quorum: 5, down: []string{".13"}, want: "198.51.100.11=1 198.51.100.12=2", wantQuorum: false},
		// 1.7: with one, the live RS are pulled and the sorry server added;
		// the inhibited one stays at weight 0.
		{name: "lost with sorry", quorum: 5, sorry: sorry, down: []string{".13"}, want: "198.51.100.12=0 203.0.113.9=1", wantQuorum: false},
		{name: "regained with sorry", quorum: 5, sorry: sorry, prev: QuorumState{"http": false}, want: "198.51.100.11=1 198.51.100.12=2 198.51.100.13=3", wantQuorum: true},
		// Hysteresis: sum 3 with quorum 4±1 holds whichever state it had.
		{name: "hysteresis holds up", quorum: 4, hysteresis: 1, sorry: sorry, down: []string{".13"}, prev: QuorumState{"http": true}, want: "198.51.100.11=1 198.51.100.12=2", wantQuorum: true},
		{name: "hysteresis holds down", quorum: 4, hysteresis: 1, sorry: sorry, down: []string{".13"}, prev: QuorumState{"http": false}, want: "198.51.100.12=0 203.0.113.9=1", wantQuorum: false},
		// Lost strictly below quorum−hysteresis: sum 2 < 3.
		{name: "hysteresis loses", quorum: 4, hysteresis: 1, sorry: sorry, down: []string{".11", ".13"}, prev: QuorumState{"http": true}, want: "198.51.100.12=0 203.0.113.9=1", wantQuorum: false},
		// Gained at ≥ quorum+hysteresis: sum 6 ≥ 5, but sum 4 < 5 is not.
		{name: "hysteresis gains", quorum: 4, hysteresis: 1, sorry: sorry, prev: QuorumState{"http": false}, want: "198.51.100.11=1 198.51.100.12=2 198.51.100.13=3", wantQuorum: true},
		{name: "hysteresis not yet gained", quorum: 4, hysteresis: 1, sorry: sorry, down: []string{".12"}, prev: QuorumState{"http": false}, want: "198.51.100.12=0 203.0.113.9=1", wantQuorum: false},
		// No previous state: the plain threshold decides (sum 4 ≥ 4).
		{name: "first call plain threshold", quorum: 4, hysteresis: 3, sorry: sorry, down: []string{".12"}, want: "198.51.100.11=1 198.51.100.12=0 198.51.100.13=3", wantQuorum: true},
		// Quorum 0 counts as 1: all down (sum 0) loses it.
		{name: "default quorum 1", sorry: sorry, down: []string{".11", ".12", ".13"}, want: "198.51.100.12=0 203.0.113.9=1", wantQuorum: false},
		// A dynamic weight 0 of a live RS adds nothing to quorum.
		{name: "dynamic zero counts nothing", quorum: 2, sorry: sorry, down: []string{".12", ".13"}, dyn: map[string]int{".11": 0}, want: "198.51.100.12=0 203.0.113.9=1", wantQuorum: false},
		// sorry_server_inhibit: with quorum the sorry server stays at
		// weight 0 (its connections drain when quorum returns) ...
		{name: "sorry inhibited with quorum", sorry: sorry, sorryInh: true, prev: QuorumState{"http": false}, want: "198.51.100.11=1 198.51.100.12=2 198.51.100.13=3 203.0.113.9=0", wantQuorum: true},
		// ... and serves as usual without.
		{name: "sorry inhibited serving", quorum: 5, sorry: sorry, sorryInh: true, down: []string{".13"}, want: "198.51.100.12=0 203.0.113.9=1", wantQuorum: false},
		// A real server at the sorry server's address keeps its own entry.
		{name: "sorry inhibited is a real server", sorry: &Dest{Addr: netip.MustParseAddr("198.51.100.11"), Port: 8080}, sorryInh: true, want: "198.51.100.11=1 198.51.100.12=2 198.51.100.13=3", wantQuorum: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := health{down: map[string]bool{}, dyn: map[string]int{}}
			for _, d := range tc.down {
				h.down["http 198.51.100"+d+":8080"] = true
			}
			for a, w := range tc.dyn {
				h.dyn["http 198.51.100"+a+":8080"] = w
			}
			vs := VirtualServer{Name: "http", Service: web, Reals: three, Quorum: tc.quorum, Hysteresis: tc.hysteresis, Sorry: tc.sorry, SorryInhibit: tc.sorryInh}
			prevCopy := QuorumState{}
			for k, v := range tc.prev {
				prevCopy[k] = v
			}
			tab, q := Desired([]VirtualServer{vs}, h, tc.prev)
			if len(tab) != 1 {
				t.Fatalf("table has %d services, want 1", len(tab))
			}
			e := tab[web.Key.Normal()]
			if got := weights(e); got != tc.want {
				t.Errorf("dests = %q, want %q", got, tc.want)
			}
			if q["http"] != tc.wantQuorum {
				t.Errorf("quorum = %v, want %v", q["http"], tc.wantQuorum)
			}
			if len(tc.prev) != len(prevCopy) || tc.prev["http"] != prevCopy["http"] {
				t.Errorf("Desired modified prev: %v", tc.prev)
			}
			if e.Service != web.Normal() {
				t.Errorf("service = %+v, want %+v", e.Service, web.Normal())
			}
		})
	}
}

func TestDesiredNilHealthAndNormalisation(t *testing.T) {
	svc := Service{Key: ServiceKey{Protocol: UDP, Addr: netip.MustParseAddr("::ffff:192.0.2.53"), Port: 53}, Persistence: 1500e6}
	tab, _ := Desired([]VirtualServer{{Name: "dns", Service: svc, Reals: []RealServer{rs("::ffff:198.51.100.53", 1, false)}}}, nil, nil)
	k := ServiceKey{Family: IPv4, Protocol: UDP, Addr: netip.MustParseAddr("192.0.2.53"), Port: 53}
	e, ok := tab[k]
	if !ok {
		t.Fatalf("no normalised key %v in %v", k, tab)
	}
	if e.Service.Scheduler != "wlc" || e.Service.Persistence != 2e9 || e.Service.PersistenceMask != 32 {
		t.Errorf("service not normalised: %+v", e.Service)
	}
	if got := weights(e); got != "198.51.100.53=1" {
		t.Errorf("dests = %q", got)
	}
}

// TestDesiredProperty checks invariants over random configs and health:
// only configured real servers and the sorry server appear; a down real
// server appears only inhibited at weight 0; with quorum, every live real
// server appears with its effective weight; without it and with a sorry
// server, nothing but the sorry server has weight; and the quorum state
// changes only when the sum crosses the hysteresis band.
func TestDesiredProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		n := r.IntN(5)
		vs := VirtualServer{Name: "vs", Service: web, Quorum: r.IntN(6), Hysteresis: r.IntN(3)}
		if r.IntN(2) == 0 {
			vs.Sorry = &Dest{Addr: netip.MustParseAddr("203.0.113.9"), Port: 80, Weight: r.IntN(2)}
		}
		h := health{down: map[string]bool{}, dyn: map[string]int{}}
		sum := 0
		for j := 0; j < n; j++ {
			real := rs(netip.AddrFrom4([4]byte{198, 51, 100, byte(j)}).String(), r.IntN(4), r.IntN(2) == 0)
			vs.Reals = append(vs.Reals, real)
			k := "vs " + netip.AddrPortFrom(real.Addr, real.Port).String()
			h.down[k] = r.IntN(3) == 0
			w := real.Weight
			if r.IntN(4) == 0 {
				w = r.IntN(4)
				h.dyn[k] = w
			}
			if !h.down[k] {
				sum += w
			}
		}
		var prev QuorumState
		if r.IntN(3) > 0 {
			prev = QuorumState{"vs": r.IntN(2) == 0}
		}
		tab, q := Desired([]VirtualServer{vs}, h, prev)
		e := tab[web.Key.Normal()]
		has := q["vs"]
		quorum := max(vs.Quorum, 1)
		if had, ok := prev["vs"]; ok {
			if had && sum >= quorum-vs.Hysteresis && !has || !had && sum < quorum+vs.Hysteresis && has {
				t.Fatalf("case %d: quorum %v -> %v with sum %d, quorum %d±%d", i, had, has, sum, quorum, vs.Hysteresis)
			}
		}
		sorryMode := !has && vs.Sorry != nil
		for _, d := range e.Dests {
			if vs.Sorry != nil && d.Key() == vs.Sorry.Key() {
				if !sorryMode {
					t.Fatalf("case %d: sorry server present with quorum", i)
				}
				continue
			}
			if sorryMode && d.Weight != 0 {
				t.Fatalf("case %d: %v has weight %d while the sorry server serves", i, d.Addr, d.Weight)
			}
		}
		for _, real := range vs.Reals {
			k := "vs " + netip.AddrPortFrom(real.Addr, real.Port).String()
			d, ok := e.Dests[real.Key()]
			w := real.Weight
			if dw, dyn := h.dyn[k]; dyn {
				w = dw
			}
			switch {
			case h.down[k] && real.Inhibit:
				if !ok || d.Weight != 0 {
					t.Fatalf("case %d: inhibited down %v: %+v %v", i, real.Addr, d, ok)
				}
			case h.down[k]:
				if ok {
					t.Fatalf("case %d: down %v present", i, real.Addr)
				}
			case !sorryMode:
				if !ok || d.Weight != w {
					t.Fatalf("case %d: live %v: %+v %v, want weight %d", i, real.Addr, d, ok, w)
				}
			}
		}
		if sorryMode && e.Dests[vs.Sorry.Key()].Weight < 1 {
			t.Fatalf("case %d: sorry server missing or weight 0", i)
		}
	}
}

// keepalived's virtual_server_group: one virtual server, several kernel
// services, the same destinations (and one quorum) under each.
func TestDesiredGroup(t *testing.T) {
	other := ServiceKey{Protocol: TCP, Addr: netip.MustParseAddr("192.0.2.101"), Port: 80}
	mark := ServiceKey{Family: IPv4, FWMark: 7}
	vs := VirtualServer{Name: "http", Service: web, Reals: []RealServer{rs("198.51.100.11", 1, false), rs("198.51.100.12", 2, true)},
		Group: []ServiceKey{other, mark}}
	tab, q := Desired([]VirtualServer{vs}, health{down: map[string]bool{"http 198.51.100.12:8080": true}}, nil)
	if len(tab) != 3 || !q["http"] {
		t.Fatalf("%d services (want 3), quorum %v", len(tab), q["http"])
	}
	for _, k := range vs.Keys() {
		e, ok := tab[k]
		if !ok {
			t.Fatalf("no entry for %s", k)
		}
		if got := weights(e); got != "198.51.100.11=1 198.51.100.12=0" {
			t.Errorf("%s: dests %q", k, got)
		}
		if e.Service.Scheduler != "wrr" || e.Service.Key != k {
			t.Errorf("%s: service %+v", k, e.Service)
		}
	}
	// The members' destination maps are distinct: changing one table entry
	// in place leaves the others alone.
	delete(tab[web.Key.Normal()].Dests, DestKey{netip.MustParseAddr("198.51.100.11"), 8080})
	if len(tab[other.Normal()].Dests) != 2 {
		t.Errorf("group members share a destination map")
	}
}
