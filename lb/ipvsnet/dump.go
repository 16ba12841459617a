package ipvsnet

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"syscall"
	"time"

	"vigil/lb"
)

// The table is read over the same generic netlink socket as it is
// written (genl.go's dump), every attribute the kernel sends included: a
// gue tunnel or a sip service read without its encapsulation or engine
// would compare unequal on every pass and be rewritten forever. Numbers
// from include/uapi/linux/ip_vs.h.
const (
	cmdGetService = 4 // IPVS_CMD_GET_SERVICE
	cmdGetDest    = 8 // IPVS_CMD_GET_DEST

	svcAttrStats64 = 12 // nested, 64-bit counters (Linux 4.1+)

	destAttrActiveConns = 7  // u32
	destAttrInactConns  = 8  // u32
	destAttrStats64     = 12 // nested

	statsConns    = 1 // IPVS_STATS_ATTR_CONNS
	statsInPkts   = 2
	statsOutPkts  = 3
	statsInBytes  = 4
	statsOutBytes = 5
	statsCPS      = 6
	statsInPPS    = 7
	statsOutPPS   = 8
	statsInBPS    = 9
	statsOutBPS   = 10
)

// dump reads every service, then each service's destinations (the kernel
// dumps destinations per service only).
func (h *Handle) dump(withStats bool) (lb.Table, lb.Stats, error) {
	svcs, err := h.services()
	if err != nil {
		return nil, lb.Stats{}, err
	}
	t := make(lb.Table, len(svcs))
	var st lb.Stats
	if withStats {
		st = lb.Stats{Services: make(map[lb.ServiceKey]lb.Counters, len(svcs)), Dests: make(map[lb.ServiceKey]map[lb.DestKey]lb.DestCounters, len(svcs))}
	}
	for _, ks := range svcs {
		id, err := serviceID(ks.svc)
		if err != nil {
			return nil, lb.Stats{}, err
		}
		e := lb.Entry{Service: ks.svc, Dests: map[lb.DestKey]lb.Dest{}}
		var dc map[lb.DestKey]lb.DestCounters
		if withStats {
			st.Services[ks.svc.Key] = ks.stats
			dc = map[lb.DestKey]lb.DestCounters{}
			st.Dests[ks.svc.Key] = dc
		}
		err = h.g.dump(cmdGetDest, id, func(b []byte) error {
			d, c, err := decodeDest(b, ks.svc.Key.Family)
			if err != nil {
				return err
			}
			e.Dests[d.Key()] = d
			if withStats {
				dc[d.Key()] = c
			}
			return nil
		})
		if err != nil {
			return nil, lb.Stats{}, fmt.Errorf("ipvsnet: dump destinations of %s: %w", ks.svc.Key, err)
		}
		t[ks.svc.Key] = e
	}
	return t, st, nil
}

type dumpedService struct {
	svc   lb.Service
	stats lb.Counters
}

