package balancer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/config"
	"vigil/lb"
	"vigil/lb/check"
	"vigil/lb/ipvsnet"
	"vigil/telemetry"
	"vigil/telemetry/events"
	"vigil/vrrp/policy"
	"vigil/vrrp/track"
)

// memKernel is an in-memory IPVS table (lb.Table.Apply refuses what the
// kernel would).
type memKernel struct {
	mu     sync.Mutex
	t      lb.Table
	ops    int
	dumps  int
	closed bool
	syncd  map[ipvsnet.SyncState]ipvsnet.SyncDaemon
	// timeouts as last set (SetTimeouts)
	timeouts ipvsnet.Timeouts
}

func (k *memKernel) Dump() (lb.Table, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dumps++
	return k.t.Clone(), nil
}

func (k *memKernel) Services() (lb.Table, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := make(lb.Table, len(k.t))
	for key, e := range k.t {
		t[key] = lb.Entry{Service: e.Service}
	}
	return t, nil
}

func (k *memKernel) Apply(ops []lb.Op) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	t, err := k.t.Apply(ops)
	if err != nil {
		return err
	}
	k.t, k.ops = t, k.ops+len(ops)
	return nil
}

func (k *memKernel) Close() { k.mu.Lock(); k.closed = true; k.mu.Unlock() }

func (k *memKernel) SetTimeouts(t ipvsnet.Timeouts) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.timeouts = t
	return nil
}

// Stats gives every service and destination counters derived from its
// port, so a test can tell them apart.
func (k *memKernel) Stats() (lb.Table, lb.Stats, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := lb.Stats{Services: map[lb.ServiceKey]lb.Counters{}, Dests: map[lb.ServiceKey]map[lb.DestKey]lb.DestCounters{}}
	for key, e := range k.t {
		st.Services[key] = lb.Counters{Conns: uint64(key.Port), InBytes: 1000 * uint64(key.Port)}
		st.Dests[key] = map[lb.DestKey]lb.DestCounters{}
		for dk := range e.Dests {
			st.Dests[key][dk] = lb.DestCounters{Counters: lb.Counters{Conns: uint64(dk.Port)}, ActiveConns: 3, InactConns: 4}
		}
	}
	return k.t.Clone(), st, nil
}

func (k *memKernel) StartSyncDaemon(d ipvsnet.SyncDaemon) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.syncd == nil {
		k.syncd = map[ipvsnet.SyncState]ipvsnet.SyncDaemon{}
	}
	k.syncd[d.State] = d
	return nil
}

func (k *memKernel) StopSyncDaemon(s ipvsnet.SyncState) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.syncd, s)
	return nil
}

// daemons lists the running sync daemons as "master eth0 51".
func (k *memKernel) daemons() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, s := range []ipvsnet.SyncState{ipvsnet.SyncMaster, ipvsnet.SyncBackup} {
		if d, ok := k.syncd[s]; ok {
			out = append(out, fmt.Sprintf("%s %s %d", map[ipvsnet.SyncState]string{ipvsnet.SyncMaster: "master", ipvsnet.SyncBackup: "backup"}[s], d.Interface, d.SyncID))
		}
	}
	return out
}

func (k *memKernel) dests(key lb.ServiceKey) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.t[key]
	if !ok {
		return "absent"
	}
	s := ""
	for _, d := range e.SortedDests() {
		s += fmt.Sprintf("%s/%d ", netip.AddrPortFrom(d.Addr, d.Port), d.Weight)
	}
	return s
}

// testBalancer is a balancer on kernel k with metrics m, logging nowhere.
func testBalancer(k ipvsKernel, m *telemetry.LB) *Balancer {
	return newBalancer(Config{Log: slog.New(slog.DiscardHandler), Metrics: m}, k)
}

