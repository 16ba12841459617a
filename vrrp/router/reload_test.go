package router

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"vigil/config"
)

// A reload reports virtual servers by name: added, removed, changed (any
// field, checks included) and unchanged.
func TestDiffVirtualServers(t *testing.T) {
	parse := func(y string) []config.VirtualServer {
		t.Helper()
		c, err := config.Parse([]byte("node: {name: lb1}\nlb: {virtual_servers: [" + y + "]}\n"))
		if err != nil {
			t.Fatal(err)
		}
		return c.LB.VirtualServers
	}
	a := `{name: a, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: "198.51.100.11"}]}`
	b := `{name: b, address: "192.0.2.100:81", protocol: tcp, real_servers: [{address: "198.51.100.11"}]}`
	b2 := `{name: b, address: "192.0.2.100:81", protocol: tcp, real_servers: [{address: "198.51.100.11", check: {type: tcp}}]}`
	c := `{name: c, address: "192.0.2.100:82", protocol: tcp, real_servers: [{address: "198.51.100.11"}]}`
	got := diffVirtualServers(parse(a+","+b), parse(a+","+b2+","+c))
	want := VSChanges{Added: []string{"c"}, Changed: []string{"b"}, Unchanged: []string{"a"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	got = diffVirtualServers(parse(a+","+b), parse(b))
	if fmt.Sprint(got.Removed) != "[a]" || fmt.Sprint(got.Unchanged) != "[b]" {
		t.Fatalf("removal: %+v", got)
	}
}

// The configured notify commands of virtual and real servers reach the
// notifier by the names the balancer publishes its events under
// (keepalived's notation).
func TestLBScripts(t *testing.T) {
	c, err := config.Parse([]byte(`node: {name: lb1}
lb: {virtual_servers: [{name: web, address: "192.0.2.100:80", protocol: tcp,
  notify: {quorum_up: /bin/true, quorum_down: [/bin/echo, down], timeout: 2s},
  real_servers: [{address: "198.51.100.11:8080"}, {address: "198.51.100.12:8080", notify_down: /bin/true}]}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	sc := lbScripts(c.LB.VirtualServers)["web"]
	if !slices.Equal(sc.QuorumUp, []string{"/bin/true"}) || !slices.Equal(sc.QuorumDown, []string{"/bin/echo", "down"}) || sc.Timeout != 2*time.Second ||
		len(sc.RealServers) != 1 || !slices.Equal(sc.RealServers["[198.51.100.12]:tcp:8080"].Down, []string{"/bin/true"}) {
		t.Fatalf("notify commands for the notifier: %+v", sc)
	}
}
