package interop

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/test/netlab"
)

// The wire check looks at every VRRP packet of a scenario's bridge capture twice:
//
//   - tshark (Wireshark's VRRP dissector, an implementation independent of vigil): version, type,
//     VRID, priority, address list, interval, v2 authentication, TTL/hop limit and the checksum
//     status, which must be "Good". Wireshark verifies v2 checksums over the message, v3/IPv6 over
//     the IPv6 pseudo-header and, with the preference vrrp.v3_checksum_as_in_v2 FALSE (Wireshark
//     4.0's name and default, set explicitly here), v3/IPv4 over the IPv4 pseudo-header as
//     keepalived and vigil's default "checksum: pseudo_header" do. It takes the pseudo-header
//     addresses from the packet's own IP header, so unicast adverts are verified as well as
//     multicast ones (checked on testdata/keepalived-pcaps/v3-ipv4-unicast.pcap: status Good).
//   - netlab's frame decoder plus this file's own checksum arithmetic (checksumValid), written
//     from RFC 3768 §5.3.8, RFC 5798 §5.2.8, RFC 768 and RFC 8200 §8.1 without using package vrrp,
//     so that neither vigil's codec nor one dissector alone vouches for vigil's packets.

// tsharkFields are the fields read from tshark, in this order.
var tsharkFields = []string{
	"frame.number", "frame.protocols", "eth.src", "eth.dst",
	"ip.src", "ip.dst", "ip.ttl", "ip.dsfield.dscp", "ipv6.src", "ipv6.dst", "ipv6.hlim", "ipv6.tclass.dscp",
	"vrrp.version", "vrrp.type", "vrrp.virt_rtr_id", "vrrp.prio", "vrrp.addr_count",
	"vrrp.checksum", "vrrp.checksum.status", "vrrp.auth_type", "vrrp.auth_string",
	"vrrp.adver_int", "vrrp.short_adver_int", "vrrp.ip_addr", "vrrp.ipv6_addr",
	"_ws.expert.message", "_ws.malformed",
}

// tsharkChecksumPref makes Wireshark 4.0 verify v3/IPv4 checksums with the pseudo-header
// (`tshark -G defaultprefs | grep -i vrrp` lists it, default FALSE).
const tsharkChecksumPref = "vrrp.v3_checksum_as_in_v2:FALSE"

// checksumGood is Wireshark's PROTO_CHECKSUM_E_GOOD as `-T fields` prints vrrp.checksum.status.
const checksumGood = "1"

// tsPacket is one frame as tshark dissected it (fields by name, multiple values joined by ",").
type tsPacket map[string]string

func runTshark(tshark, path string) ([]tsPacket, error) {
	args := []string{"-n", "-r", path, "-o", tsharkChecksumPref, "-T", "fields",
		"-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range tsharkFields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command(tshark, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", tshark, strings.Join(args, " "), err, stderr.String())
	}
	var pkts []tsPacket
	for line := range strings.SplitSeq(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		vals := strings.Split(line, "\t")
		if len(vals) != len(tsharkFields) {
			return nil, fmt.Errorf("tshark: %d fields in %q, want %d", len(vals), line, len(tsharkFields))
		}
		p := tsPacket{}
		for i, f := range tsharkFields {
			p[f] = vals[i]
		}
		pkts = append(pkts, p)
	}
	return pkts, nil
}

// advert is a VRRP packet of the capture, attributed to its sender.
type advert struct {
	from *member
	at   time.Time
	prio int
}