// runBalancer runs b until the returned stop is called; stop fails the
// test if run returned an error.
func runBalancer(t *testing.T, b *Balancer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// flagFile is a file check's file holding "0" (up); write "1" to fail it.
func flagFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	// Checks run every 20 ms; 10 s only bounds a wait on a loaded machine.
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The balancer converges the kernel on the desired table as checks change,
// reports quorum through the virtual server's feed, leaves services it did
// not create alone, removes a service a reload drops, and clears what it
// manages on stop (keepalived's behaviour without -I).
func TestBalancer(t *testing.T) {
	r1, r2 := flagFile(t, "r1"), flagFile(t, "r2")
	doc := func(withAPI bool) *config.Config {
		y := fmt.Sprintf(`node: {name: lb1}
lb:
  virtual_servers:
    - name: web
      address: 192.0.2.100:80
      protocol: tcp
      quorum: 2
      real_servers:
        - {address: "198.51.100.11:8080", check: {type: file, file: %q, interval: 20ms, warmup: 0s, fall: 1}}
        - {address: "198.51.100.12:8080", check: {type: file, file: %q, interval: 20ms, warmup: 0s, fall: 1}}
`, r1, r2)
		if withAPI {
			y += `    - {name: api, address: "192.0.2.100:443", protocol: tcp, real_servers: [{address: "198.51.100.11:8443"}]}` + "\n"
		}
		c, err := config.Parse([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	foreign := lb.ServiceKey{Family: lb.IPv4, Protocol: lb.UDP, Addr: netip.MustParseAddr("203.0.113.7"), Port: 53}
	k := &memKernel{t: lb.Table{foreign: {Service: lb.Service{Key: foreign, Scheduler: "rr"}.Normal(), Dests: map[lb.DestKey]lb.Dest{}}}}
	// The quorum reaches the VRRP tracker of the virtual server as node
	// wires it: a feed per virtual server.
	feed := track.NewFeed(policy.KindVirtualServer, "web", track.Update{Up: true, Detail: "not checked yet"})
	quorum := func(vs string, up bool, detail string) {
		if vs == "web" {
			feed.Set(up, detail)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := newBalancer(Config{Log: log, Metrics: telemetry.NewRegistry().LB, Quorum: quorum}, k)
	if err := b.Set(doc(true).LB); err != nil {
		t.Fatal(err)
	}
	web := lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}
	api := lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 443}

	stop := runBalancer(t, b)
	states := make(chan track.Update, 16)
	fctx, fcancel := context.WithCancel(context.Background())
	defer fcancel()
	go feed.Run(fctx, func(u track.Update) { states <- u })
	nextState := func(want bool) {
		t.Helper()
		select {
		case u := <-states:
			if u.Up != want {
				t.Fatalf("web quorum feed: %+v, want up=%v", u, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no quorum report (want up=%v)", want)
		}
	}

	both := "198.51.100.11:8080/1 198.51.100.12:8080/1 "
	waitFor(t, "web with both real servers", func() bool { return k.dests(web) == both })
	waitFor(t, "api", func() bool { return k.dests(api) == "198.51.100.11:8443/1 " })
	nextState(true)

	// r2 fails: removed; the live weight (1) is below quorum 2, but with
	// no sorry server the table keeps r1 and only the feed goes down.
	// Health changes diff against the table as vigil left it: no dump.
	k.mu.Lock()
	dumps := k.dumps
	k.mu.Unlock()
	os.WriteFile(r2, []byte("1\n"), 0o644)
	waitFor(t, "r2 removed", func() bool { return k.dests(web) == "198.51.100.11:8080/1 " })
	nextState(false)
	os.WriteFile(r2, []byte("0\n"), 0o644)
	waitFor(t, "r2 back", func() bool { return k.dests(web) == both })
	nextState(true)
	k.mu.Lock()
	if k.dumps != dumps {
		t.Errorf("%d kernel dumps for two health changes, want none", k.dumps-dumps)
	}
	k.mu.Unlock()

	// A reload without api removes it; the foreign service stays.
	if err := b.Set(doc(false).LB); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "api removed", func() bool { return k.dests(api) == "absent" })
	if k.dests(foreign) != "" {
		t.Fatalf("foreign service touched: %q", k.dests(foreign))
	}

	stop()
	if k.dests(web) != "absent" || k.dests(foreign) != "" || !k.closed {
		t.Fatalf("after stop: web %q, foreign %q, closed %v", k.dests(web), k.dests(foreign), k.closed)
	}
}

// The sync daemon runs as master while its instance is master and as
// backup otherwise, never both; stop ends it.
func TestBalancerSyncDaemon(t *testing.T) {
	k := &memKernel{t: lb.Table{}}
	b := testBalancer(k, telemetry.NewRegistry().LB)
	if err := b.Set(config.LB{SyncDaemon: &config.SyncDaemon{Interface: "eth0", Instance: "vip", SyncID: 51}}); err != nil {
		t.Fatal(err)
	}
	stop := runBalancer(t, b)
	is := func(want ...string) func() bool {
		return func() bool { return fmt.Sprint(k.daemons()) == fmt.Sprint(want) }
	}
	waitFor(t, "backup daemon at start", is("backup eth0 51"))
	b.SetSyncRole(true)
	waitFor(t, "master daemon once master", is("master eth0 51"))
	b.SetSyncRole(false)
	waitFor(t, "backup daemon again", is("backup eth0 51"))
	stop()
	if d := k.daemons(); len(d) != 0 {
		t.Fatalf("daemons after stop: %v", d)
	}
}

// Someone deletes a service behind vigil's back: the periodic resync reads
// the kernel and puts it back.
func TestBalancerResync(t *testing.T) {
	c, err := config.Parse([]byte(`node: {name: lb1}
lb: {virtual_servers: [{name: web, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: "198.51.100.11:8080"}]}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	k := &memKernel{t: lb.Table{}}
	b := testBalancer(k, telemetry.NewRegistry().LB)
	b.resync = 100 * time.Millisecond
	if err := b.Set(c.LB); err != nil {
		t.Fatal(err)
	}
	stop := runBalancer(t, b)
	web := lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}
	want := "198.51.100.11:8080/1 "
	waitFor(t, "web", func() bool { return k.dests(web) == want })
	k.mu.Lock()
	delete(k.t, web)
	k.mu.Unlock()
	waitFor(t, "web restored by the resync", func() bool { return k.dests(web) == want })
	stop()
}

// The managed set survives a restart: a run that keeps its table at stop
// (lb.on_stop: keep) records its services, and the next run, whose config
// dropped one of them, removes it and nothing else. A stop that removes
// the services forgets them.
func TestBalancerRemembersAcrossRestart(t *testing.T) {
	state := filepath.Join(t.TempDir(), "run", "ipvs-managed.json")
	doc := func(extra string, withAPI bool) config.LB {
		y := "node: {name: lb1}\nlb:\n" + extra + "  virtual_servers:\n" +
			`    - {name: web, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: "198.51.100.11:8080"}]}` + "\n"
		if withAPI {
			y += `    - {name: api, address: "192.0.2.100:443", protocol: tcp, real_servers: [{address: "198.51.100.11:8443"}]}` + "\n"
		}
		c, err := config.Parse([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return c.LB
	}
	foreign := lb.ServiceKey{Family: lb.IPv4, Protocol: lb.UDP, Addr: netip.MustParseAddr("203.0.113.7"), Port: 53}
	web := lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}
	api := lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 443}
	k := &memKernel{t: lb.Table{foreign: {Service: lb.Service{Key: foreign, Scheduler: "rr"}.Normal(), Dests: map[lb.DestKey]lb.Dest{}}}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	run := func(c config.LB, until func() bool, what string) {
		t.Helper()
		b := newBalancer(Config{Log: log, Metrics: telemetry.NewRegistry().LB}, k)
		b.remember(state)
		if err := b.Set(c); err != nil {
			t.Fatal(err)
		}
		stop := runBalancer(t, b)
		waitFor(t, what, until)
		stop()
	}
	recorded := func() []lb.ServiceKey {
		t.Helper()
		m, err := loadManaged(state)
		if err != nil {
			t.Fatal(err)
		}
		return slices.SortedFunc(maps.Keys(m), lb.CompareServiceKeys)
	}

	run(doc("  on_stop: keep\n", true), func() bool { return k.dests(api) != "absent" && k.dests(web) != "absent" }, "web and api")
	if k.dests(web) == "absent" || k.dests(api) == "absent" {
		t.Fatalf("on_stop keep removed services: web %q api %q", k.dests(web), k.dests(api))
	}
	if got := recorded(); fmt.Sprint(got) != fmt.Sprint([]lb.ServiceKey{web, api}) {
		t.Fatalf("recorded %v, want web and api", got)
	}

	// Next run: api is no longer configured. It was vigil's: removed.
	run(doc("  on_stop: keep\n", false), func() bool { return k.dests(api) == "absent" }, "api removed by the next run")
	if k.dests(web) == "absent" || k.dests(foreign) != "" {
		t.Fatalf("web %q, foreign %q: want both kept", k.dests(web), k.dests(foreign))
	}
	if got := recorded(); fmt.Sprint(got) != fmt.Sprint([]lb.ServiceKey{web}) {
		t.Fatalf("recorded %v, want web only", got)
	}

	// A run that removes its services at stop leaves no record.
	run(doc("", false), func() bool { return k.dests(web) != "absent" }, "web")
	if k.dests(web) != "absent" || k.dests(foreign) != "" {
		t.Fatalf("after stop: web %q, foreign %q", k.dests(web), k.dests(foreign))
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("state file after a removing stop: %v", err)
	}
}

// lb.foreign_services: remove makes vigil own the whole table: a service
// it never created goes at start and stays gone; stop empties the table.
// lb.timeouts reach the kernel once.
func TestBalancerForeignRemoveAndTimeouts(t *testing.T) {
	c, err := config.Parse([]byte(`node: {name: lb1}
lb:
  foreign_services: remove
  timeouts: {tcp: 900s, udp: 30s}
  virtual_servers: [{name: web, address: "192.0.2.100:80", protocol: tcp, real_servers: [{address: "198.51.100.11:8080"}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	foreign := lb.ServiceKey{Family: lb.IPv4, Protocol: lb.UDP, Addr: netip.MustParseAddr("203.0.113.7"), Port: 53}
	web := lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}
	k := &memKernel{t: lb.Table{foreign: {Service: lb.Service{Key: foreign, Scheduler: "rr"}.Normal(), Dests: map[lb.DestKey]lb.Dest{}}}}
	b := testBalancer(k, telemetry.NewRegistry().LB)
	if err := b.Set(c.LB); err != nil {
		t.Fatal(err)
	}
	stop := runBalancer(t, b)
	waitFor(t, "web in, foreign out", func() bool { return k.dests(web) != "absent" && k.dests(foreign) == "absent" })
	k.mu.Lock()
	if want := (ipvsnet.Timeouts{TCP: 900 * time.Second, UDP: 30 * time.Second}); k.timeouts != want {
		t.Errorf("timeouts %+v, want %+v", k.timeouts, want)
	}
	k.mu.Unlock()
	stop()
	if len(k.t) != 0 {
		t.Fatalf("table after stop: %v", k.t.Keys())
	}
}

// Configured pages, regexes and HELO names reach lb/check's spec, which
// accepts them.
func TestCheckSpecPagesAndSMTP(t *testing.T) {
	c, err := config.Parse([]byte(`node: {name: lb1}
lb:
  virtual_servers:
    - name: web
      address: 192.0.2.100:80
      protocol: tcp
      real_servers:
        - address: 198.51.100.11:8080
          check: {type: http, urls: [{path: /a, status: 204}, {path: /b, regex: up, regex_no_match: true, digest: "sha256:` + strings.Repeat("ab", 32) + `"}]}
        - address: 198.51.100.12:8080
          check: {type: https, path: /x, regex: "ok$"}
        - address: 198.51.100.13:25
          check: {type: smtp, helo_name: lb1.example.org}
`))
	if err != nil {
		t.Fatal(err)
	}
	rs := c.LB.VirtualServers[0].Reals
	multi, single, smtp := checkSpec(rs[0].Checks[0], false), checkSpec(rs[1].Checks[0], false), checkSpec(rs[2].Checks[0], false)
	if len(multi.URLs) != 2 || multi.URLs[0].Path != "/a" || !slices.Equal(multi.URLs[0].Status, []check.StatusRange{{Lo: 204, Hi: 204}}) ||
		multi.URLs[1].Regex != "up" || !multi.URLs[1].RegexNoMatch || multi.URLs[1].Digest != strings.Repeat("ab", 32) || multi.Path != "" {
		t.Errorf("urls: %+v", multi)
	}
	if single.Path != "/x" || single.Regex != "ok$" || len(single.URLs) != 0 {
		t.Errorf("single page: %+v", single)
	}
	if smtp.Type != check.SMTP || smtp.HeloName != "lb1.example.org" || smtp.Target.Port() != 25 {
		t.Errorf("smtp: %+v", smtp)
	}
	b := testBalancer(&memKernel{t: lb.Table{}}, telemetry.NewRegistry().LB)
	if err := b.Set(c.LB); err != nil {
		t.Fatalf("lb/check refuses the mapped specs: %v", err)
	}
}

// A real server going down and up, and the quorum it takes with it, reach
// the event bus in keepalived's notation (notify scripts, the FIFO); node's
// TestLBScripts shows the configured notify commands reach the notifier by
// the same names.
func TestBalancerPublishesLBEvents(t *testing.T) {
	r2 := flagFile(t, "r2")
	c, err := config.Parse([]byte(fmt.Sprintf(`node: {name: lb1}
lb:
  virtual_servers:
    - name: web
      address: 192.0.2.100:80
      protocol: tcp
      quorum: 2
      real_servers:
        - {address: "198.51.100.11:8080"}
        - {address: "198.51.100.12:8080", check: {type: file, file: %q, interval: 20ms, warmup: 0s, fall: 1}}
`, r2)))
	if err != nil {
		t.Fatal(err)
	}
	k := &memKernel{t: lb.Table{}}
	b := testBalancer(k, telemetry.NewRegistry().LB)
	ev := recordEvents(b)
	seen := ev.lines
	if err := b.Set(c.LB); err != nil {
		t.Fatal(err)
	}
	stop := runBalancer(t, b)
	web := lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}
	waitFor(t, "web", func() bool { return k.dests(web) == "198.51.100.11:8080/1 198.51.100.12:8080/1 " })
	os.WriteFile(r2, []byte("1\n"), 0o644)
	down := "RS [198.51.100.12]:tcp:8080 [192.0.2.100]:tcp:80 DOWN; VS [192.0.2.100]:tcp:80 DOWN"
	waitFor(t, "down events", func() bool { return seen() == down })
	os.WriteFile(r2, []byte("0\n"), 0o644)
	waitFor(t, "up events", func() bool {
		return seen() == down+"; RS [198.51.100.12]:tcp:8080 [192.0.2.100]:tcp:80 UP; VS [192.0.2.100]:tcp:80 UP"
	})
	stop()
}

// A virtual server with addresses (keepalived's virtual_server_group) is
// one kernel service per address, each with the same destinations; a real
// server's failure changes all of them; a reload that shrinks the group
// removes the dropped member; quorum is exported for every member.
func TestBalancerGroup(t *testing.T) {
	r2 := flagFile(t, "r2")
	doc := func(addrs string) config.LB {
		c, err := config.Parse([]byte(fmt.Sprintf(`node: {name: lb1}
lb:
  virtual_servers:
    - name: web
      addresses: [%s]
      protocol: tcp
      real_servers:
        - {address: "198.51.100.11:8080"}
        - {address: "198.51.100.12:8080", check: {type: file, file: %q, interval: 20ms, warmup: 0s, fall: 1}}
`, addrs, r2)))
		if err != nil {
			t.Fatal(err)
		}
		return c.LB
	}
	reg := telemetry.NewRegistry()
	k := &memKernel{t: lb.Table{}}
	b := testBalancer(k, reg.LB)
	if err := b.Set(doc(`"192.0.2.100-102:80"`)); err != nil {
		t.Fatal(err)
	}
	stop := runBalancer(t, b)
	key := func(last int) lb.ServiceKey {
		return lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(last)}), Port: 80}
	}
	all := func(want string) func() bool {
		return func() bool {
			return k.dests(key(100)) == want && k.dests(key(101)) == want && k.dests(key(102)) == want
		}
	}
	both := "198.51.100.11:8080/1 198.51.100.12:8080/1 "
	waitFor(t, "three services with both real servers", all(both))
	os.WriteFile(r2, []byte("1\n"), 0o644)
	waitFor(t, "r2 gone from every member", all("198.51.100.11:8080/1 "))
	os.WriteFile(r2, []byte("0\n"), 0o644)
	waitFor(t, "r2 back in every member", all(both))
	if q := series(t, reg, "vigil_virtual_server_quorum_up"); len(q) != 3 {
		t.Errorf("quorum series: %v, want one per member", q)
	}
	if err := b.Set(doc(`"192.0.2.100:80", "192.0.2.101:80"`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dropped member removed", func() bool { return k.dests(key(102)) == "absent" })
	if k.dests(key(100)) != both || k.dests(key(101)) != both {
		t.Errorf("remaining members: %q %q", k.dests(key(100)), k.dests(key(101)))
	}
	waitFor(t, "the dropped member's quorum series gone", func() bool { return len(series(t, reg, "vigil_virtual_server_quorum_up")) == 2 })
	if st := b.Status(); len(st) != 1 || st[0].Service != "tcp 192.0.2.100:80, tcp 192.0.2.101:80" {
		t.Errorf("status: %+v", st)
	}
	stop()
}

// Health changes are reconciled incrementally (only the virtual servers of
// the real servers whose checks changed, against the table vigil last
// left): after rounds of random failures and recoveries across many
// virtual servers, the kernel equals the full desired table, and the
// kernel was never read.
func TestBalancerIncrementalMatchesFull(t *testing.T) {
	const nVS, nRS = 12, 3
	flags := map[string]string{}
	var y strings.Builder
	y.WriteString("node: {name: lb1}\nlb:\n  virtual_servers:\n")
	for i := range nVS {
		fmt.Fprintf(&y, "    - name: vs%d\n      address: 192.0.2.%d:80\n      protocol: tcp\n      inhibit_on_failure: %v\n      real_servers:\n", i, 10+i, i%2 == 0)
		for j := range nRS {
			f := flagFile(t, fmt.Sprintf("vs%d-rs%d", i, j))
			flags[fmt.Sprintf("%d/%d", i, j)] = f
			fmt.Fprintf(&y, "        - {address: \"198.51.100.%d:8080\", check: {type: file, file: %q, interval: 20ms, warmup: 0s, fall: 1}}\n", 11+j, f)
		}
	}
	c, err := config.Parse([]byte(y.String()))
	if err != nil {
		t.Fatal(err)
	}
	k := &memKernel{t: lb.Table{}}
	b := testBalancer(k, telemetry.NewRegistry().LB)
	if err := b.Set(c.LB); err != nil {
		t.Fatal(err)
	}
	stop := runBalancer(t, b)
	defer stop()
	matches := func() bool {
		b.mu.Lock()
		specs := b.specs
		b.mu.Unlock()
		want, _ := lb.Desired(specs, b.checks.View(), nil)
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.t.Normal().Equal(want)
	}
	waitFor(t, "the first full pass", matches)
	k.mu.Lock()
	dumps := k.dumps
	k.mu.Unlock()
	r := rand.New(rand.NewPCG(5, 6))
	for round := range 8 {
		for range 6 {
			f := flags[fmt.Sprintf("%d/%d", r.IntN(nVS), r.IntN(nRS))]
			os.WriteFile(f, []byte(fmt.Sprintf("%d\n", r.IntN(2))), 0o644)
		}
		time.Sleep(60 * time.Millisecond) // a few probe intervals
		waitFor(t, fmt.Sprintf("round %d converged", round), matches)
	}
	k.mu.Lock()
	if k.dumps != dumps {
		t.Errorf("%d kernel dumps during health changes, want none", k.dumps-dumps)
	}
	k.mu.Unlock()
}

// notify: {omega: true} (keepalived omega): at stop, the virtual server's
// live real servers and its quorum are reported down; one without omega,
// and a real server already down, are not.
func TestBalancerOmega(t *testing.T) {
	r2 := flagFile(t, "r2")
	os.WriteFile(r2, []byte("1\n"), 0o644) // r2 starts failing
	c, err := config.Parse([]byte(fmt.Sprintf(`node: {name: lb1}
lb:
  virtual_servers:
    - name: web
      address: 192.0.2.100:80
      protocol: tcp
      notify: {omega: true}
      real_servers:
        - {address: "198.51.100.11:8080"}
        - {address: "198.51.100.12:8080", check: {type: file, file: %q, interval: 20ms, warmup: 0s, fall: 1}}
    - {name: api, address: "192.0.2.100:443", protocol: tcp, real_servers: [{address: "198.51.100.11:8443"}]}
`, r2)))
	if err != nil {
		t.Fatal(err)
	}
	if !c.LB.VirtualServers[0].Notify.Omega || c.LB.VirtualServers[1].Notify.Omega {
		t.Fatalf("omega parsed as %v, %v", c.LB.VirtualServers[0].Notify.Omega, c.LB.VirtualServers[1].Notify.Omega)
	}
	k := &memKernel{t: lb.Table{}}
	b := testBalancer(k, telemetry.NewRegistry().LB)
	ev := recordEvents(b)
	if err := b.Set(c.LB); err != nil {
		t.Fatal(err)
	}
	stop := runBalancer(t, b)
	web := lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}
	waitFor(t, "web without r2", func() bool { return k.dests(web) == "198.51.100.11:8080/1 " })
	ev.reset()
	b.Omega(c.LB.VirtualServers)
	stop()
	want := "RS [198.51.100.11]:tcp:8080 [192.0.2.100]:tcp:80 DOWN; VS [192.0.2.100]:tcp:80 DOWN"
	if s := ev.lines(); s != want {
		t.Fatalf("at stop: %q, want %q", s, want)
	}
}

// lb.rs_init_notifies (keepalived's): real servers that start up are
// reported UP once, at the first pass and when a reload adds one; an alpha
// real server (down until checked) is not, and without the option nothing
// is reported until a real change.
func TestBalancerRSInitNotifies(t *testing.T) {
	doc := func(init bool, extra string) config.LB {
		c, err := config.Parse([]byte(fmt.Sprintf(`node: {name: lb1}
lb:
  rs_init_notifies: %v
  virtual_servers:
    - name: web
      address: 192.0.2.100:80
      protocol: tcp
      real_servers:
        - {address: "198.51.100.11:8080"}
        - {address: "198.51.100.12:8080", alpha: true, check: {type: tcp, interval: 1h, warmup: 1h}}%s
`, init, extra)))
		if err != nil {
			t.Fatal(err)
		}
		return c.LB
	}
	for _, init := range []bool{true, false} {
		t.Run(fmt.Sprint("rs_init_notifies ", init), func(t *testing.T) {
			k := &memKernel{t: lb.Table{}}
			b := testBalancer(k, telemetry.NewRegistry().LB)
			ev := recordEvents(b)
			if err := b.Set(doc(init, "")); err != nil {
				t.Fatal(err)
			}
			b.reconcile(true)
			b.reconcile(false) // a second pass reports nothing again
			want := ""
			if init {
				want = "RS [198.51.100.11]:tcp:8080 [192.0.2.100]:tcp:80 UP"
			}
			if got := ev.lines(); got != want {
				t.Errorf("at start: %q, want %q", got, want)
			}
			ev.reset()
			if err := b.Set(doc(init, "\n        - {address: \"198.51.100.13:8080\"}")); err != nil {
				t.Fatal(err)
			}
			b.reconcile(false)
			if want != "" {
				want = "RS [198.51.100.13]:tcp:8080 [192.0.2.100]:tcp:80 UP"
			}
			if got := ev.lines(); got != want {
				t.Errorf("after the reload that adds r3: %q, want %q", got, want)
			}
			b.rsMu.Lock()
			for id, tr := range b.rsUp {
				if tr.toUp != 0 || tr.toDown != 0 {
					t.Errorf("%v: a first report counted as a transition: %+v", id, tr)
				}
			}
			b.rsMu.Unlock()
		})
	}
}

// eventRecorder keeps the balancer's published events as keepalived's
// FIFO lines.
type eventRecorder struct {
	mu  sync.Mutex
	got []string
}

func recordEvents(b *Balancer) *eventRecorder {
	r := &eventRecorder{}
	b.publish = func(e events.Event) {
		line, _ := events.KeepalivedLine(e)
		r.mu.Lock()
		r.got = append(r.got, strings.TrimSpace(line))
		r.mu.Unlock()
	}
	return r
}

// lines joins the lines so far with "; ".
func (r *eventRecorder) lines() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.got, "; ")
}

func (r *eventRecorder) reset() {
	r.mu.Lock()
	r.got = nil
	r.mu.Unlock()
}
