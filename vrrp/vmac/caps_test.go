package vmac

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// capsHelperEnv makes the test binary run the helper of
// TestEnsureWithoutSysAdmin (in a child process with fewer capabilities).
const capsHelperEnv = "VMAC_TEST_CAPS_HELPER"

// The daemon runs with the systemd unit's capabilities, without
// CAP_SYS_ADMIN, and vmac.New (what the node calls) then Ensure must work
// there: no setns into the namespace the process is already in (netlink's
// NewHandleAt did one, and so did every sysctl write). The helper runs on a
// lab node under setpriv with only NET_ADMIN and NET_RAW; the test checks
// the result from outside.
func TestEnsureWithoutSysAdmin(t *testing.T) {
	if os.Getenv(capsHelperEnv) == "1" {
		ensureHelper(t)
		return
	}
	e := setup(t)
	name, mac := DefaultName(vrid, 4), MAC(vrid, 4)
	caps := "-all,+net_admin,+net_raw"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := e.node.Run(ctx, "env", capsHelperEnv+"=1", "setpriv",
		"--bounding-set="+caps, "--inh-caps="+caps, "--ambient-caps="+caps, "--",
		os.Args[0], "-test.run=^TestEnsureWithoutSysAdmin$", "-test.v")
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("Ensure with only NET_ADMIN and NET_RAW: %v\n%s", err, out)
	}
	var idx int
	for _, l := range strings.Split(string(out), "\n") {
		if _, err := fmt.Sscanf(strings.TrimSpace(l), "vmac-index %d", &idx); err == nil {
			break
		}
	}
	if idx <= 0 {
		t.Fatalf("the helper printed no index:\n%s", out)
	}
	checkMacvlan(t, e, name, mac, idx)
	wantSysctls(t, e.node, map[string]int{
		"ipv4/conf/" + name + "/arp_ignore":   1,
		"ipv4/conf/" + name + "/arp_announce": 2,
		"ipv4/conf/" + name + "/rp_filter":    0,
		"ipv6/conf/" + name + "/disable_ipv6": 1,
		"ipv4/conf/" + dev + "/arp_ignore":    1,
	})
}

func ensureHelper(t *testing.T) {
	// The premise: this process has no CAP_SYS_ADMIN.
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(st), "CapEff:\t0000000000003000\n") {
		t.Fatalf("want exactly NET_ADMIN and NET_RAW effective:\n%s", st)
	}
	m, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	idx, err := m.Ensure(DefaultName(vrid, 4), dev, MAC(vrid, 4))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("vmac-index %d\n", idx)
}
