package gossip

import (
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"vigil/lb"
)

// localHealth is a fake local checker view: a missing real server is up
// without a dynamic weight, as a real server without checks is.
type localHealth map[lb.RealServerID]localState

type localState struct {
	up, fresh bool
	weight    int
	dynamic   bool
}

func (h localHealth) RealServer(vs string, rs lb.DestKey) (bool, int, bool) {
	s, ok := h[lb.RealServerID{VS: vs, RS: rs}]
	if !ok {
		return true, 0, false
	}
	return s.up, s.weight, s.dynamic
}

// verdicts is the local func Update wants, over the same fake.
func (h localHealth) verdicts(id lb.RealServerID) (up, fresh bool) {
	s, ok := h[id]
	if !ok {
		return true, false
	}
	return s.up, s.fresh
}

var (
	rsA = lb.RealServerID{VS: "http", RS: lb.DestKey{Addr: netip.MustParseAddr("198.51.100.11"), Port: 8080}}
	rsB = lb.RealServerID{VS: "http", RS: lb.DestKey{Addr: netip.MustParseAddr("198.51.100.12"), Port: 8080}}
	tv0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
)

// obs is another node's result on rsA.
func obs(node string, live, probing, up bool) HealthResultRow {
	return HealthResultRow{Origin: node, Live: live, Result: HealthResult{VS: rsA.VS, RS: rsA.RS, Up: up, Probing: probing}}
}

