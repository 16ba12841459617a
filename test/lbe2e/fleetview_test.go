package lbe2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"vigil/lb/ipvsnet"
	"vigil/node"
	"vigil/test/netlab"
	"vigil/test/peer"
)

// The fleet view with real IPVS (issue 13, "Fleet view with real IPVS in
// the test VM"): three directors gossiping their health checks, two NAT
// real servers, and d1 alone with a broken path to r1:
//
//	client 192.0.2.50     d1 192.0.2.11 + 198.51.100.2 (priority 150)
//	VIP    192.0.2.100    d2 192.0.2.12 + 198.51.100.3 (priority 200, the first master)
//	gw VIP 198.51.100.1   d3 192.0.2.13 + 198.51.100.4 (priority 50)
//	                      r1, r2 198.51.100.11/.12 :8080
//
// d1's priority is between the others' so that stopping d2 fails the VIP
// over to d1, the director with the fault; the gaps keep d1's skew time
// well ahead of d3's when d2's priority-0 advert makes both time out.
var fvDirectors = []struct {
	name string
	prio int
	addr string // eth0's first address; the gossip bind address
	back string // its address on the real servers' subnet
}{
	{"d1", 150, "192.0.2.11", "198.51.100.2"},
	{"d2", 200, "192.0.2.12", "198.51.100.3"},
	{"d3", 50, "192.0.2.13", "198.51.100.4"},
}

// fvConns is how many connections each traffic measurement opens through
// the VIP, fvParallel how many at a time: a connection scheduled to an
// unreachable real server costs its whole timeout, fvConnTimeout.
const (
	fvConns       = 50
	fvParallel    = 10
	fvConnTimeout = 3 * time.Second
)

// fvYAML is a director's config. The check is fast enough for the
// scenario to stay short and slow enough for TCG (a TCP connect in the VM
// can take a hundred milliseconds): a real server goes down after 3
// failures, about 0.7 s when the connect fails at once (blackhole), 1.7 s
// when it times out (nftables drop). The gossip section has LAN timings
// (the local profile sends each change too few times and loses some;
// lan-fast's 200 ms probe timeout is short for TCG) and a 2 s rejoin.
func fvYAML(name string, prio int, addr, keyring, policy string) string {
	return fmt.Sprintf(`node: {name: %s}
telemetry: {listen: "127.0.0.1:9730"}
vrrp:
  instances:
    - {name: vip, interface: eth0, vrid: 51, priority: %[2]d, advert_interval: 200ms, accept: true, vips: [192.0.2.100/24]}
    - {name: gw, interface: eth0, vrid: 52, priority: %[2]d, advert_interval: 200ms, accept: true, vips: [198.51.100.1/24]}
  sync_groups: [{name: edge, instances: [vip, gw]}]
lb:
  virtual_servers:
    - name: web
      address: 192.0.2.100:80
      protocol: tcp
      scheduler: rr
      health_policy: %[5]s
      check: {type: tcp, interval: 500ms, timeout: 400ms, retry_delay: 100ms, fall: 3, warmup: 0s}
      real_servers: [{address: "198.51.100.11:8080"}, {address: "198.51.100.12:8080"}]
gossip:
  bind: %[3]s:7946
  advertise: %[3]s:7946
  join: [192.0.2.11:7946, 192.0.2.12:7946, 192.0.2.13:7946]
  cluster: vgfv
  keyring: %[4]s
  profile: lan
  rejoin_interval: 2s
`, name, prio, addr, keyring, policy)
}

type fvFleet struct {
	lab     *netlab.Lab
	client  *netlab.Node
	dirs    map[string]*netlab.Node
	procs   map[string]*netlab.Process
	cfgs    map[string]string
	keyring string
	bin     string
	nft     string
}

