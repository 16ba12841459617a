package nslab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Names and defaults of a lab.
const (
	// Bridge is the name of the bridge in the switch namespace.
	Bridge = "br0"
	// Dev is the default name of a node's interface on the segment (see NodeConfig.Dev).
	Dev = "eth0"
	// DefaultStopTimeout is how long Close waits for processes after SIGTERM before SIGKILL.
	DefaultStopTimeout = 3 * time.Second
	// netnsDir is where iproute2 keeps named namespaces.
	netnsDir = "/var/run/netns"
)

var (
	prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{1,9}$`)
	nameRE   = regexp.MustCompile(`^[a-z][a-z0-9]{0,14}$`)
	docNets  = []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("fe80::/10"),
	}
)

// ErrClosed is returned by operations on a closed Lab.
var ErrClosed = errors.New("netlab: lab is closed")

// Lab is one Ethernet segment (a bridge in a switch namespace) and the nodes attached to it.
// Its methods are safe for concurrent use.
type Lab struct {
	// Prefix starts the name of every namespace of the lab.
	Prefix string
	// SwitchNS is the namespace holding the bridge ("<prefix>sw").
	SwitchNS string
	// StopTimeout is how long Close waits for each process after SIGTERM before it sends SIGKILL
	// (DefaultStopTimeout when zero). Set it before Close.
	StopTimeout time.Duration
	// KeepFiles makes Close keep the lab's directory (logs, captures) instead of removing it.
	KeepFiles bool

	dir string

	mu         sync.Mutex
	daemonPriv *Privileges // for the vigil daemons started on the lab's nodes; nil: the caller's
	closed     bool
	namespaces []string // created by this lab, in creation order
	nodes      map[string]*Node
	order      []*Node
	procs      []*Process
	captures   []*Capture
	seq        int
}

// NodeConfig describes a node for AddNodeConfig.
type NodeConfig struct {
	// Name is the node's short name: a lowercase letter then up to 14 lowercase letters or digits.
	Name string
	// Addrs are assigned to the node's interface (IPv6 ones with nodad, usable at once).
	Addrs []netip.Prefix
	// MAC, when set, is the interface's hardware address (use a locally administered unicast
	// address such as 02:00:00:00:00:01); otherwise the kernel picks a random one.
	MAC net.HardwareAddr
	// Dev, when set, names the node's interface instead of Dev ("eth0"): a lowercase letter then
	// up to 14 lowercase letters or digits, not lo. In-process tests want a name the root
	// namespace lacks when the code under test resolves names from threads outside the node's
	// namespace (Go's IPv6 zone cache, for one, is shared by every namespace).
	Dev string
}

// New creates the switch namespace "<prefix>sw" with bridge "br0" (up, no STP, forward delay 0,
// multicast snooping off, IPv6 off in that namespace) and a private temporary directory for logs
// and captures. prefix is a lowercase letter then 1 to 9 lowercase letters or digits. On error,
// whatever was created is removed.
func New(prefix string) (*Lab, error) {
	if !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("netlab: invalid lab prefix %q: want a lowercase letter then 1 to 9 lowercase letters or digits", prefix)
	}
	if _, err := IPPath(); err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	dir, err := os.MkdirTemp("", tempPattern(prefix))
	if err != nil {
		return nil, fmt.Errorf("netlab: create lab directory: %w", err)
	}
	l := &Lab{Prefix: prefix, SwitchNS: prefix + "sw", dir: dir, nodes: map[string]*Node{}}
	if err := l.setupSwitch(); err != nil {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("netlab: cleanup after failed New: %w", cerr))
		}
		return nil, err
	}
	return l, nil
}

// SetDaemonPrivileges makes the vigil daemons started on the lab's nodes from now on run with p
// (nil: with the privileges of the process starting them). test/netlab.NewForTest sets the systemd
// unit's.
func (l *Lab) SetDaemonPrivileges(p *Privileges) {
	l.mu.Lock()
	l.daemonPriv = p
	l.mu.Unlock()
}

// DaemonPrivileges returns what SetDaemonPrivileges set.
func (l *Lab) DaemonPrivileges() *Privileges {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.daemonPriv
}

func tempPattern(prefix string) string { return "netlab-" + prefix + "-" }

func (l *Lab) setupSwitch() error {
	sw := l.SwitchNS
	if err := l.addNamespace(sw); err != nil {
		return err
	}
	// IPv6 off before the bridge and ports exist, so they inherit it from "default": the switch
	// adds no traffic (router solicitations, MLD) to the segment.
	err := nsSetup(sw,
		[]string{"net.ipv6.conf.default.disable_ipv6", "1", "net.ipv6.conf.all.disable_ipv6", "1"},
		[][]string{
			{"link", "set", "dev", "lo", "up"},
			{"link", "add", "name", Bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"},
			{"link", "set", "dev", Bridge, "up"},
		})
	if err != nil {
		return fmt.Errorf("netlab: set up bridge %s in switch namespace %s: %w", Bridge, sw, err)
	}
	return nil
}

// addNamespace creates a named namespace and records it for Close. An existing namespace is an
// error and is left alone (it is not ours).
func (l *Lab) addNamespace(ns string) error {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if NamespaceExists(ns) {
		return fmt.Errorf("netlab: namespace %s already exists (leftover of a crashed run? netlab.Cleanup(%q) removes it)", ns, l.Prefix)
	}
	if _, err := ip("netns", "add", ns); err != nil {
		return fmt.Errorf("netlab: create namespace %s: %w", ns, err)
	}
	l.mu.Lock()
	l.namespaces = append(l.namespaces, ns)
	l.mu.Unlock()
	return nil
}

// Dir is the lab's private temporary directory (process logs, captures). Close removes it unless
// KeepFiles is set.
func (l *Lab) Dir() string { return l.dir }

// AddNode creates node namespace "<prefix><name>" with eth0 on the segment (bridge port "<name>"),
// lo and eth0 up, the given addresses on eth0, IPv6 DAD off and eth0's IPv6 link-local address
// ready (not tentative) before it returns.
func (l *Lab) AddNode(name string, addrs ...netip.Prefix) (*Node, error) {
	return l.AddNodeConfig(NodeConfig{Name: name, Addrs: addrs})
}

// AddNodeConfig is AddNode with more options (a fixed MAC address, another interface name).
func (l *Lab) AddNodeConfig(cfg NodeConfig) (*Node, error) {
	name := cfg.Name
	if !nameRE.MatchString(name) || name == "sw" || name == Bridge || name == "lo" {
		return nil, fmt.Errorf("netlab: invalid node name %q: want a lowercase letter then up to 14 lowercase letters or digits, not sw, br0 or lo", name)
	}
	for _, p := range cfg.Addrs {
		if err := checkPrefix(p); err != nil {
			return nil, fmt.Errorf("netlab: node %s: %w", name, err)
		}
	}
	if cfg.MAC != nil && (len(cfg.MAC) != 6 || cfg.MAC[0]&1 != 0) {
		return nil, fmt.Errorf("netlab: node %s: MAC %v is not a 6-byte unicast address", name, cfg.MAC)
	}
	dev := cfg.Dev
	if dev == "" {
		dev = Dev
	}
	if !nameRE.MatchString(dev) || dev == "lo" {
		return nil, fmt.Errorf("netlab: node %s: invalid interface name %q: want a lowercase letter then up to 14 lowercase letters or digits, not lo", name, dev)
	}
	n := &Node{Name: name, NS: l.Prefix + name, Port: name, Dev: dev, lab: l}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	if _, dup := l.nodes[name]; dup {
		l.mu.Unlock()
		return nil, fmt.Errorf("netlab: node %s already exists in lab %s", name, l.Prefix)
	}
	l.nodes[name] = n // reserve the name
	l.mu.Unlock()

	if err := l.setupNode(n, cfg); err != nil {
		l.mu.Lock()
		delete(l.nodes, name)
		l.mu.Unlock()
		if derr := l.removeNamespace(n.NS); derr != nil {
			err = errors.Join(err, derr)
		}
		// The port goes with the namespace, but asynchronously: delete it now so the name can be
		// used again at once. Not there (veth never created) is fine.
		_, _ = ip("-n", l.SwitchNS, "link", "del", "dev", n.Port)
		return nil, err
	}
	l.mu.Lock()
	l.order = append(l.order, n)
	l.mu.Unlock()
	return n, nil
}

func checkPrefix(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("invalid address prefix %v", p)
	}
	a := p.Addr()
	if a.Is4In6() {
		return fmt.Errorf("address %v: use the plain IPv4 form", a)
	}
	for _, d := range docNets {
		if d.Contains(a) {
			return nil
		}
	}
	return fmt.Errorf("address %v is outside the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) and IPv6 link-local", a)
}

func (l *Lab) setupNode(n *Node, cfg NodeConfig) error {
	if err := l.addNamespace(n.NS); err != nil {
		return err
	}
	fail := func(what string, err error) error {
		return fmt.Errorf("netlab: node %s (namespace %s): %s: %w", n.Name, n.NS, what, err)
	}
	// The switch side first, so the node's interface has its carrier as soon as it is up.
	if err := ipBatch(l.SwitchNS, [][]string{
		{"link", "add", "name", n.Port, "type", "veth", "peer", "name", n.Dev, "netns", n.NS},
		{"link", "set", "dev", n.Port, "master", Bridge},
		{"link", "set", "dev", n.Port, "up"},
	}); err != nil {
		return fail("create veth and bridge port "+n.Port+" in namespace "+l.SwitchNS, err)
	}
	var cmds [][]string
	if cfg.MAC != nil {
		cmds = append(cmds, []string{"link", "set", "dev", n.Dev, "address", cfg.MAC.String()})
	}
	cmds = append(cmds, []string{"link", "set", "dev", "lo", "up"}, []string{"link", "set", "dev", n.Dev, "up"})
	for _, p := range cfg.Addrs {
		c := []string{"addr", "add", p.String(), "dev", n.Dev}
		if p.Addr().Is6() {
			c = append(c, "nodad")
		}
		cmds = append(cmds, c)
	}
	// DAD off before the interface comes up, so its link-local address is usable at once; "all" and
	// "default" too, for interfaces tests add later (macvlan for a virtual MAC, for instance).
	if err := nsSetup(n.NS, []string{
		"net.ipv6.conf.all.accept_dad", "0",
		"net.ipv6.conf.default.accept_dad", "0",
		"net.ipv6.conf." + n.Dev + ".accept_dad", "0",
	}, cmds); err != nil {
		return fail("set up lo and "+n.Dev, err)
	}
	if err := Poll(5*time.Second, 10*time.Millisecond, func() (bool, error) {
		_, err := n.LinkLocal(n.Dev)
		return err == nil, err
	}); err != nil {
		return fail("wait for IPv6 link-local address", err)
	}
	return nil
}

// Node returns the node called name, or nil.
func (l *Lab) Node(name string) *Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.order {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Nodes returns the lab's nodes in the order they were added.
func (l *Lab) Nodes() []*Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Node(nil), l.order...)
}

// SwitchRun runs `ip netns exec <switch ns> name args...` (for tc, bridge, ip, ...) and returns
// its combined output; the error includes it. ctx bounds the run.
func (l *Lab) SwitchRun(ctx context.Context, name string, args ...string) ([]byte, error) {
	bin, err := IPPath()
	if err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	out, err := runCmd(ctx, nil, bin, append([]string{"netns", "exec", l.SwitchNS, name}, args...)...)
	if err != nil {
		return out, fmt.Errorf("netlab: switch namespace %s: %w", l.SwitchNS, err)
	}
	return out, nil
}

// Processes returns every process started in the lab, running or not.
func (l *Lab) Processes() []*Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Process(nil), l.procs...)
}

func (l *Lab) register(p *Process) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.procs = append(l.procs, p)
	return nil
}

func (l *Lab) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

func (l *Lab) nextSeq() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	return l.seq
}

// Close stops the lab's captures, stops its processes (SIGTERM, then SIGKILL to their process
// groups after StopTimeout), kills anything else left in its namespaces, deletes the namespaces
// and removes the lab's directory (unless KeepFiles). It goes on after errors, returns them
// joined, and is idempotent: later calls return nil.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs := append([]*Process(nil), l.procs...)
	caps := append([]*Capture(nil), l.captures...)
	namespaces := append([]string(nil), l.namespaces...)
	timeout := l.StopTimeout
	l.mu.Unlock()
	if timeout <= 0 {
		timeout = DefaultStopTimeout
	}

	var errs []error
	for _, c := range caps {
		c.halt()
	}
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Exit statuses and ErrKilled are the test's business, not Close's; a process that
			// survives SIGKILL is reported.
			if err := p.Stop(timeout); err != nil && errors.Is(err, errNotDead) {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Nodes first, the switch last.
	for i := len(namespaces) - 1; i >= 0; i-- {
		if err := l.removeNamespace(namespaces[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if !l.KeepFiles && l.dir != "" {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, fmt.Errorf("netlab: remove lab directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

// removeNamespace kills every process in ns and deletes it, if this lab created it; a namespace
// that is already gone is not an error.
func (l *Lab) removeNamespace(ns string) error {
	l.mu.Lock()
	ours := slices.Contains(l.namespaces, ns)
	l.mu.Unlock()
	if !ours {
		return nil
	}
	err := deleteNamespace(ns)
	if err == nil {
		l.mu.Lock()
		l.namespaces = slices.DeleteFunc(l.namespaces, func(x string) bool { return x == ns })
		l.mu.Unlock()
	}
	return err
}

// NamespaceExists reports whether the named namespace ns exists.
func NamespaceExists(ns string) bool {
	_, err := os.Lstat(filepath.Join(netnsDir, ns))
	return err == nil
}

// NamespacePids lists the processes in namespace ns (`ip netns pids`), leaving out this process.
func NamespacePids(ns string) ([]int, error) {
	out, err := ip("netns", "pids", ns)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("`ip netns pids %s`: unexpected output %q", ns, out)
		}
		if pid > 1 && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// deleteNamespace SIGKILLs the processes left in ns, waits briefly for them to go, and deletes
// the namespace.
func deleteNamespace(ns string) error {
	if !NamespaceExists(ns) {
		return nil
	}
	var errs []error
	err := Poll(3*time.Second, 20*time.Millisecond, func() (bool, error) {
		pids, err := NamespacePids(ns)
		if err != nil {
			return false, err
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return len(pids) == 0, nil
	})
	if err != nil {
		// Delete it anyway: the name goes, the namespace dies with its last process.
		errs = append(errs, fmt.Errorf("netlab: kill processes in namespace %s: %w", ns, err))
	}
	if _, err := ip("netns", "delete", ns); err != nil && NamespaceExists(ns) {
		errs = append(errs, fmt.Errorf("netlab: delete namespace %s: %w", ns, err))
	}
	return errors.Join(errs...)
}

// Namespaces lists the named network namespaces whose name starts with prefix.
func Namespaces(prefix string) ([]string, error) {
	out, err := ipJSON("netns", "list")
	if err != nil {
		return nil, fmt.Errorf("netlab: list namespaces: %w", err)
	}
	var list []struct {
		Name string `json:"name"`
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		if err := json.Unmarshal([]byte(s), &list); err != nil {
			return nil, fmt.Errorf("netlab: parse `ip -j netns list` output %q: %w", s, err)
		}
	}
	var names []string
	for _, e := range list {
		if strings.HasPrefix(e.Name, prefix) {
			names = append(names, e.Name)
		}
	}
	return names, nil
}

// Cleanup removes what a crashed run with this prefix left behind: it kills the processes in, and
// deletes, every namespace whose name starts with prefix, and removes the prefix's lab directories
// in the temporary directory. Never call it while a lab with this prefix is in use.
func Cleanup(prefix string) error {
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("netlab: invalid lab prefix %q for Cleanup", prefix)
	}
	names, err := Namespaces(prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range names {
		if err := deleteNamespace(ns); err != nil {
			errs = append(errs, err)
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPattern(prefix)+"*"))
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("netlab: remove leftover lab directory: %w", err))
		}
	}
	return errors.Join(errs...)
}
