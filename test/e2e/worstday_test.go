package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"vigil/node"
	"vigil/test/netlab"
	"vigil/vrrp"
)

// Issue 11's worst-day defects of the node itself: each test failed on
// main at 3d72256.

// writeConfig writes a config file for a node in the lab directory.
func writeConfig(t *testing.T, c *cluster, name, yaml string) string {
	t.Helper()
	path := filepath.Join(c.lab.Dir(), name+"-worstday.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func adminSock(c *cluster, name string) string { return filepath.Join(c.lab.Dir(), name+"-admin.sock") }

// startConfig starts vigil on node name with the config file at path.
func startConfig(t *testing.T, c *cluster, name, path string) *netlab.Process {
	t.Helper()
	p, err := c.node(name).Start(c.bin, "run", "--config", path, "--admin-socket", adminSock(c, name))
	if err != nil {
		t.Fatal(err)
	}
	c.procs[name] = p
	return p
}

// statusAt reads `vigil status -o json` over an admin socket.
func statusAt(t *testing.T, c *cluster, sock string) node.Status {
	t.Helper()
	out, errOut, code := vigilStatus(t, c.bin, sock, "-o", "json")
	if code != 0 {
		t.Fatalf("vigil status: exit %d: %s\n%s", code, errOut, c.logs())
	}
	var st node.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("vigil status -o json: %v\n%s", err, out)
	}
	return st
}

// Item 1: a reload that changes a running master's priority and VIPs and
// also adds an instance on an interface that does not exist is refused as
// a whole: the master keeps its state, priority and VIPs (no transition,
// no gap in its adverts), status keeps the old file's hash, and a
// corrected file then applies.
func TestReloadAllOrNothing(t *testing.T) {
	c := newCluster(t, 2)
	cfgOf := func(name string, prio int, vips, extra string) string {
		return fmt.Sprintf(`node: { name: %s }
telemetry: { listen: "" }
vrrp:
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: %d, advert_interval: 100ms, vips: [%s] }
%s`, name, prio, vips, extra)
	}
	path := writeConfig(t, c, "n1", cfgOf("n1", 150, "192.0.2.100/24", ""))
	p := startConfig(t, c, "n1", path)
	startConfig(t, c, "n2", writeConfig(t, c, "n2", cfgOf("n2", 100, "192.0.2.100/24", "")))
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 3*iv)
	// The wire is checked from a second before the reload: the start-up
	// election (both nodes may advertise for a moment) must be over.
	time.Sleep(1200 * time.Millisecond)
	before := statusAt(t, c, adminSock(c, "n1"))

	bad := cfgOf("n1", 160, "192.0.2.100/24, 192.0.2.101/24",
		"    - { name: side, interface: nosuch0, vrid: 52, priority: 150, advert_interval: 100ms, vips: [198.51.100.101/24] }\n")
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	mark := time.Now()
	out, err := exec.Command(c.bin, "config", "reload", "--socket", adminSock(c, "n1")).CombinedOutput()
	if err == nil {
		t.Fatalf("vigil config reload accepted a file with an instance on a missing interface:\n%s", out)
	}
	if !strings.Contains(string(out), "nosuch0") {
		t.Errorf("the reload error does not name the missing interface:\n%s", out)
	}
	time.Sleep(5 * iv)
	after := statusAt(t, c, adminSock(c, "n1"))
	if after.ConfigHash != before.ConfigHash {
		t.Errorf("status shows config %s after a refused reload, want the running %s", after.ConfigHash, before.ConfigHash)
	}
	if len(after.Instances) != 1 || after.Instances[0].State != "master" || after.Instances[0].EffectivePriority != 150 ||
		len(after.Instances[0].VIPs) != 1 {
		t.Fatalf("after a refused reload the instance is %+v, want the running master at 150 with one VIP", after.Instances)
	}
	if !after.Instances[0].LastTransition.Equal(before.Instances[0].LastTransition) {
		t.Errorf("the master changed state during a refused reload: last transition %v, was %v", after.Instances[0].LastTransition, before.Instances[0].LastTransition)
	}
	if ok, _ := c.node("n1").HasAddr("eth0", netip.MustParseAddr("192.0.2.101")); ok {
		t.Error("a VIP of the refused file was added")
	}
	if holders := c.holders(vip4.Addr()); len(holders) != 1 || holders[0] != "n1" {
		t.Errorf("VIP holders %v after the refused reload, want [n1]", holders)
	}
	// On the wire: n1's adverts at 150, without a gap and without a
	// priority-0 or 160 advert.
	var last time.Time
	for _, f := range c.adverts() {
		if f.VRID != 51 || f.Time.Before(mark.Add(-time.Second)) {
			continue
		}
		if f.Src != netip.MustParseAddr("192.0.2.11") || f.Priority != 150 {
			t.Fatalf("VRID 51 advert from %s at priority %d around the refused reload", f.Src, f.Priority)
		}
		if !last.IsZero() && f.Time.Sub(last) > iv*3/2 {
			t.Fatalf("advert gap of %s around the refused reload", f.Time.Sub(last))
		}
		last = f.Time
	}
	if strings.Contains(p.Log(), "reason=config_reload") {
		t.Fatalf("an instance was stopped by the refused reload:\n%s", p.LogLines(20))
	}

	// The corrected file applies: priority and the second VIP in place.
	good := cfgOf("n1", 160, "192.0.2.100/24, 192.0.2.101/24", "")
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(c.bin, "config", "reload", "--socket", adminSock(c, "n1")).CombinedOutput(); err != nil {
		t.Fatalf("reload of the corrected file: %v\n%s", err, out)
	}
	if err := c.node("n1").WaitAddr("eth0", netip.MustParseAddr("192.0.2.101"), true, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := statusAt(t, c, adminSock(c, "n1")); st.ConfigHash == before.ConfigHash {
		t.Error("status still shows the old hash after a successful reload")
	}
}

// Item 3: an IPv6 instance starts while its interface is down and while
// its link-local address is still tentative (duplicate address detection
// on): it waits in FAULT (no_source_address, interface_down) and becomes
// master once the address is usable, advertising from it. It used to exit
// at start: "interface has no usable IPv6 link-local address".
func TestIPv6WaitsForLinkLocal(t *testing.T) {
	c := newCluster(t, 1)
	n1 := c.node("n1")
	// DAD on, with a second-long probe, then the link down: at start the
	// interface has no link-local address at all.
	for _, kv := range []string{"net.ipv6.conf.eth0.accept_dad=1", "net.ipv6.conf.eth0.dad_transmits=2"} {
		if out, err := n1.Run(context.Background(), "sysctl", "-w", kv); err != nil {
			t.Fatalf("sysctl %s: %v\n%s", kv, err, out)
		}
	}
	if _, err := n1.IP("link", "set", "eth0", "down"); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, c, "n1", `node: { name: n1 }
telemetry: { listen: "" }
vrrp:
  instances:
    - { name: v6, interface: eth0, vrid: 61, priority: 150, advert_interval: 100ms, vips: ["fe80::61", "2001:db8::161/64"] }
`)
	p := startConfig(t, c, "n1", path)
	time.Sleep(time.Second)
	if p.Exited() {
		t.Fatalf("vigil exited with its IPv6 interface down:\n%s", p.LogLines(20))
	}
	st := statusAt(t, c, adminSock(c, "n1"))
	if st.Instances[0].State != "fault" {
		t.Fatalf("instance is %s with its interface down, want fault", st.Instances[0].State)
	}
	up := time.Now()
	if _, err := n1.IP("link", "set", "eth0", "up"); err != nil {
		t.Fatal(err)
	}
	// While the address is tentative: still FAULT, nothing sent.
	time.Sleep(300 * time.Millisecond)
	if st := statusAt(t, c, adminSock(c, "n1")); st.Instances[0].State != "fault" || st.Instances[0].Fault != "no_source_address" {
		t.Fatalf("while the link-local address is tentative the instance is %s (%s), want fault (no_source_address)",
			st.Instances[0].State, st.Instances[0].Fault)
	}
	c.waitHolder(netip.MustParseAddr("2001:db8::161"), "n1", 10*time.Second, 0)
	src := statusAt(t, c, adminSock(c, "n1")).Instances[0].Source
	ll, err := netip.ParseAddr(src)
	if err != nil || !ll.IsLinkLocalUnicast() || ll == netip.MustParseAddr("fe80::61") {
		t.Fatalf("source address %q, want the interface's own link-local address", src)
	}
	var first time.Time
	for _, f := range c.adverts() {
		if f.VRID != 61 || f.Time.Before(up) {
			continue
		}
		if f.Src != ll {
			t.Fatalf("advert from %s, want the link-local address %s", f.Src, ll)
		}
		if first.IsZero() {
			first = f.Time
		}
	}
	if first.IsZero() {
		t.Fatal("no advert after the link-local address became usable")
	}
	for _, want := range []string{`msg="vrrp instance still in fault" vrrp_instance=v6 reason=no_source_address previous_reason=interface_down`,
		`msg="source address ready"`, "from=fault to=backup reason=fault_cleared"} {
		if !strings.Contains(p.Log(), want) {
			t.Errorf("log lacks %q:\n%s", want, p.LogLines(30))
		}
	}
	t.Logf("link up → first advert %s (duplicate address detection with 2 probes)", first.Sub(up).Round(time.Millisecond))
}