func setupFleetView(t *testing.T) *fvFleet {
	t.Helper()
	if os.Getenv("VIGIL_IN_VM") != "1" {
		t.Skip("runs in the test VM (vigil/test/vm), where the kernel has IPVS")
	}
	if err := ipvsnet.Available(); err != nil {
		t.Fatalf("IPVS: %v", err)
	}
	f := &fvFleet{bin: os.Getenv("VIGIL_BIN"), nft: os.Getenv("VIGIL_NFT"), dirs: map[string]*netlab.Node{},
		procs: map[string]*netlab.Process{}, cfgs: map[string]string{}}
	if f.bin == "" || f.nft == "" {
		t.Fatal("VIGIL_BIN and VIGIL_NFT name the vigil and nft binaries in the VM")
	}
	f.lab = netlab.NewForTest(t, "vgfv")
	add := func(name string, addrs ...string) *netlab.Node {
		t.Helper()
		var ps []netip.Prefix
		for _, a := range addrs {
			ps = append(ps, pfx(a))
		}
		n, err := f.lab.AddNode(name, ps...)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	f.client = add("client", "192.0.2.50/24")
	for _, d := range fvDirectors {
		n := add(d.name, d.addr+"/24", d.back+"/24")
		for _, kv := range []string{"net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.eth0.send_redirects=0"} {
			if out, err := n.Run(context.Background(), "sysctl", "-w", kv); err != nil {
				t.Fatalf("%s: %v\n%s", d.name, err, out)
			}
		}
		f.dirs[d.name] = n
	}
	for _, r := range []struct {
		name string
		addr netip.AddrPort
	}{{"r1", r1Addr}, {"r2", r2Addr}} {
		n := add(r.name, netip.PrefixFrom(r.addr.Addr(), 24).String())
		// NAT: the answers go back through the directors' gateway VIP.
		if out, err := n.IP("route", "add", "default", "via", gwVIP.String()); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		b := &backend{name: r.name, node: n, addr: r.addr}
		b.start(t)
		t.Cleanup(b.stop)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	f.keyring = filepath.Join(f.lab.Dir(), "fleet.key")
	if err := os.WriteFile(f.keyring, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// d2 first: it is to be the master before the others start (see
	// setup in lbe2e_test.go for why two directors starting together are
	// avoided).
	f.start(t, "d2", "quorum")
	if err := f.dirs["d2"].WaitAddr("eth0", vip, true, 20*time.Second); err != nil {
		t.Fatalf("d2 never held the VIP: %v", err)
	}
	f.start(t, "d1", "quorum")
	f.start(t, "d3", "quorum")
	return f
}

// start runs vigil on director name with the given health policy.
func (f *fvFleet) start(t *testing.T, name, policy string) {
	t.Helper()
	f.writeConfig(t, name, policy)
	p, err := f.dirs[name].Start(f.bin, "run", "--config", f.cfgs[name], "--log-level", "debug",
		"--admin-socket", peer.VigilAdminSocket(f.dirs[name]))
	if err != nil {
		t.Fatal(err)
	}
	f.procs[name] = p
}

func (f *fvFleet) writeConfig(t *testing.T, name, policy string) {
	t.Helper()
	for _, d := range fvDirectors {
		if d.name != name {
			continue
		}
		path := filepath.Join(f.lab.Dir(), name+".yaml")
		if err := os.WriteFile(path, []byte(fvYAML(name, d.prio, d.addr, f.keyring, policy)), 0o644); err != nil {
			t.Fatal(err)
		}
		f.cfgs[name] = path
		return
	}
	t.Fatalf("no director %s", name)
}

// reload rewrites director name's config with policy and sends SIGHUP.
func (f *fvFleet) reload(t *testing.T, name, policy string) {
	t.Helper()
	f.writeConfig(t, name, policy)
	if err := f.procs[name].Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// cli runs a vigil client command against director name's daemon.
func (f *fvFleet) cli(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args = append(args, "--socket", peer.VigilAdminSocket(f.dirs[name]))
	out, err := exec.CommandContext(ctx, f.bin, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("vigil %s on %s: %w: %s", strings.Join(args, " "), name, err, out)
	}
	return out, nil
}

// r1View is director name's fleet verdict on web's r1 (vigil status
// --fleet -o json).
func (f *fvFleet) r1View(name string) (node.FleetRealServer, error) {
	out, err := f.cli(name, "status", "--fleet", "-o", "json")
	if err != nil {
		return node.FleetRealServer{}, err
	}
	var st node.FleetStatus
	if err := json.Unmarshal(out, &st); err != nil {
		return node.FleetRealServer{}, fmt.Errorf("status --fleet JSON of %s: %w: %s", name, err, out)
	}
	for _, vs := range st.VirtualServers {
		for _, rs := range vs.RealServers {
			if vs.Name == "web" && rs.Address == r1Addr.String() {
				return rs, nil
			}
		}
	}
	return node.FleetRealServer{}, fmt.Errorf("status --fleet of %s has no web %s: %s", name, r1Addr, out)
}

// divergence is director name's report of members whose desired tables
// differ under one configuration, rendered "d1 | d2,d3" (the members of
// each digest, groups sorted), "" when none.
func (f *fvFleet) divergence(name string) (string, error) {
	out, err := f.cli(name, "status", "--fleet", "-o", "json")
	if err != nil {
		return "", err
	}
	var st node.FleetStatus
	if err := json.Unmarshal(out, &st); err != nil {
		return "", fmt.Errorf("status --fleet JSON of %s: %w: %s", name, err, out)
	}
	var groups []string
	for _, d := range st.Divergence {
		for _, nodes := range d.Digests {
			groups = append(groups, strings.Join(nodes, ","))
		}
	}
	slices.Sort(groups)
	return strings.Join(groups, " | "), nil
}

// waitR1View waits until director name's verdict on r1 renders as want
// (see fvRender).
func (f *fvFleet) waitR1View(t *testing.T, name, want string, timeout time.Duration) {
	t.Helper()
	waitRender(t, name+"'s fleet view of r1", want, timeout, func() (string, error) {
		v, err := f.r1View(name)
		return fvRender(v), err
	})
}

// fvRender is a fleet verdict as one comparable line.
func fvRender(v node.FleetRealServer) string {
	return fmt.Sprintf("up=%t local=%t up_count=%d fresh=%d dissenters=%s", v.Up, v.Local, v.UpCount, v.Fresh,
		strings.Join(v.Dissenters, ","))
}

// waitMembers waits until director name sees exactly the members of want
// (sorted) alive.
func (f *fvFleet) waitMembers(t *testing.T, name string, want []string, timeout time.Duration) {
	t.Helper()
	waitRender(t, "members alive on "+name, strings.Join(want, ","), timeout, func() (string, error) {
		out, err := f.cli(name, "members", "-o", "json")
		if err != nil {
			return "", err
		}
		var ms []node.MemberStatus
		if err := json.Unmarshal(out, &ms); err != nil {
			return "", fmt.Errorf("members JSON of %s: %w: %s", name, err, out)
		}
		var alive []string
		for _, m := range ms {
			if m.State == "alive" {
				alive = append(alive, m.Name)
			}
		}
		slices.Sort(alive)
		return strings.Join(alive, ","), nil
	})
}

// waitRender polls render until it returns want; on timeout it fails the
// test with what it returned last.
func waitRender(t *testing.T, what, want string, timeout time.Duration, render func() (string, error)) {
	t.Helper()
	var got string
	err := netlab.Poll(timeout, 100*time.Millisecond, func() (bool, error) {
		s, err := render()
		if err != nil {
			return false, err
		}
		got = s
		return got == want, nil
	})
	if err != nil {
		t.Fatalf("%s: %v\n got: %s\nwant: %s", what, err, got, want)
	}
}

// stays checks that the director's web destinations remain want for d,
// sampling the kernel table: a removal that merely lags is caught.
func stays(t *testing.T, n *netlab.Node, want string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if got := dests(dump(t, n), webKey); got != want {
			t.Fatalf("%s web: destinations %q, want %q to stay", n.Name, got, want)
		}
	}
}

// traffic opens fvConns connections (one HTTP request each) from the
// client through the VIP, fvParallel at a time, and returns the answers by
// real server and the number that failed with the last error.
func (f *fvFleet) traffic() (answers map[string]int, failed int, lastErr error) {
	answers = map[string]int{}
	var mu sync.Mutex
	sem := make(chan struct{}, fvParallel)
	var wg sync.WaitGroup
	for range fvConns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), fvConnTimeout)
			defer cancel()
			body, err := f.client.HTTPGet(ctx, fmt.Sprintf("http://%s:80/", vip))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				lastErr = err
				return
			}
			answers[string(body)]++
		}()
	}
	wg.Wait()
	return answers, failed, lastErr
}

