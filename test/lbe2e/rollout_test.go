package lbe2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/config"
	"vigil/lb"
	"vigil/lb/ipvsnet"
	"vigil/node"
	"vigil/test/netlab"
	"vigil/test/peer"
)

// TestFleetRolloutIPVS (issue 14, "Rollout: time from push to every member applied ... for a
// 1,000-virtual-server document"): members that follow fleet pushes, each in its own network
// namespace and so with its own IPVS table, take a pushed document of 1,000 virtual servers × 10
// real servers and program it. The first push (every member's table empty) and pushes that change
// one weight are timed from the start of `vigil config push` to every member's history holding the
// version (polled every 100 ms; the members' own "applied" times give the exact figure too), and
// every member's table is read back. A benchmark: it runs in the test VM (vigil/test/vm
// TestLBRolloutBenchVM, VIGIL_BENCH=1) and prints its figures on RESULT lines.
func TestFleetRolloutIPVS(t *testing.T) {
	if os.Getenv("VIGIL_IN_VM") != "1" {
		t.Skip("runs in the test VM (vigil/test/vm), where the kernel has IPVS")
	}
	if os.Getenv("VIGIL_BENCH") != "1" {
		t.Skip("benchmark: set VIGIL_BENCH=1")
	}
	if err := ipvsnet.Available(); err != nil {
		t.Fatalf("IPVS: %v", err)
	}
	bin := os.Getenv("VIGIL_BIN")
	if bin == "" {
		t.Fatal("VIGIL_BIN names the vigil binary in the VM")
	}
	members, pushes := 5, 2
	if v, err := strconv.Atoi(os.Getenv("VIGIL_ROLLOUT_MEMBERS")); err == nil && v >= 2 && v <= 20 {
		members = v
	}
	lab := netlab.NewForTest(t, "vgro")
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	keyring := filepath.Join(lab.Dir(), "fleet.key")
	if err := os.WriteFile(keyring, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*netlab.Node{}
	clients := map[string]*http.Client{}
	var names []string
	for i := 1; i <= members; i++ {
		name, addr := fmt.Sprintf("m%d", i), fmt.Sprintf("192.0.2.%d", 10+i)
		n, err := lab.AddNode(name, pfx(addr+"/24"))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(lab.Dir(), name+".yaml")
		y := fmt.Sprintf(`node: {name: %s}
telemetry: {listen: ""}
vrrp:
  instances:
    - {name: vr51, interface: eth0, vrid: 51, priority: %d, advert_interval: 1s, vips: [192.0.2.100/24]}
gossip: {bind: "%[3]s:7946", advertise: "%[3]s:7946", join: ["192.0.2.11:7946", "192.0.2.12:7946"], cluster: vgro, keyring: %s, profile: lan, rejoin_interval: 2s}
fleet: {config: follow, state_dir: %s}
`, name, 200-i, addr, keyring, filepath.Join(lab.Dir(), name+"-state"))
		if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		sock := peer.VigilAdminSocket(n)
		if _, err := n.Start(bin, "run", "--config", path, "--admin-socket", sock); err != nil {
			t.Fatal(err)
		}
		nodes[name], clients[name] = n, peer.AdminClient(sock, 10*time.Second)
		names = append(names, name)
	}
	waitAlive(t, clients["m1"], members, time.Minute)

	version := uint64(0)
	for p := range pushes + 1 {
		doc := peer.RolloutDocument(pfx("192.0.2.100/24"), names, func(i int) int { return 200 - 2*i }, 1000, 10, p%2 == 1)
		file := filepath.Join(lab.Dir(), fmt.Sprintf("push-%d.yaml", p))
		if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		version++
		start := time.Now()
		out, err := exec.Command(bin, "config", "push", file, "--timeout", "5m", "--socket", peer.VigilAdminSocket(nodes["m1"])).CombinedOutput()
		cmd := time.Since(start)
		if err != nil || !strings.Contains(string(out), fmt.Sprintf("pushed fleet version %d ", version)) {
			t.Fatalf("push %d: %v\n%s", p, err, out)
		}
		polled, stamped := waitApplied(t, clients, version, start, 5*time.Minute)
		// The balancer programs the kernel after the reload that applied
		// the version: the tables are read until they hold it.
		var tables time.Duration
		for _, name := range names {
			tables = max(tables, waitTable(t, nodes[name], p%2 == 1, start))
		}
		what := "one weight changed"
		if p == 0 {
			what = "first push, empty tables"
		}
		t.Logf("RESULT rollout members=%d doc=1000x10 (%d kB) push %d (%s): every member applied after %.2fs (members' own times: %.2fs), "+
			"every IPVS table holds it after %.2fs (read every second); `config push` returned after %.2fs",
			members, len(doc)/1000, p, what, polled.Seconds(), stamped.Seconds(), tables.Seconds(), cmd.Seconds())
	}
	// Members that run the same version compute the same table: no divergence once they all do.
	if err := netlab.Poll(time.Minute, time.Second, func() (bool, error) {
		for _, name := range names {
			out, err := exec.Command(bin, "status", "--fleet", "-o", "json", "--socket", peer.VigilAdminSocket(nodes[name])).Output()
			var st node.FleetStatus
			if err != nil || json.Unmarshal(out, &st) != nil || len(st.Divergence) > 0 {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Errorf("members running the same version still report diverging tables: %v", err)
	}
	warned := 0
	for _, p := range lab.Processes() {
		warned += strings.Count(p.Log(), "compute different desired IPVS tables")
	}
	t.Logf("RESULT rollout members=%d: %d divergence warnings logged over the pushes (members between versions compare by version)", members, warned)
}

// waitTable reads a member's IPVS table every second until it holds the document (tableIs) and
// returns the time since start; it fails the test after two minutes.
func waitTable(t *testing.T, n *netlab.Node, alt bool, start time.Time) time.Duration {
	t.Helper()
	var last string
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if last = tableIs(dump(t, n), alt); last == "" {
			return time.Since(start)
		}
	}
	t.Fatalf("%s's IPVS table: %s", n.Name, last)
	return 0
}

// tableIs says how a table differs from the document's (1,000 services of 10 destinations, vs0's
// first real server at weight 2 after an alt push, 1 otherwise); "" when it does not.
func tableIs(tb lb.Table, alt bool) string {
	dests := 0
	for _, e := range tb {
		dests += len(e.Dests)
	}
	k := lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: pfx("198.51.100.1/32").Addr(), Port: 80}
	first := "absent"
	if e, ok := tb[k]; ok {
		for _, d := range e.SortedDests() {
			if d.Addr == pfx("203.0.113.1/32").Addr() {
				first = strconv.Itoa(d.Weight)
			}
		}
	}
	want := "1"
	if alt {
		want = "2"
	}
	if len(tb) != 1000 || dests != 10000 || first != want {
		return fmt.Sprintf("%d services, %d destinations, vs0's first real server weight %s; want 1000, 10000, %s", len(tb), dests, first, want)
	}
	return ""
}

// waitAlive waits until the member behind c lists n members alive.
func waitAlive(t *testing.T, c *http.Client, n int, timeout time.Duration) {
	t.Helper()
	var alive int
	err := netlab.Poll(timeout, 200*time.Millisecond, func() (bool, error) {
		alive, _ = peer.AliveMembers(c) // 0 while the daemon does not answer yet
		return alive == n, nil
	})
	if err != nil {
		t.Fatalf("the fleet did not form: %d of %d members alive: %v", alive, n, err)
	}
}

// waitApplied polls every member's history until it holds version v and returns when the last
// did, by the polls and by the members' own times, both from start.
func waitApplied(t *testing.T, clients map[string]*http.Client, v uint64, start time.Time, timeout time.Duration) (polled, stamped time.Duration) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	missing := map[string]bool{}
	for name, c := range clients {
		missing[name] = true
		wg.Go(func() {
			deadline := start.Add(timeout)
			for time.Now().Before(deadline) {
				var hist []config.FleetEntry
				if peer.AdminJSON(c, "/v1/config/history", &hist) == nil {
					if i := slices.IndexFunc(hist, func(e config.FleetEntry) bool { return e.Version >= v }); i >= 0 {
						mu.Lock()
						polled, stamped = max(polled, time.Since(start)), max(stamped, hist[i].Applied.Sub(start))
						delete(missing, name)
						mu.Unlock()
						return
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	if len(missing) > 0 {
		t.Fatalf("version %d not applied within %s on %v", v, timeout, missing)
	}
	return polled, stamped
}
