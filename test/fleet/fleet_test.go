package fleet

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/node"
	"vigil/test/netlab"
	"vigil/test/peer"
)

// labPrefix starts this package's lab prefixes (with VIGIL_LAB_TAG's letter before it).
const labPrefix = "vgfl"

var labSeq int

// lab is a fleet of vigil nodes n1..nN (192.0.2.1N/24 on one bridge), each with its admin socket,
// gossiping on port 7946 with one shared keyring.
type lab struct {
	t       testing.TB
	lab     *netlab.Lab
	bin     string
	keyring string // the fleet's keyring file (each node gets a copy: rotation rewrites it)
	procs   map[string]*netlab.Process
	addrs   map[string]netip.Addr
	// gossip is extra YAML for every node's gossip section (timings, arbitrate).
	gossip string
	// noGossip starts the daemons without a gossip section (a baseline);
	// profile and rejoin are the gossip section's (default lan-fast and 2s: the local profile sends each change too few times and loses some at 5 nodes, see docs/benchmarks.md).
	noGossip        bool
	profile, rejoin string
	// follow makes the nodes follow fleet pushes (state in the lab directory);
	// fleetKeys adds keys to a node's fleet: section (", trusted_keys: [...]").
	follow bool
	// env is added to the daemons' environment (OTEL_* to a lab Jaeger).
	env       []string
	fleetKeys map[string]string
	// stateRoot holds the nodes' state directories (the lab directory
	// when empty).
	stateRoot string
}

// stateDir is name's state directory.
func (l *lab) stateDir(name string) string {
	return filepath.Join(cmp.Or(l.stateRoot, l.lab.Dir()), name+"-state")
}

func newLab(t testing.TB, n int) *lab {
	t.Helper()
	netlab.Require(t)
	if labSeq == 0 {
		prefix, err := netlab.Tagged(labPrefix)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlab.Cleanup(prefix); err != nil {
			t.Fatalf("netlab: remove leftovers of an earlier run: %v", err)
		}
	}
	labSeq++
	l := &lab{t: t, lab: netlab.NewForTest(t, fmt.Sprintf("%s%02d", labPrefix, labSeq%100)), procs: map[string]*netlab.Process{},
		addrs: map[string]netip.Addr{}}
	bin, err := peer.VigilBinary()
	if err != nil {
		t.Fatal(err)
	}
	l.bin = bin
	l.keyring = filepath.Join(l.lab.Dir(), "fleet.key")
	writeKeys(t, l.keyring, newKey(t))
	for i := 1; i <= n; i++ {
		l.addNode(fmt.Sprintf("n%d", i), nodeAddr(i))
	}
	return l
}

