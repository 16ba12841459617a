package gossip

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"vigil/internal/testlog"

	"github.com/hashicorp/memberlist"
)

// The alive delegate's rule (issue 13: refuse peers of another cluster or
// an incompatible protocol version).
func TestCheckMeta(t *testing.T) {
	tests := []struct {
		name    string
		meta    []byte
		cluster string
		ok      bool
	}{
		{"own meta", encodeMeta("prod", false), "prod", true},
		{"leaving flag does not matter", encodeMeta("prod", true), "prod", true},
		{"empty cluster name on both", encodeMeta("", false), "", true},
		{"newer protocol that still speaks ours", []byte("vigil\x07\x00prod"), "prod", true},
		{"no meta (not vigil)", nil, "prod", false},
		{"other magic", []byte("vigiL\x01\x00prod"), "prod", false},
		{"truncated header", []byte("vigil\x01"), "prod", false},
		{"protocol 0, older than our minimum", []byte("vigil\x00\x00prod"), "prod", false},
		{"other cluster", encodeMeta("staging", false), "prod", false},
		{"cluster name prefix only", encodeMeta("pro", false), "prod", false},
	}
	for _, tt := range tests {
		err := checkMeta(tt.meta, tt.cluster)
		if (err == nil) != tt.ok {
			t.Errorf("%s: checkMeta(%q, %q) = %v, want ok %v", tt.name, tt.meta, tt.cluster, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrPeerRefused) {
			t.Errorf("%s: error %v does not wrap ErrPeerRefused", tt.name, err)
		}
	}
	if !metaLeaving(encodeMeta("prod", true)) || metaLeaving(encodeMeta("prod", false)) || metaLeaving(nil) {
		t.Error("metaLeaving does not read the leaving flag")
	}
	// memberlist refuses to start a node whose meta is over MetaMaxSize.
	if n := len(encodeMeta(strings.Repeat("x", memberlist.LabelMaxSize), true)); n >= memberlist.MetaMaxSize {
		t.Errorf("meta with the longest label is %d bytes, not under MetaMaxSize %d", n, memberlist.MetaMaxSize)
	}
}

// The log line memberlist v0.7.0 writes when this node's probe makes a
// member suspect (state.go probeNode) is the only sign of it.
func TestSuspectName(t *testing.T) {
	tests := []struct {
		line string
		name string
		ok   bool
	}{
		{"[INFO] memberlist: Suspect n1 has failed, no acks received\n", "n1", true},
		{"[INFO] memberlist: Suspect lb-2.example has failed, no acks received", "lb-2.example", true},
		{"[INFO] memberlist: Marking n1 as failed, suspect timeout reached (0 peer confirmations)", "", false},
		{"[INFO] memberlist: Suspect  has failed, no acks received", "", false},
		{"[DEBUG] memberlist: Failed UDP ping: n1 (timeout reached)", "", false},
	}
	for _, tt := range tests {
		name, ok := suspectName([]byte(tt.line))
		if name != tt.name || ok != tt.ok {
			t.Errorf("suspectName(%q) = %q, %v; want %q, %v", tt.line, name, ok, tt.name, tt.ok)
		}
	}
}

// Rejoin retries the join-list entries that are not live members (issue
// 13: periodic rejoin of the join list); names are always retried.
func TestJoinTargets(t *testing.T) {
	live := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:7946"), netip.MustParseAddrPort("192.0.2.2:7946")}
	tests := []struct {
		join, want []string
	}{
		{nil, nil},
		{[]string{"192.0.2.1:7946", "192.0.2.2:7946"}, nil},
		{[]string{"192.0.2.1:7946", "192.0.2.3:7946"}, []string{"192.0.2.3:7946"}},
		{[]string{"192.0.2.1:7947"}, []string{"192.0.2.1:7947"}},     // another port: another node
		{[]string{"lb1.example:7946"}, []string{"lb1.example:7946"}}, // a name: cannot tell, retried
		{[]string{"[::ffff:192.0.2.2]:7946"}, nil},                   // mapped IPv4 is the same address
	}
	for _, tt := range tests {
		if got := joinTargets(tt.join, live); !slices.Equal(got, tt.want) {
			t.Errorf("joinTargets(%v) = %v, want %v", tt.join, got, tt.want)
		}
	}
}

func waitMembers(t *testing.T, what string, n int, nodes ...*testNode) {
	t.Helper()
	eventually(t, what, func() bool {
		for _, x := range nodes {
			if x.c.ml.NumMembers() != n {
				return false
			}
		}
		return true
	})
}

// MemberStates reports a graceful leave as left, a node killed without
// leaving as suspect (this node's probe failed) and then dead; self is in
// the list.
func TestMemberStates(t *testing.T) {
	nw := newMemNet()
	var ns []*testNode
	for _, name := range []string{"n0", "n1", "n2"} {
		ns = append(ns, newNode(t, nw, name, func(o *Options) { o.Timing.SuspicionMult = 4 }, nil))
	}
	for _, n := range ns {
		n.run(t)
	}
	for _, n := range ns[1:] {
		if _, err := n.c.Join([]string{ns[0].tr.addr}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "3 alive on every node", func() bool { return alive(ns...) == 9 })
	if m, _ := ns[0].state("n1"); m.Addr.String() != ns[1].tr.addr {
		t.Errorf("n1's address on n0 is %v, want %s", m.Addr, ns[1].tr.addr)
	}

	ns[2].stop()
	eventually(t, "n2 left on n0", func() bool { m, _ := ns[0].state("n2"); return m.State == StateLeft })

	ns[1].kill()
	var seen []string
	eventually(t, "n1 dead on n0", func() bool {
		m, _ := ns[0].state("n1")
		if len(seen) == 0 || seen[len(seen)-1] != m.State {
			seen = append(seen, m.State)
		}
		return m.State == StateDead
	})
	if !slices.Contains(seen, StateSuspect) {
		t.Errorf("n1 went %v on n0, never suspect", seen)
	}
	got := ns[0].c.MemberStates()
	var names []string
	for _, m := range got {
		names = append(names, m.Name+"="+m.State)
	}
	if want := []string{"n0=alive", "n1=dead", "n2=left"}; !slices.Equal(names, want) {
		t.Errorf("MemberStates on n0 = %v, want %v", names, want)
	}
	st := ns[0].c.Stats()
	if st.Members[StateAlive] != 1 || st.Members[StateDead] != 1 || st.Members[StateLeft] != 1 {
		t.Errorf("Stats().Members = %v", st.Members)
	}
}

// Ping measures a live member and fails for a stopped one, an unknown
// name and this node itself.
func TestPing(t *testing.T) {
	nw := newMemNet()
	a := newNode(t, nw, "a", nil, nil).run(t)
	b := newNode(t, nw, "b", nil, func(c *ClusterConfig) { c.Join = []string{a.tr.addr} }).run(t)
	waitMembers(t, "a and b joined", 2, a, b)
	eventually(t, "b known to a's driver", func() bool { _, ok := a.state("b"); return ok })
	rtt, err := a.c.Ping("b")
	if err != nil || rtt < 0 || rtt > time.Second {
		t.Fatalf("Ping(b) = %v, %v; want a round-trip time", rtt, err)
	}
	for _, name := range []string{"nobody", "a"} {
		if _, err := a.c.Ping(name); err == nil {
			t.Errorf("Ping(%s) succeeded", name)
		}
	}
	b.kill()
	if rtt, err := a.c.Ping("b"); err == nil {
		t.Errorf("Ping of a stopped member answered in %v", rtt)
	}
}

// A partition long enough for both sides to declare each other dead and
// forget them (GossipToTheDead) heals into one fleet again only through
// the rejoin loop (issue 13; MetalLB #662 and Antrea #4491 hit it): with
// rejoin off the two halves stay apart.
func TestRejoinAfterPartition(t *testing.T) {
	for _, tt := range []struct {
		name   string
		rejoin time.Duration
		merged bool
	}{
		{"rejoin on", 100 * time.Millisecond, true},
		{"rejoin off", -1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nw := newMemNet()
			a := newNode(t, nw, "a", nil, nil)
			b := newNode(t, nw, "b", nil, func(c *ClusterConfig) {
				c.Join, c.Rejoin = []string{a.tr.addr}, tt.rejoin
			})
			a.run(t)
			b.run(t)
			waitMembers(t, "joined at start", 2, a, b)

			nw.partition(a.tr.addr, b.tr.addr, true)
			eventually(t, "each dead on the other", func() bool {
				ma, _ := a.state("b")
				mb, _ := b.state("a")
				return ma.State == StateDead && mb.State == StateDead
			})
			// memberlist reaps the dead after GossipToTheDead (500 ms):
			// from then on neither side sends the other anything.
			time.Sleep(1500 * time.Millisecond)
			nw.partition(a.tr.addr, b.tr.addr, false)

			if tt.merged {
				waitMembers(t, "re-merged", 2, a, b)
				eventually(t, "alive again in the driver", func() bool { return alive(a, b) == 4 })
				return
			}
			time.Sleep(2 * time.Second) // 6 push/pull and 20 probe intervals
			if n, m := a.c.ml.NumMembers(), b.c.ml.NumMembers(); n != 1 || m != 1 {
				t.Errorf("without rejoin the halves merged anyway (%d and %d members): the test does not see the fault", n, m)
			}
		})
	}
}

// Two fleets on one network never merge: another Label is refused by
// memberlist itself; the same Label with another vigil meta (another
// protocol) is refused by the alive delegate, counted, and never listed.
func TestOtherClusterRefused(t *testing.T) {
	nw := newMemNet()
	var aLog, aML testlog.Buffer
	a := newNode(t, nw, "a", func(o *Options) { o.Cluster = "prod"; o.Log = slog.New(slog.NewTextHandler(&aML, nil)) },
		func(cc *ClusterConfig) { cc.Log = slog.New(slog.NewTextHandler(&aLog, nil)) }).run(t)
	b := newNode(t, nw, "b", func(o *Options) { o.Cluster = "staging" }, nil).run(t)
	for range 3 {
		if n, err := b.c.Join([]string{a.tr.addr}); err == nil {
			t.Errorf("a node of another label joined (%d answered)", n)
		}
	}
	// memberlist drops the other label's streams before any delegate:
	// counted all the same, and logged once for that address, not once
	// per stream (memberlist's own line is not passed on).
	eventually(t, "the other label's streams counted", func() bool { return a.c.Refused() >= 3 })
	if n := strings.Count(aLog.String(), "gossip traffic of another fleet refused"); n != 1 || !strings.Contains(aLog.String(), `reason="cluster label"`) {
		t.Errorf("the other label's refusal logged %d times, want once with its reason:\n%s", n, aLog.String())
	}
	if strings.Contains(aML.String(), "unacceptable label") {
		t.Errorf("memberlist's own refusal lines were passed on:\n%s", aML.String())
	}
	refusedByLabel := a.c.Refused()

	// A peer with the right label but an incompatible meta: a bare
	// memberlist whose delegate advertises protocol 0.
	mc, err := MemberlistConfig(Options{Name: "old", Profile: "local", Cluster: "prod", Timing: fastTiming()})
	if err != nil {
		t.Fatal(err)
	}
	mc.Transport = nw.newTransport()
	mc.Delegate = metaDelegate("vigil\x00\x00prod")
	old, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = old.Shutdown() })
	if _, err := old.Join([]string{a.tr.addr}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "refusal counted", func() bool { return a.c.Refused() > refusedByLabel })
	time.Sleep(500 * time.Millisecond)
	for _, n := range []*testNode{a, b} {
		if ms := n.c.MemberStates(); len(ms) != 1 {
			t.Errorf("%s lists %v, want itself only", n.c.Self(), ms)
		}
		if got := n.c.ml.NumMembers(); got != 1 {
			t.Errorf("%s: memberlist has %d members, want 1", n.c.Self(), got)
		}
	}
	if a.c.Stats().Refused == 0 {
		t.Error("Stats().Refused is 0")
	}
}

