// Package config turns vigil's YAML file, with VIGIL_* environment
// overrides, into a validated, read-only Config, or into every problem of
// the file, each placed at its FILE:LINE:COLUMN.
//
// The file is parsed once into yaml.v3 nodes, which are decoded strictly
// (unknown keys and wrong types are problems with their key path) and kept
// to place the problems that rules find after decoding. viper only reads
// the environment; this is the only package that imports it.
package config

import (
	"net/netip"
	"slices"
	"time"

	"vigil/lb"
	"vigil/vrrp"
)

// Config is a loaded, validated configuration. Treat it as read-only: it is
// shared by everything that runs from it.
type Config struct {
	Node      Node
	VRRP      VRRP
	LB        LB
	Telemetry Telemetry
	Gossip    *Gossip // nil = no `gossip:` section: no fleet, everything as before
	// Fleet is the node's fleet settings (fleet:): whether it follows
	// pushed configurations. Local only, like Node, Gossip and Telemetry.
	Fleet    Fleet
	Path     string   // the file it came from; "" for Parse
	Hash     string   // sha256 of the file bytes, lower-case hex
	Warnings []string // problems that do not stop the config, "path: message"
	// FleetVersion is the fleet version the configuration was composed
	// from (0: the local file alone); set by whoever composes it.
	FleetVersion uint64
}

// Node identifies this node.
type Node struct {
	Name string // default: the hostname
	// AllowEmpty says that the node runs no VRRP instance and no virtual
	// server on purpose (node.allow_empty, file only): without it such a
	// config is taken for an empty or truncated file (see Empty).
	AllowEmpty bool
}

// VRRP holds the virtual routers and what they track.
type VRRP struct {
	Instances []Instance
	GARP      GARP // the defaults each instance's GARP started from
	// Strict enforces RFC-only behaviour (keepalived vrrp_strict): settings
	// that conflict with it are errors, and it changes some defaults (accept
	// only for the owner, lower_prio_no_advert, one GARP/NA and no repeats).
	Strict bool
	// Scripts, Files and Processes are the tracked objects instances refer
	// to by name (keepalived vrrp_script, track_file, vrrp_track_process).
	Scripts   []Script
	Files     []File
	Processes []Process
	// SyncGroups are sets of instances that change state together.
	SyncGroups []SyncGroup
	// ScriptUser is the default user[:group] of scripts and notify hooks
	// ("" = the daemon's user). It is already applied to Script.User and
	// Notify.User.
	ScriptUser string
	// NotifyFIFO is the path of a FIFO that receives one line per event, in
	// order (keepalived notify_fifo); "" = none. It is created if missing.
	NotifyFIFO string
	// NotifyFIFOGroup is the group (a name, or a numeric gid) that may
	// read the FIFO: it is then mode 0660 with that group; "" = none, mode
	// 0600 owned by root. The group need not exist when the file is
	// loaded (a warning says so).
	NotifyFIFOGroup string
}

// Telemetry configures metrics, health endpoints and logging.
type Telemetry struct {
	Listen    string // host:port for /metrics /healthz /readyz; "" disables
	LogLevel  string // debug, info, warn or error
	LogFormat string // text or json
	// Pprof serves Go's /debug/pprof/ on the telemetry listener (off by
	// default: profiles expose internals and cost CPU while taken).
	Pprof bool
	// Tracing is telemetry.tracing: OpenTelemetry spans (config/tracing.go).
	Tracing Tracing
}