// services reads the services, one dump.
func (h *Handle) services() ([]dumpedService, error) {
	var out []dumpedService
	err := h.g.dump(cmdGetService, nil, func(b []byte) error {
		s, c, err := decodeService(b)
		if err != nil {
			return err
		}
		out = append(out, dumpedService{s, c})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ipvsnet: dump services: %w", err)
	}
	return out, nil
}

// serviceID encodes the attributes that name s (what a delete sends).
func serviceID(s lb.Service) ([]byte, error) {
	_, b, err := encodeOp(nil, lb.Op{Kind: lb.DelService, Service: s})
	return b, err
}

// attrAddr reads an address attribute: the kernel sends the 16 bytes of
// union nf_inet_addr, of which an IPv4 address uses the first 4.
func attrAddr(b []byte, fam lb.Family) (netip.Addr, error) {
	switch {
	case fam == lb.IPv4 && len(b) >= 4:
		return netip.AddrFrom4([4]byte(b[:4])), nil
	case fam == lb.IPv6 && len(b) == 16:
		return netip.AddrFrom16([16]byte(b)), nil
	}
	return netip.Addr{}, fmt.Errorf("IPv%d address of %d bytes", fam, len(b))
}

func familyOfAF(af uint16) (lb.Family, error) {
	switch af {
	case syscall.AF_INET:
		return lb.IPv4, nil
	case syscall.AF_INET6:
		return lb.IPv6, nil
	}
	return 0, fmt.Errorf("address family %d", af)
}

func be16(b []byte) uint16 {
	if len(b) < 2 {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

// decodeService reads one service of a GET_SERVICE dump, in the normal
// form lb compares: the kernel's HASHED flag dropped, the persistence
// netmask as a prefix length.
func decodeService(b []byte) (lb.Service, lb.Counters, error) {
	var s lb.Service
	var c lb.Counters
	var af uint16
	var addr, netmask []byte
	var flags, timeout uint32
	n, err := nested(b, cmdAttrService, "IPVS_CMD_ATTR_SERVICE")
	if err != nil {
		return s, c, fmt.Errorf("service: %w", err)
	}
	for n.Next() {
		switch n.Type() {
		case svcAttrAF:
			af = n.Uint16()
		case svcAttrProtocol:
			s.Key.Protocol = lb.Protocol(n.Uint16())
		case svcAttrAddr:
			addr = n.Bytes()
		case svcAttrPort:
			s.Key.Port = be16(n.Bytes())
		case svcAttrFWMark:
			s.Key.FWMark = n.Uint32()
		case svcAttrSchedName:
			s.Scheduler = n.String()
		case svcAttrFlags:
			if f := n.Bytes(); len(f) >= 4 {
				flags = binary.NativeEndian.Uint32(f)
			}
		case svcAttrTimeout:
			timeout = n.Uint32()
		case svcAttrNetmask:
			netmask = n.Bytes()
		case svcAttrPEName:
			s.PE = n.String()
		case svcAttrStats64:
			c = nestedStats(n)
		}
	}
	if err := n.Err(); err != nil {
		return s, c, fmt.Errorf("service attributes: %w", err)
	}
	if s.Key.Family, err = familyOfAF(af); err != nil {
		return s, c, fmt.Errorf("service with %w", err)
	}
	if s.Key.FWMark == 0 {
		if s.Key.Addr, err = attrAddr(addr, s.Key.Family); err != nil {
			return s, c, fmt.Errorf("service address: %w", err)
		}
	} else {
		s.Key.Protocol, s.Key.Port = 0, 0
	}
	s.SchedFlags = flags & svcSchedMask
	s.OnePacket = flags&svcOnePacket != 0
	if flags&svcPersistent != 0 {
		s.Persistence = time.Duration(timeout) * time.Second
		switch {
		case len(netmask) != 4:
		case s.Key.Family == lb.IPv6: // a prefix length, host order
			s.PersistenceMask = int(binary.NativeEndian.Uint32(netmask))
		default: // a mask, network order
			s.PersistenceMask = bits.LeadingZeros32(^binary.BigEndian.Uint32(netmask))
		}
	}
	return s.Normal(), c, nil
}

// decodeDest reads one destination of a GET_DEST dump of a service of
// family svcFam.
func decodeDest(b []byte, svcFam lb.Family) (lb.Dest, lb.DestCounters, error) {
	var d lb.Dest
	var c lb.DestCounters
	var addr []byte
	var fwd uint32
	fam := svcFam
	n, err := nested(b, cmdAttrDest, "IPVS_CMD_ATTR_DEST")
	if err != nil {
		return d, c, fmt.Errorf("destination: %w", err)
	}
	for n.Next() {
		switch n.Type() {
		case destAttrAddr:
			addr = n.Bytes()
		case destAttrPort:
			d.Port = be16(n.Bytes())
		case destAttrFwdMethod:
			fwd = n.Uint32()
		case destAttrWeight:
			d.Weight = int(int32(n.Uint32()))
		case destAttrUThresh:
			d.Upper = n.Uint32()
		case destAttrLThresh:
			d.Lower = n.Uint32()
		case destAttrActiveConns:
			c.ActiveConns = n.Uint32()
		case destAttrInactConns:
			c.InactConns = n.Uint32()
		case destAttrAddrFamily:
			if f, err := familyOfAF(n.Uint16()); err == nil {
				fam = f
			}
		case destAttrTunType:
			d.TunType = lb.TunnelType(n.Uint8())
		case destAttrTunPort:
			d.TunPort = be16(n.Bytes())
		case destAttrTunFlags:
			d.TunCsum = lb.TunnelCsum(n.Uint16())
		case destAttrStats64:
			c.Counters = nestedStats(n)
		}
	}
	if err := n.Err(); err != nil {
		return d, c, fmt.Errorf("destination attributes: %w", err)
	}
	if d.Addr, err = attrAddr(addr, fam); err != nil {
		return d, c, fmt.Errorf("destination address: %w", err)
	}
	for f, k := range kernelForward {
		if k == fwd&connFwdMask {
			d.Forward = f
		}
	}
	return d.Normal(), c, nil
}

// nestedStats reads the counters nested in the current attribute.
func nestedStats(n *attrs) lb.Counters {
	return decodeStats(&attrs{b: n.Bytes()})
}

// connFwdMask is IP_VS_CONN_F_FWD_MASK.
const connFwdMask = 0x0007

// decodeStats reads IPVS_*_ATTR_STATS64 (every counter 64 bits; its pad
// attribute is skipped).
func decodeStats(n *attrs) lb.Counters {
	var c lb.Counters
	// Indexed by IPVS_STATS_ATTR_*.
	fields := [...]*uint64{statsConns: &c.Conns, statsInPkts: &c.InPkts, statsOutPkts: &c.OutPkts,
		statsInBytes: &c.InBytes, statsOutBytes: &c.OutBytes, statsCPS: &c.CPS, statsInPPS: &c.InPPS,
		statsOutPPS: &c.OutPPS, statsInBPS: &c.InBPS, statsOutBPS: &c.OutBPS}
	for n.Next() {
		if t := int(n.Type()); t < len(fields) && fields[t] != nil {
			*fields[t] = n.Uint64()
		}
	}
	return c
}
