package kaimport

import (
	"time"

	"go.yaml.in/yaml/v3"

	"vigil/internal/kaconf"
)

// globalDefs is what global_defs says that the other sections need.
type globalDefs struct {
	routerID    *kaconf.Node
	version     int // vrrp_version, 0 = keepalived's default (2)
	versionNode *kaconf.Node
	strict      *kaconf.Node
	lowerPrio   *kaconf.Node // vrrp_lower_prio_no_advert
	lowerPrioV  bool
	scriptUser  *kaconf.Node
	fifo        *kaconf.Node
	fifoGroup   string
	garp        *yaml.Node // vrrp.garp
	syncDaemon  *kaconf.Node
	flush       *kaconf.Node
	timeouts    *yaml.Node
	timeoutsAt  *kaconf.Node
	rsInit      *kaconf.Node
}

// builtIn are keywords (of global_defs or an instance) whose purpose vigil
// always serves: carried over as a note, not dropped, so that they alone do
// not make an import partial.
var builtIn = map[string]string{
	"enable_script_security": "vigil checks every program's path when the file is loaded and runs each as its configured user",
	"vrrp_check_unicast_src": "vigil takes unicast adverts from the listed peers only, always",
	"reload_check_config":    "vigil validates every reload and keeps the running configuration when it is invalid",
	"dynamic_interfaces":     "vigil follows interfaces over netlink: an instance waits in FAULT for its interface",
	"include_check":          "the importer reads includes as keepalived's plain include",
	"random_seed":            "only for ${_RANDOM}, which the importer expanded",
	"use_pid_dir":            "vigil writes no pid files (systemd tracks the process)",
	"check_unicast_src":      "vigil takes unicast adverts from the listed peers only, always",
	"notify_deleted":         "vigil runs notify stop for an instance a reload removes",
	"track_src_ip":           "vigil waits in FAULT while the interface has no usable source address",
	"linkbeat_use_polling":   "vigil follows link state over netlink",
	"native_ipv6":            "deprecated in keepalived: the VIPs give the family",
	"debug":                  "not implemented in keepalived either",
}

// keptBuiltIn notes n when vigil always does what it asks (builtIn).
func (t *translator) keptBuiltIn(n *kaconf.Node) bool {
	what, ok := builtIn[n.Keyword]
	if ok {
		t.note(n, "%s: nothing to write, %s", n.Keyword, what)
	}
	return ok
}