type metaDelegate string

func (m metaDelegate) NodeMeta(int) []byte                 { return []byte(m) }
func (m metaDelegate) NotifyMsg([]byte)                    {}
func (m metaDelegate) GetBroadcasts(int, int) [][]byte     { return nil }
func (m metaDelegate) LocalState(bool) []byte              { return nil }
func (m metaDelegate) MergeRemoteState(buf []byte, _ bool) {}

// A node killed without leaving and restarted under its name at another
// address is alive at the new address on the others within a bounded
// time: DeadNodeReclaimTime (our default) lets memberlist take the new
// address once the old entry is dead (memberlist #157). GossipToTheDead is
// long here, so memberlist's reaping of the dead cannot be what lets it in:
// with a reclaim time of an hour the new address stays refused.
func TestRestartAtNewAddress(t *testing.T) {
	for _, tt := range []struct {
		name    string
		reclaim time.Duration // 0: the default
		within  time.Duration
		back    bool
	}{
		{"default reclaim time", 0, 10 * time.Second, true},
		{"reclaim after an hour", time.Hour, 4 * time.Second, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nw := newMemNet()
			opt := func(o *Options) { o.Timing.GossipToTheDead, o.Timing.DeadNodeReclaim = 30*time.Second, tt.reclaim }
			n0 := newNode(t, nw, "n0", opt, nil).run(t)
			join := func(c *ClusterConfig) { c.Join, c.Rejoin = []string{n0.tr.addr}, 100*time.Millisecond }
			n1 := newNode(t, nw, "n1", opt, join).run(t)
			old := newNode(t, nw, "n2", opt, join).run(t)
			waitMembers(t, "3 members", 3, n0, n1, old)
			old.kill()
			start := time.Now()
			re := newNode(t, nw, "n2", opt, join).run(t)
			back := func() bool {
				for _, n := range []*testNode{n0, n1} {
					if m, _ := n.state("n2"); m.State != StateAlive || m.Addr.String() != re.tr.addr {
						return false
					}
				}
				return true
			}
			for !back() && time.Since(start) < tt.within {
				time.Sleep(20 * time.Millisecond)
			}
			if got := back(); got != tt.back {
				m, _ := n0.state("n2")
				t.Fatalf("after %v: n2 back at its new address %v, want %v (n0 sees %+v)", time.Since(start).Round(time.Millisecond), got, tt.back, m)
			}
			t.Logf("after %v: n2 back at its new address: %v", time.Since(start).Round(time.Millisecond), tt.back)
		})
	}
}

