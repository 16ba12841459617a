package gossip

import (
	"reflect"
	"testing"
)

func desired(origin string, live bool, version uint64, hash, digest string) DesiredRow {
	return DesiredRow{Origin: origin, Live: live, D: DesiredDigest{ConfigVersion: version, ConfigHash: hash, Digest: digest}}
}

// Issue 13: "Desired-table digests that differ between live members with
// the same config version are reported as divergence."
func TestDivergence(t *testing.T) {
	for _, c := range []struct {
		name string
		rows []DesiredRow
		want []Divergent
	}{
		{"all agree", []DesiredRow{desired("self", true, 3, "h3", "d1"), desired("b", true, 3, "h3", "d1")}, nil},
		{"same config, different digests", []DesiredRow{
			desired("self", true, 3, "h3", "d1"), desired("c", true, 3, "h3", "d2"), desired("b", true, 3, "h3", "d1")},
			[]Divergent{{ConfigVersion: 3, ConfigHash: "h3", Digests: map[string][]string{"d1": {"b", "self"}, "d2": {"c"}}}}},
		{"different config versions are a rollout, not divergence", []DesiredRow{
			desired("self", true, 3, "h3", "d1"), desired("b", true, 4, "h4", "d2")}, nil},
		{"same version, different hash: not divergence", []DesiredRow{
			desired("self", true, 3, "h3", "d1"), desired("b", true, 3, "h3x", "d2")}, nil},
		{"a dead member does not count", []DesiredRow{
			desired("self", true, 3, "h3", "d1"), desired("b", false, 3, "h3", "d2")}, nil},
		{"this node counts even if marked not live", []DesiredRow{
			desired("self", false, 3, "h3", "d1"), desired("b", true, 3, "h3", "d2")},
			[]Divergent{{ConfigVersion: 3, ConfigHash: "h3", Digests: map[string][]string{"d1": {"self"}, "d2": {"b"}}}}},
		{"no digest yet does not count", []DesiredRow{
			desired("self", true, 3, "h3", "d1"), desired("b", true, 3, "h3", "")}, nil},
		{"two diverging configs, sorted", []DesiredRow{
			desired("a", true, 5, "h5", "x"), desired("b", true, 5, "h5", "y"),
			desired("c", true, 2, "h2", "x"), desired("d", true, 2, "h2", "z")},
			[]Divergent{
				{ConfigVersion: 2, ConfigHash: "h2", Digests: map[string][]string{"x": {"c"}, "z": {"d"}}},
				{ConfigVersion: 5, ConfigHash: "h5", Digests: map[string][]string{"x": {"a"}, "y": {"b"}}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Divergence("self", c.rows); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}
