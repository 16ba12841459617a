package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Root-only tests: VIGIL_NETNS=1 go test -race -count=1 ./test/netlab/

const testPrefix = "vgnl"

var (
	addrA4 = netip.MustParsePrefix("192.0.2.1/24")
	addrB4 = netip.MustParsePrefix("192.0.2.2/24")
	addrA6 = netip.MustParsePrefix("2001:db8::1/64")
	addrB6 = netip.MustParsePrefix("2001:db8::2/64")
	macA   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
)

// twoNodes builds a lab with nodes a (fixed MAC) and b, each with an IPv4 and an IPv6 address.
func twoNodes(t *testing.T) (*Lab, *Node, *Node) {
	t.Helper()
	lab := NewForTest(t, testPrefix)
	a, err := lab.AddNodeConfig(NodeConfig{Name: "a", Addrs: []netip.Prefix{addrA4, addrA6}, MAC: macA})
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.AddNode("b", addrB4, addrB6)
	if err != nil {
		t.Fatal(err)
	}
	return lab, a, b
}

func ping(n *Node, dst string, wait string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := n.Run(ctx, "ping", "-n", "-c1", "-W"+wait, dst)
	return err
}

func TestLabNodesAndPing(t *testing.T) {
	lab, a, b := twoNodes(t)

	names, err := Namespaces(lab.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if want := []string{lab.Prefix + "a", lab.Prefix + "b", lab.Prefix + "sw"}; !slices.Equal(names, want) {
		t.Errorf("namespaces %v, want %v", names, want)
	}
	if lab.Node("a") != a || lab.Node("b") != b || lab.Node("c") != nil || len(lab.Nodes()) != 2 {
		t.Errorf("Node lookups wrong: %v", lab.Nodes())
	}
	if _, err := lab.AddNode("a"); err == nil {
		t.Error("second node a: no error")
	}

	// Bridge settings.
	out, err := lab.SwitchRun(context.Background(), "ip", "-d", "-j", "link", "show", "dev", Bridge)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"stp_state":0`, `"forward_delay":0`, `"mcast_snooping":0`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("bridge details lack %s: %s", want, out)
		}
	}
	out, err = lab.SwitchRun(context.Background(), "ip", "-j", "link", "show", "master", Bridge)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"ifname":"a"`) || !strings.Contains(string(out), `"ifname":"b"`) {
		t.Errorf("bridge ports: %s", out)
	}

	// Addresses, MAC, link-local.
	mac, err := a.MAC(Dev)
	if err != nil || !bytes.Equal(mac, macA) {
		t.Errorf("a MAC %v, err %v; want %v", mac, err, macA)
	}
	ll, err := a.LinkLocal(Dev)
	if err != nil || ll != netip.MustParseAddr("fe80::ff:fe00:a") {
		t.Errorf("a link-local %v, err %v; want fe80::ff:fe00:a (EUI-64 of %v)", ll, err, macA)
	}
	llB, err := b.LinkLocal(Dev)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := a.Addrs(Dev)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []netip.Prefix{addrA4, addrA6, netip.MustParsePrefix("fe80::ff:fe00:a/64")} {
		if !slices.Contains(ps, want) {
			t.Errorf("a addrs %v lack %v", ps, want)
		}
	}
	infos, err := a.AddrInfos(Dev)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range infos {
		if i.Tentative || i.Dadfailed {
			t.Errorf("a address %v is tentative or failed DAD", i.Prefix)
		}
	}
	if has, err := b.HasAddr(Dev, addrB4.Addr()); err != nil || !has {
		t.Errorf("b HasAddr(%v) = %v, %v", addrB4.Addr(), has, err)
	}
	if has, err := b.HasAddr(Dev, addrA4.Addr()); err != nil || has {
		t.Errorf("b HasAddr(%v) = %v, %v", addrA4.Addr(), has, err)
	}
	if _, err := a.Addrs("nosuchdev"); err == nil || !strings.Contains(err.Error(), "nosuchdev") {
		t.Errorf("Addrs(nosuchdev): err %v", err)
	}
	if _, err := b.IP("addr", "add", "192.0.2.99/32", "dev", Dev); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitAddr(Dev, netip.MustParseAddr("192.0.2.99"), true, time.Second); err != nil {
		t.Error(err)
	}
	if err := b.WaitAddr(Dev, netip.MustParseAddr("192.0.2.98"), true, 50*time.Millisecond); err == nil {
		t.Error("WaitAddr for an absent address: no error")
	}

	if _, err := lab.StartCapture("not a (valid filter"); err == nil || !strings.Contains(err.Error(), "syntax error") {
		t.Errorf("StartCapture with a bad filter: %v, want tcpdump's syntax error", err)
	}

	// Traffic, captured on the bridge.
	c, err := lab.StartCapture("icmp or icmp6")
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	for _, dst := range []string{addrB4.Addr().String(), addrB6.Addr().String(), llB.String() + "%" + Dev} {
		if err := ping(a, dst, "2"); err != nil {
			t.Errorf("ping a -> %s: %v", dst, err)
		}
	}
	// The file is written packet by packet: readable while tcpdump runs.
	if err := poll(2*time.Second, 20*time.Millisecond, func() (bool, error) {
		fs, err := c.Frames()
		return len(fs) >= 6, err
	}); err != nil {
		t.Errorf("frames while capturing: %v", err)
	}
	after := time.Now()
	frames, err := c.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if again, err := c.Stop(); err != nil || len(again) != len(frames) {
		t.Errorf("second Stop: %d frames, %v", len(again), err)
	}
	if _, err := os.Stat(c.Path()); err != nil {
		t.Errorf("capture file: %v", err)
	}
	if !strings.Contains(c.Stderr(), "packets captured") {
		t.Errorf("tcpdump stderr: %q", c.Stderr())
	}

	type key struct {
		v6      bool
		request bool
		src     netip.Addr
	}
	seen := map[key]int{}
	for i, f := range frames {
		if f.Time.Before(before.Add(-50*time.Millisecond)) || f.Time.After(after.Add(50*time.Millisecond)) {
			t.Errorf("frame %d time %v outside [%v, %v]", i, f.Time, before, after)
		}
		if i > 0 && f.Time.Before(frames[i-1].Time) {
			t.Errorf("frame %d time %v before frame %d's %v", i, f.Time, i-1, frames[i-1].Time)
		}
		p := gopacket.NewPacket(f.Data, layers.LayerTypeEthernet, gopacket.Default)
		if l, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
			ip4 := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			src, _ := netip.AddrFromSlice(ip4.SrcIP)
			switch l.TypeCode.Type() {
			case layers.ICMPv4TypeEchoRequest:
				seen[key{false, true, src}]++
			case layers.ICMPv4TypeEchoReply:
				seen[key{false, false, src}]++
			}
		}
		if l, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok {
			ip6 := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			src, _ := netip.AddrFromSlice(ip6.SrcIP)
			switch l.TypeCode.Type() {
			case layers.ICMPv6TypeEchoRequest:
				seen[key{true, true, src}]++
			case layers.ICMPv6TypeEchoReply:
				seen[key{true, false, src}]++
			}
		}
	}
	for _, k := range []key{
		{false, true, addrA4.Addr()}, {false, false, addrB4.Addr()},
		{true, true, addrA6.Addr()}, {true, false, addrB6.Addr()},
		{true, true, ll}, {true, false, llB},
	} {
		if seen[k] != 1 {
			t.Errorf("echo (v6 %v, request %v) from %v seen %d times, want 1 (all: %v)", k.v6, k.request, k.src, seen[k], seen)
		}
	}
}