// Stopping every node ends every goroutine the driver and memberlist
// started (issue 13: goroutine-leak checks on shutdown).
func TestNoGoroutineLeft(t *testing.T) {
	before := ours(nil) // an earlier test's leftovers are not this test's
	nw := newMemNet()
	a := newNode(t, nw, "a", nil, nil).run(t)
	b := newNode(t, nw, "b", nil, func(c *ClusterConfig) { c.Join = []string{a.tr.addr}; c.Rejoin = 50 * time.Millisecond }).run(t)
	waitMembers(t, "joined", 2, a, b)
	if err := a.c.Publish(KindHealth, "k", []byte("up")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "row on b", func() bool { return len(b.c.Get(KindHealth, "k")) == 1 })
	b.stop()
	a.stop()
	var left []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		left = ours(before)
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Errorf("%d goroutines of the driver or memberlist still run after shutdown:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// ours returns the stacks of goroutines running memberlist or the driver,
// except those whose header ("goroutine N [...]") is in skip.
func ours(skip []string) []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		id, _, _ := strings.Cut(g, " [")
		if slices.ContainsFunc(skip, func(s string) bool { return strings.HasPrefix(s, id+" [") }) {
			continue
		}
		if strings.Contains(g, "hashicorp/memberlist") || strings.Contains(g, "vigil/gossip.(*Cluster)") ||
			strings.Contains(g, "vigil/gossip.(*memTransport)") {
			out = append(out, g)
		}
	}
	return out
}

