package lbe2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"vigil/lb"
	"vigil/lb/ipvsnet"
	"vigil/test/netlab"
	"vigil/test/peer"
)

// The fleet: a client, two directors running vigil (VRRP for the VIP and
// the real servers' gateway, one sync group; IPVS for three NAT services
// and one DR service) and real servers, all on one bridge:
//
//	client 192.0.2.50          d1 192.0.2.11 + 198.51.100.2 (priority 150)
//	VIP    192.0.2.100         d2 192.0.2.12 + 198.51.100.3 (priority 100)
//	gw VIP 198.51.100.1        r1, r2 198.51.100.11/.12 :8080 (NAT), s1 .9 (sorry)
//	                           r3, r4 192.0.2.21/.22 :8090 with the VIP on lo (DR)
var (
	vip    = netip.MustParseAddr("192.0.2.100")
	gwVIP  = netip.MustParseAddr("198.51.100.1")
	r1Addr = netip.MustParseAddrPort("198.51.100.11:8080")
	r2Addr = netip.MustParseAddrPort("198.51.100.12:8080")
	s1Addr = netip.MustParseAddrPort("198.51.100.9:8080")
	r3Addr = netip.MustParseAddrPort("192.0.2.21:8090")
	r4Addr = netip.MustParseAddrPort("192.0.2.22:8090")
	r5Addr = netip.MustParseAddrPort("192.0.2.23:8090")
	webKey = lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: vip, Port: 80}
	inhKey = lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: vip, Port: 81}
	quoKey = lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: vip, Port: 82}
	// qin is quo with sorry_server_inhibit: the sorry server stays at
	// weight 0 while quorum holds.
	qinKey = lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: vip, Port: 83}
	drKey  = lb.ServiceKey{Family: lb.IPv4, Protocol: lb.TCP, Addr: vip, Port: 8090}
	dnsKey = lb.ServiceKey{Family: lb.IPv4, Protocol: lb.UDP, Addr: vip, Port: 53}
	// grp is a virtual server group: two kernel services, one set of real
	// servers.
	grpKeys = []lb.ServiceKey{
		{Family: lb.IPv4, Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.101"), Port: 80},
		{Family: lb.IPv4, Protocol: lb.TCP, Addr: netip.MustParseAddr("192.0.2.102"), Port: 80},
	}
	r2Weight = "1"
)

// directorYAML is a director's config. The checks allow for TCG: the VM
// runs ~10x slower than the host and shares 2 cores with other VMs in make
// test, so a probe may take hundreds of ms; a flapping check would remove
// a healthy real server and fail the traffic assertions for the wrong
// reason.
func directorYAML(name string, prio int, r2w string) string {
	return fmt.Sprintf(`node: {name: %s}
telemetry: {listen: "127.0.0.1:9730"}
vrrp:
  instances:
    - {name: vip, interface: eth0, vrid: 51, priority: %[2]d, advert_interval: 100ms, accept: true, vips: [192.0.2.100/24],
       track: {virtual_servers: [web]}}
    - {name: gw, interface: eth0, vrid: 52, priority: %[2]d, advert_interval: 100ms, accept: true, vips: [198.51.100.1/24]}
  sync_groups: [{name: edge, instances: [vip, gw]}]
lb:
  sync_daemon: {interface: eth0, instance: vip}
  timeouts: {tcp: 901s, udp: 61s}
  virtual_servers:
    - name: web
      address: 192.0.2.100:80
      protocol: tcp
      scheduler: rr
      check: {type: http, path: /health, interval: 1s, timeout: 900ms, retry_delay: 200ms, fall: 3, warmup: 0s}
      real_servers: [{address: "198.51.100.11:8080"}, {address: "198.51.100.12:8080", weight: %[3]s,
                      notify_down: [/bin/sh, -c, "echo RSDOWN $VIGIL_REAL_SERVER >> /tmp/lbnotify-%[1]s"]}]
    - name: inh
      address: 192.0.2.100:81
      protocol: tcp
      inhibit_on_failure: true
      check: {type: tcp, interval: 1s, timeout: 900ms, retry_delay: 200ms, fall: 3, warmup: 0s}
      real_servers: [{address: "198.51.100.11:8080"}, {address: "198.51.100.12:8080"}]
    - name: quo
      address: 192.0.2.100:82
      protocol: tcp
      quorum: 2
      sorry_server: 198.51.100.9:8080
      notify: {quorum_down: [/bin/sh, -c, "echo DOWN $VIGIL_SERVICE >> /tmp/lbnotify-%[1]s"],
               quorum_up: [/bin/sh, -c, "echo UP $VIGIL_SERVICE >> /tmp/lbnotify-%[1]s"]}
      check: {type: tcp, interval: 1s, timeout: 900ms, retry_delay: 200ms, fall: 3, warmup: 0s}
      real_servers: [{address: "198.51.100.11:8080"}, {address: "198.51.100.12:8080"}]
    - name: qin
      address: 192.0.2.100:83
      protocol: tcp
      quorum: 2
      sorry_server: 198.51.100.9:8080
      sorry_server_inhibit: true
      check: {type: tcp, interval: 1s, timeout: 900ms, retry_delay: 200ms, fall: 3, warmup: 0s}
      real_servers: [{address: "198.51.100.11:8080"}, {address: "198.51.100.12:8080"}]
    - name: dns
      address: 192.0.2.100:53
      protocol: udp
      scheduler: rr
      ha_suspend: true
      check: {type: udp, payload: "00", require_reply: true, interval: 1s, timeout: 900ms, retry_delay: 200ms, fall: 3, warmup: 0s}
      real_servers: [{address: "198.51.100.11:5353"}, {address: "198.51.100.12:5353"}]
    - name: dr
      address: 192.0.2.100:8090
      protocol: tcp
      scheduler: rr
      forward: dr
      check: {type: tcp, interval: 1s, timeout: 900ms, retry_delay: 200ms, fall: 3, warmup: 0s}
      real_servers: [{address: 192.0.2.21}, {address: 192.0.2.22, forward: tun, tunnel: {type: gue, port: 6080}},
                     {address: 192.0.2.23, forward: tun, tunnel: {type: gre, checksum: csum}}]
    - name: grp
      addresses: ["192.0.2.101-102:80"]
      protocol: tcp
      check: {type: tcp, interval: 1s, timeout: 900ms, retry_delay: 200ms, fall: 3, warmup: 0s}
      real_servers: [{address: "198.51.100.11:8080"}, {address: "198.51.100.12:8080"}]
`, name, prio, r2w)
}

