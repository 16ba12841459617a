// Package peer starts the VRRP speakers the network tests put on a lab node:
// vigil itself (the binary under test) and Debian's keepalived as the
// reference peer. Both are configured from one Instance description so that
// interop tests and benchmarks describe a cluster once.
package peer

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"vigil/test/netlab"
)

// Instance is one VRRP instance as both implementations understand it.
type Instance struct {
	Name     string // vigil name; keepalived uses it as the vrrp_instance name
	VRID     int
	Priority int
	Version  int           // 2 or 3
	Interval time.Duration // advert interval
	VIPs     []netip.Prefix
	Preempt  bool
	// Unicast: source and peers; nil peers for multicast. An invalid (zero)
	// source is left out, so each implementation picks its default (the
	// primary IPv4 address, or the IPv6 link-local address).
	UnicastSource netip.Addr
	UnicastPeers  []netip.Addr
	// UnicastMinTTL is vigil's unicast.min_ttl (0: left out, 255);
	// keepalived has no equivalent setting here.
	UnicastMinTTL int
	AuthPass      string // v2 PASS authentication when set
	// VMAC runs the instance on a macvlan with the virtual MAC (vigil
	// vmac: true, keepalived use_vmac), named vrrp.<VRID> by both.
	VMAC      bool
	Interface string // default eth0
}

func (in Instance) iface() string {
	if in.Interface == "" {
		return "eth0"
	}
	return in.Interface
}

// VigilYAML renders a vigil configuration for the node name and instances.
// Announcements are one message with no second burst, as in the keepalived
// captures (vrrp_garp_master_delay 0, repeat 1), to keep the wire quiet.
func VigilYAML(node string, insts []Instance) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node: { name: %s }\ntelemetry: { listen: \"\" }\nvrrp:\n  garp: { repeat: 1, delay: 0s }\n  instances:\n", node)
	for _, in := range insts {
		fmt.Fprintf(&b, "    - name: %s\n      interface: %s\n      vrid: %d\n      priority: %d\n      version: %d\n      advert_interval: %s\n      preempt: %v\n",
			in.Name, in.iface(), in.VRID, in.Priority, in.Version, in.Interval, in.Preempt)
		var vips []string
		for _, v := range in.VIPs {
			vips = append(vips, v.String())
		}
		fmt.Fprintf(&b, "      vips: [%s]\n", strings.Join(vips, ", "))
		if len(in.UnicastPeers) > 0 {
			var ps []string
			for _, p := range in.UnicastPeers {
				ps = append(ps, p.String())
			}
			var ttl string
			if in.UnicastMinTTL != 0 {
				ttl = fmt.Sprintf(", min_ttl: %d", in.UnicastMinTTL)
			}
			if in.UnicastSource.IsValid() {
				fmt.Fprintf(&b, "      unicast: { source: %s, peers: [%s]%s }\n", in.UnicastSource, strings.Join(ps, ", "), ttl)
			} else {
				fmt.Fprintf(&b, "      unicast: { peers: [%s]%s }\n", strings.Join(ps, ", "), ttl)
			}
		}
		if in.VMAC {
			b.WriteString("      vmac: true\n")
		}
		if in.AuthPass != "" {
			fmt.Fprintf(&b, "      auth: { type: pass, password: %q }\n", in.AuthPass)
		}
	}
	return b.String()
}

// KeepalivedConf renders the equivalent keepalived.conf.
func KeepalivedConf(node string, insts []Instance) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global_defs {\n  router_id %s\n  vrrp_garp_master_delay 0\n  vrrp_garp_master_repeat 1\n  script_user root\n}\n", node)
	for _, in := range insts {
		fmt.Fprintf(&b, "vrrp_instance %s {\n  state BACKUP\n  interface %s\n  virtual_router_id %d\n  priority %d\n  version %d\n",
			in.Name, in.iface(), in.VRID, in.Priority, in.Version)
		// keepalived takes fractional seconds for v3.
		fmt.Fprintf(&b, "  advert_int %s\n", strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", in.Interval.Seconds()), "0"), "."))
		if !in.Preempt {
			b.WriteString("  nopreempt\n")
		}
		if len(in.UnicastPeers) > 0 {
			if in.UnicastSource.IsValid() {
				fmt.Fprintf(&b, "  unicast_src_ip %s\n", in.UnicastSource)
			}
			b.WriteString("  unicast_peer {\n")
			for _, p := range in.UnicastPeers {
				fmt.Fprintf(&b, "    %s\n", p)
			}
			b.WriteString("  }\n")
		}
		if in.VMAC {
			b.WriteString("  use_vmac\n")
		}
		if in.AuthPass != "" {
			fmt.Fprintf(&b, "  authentication {\n    auth_type PASS\n    auth_pass %s\n  }\n", in.AuthPass)
		}
		b.WriteString("  virtual_ipaddress {\n")
		for _, v := range in.VIPs {
			fmt.Fprintf(&b, "    %s dev %s\n", v, in.iface())
		}
		b.WriteString("  }\n}\n")
	}
	return b.String()
}