// Instance is one VRRP virtual router.
type Instance struct {
	Name      string
	Interface string
	VRID      uint8
	Priority  uint8 // 1..255; 255 = address owner
	Version   uint8 // 2 or 3
	// AdvertInterval is whole seconds for v2, a multiple of 10ms for v3.
	AdvertInterval time.Duration
	PreemptDelay   time.Duration
	Preempt        bool
	Accept         bool // VRRPv3 Accept_Mode
	// LowerPrioNoAdvert keeps a master quiet when it hears a lower priority
	// (pre-RFC 9568 behaviour).
	LowerPrioNoAdvert bool
	// Checksum is the transmit form for VRRPv3 over IPv4; the driver passes
	// it to vrrp.Advert.Marshal and vrrp.Decode.
	Checksum     vrrp.ChecksumForm
	Unicast      *Unicast // nil = multicast
	AuthType     uint8    // vrrp.AuthNone or vrrp.AuthPass (v2 only)
	AuthPassword string   // 1..8 bytes with AuthPass
	VIPs         []VIP    // 1..255, one address family
	GARP         GARP
	// Track lists the objects whose state adjusts the priority or puts the
	// instance in FAULT (see vrrp/policy for the weight semantics).
	Track Track
	// DontTrackPrimary: the instance's own interface going down does not
	// put it in FAULT (keepalived dont_track_primary).
	DontTrackPrimary bool
	// Notify runs commands on this instance's state changes.
	Notify Notify
	// VMAC is the name of the macvlan the instance uses as its virtual MAC
	// (00:00:5e:00:01:VRID, 00:00:5e:00:02:VRID for IPv6; keepalived
	// use_vmac), created on Interface; "" = no virtual MAC.
	VMAC string
	// SyncGroup is the name of the sync group the instance belongs to; ""
	// for none.
	SyncGroup string
}

// Track is what one instance tracks, by kind. Each reference names an
// entry of the matching VRRP list (an interface name for Interfaces).
type Track struct {
	Interfaces []TrackRef
	Scripts    []TrackRef
	Files      []TrackRef
	Processes  []TrackRef
	// VirtualServers are lb virtual servers by name: down while the
	// service is below its quorum (default weight 0: FAULT).
	VirtualServers []TrackRef
}

// TrackRef is one tracked object as seen by one instance. Weight and Reverse
// are already resolved: the instance's own value when it gave one, else the
// tracked object's (0 and false for interfaces).
type TrackRef struct {
	Name      string
	Weight    int  // -253..253; 0 = FAULT while the object is down
	WeightSet bool // the instance gave the weight itself
	Reverse   bool // up counts as down and down as up
}

// Script is a tracked command (keepalived vrrp_script): exit status 0 is
// up, anything else (including a command that cannot be executed, or one
// that times out) is down.
type Script struct {
	Name string
	// Argv is what is executed, without a shell: the configured list (a
	// command name without a slash resolved through PATH when loaded), or
	// ["/bin/sh", "-c", Command] with Shell.
	Argv    []string
	Shell   bool   // Command is run by /bin/sh -c
	Command string // the shell command line with Shell; "" otherwise
	// Interval is the time between starts (10ms..24h, default 1s); Timeout
	// (default Interval, at most Interval) kills the process group.
	Interval time.Duration
	Timeout  time.Duration
	Rise     int  // consecutive successes to go up, 1..100 (default 1)
	Fall     int  // consecutive failures to go down, 1..100 (default 1)
	Weight   int  // -253..253, default 0 (FAULT while down)
	Reverse  bool // up counts as down and down as up
	User     string
	// InitFail starts the script as down until its first success.
	InitFail bool
}

// File is a tracked file (keepalived track_file): the integer it holds,
// times the weight, is added to the priority; below -253 means FAULT. With
// weight 0 a non-zero value means FAULT.
type File struct {
	Name    string
	Path    string // absolute
	Weight  int    // -253..253, default 1
	Reverse bool   // negate the contribution
	Init    int    // the value while the file is missing or unreadable, -254..254
}

// Process is a tracked process (keepalived vrrp_track_process): up while at
// least Quorum processes with that name run.
type Process struct {
	Name    string
	Process string // exact process name (comm, at most 15 bytes)
	// Args, when not empty, must equal the process's arguments after argv[0],
	// joined by single spaces.
	Args    string
	Weight  int  // -253..253, default 0 (FAULT while down)
	Reverse bool // up counts as down and down as up
	Quorum  int  // 1..65535, default 1
	// Delay is how long a change must last before it counts (0s..1h).
	Delay time.Duration
}

// SyncGroup is a set of instances that change state together (keepalived
// vrrp_sync_group): one in FAULT puts them all in FAULT, one becoming master
// pulls the others.
type SyncGroup struct {
	Name      string
	Instances []string // at least 2 instance names; an instance is in at most one group
	Notify    Notify
	// TrackingWeight allows members to have trackers with a non-zero weight
	// (keepalived sync_group_tracking_weight); otherwise that is an error.
	TrackingWeight bool
}

