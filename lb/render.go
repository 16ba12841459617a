package lb

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// Counters are one service's or destination's traffic counters and rate
// estimates, as the kernel keeps them.
type Counters struct {
	Conns, InPkts, OutPkts, InBytes, OutBytes uint64
	CPS, InPPS, OutPPS, InBPS, OutBPS         uint64
}

// DestCounters adds a destination's connection counts.
type DestCounters struct {
	Counters
	ActiveConns, InactConns uint32
}

// Stats are the counters of a table, by service and destination key.
type Stats struct {
	Services map[ServiceKey]Counters
	Dests    map[ServiceKey]map[DestKey]DestCounters
}

// RenderFormat selects one of ipvsadm's list formats.
type RenderFormat uint8

// The list formats: ipvsadm -Ln, -Ln --stats, -Ln --rate, -Ln --thresholds,
// -Ln --tun-info.
const (
	FormatList RenderFormat = iota
	FormatStats
	FormatRate
	FormatThresholds
	FormatTunInfo
)

// RenderOptions says what the header shows and which format to print.
type RenderOptions struct {
	Format RenderFormat
	// Version and Size are the kernel's IPVS version and connection table
	// size for the header; "1.2.1" and 4096 when zero.
	Version string
	Size    int
	// Stats supplies counters; missing entries print as zero.
	Stats Stats
}