// backend is a real server: an HTTP server listening in a node's
// namespace, answering its name (and 200 on /health).
type backend struct {
	name string
	node *netlab.Node
	addr netip.AddrPort
	// any listens on every address: a DR real server receives packets
	// addressed to the VIP (on its lo).
	any bool
	mu  sync.Mutex
	srv *http.Server
	udp net.PacketConn // NAT real servers also answer UDP on :5353 with their name
}

func (b *backend) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	if err := b.node.Do(func() error {
		var err error
		addr := b.addr.String()
		if b.any {
			addr = fmt.Sprintf(":%d", b.addr.Port())
		}
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen %s on %s: %v", b.addr, b.name, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, b.name)
	}), ReadHeaderTimeout: 5 * time.Second}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go srv.Serve(ln)
	if b.any || b.name == "s1" {
		return
	}
	var pc net.PacketConn
	if err := b.node.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp", netip.AddrPortFrom(b.addr.Addr(), 5353).String())
		return err
	}); err != nil {
		t.Fatalf("listen udp on %s: %v", b.name, err)
	}
	b.mu.Lock()
	b.udp = pc
	b.mu.Unlock()
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(b.name), from)
		}
	}()
}

func (b *backend) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		b.srv.Close()
		b.srv = nil
	}
	if b.udp != nil {
		b.udp.Close()
		b.udp = nil
	}
}

