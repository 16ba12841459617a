package ipvsnet

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// The connection synchronisation daemons. Numbers are from
// include/uapi/linux/ip_vs.h.
const (
	cmdNewDaemon = 9  // IPVS_CMD_NEW_DAEMON
	cmdDelDaemon = 10 // IPVS_CMD_DEL_DAEMON
	cmdGetDaemon = 11 // IPVS_CMD_GET_DAEMON
	cmdGetInfo   = 15 // IPVS_CMD_GET_INFO

	cmdAttrDaemon = 3 // IPVS_CMD_ATTR_DAEMON (nested)

	daemonAttrState       = 1 // u32
	daemonAttrMcastIfn    = 2 // string
	daemonAttrSyncID      = 3 // u32
	daemonAttrSyncMaxLen  = 4 // u16
	daemonAttrMcastGroup  = 5 // in_addr (network order)
	daemonAttrMcastGroup6 = 6 // in6_addr
	daemonAttrMcastPort   = 7 // u16 (host order)
	daemonAttrMcastTTL    = 8 // u8

	ifNameMax = 16 // IP_VS_IFNAME_MAXLEN, with the terminating NUL
)

// Kernel defaults for a daemon started without the optional settings
// (net/netfilter/ipvs/ip_vs_sync.c), so a request that leaves them out
// compares equal to what a dump then reports.
var (
	DefaultSyncGroup = netip.MustParseAddr("224.0.0.81") // IP_VS_SYNC_GROUP
)

const (
	DefaultSyncPort = 8848 // IP_VS_SYNC_PORT
	DefaultSyncTTL  = 1
)

// SyncState is the role of a sync daemon; a namespace runs at most one
// of each.
type SyncState uint32

const (
	SyncMaster SyncState = 1 // IP_VS_STATE_MASTER: sends connection updates
	SyncBackup SyncState = 2 // IP_VS_STATE_BACKUP: receives them
)

func (s SyncState) String() string {
	switch s {
	case SyncMaster:
		return "master"
	case SyncBackup:
		return "backup"
	}
	return fmt.Sprintf("state(%d)", uint32(s))
}

// SyncDaemon is the configuration of one kernel sync daemon, as
// ipvsadm --start-daemon takes it. Zero optional fields mean the kernel's
// defaults.
type SyncDaemon struct {
	State     SyncState
	Interface string // multicast interface (--mcast-interface)
	SyncID    uint8  // the protocol carries 8 bits; both ends must agree
	// MaxLen is the UDP payload size; 0 lets the kernel derive it from
	// the interface MTU, and then any running value satisfies it.
	MaxLen uint16
	Group  netip.Addr // multicast group, IPv4 or IPv6; zero: DefaultSyncGroup
	Port   uint16     // base UDP port; 0: DefaultSyncPort
	TTL    uint8      // 0: DefaultSyncTTL
}

// String reads like ipvsadm's daemon options; unset (default) settings
// are left out.
func (d SyncDaemon) String() string {
	s := fmt.Sprintf("%s on %s syncid %d", d.State, d.Interface, d.SyncID)
	if d.Group.IsValid() {
		s += fmt.Sprintf(" group %s", d.Group)
	}
	if d.Port != 0 {
		s += fmt.Sprintf(" port %d", d.Port)
	}
	if d.TTL != 0 {
		s += fmt.Sprintf(" ttl %d", d.TTL)
	}
	if d.MaxLen != 0 {
		s += fmt.Sprintf(" maxlen %d", d.MaxLen)
	}
	return s
}

// normal fills in the kernel's defaults.
func (d SyncDaemon) normal() SyncDaemon {
	if !d.Group.IsValid() {
		d.Group = DefaultSyncGroup
	}
	d.Group = d.Group.Unmap()
	if d.Port == 0 {
		d.Port = DefaultSyncPort
	}
	if d.TTL == 0 {
		d.TTL = DefaultSyncTTL
	}
	return d
}

// satisfiedBy reports whether running daemon r already does what d asks.
func (d SyncDaemon) satisfiedBy(r SyncDaemon) bool {
	d, r = d.normal(), r.normal()
	if d.MaxLen == 0 {
		r.MaxLen = 0
	}
	return d == r
}

func (d SyncDaemon) validate() error {
	if d.State != SyncMaster && d.State != SyncBackup {
		return fmt.Errorf("sync daemon state %d is neither master nor backup", uint32(d.State))
	}
	if d.Interface == "" || len(d.Interface) >= ifNameMax {
		// The kernel would silently truncate a long name.
		return fmt.Errorf("sync daemon interface name %q must be 1 to %d bytes", d.Interface, ifNameMax-1)
	}
	if d.Group.IsValid() && !d.Group.IsMulticast() {
		return fmt.Errorf("sync daemon group %s is not a multicast address", d.Group)
	}
	return nil
}

// encodeDaemon returns the attributes of a NEW_DAEMON request (full
// settings) or, with stateOnly, of a DEL_DAEMON request.
func encodeDaemon(d SyncDaemon, stateOnly bool) []byte {
	b := nestStart(nil)
	b = attrU32(b, daemonAttrState, uint32(d.State))
	if stateOnly {
		return nestEnd(b, 0, cmdAttrDaemon)
	}
	b = attrString(b, daemonAttrMcastIfn, d.Interface)
	b = attrU32(b, daemonAttrSyncID, uint32(d.SyncID))
	if d.MaxLen != 0 {
		b = attrU16(b, daemonAttrSyncMaxLen, d.MaxLen)
	}
	if g := d.Group.Unmap(); g.Is4() {
		b = appendAddr(b, daemonAttrMcastGroup, g)
	} else if g.Is6() {
		b = appendAddr(b, daemonAttrMcastGroup6, g)
	}
	if d.Port != 0 {
		b = attrU16(b, daemonAttrMcastPort, d.Port)
	}
	if d.TTL != 0 {
		b = attrU8(b, daemonAttrMcastTTL, d.TTL)
	}
	return nestEnd(b, 0, cmdAttrDaemon)
}