// Notify holds the commands run on state changes (keepalived notify_*).
// Each is an argv run without a shell; nil = none. All is run on every
// change with keepalived's arguments appended: INSTANCE|GROUP, the name,
// the new state (MASTER, BACKUP, FAULT, STOP) and the priority.
type Notify struct {
	Master, Backup, Fault, Stop, All []string
	User                             string        // user[:group]; "" = the daemon's user
	Timeout                          time.Duration // kills a command that runs longer (default 10s)
}

// VIP is a virtual address and where it is installed.
type VIP struct {
	Prefix netip.Prefix // the address with its prefix length (/32, /128 when none given)
	Dev    string       // interface it is added to; default the instance interface
	Label  string       // IPv4 address label (dev or dev:suffix); "" for none
}

// Unicast lists the peers of a unicast instance.
type Unicast struct {
	// Source is the address adverts are sent from; invalid (zero) means the
	// interface's primary address.
	Source netip.Addr
	Peers  []netip.Addr
	// MinTTL is the lowest TTL / hop limit accepted on an advert from a
	// peer: 255 (0 here) unless the peers are behind routers (keepalived's
	// per-peer min_ttl). RFC 9568 §7.1 asks for 255: an advert that
	// crossed a router cannot have it, so nobody off the link can send one.
	MinTTL uint8
}

// GARP paces gratuitous ARPs / unsolicited neighbour advertisements after
// becoming master (keepalived's garp_master_repeat, garp_master_delay,
// vrrp_garp_interval, garp_master_refresh[_repeat], garp_lower_prio_*).
type GARP struct {
	Repeat   int           // messages per VIP in a burst, 1..100
	Delay    time.Duration // second burst after this; 0 = none
	Interval time.Duration // pause between messages, 0..1s
	// Refresh re-announces periodically while master; 0 = off, else ≥1s.
	Refresh       time.Duration
	RefreshRepeat int // messages per VIP in each refresh, 1..100 (default 1)
	// LowerPrioRepeat and LowerPrioDelay are the burst (0..100, 0 = none)
	// and its repeat (0 = none) when a master hears a lower priority. They
	// default to Repeat and Delay (to 0 in strict mode).
	LowerPrioRepeat int
	LowerPrioDelay  time.Duration
}

// Empty reports whether the config runs nothing: no VRRP instance and no
// virtual server. Applied to a running node, such a config removes every
// instance and VIP, which is what an empty or truncated file looks like;
// Node.AllowEmpty says it is meant.
func (c *Config) Empty() bool {
	return len(c.VRRP.Instances) == 0 && len(c.LB.VirtualServers) == 0
}

// Family returns 4 or 6, the address family of the instance's VIPs.
func (in *Instance) Family() int {
	if len(in.VIPs) > 0 && in.VIPs[0].Prefix.Addr().Is6() {
		return 6
	}
	return 4
}

// VRRP compiles the instance to the pure core's configuration. primary is
// the interface's primary address of the instance's family (IPv4 primary or
// IPv6 link-local); a configured unicast source takes its place. The
// password is padded with zero bytes to 8, as keepalived does. Slices are
// fresh copies.
func (in *Instance) VRRP(primary netip.Addr) vrrp.Config {
	c := vrrp.Config{
		Name:              in.Name,
		VRID:              in.VRID,
		Version:           in.Version,
		Priority:          in.Priority,
		AdvertInterval:    in.AdvertInterval,
		Preempt:           in.Preempt,
		PreemptDelay:      in.PreemptDelay,
		Accept:            in.Accept,
		VIPs:              make([]netip.Addr, len(in.VIPs)),
		Primary:           primary,
		AuthType:          in.AuthType,
		LowerPrioNoAdvert: in.LowerPrioNoAdvert,
	}
	for i, v := range in.VIPs {
		c.VIPs[i] = v.Prefix.Addr()
	}
	if in.Unicast != nil {
		c.Unicast = true
		c.Peers = slices.Clone(in.Unicast.Peers)
		c.UnicastMinTTL = in.Unicast.MinTTL
		if in.Unicast.Source.IsValid() {
			c.Primary = in.Unicast.Source
		}
	}
	if in.AuthType == vrrp.AuthPass {
		copy(c.AuthData[:], in.AuthPassword)
	}
	return c
}