// checkWire analyses the scenario's capture: packet validity (vigil's packets are errors,
// keepalived's only logged), vigil's priority-0 adverts, silence of backups during steady
// state, and the takeover times on the wire.
func (r *run) checkWire(tshark, path string, frames []netlab.Frame) {
	t := r.t
	pkts, err := runTshark(tshark, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != len(frames) {
		t.Fatalf("tshark read %d frames from %s, netlab %d", len(pkts), path, len(frames))
	}
	var adverts []advert
	nVigil := 0
	// keepalived's packets go through the same checks; what differs is logged, not failed.
	kaProblems := map[string]int{}
	var kaOrder []string
	defer func() {
		for _, pr := range kaOrder {
			t.Logf("keepalived's packets (reference, not under test): %d× %s", kaProblems[pr], pr)
		}
	}()
	for i, f := range frames {
		p := pkts[i]
		vs := netlab.VRRPFrames([]netlab.Frame{f})
		if len(vs) != 1 {
			t.Errorf("frame %d: not a VRRP packet for netlab's decoder (tshark: %s)", i+1, p["frame.protocols"])
			continue
		}
		v := vs[0]
		var from *member
		switch v.SrcMAC.String() {
		case r.vg.mac.String():
			from = r.vg
			nVigil++
		case r.ka.mac.String():
			from = r.ka
		default:
			t.Errorf("frame %d: VRRP packet from unknown MAC %v (%v → %v)", i+1, v.SrcMAC, v.Src, v.Dst)
			continue
		}
		if problems := r.checkPacket(from, p, v); len(problems) > 0 {
			if from == r.vg {
				t.Errorf("frame %d at %s from %v (%v → %v, prio %d): %s", i+1, v.Time.Format("15:04:05.000000"),
					from, v.Src, v.Dst, v.Priority, strings.Join(problems, "; "))
			} else {
				for _, pr := range problems {
					if kaProblems[pr] == 0 {
						kaOrder = append(kaOrder, pr)
					}
					kaProblems[pr]++
				}
			}
		}
		adverts = append(adverts, advert{from: from, at: v.Time, prio: v.Priority})
	}
	if nVigil == 0 {
		t.Fatalf("capture %s holds no VRRP packet from vigil", path)
	}

	// Every priority-0 advert from vigil belongs to a graceful stop of vigil as master, and every
	// such stop produced one.
	var vigilStops []time.Time
	for _, e := range r.events {
		if e.kind == "stop" && e.who == r.vg && e.wasMaster {
			vigilStops = append(vigilStops, e.at)
		}
	}
	matched := make([]int, len(vigilStops))
	for _, a := range adverts {
		if a.from != r.vg || a.prio != 0 {
			continue
		}
		// The latest stop at or before the advert, if the advert is within a second of it.
		k := -1
		for j, s := range vigilStops {
			if !a.at.Before(s) {
				k = j
			}
		}
		if k >= 0 && a.at.Sub(vigilStops[k]) > time.Second {
			k = -1
		}
		if k < 0 {
			t.Errorf("vigil sent a priority-0 advert at %s that no graceful stop of vigil as master explains", a.at.Format("15:04:05.000000"))
			continue
		}
		matched[k]++
	}
	for k, s := range vigilStops {
		if matched[k] == 0 {
			t.Errorf("no priority-0 advert from vigil after its graceful stop as master at %s", s.Format("15:04:05.000000"))
		}
	}

	// Steady state: only the master advertises (a backup is silent, RFC 5798 §6.4.2).
	for _, w := range r.windows {
		for _, a := range adverts {
			if !a.at.Before(w.from) && !a.at.After(w.to) && a.from != w.master {
				t.Errorf("%v sent an advert (prio %d) at %s while %v was the steady master", a.from, a.prio, a.at.Format("15:04:05.000000"), w.master)
			}
		}
	}

	// Takeover times on the wire.
	for _, e := range r.events {
		if !e.wasMaster || e.who == nil {
			continue
		}
		next := r.other(e.who)
		switch {
		case e.kind == "stop":
			// Priority-0 advert of the stopping master → first advert of the new master.
			p := slices.IndexFunc(adverts, func(a advert) bool { return a.from == e.who && a.prio == 0 && !a.at.Before(e.at) })
			if p < 0 {
				if e.who == r.vg {
					continue // reported above
				}
				t.Errorf("no priority-0 advert from %v after its graceful stop", e.who)
				continue
			}
			n := slices.IndexFunc(adverts[p:], func(a advert) bool { return a.from == next && a.prio > 0 })
			if n < 0 {
				continue // nobody took over: the other was stopped too (teardown)
			}
			d := adverts[p+n].at.Sub(adverts[p].at)
			skew := r.sc.skew(next.inst.Priority)
			r.report = append(r.report, fmt.Sprintf("graceful %v→%v wire %s", e.who.impl, next.impl, ms(d)))
			if d > skew+wireMargin {
				t.Errorf("wire: %v advertised %s after %v's priority-0 advert, more than Skew_Time %s + %v", next, ms(d), e.who, ms(skew), wireMargin)
			}
			if next == r.vg && d < skew-wireTolerance {
				t.Errorf("wire: vigil advertised as master %s after the priority-0 advert, before its Skew_Time %s", ms(d), ms(skew))
			}
		case e.kind == "linkdown":
			// Last advert of the cut master → first advert of the new master. The last one is
			// the last before the new master's first: e.at is taken just before `ip link set
			// down` runs, and an advert may still pass the port in the few ms that takes.
			n := slices.IndexFunc(adverts, func(a advert) bool { return a.from == next && a.prio > 0 && a.at.After(e.at) })
			var last *advert
			for i := range adverts[:max(n, 0)] {
				if adverts[i].from == e.who {
					last = &adverts[i]
				}
			}
			if last == nil || n < 0 {
				t.Errorf("wire: link cut of %v: no advert before the cut (%v) or none from %v after it (%v)", e.who, last != nil, next, n >= 0)
				continue
			}
			d := adverts[n].at.Sub(last.at)
			mdi := r.sc.mdi(next.inst.Priority)
			r.report = append(r.report, fmt.Sprintf("linkcut %v→%v wire %s", e.who.impl, next.impl, ms(d)))
			if d > mdi+wireMargin {
				t.Errorf("wire: %v advertised %s after %v's last advert, more than Master_Down_Interval %s + %v", next, ms(d), e.who, ms(mdi), wireMargin)
			}
			if next == r.vg && d < mdi-wireTolerance {
				t.Errorf("wire: vigil advertised as master %s after the last master advert, before Master_Down_Interval %s", ms(d), ms(mdi))
			}
		}
	}
}

// checkPacket returns what is wrong with one VRRP packet from m, as tshark and as netlab's
// decoder with this file's checksum arithmetic see it.
func (r *run) checkPacket(m *member, p tsPacket, v netlab.VRRPFrame) []string {
	sc := r.sc
	var bad []string
	want := func(what, got, exp string) {
		if got != exp {
			bad = append(bad, fmt.Sprintf("%s %q, want %q", what, got, exp))
		}
	}
	// tshark's view.
	if !strings.HasSuffix(p["frame.protocols"], ":vrrp") {
		bad = append(bad, fmt.Sprintf("tshark dissects it as %q, not VRRP", p["frame.protocols"]))
	}
	if p["_ws.malformed"] != "" || p["_ws.expert.message"] != "" {
		bad = append(bad, fmt.Sprintf("tshark expert info %q malformed %q", p["_ws.expert.message"], p["_ws.malformed"]))
	}
	want("tshark vrrp.version", p["vrrp.version"], strconv.Itoa(sc.version))
	want("tshark vrrp.type", p["vrrp.type"], "1")
	want("tshark vrrp.virt_rtr_id", p["vrrp.virt_rtr_id"], strconv.Itoa(vrid))
	if pr := p["vrrp.prio"]; pr != strconv.Itoa(m.inst.Priority) && pr != "0" {
		bad = append(bad, fmt.Sprintf("tshark vrrp.prio %q, want %d or 0", pr, m.inst.Priority))
	}
	want("tshark vrrp.addr_count", p["vrrp.addr_count"], "1")
	want("tshark vrrp.checksum.status (1 = Good)", p["vrrp.checksum.status"], checksumGood)
	if sc.family == 4 {
		want("tshark ip.src", p["ip.src"], m.src.String())
		want("tshark ip.dst", p["ip.dst"], m.dst.String())
		want("tshark ip.ttl", p["ip.ttl"], "255")
		want("tshark vrrp.ip_addr", p["vrrp.ip_addr"], r.vip.String())
		// DSCP CS6 (network control), as keepalived sends (see the golden captures).
		want("tshark ip.dsfield.dscp", p["ip.dsfield.dscp"], "48")
	} else {
		want("tshark ipv6.src", p["ipv6.src"], m.src.String())
		want("tshark ipv6.dst", p["ipv6.dst"], m.dst.String())
		want("tshark ipv6.hlim", p["ipv6.hlim"], "255")
		want("tshark vrrp.ipv6_addr", p["vrrp.ipv6_addr"], r.vip.String())
		want("tshark ipv6.tclass.dscp", p["ipv6.tclass.dscp"], "48")
	}
	if sc.version == 2 {
		want("tshark vrrp.adver_int", p["vrrp.adver_int"], strconv.Itoa(int(sc.interval/time.Second)))
		if sc.auth != "" {
			want("tshark vrrp.auth_type", p["vrrp.auth_type"], "1")
			want("tshark vrrp.auth_string", p["vrrp.auth_string"], sc.auth)
		} else {
			want("tshark vrrp.auth_type", p["vrrp.auth_type"], "0")
		}
	} else {
		want("tshark vrrp.short_adver_int", p["vrrp.short_adver_int"], strconv.Itoa(int(sc.interval/(10*time.Millisecond))))
	}

	// The independent view: netlab's decoder and our own arithmetic.
	if v.TTL != 255 {
		bad = append(bad, fmt.Sprintf("TTL/hop limit %d, want 255", v.TTL))
	}
	if v.Src != m.src || v.Dst != m.dst {
		bad = append(bad, fmt.Sprintf("%v → %v, want %v → %v", v.Src, v.Dst, m.src, m.dst))
	}
	if strconv.Itoa(v.Priority) != p["vrrp.prio"] {
		bad = append(bad, fmt.Sprintf("priority %d, tshark says %s", v.Priority, p["vrrp.prio"]))
	}
	if v.Version != sc.version || v.Type != 1 || v.VRID != vrid || v.CountAddrs != 1 || v.Interval != sc.interval {
		bad = append(bad, fmt.Sprintf("header v%d type %d vrid %d count %d interval %v, want v%d type 1 vrid %d count 1 interval %v",
			v.Version, v.Type, v.VRID, v.CountAddrs, v.Interval, sc.version, vrid, sc.interval))
	}
	wantMAC := r.other(m).mac.String()
	if !sc.unicast {
		wantMAC = "01:00:5e:00:00:12"
		if sc.family == 6 {
			wantMAC = "33:33:00:00:00:12"
		}
	}
	if v.DstMAC.String() != wantMAC {
		bad = append(bad, fmt.Sprintf("destination MAC %v, want %s", v.DstMAC, wantMAC))
	}
	alen := 4
	if sc.family == 6 {
		alen = 16
	}
	wantLen := 8 + alen*v.CountAddrs
	if sc.version == 2 {
		wantLen += 8
	}
	if len(v.Payload) != wantLen {
		bad = append(bad, fmt.Sprintf("VRRP message %d bytes, want %d", len(v.Payload), wantLen))
		return bad
	}
	if got, ok := netip.AddrFromSlice(v.Payload[8 : 8+alen]); !ok || got != r.vip {
		bad = append(bad, fmt.Sprintf("address list %v, want %v", got, r.vip))
	}
	if sc.version == 3 && v.Payload[4]>>4 != 0 {
		bad = append(bad, fmt.Sprintf("v3 reserved bits %#x, want 0", v.Payload[4]>>4))
	}
	if sc.version == 2 {
		var auth [8]byte
		authType := byte(0)
		if sc.auth != "" {
			authType = 1
			copy(auth[:], sc.auth)
		}
		if v.Payload[4] != authType || !bytes.Equal(v.Payload[8+alen:], auth[:]) {
			bad = append(bad, fmt.Sprintf("v2 auth type %d data %q, want %d %q", v.Payload[4], v.Payload[8+alen:], authType, auth[:]))
		}
	}
	if !checksumValid(v) {
		bad = append(bad, fmt.Sprintf("checksum %#04x does not verify (own arithmetic)", uint16(v.Payload[6])<<8|uint16(v.Payload[7])))
	}
	return bad
}

// checksumValid verifies the VRRP checksum of a captured packet independently of vigil's codec:
// the one's-complement sum over the message (checksum field included) plus, for v3, the
// pseudo-header must be 0xffff. v2 sums the message only (RFC 3768 §5.3.8). v3 adds the
// pseudo-header (RFC 5798 §5.2.8): for IPv6 the RFC 8200 §8.1 one (source, destination, 32-bit
// upper-layer length, three zero bytes, next header 112); for IPv4 the RFC 768-style one
// (source, destination, zero, protocol 112, 16-bit length), which is what keepalived and vigil's
// default send.
func checksumValid(v netlab.VRRPFrame) bool {
	n := len(v.Payload)
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	if v.Version == 3 {
		add(v.Src.AsSlice())
		add(v.Dst.AsSlice())
		if v.Src.Is4() {
			add([]byte{0, netlab.ProtoVRRP, byte(n >> 8), byte(n)})
		} else {
			add([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), 0, 0, 0, netlab.ProtoVRRP})
		}
	}
	add(v.Payload)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return sum == 0xffff
}

