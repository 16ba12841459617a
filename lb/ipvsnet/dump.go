package ipvsnet

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"

	"vigil/lb"
)

// The table is read over the same generic netlink socket as it is
// written. moby/ipvs reads neither a destination's tunnel encapsulation
// (type, port, checksum) nor a service's persistence engine, so with it a
// gue tunnel or a sip service would compare unequal on every pass and be
// rewritten forever; it also allocates 64 KiB per answer. Numbers from
// include/uapi/linux/ip_vs.h.
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
		msgs, err := h.g.execute(cmdGetDest, id, netlink.Request|netlink.Dump)
		if err != nil {
			return nil, lb.Stats{}, fmt.Errorf("ipvsnet: dump destinations of %s: %w", ks.svc.Key, err)
		}
		e := lb.Entry{Service: ks.svc, Dests: make(map[lb.DestKey]lb.Dest, len(msgs))}
		var dc map[lb.DestKey]lb.DestCounters
		if withStats {
			st.Services[ks.svc.Key] = ks.stats
			dc = make(map[lb.DestKey]lb.DestCounters, len(msgs))
			st.Dests[ks.svc.Key] = dc
		}
		for _, m := range msgs {
			d, c, err := decodeDest(m.Data, ks.svc.Key.Family)
			if err != nil {
				return nil, lb.Stats{}, fmt.Errorf("ipvsnet: destination of %s: %w", ks.svc.Key, err)
			}
			e.Dests[d.Key()] = d
			if withStats {
				dc[d.Key()] = c
			}
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
	msgs, err := h.g.execute(cmdGetService, nil, netlink.Request|netlink.Dump)
	if err != nil {
		return nil, fmt.Errorf("ipvsnet: dump services: %w", err)
	}
	out := make([]dumpedService, 0, len(msgs))
	for _, m := range msgs {
		s, c, err := decodeService(m.Data)
		if err != nil {
			return nil, fmt.Errorf("ipvsnet: dump services: %w", err)
		}
		out = append(out, dumpedService{s, c})
	}
	return out, nil
}

// serviceID encodes the attributes that name s (what a delete sends).
func serviceID(s lb.Service) ([]byte, error) {
	_, b, err := encodeOp(lb.Op{Kind: lb.DelService, Service: s})
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
	err := nested(b, cmdAttrService, "IPVS_CMD_ATTR_SERVICE", func(n *netlink.AttributeDecoder) error {
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
				n.Nested(func(sn *netlink.AttributeDecoder) error { c = decodeStats(sn); return nil })
			}
		}
		return nil
	})
	if err != nil {
		return s, c, fmt.Errorf("service: %w", err)
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
	err := nested(b, cmdAttrDest, "IPVS_CMD_ATTR_DEST", func(n *netlink.AttributeDecoder) error {
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
				n.Nested(func(sn *netlink.AttributeDecoder) error { c.Counters = decodeStats(sn); return nil })
			}
		}
		return nil
	})
	if err != nil {
		return d, c, fmt.Errorf("destination: %w", err)
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

// nested calls f with the attributes nested in b's attribute typ (the
// one an IPVS dump message carries), which is called name in errors.
func nested(b []byte, typ uint16, name string, f func(*netlink.AttributeDecoder) error) error {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return err
	}
	seen := false
	for ad.Next() {
		if ad.Type() == typ {
			seen = true
			ad.Nested(f)
		}
	}
	if err := ad.Err(); err != nil {
		return fmt.Errorf("decode attributes: %w", err)
	}
	if !seen {
		return fmt.Errorf("message without %s", name)
	}
	return nil
}

// connFwdMask is IP_VS_CONN_F_FWD_MASK.
const connFwdMask = 0x0007

// decodeStats reads IPVS_*_ATTR_STATS64 (every counter 64 bits; its pad
// attribute is skipped).
func decodeStats(n *netlink.AttributeDecoder) lb.Counters {
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
