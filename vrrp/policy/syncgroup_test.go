package policy

import (
	"reflect"
	"testing"
)

// keepalived vrrp_sync_group: members change state together
// (keepalived.conf(5); shared/reference/keepalived-features.md §1.5).
func TestSyncGroup(t *testing.T) {
	m := func(name, state string, own bool) Member { return Member{name, state, own} }
	cases := []struct {
		name              string
		members           []Member
		changed, from, to string
		want              []Move
	}{
		{"becoming master pulls backups", []Member{m("web", "master", false), m("db", "backup", false), m("dns", "backup", false)},
			"web", "backup", "master", []Move{{"db", "master"}, {"dns", "master"}}},
		{"stepping down takes masters along", []Member{m("web", "backup", false), m("db", "master", false)},
			"web", "master", "backup", []Move{{"db", "backup"}}},
		{"backup after startup moves nobody", []Member{m("web", "backup", false), m("db", "master", false)},
			"web", "init", "backup", nil},
		{"own fault faults the group", []Member{m("web", "fault", true), m("db", "master", false), m("dns", "backup", false)},
			"web", "master", "fault", []Move{{"db", "fault"}, {"dns", "fault"}}},
		{"a stopped member is not faulted", []Member{m("web", "fault", true), m("db", "init", false)},
			"web", "backup", "fault", nil},
		{"fault cleared releases group-held members", []Member{m("web", "backup", false), m("db", "fault", false)},
			"web", "fault", "backup", []Move{{"db", "unfault"}}},
		{"another member still faulted keeps the group down", []Member{m("web", "backup", false), m("db", "fault", true), m("dns", "fault", false)},
			"web", "fault", "backup", []Move{{"web", "fault"}}},
		{"settled group: no moves", []Member{m("web", "master", false), m("db", "master", false)},
			"db", "backup", "master", nil},
	}
	for _, c := range cases {
		if got := SyncGroup(c.members, c.changed, c.from, c.to); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}