// globalReasons are global_defs keywords vigil has no equivalent for.
var globalReasons = map[string]string{
	"notification_email":               "vigil sends no email: use notify scripts, the FIFO or the Prometheus alert rules",
	"notification_email_from":          "vigil sends no email",
	"smtp_server":                      "vigil sends no email",
	"smtp_helo_name":                   "vigil sends no email",
	"smtp_connect_timeout":             "vigil sends no email",
	"smtp_alert":                       "vigil sends no email",
	"smtp_alert_vrrp":                  "vigil sends no email",
	"smtp_alert_checker":               "vigil sends no email",
	"no_email_faults":                  "vigil sends no email",
	"no_checker_emails":                "vigil sends no email",
	"checker_log_all_failures":         "vigil logs every check state change; failures are counted in metrics",
	"vrrp_mcast_group4":                "vigil sends to the RFC 5798 group 224.0.0.18 (use unicast for another path)",
	"vrrp_mcast_group6":                "vigil sends to the RFC 5798 group ff02::12 (use unicast for another path)",
	"default_interface":                "vigil manages no static addresses",
	"vrrp_garp_extra_if":               "vigil sends GARP/NA on the VIPs' interfaces only when it takes them over (use garp refresh)",
	"vrrp_higher_prio_send_advert":     "vigil has no such option: a master hearing a higher priority goes backup at once",
	"vrrp_skip_check_adv_addr":         "vigil never drops an advert for its address list (it counts and logs a mismatch)",
	"vrrp_down_timer_adverts":          "vigil keeps RFC 5798's Master_Down_Interval (3 adverts and the skew)",
	"vrrp_notify_priority_changes":     "vigil's FIFO carries state changes only",
	"notify_fifo_script":               "vigil runs no FIFO reader: start it as a service of its own",
	"vrrp_notify_fifo_script":          "vigil runs no FIFO reader: start it as a service of its own",
	"lvs_notify_fifo_script":           "vigil runs no FIFO reader: start it as a service of its own",
	"fifo_write_vrrp_states_on_reload": "vigil writes state changes only",
	"vrrp_startup_delay":               "vigil starts instances as backup and waits Master_Down_Interval; no extra delay",
	"vrrp_delay_after_boot":            "vigil starts instances as backup and waits Master_Down_Interval; no extra delay",
	"max_auto_priority":                "vigil's timers are not run by a single-threaded scheduler; no automatic real-time priority",
	"min_auto_priority_delay":          "vigil's timers are not run by a single-threaded scheduler; no automatic real-time priority",
	"lvs_sync_daemon_interface":        "keepalived's old form of lvs_sync_daemon: give lvs_sync_daemon IF inst VRRP_INSTANCE",
	"nftables":                         "vigil uses its own nftables table (inet vigil) for accept: false only",
	"nftables_priority":                "vigil uses its own nftables table (inet vigil) for accept: false only",
	"nftables_counters":                "vigil uses its own nftables table (inet vigil) for accept: false only",
	"nftables_ifindex":                 "vigil uses its own nftables table (inet vigil) for accept: false only",
	"nftables_ipvs":                    "vigil creates one IPVS service per address of a group (no fwmark rules)",
	"vrrp_iptables":                    "vigil uses nftables (inet vigil) for accept: false only",
	"vrrp_ipsets":                      "vigil uses no ipsets",
	"disable_local_igmp":               "vigil changes no IGMP sysctl",
	"net_namespace":                    "run vigil itself in the namespace (ip netns exec, or the unit's NetworkNamespacePath=)",
	"net_namespace_ipvs":               "vigil programs IPVS in its own network namespace",
	"enable_snmp_vrrp":                 "vigil has no SNMP: use its Prometheus metrics",
	"enable_snmp_checker":              "vigil has no SNMP: use its Prometheus metrics",
	"enable_snmp_rfc":                  "vigil has no SNMP: use its Prometheus metrics",
	"enable_snmp_rfcv2":                "vigil has no SNMP: use its Prometheus metrics",
	"enable_snmp_rfcv3":                "vigil has no SNMP: use its Prometheus metrics",
	"enable_traps":                     "vigil has no SNMP: use its Prometheus metrics",
	"snmp_socket":                      "vigil has no SNMP: use its Prometheus metrics",
	"enable_dbus":                      "vigil has no DBus interface: use vigil status or the admin API",
	"dbus_service_name":                "vigil has no DBus interface: use vigil status or the admin API",
	"vmac_prefix":                      "vigil names a virtual MAC vrrp.VRID, or as vmac: gives",
	"vmac_addr_prefix":                 "vigil names a virtual MAC vrrp.VRID, or as vmac: gives",
	"startup_script":                   "use the unit's ExecStartPre=",
	"shutdown_script":                  "use the unit's ExecStopPost=",
	"startup_script_timeout":           "use the unit's ExecStartPre=",
	"shutdown_script_timeout":          "use the unit's ExecStopPost=",
	"reload_time_file":                 "vigil reloads on SIGHUP or vigil config reload; fleets roll out with vigil config push",
	"reload_repeat":                    "vigil reloads on SIGHUP or vigil config reload",
	"reload_file":                      "vigil reads its file once per reload",
	"config_save_dir":                  "vigil keeps fleet versions in fleet.state_dir",
	"tmp_config_directory":             "vigil is one process",
	"data_use_instance":                "vigil has no dump files: use vigil status",
	"json_version":                     "vigil has no dump files: use vigil status -o json",
	"umask":                            "vigil creates its files with fixed modes",
	"instance":                         "vigil has no keepalived instance names (one daemon per namespace)",
	"namespace_with_ipsets":            "vigil uses no ipsets",
	"log_unknown_vrids":                "no vigil equivalent",
}

