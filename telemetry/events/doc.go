// Package events carries VRRP state changes, and the load balancer's
// virtual and real servers going up and down, in order, from where they
// happen to everything that wants to hear about them: keepalived-style
// notify scripts, a notify FIFO (keepalived's notify_fifo and
// lvs_notify_fifo line stream, or JSON lines) and in-process subscribers
// (the admin API, tracing).
//
// # The bus
//
// Every state change of an instance or a sync group is published once on a
// [Bus] as an [Event]. Publish never blocks: it takes one short mutex, gives
// the event the next sequence number (Seq, strictly increasing per node, no
// gaps) and copies it into the bounded queue of every subscriber. It never
// waits for a consumer, does no I/O and does not log, so the VRRP event loop
// may call it while holding its own lock.
//
// Each subscriber (an in-process [Subscription], the script [Notifier], the
// [FIFO]) has its own queue and its own goroutine, so a slow consumer only
// delays itself. Within one subscriber events arrive in Seq order, always.
//
// # Overflow policy: drop the oldest, say so
//
// A queue holds a bounded number of events (the buffer given to Subscribe,
// 1024 by default for the sinks). When an event arrives at a full queue the
// oldest undelivered event is discarded, and the consumer is told: before the
// next event it gets a marker, an Event with Kind [KindDropped] and Dropped =
// how many events were skipped at that point. Seq shows the same gap. The
// newest events are kept because they carry the current state: a consumer
// that fell behind still ends on the right state, and its notify scripts
// still run for the latest transition. The sinks log the marker.
//
// # Notify scripts
//
// See [Notifier] and [ScriptSpec]. Scripts for one node run one at a time in
// Seq order: for each event first the state script (Master, Backup, Fault or
// Stop), then the generic one (All). Ordering is per node, not per instance,
// because sync groups and their member instances are notified about the same
// failover and group scripts are written assuming the member scripts already
// ran; and scripts of different instances usually edit the same host state
// (routes, firewall, services), which keepalived's concurrent scripts race
// on (keepalived issues #584, #996, #1055). The price is that a slow script
// delays the scripts of later events, of every instance, until it ends or
// hits its timeout (10 s by default, then its process group is killed). A
// script that cannot be killed (another user's, and vigil lacks CAP_KILL)
// holds the queue no longer than its timeout plus the kill grace: it is
// logged, left running and reaped when it ends. It never delays the
// protocol: the queue absorbs it.
//
// # Notify FIFO
//
// See [FIFO]. One line per event, in Seq order, in keepalived's format
// (`INSTANCE "VI_1" MASTER 100`, `GROUP "edge" BACKUP 0`) or as JSON lines.
//
// # Shutdown
//
// [Bus.Close] stops accepting events, lets every subscriber drain what is
// queued (so the STOP notifications published at shutdown reach scripts and
// the FIFO), and after the drain timeout (5 s by default, keepalived's
// child_wait_time) cuts delivery short: running scripts are killed, channels
// are closed. When Close returns no goroutine of this package is left.
//
// # From the VRRP engine
//
// The engine's vrrp.StateChange maps onto an Event as:
//
//	events.Event{Kind: events.KindInstance, Name: name, VRID: vrid, Interface: ifname,
//		From: sc.From.String(), To: sc.To.String(), Reason: string(sc.Cause),
//		Priority: int(sc.Priority), Master: sc.Master, Time: sc.At}
//
// Reasons use the Cause vocabulary (startup, address_owner, master_down_timer,
// priority_zero_received, preempted, higher_priority_advert, shutdown,
// interface_down, tracker_fault, fault_cleared, sync_group, admin) plus
// config_reload ([ReasonConfigReload]).
package events
