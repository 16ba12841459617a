// Package caps tells which Linux capabilities the features of a
// configuration need and which of them the process lacks, so that `vigil
// config validate` (the systemd unit's ExecStartPre) and the daemon's start
// can say so before a feature fails at run time with "operation not
// permitted".
//
// Needs and Check are pure; Missing reads the process's sets and the two
// sysctls that make a capability unnecessary.
package caps

import (
	"fmt"
	"net/netip"
	"strings"

	"vigil/config"
)

// Cap is a capability number (linux/capability.h).
type Cap uint8

// The capabilities vigil's features use.
const (
	Chown          Cap = 0
	Kill           Cap = 5
	SetGID         Cap = 6
	SetUID         Cap = 7
	NetBindService Cap = 10
	NetAdmin       Cap = 12
	NetRaw         Cap = 13
)

var capNames = map[Cap]string{
	Chown: "CAP_CHOWN", Kill: "CAP_KILL", SetGID: "CAP_SETGID", SetUID: "CAP_SETUID",
	NetBindService: "CAP_NET_BIND_SERVICE", NetAdmin: "CAP_NET_ADMIN", NetRaw: "CAP_NET_RAW",
}

func (c Cap) String() string {
	if n, ok := capNames[c]; ok {
		return n
	}
	return fmt.Sprintf("capability %d", uint8(c))
}

// Set is a capability set as /proc/PID/status shows it (a bit per number).
type Set uint64

// Has reports whether c is in the set.
func (s Set) Has(c Cap) bool { return s&(1<<c) != 0 }

// Need is one use of a capability by a feature of the configuration.
type Need struct {
	Cap     Cap
	Path    string // where in the configuration: vrrp.scripts[0]
	Feature string // what needs it, in words
	// Port is a listener's port (NetBindService only): the kernel lets
	// anyone bind it from net.ipv4.ip_unprivileged_port_start on.
	Port uint16
	// Ping marks a ping check (NetRaw only): without the capability it
	// uses an unprivileged ICMP socket when net.ipv4.ping_group_range
	// includes the daemon's group.
	Ping bool
}

