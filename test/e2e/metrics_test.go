package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"vigil/test/netlab"
	"vigil/vrrp"
)

// metricsConfig is instance web (VRID 51, 192.0.2.100) with metrics on 127.0.0.1:9730; extra
// adds keys to the instance (", key: value").
func metricsConfig(name string, prio int, extra string) string {
	return fmt.Sprintf(`node: { name: %s }
telemetry: { listen: "127.0.0.1:9730" }
vrrp:
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: %d, advert_interval: 100ms, vips: [192.0.2.100/24]%s }
`, name, prio, extra)
}

// metric returns the value of the first sample whose line matches all the
// label fragments.
func metric(t *testing.T, body, name string, frags ...string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\{([^}]*)\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		ok := true
		for _, f := range frags {
			ok = ok && strings.Contains(m[1], f)
		}
		if ok {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no sample %s{%v} in\n%s", name, frags, grep(body, name))
	return 0
}

func grep(body, prefix string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// sendRaw sends a VRRP message from a node's eth0 to dst (the group, or a
// unicast peer) with the given TTL, from a raw socket created inside the
// node's namespace.
func sendRaw(t *testing.T, n *netlab.Node, msg []byte, dst netip.Addr, ttl int) {
	t.Helper()
	c, err := n.ListenPacket("ip4:112", "0.0.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc := ipv4.NewPacketConn(c)
	if dst.IsMulticast() {
		// eth0's index inside the namespace, for IP_MULTICAST_IF (the nodes
		// have no multicast route).
		out, err := n.IP("-o", "link", "show", "dev", "eth0")
		if err != nil {
			t.Fatal(err)
		}
		idx, err := strconv.Atoi(strings.SplitN(string(out), ":", 2)[0])
		if err != nil {
			t.Fatalf("parsing %q: %v", out, err)
		}
		if err := pc.SetMulticastInterface(&net.Interface{Index: idx}); err != nil {
			t.Fatal(err)
		}
		err = pc.SetMulticastTTL(ttl)
	} else {
		err = pc.SetTTL(ttl)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		t.Fatal(err)
	}
}

// Metrics reflect the election, and packets that fail receive checks are
// counted by reason without disturbing the running instances (design
// principle 5).
func TestMetricsAndBadPackets(t *testing.T) {
	c := newCluster(t, 3)
	for i, prio := range []int{150, 100} {
		name := fmt.Sprintf("n%d", i+1)
		startYAML(t, c, name, metricsConfig(name, prio, ""))
	}
	c.nodes = c.nodes[:2] // n3 only injects packets
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 3*iv)

	// n3 injects bad adverts: TTL 1 (the multicast default), an unknown VRID,
	// a corrupted checksum, and a v2 packet to a v3 instance.
	src := netip.MustParseAddr("192.0.2.13")
	good := func(vrid uint8, version uint8, interval time.Duration) []byte {
		a := vrrp.Advert{Version: version, VRID: vrid, Priority: 200, Interval: interval, Addrs: []netip.Addr{vip4.Addr()}}
		b, err := a.Marshal(src, vrrp.GroupIPv4, vrrp.ChecksumPseudoHeader)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	grp := vrrp.GroupIPv4
	sendRaw(t, c.node("n3"), good(51, 3, iv), grp, 1)
	sendRaw(t, c.node("n3"), good(99, 3, iv), grp, 255)
	bad := good(51, 3, iv)
	bad[7] ^= 0xff
	sendRaw(t, c.node("n3"), bad, grp, 255)
	sendRaw(t, c.node("n3"), good(51, 2, time.Second), grp, 255)

	// Nothing changed: n1 still the only holder (a priority-200 advert with
	// a bad checksum or TTL must not make anyone back off).
	c.waitHolder(vip4.Addr(), "n1", time.Second, 5*iv)

	ctx := context.Background()
	for _, name := range []string{"n1", "n2"} {
		body, err := c.node(name).HTTPGet(ctx, "http://127.0.0.1:9730/metrics")
		if err != nil {
			t.Fatal(err)
		}
		s := string(body)
		for _, reason := range []string{"ttl", "checksum", "version"} {
			if v := metric(t, s, "vigil_vrrp_packet_errors_total", `vrrp_instance="web"`, `reason="`+reason+`"`); v < 1 {
				t.Errorf("%s: packet_errors{reason=%s} = %v", name, reason, v)
			}
		}
		if v := metric(t, s, "vigil_vrrp_packet_errors_total", `vrid=""`, `reason="vrid"`); v < 1 {
			t.Errorf("%s: packet_errors{reason=vrid} = %v", name, v)
		}
		master := metric(t, s, "vigil_vrrp_instance_state", `vrrp_instance="web"`, `state="master"`)
		backup := metric(t, s, "vigil_vrrp_instance_state", `vrrp_instance="web"`, `state="backup"`)
		owned := metric(t, s, "vigil_vip_owned", `address="192.0.2.100"`)
		switch name {
		case "n1":
			if master != 1 || backup != 0 || owned != 1 || metric(t, s, "vigil_vrrp_adverts_sent_total", `vrrp_instance="web"`) < 3 {
				t.Errorf("n1 metrics wrong:\n%s", grep(s, "vigil_vrrp_instance_state")+"\n"+grep(s, "vigil_vip_owned"))
			}
		case "n2":
			if master != 0 || backup != 1 || owned != 0 || metric(t, s, "vigil_vrrp_adverts_received_total", `vrrp_instance="web"`) < 3 {
				t.Errorf("n2 metrics wrong:\n%s", grep(s, "vigil_vrrp_instance_state")+"\n"+grep(s, "vigil_vip_owned"))
			}
		}
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if _, err := c.node("n1").HTTPGet(ctx, "http://127.0.0.1:9730"+p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// RFC 5798 §5.2.8 was read two ways for v3 over IPv4. A node sending the
// RFC 9568 message-only form and one sending the pseudo-header form still
// form one virtual router: each accepts the other's form and counts it.
func TestMixedChecksumForms(t *testing.T) {
	c := newCluster(t, 2)
	cfg := func(name string, prio int, form string) string {
		return fmt.Sprintf(`node: { name: %s }
telemetry: { listen: "127.0.0.1:9730" }
vrrp:
  instances:
    - { name: web, interface: eth0, vrid: 51, priority: %d, checksum: %s, advert_interval: 100ms, vips: [192.0.2.100/24] }
`, name, prio, form)
	}
	startYAML(t, c, "n1", cfg("n1", 150, "message_only"))
	startYAML(t, c, "n2", cfg("n2", 100, "pseudo_header"))
	c.waitHolder(vip4.Addr(), "n1", 3*time.Second, 5*iv)
	body, err := c.node("n2").HTTPGet(context.Background(), "http://127.0.0.1:9730/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if v := metric(t, string(body), "vigil_vrrp_alternate_checksum_received_total", `form="message_only"`); v < 3 {
		t.Fatalf("n2 counted %v message-only adverts", v)
	}
	// And the wire shows the message-only checksum on n1's adverts.
	for _, f := range c.adverts() {
		if f.Src != netip.MustParseAddr("192.0.2.11") {
			continue
		}
		d, err := vrrp.Decode(f.Payload, vrrp.RxInfo{Src: f.Src, Dst: f.Dst, TTL: f.TTL}, vrrp.ChecksumMessageOnly)
		if err != nil || d.AlternateForm {
			t.Fatalf("n1 advert is not in message-only form: %v %+v", err, d)
		}
	}
}