// Render writes t as `ipvsadm -Ln --sort` prints it (or its --stats,
// --rate, --thresholds or --tun-info variant): services and destinations in sorted
// order, numeric addresses, counters from opts.Stats.
func Render(w io.Writer, t Table, opts RenderOptions) error {
	var b strings.Builder
	version, size := opts.Version, opts.Size
	if version == "" {
		version = "1.2.1"
	}
	if size == 0 {
		size = 4096
	}
	fmt.Fprintf(&b, "IP Virtual Server version %s (size=%d)\n", version, size)
	switch opts.Format {
	case FormatStats:
		fmt.Fprintf(&b, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
	case FormatRate:
		fmt.Fprintf(&b, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
	case FormatThresholds:
		// Sic: ipvsadm prints the threshold columns on the service line
		// of the header, with a trailing space.
		b.WriteString("Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n  -> RemoteAddress:Port\n")
	case FormatTunInfo:
		b.WriteString("Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n")
	default:
		b.WriteString("Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	}
	t = t.Normal()
	for _, k := range t.Keys() {
		e := t[k]
		s := e.Service
		name := serviceName(k)
		c := opts.Stats.Services[k]
		switch opts.Format {
		case FormatStats:
			fmt.Fprintf(&b, "%-33s%s%s%s%s%s\n", name, largeNum(c.Conns), largeNum(c.InPkts),
				largeNum(c.OutPkts), largeNum(c.InBytes), largeNum(c.OutBytes))
		case FormatRate:
			fmt.Fprintf(&b, "%-33s %8d %8d %8d%s%s\n", name, c.CPS, c.InPPS, c.OutPPS,
				largeNum(c.InBPS), largeNum(c.OutBPS))
		default: // the list and thresholds formats share the service line
			fmt.Fprintf(&b, "%s %s%s\n", name, s.Scheduler, serviceFlags(s))
		}
		for _, d := range e.SortedDests() {
			dc := opts.Stats.Dests[k][d.Key()]
			dname := addrPort(d.Addr, d.Port)
			switch opts.Format {
			case FormatStats:
				fmt.Fprintf(&b, "  -> %-28s%s%s%s%s%s\n", dname, largeNum(dc.Conns), largeNum(dc.InPkts),
					largeNum(dc.OutPkts), largeNum(dc.InBytes), largeNum(dc.OutBytes))
			case FormatRate:
				fmt.Fprintf(&b, "  -> %-28s %8d %8d %8d%s%s\n", dname, dc.CPS, dc.InPPS, dc.OutPPS,
					largeNum(dc.InBPS), largeNum(dc.OutBPS))
			case FormatThresholds:
				fmt.Fprintf(&b, "  -> %-28s %-10d %-10d %-10d %-10d\n", dname, d.Upper, d.Lower, dc.ActiveConns, dc.InactConns)
			case FormatTunInfo:
				fmt.Fprintf(&b, "  -> %-28s %-7s %-13s %-6d %-10d %-10d\n", dname, forwardName(d.Forward), tunInfo(d), d.Weight, dc.ActiveConns, dc.InactConns)
			default:
				fmt.Fprintf(&b, "  -> %-28s %-7s %-6d %-10d %-10d\n", dname, forwardName(d.Forward), d.Weight, dc.ActiveConns, dc.InactConns)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("lb: render table: %w", err)
	}
	return nil
}

func serviceName(k ServiceKey) string {
	if k.FWMark != 0 {
		if k.Family == IPv6 {
			return fmt.Sprintf("FWM  %d IPv6", k.FWMark)
		}
		return fmt.Sprintf("FWM  %d", k.FWMark)
	}
	return fmt.Sprintf("%-4s %s", strings.ToUpper(k.Protocol.String()), addrPort(k.Addr, k.Port))
}

func addrPort(a netip.Addr, port uint16) string {
	if a.Is6() {
		return "[" + a.String() + "]:" + strconv.Itoa(int(port))
	}
	return a.String() + ":" + strconv.Itoa(int(port))
}

// serviceFlags is what ipvsadm prints after the scheduler: scheduler flags
// in parentheses, persistence with a non-default mask, "ops".
func serviceFlags(s Service) string {
	var b strings.Builder
	if s.SchedFlags != 0 {
		var names []string
		n1, n2 := "flag-1", "flag-2"
		switch s.Scheduler {
		case "sh":
			n1, n2 = "sh-fallback", "sh-port"
		case "mh":
			n1, n2 = "mh-fallback", "mh-port"
		}
		if s.SchedFlags&SchedFlag1 != 0 {
			names = append(names, n1)
		}
		if s.SchedFlags&SchedFlag2 != 0 {
			names = append(names, n2)
		}
		if s.SchedFlags&SchedFlag3 != 0 {
			names = append(names, "flag-3")
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(names, ","))
	}
	if s.Persistence > 0 {
		fmt.Fprintf(&b, " persistent %d", seconds(s.Persistence))
		if s.PersistenceMask != s.Key.fullMask() {
			if s.Key.Family == IPv6 {
				fmt.Fprintf(&b, " mask %d", s.PersistenceMask)
			} else {
				fmt.Fprintf(&b, " mask %s", netip.AddrFrom4(mask4(s.PersistenceMask)))
			}
		}
	}
	if s.OnePacket {
		b.WriteString(" ops")
	}
	if s.PE != "" {
		fmt.Fprintf(&b, " pe %s", s.PE)
	}
	return b.String()
}

// tunInfo is ipvsadm's TunnelInfo column: "n/a" but for a tunnel, then
// its encapsulation, gue's port, and the checksum option as ipvsadm
// abbreviates it (-c none, +c csum, r+c remcsum).
func tunInfo(d Dest) string {
	if d.Forward != Tunnel {
		return "n/a"
	}
	csum := map[TunnelCsum]string{NoCsum: "-c", Csum: "+c", RemCsum: "r+c"}[d.TunCsum]
	switch d.TunType {
	case GUE:
		return fmt.Sprintf("gue:%d:%s", d.TunPort, csum)
	case GRE:
		return "gre:" + csum
	}
	return d.TunType.String()
}

// mask4 is the IPv4 netmask with the given prefix length.
func mask4(bits int) [4]byte {
	m := ^uint32(0) << (32 - bits)
	if bits <= 0 {
		m = 0
	}
	return [4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
}

func forwardName(f Forward) string {
	switch f {
	case NAT:
		return "Masq"
	case DR:
		return "Route"
	case Tunnel:
		return "Tunnel"
	case Local:
		return "Local"
	}
	return "Unknown"
}

// largeNum prints a counter as ipvsadm does without --exact: 9 columns,
// scaled to K, M, G or T once it no longer fits.
func largeNum(i uint64) string {
	switch {
	case i < 100_000_000:
		return fmt.Sprintf("%9d", i)
	case i < 1_000_000_000:
		return fmt.Sprintf("%8dK", i/1_000)
	case i < 100_000_000_000:
		return fmt.Sprintf("%8dM", i/1_000_000)
	case i < 100_000_000_000_000:
		return fmt.Sprintf("%8dG", i/1_000_000_000)
	}
	return fmt.Sprintf("%8dT", i/1_000_000_000_000)
}