// Needs lists the capabilities cfg's features need, in the order of the
// configuration.
func Needs(cfg *config.Config) []Need {
	var out []Need
	add := func(c Cap, path, format string, args ...any) {
		out = append(out, Need{Cap: c, Path: path, Feature: fmt.Sprintf(format, args...)})
	}
	// runAs: commands run as another user need setgroups/setgid/setuid
	// in the child, and killing them on a timeout needs CAP_KILL (they
	// are another user's processes). As root only setgroups needs a
	// capability.
	runAs := func(path, user, what string) {
		if user == "" {
			return
		}
		name, _, _ := strings.Cut(user, ":")
		add(SetGID, path, "%s run as %s (setgroups, setgid)", what, user)
		if name == "root" || name == "0" {
			return
		}
		add(SetUID, path, "%s run as %s (setuid)", what, user)
		add(Kill, path, "%s run as %s are killed on timeout or stop", what, user)
	}

	trackedScripts := map[string]bool{}
	trackedProcs := map[string]bool{}
	for _, in := range cfg.VRRP.Instances {
		for _, r := range in.Track.Scripts {
			trackedScripts[r.Name] = true
		}
		for _, r := range in.Track.Processes {
			trackedProcs[r.Name] = true
		}
	}
	for i, in := range cfg.VRRP.Instances {
		p := fmt.Sprintf("vrrp.instances[%d]", i)
		add(NetRaw, p, "instance %s sends adverts and gratuitous ARP/NA on raw sockets", in.Name)
		add(NetAdmin, p+".vips", "instance %s adds and removes its virtual addresses (netlink)", in.Name)
		if in.VMAC != "" {
			add(NetAdmin, p+".vmac", "instance %s creates the macvlan %s and sets its sysctls", in.Name, in.VMAC)
		}
		if !in.Accept {
			add(NetAdmin, p+".accept", "instance %s drops traffic to its VIPs with nftables (accept: false)", in.Name)
		}
		if hasNotify(in.Notify) {
			runAs(p+".notify", in.Notify.User, fmt.Sprintf("notify commands of instance %s", in.Name))
		}
	}
	if cfg.VRRP.NotifyFIFO != "" && cfg.VRRP.NotifyFIFOGroup != "" {
		add(Chown, "vrrp.notify_fifo_group", "the notify FIFO is given the group %s (fchown)", cfg.VRRP.NotifyFIFOGroup)
	}
	for i, s := range cfg.VRRP.Scripts {
		if trackedScripts[s.Name] {
			runAs(fmt.Sprintf("vrrp.scripts[%d]", i), s.User, "script "+s.Name)
		}
	}
	for i, pr := range cfg.VRRP.Processes {
		if trackedProcs[pr.Name] {
			add(NetAdmin, fmt.Sprintf("vrrp.processes[%d]", i),
				"the process tracker %s follows the kernel's process events (netlink connector); without it /proc is scanned every second", pr.Name)
		}
	}
	for i, g := range cfg.VRRP.SyncGroups {
		if hasNotify(g.Notify) {
			runAs(fmt.Sprintf("vrrp.sync_groups[%d].notify", i), g.Notify.User, "notify commands of sync group "+g.Name)
		}
	}
	for i, vs := range cfg.LB.VirtualServers {
		p := fmt.Sprintf("lb.virtual_servers[%d]", i)
		add(NetAdmin, p, "virtual server %s is programmed into IPVS (generic netlink)", vs.Spec.Name)
		notify := len(vs.Notify.QuorumUp) > 0 || len(vs.Notify.QuorumDown) > 0
		for j, rs := range vs.Reals {
			notify = notify || len(rs.NotifyUp) > 0 || len(rs.NotifyDown) > 0
			for k, c := range rs.Checks {
				cp := fmt.Sprintf("%s.real_servers[%d].check", p, j)
				if len(rs.Checks) > 1 {
					cp += fmt.Sprintf("[%d]", k)
				}
				switch c.Type {
				case "exec":
					runAs(cp, c.User, fmt.Sprintf("exec checks of virtual server %s", vs.Spec.Name))
				case "ping":
					out = append(out, Need{Cap: NetRaw, Path: cp, Ping: true,
						Feature: fmt.Sprintf("ping checks of virtual server %s need a raw ICMP socket (net.ipv4.ping_group_range excludes the daemon's group)", vs.Spec.Name)})
				}
			}
		}
		if notify {
			runAs(p+".notify", vs.Notify.User, fmt.Sprintf("notify commands of virtual server %s and its real servers", vs.Spec.Name))
		}
	}
	if cfg.LB.SyncDaemon != nil {
		add(NetAdmin, "lb.sync_daemon", "the IPVS connection sync daemon is started and stopped (generic netlink)")
	}
	if ap, err := netip.ParseAddrPort(cfg.Telemetry.Listen); err == nil && ap.Port() > 0 && ap.Port() < 1024 {
		out = append(out, Need{Cap: NetBindService, Path: "telemetry.listen", Port: ap.Port(),
			Feature: fmt.Sprintf("the metrics listener binds port %d", ap.Port())})
	}
	return out
}

func hasNotify(n config.Notify) bool {
	return len(n.Master)+len(n.Backup)+len(n.Fault)+len(n.Stop)+len(n.All) > 0
}

// Warning is a capability the process lacks and what in the configuration
// needs it. A Warning with Err set says the sets could not be read.
type Warning struct {
	Cap   Cap
	Needs []Need // at least one
	// Bounding: not in the bounding set either, so no child and no
	// restart of this process can get it (a systemd unit's
	// CapabilityBoundingSet= lacks it).
	Bounding bool
	Err      error
}

// maxListed is how many configuration paths a warning names.
const maxListed = 3

func (w Warning) String() string {
	if w.Err != nil {
		return "cannot tell which capabilities this process has: " + w.Err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s missing (not in this process's effective set", w.Cap)
	if w.Bounding {
		b.WriteString(" nor in its bounding set")
	}
	b.WriteString("); needed by ")
	for i, n := range w.Needs {
		if i == maxListed {
			fmt.Fprintf(&b, "; and %d more", len(w.Needs)-maxListed)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s", n.Path, n.Feature)
	}
	fmt.Fprintf(&b, " (a systemd unit needs %s in CapabilityBoundingSet= and AmbientCapabilities=)", w.Cap)
	return b.String()
}

// Check returns, in capability order, a Warning for every capability of
// needs that eff lacks, with every need of it.
func Check(needs []Need, eff, bnd Set) []Warning {
	byCap := map[Cap][]Need{}
	for _, n := range needs {
		if !eff.Has(n.Cap) {
			byCap[n.Cap] = append(byCap[n.Cap], n)
		}
	}
	var out []Warning
	for c := Cap(0); c < 64; c++ {
		if ns := byCap[c]; len(ns) > 0 {
			out = append(out, Warning{Cap: c, Needs: ns, Bounding: !bnd.Has(c)})
		}
	}
	return out
}
