// Package ipvsnet is the thin driver between the pure lb package and the
// kernel's IPVS table: it dumps the table into an [lb.Table] (normalised,
// so lb.Diff compares like with like), executes [lb.Op]s in order, reads
// counters, and runs the connection sync daemons (syncd.go) and timeouts.
//
// Every exchange with the kernel's IPVS generic netlink family goes
// through one client, genl.go, written on golang.org/x/sys/unix: the
// socket in a namespace, the family's lookup, framing, sequence numbers,
// acknowledgements, dumps, batches. The other files encode and decode the
// family's attributes (nlattr.go: the TLV layout) and hold the IPVS
// semantics (apply.go, dump.go, syncd.go). The libraries it replaced do
// not do the job here:
//
//   - moby/ipvs sends one request per change and waits for its answer,
//     with a 64 KiB receive buffer allocated each time (on 10,000
//     destinations vigil's start was slower than keepalived's), and reads
//     neither a destination's tunnel encapsulation nor a service's
//     persistence engine (a gue tunnel or a sip service would compare
//     unequal on every pass and be rewritten forever).
//   - mdlayher/genetlink's Conn has no batch send; its Execute fails on an
//     answer left unread by a request given up on, and then on every
//     request after. With Execute and netlink's AttributeDecoder a dump
//     of 1,000 x 10 took 1.0-1.3 s in the test VM, with the answers read
//     into one buffer and attributes read in place 0.71-0.81 s.
//   - mdlayher/netlink's Conn does send a batch in one sendmsg
//     (SendMessages) and Receive reports a refusal with its sequence
//     number, but SendMessages copies every message twice (MarshalBinary,
//     then a buffer grown per call) and Receive peeks at each read, then
//     allocates for it. BenchmarkBatches (11,000 requests in batches of
//     128 to nlctrl, which skips them and acknowledges each batch; the
//     whole client's share of a cold start): this client 2.4-2.9 ms,
//     30 KB and 774 allocations; SendMessages and Receive 14-34 ms, 7 MB
//     and 15,472 allocations. In the test VM (TestBenchReconcile, TCG,
//     1 vCPU, two runs of each, back to back, on a loaded host) the cold
//     apply of 11,000 ops took a median of 0.42 and 0.28 s with the
//     hand-written batches this client keeps, 0.88 and 1.90 s with
//     SendMessages and Receive.
//
// vishvananda/netlink, which looked the family up, stays in the project
// for links and addresses.
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

// genlName is the IPVS generic netlink family's name: it exists exactly
// when the ip_vs module is loaded.
const genlName = "IPVS"

// Available reports whether the kernel has IPVS.
func Available() error {
	g, err := dialIPVS("")
	if err != nil {
		return err
	}
	g.Close()
	return nil
}

// dialIPVS opens a generic netlink socket to the IPVS family in the
// namespace at netnsPath ("" for the caller's).
func dialIPVS(netnsPath string) (*genl, error) {
	g, err := dialGenl(netnsPath, genlName)
	var ferr *familyError
	switch {
	case errors.As(err, &ferr):
		if _, serr := os.Stat("/proc/net/ip_vs"); serr == nil {
			return nil, fmt.Errorf("ipvsnet: /proc/net/ip_vs exists but generic netlink family IPVS is unavailable: %w", ferr.err)
		}
		return nil, fmt.Errorf("ipvsnet: generic netlink family IPVS not found (%v): %w", ferr.err, ErrNoIPVS)
	case err != nil:
		return nil, fmt.Errorf("ipvsnet: open IPVS generic netlink socket in netns %q: %w", netnsPath, err)
	}
	// A request without effect, for request's barrier.
	g.barrier = genlRequest{cmd: cmdGetInfo}
	return g, nil
}

// Handle is an IPVS netlink handle in one network namespace. It is not
// safe for concurrent use.
type Handle struct {
	g *genl
}

// Open returns a handle on the IPVS table of the network namespace at
// netnsPath (e.g. /run/netns/lb1), or of the caller's when it is "".
func Open(netnsPath string) (*Handle, error) {
	g, err := dialIPVS(netnsPath)
	if err != nil {
		return nil, err
	}
	return &Handle{g: g}, nil
}

// Close releases the netlink socket.
func (h *Handle) Close() {
	h.g.Close()
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

// Forwarding methods (IP_VS_CONN_F_*).
const (
	connFMasq      = 0x0000
	connFLocalNode = 0x0001
	connFTunnel    = 0x0002
	connFDRoute    = 0x0003
)

// kernelForward maps forwarding methods to the kernel's IP_VS_CONN_F_*.
var kernelForward = map[lb.Forward]uint32{
	lb.NAT:    connFMasq,
	lb.DR:     connFDRoute,
	lb.Tunnel: connFTunnel,
	lb.Local:  connFLocalNode,
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

// The connection timeouts (IPVS_CMD_SET_CONFIG, IPVS_CMD_GET_CONFIG and
// their attributes, u32 seconds, at the top level of the message).
const (
	cmdSetConfig = 12
	cmdGetConfig = 13

	cmdAttrTimeoutTCP    = 4
	cmdAttrTimeoutTCPFin = 5
	cmdAttrTimeoutUDP    = 6
)

// Timeouts reads the namespace's IPVS connection timeouts.
func (h *Handle) Timeouts() (Timeouts, error) {
	var t Timeouts
	answered := false
	err := h.g.request(cmdGetConfig, nil, func(b []byte) error {
		answered = true
		a := attrs{b: b}
		for a.Next() {
			switch a.Type() {
			case cmdAttrTimeoutTCP:
				t.TCP = time.Duration(a.Uint32()) * time.Second
			case cmdAttrTimeoutTCPFin:
				t.TCPFin = time.Duration(a.Uint32()) * time.Second
			case cmdAttrTimeoutUDP:
				t.UDP = time.Duration(a.Uint32()) * time.Second
			}
		}
		return a.Err()
	})
	if err == nil && !answered {
		err = errors.New("acknowledged without an answer")
	}
	if err != nil {
		return Timeouts{}, fmt.Errorf("ipvsnet: read timeouts: %w", err)
	}
	return t, nil
}

// SetTimeouts sets the namespace's IPVS connection timeouts, in whole
// seconds; a zero leaves that timeout as it is (the kernel ignores 0).
func (h *Handle) SetTimeouts(t Timeouts) error {
	b := attrU32(nil, cmdAttrTimeoutTCP, uint32(t.TCP/time.Second))
	b = attrU32(b, cmdAttrTimeoutTCPFin, uint32(t.TCPFin/time.Second))
	b = attrU32(b, cmdAttrTimeoutUDP, uint32(t.UDP/time.Second))
	if err := h.g.request(cmdSetConfig, b, nil); err != nil {
		return fmt.Errorf("ipvsnet: set timeouts tcp %s tcp_fin %s udp %s: %w", t.TCP, t.TCPFin, t.UDP, err)
	}
	return nil
}