// countHandler counts the records whose message starts with prefix.
type countHandler struct {
	prefix string
	n      *atomic.Int64
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.prefix) {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// A join that keeps failing is logged once, not every Rejoin interval;
// the outcome's change (joined) is logged again once.
func TestRejoinLogsOncePerOutcome(t *testing.T) {
	nw := newMemNet()
	a := newNode(t, nw, "a", nil, nil).run(t)
	var failed, joined atomic.Int64
	lg := slog.New(multiHandler{countHandler{"gossip join failed", &failed}, countHandler{"gossip joined", &joined}})
	b := newNode(t, nw, "b", nil, func(c *ClusterConfig) { c.Join, c.Rejoin, c.Log = []string{a.tr.addr}, 20*time.Millisecond, lg })
	nw.partition(a.tr.addr, b.tr.addr, true)
	b.run(t)
	time.Sleep(300 * time.Millisecond) // 15 intervals
	if n := failed.Load(); n != 1 {
		t.Errorf("a failing join was logged %d times, want once", n)
	}
	nw.partition(a.tr.addr, b.tr.addr, false)
	waitMembers(t, "joined after the heal", 2, a, b)
	time.Sleep(100 * time.Millisecond)
	if n, m := failed.Load(), joined.Load(); n != 1 || m != 1 {
		t.Errorf("logged %d failures and %d joins, want 1 and 1", n, m)
	}
}

type multiHandler []slog.Handler

func (m multiHandler) Enabled(context.Context, slog.Level) bool { return true }
func (m multiHandler) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range m {
		_ = h.Handle(ctx, r)
	}
	return nil
}
func (m multiHandler) WithAttrs([]slog.Attr) slog.Handler { return m }
func (m multiHandler) WithGroup(string) slog.Handler      { return m }