type fleet struct {
	lab            *netlab.Lab
	client, d1, d2 *netlab.Node
	procs          map[string]*netlab.Process
	cfgs           map[string]string
	backends       map[string]*backend
	bin            string
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func setup(t *testing.T) *fleet {
	t.Helper()
	if os.Getenv("VIGIL_IN_VM") != "1" {
		t.Skip("runs in the test VM (vigil/test/vm), where the kernel has IPVS")
	}
	if err := ipvsnet.Available(); err != nil {
		t.Fatalf("IPVS: %v", err)
	}
	bin := os.Getenv("VIGIL_BIN")
	if bin == "" {
		t.Fatal("VIGIL_BIN names the vigil binary in the VM")
	}
	lab := netlab.NewForTest(t, "vglb")
	f := &fleet{lab: lab, bin: bin, procs: map[string]*netlab.Process{}, cfgs: map[string]string{}, backends: map[string]*backend{}}
	add := func(name string, addrs ...string) *netlab.Node {
		var ps []netip.Prefix
		for _, a := range addrs {
			ps = append(ps, pfx(a))
		}
		n, err := lab.AddNode(name, ps...)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	ctx := context.Background()
	run := func(n *netlab.Node, args ...string) {
		t.Helper()
		if out, err := n.Run(ctx, args[0], args[1:]...); err != nil {
			t.Fatalf("%s: %v\n%s", n.Name, err, out)
		}
	}
	f.client = add("client", "192.0.2.50/24")
	f.d1 = add("d1", "192.0.2.11/24", "198.51.100.2/24")
	f.d2 = add("d2", "192.0.2.12/24", "198.51.100.3/24")
	for _, d := range []*netlab.Node{f.d1, f.d2} {
		run(d, "sysctl", "-w", "net.ipv4.ip_forward=1")
		run(d, "sysctl", "-w", "net.ipv4.conf.all.send_redirects=0")
		run(d, "sysctl", "-w", "net.ipv4.conf.eth0.send_redirects=0")
	}
	for _, r := range []struct {
		name string
		addr netip.AddrPort
		dr   bool
	}{{"r1", r1Addr, false}, {"r2", r2Addr, false}, {"s1", s1Addr, false}, {"r3", r3Addr, true}, {"r4", r4Addr, true}, {"r5", r5Addr, true}} {
		n := add(r.name, netip.PrefixFrom(r.addr.Addr(), 24).String())
		if r.dr {
			// Direct routing: the VIP on lo, never answered for in ARP.
			if out, err := n.IP("addr", "add", vip.String()+"/32", "dev", "lo"); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, k := range []string{"all", "eth0"} {
				run(n, "sysctl", "-w", "net.ipv4.conf."+k+".arp_ignore=1")
				run(n, "sysctl", "-w", "net.ipv4.conf."+k+".arp_announce=2")
			}
			if r.name == "r4" {
				// r4 is reached through a gue tunnel (IPIP in UDP 6080):
				// fou decapsulates, tunl0 takes the inner packet.
				for _, m := range []string{"fou", "ipip"} {
					if out, err := exec.Command("modprobe", m).CombinedOutput(); err != nil {
						t.Fatalf("modprobe %s: %v\n%s", m, err, out)
					}
				}
				if out, err := n.IP("fou", "add", "port", "6080", "gue"); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				if out, err := n.IP("link", "set", "tunl0", "up"); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				for _, k := range []string{"all", "tunl0"} {
					run(n, "sysctl", "-w", "net.ipv4.conf."+k+".rp_filter=0")
				}
			}
			if r.name == "r5" {
				// r5 is reached through a gre tunnel with checksums: gre1
				// takes GRE packets to r5 from anywhere. It must expect
				// checksums (icsum): the kernel drops GRE packets whose
				// checksum flag differs from the tunnel's, so the fallback
				// device gre0 would count them as errors.
				if out, err := exec.Command("modprobe", "ip_gre").CombinedOutput(); err != nil {
					t.Fatalf("modprobe ip_gre: %v\n%s", err, out)
				}
				if out, err := n.IP("link", "add", "gre1", "type", "gre", "local", r.addr.Addr().String(), "icsum"); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				if out, err := n.IP("link", "set", "gre1", "up"); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				for _, k := range []string{"all", "gre1"} {
					run(n, "sysctl", "-w", "net.ipv4.conf."+k+".rp_filter=0")
				}
			}
		} else if out, err := n.IP("route", "add", "default", "via", gwVIP.String()); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		b := &backend{name: r.name, node: n, addr: r.addr, any: r.dr}
		b.start(t)
		t.Cleanup(b.stop)
		f.backends[r.name] = b
	}
	// d1 first, d2 once d1 holds the VIP: two directors starting together
	// can both time out as Backup and be master for a few milliseconds (RFC
	// behaviour); the loser's gratuitous ARP can then leave the client's ARP
	// cache on it until the winner's next announcement. That is not what
	// this test is about.
	f.startVigil(t, f.d1, 150, r2Weight)
	if err := f.d1.WaitAddr("eth0", vip, true, 20*time.Second); err != nil {
		t.Fatalf("d1 never held the VIP: %v", err)
	}
	f.startVigil(t, f.d2, 100, r2Weight)
	return f
}

func (f *fleet) startVigil(t *testing.T, n *netlab.Node, prio int, r2w string) {
	t.Helper()
	f.startVigilYAML(t, n, directorYAML(n.Name, prio, r2w))
}

// withoutDNS is a director's config without the dns virtual server.
func withoutDNS(y string) string {
	i, j := strings.Index(y, "    - name: dns\n"), strings.Index(y, "    - name: dr\n")
	return y[:i] + y[j:]
}

// keepOnStop is a director's config with lb.on_stop: keep.
func keepOnStop(y string) string { return strings.Replace(y, "lb:\n", "lb:\n  on_stop: keep\n", 1) }

func (f *fleet) startVigilYAML(t *testing.T, n *netlab.Node, y string) {
	t.Helper()
	path := filepath.Join(f.lab.Dir(), n.Name+".yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	f.cfgs[n.Name] = path
	p, err := n.Start(f.bin, "run", "--config", path, "--log-level", "debug", "--admin-socket", peer.VigilAdminSocket(n))
	if err != nil {
		t.Fatal(err)
	}
	f.procs[n.Name] = p
}

// dump reads a director's IPVS table.
func dump(t *testing.T, n *netlab.Node) lb.Table {
	t.Helper()
	h, err := ipvsnet.Open("/run/netns/" + n.NS)
	if err != nil {
		t.Fatalf("open IPVS of %s: %v", n.Name, err)
	}
	defer h.Close()
	tb, err := h.Dump()
	if err != nil {
		t.Fatalf("dump IPVS of %s: %v", n.Name, err)
	}
	return tb
}

// dests renders a service's destinations as "addr:port/weight" in order,
// or "absent".
func dests(tb lb.Table, k lb.ServiceKey) string {
	e, ok := tb[k]
	if !ok {
		return "absent"
	}
	var s []string
	for _, d := range e.SortedDests() {
		s = append(s, fmt.Sprintf("%s/%d", netip.AddrPortFrom(d.Addr, d.Port), d.Weight))
	}
	return strings.Join(s, " ")
}

// waitDests waits until the director's service has exactly want.
func waitDests(t *testing.T, n *netlab.Node, k lb.ServiceKey, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got string
	for time.Now().Before(deadline) {
		if got = dests(dump(t, n), k); got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s %s: destinations %q, want %q after %v", n.Name, k, got, want, timeout)
}

// get fetches http://VIP:port/ from the client and returns the body.
func (f *fleet) get(port int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b, err := f.client.HTTPGet(ctx, fmt.Sprintf("http://%s:%d/", vip, port))
	return string(b), err
}

// seen makes n requests and counts the answers by body.
func (f *fleet) seen(t *testing.T, port, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for range n {
		body, err := f.get(port)
		if err != nil {
			t.Fatalf("GET :%d through the VIP: %v", port, err)
		}
		out[body]++
	}
	return out
}

func TestFleet(t *testing.T) {
	f := setup(t)
	const settle = 20 * time.Second // TCG is slow; this bounds a wait, it is not a measurement
	if err := f.d1.WaitAddr("eth0", vip, true, settle); err != nil {
		t.Fatalf("d1 (priority 150) never held the VIP: %v", err)
	}
	both := "198.51.100.11:8080/1 198.51.100.12:8080/1"
	bothInhibitedSorry := "198.51.100.9:8080/0 " + both
	for _, d := range []*netlab.Node{f.d1, f.d2} {
		waitDests(t, d, webKey, both, settle)
		waitDests(t, d, inhKey, both, settle)
		waitDests(t, d, quoKey, both, settle)
		waitDests(t, d, qinKey, bothInhibitedSorry, settle)
		waitDests(t, d, drKey, "192.0.2.21:8090/1 192.0.2.22:8090/1 192.0.2.23:8090/1", settle)
		waitDests(t, d, dnsKey, "198.51.100.11:5353/1 198.51.100.12:5353/1", settle)
		for _, k := range grpKeys {
			waitDests(t, d, k, both, settle)
		}
	}

	t.Run("nat traffic through the VIP", func(t *testing.T) {
		got := f.seen(t, 80, 10)
		if got["r1"] == 0 || got["r2"] == 0 || got["r1"]+got["r2"] != 10 {
			t.Fatalf("round robin over r1 and r2 expected, answers %v", got)
		}
	})
	// r4 and r5 of the dr virtual server are forwarded through gue and gre
	// tunnels: their answers prove the tunnels carry traffic.
	t.Run("dr traffic through the VIP", func(t *testing.T) {
		before4 := tunnelRx(t, f.backends["r4"].node, "tunl0")
		before5 := tunnelRx(t, f.backends["r5"].node, "gre1")
		got := f.seen(t, 8090, 12)
		if got["r3"] == 0 || got["r4"] == 0 || got["r5"] == 0 || got["r3"]+got["r4"]+got["r5"] != 12 {
			t.Fatalf("round robin over r3, r4 and r5 expected, answers %v", got)
		}
		// r4 and r5 would answer by direct routing too (the VIP is on
		// their lo): their tunnel devices must have taken the packets out
		// of the tunnels.
		if after := tunnelRx(t, f.backends["r4"].node, "tunl0"); after < before4+uint64(got["r4"]) {
			t.Errorf("r4's tunl0 received %d packets for %d answers: not through the gue tunnel", after-before4, got["r4"])
		}
		if after := tunnelRx(t, f.backends["r5"].node, "gre1"); after < before5+uint64(got["r5"]) {
			t.Errorf("r5's gre1 received %d packets for %d answers: not through the gre tunnel", after-before5, got["r5"])
		}
	})

	t.Run("udp traffic through the VIP", func(t *testing.T) {
		got := map[string]int{}
		for range 10 {
			body, err := f.udpAsk(53)
			if err != nil {
				t.Fatalf("UDP through the VIP: %v", err)
			}
			got[body]++
		}
		if got["r1"] == 0 || got["r2"] == 0 || got["r1"]+got["r2"] != 10 {
			t.Fatalf("round robin over r1 and r2 expected, answers %v", got)
		}
	})

	t.Run("status and ipvs list", func(t *testing.T) {
		ctx := context.Background()
		out, err := f.d1.Run(ctx, f.bin, "status", "--socket", peer.VigilAdminSocket(f.d1), "-o", "json")
		if err != nil {
			t.Fatalf("vigil status: %v\n%s", err, out)
		}
		var st struct {
			VirtualServers []struct {
				Name     string `json:"name"`
				QuorumUp bool   `json:"quorum_up"`
				Reals    []struct {
					Address string `json:"address"`
					Up      bool   `json:"up"`
					Checks  []struct {
						Type string `json:"type"`
						Up   bool   `json:"up"`
					} `json:"checks"`
				} `json:"real_servers"`
			} `json:"virtual_servers"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("status JSON: %v\n%s", err, out)
		}
		if len(st.VirtualServers) != 7 || st.VirtualServers[0].Name != "web" || !st.VirtualServers[0].QuorumUp ||
			len(st.VirtualServers[0].Reals) != 2 || !st.VirtualServers[0].Reals[1].Up ||
			len(st.VirtualServers[0].Reals[1].Checks) != 1 || st.VirtualServers[0].Reals[1].Checks[0].Type != "http" {
			t.Errorf("status virtual servers: %+v", st.VirtualServers)
		}
		// ha_suspend on dns: its checks run only on the director with the
		// VIP (d1); d2 keeps them suspended, and web's run on both.
		if got := f.suspendedChecks(t, f.d1); got["dns"] != 0 || got["web"] != 0 {
			t.Errorf("d1 (with the VIP) has suspended checks: %v", got)
		}
		waitFor(t, "d2's dns checks suspended", settle, func() bool {
			got := f.suspendedChecks(t, f.d2)
			return got["dns"] == 2 && got["web"] == 0
		})
		// lb.timeouts reached the kernel (tcp_fin keeps the kernel's 120 s).
		h, err := ipvsnet.Open("/run/netns/" + f.d1.NS)
		if err != nil {
			t.Fatal(err)
		}
		to, err := h.Timeouts()
		h.Close()
		if want := (ipvsnet.Timeouts{TCP: 901 * time.Second, TCPFin: 120 * time.Second, UDP: 61 * time.Second}); err != nil || to != want {
			t.Errorf("IPVS timeouts %+v, %v; want %+v", to, err, want)
		}
		out, err = f.d1.Run(ctx, f.bin, "ipvs", "list")
		if err != nil {
			t.Fatalf("vigil ipvs list: %v\n%s", err, out)
		}
		for _, want := range []string{"TCP  192.0.2.100:80 rr", "  -> 198.51.100.11:8080           Masq    1",
			"TCP  192.0.2.100:8090 rr", "  -> 192.0.2.21:8090              Route   1"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("vigil ipvs list lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("real server failure and recovery", func(t *testing.T) {
		f.backends["r2"].stop()
		waitDests(t, f.d1, webKey, "198.51.100.11:8080/1", settle)                      // removed
		waitDests(t, f.d1, inhKey, "198.51.100.11:8080/1 198.51.100.12:8080/0", settle) // inhibit_on_failure: weight 0
		waitDests(t, f.d1, quoKey, "198.51.100.9:8080/1", settle)                       // below quorum 2: sorry server only
		waitDests(t, f.d1, qinKey, "198.51.100.9:8080/1", settle)                       // the inhibited sorry server serves
		for _, k := range grpKeys {
			waitDests(t, f.d1, k, "198.51.100.11:8080/1", settle) // every member of the group
		}
		if got := f.seen(t, 80, 6); got["r1"] != 6 {
			t.Errorf("with r2 down, every answer should come from r1: %v", got)
		}
		if got := f.seen(t, 82, 3); got["s1"] != 3 {
			t.Errorf("below quorum, the sorry server should answer: %v", got)
		}
		if got := f.seen(t, 83, 3); got["s1"] != 3 {
			t.Errorf("below quorum, the inhibited sorry server should answer: %v", got)
		}
		// /metrics says the same: r2 unhealthy everywhere, gone from web's
		// kernel series, weight 0 under inh, the sorry server counting.
		m := scrape(t, f.d1)
		r2 := `remote_address="198.51.100.12",remote_port="8080"`
		for _, want := range []string{
			`vigil_real_server_healthy{local_address="192.0.2.100",local_mark="",local_port="80",proto="tcp",` + r2 + `,virtual_server="web"} 0`,
			`vigil_real_server_healthy{local_address="192.0.2.100",local_mark="",local_port="80",proto="tcp",remote_address="198.51.100.11",remote_port="8080",virtual_server="web"} 1`,
			`vigil_ipvs_real_server_weight{local_address="192.0.2.100",local_mark="",local_port="81",proto="tcp",` + r2 + `,virtual_server="inh"} 0`,
			`vigil_virtual_server_real_servers_up{local_address="192.0.2.100",local_mark="",local_port="80",proto="tcp",virtual_server="web"} 1`,
			`vigil_virtual_server_quorum_up{local_address="192.0.2.100",local_mark="",local_port="82",proto="tcp",virtual_server="quo"} 0`,
			`vigil_real_server_transitions_total{local_address="192.0.2.100",local_mark="",local_port="80",proto="tcp",` + r2 + `,to="down",virtual_server="web"} 1`,
			`vigil_ipvs_scrape_success 1`,
		} {
			if !strings.Contains(m, want+"\n") {
				t.Errorf("d1 /metrics lacks %s\n%s", want, grepLines(m, "198.51.100.12"))
			}
		}
		if strings.Contains(m, `vigil_ipvs_real_server_weight{local_address="192.0.2.100",local_mark="",local_port="80",proto="tcp",`+r2) {
			t.Errorf("a removed real server still has a kernel weight series")
		}
		// The kernel folds its per-CPU counters into what it reports every
		// 2 s (the rate estimator's timer): poll.
		sorryConns := `vigil_ipvs_real_server_connections_total{local_address="192.0.2.100",local_mark="",local_port="82",proto="tcp",remote_address="198.51.100.9",remote_port="8080",virtual_server="quo"}`
		webConns := `vigil_ipvs_virtual_server_connections_total{local_address="192.0.2.100",local_mark="",local_port="80",proto="tcp",virtual_server="web"}`
		var sorry, web float64
		waitFor(t, "the kernel's connection counters in /metrics", settle, func() bool {
			time.Sleep(1100 * time.Millisecond) // vigil reads the kernel at most once a second
			m := scrape(t, f.d1)
			sorry, web = metricValue(m, sorryConns), metricValue(m, webConns)
			return sorry >= 3 && web >= 16
		})
		t.Logf("d1 counted %v connections to the sorry server (3 requests) and %v to web (16 requests)", sorry, web)
		f.backends["r2"].start(t)
		waitDests(t, f.d1, webKey, both, settle)
		waitDests(t, f.d1, inhKey, both, settle)
		waitDests(t, f.d1, quoKey, both, settle)
		waitDests(t, f.d1, qinKey, bothInhibitedSorry, settle) // back to weight 0, draining
		for _, k := range grpKeys {
			waitDests(t, f.d1, k, both, settle)
		}
		// The notify commands ran: r2 down (web's notify_down; its http
		// check and quo's tcp check fail at their own times), and quo
		// below quorum then back (its quorum_down, then quorum_up).
		var got []string
		waitFor(t, "d1's notify commands", settle, func() bool {
			b, _ := os.ReadFile("/tmp/lbnotify-d1")
			got = strings.Split(strings.TrimSpace(string(b)), "\n")
			down, up := slices.Index(got, "DOWN [192.0.2.100]:tcp:82"), slices.Index(got, "UP [192.0.2.100]:tcp:82")
			return len(got) == 3 && slices.Contains(got, "RSDOWN [198.51.100.12]:tcp:8080") && down >= 0 && down < up
		})
	})

	t.Run("reload changes one real server only", func(t *testing.T) {
		before := dump(t, f.d1)
		if err := os.WriteFile(f.cfgs["d1"], []byte(directorYAML("d1", 150, "3")), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := f.procs["d1"].Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitDests(t, f.d1, webKey, "198.51.100.11:8080/1 198.51.100.12:8080/3", settle)
		// The IPVS update lands before the reload's summary line is
		// written (the line reports the finished reload): wait for it.
		waitFor(t, "the reload log line naming web as the changed virtual server", settle, func() bool {
			return strings.Contains(f.procs["d1"].Log(), "virtual_servers_changed=web ")
		})
		after := dump(t, f.d1)
		// Everything but web's r2 is identical, entry by entry.
		changed := 0
		for k, e := range before {
			a, ok := after[k]
			if !ok || a.Service != e.Service || len(a.Dests) != len(e.Dests) {
				t.Errorf("service %s changed: %+v -> %+v", k, e, a)
				continue
			}
			for dk, d := range e.Dests {
				if a.Dests[dk] != d {
					changed++
					if k != webKey || dk != (lb.DestKey{Addr: r2Addr.Addr(), Port: r2Addr.Port()}) {
						t.Errorf("%s %v changed: %+v -> %+v", k, dk, d, a.Dests[dk])
					}
				}
			}
		}
		if changed != 1 || len(after) != len(before) {
			t.Errorf("%d destinations changed, %d -> %d services; want exactly web's r2", changed, len(before), len(after))
		}
	})

	// The seed's rule: the master whose service fails gives up the VIP. d1
	// loses its route to the NAT real servers (d2 still reaches them): its
	// checks fail, web drops below quorum, the tracking instance goes to
	// FAULT and d2 takes over; when the route returns d1 preempts back.
	t.Run("master whose service fails gives up the VIP", func(t *testing.T) {
		for _, rs := range []netip.AddrPort{r1Addr, r2Addr} {
			if out, err := f.d1.IP("route", "add", "blackhole", rs.Addr().String()+"/32"); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		}
		if err := f.d2.WaitAddr("eth0", vip, true, settle); err != nil {
			t.Fatalf("d2 did not take the VIP when d1's service failed: %v", err)
		}
		if err := f.d1.WaitAddr("eth0", vip, false, settle); err != nil {
			t.Fatalf("d1 kept the VIP with its service down: %v", err)
		}
		if got := f.seen(t, 80, 4); got["r1"]+got["r2"] != 4 {
			t.Errorf("through d2, r1 and r2 should answer: %v", got)
		}
		for _, rs := range []netip.AddrPort{r1Addr, r2Addr} {
			if out, err := f.d1.IP("route", "del", "blackhole", rs.Addr().String()+"/32"); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		}
		if err := f.d1.WaitAddr("eth0", vip, true, settle); err != nil {
			t.Fatalf("d1 did not take the VIP back once its service recovered: %v", err)
		}
		if err := f.d2.WaitAddr("eth0", vip, false, settle); err != nil {
			t.Fatalf("d2 kept the VIP after d1 came back: %v", err)
		}
		waitDests(t, f.d1, webKey, "198.51.100.11:8080/1 198.51.100.12:8080/3", settle)
	})

	// An established connection through d1, synced to d2 by the IPVS sync
	// daemons (master on the VRRP master): the next request on the same
	// connection, after d1's link is cut, goes through d2.
	var kept *keptConn
	t.Run("connection synced to the backup", func(t *testing.T) {
		kept = f.openKept(t)
		if body := kept.get(t); body != "r1" && body != "r2" {
			t.Fatalf("first request on the kept connection: %q", body)
		}
		waitFor(t, "the connection in d2's table (IPVS sync)", settle, func() bool {
			out, err := f.d2.Run(context.Background(), "cat", "/proc/net/ip_vs_conn")
			return err == nil && strings.Contains(string(out), kept.localHex())
		})
	})

	t.Run("director failover keeps serving", func(t *testing.T) {
		var ok, fail atomic.Int64
		var lastErr atomic.Value
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := f.get(80); err != nil {
					fail.Add(1)
					lastErr.Store(err.Error())
				} else {
					ok.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		time.Sleep(500 * time.Millisecond)
		if err := f.d1.LinkDown(); err != nil {
			t.Fatal(err)
		}
		if err := f.d2.WaitAddr("eth0", vip, true, settle); err != nil {
			t.Fatalf("d2 never took the VIP: %v", err)
		}
		// ha_suspend: with the VIP, d2 checks dns's real servers.
		waitFor(t, "d2's dns checks resumed", settle, func() bool { return f.suspendedChecks(t, f.d2)["dns"] == 0 })
		// After the takeover, requests go through d2: count a run of
		// successes from here.
		okAt := ok.Load()
		deadline := time.Now().Add(settle)
		for ok.Load() < okAt+10 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		close(stop)
		<-done
		if ok.Load() < okAt+10 {
			t.Fatalf("requests did not resume through d2: %d ok, %d failed (last error %v)", ok.Load(), fail.Load(), lastErr.Load())
		}
		t.Logf("during the failover: %d requests ok, %d failed", ok.Load(), fail.Load())
		if kept != nil {
			body := kept.get(t)
			if !kept.reused {
				t.Errorf("the request after the failover opened a new connection")
			}
			if body != kept.first {
				t.Errorf("the kept connection answered %q after the failover, %q before", body, kept.first)
			}
		}
		if err := f.d1.LinkUp(); err != nil {
			t.Fatal(err)
		}
	})

	// A crash leaves the table in the kernel; the next start converges on
	// it without a single IPVS operation.
	t.Run("restart after a crash touches nothing", func(t *testing.T) {
		before := dump(t, f.d2)
		if err := f.procs["d2"].Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-f.procs["d2"].Done()
		f.startVigil(t, f.d2, 100, r2Weight)
		waitFor(t, "d2's first reconcile after the restart", settle, func() bool {
			out, err := f.d2.Run(context.Background(), f.bin, "status", "--socket", peer.VigilAdminSocket(f.d2), "-o", "json")
			return err == nil && strings.Contains(string(out), `"quorum_up": true`)
		})
		if after := dump(t, f.d2); !after.Equal(before) {
			t.Errorf("the table changed across the restart:\nbefore %v\nafter  %v", before, after)
		}
		for _, line := range strings.Split(f.procs["d2"].Log(), "\n") {
			if strings.Contains(line, "msg=ipvs ") || strings.Contains(line, `msg="IPVS table changed"`) {
				t.Errorf("the restarted vigil changed IPVS: %s", line)
			}
		}
	})

	// A service dropped from the config while vigil was down belonged to
	// vigil (its record in /run/vigil says so): the next start removes it
	// and touches nothing else.
	t.Run("restart removes a service dropped while stopped", func(t *testing.T) {
		before := dump(t, f.d2)
		if err := f.procs["d2"].Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-f.procs["d2"].Done()
		f.startVigilYAML(t, f.d2, withoutDNS(directorYAML("d2", 100, r2Weight)))
		waitDests(t, f.d2, dnsKey, "absent", settle)
		after := dump(t, f.d2)
		delete(before, dnsKey)
		if !after.Equal(before) {
			t.Errorf("besides dns, the table changed:\nbefore %v\nafter  %v", before, after)
		}
		for _, line := range strings.Split(f.procs["d2"].Log(), "\n") {
			if strings.Contains(line, "msg=ipvs ") && !strings.Contains(line, ":53") {
				t.Errorf("the restart changed more than the dropped service: %s", line)
			}
		}
	})

	// lb.on_stop: keep leaves the table through a stop (keepalived -I); the
	// next start converges on it without an operation.
	t.Run("on_stop keep leaves the table for the next start", func(t *testing.T) {
		f.procs["d2"].Stop(10 * time.Second)
		f.startVigilYAML(t, f.d2, keepOnStop(withoutDNS(directorYAML("d2", 100, r2Weight))))
		waitFor(t, "d2 running with on_stop keep", settle, func() bool {
			out, err := f.d2.Run(context.Background(), f.bin, "status", "--socket", peer.VigilAdminSocket(f.d2), "-o", "json")
			return err == nil && strings.Contains(string(out), `"quorum_up": true`)
		})
		before := dump(t, f.d2)
		if err := f.procs["d2"].Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		if after := dump(t, f.d2); !after.Equal(before) || len(after) == 0 {
			t.Fatalf("on_stop keep: the table changed at stop:\nbefore %v\nafter  %v", before, after)
		}
		f.startVigilYAML(t, f.d2, withoutDNS(directorYAML("d2", 100, r2Weight)))
		waitFor(t, "d2's first reconcile after the restart", settle, func() bool {
			out, err := f.d2.Run(context.Background(), f.bin, "status", "--socket", peer.VigilAdminSocket(f.d2), "-o", "json")
			return err == nil && strings.Contains(string(out), `"quorum_up": true`)
		})
		if after := dump(t, f.d2); !after.Equal(before) {
			t.Errorf("the restart changed the kept table:\nbefore %v\nafter  %v", before, after)
		}
		for _, line := range strings.Split(f.procs["d2"].Log(), "\n") {
			if strings.Contains(line, "msg=ipvs ") || strings.Contains(line, `msg="IPVS table changed"`) {
				t.Errorf("the restart changed IPVS: %s", line)
			}
		}
	})

	t.Run("stop removes the virtual services", func(t *testing.T) {
		foreign := lb.ServiceKey{Family: lb.IPv4, Protocol: lb.UDP, Addr: netip.MustParseAddr("203.0.113.7"), Port: 53}
		h, err := ipvsnet.Open("/run/netns/" + f.d2.NS)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if err := h.Apply([]lb.Op{{Kind: lb.AddService, Service: lb.Service{Key: foreign, Scheduler: "rr"}}}); err != nil {
			t.Fatal(err)
		}
		if err := f.procs["d2"].Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		tb := dump(t, f.d2)
		if len(tb) != 1 {
			t.Errorf("after stop d2 has %d services, want only the foreign one: %v", len(tb), tb.Keys())
		}
		if _, ok := tb[foreign]; !ok {
			t.Errorf("the service vigil did not create was removed")
		}
	})

	// lb.foreign_services: remove (keepalived's lvs_flush and
	// lvs_flush_on_stop): vigil owns the whole table, so the service the
	// previous step left is removed at start, and stop empties the table.
	t.Run("foreign_services remove owns the whole table", func(t *testing.T) {
		foreign := lb.ServiceKey{Family: lb.IPv4, Protocol: lb.UDP, Addr: netip.MustParseAddr("203.0.113.7"), Port: 53}
		if _, ok := dump(t, f.d2)[foreign]; !ok {
			t.Fatal("the foreign service of the previous step is not there")
		}
		f.startVigilYAML(t, f.d2, strings.Replace(directorYAML("d2", 100, r2Weight), "lb:\n", "lb:\n  foreign_services: remove\n", 1))
		waitDests(t, f.d2, foreign, "absent", settle)
		waitDests(t, f.d2, webKey, "198.51.100.11:8080/1 198.51.100.12:8080/1", settle)
		if err := f.procs["d2"].Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		if tb := dump(t, f.d2); len(tb) != 0 {
			t.Errorf("after stop d2 has %d services, want none: %v", len(tb), tb.Keys())
		}
	})
}

// scrape reads a director's /metrics.
// tunnelRx is the count of packets the node's tunnel device dev took out
// of tunnels.
func tunnelRx(t *testing.T, n *netlab.Node, dev string) uint64 {
	t.Helper()
	out, err := n.Run(context.Background(), "cat", "/sys/class/net/"+dev+"/statistics/rx_packets")
	if err != nil {
		t.Fatalf("%s counters of %s: %v\n%s", dev, n.Name, err, out)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatalf("%s rx_packets of %s: %q", dev, n.Name, out)
	}
	return v
}

// suspendedChecks counts each virtual server's suspended checks in the
// node's vigil status.
func (f *fleet) suspendedChecks(t *testing.T, n *netlab.Node) map[string]int {
	t.Helper()
	out, err := n.Run(context.Background(), f.bin, "status", "--socket", peer.VigilAdminSocket(n), "-o", "json")
	if err != nil {
		t.Fatalf("vigil status on %s: %v\n%s", n.Name, err, out)
	}
	var st struct {
		VirtualServers []struct {
			Name  string `json:"name"`
			Reals []struct {
				Checks []struct {
					Suspended bool `json:"suspended"`
				} `json:"checks"`
			} `json:"real_servers"`
		} `json:"virtual_servers"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status JSON of %s: %v\n%s", n.Name, err, out)
	}
	got := map[string]int{}
	for _, vs := range st.VirtualServers {
		for _, rs := range vs.Reals {
			for _, c := range rs.Checks {
				if c.Suspended {
					got[vs.Name]++
				}
			}
		}
	}
	return got
}

func scrape(t *testing.T, n *netlab.Node) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	body, err := n.HTTPGet(ctx, "http://127.0.0.1:9730/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", n.Name, err)
	}
	return string(body)
}

// metricValue is the value of the series written exactly as series (name
// and labels), or -1.
func metricValue(body, series string) float64 {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func grepLines(body, frag string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, frag) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// keptConn is one keep-alive HTTP connection from the client through the
// VIP to port 80.
type keptConn struct {
	client *http.Client
	local  netip.AddrPort // the client's end
	first  string         // the real server that answered first
	reused bool           // the last request used the existing connection
}

func (f *fleet) openKept(t *testing.T) *keptConn {
	t.Helper()
	k := &keptConn{}
	k.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := f.client.Dial(ctx, network, addr)
			if err == nil {
				k.local = c.LocalAddr().(*net.TCPAddr).AddrPort()
			}
			return c, err
		},
		MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, IdleConnTimeout: time.Minute,
	}}
	return k
}

func (k *keptConn) get(t *testing.T) string {
	t.Helper()
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { k.reused = i.Reused },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s:80/", vip), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		t.Fatalf("GET on the kept connection: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET on the kept connection: %v", err)
	}
	if k.first == "" {
		k.first = string(b)
	}
	return string(b)
}

// localHex is the client end as /proc/net/ip_vs_conn prints it
// ("C0000232 A1B2").
func (k *keptConn) localHex() string {
	a := k.local.Addr().As4()
	return fmt.Sprintf("%02X%02X%02X%02X %04X", a[0], a[1], a[2], a[3], k.local.Port())
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// udpAsk sends one datagram from a new client socket to VIP:port and
// returns the answer.
func (f *fleet) udpAsk(port int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := f.client.Dial(ctx, "udp", fmt.Sprintf("%s:%d", vip, port))
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("who")); err != nil {
		return "", err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}