func TestNodeDev(t *testing.T) {
	lab := NewForTest(t, testPrefix)
	a, err := lab.AddNodeConfig(NodeConfig{Name: "a", Addrs: []netip.Prefix{addrA4, addrA6}, MAC: macA, Dev: "lan0"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.AddNode("b", addrB4)
	if err != nil {
		t.Fatal(err)
	}
	if a.Dev != "lan0" || b.Dev != Dev {
		t.Errorf("Dev of a, b = %q, %q; want lan0, %s", a.Dev, b.Dev, Dev)
	}
	if mac, err := a.MAC("lan0"); err != nil || !bytes.Equal(mac, macA) {
		t.Errorf("a lan0 MAC %v, err %v; want %v", mac, err, macA)
	}
	if ll, err := a.LinkLocal("lan0"); err != nil || ll != netip.MustParseAddr("fe80::ff:fe00:a") {
		t.Errorf("a lan0 link-local %v, err %v; want fe80::ff:fe00:a", ll, err)
	}
	if has, err := a.HasAddr("lan0", addrA6.Addr()); err != nil || !has {
		t.Errorf("a HasAddr(lan0, %v) = %v, %v", addrA6.Addr(), has, err)
	}
	if _, err := a.MAC(Dev); err == nil {
		t.Errorf("node a has an %s besides lan0", Dev)
	}
	if err := ping(b, addrA4.Addr().String(), "2"); err != nil {
		t.Errorf("ping b -> a (lan0): %v", err)
	}
}

func TestLinkDownUp(t *testing.T) {
	_, a, b := twoNodes(t)
	if err := ping(a, addrB4.Addr().String(), "2"); err != nil {
		t.Fatalf("before LinkDown: %v", err)
	}
	if err := b.LinkDown(); err != nil {
		t.Fatal(err)
	}
	if err := poll(2*time.Second, 10*time.Millisecond, func() (bool, error) {
		c, err := b.HasCarrier(Dev)
		return !c, err
	}); err != nil {
		t.Errorf("b keeps its carrier after LinkDown: %v", err)
	}
	if st, err := b.OperState(Dev); err != nil || st != "DOWN" {
		t.Errorf("b eth0 state %q, err %v; want DOWN", st, err)
	}
	for _, dst := range []string{addrB4.Addr().String(), addrB6.Addr().String()} {
		if err := ping(a, dst, "0.5"); err == nil {
			t.Errorf("ping a -> %s works while b's link is down", dst)
		}
	}
	if err := b.LinkUp(); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{addrB4.Addr().String(), addrB6.Addr().String()} {
		if err := poll(5*time.Second, 0, func() (bool, error) { return ping(a, dst, "0.5") == nil, nil }); err != nil {
			t.Errorf("ping a -> %s after LinkUp: %v", dst, err)
		}
	}
	if c, err := b.HasCarrier(Dev); err != nil || !c {
		t.Errorf("b carrier after LinkUp: %v, %v", c, err)
	}
	if _, err := b.LinkLocal(Dev); err != nil {
		t.Errorf("b link-local after LinkUp: %v", err)
	}
}

// inNS runs f on a thread in namespace ns; the thread is discarded afterwards.
func inNS(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- fmt.Errorf("open namespace %s: %w", ns, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// TestVRRPMulticastFloods sends VRRP-shaped packets over raw sockets from a to the VRRP groups,
// receives them on b (so the bridge floods multicast), and decodes them from the bridge capture.
func TestVRRPMulticastFloods(t *testing.T) {
	lab, a, b := twoNodes(t)
	llA, err := a.LinkLocal(Dev)
	if err != nil {
		t.Fatal(err)
	}
	group4 := net.IPv4(224, 0, 0, 18)
	group6 := net.ParseIP("ff02::12")
	msg4 := []byte{0x31, 51, 150, 1, 0x00, 0x64, 0, 0, 192, 0, 2, 100}
	msg6 := slices.Concat([]byte{0x31, 51, 150, 1, 0x00, 0x64, 0, 0}, netip.MustParseAddr("2001:db8::100").AsSlice())

	var recv4, recv6 net.PacketConn
	err = inNS(b.NS, func() error {
		ifi, err := net.InterfaceByName(Dev)
		if err != nil {
			return err
		}
		if recv4, err = net.ListenPacket("ip4:112", "0.0.0.0"); err != nil {
			return err
		}
		if err := ipv4.NewPacketConn(recv4).JoinGroup(ifi, &net.IPAddr{IP: group4}); err != nil {
			return err
		}
		if recv6, err = net.ListenPacket("ip6:112", "::"); err != nil {
			return err
		}
		return ipv6.NewPacketConn(recv6).JoinGroup(ifi, &net.IPAddr{IP: group6})
	})
	for _, c := range []net.PacketConn{recv4, recv6} {
		if c != nil {
			defer c.Close()
		}
	}
	if err != nil {
		t.Fatalf("receiver on b: %v", err)
	}

	c, err := lab.StartCapture(FilterVRRP)
	if err != nil {
		t.Fatal(err)
	}
	err = inNS(a.NS, func() error {
		ifi, err := net.InterfaceByName(Dev)
		if err != nil {
			return err
		}
		c4, err := net.ListenPacket("ip4:112", addrA4.Addr().String())
		if err != nil {
			return err
		}
		defer c4.Close()
		p4 := ipv4.NewPacketConn(c4)
		if err := p4.SetMulticastTTL(255); err != nil {
			return err
		}
		if err := p4.SetMulticastInterface(ifi); err != nil {
			return err
		}
		if _, err := c4.WriteTo(msg4, &net.IPAddr{IP: group4}); err != nil {
			return err
		}
		c6, err := net.ListenPacket("ip6:112", "::")
		if err != nil {
			return err
		}
		defer c6.Close()
		p6 := ipv6.NewPacketConn(c6)
		if err := p6.SetMulticastHopLimit(255); err != nil {
			return err
		}
		if err := p6.SetMulticastInterface(ifi); err != nil {
			return err
		}
		_, err = c6.WriteTo(msg6, &net.IPAddr{IP: group6, Zone: Dev})
		return err
	})
	if err != nil {
		t.Fatalf("sender on a: %v", err)
	}

	for _, r := range []struct {
		c   net.PacketConn
		msg []byte
	}{{recv4, msg4}, {recv6, msg6}} {
		buf := make([]byte, 1500)
		if err := r.c.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, from, err := r.c.ReadFrom(buf)
		if err != nil {
			t.Errorf("b did not receive the advert: %v", err)
			continue
		}
		if !bytes.Equal(buf[:n], r.msg) {
			t.Errorf("b received % x from %v, want % x", buf[:n], from, r.msg)
		}
	}

	var vf []VRRPFrame
	if err := poll(2*time.Second, 20*time.Millisecond, func() (bool, error) {
		fs, err := c.Frames()
		vf = VRRPFrames(fs)
		return len(vf) >= 2, err
	}); err != nil {
		t.Errorf("waiting for 2 VRRP frames in the capture: %v", err)
	}
	frames, err := c.Stop()
	if err != nil {
		t.Fatal(err)
	}
	vf = VRRPFrames(frames)
	if len(vf) != 2 {
		t.Fatalf("captured %d VRRP frames, want 2: %+v", len(vf), vf)
	}
	want := []struct {
		src, dst netip.Addr
		dstMAC   string
		msg      []byte
	}{
		{addrA4.Addr(), netip.MustParseAddr("224.0.0.18"), "01:00:5e:00:00:12", msg4},
		{llA, netip.MustParseAddr("ff02::12"), "33:33:00:00:00:12", msg6},
	}
	for i, w := range want {
		f := vf[i]
		if f.Src != w.src || f.Dst != w.dst || f.DstMAC.String() != w.dstMAC || !bytes.Equal(f.SrcMAC, macA) ||
			f.TTL != 255 || f.Version != 3 || f.VRID != 51 || f.Priority != 150 || f.Interval != time.Second ||
			!bytes.Equal(f.Payload, w.msg) {
			t.Errorf("VRRP frame %d: %+v; want %v (%v) -> %v (%s), TTL 255, v3 VRID 51 prio 150, payload % x",
				i, f, w.src, macA, w.dst, w.dstMAC, w.msg)
		}
	}
}

func TestProcesses(t *testing.T) {
	lab := NewForTest(t, testPrefix)
	a, err := lab.AddNode("a", addrA4)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Start("sh", "-c", `echo "hello from $(ip netns identify)"; echo oops >&2; exec sleep 1000`)
	if err != nil {
		t.Fatal(err)
	}
	if err := poll(3*time.Second, 10*time.Millisecond, func() (bool, error) {
		return strings.Contains(p.Log(), "hello from "+a.NS) && strings.Contains(p.Log(), "oops"), nil
	}); err != nil {
		t.Errorf("log %q: %v", p.Log(), err)
	}
	// The pid is the command's, in the node's namespace (sh exec'd sleep: same pid).
	if err := poll(2*time.Second, 10*time.Millisecond, func() (bool, error) {
		comm, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid()) + "/comm")
		return strings.TrimSpace(string(comm)) == "sleep", err
	}); err != nil {
		t.Errorf("pid %d is not sleep: %v", p.Pid(), err)
	}
	pids, err := nsPids(a.NS)
	if err != nil || !slices.Contains(pids, p.Pid()) {
		t.Errorf("pids in %s: %v, %v; want %d among them", a.NS, pids, err, p.Pid())
	}
	if err := p.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("Signal 0: %v", err)
	}
	if err := p.Stop(2 * time.Second); err != nil {
		t.Errorf("Stop of a process that dies of SIGTERM: %v", err)
	}
	if !p.Exited() || p.Stop(time.Second) != nil {
		t.Error("Stop is not idempotent")
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after exit: %v, want os.ErrProcessDone", err)
	}

	if _, err := a.Start("/nonexistent/vigil-netlab-cmd"); err == nil || !strings.Contains(err.Error(), "vigil-netlab-cmd") {
		t.Errorf("Start of a missing command: %v", err)
	}

	// Exit status.
	q, err := a.Start("sh", "-c", "exit 3")
	if err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := q.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("Wait: %v, want exit status 3", err)
	}
	if err := q.Stop(time.Second); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("Stop after exit 3: %v, want exit status 3", err)
	}

	// Environment and a stubborn process stopped by SIGKILL.
	r, err := a.StartWith(StartOptions{Env: []string{"NETLAB_X=42"}}, "sh", "-c", `trap "" TERM; echo "x=$NETLAB_X"; while :; do sleep 0.05; done`)
	if err != nil {
		t.Fatal(err)
	}
	if err := poll(2*time.Second, 10*time.Millisecond, func() (bool, error) { return strings.Contains(r.Log(), "x=42"), nil }); err != nil {
		t.Errorf("env: log %q", r.Log())
	}
	start := time.Now()
	if err := r.Stop(200 * time.Millisecond); !errors.Is(err, ErrKilled) {
		t.Errorf("Stop of a process ignoring SIGTERM: %v, want ErrKilled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Stop took %v", d)
	}

	// Run: output, errors with the output, context.
	ctx := context.Background()
	out, err := a.Run(ctx, "ip", "-br", "addr", "show", "dev", Dev)
	if err != nil || !strings.Contains(string(out), "192.0.2.1/24") {
		t.Errorf("Run ip addr: %q, %v", out, err)
	}
	_, err = a.Run(ctx, "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 2")
	var ce *CmdError
	if err == nil || !errors.As(err, &ce) || !strings.Contains(err.Error(), "to-stderr") || !strings.Contains(err.Error(), "exit status 2") {
		t.Errorf("Run failure: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := a.Run(tctx, "sleep", "10"); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run past its deadline: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run past its deadline took %v", d)
	}
	if len(lab.Processes()) != 3 {
		t.Errorf("lab processes: %d, want 3", len(lab.Processes()))
	}
}

