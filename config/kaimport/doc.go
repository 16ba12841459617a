// Package kaimport translates a keepalived configuration, as parsed by
// internal/kaconf, into a vigil YAML document (vigil config
// import-keepalived). Translate is pure: no file, host or clock. Each value
// in the output carries a comment naming the keepalived FILE:LINE it came
// from; the Result lists every keyword that was not carried over (Dropped:
// FILE:LINE: keyword: reason) and every setting whose meaning differs in
// vigil and was translated rather than copied (Translated). The command
// then checks the document as vigil config validate does.
//
// # Translated semantics
//
//   - state MASTER/BACKUP is keepalived's initial state, not an election
//     result: vigil has none, priority decides. state MASTER without
//     priority is keepalived's address owner, priority: 255. keepalived
//     clears nopreempt and preempt_delay with state MASTER, nopreempt for
//     the owner, preempt_delay with nopreempt or vrrp_strict: they are
//     dropped the same way.
//   - VRRP version: keepalived's default is vrrp_version, 2; vigil's is 3, so
//     version: 2 is written (IPv6 instances are always 3). advert_int is
//     rounded as keepalived rounds it (whole seconds for v2, 10 ms for v3).
//   - auth_pass: keepalived uses the first 8 bytes; so does the document.
//     authentication with version 3 is dropped (keepalived ignores it).
//   - Unicast: keepalived checks no TTL without min_ttl; vigil wants 255
//     (on-link). unicast_ttl N becomes min_ttl: N; the lowest peer min_ttl
//     is the instance's; IPv6 unicast gets min_ttl: 64, since keepalived 2.2
//     sends its IPv6 unicast adverts with hop limit 64. mcast_src_ip with
//     unicast peers is the unicast source.
//   - Tracker weights: keepalived's defaults are written where vigil's
//     differ (vrrp_track_process weight 1, vigil 0). Members of a sync group
//     without sync_group_tracking_weight, and the address owner, track with
//     weight 0, which keepalived sets itself. A sync group's track_* apply
//     to each member instance (vigil's trackers belong to instances).
//     Tracking an instance's own interface is dropped, as keepalived
//     ignores it. A tracked process given by path is matched by its name
//     (comm, 15 bytes); fork_delay/terminate_delay become the one delay.
//     init_file is the value while the file is missing (vigil never writes
//     the file).
//   - Notify FIFOs: notify_fifo, vrrp_notify_fifo and lvs_notify_fifo are
//     vigil's one FIFO (both kinds of lines); the FIFO's group may read it.
//   - Virtual servers: no protocol is keepalived 2.2's UDP ("no protocol
//     set - defaulting to UDP"), written as protocol: udp. Checkers inherit
//     delay_loop, connect_timeout, retry, delay_before_retry, warmup and
//     virtualhost virtual server → real server → checker, and each check
//     gets them written out: keepalived's defaults interval 60s and timeout
//     5s are not vigil's (5s, 2s); retry N is fall: N+1; a timeout longer
//     than the interval is the interval. HTTP_GET/SSL_GET speak HTTP/1.0
//     unless http_protocol says (vigil's default is 1.1): http_protocol:
//     "1.0" is written. UDP_CHECK require_reply gets keepalived's
//     max_reply_length 255. FILE_CHECK reads its track_file's path and
//     weight; weight N reverse is weight -N. Real servers whose checks are
//     all one identical check get it once, as the virtual server's check.
//   - Legacy names: lb_algo (lvs_sched), lb_kind (lvs_method), nb_get_retry
//     (retry), vrrp_track_file (track_file) are read and noted.
//   - persistence_timeout without a value is 360s; persistence_granularity
//     as a netmask is a prefix length.
//   - virtual_server group NAME: a virtual server with addresses:; a group
//     whose addresses differ in port or family becomes one virtual server
//     per port and family (vigil's addresses share one); A.B.C.D-E ranges
//     are kept, other ranges and prefixes (up to 256 addresses) written out.
//   - Direct routing cannot change the port: a DR real server with another
//     port gets the service's, and its checks the port it had.
//   - router_id is node.name when it is a valid vigil name (else dropped;
//     vigil then uses the host name, as keepalived's router_id does);
//     --node-name wins. lvs_flush and lvs_flush_on_stop are
//     foreign_services: remove. vrrp_min_garp is garp repeat 1, delay 0.
//   - Instance and group names outside vigil's A-Z a-z 0-9 _ . - are
//     rewritten with _; virtual servers are named PROTO-ADDRESS-PORT,
//     fwmark-N or PROTO-GROUP.
//
// # Nothing to write (a note, not a drop)
//
// Keywords whose purpose vigil always serves do not make an import partial:
// enable_script_security, vrrp_check_unicast_src and check_unicast_src,
// reload_check_config, dynamic_interfaces, track_src_ip, notify_deleted,
// linkbeat_use_polling, use_pid_dir, include_check, random_seed, native_ipv6
// and debug (see builtIn).
//
// # Not carried over (dropped with a reason)
//
// Top level: static_ipaddress, static_routes, static_rules, bfd_instance,
// garp_group, linkbeat_interfaces, interface_up_down_delays, SSL,
// net_namespace; vrrp_script, track_file and vrrp_track_process blocks no
// instance tracks (keepalived does not run them either).
//
// global_defs: email (notification_email*, smtp_*, no_email_faults), SNMP
// and DBus, vrrp_mcast_group4/6, vrrp_garp_extra_if,
// vrrp_higher_prio_send_advert, vrrp_skip_check_adv_addr, vrrp_down_timer_adverts,
// vrrp_notify_priority_changes, *_fifo_script,
// startup/shutdown scripts, reload_time_file, reload_repeat, reload_file, config_save_dir, nftables*,
// vrrp_iptables, vrrp_ipsets, per-process tuning (priorities, affinities,
// real-time, netlink buffers, process names), vmac_prefix,
// vrrp_startup_delay, a FIFO's user; the sync daemon's
// maxlen, port, ttl and group; lvs_sync_daemon without an instance.
//
// vrrp_instance: virtual_ipaddress_excluded (vigil advertises every VIP;
// adding them to vips changes the adverts, which keepalived before 2.3.3
// rejects), virtual_routes, virtual_rules, no_virtual_ipaddress, track_bfd,
// use_vmac's MAC, use_vmac_addr, vmac_xmit_base, use_ipvlan, mcast_dst_ip,
// vrf, old_unicast_checksum, down_timer_adverts,
// higher_prio_send_advert, skip_check_adv_addr,
// notify_master_rx_lower_pri, notify_priority_changes,
// smtp_alert, garp_extra_if, promote_secondaries, strict_mode differing
// from vrrp_strict, unicast_peer max_ttl, auth_type AH, VIP options other
// than dev and label (brd, scope, peer, no_track, preferred_lft, ...), a
// second notify user, an instance without interface.
//
// vrrp_track_process: param_match, quorum_max, full_command.
//
// LVS: smtp_alert, snmp_name, hashed, an unknown scheduler (vigil's
// default wlc, as keepalived), a group's fwmark entries beside addresses,
// BFD_CHECK, regex_options/regex_stack/regex_*_offset and regexes RE2
// cannot compile, fast_recovery, tls_compliant, bind_if, bind_port, a
// checker's alpha, log_all_failures, a real server's notify user.
package kaimport