// processKnobs are keepalived's per-child process settings: vigil is one
// Go process, tuned by the unit.
var processKnobs = []string{
	"vrrp_priority", "checker_priority", "bfd_priority", "vrrp_no_swap", "checker_no_swap", "bfd_no_swap",
	"vrrp_cpu_affinity", "checker_cpu_affinity", "bfd_cpu_affinity", "vrrp_rt_priority", "checker_rt_priority",
	"bfd_rt_priority", "vrrp_rlimit_rttime", "checker_rlimit_rttime", "bfd_rlimit_rttime",
	"vrrp_netlink_cmd_rcv_bufs", "vrrp_netlink_cmd_rcv_bufs_force", "vrrp_netlink_monitor_rcv_bufs",
	"vrrp_netlink_monitor_rcv_bufs_force", "lvs_netlink_cmd_rcv_bufs", "lvs_netlink_cmd_rcv_bufs_force",
	"lvs_netlink_monitor_rcv_bufs", "lvs_netlink_monitor_rcv_bufs_force", "process_monitor_rcv_bufs",
	"process_monitor_rcv_bufs_force", "vrrp_rx_bufs_policy", "vrrp_rx_bufs_multiplier", "process_names",
	"process_name", "vrrp_process_name", "checker_process_name", "bfd_process_name", "child_wait_time",
}

func init() {
	for _, k := range processKnobs {
		globalReasons[k] = "keepalived's per-process tuning: vigil is one process, tuned by its systemd unit"
	}
}

// globalDefs reads every global_defs block.
func (t *translator) globalDefs() {
	g := &t.g
	g.garp = mapping()
	for _, block := range t.globals {
		for _, n := range block.Children {
			t.globalKeyword(n)
		}
	}
}

func (t *translator) globalKeyword(n *kaconf.Node) {
	g := &t.g
	if garpKeyword(t, g.garp, n, true) {
		return
	}
	switch n.Keyword {
	case "router_id":
		g.routerID = n
	case "vrrp_version":
		if v, ok := one(n); ok && (v == "2" || v == "3") {
			g.version = int(v[0] - '0')
			g.versionNode = n
		} else {
			t.drop(n, "", "is not 2 or 3")
		}
	case "vrrp_strict":
		g.strict = n
	case "vrrp_lower_prio_no_advert":
		v, ok := parseBool(n.Args)
		if !ok {
			t.drop(n, "", "is not a boolean (on|off|true|false|yes|no)")
			return
		}
		g.lowerPrio, g.lowerPrioV = n, v
	case "script_user":
		if len(n.Args) < 1 || len(n.Args) > 2 {
			t.drop(n, "", "needs USER [GROUP]")
			return
		}
		g.scriptUser = n
	case "notify_fifo", "vrrp_notify_fifo", "lvs_notify_fifo":
		t.fifo(n)
	case "lvs_sync_daemon":
		g.syncDaemon = n
	case "lvs_flush", "lvs_flush_on_stop":
		if n.Keyword == "lvs_flush_on_stop" && len(n.Args) > 0 {
			t.note(n, "lvs_flush_on_stop %s: vigil removes the services it manages at stop, one by one", n.Args[0])
		}
		if g.flush == nil {
			g.flush = n
		}
	case "lvs_timeouts":
		t.lvsTimeouts(n)
	case "rs_init_notifies":
		g.rsInit = n
	default:
		if t.keptBuiltIn(n) {
			return
		}
		if reason, ok := globalReasons[n.Keyword]; ok && reason != "" {
			t.drop(n, "", "%s", reason)
		} else {
			t.drop(n, "", "no vigil equivalent")
		}
	}
}

// one is the single argument of n.
func one(n *kaconf.Node) (string, bool) {
	if len(n.Args) != 1 {
		return "", false
	}
	return n.Args[0], true
}

// fifo reads notify_fifo, vrrp_notify_fifo and lvs_notify_fifo: vigil
// writes one FIFO with both kinds of lines.
func (t *translator) fifo(n *kaconf.Node) {
	g := &t.g
	if len(n.Args) < 1 || len(n.Args) > 3 {
		t.drop(n, "", "needs FIFO [USER [GROUP]]")
		return
	}
	if g.fifo != nil {
		if g.fifo.Args[0] == n.Args[0] {
			return
		}
		t.drop(n, "", "vigil writes one FIFO, %s (from %s), with VRRP and LVS lines", g.fifo.Args[0], g.fifo.Pos)
		return
	}
	g.fifo = n
	if n.Keyword != "notify_fifo" {
		t.note(n, "%s is vrrp.notify_fifo: vigil's one FIFO carries VRRP lines and LVS lines (VS/RS UP|DOWN) alike", n.Keyword)
	}
	if len(n.Args) == 3 {
		g.fifoGroup = n.Args[2]
		t.note(n, "the FIFO's group %s may read it (vrrp.notify_fifo_group, mode 0660); vigil creates it owned by root", n.Args[2])
	} else if len(n.Args) == 2 {
		t.drop(n, n.Keyword+" "+n.Args[1], "vigil creates the FIFO owned by root; give a group (notify_fifo_group) to let others read it")
	}
}

