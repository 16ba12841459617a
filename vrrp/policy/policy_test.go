package policy

import "testing"

// Each row cites the keepalived behaviour it checks (keepalived.conf(5),
// vrrp_script / track_interface / track_file; see
// shared/reference/keepalived-features.md §1.5).
func TestEffective(t *testing.T) {
	up := func(name string, w int) Tracker { return Tracker{Name: name, Kind: KindScript, Weight: w, Up: true} }
	down := func(name string, w int) Tracker { return Tracker{Name: name, Kind: KindScript, Weight: w} }
	cases := []struct {
		name string
		base uint8
		tr   []Tracker
		want Result
	}{
		{"no trackers", 100, nil, Result{Priority: 100}},
		{"positive weight added while up", 100, []Tracker{up("a", 20)}, Result{Priority: 120}},
		{"positive weight not added while down", 100, []Tracker{down("a", 20)}, Result{Priority: 100}},
		{"negative weight subtracted while down", 100, []Tracker{down("a", -30)}, Result{Priority: 70}},
		{"negative weight ignored while up", 100, []Tracker{up("a", -30)}, Result{Priority: 100}},
		{"weights add up", 100, []Tracker{up("a", 20), down("b", -50), up("c", 5)}, Result{Priority: 75}},
		{"weight 0 down = FAULT", 100, []Tracker{up("a", 20), {Name: "eth1", Kind: KindInterface}}, Result{Priority: 100, Fault: true, Reason: "interface eth1"}},
		{"weight 0 up = no effect", 100, []Tracker{{Name: "eth1", Kind: KindInterface, Up: true}}, Result{Priority: 100}},
		{"reverse: up counts as down", 100, []Tracker{{Name: "a", Kind: KindScript, Weight: -10, Up: true, Reverse: true}}, Result{Priority: 90}},
		{"reverse weight 0: up = FAULT", 100, []Tracker{{Name: "a", Kind: KindScript, Up: true, Reverse: true}}, Result{Priority: 100, Fault: true, Reason: "script a"}},
		{"file weight 0: non-zero value = FAULT", 100, []Tracker{{Name: "maint", Kind: KindFile, Value: 1}}, Result{Priority: 100, Fault: true, Reason: "file maint"}},
		{"file weight 0: zero value = no effect", 100, []Tracker{{Name: "maint", Kind: KindFile, Value: 0}}, Result{Priority: 100}},
		{"file weight 0 reverse: zero value = FAULT", 100, []Tracker{{Name: "maint", Kind: KindFile, Value: 0, Reverse: true}}, Result{Priority: 100, Fault: true, Reason: "file maint"}},
		{"clamped to 254: trackers never make an owner", 200, []Tracker{up("a", 100)}, Result{Priority: 254}},
		{"clamped to 1: trackers never resign", 50, []Tracker{down("a", -253)}, Result{Priority: 1}},
		{"file value × weight", 100, []Tracker{{Name: "f", Kind: KindFile, Weight: 2, Value: -15}}, Result{Priority: 70}},
		{"file reverse", 100, []Tracker{{Name: "f", Kind: KindFile, Weight: 2, Value: 15, Reverse: true}}, Result{Priority: 70}},
		{"file below -253 = FAULT", 254, []Tracker{{Name: "f", Kind: KindFile, Weight: 1, Value: -254}}, Result{Priority: 254, Fault: true, Reason: "file f"}},
		{"owner unaffected by healthy trackers", 255, []Tracker{up("a", 20), up("b", -20)}, Result{Priority: 255}},
		{"owner cannot be lowered: FAULT instead", 255, []Tracker{down("a", -20)}, Result{Priority: 255, Fault: true, Reason: "script a"}},
	}
	for _, c := range cases {
		if got := Effective(c.base, c.tr); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}