// alive reports whether pid is a live process (zombies count as dead).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestCloseRemovesEverything(t *testing.T) {
	Require(t)
	prefix := tagged(t, testPrefix)
	if err := Cleanup(prefix); err != nil {
		t.Fatal(err)
	}
	lab, err := New(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lab.Close() })
	lab.StopTimeout = 300 * time.Millisecond
	a, err := lab.AddNode("a", addrA4)
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.AddNode("b", addrB4)
	if err != nil {
		t.Fatal(err)
	}
	stubborn, err := a.Start("sh", "-c", `trap "" TERM; sleep 1000`)
	if err != nil {
		t.Fatal(err)
	}
	// Escapes its process group: only the namespace sweep finds it.
	if _, err := b.Start("setsid", "sleep", "1001"); err != nil {
		t.Fatal(err)
	}
	plain, err := b.Start("sleep", "1002")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.StartCapture(""); err != nil {
		t.Fatal(err)
	}
	var pids []int
	if err := poll(3*time.Second, 20*time.Millisecond, func() (bool, error) {
		pa, err := nsPids(a.NS)
		if err != nil {
			return false, err
		}
		pb, err := nsPids(b.NS)
		if err != nil {
			return false, err
		}
		pids = append(pa, pb...)
		return len(pa) >= 2 && len(pb) >= 2, nil // sh + sleep; setsid's sleep + sleep
	}); err != nil {
		t.Fatalf("processes in the namespaces: %v: %v", pids, err)
	}
	pids = append(pids, stubborn.Pid(), plain.Pid())
	dir := lab.Dir()

	start := time.Now()
	if err := lab.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	if names, err := Namespaces(prefix); err != nil || len(names) != 0 {
		t.Errorf("namespaces after Close: %v, %v", names, err)
	}
	out, err := ip("netns", "list")
	if err != nil || strings.Contains(string(out), prefix) {
		t.Errorf("`ip netns list` after Close: %q, %v", out, err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d still alive after Close", pid)
		}
	}
	if !stubborn.Exited() || !plain.Exited() {
		t.Error("processes not reaped after Close")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab directory after Close: %v", err)
	}
	if err := lab.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := lab.AddNode("c"); !errors.Is(err, ErrClosed) {
		t.Errorf("AddNode after Close: %v", err)
	}
	if _, err := a.Start("true"); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
	if _, err := lab.StartCapture(""); !errors.Is(err, ErrClosed) {
		t.Errorf("StartCapture after Close: %v", err)
	}
}