// viaD1 fails the test unless d1 holds the VIP: the traffic figures after
// the failover are d1's only while it does.
func (f *fvFleet) viaD1(t *testing.T) {
	t.Helper()
	if ok, err := f.dirs["d1"].HasAddr("eth0", vip); err != nil || !ok {
		t.Fatalf("d1 no longer holds the VIP (%v): the traffic did not all go through it", err)
	}
}

// nftCounter is the packet count of the counter in d1's vgfv table.
func (f *fvFleet) nftCounter(t *testing.T) int {
	t.Helper()
	out, err := f.dirs["d1"].Run(context.Background(), f.nft, "list", "table", "ip", "vgfv")
	if err != nil {
		t.Fatalf("nft list on d1: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`counter packets (\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no counter in d1's vgfv table:\n%s", out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestFleetView is issue 13's fleet view with real IPVS: with quorum, the
// real server one director cannot reach stays in all three kernel tables;
// with local it leaves that director's table only; after a failover to
// that director the traffic through the VIP is measured with the fault as
// a blackhole route (checks and forwarding broken) and as an nftables
// drop of the daemon's own packets (checks broken, forwarding intact).
func TestFleetView(t *testing.T) {
	f := setupFleetView(t)
	const settle = 20 * time.Second
	both := "198.51.100.11:8080/1 198.51.100.12:8080/1"
	r2Only := "198.51.100.12:8080/1"
	all := []string{"d1", "d2", "d3"}
	d1 := f.dirs["d1"]

	start := time.Now()
	for _, name := range all {
		f.waitMembers(t, name, all, settle)
	}
	for _, name := range all {
		waitDests(t, f.dirs[name], webKey, both, settle)
		f.waitR1View(t, name, "up=true local=true up_count=3 fresh=3 dissenters=", settle)
	}
	t.Logf("fleet of 3 formed, every table and view complete %v after the last start", time.Since(start).Round(time.Millisecond))

	// Issue 13: "with quorum, a real server is down only when a strict
	// majority of the live directors with a fresh result see it down":
	// one of three is not, so r1 stays everywhere while d1's own checks
	// say down and every member names d1 as the dissenter.
	t.Run("quorum keeps the real server in every table", func(t *testing.T) {
		logFrom := len(f.procs["d1"].Log())
		if out, err := d1.IP("route", "add", "blackhole", r1Addr.Addr().String()+"/32"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		t0 := time.Now()
		for _, name := range all {
			f.waitR1View(t, name, "up=true local="+strconv.FormatBool(name != "d1")+" up_count=2 fresh=3 dissenters=d1", settle)
		}
		t.Logf("d1's down verdict on r1 reached every member in %v", time.Since(t0).Round(time.Millisecond))
		// 2 s is 4 check intervals: past d1's fall count a second time.
		stays(t, d1, both, 2*time.Second)
		for _, name := range all {
			if got := dests(dump(t, f.dirs[name]), webKey); got != both {
				t.Errorf("%s web: destinations %q, want %q", name, got, both)
			}
		}
		// Issue 13: a director whose own view disagrees is reported in
		// the logs, once per change.
		logged := 0
		for _, l := range strings.Split(f.procs["d1"].Log()[logFrom:], "\n") {
			if strings.Contains(l, `msg="this director's checks disagree with the fleet"`) && strings.Contains(l, "real_server="+r1Addr.String()) {
				logged++
			}
		}
		if logged != 1 {
			t.Errorf("d1 logged its disagreement on r1 %d times, want once:\n%s", logged, f.procs["d1"].LogLines(30))
		}
		// One policy, one view, one table: nothing diverges.
		for _, name := range all {
			if d, err := f.divergence(name); err != nil || d != "" {
				t.Errorf("%s reports diverging desired tables under quorum: %q, %v", name, d, err)
			}
		}
	})

	// keepalived's behaviour, per virtual server: d1's checks alone decide
	// d1's table; d2 and d3 keep quorum and r1.
	t.Run("local removes it from that director only", func(t *testing.T) {
		f.reload(t, "d1", "local")
		waitDests(t, d1, webKey, r2Only, settle)
		f.waitR1View(t, "d1", "up=false local=false up_count=2 fresh=3 dissenters=d2,d3", settle)
		for _, name := range []string{"d2", "d3"} {
			if got := dests(dump(t, f.dirs[name]), webKey); got != both {
				t.Errorf("%s web (quorum): destinations %q, want %q", name, got, both)
			}
		}
		// Issue 13: desired tables that differ between live members
		// with the same configuration are reported (the health policy
		// aside, the three lb sections are equal), on every member, and
		// logged once.
		for _, name := range all {
			waitRender(t, name+"'s divergence report", "d1 | d2,d3", settle, func() (string, error) { return f.divergence(name) })
		}
		// The report is computed when asked; the log line comes with the
		// fleet loop's next once-a-second look, after it.
		var warned int
		_ = netlab.Poll(3*time.Second, 100*time.Millisecond, func() (bool, error) {
			warned = strings.Count(f.procs["d2"].Log(), "compute different desired IPVS tables")
			return warned > 0, nil
		})
		if warned != 1 {
			t.Errorf("d2 logged the divergence %d times, want once:\n%s", warned, f.procs["d2"].LogLines(30))
		}
	})

	t.Run("traffic before the failover", func(t *testing.T) {
		answers, failed, lastErr := f.traffic()
		t.Logf("through d2: %d of %d connections ok %v", fvConns-failed, fvConns, answers)
		if failed != 0 || answers["r1"] == 0 || answers["r2"] == 0 {
			t.Fatalf("through d2 every connection should succeed on r1 and r2: %v, %d failed (last error %v)", answers, failed, lastErr)
		}
	})

	// Stop the master: d1 (150) takes the VIP over d3 (50).
	t.Run("failover to the director with the fault", func(t *testing.T) {
		t0 := time.Now()
		if err := f.procs["d2"].Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		for _, a := range []netip.Addr{vip, gwVIP} {
			if err := d1.WaitAddr("eth0", a, true, settle); err != nil {
				t.Fatalf("d1 did not take %s: %v", a, err)
			}
		}
		t.Logf("d1 holds both VIPs %v after d2's stop began", time.Since(t0).Round(time.Millisecond))
		for _, name := range []string{"d1", "d3"} {
			f.waitMembers(t, name, []string{"d1", "d3"}, settle)
		}
		// d2 left: of the two live directors, d1 says down, d3 up.
		f.waitR1View(t, "d3", "up=true local=true up_count=1 fresh=2 dissenters=d1", settle)
	})
	if t.Failed() {
		return
	}

	t.Run("blackhole with local: all through r2", func(t *testing.T) {
		answers, failed, lastErr := f.traffic()
		f.viaD1(t)
		t.Logf("RESULT blackhole, d1 local: %d of %d connections ok %v (last error %v)", fvConns-failed, fvConns, answers, lastErr)
		if failed != 0 || answers["r2"] != fvConns {
			t.Errorf("with local, d1 has only r2 and every connection should reach it: %v, %d failed", answers, failed)
		}
	})

	// Quorum keeps r1 in d1's table, but the blackhole breaks IPVS's
	// forwarding to it as well as the checks: the connections scheduled
	// to r1 fail. This is what the figure shows; it is not asserted.
	t.Run("blackhole with quorum: r1 scheduled but unreachable", func(t *testing.T) {
		f.reload(t, "d1", "quorum")
		waitDests(t, d1, webKey, both, settle)
		f.waitR1View(t, "d1", "up=true local=false up_count=1 fresh=2 dissenters=d1", settle)
		answers, failed, lastErr := f.traffic()
		f.viaD1(t)
		t.Logf("RESULT blackhole, d1 quorum: %d of %d connections ok %v (last error %v)", fvConns-failed, fvConns, answers, lastErr)
		if answers["r1"] != 0 {
			t.Errorf("r1 answered through d1's blackhole route: %v", answers)
		}
		if answers["r2"] == 0 {
			t.Errorf("r2 did not answer through d1: %v", answers)
		}
	})

	// The fault as a check-path-only one: an output rule drops what d1's
	// own sockets (vigil's checks, uid 0) send to r1. IPVS-forwarded
	// packets have no socket, so `meta skuid` does not match them: r1
	// must answer through d1 while d1's checks keep failing.
	t.Run("check path only fault with quorum: all served", func(t *testing.T) {
		script := filepath.Join(f.lab.Dir(), "d1.nft")
		rule := fmt.Sprintf("table ip vgfv {\n  chain out { type filter hook output priority 0; policy accept;\n"+
			"    meta skuid 0 ip daddr %s counter drop\n  }\n}\n", r1Addr.Addr())
		if err := os.WriteFile(script, []byte(rule), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := d1.Run(context.Background(), f.nft, "-f", script); err != nil {
			t.Fatalf("nft on d1: %v\n%s", err, out)
		}
		// The rule first, then the route: d1's checks never see r1 up.
		if out, err := d1.IP("route", "del", "blackhole", r1Addr.Addr().String()+"/32"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		dropped := f.nftCounter(t)
		waitFor(t, "d1's checks of r1 hitting the nftables rule", settle, func() bool { return f.nftCounter(t) > dropped })
		// 2 s: several checks, each dropped (a connect that times out).
		stays(t, d1, both, 2*time.Second)
		if v, err := f.r1View("d1"); err != nil || v.Local || !v.Up {
			t.Fatalf("d1's view of r1 with its checks dropped: %+v, %v; want local down, fleet up", v, err)
		}
		answers, failed, lastErr := f.traffic()
		f.viaD1(t)
		t.Logf("RESULT check-path-only drop, d1 quorum: %d of %d connections ok %v (last error %v); nft counted %d dropped packets of d1's own",
			fvConns-failed, fvConns, answers, lastErr, f.nftCounter(t))
		if failed != 0 || answers["r1"] == 0 || answers["r2"] == 0 {
			t.Errorf("with the checks' path alone broken, every connection should succeed on r1 and r2: %v, %d failed", answers, failed)
		}
		if v, err := f.r1View("d1"); err != nil || v.Local {
			t.Errorf("d1's own checks saw r1 up during the traffic (the rule did not hold): %+v, %v", v, err)
		}
	})
}
