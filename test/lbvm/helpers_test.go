package lbvm

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"vigil/lb"
	"vigil/lb/ipvsnet"
	"vigil/test/netlab"
)

// ipCmd is iproute2's ip in the VM image (busybox's applet has no netns).
const ipCmd = "/usr/sbin/ip"

func inVM(t testing.TB) {
	t.Helper()
	if os.Getenv("VIGIL_IN_VM") != "1" {
		t.Skip("runs inside the test VM only (VIGIL_IN_VM=1); from the host: VIGIL_NETNS=1 go test ./test/vm -run LB")
	}
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// labNode adds a node with the given addresses to lab.
func labNode(t testing.TB, lab *netlab.Lab, name string, addrs ...string) *netlab.Node {
	t.Helper()
	var ps []netip.Prefix
	for _, a := range addrs {
		ps = append(ps, netip.MustParsePrefix(a))
	}
	n, err := lab.AddNode(name, ps...)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// echoServer echoes every TCP connection to addr in n's namespace until
// the test ends.
func echoServer(t testing.TB, n *netlab.Node, addr string) {
	t.Helper()
	var ln net.Listener
	if err := n.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
}

// echoThrough sends three messages on conn and reads each back; what
// names the path in a failure.
func echoThrough(t testing.TB, conn net.Conn, what string) {
	t.Helper()
	buf := make([]byte, 5)
	for i := range 3 {
		msg := fmt.Sprintf("ping%d", i)
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %d through %s: %q, %v", i, what, buf, err)
		}
	}
}

// director creates network namespace name and returns an ipvsnet handle on
// its (empty) IPVS table; both go when the test ends.
func director(t testing.TB, name string) *ipvsnet.Handle {
	t.Helper()
	run(t, ipCmd, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command(ipCmd, "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	// The kernel accepts a destination only if its address is unicast in
	// the namespace's local routing table, which is empty while lo is down.
	run(t, ipCmd, "-n", name, "link", "set", "lo", "up")
	h, err := ipvsnet.Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func dump(t testing.TB, h *ipvsnet.Handle) lb.Table {
	t.Helper()
	tab, err := h.Dump()
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// reconcile is what the node driver does: dump, diff, apply. It returns
// the ops it applied.
func reconcile(t testing.TB, h *ipvsnet.Handle, desired lb.Table, managed func(lb.ServiceKey) bool) []lb.Op {
	t.Helper()
	ops := lb.Diff(desired, dump(t, h), managed)
	if err := h.Apply(ops); err != nil {
		t.Fatal(err)
	}
	return ops
}

// keysOf is lb.KeysOf, short.
var keysOf = lb.KeysOf

func opsString(ops []lb.Op) string {
	s := make([]string, len(ops))
	for i, o := range ops {
		s[i] = o.String()
	}
	return strings.Join(s, "\n")
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func tcp(addr string, port uint16, sched string) lb.Service {
	return lb.Service{Key: lb.ServiceKey{Protocol: lb.TCP, Addr: mustAddr(addr), Port: port}, Scheduler: sched}
}

func dst(addr string, port uint16, fwd lb.Forward, w int) lb.Dest {
	return lb.Dest{Addr: mustAddr(addr), Port: port, Forward: fwd, Weight: w}
}

func entry(s lb.Service, ds ...lb.Dest) lb.Entry {
	e := lb.Entry{Service: s, Dests: map[lb.DestKey]lb.Dest{}}
	for _, d := range ds {
		e.Dests[d.Key()] = d
	}
	return e
}

func table(es ...lb.Entry) lb.Table {
	t := lb.Table{}
	for _, e := range es {
		t[e.Service.Key] = e
	}
	return t
}

// checkDump fails unless the kernel table equals want (normalised).
func checkDump(t testing.TB, h *ipvsnet.Handle, when string, want lb.Table) lb.Table {
	t.Helper()
	got := dump(t, h)
	if !got.Equal(want.Normal()) {
		t.Fatalf("kernel table %s:\n got  %v\n want %v", when, got, want.Normal())
	}
	return got
}

// since is for the benchmark's figures only; no test asserts on time.
func since(t0 time.Time) time.Duration { return time.Since(t0) }