// The policy rules of issue 13 ("One real-server set across the fleet"),
// seen from node "self".
func TestHealthViewPolicies(t *testing.T) {
	for _, c := range []struct {
		name       string
		policy     Policy // "" = not set: local
		self       localState
		others     []HealthResultRow
		up         bool
		fresh, ups int
		disagree   bool
		dissenters []string
	}{
		// "One director with a broken path to a real server no longer
		// removes a healthy server (keepalived removes it on that director)."
		{"broken path, quorum: 1 of 3 down stays up", PolicyQuorum, localState{up: false, fresh: true},
			[]HealthResultRow{obs("b", true, true, true), obs("c", true, true, true)}, true, 3, 2, true, []string{"self"}},
		{"broken path, local: down here", PolicyLocal, localState{up: false, fresh: true},
			[]HealthResultRow{obs("b", true, true, true), obs("c", true, true, true)}, false, 3, 2, false, []string{"b", "c"}},
		// "down only when a strict majority of the live directors with a
		// fresh result see it down"
		{"quorum: 2 of 3 down is down", PolicyQuorum, localState{up: true, fresh: true},
			[]HealthResultRow{obs("b", true, true, false), obs("c", true, true, false)}, false, 3, 1, true, []string{"self"}},
		{"quorum: 2 of 4 down is up", PolicyQuorum, localState{up: true, fresh: true},
			[]HealthResultRow{obs("b", true, true, false), obs("c", true, true, false), obs("d", true, true, true)}, true, 4, 2, false, []string{"b", "c"}},
		{"quorum: 1 of 2 down is up", PolicyQuorum, localState{up: true, fresh: true},
			[]HealthResultRow{obs("b", true, true, false)}, true, 2, 1, false, []string{"b"}},
		// "whether the observer is probing or suspended by ha_suspend": a
		// suspended observer's result is not fresh.
		{"quorum: suspended observer ignored", PolicyQuorum, localState{up: true, fresh: true},
			[]HealthResultRow{obs("b", true, true, false), obs("c", true, false, false)}, true, 2, 1, false, []string{"b"}},
		// "the live directors": a dead or stale member's result is not fresh.
		{"quorum: dead observer ignored", PolicyQuorum, localState{up: true, fresh: true},
			[]HealthResultRow{obs("b", true, true, false), obs("c", false, true, false)}, true, 2, 1, false, []string{"b"}},
		{"quorum: this node suspended, the others decide", PolicyQuorum, localState{up: true, fresh: false},
			[]HealthResultRow{obs("b", true, true, false), obs("c", true, true, false)}, false, 2, 0, true, nil},
		// "when only this node has a fresh result, it decides"
		{"quorum: only self fresh, down", PolicyQuorum, localState{up: false, fresh: true},
			[]HealthResultRow{obs("b", false, true, true), obs("c", true, false, true)}, false, 1, 0, false, nil},
		{"quorum: only self fresh, up", PolicyQuorum, localState{up: true, fresh: true},
			[]HealthResultRow{obs("b", true, false, false)}, true, 1, 1, false, nil},
		{"quorum: nobody fresh, this node's verdict", PolicyQuorum, localState{up: false, fresh: false},
			[]HealthResultRow{obs("b", true, false, true)}, false, 0, 0, false, nil},
		{"any: one up is up", PolicyAny, localState{up: false, fresh: true},
			[]HealthResultRow{obs("b", true, true, false), obs("c", true, true, true)}, true, 3, 1, true, []string{"b", "self"}},
		{"any: all down is down", PolicyAny, localState{up: false, fresh: true},
			[]HealthResultRow{obs("b", true, true, false)}, false, 2, 0, false, nil},
		{"any: the only up is suspended", PolicyAny, localState{up: false, fresh: true},
			[]HealthResultRow{obs("b", true, false, true)}, false, 1, 0, false, nil},
		{"any: nobody fresh, this node's verdict", PolicyAny, localState{up: false, fresh: false},
			[]HealthResultRow{obs("b", false, true, true)}, false, 0, 0, false, nil},
		{"no policy set is local", "", localState{up: true, fresh: true},
			[]HealthResultRow{obs("b", true, true, false), obs("c", true, true, false)}, true, 3, 1, false, []string{"b", "c"}},
		// lb.Health contract: "A real server without checks is up."
		{"no rows and no local checks is up", PolicyQuorum, localState{up: true, fresh: false}, nil, true, 0, 0, false, nil},
		{"a row under this node's name is not a second vote", PolicyQuorum, localState{up: true, fresh: true},
			[]HealthResultRow{obs("self", true, true, false), obs("b", true, true, false)}, true, 2, 1, false, []string{"b"}},
		{"a duplicate row of one observer is one vote", PolicyQuorum, localState{up: true, fresh: true},
			[]HealthResultRow{obs("b", true, true, false), obs("b", true, true, false)}, true, 2, 1, false, []string{"b"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			local := localHealth{rsA: c.self}
			v := NewHealthView("self", local)
			if c.policy != "" {
				v.SetPolicies(map[string]Policy{rsA.VS: c.policy})
			}
			// A result on another virtual server must not count.
			others := append(c.others, HealthResultRow{Origin: "z", Live: true,
				Result: HealthResult{VS: "other", RS: rsA.RS, Up: false, Probing: true}})
			v.Update(tv0, others, local.verdicts, []lb.RealServerID{rsA})
			if up, _, _ := v.RealServer(rsA.VS, rsA.RS); up != c.up {
				t.Errorf("RealServer up = %v, want %v", up, c.up)
			}
			vs := v.Verdicts()
			if len(vs) != 1 {
				t.Fatalf("%d verdicts, want 1", len(vs))
			}
			pol := c.policy
			if pol == "" {
				pol = PolicyLocal
			}
			want := Verdict{VS: rsA.VS, RS: rsA.RS, Policy: pol, Up: c.up, Local: c.self.up, Fresh: c.fresh, UpCount: c.ups,
				Disagree: c.disagree, Dissenters: c.dissenters, Since: tv0}
			if !reflect.DeepEqual(vs[0], want) {
				t.Errorf("verdict\n got %+v\nwant %+v", vs[0], want)
			}
		})
	}
}

// "weight/dynamic always come from the local lb.Health (keepalived
// misc_dynamic weight is a local checker's)"; before any Update, and for a
// real server Update does not know, the local view answers.
func TestHealthViewWeightsAndFallback(t *testing.T) {
	local := localHealth{rsA: {up: false, fresh: true, weight: 7, dynamic: true}}
	v := NewHealthView("self", local)
	if up, w, d := v.RealServer(rsA.VS, rsA.RS); up || w != 7 || !d {
		t.Errorf("before Update: %v %d %v, want the local false 7 true", up, w, d)
	}
	v.SetPolicies(map[string]Policy{rsA.VS: PolicyQuorum})
	v.Update(tv0, []HealthResultRow{obs("b", true, true, true), obs("c", true, true, true)}, local.verdicts, []lb.RealServerID{rsA})
	if up, w, d := v.RealServer(rsA.VS, rsA.RS); !up || w != 7 || !d {
		t.Errorf("after Update: %v %d %v, want the fleet's up with the local weight 7 true", up, w, d)
	}
	if up, w, d := v.RealServer(rsB.VS, rsB.RS); !up || w != 0 || d {
		t.Errorf("unknown real server: %v %d %v, want up without weight", up, w, d)
	}
}

