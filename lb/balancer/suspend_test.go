package balancer

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
	"vigil/internal/testlog"

	"vigil/config"
	"vigil/lb"
	"vigil/telemetry"
)

// keepalived's ha_suspend: a virtual server's checks are suspended while
// none of its addresses is on the host (ha_suspend_addr_count 0); one
// address of several (a group) is enough; an address on two interfaces
// stays local while either has it.
func TestSuspendedVSs(t *testing.T) {
	a, b, c := netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("192.0.2.101"), netip.MustParseAddr("2001:db8::100")
	ha := map[string][]netip.Addr{"web": {a}, "grp": {a, b}, "v6": {c}}
	for _, tc := range []struct {
		name  string
		local []localAddr
		want  string
	}{
		{"no address", nil, "map[grp:true v6:true web:true]"},
		{"the VIP", []localAddr{{a, 2}}, "map[v6:true]"},
		{"one of the group's", []localAddr{{b, 2}}, "map[v6:true web:true]"},
		{"on two interfaces", []localAddr{{a, 2}, {a, 3}, {c, 2}}, "map[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := map[localAddr]bool{}
			for _, la := range tc.local {
				local[la] = true
			}
			if got := fmt.Sprint(suspendedVSs(ha, local)); got != tc.want {
				t.Errorf("suspended %s, want %s", got, tc.want)
			}
		})
	}
}

// The balancer follows the host's real addresses over netlink (here the
// host's own, 127.0.0.1 among them; the VM fleet test moves a VIP): a
// virtual server whose address the host lacks stays suspended, and status
// says which checks are.
func TestBalancerHASuspendFollowsAddresses(t *testing.T) {
	c, err := config.Parse([]byte(`node: {name: lb1}
lb:
  virtual_servers:
    - {name: away, address: "192.0.2.250:80", protocol: tcp, ha_suspend: true,
       real_servers: [{address: "192.0.2.251:8080", check: {type: tcp, interval: 1h, warmup: 1h}}]}
    - {name: plain, address: "192.0.2.250:81", protocol: tcp,
       real_servers: [{address: "192.0.2.251:8080", check: {type: tcp, interval: 1h, warmup: 1h, port: 8081}}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	b := testBalancer(&memKernel{t: lb.Table{}}, telemetry.NewRegistry().LB)
	var logs testlog.Buffer
	b.log = slog.New(slog.NewTextHandler(&logs, nil))
	if err := b.Set(c.LB); err != nil {
		t.Fatal(err)
	}
	suspended := func() string {
		var s []string
		for _, vs := range b.Status() {
			for _, rs := range vs.Reals {
				for _, ch := range rs.Checks {
					s = append(s, fmt.Sprintf("%s=%v", vs.Name, ch.Suspended))
				}
			}
		}
		return strings.Join(s, " ")
	}
	if got := suspended(); got != "away=true plain=false" {
		t.Fatalf("before the address list: %s", got)
	}
	stop := sync.OnceFunc(runBalancer(t, b))
	defer stop()
	loopback := localAddr{netip.MustParseAddr("127.0.0.1"), 1}
	waitFor(t, "the host's addresses listed", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.local[loopback]
	})
	if got := suspended(); got != "away=true plain=false" {
		t.Fatalf("with the host's addresses: %s", got)
	}
	// Stopping ends the subscription without a warning (closing its
	// socket fails its read, which is expected then). The subscription's
	// receiver has ended when stop returns; the pause gives one that did
	// not the time to say something.
	stop()
	time.Sleep(100 * time.Millisecond)
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("warning at stop:\n%s", logs.String())
	}
}
