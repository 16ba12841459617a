// Package ipvsnet is the thin driver between the pure lb package and the
// kernel's IPVS table: it dumps the table into an [lb.Table] (normalised,
// so lb.Diff compares like with like), executes [lb.Op]s in order, and
// reads counters. The table is read and written over the IPVS generic
// netlink family directly (mdlayher/genetlink; dump.go, apply.go): moby/ipvs
// neither reads a destination's tunnel encapsulation nor a service's
// persistence engine, and sends one request per change. moby/ipvs still
// reads and sets the connection timeouts. The sync daemons are in
// syncd.go.
//
// Kernel encodings handled here: dumps carry the kernel's HASHED service
// flag (dropped) and addresses in 16 bytes (an IPv4 address in the first
// 4), the IPv4 persistence netmask is a big-endian mask and the IPv6 one a
// prefix length in host order, a tunnelled destination of the other family
// than its service names its family, and weights above 65535 are refused,
// as ipvsadm does.
package ipvsnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/ipvs"
	"github.com/vishvananda/netlink"

	"vigil/lb"
)

// Kernel service flags (include/uapi/linux/ip_vs.h).
const (
	svcPersistent = 0x0001
	svcHashed     = 0x0002
	svcOnePacket  = 0x0004
	svcSchedMask  = lb.SchedFlag1 | lb.SchedFlag2 | lb.SchedFlag3
)

// maxWeight is the largest weight ipvsadm accepts (and keepalived).
const maxWeight = 65535

// ErrNoIPVS is returned (wrapped) when the kernel has no IPVS.
var ErrNoIPVS = errors.New("kernel has no IPVS; load it with `modprobe ip_vs` (and the scheduler modules, e.g. ip_vs_wrr) or build the kernel with CONFIG_IP_VS")

// Available reports whether the kernel has IPVS. moby/ipvs opens a handle
// and even accepts commands without it, so a driver must ask first: the
// generic netlink family "IPVS" exists exactly when the ip_vs module is
// loaded.
func Available() error {
	if _, err := netlink.GenlFamilyGet("IPVS"); err != nil {
		if _, serr := os.Stat("/proc/net/ip_vs"); serr == nil {
			return fmt.Errorf("ipvsnet: /proc/net/ip_vs exists but generic netlink family IPVS is unavailable: %w", err)
		}
		return fmt.Errorf("ipvsnet: generic netlink family IPVS not found (%v): %w", err, ErrNoIPVS)
	}
	return nil
}

// Handle is an IPVS netlink handle in one network namespace. It is not
// safe for concurrent use.
type Handle struct {
	h     *ipvs.Handle // opened on first use (timeouts); see mobyHandle
	g     *genl        // the table, the sync daemons
	netns string
}

// Open returns a handle on the IPVS table of the network namespace at
// netnsPath (e.g. /run/netns/lb1), or of the caller's when it is "".
func Open(netnsPath string) (*Handle, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	g, err := dialGenl(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("ipvsnet: open IPVS generic netlink socket in netns %q: %w", netnsPath, err)
	}
	return &Handle{g: g, netns: netnsPath}, nil
}

// mobyHandle opens the moby/ipvs handle the timeouts use, the first time
// they are read or set. Not at Open: moby/ipvs runs modprobe the first
// time (a process started at every start, for nothing when the kernel
// has IPVS, which Open has checked).
func (h *Handle) mobyHandle() (*ipvs.Handle, error) {
	if h.h == nil {
		mh, err := ipvs.New(h.netns)
		if err != nil {
			return nil, fmt.Errorf("ipvsnet: open IPVS netlink socket in netns %q: %w", h.netns, err)
		}
		h.h = mh
	}
	return h.h, nil
}

// Close releases the netlink sockets.
func (h *Handle) Close() {
	if h.h != nil {
		h.h.Close()
	}
	h.g.c.Close()
}

// Dump returns the kernel's table: one dump of services, one of each
// service's destinations.
func (h *Handle) Dump() (lb.Table, error) {
	t, _, err := h.dump(false)
	return t, err
}

// Services returns the kernel's services without their destinations: one
// dump, where Dump makes one more per service (enough to remove them all:
// deleting a service deletes its destinations).
func (h *Handle) Services() (lb.Table, error) {
	svcs, err := h.services()
	if err != nil {
		return nil, err
	}
	t := make(lb.Table, len(svcs))
	for _, ks := range svcs {
		t[ks.svc.Key] = lb.Entry{Service: ks.svc}
	}
	return t, nil
}

// Stats returns the table together with its counters, from one dump.
func (h *Handle) Stats() (lb.Table, lb.Stats, error) {
	return h.dump(true)
}

// addrFamily is a's family.
func addrFamily(a netip.Addr) lb.Family {
	if a.Unmap().Is4() {
		return lb.IPv4
	}
	return lb.IPv6
}

func afOf(f lb.Family) (uint16, error) {
	switch f {
	case lb.IPv4:
		return syscall.AF_INET, nil
	case lb.IPv6:
		return syscall.AF_INET6, nil
	}
	return 0, fmt.Errorf("address family %d is neither IPv4 nor IPv6", f)
}

