package main

import (
	"bytes"
	"strings"
	"testing"

	"vigil/node"
)

// vigil members' table: one line per member with the columns issue 13
// names, instances sorted, a member without a summary shown with dashes.
func TestPrintMembers(t *testing.T) {
	var b bytes.Buffer
	err := printMembers(&b, []node.MemberStatus{
		{Name: "d1", Address: "192.0.2.11:7946", State: "alive", ConfigVersion: 3, ConfigHash: strings.Repeat("ab", 32),
			Drift: "in-sync", Build: "v1.2.0", Instances: map[string]string{"web": "MASTER", "db": "BACKUP"}, SummaryAge: 2},
		{Name: "d2", Address: "192.0.2.12:7946", State: "dead", Drained: true, SummaryAge: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"NAME  ADDRESS          STATE  CONFIG           DRIFT    BUILD   INSTANCES             DRAINED  SUMMARY AGE",
		"d1    192.0.2.11:7946  alive  v3 abababababab  in-sync  v1.2.0  db=BACKUP,web=MASTER  false    2s",
		"d2    192.0.2.12:7946  dead   -                -        -       -                     true     -",
	}
	if got := strings.Split(strings.TrimRight(b.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("table:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// vigil status --fleet's table: a split brain and a virtual router
// without a master are spelt out, and a divergence names the fleet
// version, the lb section and each digest's members.
func TestPrintFleet(t *testing.T) {
	var b bytes.Buffer
	err := printFleet(&b, &node.FleetStatus{Node: "d1",
		VirtualRouters: []node.FleetRouter{
			{Name: "web", VRID: 51, Family: "ipv4", Masters: []string{"d1", "d2"},
				Members: []node.FleetRouterNode{{Node: "d1", State: "MASTER", Priority: 150}, {Node: "d2", State: "MASTER", Priority: 100}}},
			{Name: "db", VRID: 52, Family: "ipv6"},
		},
		Divergence: []node.FleetDivergence{{ConfigVersion: 4, ConfigHash: "0123456789abcdef",
			Digests: map[string][]string{"aaaa": {"d1"}, "bbbb": {"d2", "d3"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Fleet view of d1",
		"web   51    ipv4    d1,d2 (SPLIT BRAIN)  d1:master(150) d2:master(100)",
		"db    52    ipv6    NONE",
		"DIVERGENCE: members with fleet version 4 and lb section 0123456789ab want different IPVS tables:",
		"  aaaa: d1\n  bbbb: d2, d3",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in:\n%s", want, b.String())
		}
	}
}
