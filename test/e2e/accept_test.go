package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func startYAML(t *testing.T, c *cluster, name, yaml string) {
	t.Helper()
	path := filepath.Join(c.lab.Dir(), name+"-custom.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := c.node(name).Start(c.bin, "run", "--config", path, "--admin-socket", filepath.Join(c.lab.Dir(), name+"-admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	c.procs[name] = p
}

// RFC 5798 §6.4.3 Accept_Mode: a non-owner master with accept: false holds
// the VIP (and answers ARP for it) but drops packets addressed to it; with
// accept: true (the default) the VIP answers.
func TestAcceptMode(t *testing.T) {
	c := newCluster(t, 3)
	cfg := func(name string, prio int, accept bool) string {
		return fmt.Sprintf(`node: { name: %s }
telemetry: { listen: "" }
vrrp:
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: %d, accept: %v, advert_interval: 100ms, vips: [192.0.2.100/24] }
`, name, prio, accept)
	}
	startYAML(t, c, "n1", cfg("n1", 150, false))
	startYAML(t, c, "n2", cfg("n2", 100, true))
	c.nodes = c.nodes[:2] // n3 is the client
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 2*iv)

	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := c.node("n3").Run(ctx, "ping", "-c", "1", "-W", "1", vip4.Addr().String())
		return err
	}
	if err := ping(); err == nil {
		t.Fatal("ping to the VIP answered by a master with accept: false")
	}
	// ARP still resolves the VIP to n1 (the master must answer ARP).
	out, err := c.node("n3").IP("neigh", "show", vip4.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	mac, err := c.node("n1").MAC("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if !containsFold(string(out), mac.String()) {
		t.Fatalf("n3's neighbour entry for the VIP is %q, want n1's MAC %s", out, mac)
	}
	c.stop("n1")
	c.waitHolder(vip4.Addr(), "n2", 2*time.Second, 0)
	if err := ping(); err != nil {
		t.Fatalf("ping to the VIP on an accepting master: %v", err)
	}
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// A VIP with dev: and label: goes on that device with that label on the
// master, and comes off when the master stops.
func TestVIPOnOtherDevice(t *testing.T) {
	c := newCluster(t, 1)
	n1 := c.node("n1")
	// A second interface inside the node (this kernel has no dummy driver).
	if _, err := n1.IP("link", "add", "name", "dum0", "type", "veth", "peer", "name", "dum1"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"dum0", "dum1"} {
		if _, err := n1.IP("link", "set", "dev", d, "up"); err != nil {
			t.Fatal(err)
		}
	}
	startYAML(t, c, "n1", `node: { name: n1 }
telemetry: { listen: "" }
vrrp:
  instances:
    - name: web
      interface: eth0
      vrid: 51
      priority: 150
      advert_interval: 100ms
      vips: [192.0.2.100/24, { address: 198.51.100.10/24, dev: dum0, label: "dum0:web" }]
`)
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 0)
	if err := n1.WaitAddr("dum0", netip.MustParseAddr("198.51.100.10"), true, time.Second); err != nil {
		t.Fatal(err)
	}
	out, err := n1.IP("-o", "-4", "addr", "show", "dev", "dum0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "198.51.100.10/24") || !strings.Contains(string(out), "dum0:web") {
		t.Fatalf("dum0 addresses: %s", out)
	}
	if ok, _ := n1.HasAddr("eth0", netip.MustParseAddr("198.51.100.10")); ok {
		t.Fatal("the dum0 VIP landed on eth0")
	}
	c.stop("n1")
	if err := n1.WaitAddr("dum0", netip.MustParseAddr("198.51.100.10"), false, time.Second); err != nil {
		t.Fatal(err)
	}
}