// ksvc is a service with its settings in the kernel's terms.
type ksvc struct {
	key     lb.ServiceKey
	af      uint16
	sched   string
	flags   uint32 // IP_VS_SVC_F_*
	timeout uint32 // persistence, seconds
	netmask uint32 // as the kernel reads it (see kernelService)
	pe      string
}

func kernelService(s lb.Service) (ksvc, error) {
	s = s.Normal()
	af, err := afOf(s.Key.Family)
	if err != nil {
		return ksvc{}, err
	}
	ks := ksvc{key: s.Key, af: af, sched: s.Scheduler, flags: s.SchedFlags & svcSchedMask, pe: s.PE}
	if s.OnePacket {
		ks.flags |= svcOnePacket
	}
	mask := 0 // the full length unless persistent with a coarser mask
	if s.Persistence > 0 {
		ks.flags |= svcPersistent
		ks.timeout = uint32(s.Persistence / time.Second)
		mask = s.PersistenceMask
	}
	if s.Key.Family == lb.IPv6 {
		// The kernel wants a prefix length (1..128) for IPv6.
		if mask == 0 {
			mask = 128
		}
		ks.netmask = uint32(mask)
	} else {
		if mask == 0 {
			mask = 32
		}
		// The kernel reads a big-endian mask from the u32 attribute, which
		// is written in native byte order: hand it the mask's bytes.
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], ^uint32(0)<<(32-mask))
		ks.netmask = binary.NativeEndian.Uint32(b[:])
	}
	return ks, nil
}

// kernelForward maps forwarding methods to the kernel's IP_VS_CONN_F_*.
var kernelForward = map[lb.Forward]uint32{
	lb.NAT:    ipvs.ConnectionFlagMasq,
	lb.DR:     ipvs.ConnectionFlagDirectRoute,
	lb.Tunnel: ipvs.ConnectionFlagTunnel,
	lb.Local:  ipvs.ConnectionFlagLocalNode,
}

// kdest is a destination with its family and forwarding method in the
// kernel's terms; its family is its own (a tunnelled destination may
// differ from its service's).
type kdest struct {
	d   lb.Dest // normal
	af  uint16
	fwd uint32 // IP_VS_CONN_F_*
}

func kernelDest(d lb.Dest) (kdest, error) {
	d = d.Normal()
	if d.Weight > maxWeight {
		return kdest{}, fmt.Errorf("weight %d of %s above %d", d.Weight, netip.AddrPortFrom(d.Addr, d.Port), maxWeight)
	}
	af, err := afOf(addrFamily(d.Addr))
	if err != nil {
		return kdest{}, err
	}
	f, ok := kernelForward[d.Forward]
	if !ok {
		return kdest{}, fmt.Errorf("forwarding method %s of %s", d.Forward, netip.AddrPortFrom(d.Addr, d.Port))
	}
	return kdest{d: d, af: af, fwd: f}, nil
}

// Info returns the kernel's IPVS version and connection table size, as
// the header of /proc/net/ip_vs (and ipvsadm -L) shows them.
func Info() (version string, size int, err error) {
	b, err := os.ReadFile("/proc/net/ip_vs")
	if err != nil {
		return "", 0, fmt.Errorf("ipvsnet: read IPVS version: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseInfo(line)
}

// parseInfo reads "IP Virtual Server version 1.2.1 (size=4096)".
func parseInfo(line string) (version string, size int, err error) {
	var v, sz string
	if f := strings.Fields(line); len(f) == 6 {
		v, sz = f[4], strings.TrimSuffix(strings.TrimPrefix(f[5], "(size="), ")")
	}
	n, err := strconv.Atoi(sz)
	if v == "" || err != nil {
		return "", 0, fmt.Errorf("ipvsnet: unexpected /proc/net/ip_vs header %q", line)
	}
	return v, n, nil
}

// Timeouts are the kernel's IPVS connection timeouts (ipvsadm --set TCP
// TCPFIN UDP): established TCP, TCP after FIN, and UDP.
type Timeouts struct {
	TCP, TCPFin, UDP time.Duration
}

// Timeouts reads the namespace's IPVS connection timeouts.
func (h *Handle) Timeouts() (Timeouts, error) {
	mh, err := h.mobyHandle()
	if err != nil {
		return Timeouts{}, err
	}
	c, err := mh.GetConfig()
	if err != nil {
		return Timeouts{}, fmt.Errorf("ipvsnet: read timeouts: %w", err)
	}
	return Timeouts{TCP: c.TimeoutTCP, TCPFin: c.TimeoutTCPFin, UDP: c.TimeoutUDP}, nil
}

// SetTimeouts sets the namespace's IPVS connection timeouts, in whole
// seconds; a zero leaves that timeout as it is (the kernel ignores 0).
func (h *Handle) SetTimeouts(t Timeouts) error {
	mh, err := h.mobyHandle()
	if err != nil {
		return err
	}
	if err := mh.SetConfig(&ipvs.Config{TimeoutTCP: t.TCP, TimeoutTCPFin: t.TCPFin, TimeoutUDP: t.UDP}); err != nil {
		return fmt.Errorf("ipvsnet: set timeouts tcp %s tcp_fin %s udp %s: %w", t.TCP, t.TCPFin, t.UDP, err)
	}
	return nil
}