// Item 5: a master killed with SIGKILL leaves its VIPs and its virtual MAC
// interface; the file then loses a VIP and an instance; the next start
// removes both (they are in vigil's record), where it used to clean only
// the VIPs of the new file and leave the others on the interface for good.
func TestCrashLeftoversOfAnOldConfigRemoved(t *testing.T) {
	c := newCluster(t, 1)
	cfg := func(vips, extra string) string {
		return fmt.Sprintf(`node: { name: n1 }
telemetry: { listen: "" }
vrrp:
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: 150, advert_interval: 100ms, vips: [%s] }
%s`, vips, extra)
	}
	vmacInst := "    - { name: mac, interface: eth0, vrid: 52, priority: 150, advert_interval: 100ms, vmac: true, vips: [192.0.2.102/24] }\n"
	path := writeConfig(t, c, "n1", cfg("192.0.2.100/24, 192.0.2.101/24", vmacInst))
	p := startConfig(t, c, "n1", path)
	n1 := c.node("n1")
	for _, a := range []string{"192.0.2.100", "192.0.2.101"} {
		if err := n1.WaitAddr("eth0", netip.MustParseAddr(a), true, 3*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := n1.WaitAddr("vrrp.52", netip.MustParseAddr("192.0.2.102"), true, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.Wait()
	if err := os.WriteFile(path, []byte(cfg("192.0.2.100/24", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	p = startConfig(t, c, "n1", path)
	if err := n1.WaitAddr("eth0", netip.MustParseAddr("192.0.2.101"), false, 3*time.Second); err != nil {
		t.Fatalf("the dropped VIP stayed after the restart: %v\n%s", err, p.LogLines(20))
	}
	if _, err := n1.IP("link", "show", "vrrp.52"); err == nil {
		t.Fatalf("the dropped instance's virtual MAC interface stayed after the restart:\n%s", p.LogLines(20))
	}
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 0)
	for _, want := range []string{`vip="192.0.2.101/24 dev eth0" of="no longer in the configuration"`,
		`msg="removing a virtual MAC interface left by an earlier run" device=vrrp.52`} {
		if !strings.Contains(p.Log(), want) {
			t.Errorf("log lacks %q:\n%s", want, p.LogLines(30))
		}
	}
	// A graceful stop empties the record: nothing is left to clean.
	c.stop("n1")
	if addrs, _ := n1.Addrs("eth0"); hasAny(addrs, "192.0.2.100", "192.0.2.101") {
		t.Fatalf("VIPs left after a graceful stop: %v", addrs)
	}
}

func hasAny(addrs []netip.Prefix, want ...string) bool {
	for _, a := range addrs {
		for _, w := range want {
			if a.Addr().String() == w {
				return true
			}
		}
	}
	return false
}

// Item 6: a start that fails late (the metrics port is taken) leaves no
// kernel state behind: no virtual MAC interface, no nftables table, no
// changed sysctl; the listener is bound before the kernel is touched.
func TestFailedStartLeavesNothing(t *testing.T) {
	c := newCluster(t, 1)
	n1 := c.node("n1")
	var ln net.Listener
	if err := n1.Do(func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:9730")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sysctls := []string{"net.ipv4.conf.eth0.arp_ignore", "net.ipv4.conf.eth0.arp_announce", "net.ipv4.conf.all.arp_ignore",
		"net.ipv4.conf.eth0.promote_secondaries", "net.ipv4.conf.all.rp_filter"}
	read := func() string {
		out, err := n1.Run(context.Background(), "sysctl", sysctls...)
		if err != nil {
			t.Fatalf("sysctl: %v\n%s", err, out)
		}
		return string(out)
	}
	before := read()
	path := writeConfig(t, c, "n1", `node: { name: n1 }
telemetry: { listen: "127.0.0.1:9730" }
vrrp:
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: 150, advert_interval: 100ms, vmac: true, accept: false, vips: [192.0.2.100/24] }
`)
	waitFailed(t, startConfig(t, c, "n1", path), "9730")
	if _, err := n1.IP("link", "show", "vrrp.51"); err == nil {
		t.Error("the virtual MAC interface was left behind")
	}
	if out, err := n1.Run(context.Background(), "nft", "list", "tables"); err == nil && strings.Contains(string(out), "vigil") {
		t.Errorf("the nftables table was left behind:\n%s", out)
	}
	if after := read(); after != before {
		t.Errorf("sysctls changed by a failed start:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// Item 2: 2,000 valid lower-priority adverts at 1,000/s (anybody on the
// link can send them: VRRPv3 has no authentication) are answered at most
// once per advert interval, and a later higher-priority advert makes the
// master release its VIPs at once, with no gratuitous ARP after that. On
// 3d72256 the flood gave 40,000 ARPs and the VIPs stayed ~25 s.
func TestLowerPriorityFloodNotAmplified(t *testing.T) {
	c := newCluster(t, 2)
	startConfig(t, c, "n1", writeConfig(t, c, "n1", `node: { name: n1 }
telemetry: { listen: "" }
vrrp:
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: 150, advert_interval: 1s,
        garp: { repeat: 5, interval: 10ms, delay: 5s },
        vips: [192.0.2.100/24, 192.0.2.101/24] }
`))
	c.waitHolder(vip4.Addr(), "n1", 5*time.Second, 0)
	mac, err := c.node("n1").MAC("eth0")
	if err != nil {
		t.Fatal(err)
	}
	arps, err := c.lab.StartCapture("arp and ether src " + mac.String())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the capture runs; the first bursts are over
	attacker := c.node("n2")
	conn, err := attacker.ListenPacket("ip4:112", "0.0.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pc := ipv4.NewPacketConn(conn)
	out, err := attacker.IP("-o", "link", "show", "dev", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := strconv.Atoi(strings.SplitN(string(out), ":", 2)[0])
	if err := pc.SetMulticastInterface(&net.Interface{Index: idx}); err != nil {
		t.Fatal(err)
	}
	if err := pc.SetMulticastTTL(255); err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("192.0.2.12")
	vips := []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("192.0.2.101")}
	send := func(prio uint8) {
		adv := vrrp.Advert{Version: 3, VRID: 51, Priority: prio, Interval: time.Second, Addrs: vips}
		b, err := adv.Marshal(src, vrrp.GroupIPv4, vrrp.ChecksumPseudoHeader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.WriteTo(b, &net.IPAddr{IP: vrrp.GroupIPv4.AsSlice()}); err != nil {
			t.Fatal(err)
		}
	}
	floodStart := time.Now()
	tick := time.NewTicker(time.Millisecond)
	for range 2000 {
		<-tick.C
		send(50)
	}
	tick.Stop()
	flood := time.Since(floodStart)
	release := time.Now()
	send(250)
	var gone time.Duration
	for {
		a, _ := c.node("n1").HasAddr("eth0", vips[0])
		b, _ := c.node("n1").HasAddr("eth0", vips[1])
		if !a && !b {
			gone = time.Since(release)
			break
		}
		if time.Since(release) > 5*time.Second {
			t.Fatalf("the VIPs stayed on n1 5 s after a priority-250 advert:\n%s", c.procs["n1"].LogLines(20))
		}
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(time.Second)
	frames, err := arps.Stop()
	if err != nil {
		t.Fatal(err)
	}
	var during, after int
	for _, f := range frames {
		switch {
		case f.Time.Before(floodStart):
		case f.Time.Before(release):
			during++
		case f.Time.After(release.Add(20 * time.Millisecond)):
			after++
		}
	}
	// One answer per advert interval: a lower-priority burst of 5 per VIP
	// per second of flood, plus the one in flight.
	if limit := (int(flood/time.Second) + 2) * 5 * len(vips); during > limit {
		t.Errorf("%d gratuitous ARPs during a %s flood of 2,000 lower-priority adverts, want at most %d", during, flood.Round(time.Millisecond), limit)
	}
	if after > 0 {
		t.Errorf("%d gratuitous ARPs from n1 after it released the VIPs", after)
	}
	if gone > 500*time.Millisecond {
		t.Errorf("the VIPs were removed %s after the priority-250 advert, want well under 500ms", gone)
	}
	t.Logf("2,000 lower-priority adverts in %s: %d GARPs from the master; priority-250 advert → both VIPs gone in %s; %d GARPs after",
		flood.Round(time.Millisecond), during, gone.Round(time.Millisecond), after)
}

// Item 9: 20,000 adverts with a bad checksum from 500 spoofed sources in a
// few seconds are all counted, but they write at most the log budget (20
// lines per 10 s) plus a summary of what was held back; on 3d72256 every
// new source wrote a line (19,996 lines for 20,000 random sources).
func TestSpoofedFloodLogBudget(t *testing.T) {
	c := newCluster(t, 2)
	p := startConfig(t, c, "n1", writeConfig(t, c, "n1", `node: { name: n1 }
telemetry: { listen: "127.0.0.1:9730" }
vrrp:
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: 150, advert_interval: 100ms, vips: [192.0.2.100/24] }
`))
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 0)
	attacker := c.node("n2")
	conn, err := attacker.ListenPacket("ip4:112", "0.0.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw, err := ipv4.NewRawConn(conn)
	if err != nil {
		t.Fatal(err)
	}
	out, err := attacker.IP("-o", "link", "show", "dev", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := strconv.Atoi(strings.SplitN(string(out), ":", 2)[0])
	adv := vrrp.Advert{Version: 3, VRID: 51, Priority: 50, Interval: 100 * time.Millisecond, Addrs: []netip.Addr{vip4.Addr()}}
	body, err := adv.Marshal(netip.MustParseAddr("192.0.2.12"), vrrp.GroupIPv4, vrrp.ChecksumPseudoHeader)
	if err != nil {
		t.Fatal(err)
	}
	body[6] ^= 0xff // bad checksum, whatever the source
	const n = 20000
	start := time.Now()
	for i := range n {
		// 500 sources in the documentation ranges.
		src := net.IPv4(198, 51, 100, byte(i%250+1))
		if i%500 >= 250 {
			src = net.IPv4(203, 0, 113, byte(i%250+1))
		}
		h := &ipv4.Header{Version: 4, Len: ipv4.HeaderLen, TotalLen: ipv4.HeaderLen + len(body), TTL: 255, Protocol: 112,
			Src: src, Dst: vrrp.GroupIPv4.AsSlice()}
		if err := raw.WriteTo(h, body, &ipv4.ControlMessage{IfIndex: idx}); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 {
			time.Sleep(100 * time.Millisecond) // 10,000/s at most
		}
	}
	sent := time.Since(start)
	// All counted.
	deadline := time.Now().Add(5 * time.Second)
	var counted float64
	for {
		body, err := c.node("n1").HTTPGet(context.Background(), "http://127.0.0.1:9730/metrics")
		if err != nil {
			t.Fatal(err)
		}
		counted = metric(t, string(body), "vigil_vrrp_packet_errors_total", `reason="checksum"`)
		if counted >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if counted < n {
		t.Errorf("vigil_vrrp_packet_errors_total{reason=checksum} = %v, want %d", counted, n)
	}
	// The summary comes at the end of the budget's period (10 s).
	waitLog(t, c, "n1", `msg="log lines suppressed"`, 12*time.Second)
	lines := strings.Count(p.Log(), `msg="discarded VRRP packet"`)
	if lines > 20 {
		t.Errorf("%d discard lines for %d spoofed adverts, want at most the budget of 20", lines, n)
	}
	if st := statusAt(t, c, adminSock(c, "n1")); st.Instances[0].State != "master" {
		t.Errorf("the master is %s after the flood", st.Instances[0].State)
	}
	t.Logf("%d bad adverts from 500 sources in %s: %v counted, %d log lines, then: %s", n, sent.Round(time.Millisecond), counted, lines,
		grepLine(p.Log(), `msg="log lines suppressed"`))
}

func grepLine(log, substr string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}

// Item 4: an emptied file, or one cut after "instances:", is refused by
// the reload (the running master keeps its VIP), unless the file says the
// node is meant to run nothing (node.allow_empty). On 3d72256 the empty
// file removed every instance and VIP.
func TestEmptyOrTruncatedReloadRefused(t *testing.T) {
	c := newCluster(t, 1)
	full := `node: { name: n1 }
telemetry: { listen: "" }
vrrp:
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: 150, advert_interval: 100ms, vips: [192.0.2.100/24] }
`
	path := writeConfig(t, c, "n1", full)
	p := startConfig(t, c, "n1", path)
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 0)
	reload := func() (string, error) {
		out, err := exec.Command(c.bin, "config", "reload", "--socket", adminSock(c, "n1")).CombinedOutput()
		return string(out), err
	}
	truncated := full[:strings.Index(full, "    - {")]
	for name, text := range map[string]string{"empty": "", "truncated after instances:": truncated} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := reload()
		if err == nil {
			t.Fatalf("%s file: reload accepted:\n%s", name, out)
		}
		if !strings.Contains(out, "allow_empty") {
			t.Errorf("%s file: the refusal does not say how to mean it:\n%s", name, out)
		}
		c.waitHolder(vip4.Addr(), "n1", time.Second, 3*iv)
		if strings.Contains(p.Log(), "reason=config_reload") {
			t.Fatalf("%s file: an instance was stopped:\n%s", name, p.LogLines(20))
		}
	}
	if err := os.WriteFile(path, []byte("node: { name: n1, allow_empty: true }\ntelemetry: { listen: \"\" }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := reload(); err != nil {
		t.Fatalf("reload of an empty file with allow_empty: %v\n%s", err, out)
	}
	if err := c.node("n1").WaitAddr("eth0", vip4.Addr(), false, 3*time.Second); err != nil {
		t.Fatalf("allow_empty: the VIP stayed: %v", err)
	}
}

// Item 11: the notify FIFO is created 0600 for root, or 0660 for the group
// vrrp.notify_fifo_group names; a reload changing the group applies it.
func TestNotifyFIFOPermissions(t *testing.T) {
	c := newCluster(t, 1)
	fifo := filepath.Join(c.lab.Dir(), "notify.fifo")
	cfg := func(group string) string {
		return fmt.Sprintf(`node: { name: n1 }
telemetry: { listen: "" }
vrrp:
  notify_fifo: %s
  notify_fifo_group: %q
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: 150, advert_interval: 100ms, vips: [192.0.2.100/24] }
`, fifo, group)
	}
	path := writeConfig(t, c, "n1", cfg(""))
	startConfig(t, c, "n1", path)
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 0)
	check := func(mode os.FileMode, gid uint32) {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Stat(fifo, &st); err != nil {
			t.Fatal(err)
		}
		if got := os.FileMode(st.Mode) & os.ModePerm; got != mode || st.Uid != 0 || st.Gid != gid {
			t.Fatalf("FIFO mode %v uid %d gid %d, want %v uid 0 gid %d", got, st.Uid, st.Gid, mode, gid)
		}
	}
	check(0o600, 0)
	if err := os.WriteFile(path, []byte(cfg("65534")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(c.bin, "config", "reload", "--socket", adminSock(c, "n1")).CombinedOutput(); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	check(0o660, 65534)
}

// Item 13: under systemd's watchdog (WatchdogSec= in the unit) vigil sends
// READY=1, then WATCHDOG=1 every half interval while its event loop
// answers; a stopped daemon sends none (systemd then kills and restarts
// it).
func TestSystemdWatchdog(t *testing.T) {
	c := newCluster(t, 1)
	sockPath := filepath.Join(c.lab.Dir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 512)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	path := writeConfig(t, c, "n1", `node: { name: n1 }
telemetry: { listen: "" }
vrrp:
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: 150, advert_interval: 100ms, vips: [192.0.2.100/24] }
`)
	p, err := c.node("n1").StartWith(netlab.StartOptions{Env: []string{"NOTIFY_SOCKET=" + sockPath, "WATCHDOG_USEC=400000"}},
		c.bin, "run", "--config", path, "--admin-socket", adminSock(c, "n1"))
	if err != nil {
		t.Fatal(err)
	}
	c.procs["n1"] = p
	count := func(d time.Duration) (ready, pings int) {
		deadline := time.After(d)
		for {
			select {
			case m := <-msgs:
				ready += strings.Count(m, "READY=1")
				pings += strings.Count(m, "WATCHDOG=1")
			case <-deadline:
				return ready, pings
			}
		}
	}
	ready, pings := count(1500 * time.Millisecond)
	if ready != 1 || pings < 4 {
		t.Fatalf("READY=1 ×%d and WATCHDOG=1 ×%d in 1.5 s with a 400 ms watchdog, want 1 and about 7:\n%s", ready, pings, p.LogLines(10))
	}
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	count(100 * time.Millisecond) // a ping in flight
	if _, stopped := count(time.Second); stopped != 0 {
		t.Errorf("%d watchdog pings from a stopped daemon", stopped)
	}
	if err := p.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if _, again := count(time.Second); again < 2 {
		t.Errorf("%d watchdog pings in the second after SIGCONT", again)
	}
}

// Item 13: vigil_vrrp_gratuitous_sent_total counts every GARP, the delayed
// second burst's too (it counted only the first burst): equal to what the
// bridge saw.
func TestGratuitousCounterCountsDelayedBursts(t *testing.T) {
	c := newCluster(t, 1)
	mac, err := c.node("n1").MAC("eth0")
	if err != nil {
		t.Fatal(err)
	}
	arps, err := c.lab.StartCapture("arp and ether src " + mac.String())
	if err != nil {
		t.Fatal(err)
	}
	startConfig(t, c, "n1", writeConfig(t, c, "n1", `node: { name: n1 }
telemetry: { listen: "127.0.0.1:9730" }
vrrp:
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: 150, advert_interval: 100ms,
        garp: { repeat: 2, delay: 500ms }, vips: [192.0.2.100/24, 192.0.2.101/24] }
`))
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 0)
	time.Sleep(1500 * time.Millisecond) // the second burst is out
	body, err := c.node("n1").HTTPGet(context.Background(), "http://127.0.0.1:9730/metrics")
	if err != nil {
		t.Fatal(err)
	}
	counted := metric(t, string(body), "vigil_vrrp_gratuitous_sent_total", `vrrp_instance="web"`)
	frames, err := arps.Stop()
	if err != nil {
		t.Fatal(err)
	}
	garps := 0
	for _, f := range frames {
		// Ethernet + ARP: sender IP at 28, target IP at 38; a gratuitous
		// ARP names the VIP as both.
		if len(f.Data) >= 42 && string(f.Data[28:32]) == string(f.Data[38:42]) {
			garps++
		}
	}
	if garps != 8 || counted != float64(garps) {
		t.Fatalf("the bridge saw %d gratuitous ARPs (want 2 bursts × 2 × 2 VIPs = 8), the counter says %v", garps, counted)
	}
}

// A reload renaming an accept: false instance moves its nftables drop rule
// to the new name and leaves none under the old one (the all-or-nothing
// reload applies the rename in place).
func TestReloadRenameMovesAcceptRule(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed (test/deps.sh installs it)")
	}
	c := newCluster(t, 1)
	cfg := func(name string) string {
		return fmt.Sprintf(`node: { name: n1 }
telemetry: { listen: "" }
vrrp:
  instances:
    - { name: %s, interface: eth0, vrid: 51, priority: 150, accept: false, advert_interval: 100ms, vips: [192.0.2.100/24] }
`, name)
	}
	path := writeConfig(t, c, "n1", cfg("web"))
	startConfig(t, c, "n1", path)
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 0)
	rules := func() string {
		out, err := c.node("n1").Run(context.Background(), "nft", "list", "table", "inet", "vigil")
		if err != nil {
			t.Fatalf("nft list table inet vigil: %v\n%s", err, out)
		}
		return string(out)
	}
	if r := rules(); !strings.Contains(r, `"no_accept web ipv4"`) {
		t.Fatalf("no drop rule for web:\n%s", r)
	}
	if err := os.WriteFile(path, []byte(cfg("www")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(c.bin, "config", "reload", "--socket", adminSock(c, "n1")).CombinedOutput(); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if r := rules(); !strings.Contains(r, `"no_accept www ipv4"`) || strings.Contains(r, `"no_accept web ipv4"`) {
		t.Fatalf("after renaming web to www the drop rules are:\n%s", r)
	}
}