// TestChecksumArithmetic checks this package's own checksum verification (the second method of
// the wire check) on keepalived's golden captures: every packet verifies, and any flipped bit in
// the message or a wrong pseudo-header address does not. No privileges needed.
func TestChecksumArithmetic(t *testing.T) {
	files, err := filepath.Glob("../../vrrp/testdata/keepalived-pcaps/*.pcap")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden captures found: %v", err)
	}
	for _, f := range files {
		frames, err := netlab.ReadPcap(f)
		if err != nil {
			t.Fatal(err)
		}
		vs := netlab.VRRPFrames(frames)
		if len(vs) == 0 {
			t.Fatalf("%s: no VRRP packets", f)
		}
		for i, v := range vs {
			if !checksumValid(v) {
				t.Errorf("%s: packet %d (v%d %v → %v): golden checksum does not verify", filepath.Base(f), i, v.Version, v.Src, v.Dst)
			}
			bad := v
			bad.Payload = bytes.Clone(v.Payload)
			bad.Payload[2] ^= 0x01 // priority
			if checksumValid(bad) {
				t.Errorf("%s: packet %d: a flipped priority bit still verifies", filepath.Base(f), i)
			}
			if v.Version == 3 {
				bad := v
				bad.Src = v.Src.Next()
				if checksumValid(bad) {
					t.Errorf("%s: packet %d: a wrong pseudo-header source still verifies", filepath.Base(f), i)
				}
			}
		}
	}
}
