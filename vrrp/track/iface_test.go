package track

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"vigil/test/netlab"
)

func TestNewInterfaceValidation(t *testing.T) {
	for _, name := range []string{"", "a-name-of-16-chr", "a/b", "a b", ".", ".."} {
		if _, err := NewInterface(InterfaceSpec{Name: name}, nil); err == nil {
			t.Errorf("NewInterface(%q) accepted", name)
		}
	}
	i, err := NewInterface(InterfaceSpec{Name: "eth0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u := i.Initial(); u.Up || !u.Init {
		t.Errorf("initial %+v", u)
	}
}

func TestInterfaceMissingNetns(t *testing.T) {
	noLeaks(t)
	i, _ := NewInterface(InterfaceSpec{Name: "eth0", Netns: "vgtrk-no-such-netns"}, nil)
	err := i.Run(t.Context(), func(Update) {})
	if err == nil || !strings.Contains(err.Error(), `interface "eth0"`) {
		t.Errorf("Run in a missing namespace: %v", err)
	}
}

func detail(s string) func(Update) bool {
	return func(u Update) bool { return !u.Init && strings.HasPrefix(u.Detail, s) }
}

func TestInterfaceNetns(t *testing.T) {
	lab := netlab.NewForTest(t, "vgtrk")
	n, err := lab.AddNode("n1", netip.MustParsePrefix("192.0.2.11/24"))
	if err != nil {
		t.Fatal(err)
	}
	noLeaks(t) // after the lab, whose cleanup must run after the trackers stopped
	ip := func(t *testing.T, args ...string) {
		t.Helper()
		if out, err := n.IP(args...); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	// veth pairs, not dummies: the test kernel may lack the dummy module. A
	// veth is running when both ends are up.
	const wait = 2 * time.Second

	t.Run("link state", func(t *testing.T) {
		i, err := NewInterface(InterfaceSpec{Name: n.Dev, Netns: n.NS}, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		r := run(t, i)
		r.wait(t, wait, "settled up", isUp)

		ip(t, "link", "set", "dev", n.Dev, "down")
		u := r.wait(t, wait, "admin down", isDown)
		if u.Detail != "administratively down" {
			t.Errorf("detail %q", u.Detail)
		}
		ip(t, "link", "set", "dev", n.Dev, "up")
		r.wait(t, wait, "up", isUp)

		// Carrier loss: the bridge side of the veth goes down.
		if err := n.LinkDown(); err != nil {
			t.Fatal(err)
		}
		u = r.wait(t, wait, "no carrier", isDown)
		if !strings.HasPrefix(u.Detail, "no carrier") {
			t.Errorf("detail %q", u.Detail)
		}
		if err := n.LinkUp(); err != nil {
			t.Fatal(err)
		}
		r.wait(t, wait, "carrier back", isUp)

		// Changes to other links are not reported.
		ip(t, "link", "add", "vgtrkx0", "type", "veth", "peer", "name", "vgtrkx1")
		ip(t, "link", "set", "dev", "vgtrkx0", "up")
		ip(t, "link", "del", "vgtrkx0")
		r.quiet(t, 200*time.Millisecond)
	})

	t.Run("created deleted renamed", func(t *testing.T) {
		i, err := NewInterface(InterfaceSpec{Name: "vgtrk0", Netns: "/run/netns/" + n.NS}, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		r := run(t, i)
		r.wait(t, wait, "missing", detail("no such interface"))

		ip(t, "link", "add", "vgtrk0", "type", "veth", "peer", "name", "vgtrkp")
		r.wait(t, wait, "created down", detail("administratively down"))
		ip(t, "link", "set", "dev", "vgtrk0", "up")
		r.wait(t, wait, "up without carrier", detail("no carrier"))
		ip(t, "link", "set", "dev", "vgtrkp", "up")
		r.wait(t, wait, "up", isUp)

		ip(t, "link", "del", "vgtrk0")
		r.wait(t, wait, "deleted", detail("interface deleted"))

		ip(t, "link", "add", "vgtrk0", "type", "veth", "peer", "name", "vgtrkp")
		ip(t, "link", "set", "dev", "vgtrkp", "up")
		ip(t, "link", "set", "dev", "vgtrk0", "up")
		r.wait(t, wait, "re-created and up", isUp)

		ip(t, "link", "set", "dev", "vgtrk0", "down")
		r.wait(t, wait, "down", isDown)
		ip(t, "link", "set", "dev", "vgtrk0", "name", "vgtrk1")
		r.wait(t, wait, "renamed away", detail("interface renamed to vgtrk1"))
		ip(t, "link", "set", "dev", "vgtrk1", "up")
		r.quiet(t, 200*time.Millisecond)
		ip(t, "link", "set", "dev", "vgtrk1", "down")
		ip(t, "link", "set", "dev", "vgtrk1", "name", "vgtrk0")
		r.wait(t, wait, "renamed back", detail("administratively down"))
		ip(t, "link", "set", "dev", "vgtrk0", "up")
		r.wait(t, wait, "up after the rename", isUp)
	})
}
