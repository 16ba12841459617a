package config

import (
	"strings"
	"testing"
)

// The names keepalived-style configs use (instances, trackers, virtual
// servers: 1-64 characters; nodes: 1-253, a host name's length) of
// [A-Za-z0-9_.-], checked without a regexp.
func TestNames(t *testing.T) {
	for _, tc := range []struct {
		s              string
		instance, node bool
	}{
		{"VI_1", true, true},
		{"lb-1.example_a", true, true},
		{"", false, false},
		{strings.Repeat("a", 64), true, true},
		{strings.Repeat("a", 65), false, true},
		{strings.Repeat("a", 253), false, true},
		{strings.Repeat("a", 254), false, false},
		{"a b", false, false},
		{"a/b", false, false},
		{"é", false, false},
		{"a\x00", false, false},
	} {
		if IsInstanceName(tc.s) != tc.instance || IsNodeName(tc.s) != tc.node {
			t.Errorf("%q: instance %v node %v, want %v %v", tc.s, IsInstanceName(tc.s), IsNodeName(tc.s), tc.instance, tc.node)
		}
	}
}