// lvsTimeouts reads lvs_timeouts [tcp SECS] [tcpfin SECS] [udp SECS].
func (t *translator) lvsTimeouts(n *kaconf.Node) {
	m := mapping()
	keys := map[string]string{"tcp": "tcp", "tcpfin": "tcp_fin", "udp": "udp"}
	for i := 0; i+1 < len(n.Args); i += 2 {
		k, ok := keys[n.Args[i]]
		secs, okN := parseInt(n.Args[i+1], 0, 365*24*3600)
		if !ok || !okN {
			t.drop(n, "lvs_timeouts "+n.Args[i], "is not tcp|tcpfin|udp SECONDS")
			continue
		}
		add(m, k, str(duration(time.Duration(secs)*time.Second)), n)
	}
	if len(n.Args)%2 != 0 {
		t.drop(n, "", "has a word without its value")
	}
	if len(m.Content) > 0 {
		t.g.timeouts, t.g.timeoutsAt = m, n
	}
}

// garpKeywords maps keepalived's GARP keywords (global ones take the
// vrrp_ prefix) to vigil's garp: keys.
var garpKeywords = map[string]string{
	"garp_master_delay":          "delay",
	"garp_master_repeat":         "repeat",
	"garp_lower_prio_delay":      "lower_prio_delay",
	"garp_lower_prio_repeat":     "lower_prio_repeat",
	"garp_master_refresh":        "refresh",
	"garp_master_refresh_repeat": "refresh_repeat",
	"garp_interval":              "interval",
	"gna_interval":               "interval",
}

// garpKeyword translates a GARP keyword into m; it reports whether n was
// one. global: n is in global_defs (vrrp_ prefix, min_garp).
func garpKeyword(t *translator, m *yaml.Node, n *kaconf.Node, global bool) bool {
	kw := n.Keyword
	if global {
		if kw == "vrrp_min_garp" {
			v, ok := parseBool(n.Args)
			if !ok {
				t.drop(n, "", "is not a boolean")
			} else if v {
				// keepalived: one message, no second burst.
				add(m, "repeat", integer(1), n)
				add(m, "delay", str("0s"), n)
			}
			return true
		}
		if len(kw) < 5 || kw[:5] != "vrrp_" {
			return false
		}
		kw = kw[5:]
	} else if kw == "garp_interval" || kw == "gna_interval" {
		return false // global only in keepalived
	}
	key, ok := garpKeywords[kw]
	if !ok {
		return false
	}
	v, okV := one(n)
	switch key {
	case "repeat", "refresh_repeat", "lower_prio_repeat":
		lo := int64(1)
		if key == "lower_prio_repeat" {
			lo = 0
		}
		c, ok := parseInt(v, lo, 100)
		if !okV || !ok {
			t.drop(n, "", "is not a count in vigil's range %d..100", lo)
			return true
		}
		add(m, key, integer(c), n)
	default:
		d, ok := parseTimer(v)
		limit := 1000 * time.Second
		switch key {
		case "interval":
			limit = time.Second
		case "refresh":
			limit = time.Hour
		}
		if !okV || !ok || d > limit || key == "refresh" && d != 0 && d < time.Second {
			t.drop(n, "", "is not a time in seconds within vigil's range (%s: up to %s)", key, duration(limit))
			return true
		}
		if key == "interval" && get(m, "interval") != nil && get(m, "interval").Value != duration(d) {
			t.drop(n, "", "vigil paces GARP and NA with one interval, already %s", get(m, "interval").Value)
			return true
		}
		add(m, key, str(duration(d)), n)
	}
	return true
}
