package gossip

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func hoInst(name, state string, prio uint8, src string) InstanceSummary {
	return InstanceSummary{Name: name, VRID: 51, Family: 4, State: state, Priority: prio,
		Primary: netip.MustParseAddr(src), VIPSet: HashVIPs([]netip.Addr{netip.MustParseAddr("192.0.2.100")})}
}

// Issue 14: "the successor (highest effective priority among live members, or the named one)".
func TestSuccessors(t *testing.T) {
	own := hoInst("vr51", StateMaster, 200, "192.0.2.1")
	other := hoInst("other", StateBackup, 250, "192.0.2.9")
	other.VRID = 52 // another virtual router
	nodes := map[string][]InstanceSummary{
		"n1": {own},
		"n2": {hoInst("vr51", StateBackup, 150, "192.0.2.2")},
		"n3": {hoInst("web", StateBackup, 150, "192.0.2.3")}, // same router, another name; wins the address tie-break
		"n4": {hoInst("vr51", StateFault, 240, "192.0.2.4")}, // FAULT: cannot take over
		"n5": {hoInst("vr51", StateBackup, 240, "192.0.2.5")},
		"n6": {other},
	}
	names := func(cs []Candidate) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Node)
		}
		return out
	}
	if got, want := names(Successors("n1", own, nodes, nil)), []string{"n5", "n3", "n2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("successors %v, want %v", got, want)
	}
	// A drained node is no successor.
	if got, want := names(Successors("n1", own, nodes, map[string]bool{"n5": true})), []string{"n3", "n2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("successors with n5 drained %v, want %v", got, want)
	}
	if got := Successors("n1", own, map[string][]InstanceSummary{"n1": {own}}, nil); len(got) != 0 {
		t.Fatalf("a lone master has successors: %v", got)
	}
	if c := Successors("n1", own, nodes, nil)[1]; c.Instance != "web" || c.Priority != 150 {
		t.Fatalf("candidate %+v: want n3's instance web at 150", c)
	}
}

// The handoff can be asked from any member: the master of the instance's virtual router is
// found by name; in a split brain the best master (§6.4.3) is the one asked.
func TestMasterOf(t *testing.T) {
	nodes := map[string][]InstanceSummary{
		"n1": {hoInst("vr51", StateMaster, 200, "192.0.2.1")},
		"n2": {hoInst("vr51", StateBackup, 150, "192.0.2.2")},
		"n3": {hoInst("web", StateMaster, 100, "192.0.2.3")},
	}
	if n, s, ok := MasterOf("vr51", nodes); !ok || n != "n1" || s.Priority != 200 {
		t.Fatalf("master of vr51: %s %+v %v", n, s, ok)
	}
	// Asked by n3's name for the same router: still n1, the better master.
	if n, _, ok := MasterOf("web", nodes); !ok || n != "n1" {
		t.Fatalf("master of web: %s %v", n, ok)
	}
	if _, _, ok := MasterOf("nothing", nodes); ok {
		t.Fatal("a master for an unknown instance")
	}
	delete(nodes, "n1")
	nodes["n3"][0].State = StateBackup
	if _, _, ok := MasterOf("vr51", nodes); ok {
		t.Fatal("a master where every member is backup")
	}
}

// RFC 9568 §6.4.2: a Backup with preemption and a higher priority than the master's takes
// over when its Master_Down_Timer fires; an equal priority does not. Issue 14: "if
// preemption would give it back at once, the command says so and refuses unless --force".
func TestHandoffProblems(t *testing.T) {
	to := Candidate{Node: "n2", Priority: 150}
	cases := []struct {
		name   string
		old    Resigning
		others []Candidate
		want   []string // substrings, one per problem
	}{
		{"successor outranks the old master", Resigning{"n1", 100, true}, nil, nil},
		{"equal priority does not preempt", Resigning{"n1", 150, true}, []Candidate{to, {Node: "n3", Priority: 150}}, nil},
		{"old master preempts back", Resigning{"n1", 200, true}, nil, []string{"n1 (priority 200, preempt) would take mastership back"}},
		{"old master without preemption", Resigning{"n1", 200, false}, nil, nil},
		{"drained old master", Resigning{"n1", 1, true}, nil, nil},
		{"a third node outranks the successor", Resigning{"n1", 100, true}, []Candidate{{Node: "n3", Priority: 180}, to},
			[]string{"n3 (priority 180) outranks n2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := HandoffProblems(c.old, to, c.others)
			if len(got) != len(c.want) {
				t.Fatalf("problems %q, want %d", got, len(c.want))
			}
			for i, w := range c.want {
				if !strings.Contains(got[i], w) {
					t.Fatalf("problem %q lacks %q", got[i], w)
				}
			}
		})
	}
}
