package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"vigil/lb"
	"vigil/lb/ipvsnet"
)

func newIPVSCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ipvs",
		Short: "Inspect the kernel's IPVS table",
	}
	cmd.AddCommand(newIPVSListCmd())
	return cmd
}

func newIPVSListCmd() *cobra.Command {
	var (
		output                           string
		stats, rate, thresholds, tunInfo bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Print the kernel's IPVS table as ipvsadm -Ln does (needs root)",
		Long: `Print the kernel's IPVS table, read over netlink, in the format of ipvsadm -Ln
(with --stats, --rate, --thresholds or --tun-info as ipvsadm's options of the
same name), or
as JSON with -o json (services, destinations and all counters). It reads the
kernel directly: it works without a running vigil and shows entries vigil did
not create too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format := lb.FormatList
			n := 0
			for _, f := range []struct {
				on  bool
				fmt lb.RenderFormat
			}{{stats, lb.FormatStats}, {rate, lb.FormatRate}, {thresholds, lb.FormatThresholds}, {tunInfo, lb.FormatTunInfo}} {
				if f.on {
					format, n = f.fmt, n+1
				}
			}
			if n > 1 {
				return &exitError{code: 2, msg: "vigil ipvs list: give at most one of --stats, --rate, --thresholds and --tun-info"}
			}
			if output != "text" && output != "json" {
				return &exitError{code: 2, msg: fmt.Sprintf("vigil ipvs list: unknown output format %q (want text or json)", output)}
			}
			if err := ipvsnet.Available(); err != nil {
				return &exitError{code: 1, msg: "vigil ipvs list: " + err.Error()}
			}
			h, err := ipvsnet.Open("")
			if err != nil {
				return &exitError{code: 1, msg: "vigil ipvs list: " + err.Error()}
			}
			defer h.Close()
			t, st, err := h.Stats()
			if err != nil {
				return &exitError{code: 1, msg: "vigil ipvs list: " + err.Error()}
			}
			if output == "json" {
				return writeIPVSJSON(cmd.OutOrStdout(), t, st)
			}
			version, size, err := ipvsnet.Info()
			if err != nil {
				return &exitError{code: 1, msg: "vigil ipvs list: " + err.Error()}
			}
			return lb.Render(cmd.OutOrStdout(), t, lb.RenderOptions{Format: format, Version: version, Size: size, Stats: st})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text (ipvsadm -Ln) or json")
	cmd.Flags().BoolVar(&stats, "stats", false, "with counters (ipvsadm --stats)")
	cmd.Flags().BoolVar(&rate, "rate", false, "with rates (ipvsadm --rate)")
	cmd.Flags().BoolVar(&thresholds, "thresholds", false, "with connection thresholds (ipvsadm --thresholds)")
	cmd.Flags().BoolVar(&tunInfo, "tun-info", false, "with tunnel encapsulations (ipvsadm --tun-info)")
	return cmd
}

// ipvsJSON is the stable JSON form of the table: services in ipvsadm's
// sort order, each with its destinations and counters.
type ipvsJSON struct {
	Services []ipvsServiceJSON `json:"services"`
}

type ipvsServiceJSON struct {
	Protocol        string         `json:"protocol,omitempty"`
	Address         string         `json:"address,omitempty"`
	Port            uint16         `json:"port,omitempty"`
	FWMark          uint32         `json:"fwmark,omitempty"`
	Family          string         `json:"family"`
	Scheduler       string         `json:"scheduler"`
	SchedFlags      uint32         `json:"scheduler_flags,omitempty"`
	PersistenceSec  uint32         `json:"persistence_seconds,omitempty"`
	PersistenceMask int            `json:"persistence_mask,omitempty"`
	OnePacket       bool           `json:"one_packet,omitempty"`
	PE              string         `json:"persistence_engine,omitempty"`
	Stats           countersJSON   `json:"stats"`
	Destinations    []ipvsDestJSON `json:"destinations"`
}

type ipvsDestJSON struct {
	Address string `json:"address"`
	Port    uint16 `json:"port"`
	Forward string `json:"forward"`
	Weight  int    `json:"weight"`
	Upper   uint32 `json:"upper_threshold,omitempty"`
	Lower   uint32 `json:"lower_threshold,omitempty"`
	// A tunnel's encapsulation (ipip, gue, gre), gue's port, and the
	// checksum option (nocsum, csum, remcsum); tunnels only.
	Tunnel         string       `json:"tunnel_type,omitempty"`
	TunnelPort     uint16       `json:"tunnel_port,omitempty"`
	TunnelChecksum string       `json:"tunnel_checksum,omitempty"`
	Stats          countersJSON `json:"stats"`
}

func writeIPVSJSON(w io.Writer, t lb.Table, st lb.Stats) error {
	out := ipvsJSON{Services: []ipvsServiceJSON{}}
	for _, k := range t.Keys() {
		e := t[k]
		s := e.Service
		sj := ipvsServiceJSON{
			FWMark: k.FWMark, Family: "ipv" + strconv.Itoa(int(k.Family)),
			Scheduler: s.Scheduler, SchedFlags: s.SchedFlags,
			PersistenceSec: uint32(s.Persistence.Seconds()), PersistenceMask: s.PersistenceMask,
			OnePacket: s.OnePacket, PE: s.PE, Stats: toCountersJSON(st.Services[k], nil, nil), Destinations: []ipvsDestJSON{},
		}
		if k.FWMark == 0 {
			sj.Protocol, sj.Address, sj.Port = k.Protocol.String(), k.Addr.String(), k.Port
		}
		for _, d := range e.SortedDests() {
			dj := ipvsDestJSON{
				Address: d.Addr.String(), Port: d.Port, Forward: d.Forward.String(), Weight: d.Weight,
				Upper: d.Upper, Lower: d.Lower, Stats: destCountersJSON(st.Dests[k][d.Key()]),
			}
			if d.Forward == lb.Tunnel {
				dj.Tunnel, dj.TunnelPort, dj.TunnelChecksum = d.TunType.String(), d.TunPort, d.TunCsum.String()
			}
			sj.Destinations = append(sj.Destinations, dj)
		}
		out.Services = append(out.Services, sj)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// countersJSON are the kernel's counters under stable snake_case names
// (rates are the kernel's estimates per second).
type countersJSON struct {
	Connections   uint64  `json:"connections"`
	InPackets     uint64  `json:"incoming_packets"`
	OutPackets    uint64  `json:"outgoing_packets"`
	InBytes       uint64  `json:"incoming_bytes"`
	OutBytes      uint64  `json:"outgoing_bytes"`
	CPS           uint64  `json:"connections_per_second"`
	InPPS         uint64  `json:"incoming_packets_per_second"`
	OutPPS        uint64  `json:"outgoing_packets_per_second"`
	InBPS         uint64  `json:"incoming_bytes_per_second"`
	OutBPS        uint64  `json:"outgoing_bytes_per_second"`
	ActiveConns   *uint32 `json:"active_connections,omitempty"`
	InactiveConns *uint32 `json:"inactive_connections,omitempty"`
}

func toCountersJSON(c lb.Counters, active, inactive *uint32) countersJSON {
	return countersJSON{c.Conns, c.InPkts, c.OutPkts, c.InBytes, c.OutBytes, c.CPS, c.InPPS, c.OutPPS, c.InBPS, c.OutBPS, active, inactive}
}

func destCountersJSON(d lb.DestCounters) countersJSON {
	return toCountersJSON(d.Counters, &d.ActiveConns, &d.InactConns)
}