func TestCleanupLeftovers(t *testing.T) {
	Require(t)
	prefix := tagged(t, "vgnc")
	if err := Cleanup(prefix); err != nil {
		t.Fatal(err)
	}
	lab, err := New(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lab.Close() })
	a, err := lab.AddNode("a", addrA4)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Start("sleep", "1000")
	if err != nil {
		t.Fatal(err)
	}
	// A crashed run: nothing closed. A new lab with the prefix is refused...
	if _, err := New(prefix); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("New over leftovers: %v, want an already-exists error", err)
	}
	// ...and the refused New did not touch the leftovers.
	if names, _ := Namespaces(prefix); len(names) != 2 {
		t.Errorf("namespaces after refused New: %v", names)
	}
	if err := Cleanup(prefix); err != nil {
		t.Fatal(err)
	}
	if names, err := Namespaces(prefix); err != nil || len(names) != 0 {
		t.Errorf("namespaces after Cleanup: %v, %v", names, err)
	}
	select {
	case <-p.Done():
	case <-time.After(3 * time.Second):
		t.Error("process in a leftover namespace not killed by Cleanup")
	}
	if _, err := os.Stat(lab.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab directory after Cleanup: %v", err)
	}
	if err := lab.Close(); err != nil {
		t.Errorf("Close after Cleanup: %v", err)
	}
}