// decodeDaemon reads one daemon from the attributes of a GET_DAEMON
// dump message.
func decodeDaemon(b []byte) (SyncDaemon, error) {
	var d SyncDaemon
	n, err := nested(b, cmdAttrDaemon, "IPVS_CMD_ATTR_DAEMON")
	if err != nil {
		return d, fmt.Errorf("sync daemon: %w", err)
	}
	for n.Next() {
		switch n.Type() {
		case daemonAttrState:
			d.State = SyncState(n.Uint32())
		case daemonAttrMcastIfn:
			d.Interface = n.String()
		case daemonAttrSyncID:
			id := n.Uint32()
			if id > 0xff {
				return d, fmt.Errorf("sync daemon: sync id %d above 255", id)
			}
			d.SyncID = uint8(id)
		case daemonAttrSyncMaxLen:
			d.MaxLen = n.Uint16()
		case daemonAttrMcastGroup, daemonAttrMcastGroup6:
			a, ok := netip.AddrFromSlice(n.Bytes())
			if !ok {
				return d, fmt.Errorf("sync daemon: multicast group of %d bytes", len(n.Bytes()))
			}
			d.Group = a
		case daemonAttrMcastPort:
			d.Port = n.Uint16()
		case daemonAttrMcastTTL:
			d.TTL = n.Uint8()
		}
	}
	if err := n.Err(); err != nil {
		return d, fmt.Errorf("sync daemon attributes: %w", err)
	}
	if d.State != SyncMaster && d.State != SyncBackup {
		return d, fmt.Errorf("sync daemon with state %d", uint32(d.State))
	}
	return d, nil
}

// SyncDaemons returns the sync daemons running in the handle's namespace.
func (h *Handle) SyncDaemons() ([]SyncDaemon, error) {
	var ds []SyncDaemon
	err := h.g.dump(cmdGetDaemon, nil, func(b []byte) error {
		d, err := decodeDaemon(b)
		if err != nil {
			return err
		}
		ds = append(ds, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ipvsnet: dump sync daemons: %w", err)
	}
	return ds, nil
}

// StartSyncDaemon makes the daemon of d.State run with d's settings: it
// does nothing when it already does (the caller reconciles), restarts it
// when it runs with other settings, and starts it otherwise. When the
// kernel refuses the new settings of a restart (a missing interface, say),
// the daemon is started again with its old ones, so a bad reload does not
// leave the director without synchronisation; the error says so.
func (h *Handle) StartSyncDaemon(d SyncDaemon) error {
	if err := d.validate(); err != nil {
		return fmt.Errorf("ipvsnet: start sync daemon: %w", err)
	}
	running, err := h.SyncDaemons()
	if err != nil {
		return fmt.Errorf("ipvsnet: start sync daemon %s: %w", d, err)
	}
	var old *SyncDaemon
	for _, r := range running {
		if r.State != d.State {
			continue
		}
		if d.satisfiedBy(r) {
			return nil
		}
		if err := h.StopSyncDaemon(d.State); err != nil {
			return fmt.Errorf("ipvsnet: restart sync daemon (%s) as %s: %w", r, d, err)
		}
		old = &r
	}
	err = h.newDaemon(d)
	if err == nil {
		return nil
	}
	if old == nil {
		return fmt.Errorf("ipvsnet: start sync daemon %s: %w", d, err)
	}
	if rerr := h.newDaemon(*old); rerr != nil {
		return fmt.Errorf("ipvsnet: restart sync daemon as %s: %w; restoring the old one (%s) failed too, it is stopped: %v", d, err, *old, rerr)
	}
	return fmt.Errorf("ipvsnet: restart sync daemon as %s: %w; it runs with its old settings (%s)", d, err, *old)
}

func (h *Handle) newDaemon(d SyncDaemon) error {
	return h.g.request(cmdNewDaemon, encodeDaemon(d, false), nil)
}

// StopSyncDaemon stops the daemon of the given state; one that is not
// running is already stopped.
func (h *Handle) StopSyncDaemon(state SyncState) error {
	if state != SyncMaster && state != SyncBackup {
		return fmt.Errorf("ipvsnet: stop sync daemon: state %d is neither master nor backup", uint32(state))
	}
	err := h.g.request(cmdDelDaemon, encodeDaemon(SyncDaemon{State: state}, true), nil)
	switch {
	case errors.Is(err, unix.ESRCH):
		return nil // no daemon of that state runs
	case errors.Is(err, unix.EINTR):
		// Its thread was stopped before it first ran (see genl.request); the
		// kernel forgets the daemon before stopping its threads. Make sure.
		running, derr := h.SyncDaemons()
		if derr != nil {
			return fmt.Errorf("ipvsnet: stop %s sync daemon: %w; reading the daemons after it: %w", state, err, derr)
		}
		for _, d := range running {
			if d.State == state {
				return fmt.Errorf("ipvsnet: stop %s sync daemon: %w, and it still runs", state, err)
			}
		}
		return nil
	case err != nil:
		return fmt.Errorf("ipvsnet: stop %s sync daemon: %w", state, err)
	}
	return nil
}
