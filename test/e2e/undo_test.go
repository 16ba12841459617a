package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"vigil/test/netlab"
)

// Issue 11 item 6: a start that fails after it changed the kernel (made
// its virtual MAC interface, moved the parent's ARP settings and the
// namespace's rp_filter, created its nftables table) undoes all of it.
// TestFailedStartLeavesNothing covers the port taken, which fails before
// any change now; these failures come after every change of the start.

// undoSysctls are the settings a vmac start changes outside the vmac: the
// parent's ARP settings and every rp_filter (all, default, each interface).
const undoSysctls = `for f in /proc/sys/net/ipv4/conf/eth0/arp_ignore /proc/sys/net/ipv4/conf/eth0/arp_announce /proc/sys/net/ipv4/conf/*/rp_filter; do echo "$f $(cat $f)"; done`

// readUndoSysctls returns undoSysctls' values on node name, one "file
// value" a line, sorted.
func readUndoSysctls(t *testing.T, c *cluster, name string) string {
	t.Helper()
	out, err := c.node(name).Run(context.Background(), "sh", "-c", undoSysctls)
	if err != nil {
		t.Fatalf("reading sysctls: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// setUndoSysctls sets values the vmac start must change, none of them the
// kernel's default where that matters (arp_announce 1, a strict
// all.rp_filter), so a restore to a default would show.
func setUndoSysctls(t *testing.T, c *cluster, name string) {
	t.Helper()
	script := `set -e
echo 0 > /proc/sys/net/ipv4/conf/eth0/arp_ignore
echo 1 > /proc/sys/net/ipv4/conf/eth0/arp_announce
echo 0 > /proc/sys/net/ipv4/conf/default/rp_filter
echo 0 > /proc/sys/net/ipv4/conf/eth0/rp_filter
echo 0 > /proc/sys/net/ipv4/conf/lo/rp_filter
echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter`
	if out, err := c.node(name).Run(context.Background(), "sh", "-c", script); err != nil {
		t.Fatalf("setting sysctls: %v\n%s", err, out)
	}
}

// vmacInstance is an instance whose start changes everything a start can
// change: a vmac (with the parent's ARP settings and the rp_filter move)
// and, for accept: false, the nftables table.
const vmacInstance = `    - { name: web, interface: eth0, vrid: 51, priority: 150, advert_interval: 100ms, vmac: true, accept: false, vips: [192.0.2.100/24] }
`

// waitFailed waits for a vigil that must stop by itself (a failed start,
// a fatal panic): exit status 1, its log naming named. It returns the log.
func waitFailed(t *testing.T, p *netlab.Process, named string) string {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("vigil kept running:\n%s", p.LogLines(30))
	}
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want status 1", err)
	}
	log := p.Log()
	if !strings.Contains(log, named) {
		t.Errorf("the error does not name %s:\n%s", named, p.LogLines(10))
	}
	return log
}

// checkNothingLeft asserts that node name has no macvlan, no nftables
// table, no VIP, and the sysctls of before.
func checkNothingLeft(t *testing.T, c *cluster, name, before string) {
	t.Helper()
	n := c.node(name)
	if out, err := n.IP("-o", "link", "show", "type", "macvlan"); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("macvlans left (%v):\n%s", err, out)
	}
	if out, err := n.Run(context.Background(), "nft", "list", "tables"); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("nftables tables left (%v):\n%s", err, out)
	}
	if out, err := n.IP("-o", "addr", "show"); err != nil || strings.Contains(string(out), vip4.Addr().String()) {
		t.Errorf("the VIP is on an interface (%v):\n%s", err, out)
	}
	if after := readUndoSysctls(t, c, name); after != before {
		t.Errorf("sysctls not restored:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestLateStartFailureUndone(t *testing.T) {
	cases := []struct {
		name string
		// vrrp is the config's text from "vrrp:" on; extra comes before it.
		extra, vrrp string
		// prepare makes the start fail; it returns what the error names.
		prepare func(t *testing.T, c *cluster) string
		// early: the start must fail before any kernel change.
		early bool
	}{{
		// The FIFO is opened once every instance is prepared (item 11:
		// one not owned by root is refused at open, not by validation).
		name: "notify FIFO owned by another user",
		vrrp: "vrrp:\n  notify_fifo: FIFO\n  instances:\n" + vmacInstance,
		prepare: func(t *testing.T, c *cluster) string {
			path := filepath.Join(c.lab.Dir(), "notify.fifo")
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(path, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return path
		},
	}, {
		// The second instance fails while the start prepares it, after
		// the first one's vmac and table.
		name: "second instance on a missing interface",
		vrrp: "vrrp:\n  instances:\n" + vmacInstance +
			"    - { name: gone, interface: nosuch0, vrid: 52, priority: 150, advert_interval: 100ms, vips: [192.0.2.101/24] }\n",
		prepare: func(*testing.T, *cluster) string { return "nosuch0" },
	}, {
		// The gossip layer binds its port after the VRRP side is built;
		// the start probes the port before that, as for the metrics
		// port (item 6: listeners before the kernel).
		name:  "gossip port taken",
		early: true,
		extra: "gossip: { bind: \"192.0.2.11:7946\", cluster: test, insecure: true }\n",
		vrrp:  "vrrp:\n  instances:\n" + vmacInstance,
		prepare: func(t *testing.T, c *cluster) string {
			var ln net.Listener
			if err := c.node("n1").Do(func() (err error) {
				ln, err = net.Listen("tcp", "192.0.2.11:7946")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			return "7946"
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 1)
			setUndoSysctls(t, c, "n1")
			before := readUndoSysctls(t, c, "n1")
			named := tc.prepare(t, c)
			yaml := "node: { name: n1 }\ntelemetry: { listen: \"\" }\n" + tc.extra +
				strings.ReplaceAll(tc.vrrp, "FIFO", filepath.Join(c.lab.Dir(), "notify.fifo"))
			p := startConfig(t, c, "n1", writeConfig(t, c, "n1", yaml))
			log := waitFailed(t, p, named)
			// The failure came after the start's kernel changes, or this
			// test would prove nothing (early: before any of them).
			for _, done := range []string{"virtual MAC interface ready", "changed a sysctl of the vmac's parent", "rp_filter was 1 (strict)"} {
				if strings.Contains(log, done) == tc.early {
					t.Errorf("early %v, yet the log has %q: %v:\n%s", tc.early, done, !tc.early, p.LogLines(30))
				}
			}
			checkNothingLeft(t, c, "n1", before)
		})
	}
}

// A clean stop gives the settings back too, once the last vmac that
// needed them is gone (keepalived restores the parent's ARP settings when
// its last vmac on it goes, and rp_filter at exit, each only if it still
// has the value keepalived wrote).
func TestCleanStopRestoresSysctls(t *testing.T) {
	c := newCluster(t, 1)
	setUndoSysctls(t, c, "n1")
	before := readUndoSysctls(t, c, "n1")
	p := startConfig(t, c, "n1", writeConfig(t, c, "n1", "node: { name: n1 }\ntelemetry: { listen: \"\" }\nvrrp:\n  instances:\n"+vmacInstance+
		"    - { name: api, interface: eth0, vrid: 52, priority: 150, advert_interval: 100ms, vmac: true, vips: [192.0.2.101/24] }\n"))
	if err := c.node("n1").WaitAddr("vrrp.51", vip4.Addr(), true, 5*time.Second); err != nil {
		t.Fatalf("not master: %v\n%s", err, p.LogLines(30))
	}
	if during := readUndoSysctls(t, c, "n1"); during == before {
		t.Fatalf("the start changed no sysctl:\n%s", during)
	}
	c.stop("n1")
	checkNothingLeft(t, c, "n1", before)
	if t.Failed() {
		t.Log(p.LogLines(40))
	}
}
