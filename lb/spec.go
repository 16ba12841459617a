// Package lb computes the IPVS table vigil wants and the ordered kernel
// operations that get there. It is pure: no netlink, no clock, no goroutines.
// Config compiles into [VirtualServer] values; health comes in through
// [Health]; the applier (lb/ipvsnet) dumps the kernel table into a [Table]
// and executes the [Op]s that [Diff] returns.
package lb

import (
	"fmt"
	"net/netip"
	"time"
)

// Protocol is an IP protocol number as IPVS uses it.
type Protocol uint16

// The protocols IPVS balances.
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case SCTP:
		return "sctp"
	case 0:
		return "none"
	}
	return fmt.Sprintf("proto-%d", uint16(p))
}

// Forward is a real server's forwarding method.
type Forward uint8

// Forwarding methods; the values are not the kernel's (see lb/ipvsnet).
const (
	NAT    Forward = iota // masquerading, the default
	DR                    // direct routing ("gatewaying")
	Tunnel                // IP-in-IP
	// Local is the kernel's "local node" method, which ipvsadm shows for a
	// real server on the director itself; vigil never configures it, but
	// a dump of another tool's service may hold it.
	Local
)

func (f Forward) String() string {
	switch f {
	case NAT:
		return "nat"
	case DR:
		return "dr"
	case Tunnel:
		return "tun"
	case Local:
		return "local"
	}
	return fmt.Sprintf("forward-%d", uint8(f))
}

// TunnelType is a Tunnel destination's encapsulation (the kernel's
// IP_VS_CONN_F_TUNNEL_TYPE_*; gue needs Linux 5.2, gre 5.3).
type TunnelType uint8

// Tunnel encapsulations.
const (
	IPIP TunnelType = iota // IP-in-IP, the default
	GUE                    // Generic UDP Encapsulation, to TunnelPort
	GRE                    // GRE
)

func (t TunnelType) String() string {
	switch t {
	case IPIP:
		return "ipip"
	case GUE:
		return "gue"
	case GRE:
		return "gre"
	}
	return fmt.Sprintf("tunnel-%d", uint8(t))
}

// TunnelCsum is the checksum option of a gue or gre tunnel (the kernel's
// IP_VS_TUNNEL_ENCAP_FLAG_*; keepalived's nocsum, csum, remcsum).
type TunnelCsum uint16

// Tunnel checksum options.
const (
	NoCsum  TunnelCsum = 0
	Csum    TunnelCsum = 1
	RemCsum TunnelCsum = 2 // remote checksum offload (gue only)
)

func (c TunnelCsum) String() string {
	switch c {
	case NoCsum:
		return "nocsum"
	case Csum:
		return "csum"
	case RemCsum:
		return "remcsum"
	}
	return fmt.Sprintf("csum-%d", uint16(c))
}

// Family is the address family of a service, needed for fwmark services
// (which have no address) and otherwise taken from the address.
type Family uint8

// Address families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// ServiceKey identifies one kernel virtual service: either protocol,
// address and port, or a firewall mark (Protocol 0, zero Addr and Port).
type ServiceKey struct {
	Family   Family
	Protocol Protocol
	Addr     netip.Addr
	Port     uint16
	FWMark   uint32
}

func (k ServiceKey) String() string {
	if k.FWMark != 0 {
		return fmt.Sprintf("FWM %d %s", k.FWMark, map[Family]string{IPv4: "IPv4", IPv6: "IPv6"}[k.Family])
	}
	return fmt.Sprintf("%s %s", k.Protocol, netip.AddrPortFrom(k.Addr, k.Port))
}

// Scheduler flags as the kernel numbers them (IP_VS_SVC_F_SCHED1..3); the
// sh and mh schedulers read flag 1 as "fallback" and flag 2 as "port".
const (
	SchedFlag1 uint32 = 0x0008
	SchedFlag2 uint32 = 0x0010
	SchedFlag3 uint32 = 0x0020
)

// Service is the kernel-visible part of a virtual service.
type Service struct {
	Key       ServiceKey
	Scheduler string // rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf, twos
	// SchedFlags is any of SchedFlag1..3.
	SchedFlags uint32
	// Persistence is the persistence timeout; zero means none.
	Persistence time.Duration
	// PersistenceMask is the persistence granularity as a prefix length
	// (32 or 128 when zero and Persistence is set, as the kernel defaults).
	PersistenceMask int
	// OnePacket is one-packet scheduling (IP_VS_SVC_F_ONEPACKET, UDP only).
	OnePacket bool
	// PE is the persistence engine ("sip"); "" for none.
	PE string
}

// Dest is the kernel-visible part of a real server (an IPVS destination).
type Dest struct {
	Addr    netip.Addr
	Port    uint16
	Forward Forward
	Weight  int
	// Upper and Lower are the connection thresholds (0 = none).
	Upper, Lower uint32
	// TunType, TunPort and TunCsum are a Tunnel destination's
	// encapsulation; TunPort is gue's UDP port. Zero for other methods.
	// A Tunnel destination may be of the other address family than its
	// service (IPv4 in IPv6 and the reverse).
	TunType TunnelType
	TunPort uint16
	TunCsum TunnelCsum
}

// DestKey identifies a destination within its service.
type DestKey struct {
	Addr netip.Addr
	Port uint16
}

// Key returns the destination's identity within its service.
func (d Dest) Key() DestKey { return DestKey{d.Addr, d.Port} }

// RealServer is a configured real server.
type RealServer struct {
	Dest
	// Inhibit keeps the destination with weight 0 while it is down
	// (keepalived's inhibit_on_failure) instead of removing it, so existing
	// connections drain.
	Inhibit bool
}

// VirtualServer is one configured virtual service with its real servers.
type VirtualServer struct {
	// Name is unique in the config; health and metrics refer to it.
	Name    string
	Service Service
	Reals   []RealServer
	// Quorum is the sum of weights of live real servers the service needs
	// (default 1); Hysteresis widens it: quorum is gained at
	// ≥ Quorum+Hysteresis and lost at < Quorum−Hysteresis.
	Quorum, Hysteresis int
	// Sorry, if set, replaces the live real servers while quorum is lost.
	Sorry *Dest
	// SorryInhibit keeps the sorry server in the table with weight 0 while
	// quorum holds instead of removing it (keepalived
	// sorry_server_inhibit), so its connections drain when quorum returns.
	SorryInhibit bool
	// Group are further services with this one's settings, real servers,
	// checks and quorum (keepalived's virtual_server_group): each is its
	// own entry in the kernel, with the same destinations.
	Group []ServiceKey
}

// Keys returns the kernel services the virtual server is: its own and
// its group's, normalised.
func (vs VirtualServer) Keys() []ServiceKey {
	keys := make([]ServiceKey, 0, 1+len(vs.Group))
	keys = append(keys, vs.Service.Key.Normal())
	for _, k := range vs.Group {
		keys = append(keys, k.Normal())
	}
	return keys
}