// LB is the load-balancing half: IPVS virtual servers and their checks.
type LB struct {
	VirtualServers []VirtualServer
	// SyncDaemon, if set, runs the kernel's IPVS connection-sync daemon so
	// established connections survive a failover (keepalived
	// lvs_sync_daemon): master while Instance is VRRP master, backup
	// otherwise.
	SyncDaemon *SyncDaemon
	// OnStop is what happens to vigil's services when it stops: "remove"
	// (the default, as keepalived) or "keep" (keepalived -I
	// --dont-release-ipvs: traffic keeps flowing across a restart or an
	// upgrade; the next start converges without touching unchanged
	// entries).
	OnStop string
	// ForeignServices is what vigil does with services in the kernel that
	// it did not create: "keep" (the default: left alone) or "remove"
	// (vigil owns the namespace's whole table, at start, at every resync
	// and, with OnStop remove, at stop: keepalived's lvs_flush and
	// lvs_flush_on_stop).
	ForeignServices string
	// Timeouts are the kernel's IPVS connection timeouts (keepalived
	// lvs_timeouts); zero leaves a timeout as the kernel has it.
	Timeouts Timeouts
	// RSInitNotifies also reports the real servers that start up (at start
	// and when a reload adds them): their notify_up runs and the FIFO gets
	// their UP line (keepalived rs_init_notifies). By default only later
	// changes are reported.
	RSInitNotifies bool
}

// Timeouts are IPVS connection timeouts (ipvsadm --set TCP TCPFIN UDP).
type Timeouts struct {
	TCP, TCPFin, UDP time.Duration
}

// SyncDaemon configures IPVS connection synchronisation.
type SyncDaemon struct {
	Interface string // the multicast interface (224.0.0.81:8848)
	Instance  string // the VRRP instance whose state it follows
	SyncID    uint8  // default: the instance's VRID, so clusters sharing a LAN stay apart
	syncIDSet bool
	path      string
}

// VirtualServer is one configured IPVS virtual service. Spec is what the
// desired-table core (package lb) works from; Reals holds, index by index
// with Spec.Reals, what only the health checkers need.
type VirtualServer struct {
	Spec   lb.VirtualServer
	Reals  []RealServer
	Notify LBNotify
	// HASuspend runs its checks only while one of its addresses is on
	// this host (keepalived ha_suspend): on the director that holds the
	// VIP. The others keep their real servers' last state.
	HASuspend bool
	// HealthPolicy says whose checks decide its real servers' health:
	// local without a gossip: section, quorum by default with one.
	HealthPolicy HealthPolicy
	// healthPolicy is health_policy as written ("" when absent): the
	// default depends on the gossip: section, outside the item, and a
	// Loader reuses items across files that may differ there.
	healthPolicy HealthPolicy
}

// HealthPolicy is how a virtual server's real-server health is decided
// (issue 13).
type HealthPolicy string

const (
	HealthLocal  HealthPolicy = "local"  // this director's checks alone decide (keepalived)
	HealthAny    HealthPolicy = "any"    // up while any live director with a fresh result sees it up
	HealthQuorum HealthPolicy = "quorum" // down only when a strict majority of fresh results say down
)

// LBNotify are a virtual server's notify commands, run as given (no
// arguments added) when it gains or loses quorum (keepalived quorum_up,
// quorum_down); User and Timeout apply to its real servers' commands too.
type LBNotify struct {
	QuorumUp, QuorumDown []string
	User                 string        // user[:group]; "" = the daemon's user
	Timeout              time.Duration // default DefaultNotifyTimeout
	// Omega also reports the virtual server and its real servers down when
	// vigil stops (keepalived omega): quorum_down and notify_down run, and
	// the FIFO gets the DOWN lines.
	Omega bool
}

// RealServer is the checker side of a real server.
type RealServer struct {
	// Alpha starts the real server as down until its checks first succeed
	// (keepalived alpha); by default it starts up, as keepalived does.
	Alpha  bool
	Checks []Check
	// NotifyUp and NotifyDown run when the real server's checks all pass
	// again or one fails (keepalived notify_up, notify_down).
	NotifyUp, NotifyDown []string
}
