package lb

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestRenderList is a golden test of the ipvsadm -Ln layout (ipvsadm 1.31's
// printf formats: "  -> %-28s %-7s %-6d %-10u %-10u", the protocol padded
// to four columns, FWM services after address services). The VM test
// (test/lbvm TestRenderMatchesIpvsadm) compares Render with the real
// ipvsadm 1.31 byte for byte in all five formats; these goldens keep the
// layout pinned on machines without the VM.
func TestRenderList(t *testing.T) {
	web := svc("192.0.2.100", 80, "wrr")
	pers := Service{Key: ServiceKey{Protocol: UDP, Addr: netip.MustParseAddr("192.0.2.53"), Port: 53}, Scheduler: "sh",
		SchedFlags: SchedFlag1 | SchedFlag2, Persistence: 300 * time.Second, PersistenceMask: 24, OnePacket: true}
	v6 := Service{Key: ServiceKey{Protocol: TCP, Addr: netip.MustParseAddr("2001:db8::100"), Port: 443}, Scheduler: "rr"}
	fwm := Service{Key: ServiceKey{Family: IPv6, FWMark: 5}, Scheduler: "wlc", Persistence: time.Minute, PersistenceMask: 64}
	tab := table(
		entry(fwm, Dest{Addr: netip.MustParseAddr("2001:db8::11"), Weight: 1, Forward: DR}),
		entry(v6, Dest{Addr: netip.MustParseAddr("2001:db8::11"), Port: 443, Weight: 1, Forward: Tunnel}),
		entry(web, dest("198.51.100.12", 8080, 0), dest("198.51.100.11", 8080, 10)),
		entry(pers),
	)
	var b strings.Builder
	if err := Render(&b, tab, RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	want := `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.0.2.100:80 wrr
  -> 198.51.100.11:8080           Masq    10     0          0         
  -> 198.51.100.12:8080           Masq    0      0          0         
UDP  192.0.2.53:53 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0 ops
TCP  [2001:db8::100]:443 rr
  -> [2001:db8::11]:443           Tunnel  1      0          0         
FWM  5 IPv6 wlc persistent 60 mask 64
  -> [2001:db8::11]:0             Route   1      0          0         
`
	if got := b.String(); got != want {
		t.Errorf("Render:\n%s\nwant:\n%s", got, want)
	}
}

func TestRenderStats(t *testing.T) {
	web := svc("192.0.2.100", 80, "rr")
	d := dest("198.51.100.11", 8080, 1)
	st := Stats{
		Services: map[ServiceKey]Counters{web.Key: {Conns: 3, InPkts: 123_456_789, OutPkts: 9, InBytes: 5_000_000_000, OutBytes: 1, CPS: 2, InBPS: 150_000_000}},
		Dests:    map[ServiceKey]map[DestKey]DestCounters{web.Key: {d.Key(): {Counters: Counters{Conns: 3}}}},
	}
	var b strings.Builder
	if err := Render(&b, table(entry(web, d)), RenderOptions{Format: FormatStats, Stats: st}); err != nil {
		t.Fatal(err)
	}
	want := `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  192.0.2.100:80                      3  123456K        9    5000M        1
  -> 198.51.100.11:8080                  3        0        0        0        0
`
	if got := b.String(); got != want {
		t.Errorf("Render --stats:\n%q\nwant:\n%q", got, want)
	}
}

// TestRenderTunInfo pins ipvsadm 1.31's --tun-info column ("n/a" for other
// methods; gue's port; -c, +c, r+c for the checksum options) and the " pe"
// flag, as the VM test saw ipvsadm print them.
func TestRenderTunInfo(t *testing.T) {
	web := svc("203.0.113.60", 80, "wrr")
	sip := Service{Key: ServiceKey{Protocol: UDP, Addr: netip.MustParseAddr("203.0.113.60"), Port: 5060}, Scheduler: "rr",
		Persistence: time.Minute, PE: "sip"}
	tun := func(a string, typ TunnelType, port uint16, c TunnelCsum) Dest {
		return Dest{Addr: netip.MustParseAddr(a), Port: 80, Forward: Tunnel, Weight: 1, TunType: typ, TunPort: port, TunCsum: c}
	}
	tab := table(
		entry(web, tun("198.51.100.61", GUE, 6080, RemCsum), tun("198.51.100.62", GUE, 6081, NoCsum),
			tun("198.51.100.63", GRE, 0, Csum), tun("198.51.100.64", IPIP, 0, NoCsum), dest("198.51.100.66", 80, 5)),
		entry(sip, dest("198.51.100.61", 5060, 1)),
	)
	var b strings.Builder
	if err := Render(&b, tab, RenderOptions{Format: FormatTunInfo}); err != nil {
		t.Fatal(err)
	}
	want := `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn
TCP  203.0.113.60:80 wrr
  -> 198.51.100.61:80             Tunnel  gue:6080:r+c  1      0          0         
  -> 198.51.100.62:80             Tunnel  gue:6081:-c   1      0          0         
  -> 198.51.100.63:80             Tunnel  gre:+c        1      0          0         
  -> 198.51.100.64:80             Tunnel  ipip          1      0          0         
  -> 198.51.100.66:80             Masq    n/a           5      0          0         
UDP  203.0.113.60:5060 rr persistent 60 pe sip
  -> 198.51.100.61:5060           Masq    n/a           1      0          0         
`
	if got := b.String(); got != want {
		t.Errorf("Render:\n%s\nwant:\n%s", got, want)
	}
}