// lb.HealthSource: "Changed returns, and forgets, the real servers whose
// verdict may have changed"; Changes "receives a value after a verdict may
// have changed; changes between reads may coalesce into one".
func TestHealthViewChanged(t *testing.T) {
	local := localHealth{rsA: {up: true, fresh: true}, rsB: {up: true, fresh: true}}
	v := NewHealthView("self", local)
	v.SetPolicies(map[string]Policy{"http": PolicyQuorum})
	ids := []lb.RealServerID{rsB, rsA}
	signalled := func() bool {
		select {
		case <-v.Changes():
			return true
		default:
			return false
		}
	}
	down := []HealthResultRow{obs("b", true, true, false), obs("c", true, true, false)}
	t1, t2, t3 := tv0.Add(time.Second), tv0.Add(2*time.Second), tv0.Add(3*time.Second)

	steps := []struct {
		name   string
		at     time.Time
		others []HealthResultRow
		ids    []lb.RealServerID
		edit   func()
		want   []lb.RealServerID
	}{
		{"first update: all new", tv0, nil, ids, nil, []lb.RealServerID{rsA, rsB}},
		{"nothing changed", t1, nil, ids, nil, nil},
		{"A flips down by majority", t2, down, ids, nil, []lb.RealServerID{rsA}},
		{"still down", t3, down, ids, nil, nil},
		{"B's local dynamic weight changes", t3, down, ids, func() { local[rsB] = localState{up: true, fresh: true, weight: 3, dynamic: true} }, []lb.RealServerID{rsB}},
		{"B removed from the config", t3, down, []lb.RealServerID{rsA}, nil, []lb.RealServerID{rsB}},
	}
	for _, s := range steps {
		if s.edit != nil {
			s.edit()
		}
		v.Update(s.at, s.others, local.verdicts, s.ids)
		if got := signalled(); got != (s.want != nil) {
			t.Errorf("%s: signalled %v, want %v", s.name, got, s.want != nil)
		}
		got := v.Changed()
		if len(got) == 0 {
			got = nil
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Errorf("%s: Changed %v, want %v", s.name, got, s.want)
		}
	}
	vs := v.Verdicts()
	if len(vs) != 1 || vs[0].Up || !vs[0].Since.Equal(t2) {
		t.Errorf("verdicts %+v: want A alone, down since %v", vs, t2)
	}

	// Two changes before the reader looks: one signal, both servers.
	v.Update(t3, nil, local.verdicts, ids)                     // A up again, B new again
	v.Update(t3, down, local.verdicts, []lb.RealServerID{rsA}) // A down, B gone
	if !signalled() || signalled() {
		t.Error("two updates with changes: want exactly one pending signal")
	}
	if got := v.Changed(); !reflect.DeepEqual(got, []lb.RealServerID{rsA, rsB}) {
		t.Errorf("coalesced Changed %v, want [A B]", got)
	}
}

// The balancer reads RealServer from its goroutine while the node updates
// the view from its own (run with -race).
func TestHealthViewConcurrentReaders(t *testing.T) {
	local := localHealth{rsA: {up: true, fresh: true}}
	v := NewHealthView("self", local)
	v.SetPolicies(map[string]Policy{"http": PolicyQuorum})
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 200 {
			v.RealServer(rsA.VS, rsA.RS)
			v.Verdicts()
			v.Changed()
		}
	})
	for i := range 200 {
		v.Update(tv0.Add(time.Duration(i)*time.Second), []HealthResultRow{obs("b", true, true, i%2 == 0)}, local.verdicts, []lb.RealServerID{rsA})
	}
	wg.Wait()
}