// StartVigil writes the configuration into the lab directory and starts
// `vigil run` on the node, with its admin socket at VigilAdminSocket(n)
// (extraArgs may name another with --admin-socket). In a test lab
// (netlab.NewForTest) the daemon runs with the systemd unit's privileges.
func StartVigil(n *netlab.Node, bin string, insts []Instance, extraArgs ...string) (*netlab.Process, error) {
	path := filepath.Join(n.Lab().Dir(), n.Name+"-vigil.yaml")
	if err := os.WriteFile(path, []byte(VigilYAML(n.Name, insts)), 0o644); err != nil {
		return nil, fmt.Errorf("writing vigil config for %s: %w", n.Name, err)
	}
	args := append([]string{"run", "--config", path, "--log-level", "debug", "--admin-socket", VigilAdminSocket(n)}, extraArgs...)
	return n.Start(bin, args...)
}

// StartVigilYAML is StartVigil for a configuration written out in full.
func StartVigilYAML(n *netlab.Node, bin, yaml string, extraArgs ...string) (*netlab.Process, error) {
	return StartVigilYAMLWith(n, bin, yaml, netlab.StartOptions{}, extraArgs...)
}

// StartVigilYAMLWith is StartVigilYAML with start options (an environment).
func StartVigilYAMLWith(n *netlab.Node, bin, yaml string, opts netlab.StartOptions, extraArgs ...string) (*netlab.Process, error) {
	path := filepath.Join(n.Lab().Dir(), n.Name+"-vigil.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		return nil, fmt.Errorf("writing vigil config for %s: %w", n.Name, err)
	}
	args := append([]string{"run", "--config", path, "--log-level", "debug", "--admin-socket", VigilAdminSocket(n)}, extraArgs...)
	return n.StartWith(opts, bin, args...)
}

// VigilAdminSocket is the admin socket (`vigil status --socket`) of the
// vigil StartVigil runs on n. The nodes share the host's filesystem, so
// each needs its own; the default /run/vigil/admin.sock would let only one
// vigil start.
func VigilAdminSocket(n *netlab.Node) string {
	return filepath.Join(n.Lab().Dir(), n.Name+"-admin.sock")
}

// StartKeepalived writes keepalived.conf into the lab directory and starts
// keepalived (VRRP only, foreground, logging to the console) on the node,
// with pid files of its own so that several run side by side.
func StartKeepalived(n *netlab.Node, insts []Instance) (*netlab.Process, error) {
	dir := filepath.Join(n.Lab().Dir(), n.Name+"-keepalived")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte(KeepalivedConf(n.Name, insts)), 0o644); err != nil {
		return nil, fmt.Errorf("writing keepalived config for %s: %w", n.Name, err)
	}
	return StartKeepalivedFile(n, conf, "--vrrp")
}

// StartKeepalivedFile starts keepalived (foreground, logging to the console)
// on the node with a configuration file written out in full, with pid files
// of its own (in the lab directory) so that several run side by side.
// extraArgs are keepalived's: --vrrp for VRRP only, --config-id ID, ...
func StartKeepalivedFile(n *netlab.Node, conf string, extraArgs ...string) (*netlab.Process, error) {
	kp, err := exec.LookPath("keepalived")
	if err != nil {
		return nil, fmt.Errorf("keepalived is not installed (test/deps.sh installs it): %w", err)
	}
	dir := filepath.Join(n.Lab().Dir(), n.Name+"-keepalived")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	args := append([]string{"--dont-fork", "--log-console", "--log-detail", "--no-syslog",
		"--use-file", conf, "--pid", filepath.Join(dir, "keepalived.pid"),
		"--vrrp_pid", filepath.Join(dir, "vrrp.pid"), "--checkers_pid", filepath.Join(dir, "checkers.pid")}, extraArgs...)
	return n.Start(kp, args...)
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// VigilBinary returns the vigil binary under test: $VIGIL_BIN (set by the
// Makefile), or one built once per test process.
func VigilBinary() (string, error) {
	if p := os.Getenv("VIGIL_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("VIGIL_BIN=%s: %w", p, err)
		}
		return p, nil
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vigil-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "vigil")
		out, err := exec.Command("go", "build", "-o", builtBin, "vigil/cmd/vigil").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build vigil: %w\n%s", err, out)
		}
	})
	return builtBin, buildErr
}