func TestAddNodeLeavesForeignNamespace(t *testing.T) {
	lab := NewForTest(t, testPrefix)
	// A namespace the lab did not create, in the way of node z.
	if _, err := ip("netns", "add", lab.Prefix+"z"); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = ip("netns", "delete", lab.Prefix+"z") }()
	if _, err := lab.AddNode("z", addrA4); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("AddNode over an existing namespace: %v", err)
	}
	if !nsExists(lab.Prefix + "z") {
		t.Error("the failed AddNode deleted a namespace it did not create")
	}
	if lab.Node("z") != nil {
		t.Error("failed node is listed")
	}
	// A setup that fails half-way (the same address twice) is undone: the name is free again.
	_, err := lab.AddNode("y", addrA4, addrA4)
	if err == nil || !strings.Contains(err.Error(), "node y") || !strings.Contains(err.Error(), "already assigned") {
		t.Errorf("AddNode with a duplicate address: %v", err)
	}
	if nsExists(lab.Prefix+"y") || lab.Node("y") != nil {
		t.Error("failed node y left behind")
	}
	if _, err := lab.AddNode("y", addrA4); err != nil {
		t.Error(err)
	}
	if err := lab.Close(); err != nil {
		t.Error(err)
	}
	if !nsExists(lab.Prefix + "z") {
		t.Error("Close deleted a namespace the lab did not create")
	}
}