func nodeAddr(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", 10+i)) }

func (l *lab) addNode(name string, a netip.Addr) *netlab.Node {
	l.t.Helper()
	nd, err := l.lab.AddNode(name, netip.PrefixFrom(a, 24))
	if err != nil {
		l.t.Fatal(err)
	}
	l.addrs[name] = a
	return nd
}

func newKey(t testing.TB) string {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(k)
}

func writeKeys(t testing.TB, path string, keys ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// gossipYAML is a node's gossip section: bound to its address, joining n1 and n3, with the
// lan-fast timings and a short rejoin interval so partitions heal within the test.
func (l *lab) gossipYAML(name, cluster, keyring string) string {
	a := l.addrs[name]
	return fmt.Sprintf("gossip:\n  bind: %s:7946\n  advertise: %s:7946\n  join: [%s:7946, %s:7946]\n  cluster: %s\n  keyring: %s\n"+
		"  profile: %s\n  rejoin_interval: %s\n%s", a, a, nodeAddr(1), nodeAddr(3), cluster, keyring, cmp.Or(l.profile, "lan-fast"), cmp.Or(l.rejoin, "2s"), l.gossip)
}

// start runs vigil on name with insts and the fleet's gossip section (cluster "test", a copy of
// the fleet keyring unless keyring is given).
func (l *lab) start(name string, insts []peer.Instance, cluster, keyring string) *netlab.Process {
	l.t.Helper()
	if keyring == "" {
		keyring = filepath.Join(l.lab.Dir(), name+".key")
		b, err := os.ReadFile(l.keyring)
		if err != nil {
			l.t.Fatal(err)
		}
		if _, err := os.Stat(keyring); err != nil { // a restart keeps the node's own (rotated) file
			if err := os.WriteFile(keyring, b, 0o600); err != nil {
				l.t.Fatal(err)
			}
		}
	}
	y := peer.VigilYAML(name, insts)
	if !l.noGossip {
		y += l.gossipYAML(name, cluster, keyring)
	}
	if l.follow {
		y += fmt.Sprintf("fleet: { config: follow, state_dir: %s%s }\n", l.stateDir(name), l.fleetKeys[name])
	} else if !l.noGossip {
		// Each node its own state directory (a drain is kept there).
		y += fmt.Sprintf("fleet: { state_dir: %s }\n", l.stateDir(name))
	}
	// Metrics on the node's address (its own namespace): the fleet's families are checked there.
	y = strings.Replace(y, `telemetry: { listen: "" }`, fmt.Sprintf(`telemetry: { listen: "%s:9730" }`, l.addrs[name]), 1)
	if len(insts) == 0 {
		y = strings.Replace(y, "node: { name: "+name+" }", "node: { name: "+name+", allow_empty: true }", 1)
	}
	p, err := peer.StartVigilYAMLWith(l.lab.Node(name), l.bin, y, netlab.StartOptions{Env: l.env}, "--log-level", "info")
	if err != nil {
		l.t.Fatal(err)
	}
	l.procs[name] = p
	l.t.Cleanup(func() {
		if l.t.Failed() {
			l.t.Logf("log of vigil on %s:\n%s", name, p.LogTail(60))
		}
	})
	return p
}

// metrics returns name's /metrics exposition.
func (l *lab) metrics(name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := l.lab.Node(name).HTTPGet(ctx, fmt.Sprintf("http://%s:9730/metrics", l.addrs[name]))
	return string(b), err
}

// cli runs a vigil client command against name's daemon.
func (l *lab) cli(name string, args ...string) ([]byte, error) {
	return l.cliWithin(20*time.Second, name, args...)
}

// cliWithin is cli, killed after timeout.
func (l *lab) cliWithin(timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args = append(args, "--socket", peer.VigilAdminSocket(l.lab.Node(name)))
	out, err := exec.CommandContext(ctx, l.bin, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("vigil %s on %s: %w: %s", strings.Join(args, " "), name, err, out)
	}
	return out, nil
}

func (l *lab) members(name string) ([]node.MemberStatus, error) {
	out, err := l.cli(name, "members", "-o", "json")
	if err != nil {
		return nil, err
	}
	var ms []node.MemberStatus
	if err := json.Unmarshal(out, &ms); err != nil {
		return nil, fmt.Errorf("vigil members -o json on %s: %w: %s", name, err, out)
	}
	return ms, nil
}

// states renders members as "name=state@address" sorted.
func states(ms []node.MemberStatus) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Name+"="+m.State+"@"+strings.TrimSuffix(m.Address, ":7946"))
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

// want renders the expected view: name → state, at each node's current address.
func (l *lab) want(st map[string]string) string {
	var s []string
	for name, state := range st {
		s = append(s, name+"="+state+"@"+l.addrs[name].String())
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

// waitMembers waits until every node of on sees exactly want (name → state).
func (l *lab) waitMembers(on []string, want map[string]string, timeout time.Duration) time.Duration {
	l.t.Helper()
	start := time.Now()
	w := l.want(want)
	for _, name := range on {
		var last string
		err := netlab.Poll(timeout, 100*time.Millisecond, func() (bool, error) {
			ms, err := l.members(name)
			if err != nil {
				return false, err
			}
			last = states(ms)
			return last == w, nil
		})
		if err != nil {
			l.t.Fatalf("members on %s: %v\n got: %s\nwant: %s", name, err, last, w)
		}
	}
	return time.Since(start)
}

func names(n int) []string {
	var s []string
	for i := 1; i <= n; i++ {
		s = append(s, fmt.Sprintf("n%d", i))
	}
	return s
}

func allState(ns []string, state string) map[string]string {
	m := map[string]string{}
	for _, n := range ns {
		m[n] = state
	}
	return m
}

// nft runs an nftables script in name's namespace.
func (l *lab) nft(name, script string) {
	l.t.Helper()
	path := filepath.Join(l.lab.Dir(), fmt.Sprintf("%s-%d.nft", name, time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		l.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := l.lab.Node(name).Run(ctx, "nft", "-f", path); err != nil {
		l.t.Fatalf("nft on %s: %v: %s", name, err, out)
	}
}

// partition drops gossip (port 7946, UDP and TCP, both directions) between the nodes of side and
// the addresses of other, in side's namespaces. heal removes it.
func (l *lab) partition(side []string, other []string) {
	var addrs []string
	for _, n := range other {
		addrs = append(addrs, l.addrs[n].String())
	}
	set := "{ " + strings.Join(addrs, ", ") + " }"
	for _, n := range side {
		l.nft(n, fmt.Sprintf(`table inet vgpart {
  chain in {
    type filter hook input priority 0; policy accept;
    ip saddr %[1]s th dport 7946 counter drop
    ip saddr %[1]s th sport 7946 counter drop
  }
  chain out {
    type filter hook output priority 0; policy accept;
    ip daddr %[1]s th dport 7946 counter drop
    ip daddr %[1]s th sport 7946 counter drop
  }
}
`, set))
	}
}

func (l *lab) heal(side []string) {
	for _, n := range side {
		l.nft(n, "delete table inet vgpart\n")
	}
}

// TestFleetMembership runs five real vigil processes on one bridge: they join; every node's
// `vigil members` agrees; a stopped node is "left", a SIGKILLed one "dead", and it rejoins under
// its name at a new address; a partition of the gossip port heals by the rejoin loop.
func TestFleetMembership(t *testing.T) {
	l := newLab(t, 5)
	l.gossip = "  timing: { gossip_to_the_dead: 4s, dead_node_reclaim: 1s }\n"
	all := names(5)
	for _, n := range all {
		l.start(n, nil, "test", "")
	}
	took := l.waitMembers(all, allState(all, "alive"), 30*time.Second)
	t.Logf("5 nodes joined: every node lists 5 alive members %.1fs after the last start", took.Seconds())
	ms, err := l.members("n2")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.ConfigHash == "" || m.Build == "" || m.SummaryAge < 0 {
			t.Errorf("member %s: no summary (config hash %q, build %q, summary age %v)", m.Name, m.ConfigHash, m.Build, m.SummaryAge)
		}
	}

	// Graceful stop: the others see "left".
	if err := l.procs["n5"].Stop(10 * time.Second); err != nil {
		t.Fatalf("stopping n5: %v", err)
	}
	want := allState(all, "alive")
	want["n5"] = "left"
	l.waitMembers(all[:4], want, 15*time.Second)

	// SIGKILL: the others see "dead" (memberlist's suspicion, lan-fast profile).
	start := time.Now()
	if err := l.procs["n4"].Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	want["n4"] = "dead"
	l.waitMembers(all[:3], want, 30*time.Second)
	t.Logf("SIGKILL of n4: dead on n1..n3 after %.1fs (lan-fast profile)", time.Since(start).Seconds())

	// Restart under the same name at a new address.
	n4 := l.lab.Node("n4")
	if _, err := n4.IP("addr", "flush", "dev", netlab.Dev); err != nil {
		t.Fatal(err)
	}
	na := netip.MustParseAddr("192.0.2.24")
	if _, err := n4.IP("addr", "add", netip.PrefixFrom(na, 24).String(), "dev", netlab.Dev); err != nil {
		t.Fatal(err)
	}
	l.addrs["n4"] = na
	l.start("n4", nil, "test", "")
	want["n4"] = "alive"
	took = l.waitMembers(all[:3], want, 30*time.Second)
	t.Logf("n4 restarted at %s: alive there on n1..n3 after %.1fs", na, took.Seconds())
	// The new run never knew n5, which left before it joined.
	l.waitMembers([]string{"n4"}, allState(all[:4], "alive"), 10*time.Second)

	// Partition {n1, n2} | {n3, n4} on the gossip port, long enough for each side to declare
	// the other dead and forget it, then heal: the rejoin loop merges them again.
	a, b := []string{"n1", "n2"}, []string{"n3", "n4"}
	l.partition(a, b)
	wa := map[string]string{"n1": "alive", "n2": "alive", "n3": "dead", "n4": "dead", "n5": "left"}
	l.waitMembers(a, wa, 40*time.Second)
	time.Sleep(5 * time.Second) // past gossip_to_the_dead
	l.heal(a)
	start = time.Now()
	l.waitMembers(all[:3], want, 30*time.Second)
	t.Logf("partition healed: one fleet again after %.1fs", time.Since(start).Seconds())
}

// TestFleetRefusesStrangers: a node of another cluster label, and a node without the fleet's
// key, never become members.
func TestFleetRefusesStrangers(t *testing.T) {
	l := newLab(t, 4)
	l.start("n1", nil, "test", "")
	l.start("n2", nil, "test", "")
	l.start("n3", nil, "other", "") // right key, another cluster
	other := filepath.Join(l.lab.Dir(), "other.key")
	writeKeys(t, other, newKey(t))
	l.start("n4", nil, "test", other) // right cluster, another key
	l.waitMembers([]string{"n1", "n2"}, map[string]string{"n1": "alive", "n2": "alive"}, 30*time.Second)
	// Give the strangers time to try (they join n1 and n3 at start and every 2 s).
	time.Sleep(6 * time.Second)
	for _, n := range []string{"n1", "n2"} {
		ms, err := l.members(n)
		if err != nil {
			t.Fatal(err)
		}
		if got := states(ms); got != l.want(map[string]string{"n1": "alive", "n2": "alive"}) {
			t.Errorf("members on %s: %s: a stranger got in", n, got)
		}
	}
	for _, n := range []string{"n3", "n4"} {
		ms, err := l.members(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 1 {
			t.Errorf("members on the stranger %s: %s", n, states(ms))
		}
	}
	// memberlist drops the strangers' packets and streams before vigil's
	// delegates: n1 counts them all, and logs each stranger once per
	// reason, not once per packet (issue 13: counted, logged once).
	m, err := l.metrics("n1")
	if err != nil {
		t.Fatal(err)
	}
	if refused := sumMetric(m, "vigil_gossip_refused_peers_total"); refused < 4 {
		t.Errorf("n1 counted %v refusals of two strangers trying for 6 s, want several", refused)
	}
	log := l.procs["n1"].Log()
	for _, want := range []struct{ who, reason string }{{"n3", "cluster label"}, {"n4", "gossip key"}} {
		line := fmt.Sprintf("addr=%s reason=%q", l.addrs[want.who], want.reason)
		if n := strings.Count(log, line); n != 1 {
			t.Errorf("n1 logged %s's refusal (%s) %d times, want once:\n%s", want.who, want.reason, n, l.procs["n1"].LogLines(20))
		}
	}
}

// TestFleetKeyRotation rotates the keyring with the fleet up (install, use, remove) and checks
// that membership holds throughout, the files follow, and the old key no longer gets in.
func TestFleetKeyRotation(t *testing.T) {
	l := newLab(t, 4)
	fleet := names(3)
	for _, n := range fleet {
		l.start(n, nil, "test", "")
	}
	l.waitMembers(fleet, allState(fleet, "alive"), 30*time.Second)
	oldKey, err := os.ReadFile(l.keyring)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(l.bin, "gossip", "keygen").Output()
	if err != nil {
		t.Fatal(err)
	}
	newK := strings.TrimSpace(string(out))
	for _, step := range [][]string{{"install", newK}, {"use", newK}, {"remove", strings.TrimSpace(string(oldKey))}} {
		out, err := l.cli("n2", append([]string{"gossip", "keys"}, step...)...)
		if err != nil {
			t.Fatalf("gossip keys %s: %v", step[0], err)
		}
		for _, n := range fleet {
			if !strings.Contains(string(out), n+": ok") {
				t.Errorf("gossip keys %s: no ok from %s:\n%s", step[0], n, out)
			}
		}
		l.waitMembers(fleet, allState(fleet, "alive"), 10*time.Second)
	}
	out, err = l.cli("n1", "gossip", "keys", "list")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(out), newK+" (primary)") != 3 || strings.Contains(string(out), strings.TrimSpace(string(oldKey))) {
		t.Errorf("gossip keys list after the rotation:\n%s", out)
	}
	for _, n := range fleet {
		b, err := os.ReadFile(filepath.Join(l.lab.Dir(), n+".key"))
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				keys = append(keys, line)
			}
		}
		if fmt.Sprint(keys) != fmt.Sprint([]string{newK}) {
			t.Errorf("%s's keyring file after the rotation: %q, want only the new key", n, b)
		}
	}
	// A node with only the old key stays out.
	l.start("n4", nil, "test", "")
	time.Sleep(5 * time.Second)
	ms, err := l.members("n1")
	if err != nil {
		t.Fatal(err)
	}
	if got := states(ms); got != l.want(allState(fleet, "alive")) {
		t.Errorf("members on n1 after a node with the removed key tried to join: %s", got)
	}
}