// memberlist's lines for traffic of another fleet are recognised, with
// the sender's address; others are not.
func TestRefusedTraffic(t *testing.T) {
	for _, tc := range []struct {
		line, host, reason string
	}{
		{`[ERR] memberlist: discarding packet with unacceptable label "staging": from=192.0.2.12:7946`, "192.0.2.12", "cluster label"},
		{`[ERR] memberlist: discarding stream with unacceptable label "staging": from=192.0.2.12:41234`, "192.0.2.12", "cluster label"},
		{"[ERR] memberlist: Decrypt packet failed: No installed keys could decrypt the message from=[2001:db8::12]:7946\n", "2001:db8::12", "gossip key"},
		{"[ERR] memberlist: failed to receive: No installed keys could decrypt the message from=192.0.2.13:50012", "192.0.2.13", "gossip key"},
		{"[ERR] memberlist: failed to receive: Remote state is encrypted and encryption is not configured from=192.0.2.14:50012", "192.0.2.14", "gossip key"},
		{"[ERR] memberlist: failed to receive: EOF from=192.0.2.13:50012", "", ""},
		{"[DEBUG] memberlist: Stream connection from=192.0.2.13:50012", "", ""},
		{`[ERR] memberlist: discarding packet with unacceptable label "x"`, "", ""},
	} {
		host, reason, ok := refusedTraffic([]byte(tc.line))
		if host != tc.host || reason != tc.reason || ok != (tc.host != "") {
			t.Errorf("%q: %q, %q, %v; want %q, %q", tc.line, host, reason, ok, tc.host, tc.reason)
		}
	}
}
