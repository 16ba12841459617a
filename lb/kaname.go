package lb

import "strconv"

// KeepalivedService is a service in keepalived's notation: "[192.0.2.100]:tcp:80",
// or "FWM 7" (its notify FIFO lines and scripts' environment use it).
func KeepalivedService(k ServiceKey) string {
	if k.FWMark != 0 {
		return "FWM " + strconv.FormatUint(uint64(k.FWMark), 10)
	}
	return keepalivedAddr(k.Addr.Unmap().String(), k.Protocol, k.Port)
}

// KeepalivedRealServer is a real server of vs in keepalived's notation.
func KeepalivedRealServer(vs VirtualServer, d DestKey) string {
	return keepalivedAddr(d.Addr.Unmap().String(), vs.Service.Key.Protocol, d.Port)
}

func keepalivedAddr(a string, p Protocol, port uint16) string {
	proto := p.String()
	if proto == "" || p == 0 {
		proto = "tcp" // a real server of a fwmark service: keepalived prints its default
	}
	return "[" + a + "]:" + proto + ":" + strconv.Itoa(int(port))
}
