package check

import (
	"testing"

	"vigil/lb"
)

// The view a balancer reads says what Set changed, once, and signals it.
func TestViewChanged(t *testing.T) {
	s := manual(t)
	a := Owner{"web", rs(1)}
	if err := s.Set(map[ID]Check{"a": {a, tcpSpec(1)}}); err != nil {
		t.Fatal(err)
	}
	var h lb.HealthSource = s.View()
	select {
	case <-h.Changes():
	default:
		t.Fatal("no change signalled after Set")
	}
	if got := h.Changed(); len(got) != 1 || got[0] != (lb.RealServerID{VS: "web", RS: rs(1)}) {
		t.Fatalf("changed after Set: %v", got)
	}
	if got := h.Changed(); len(got) != 0 {
		t.Fatalf("asked again: %v", got)
	}
}
