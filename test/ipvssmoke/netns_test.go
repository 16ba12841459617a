package ipvssmoke

import (
	"strings"
	"testing"
)

// TestNetnsVeth builds two namespaces joined by a veth pair with iproute2's
// ip and pings across: the plumbing every VM scenario is made of.
func TestNetnsVeth(t *testing.T) {
	inVM(t)
	addNetns(t, "vigil-a")
	addNetns(t, "vigil-b")
	run(t, ipCmd, "link", "add", "vigil-va", "type", "veth", "peer", "name", "vigil-vb")
	run(t, ipCmd, "link", "set", "vigil-va", "netns", "vigil-a")
	run(t, ipCmd, "link", "set", "vigil-vb", "netns", "vigil-b")
	for _, c := range []struct{ ns, dev, addr string }{
		{"vigil-a", "vigil-va", "192.0.2.1/24"},
		{"vigil-b", "vigil-vb", "192.0.2.2/24"},
	} {
		run(t, ipCmd, "-n", c.ns, "addr", "add", c.addr, "dev", c.dev)
		run(t, ipCmd, "-n", c.ns, "link", "set", c.dev, "up")
		run(t, ipCmd, "-n", c.ns, "link", "set", "lo", "up")
	}
	out := run(t, ipCmd, "-n", "vigil-b", "-br", "addr", "show", "dev", "vigil-vb")
	if !strings.Contains(out, "192.0.2.2/24") {
		t.Fatalf("vigil-vb in vigil-b lacks 192.0.2.2/24: %s", out)
	}
	// The root namespace must not see the moved ends.
	if out := run(t, ipCmd, "-br", "link"); strings.Contains(out, "vigil-v") {
		t.Fatalf("veth ends still in the root namespace:\n%s", out)
	}
	// -W bounds the wait: a missing route must fail, not hang the VM run.
	out = run(t, ipCmd, "netns", "exec", "vigil-a", "ping", "-c", "1", "-W", "5", "192.0.2.2")
	if !strings.Contains(out, "1 packets received") {
		t.Fatalf("ping 192.0.2.2 from vigil-a:\n%s", out)
	}
}
