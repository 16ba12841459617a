package announce

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"

	"vigil/test/netlab"
)

// The root-only tests (VIGIL_NETNS=1) run the Announcer on interface vgan0 of
// a netlab node "tx" and capture what it sends on the lab's bridge. The name
// must not exist in the root namespace: the NA socket resolves its zone by
// name from whichever thread writes, and Go's zone cache is per process.
const txDev = "vgan0"

var txMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0xa0}

var (
	vip4a = netip.MustParseAddr("192.0.2.100")
	vip4b = netip.MustParseAddr("192.0.2.101")
	vip6  = netip.MustParseAddr("2001:db8::100")
)

type link struct {
	tx  *netlab.Node
	cap *netlab.Capture // every frame from txMAC
}

// setup builds a lab with node tx (txDev has MAC txMAC and, once
// AddNodeConfig returns, a usable link-local address) and starts the capture.
func setup(t *testing.T) link {
	t.Helper()
	lab := netlab.NewForTest(t, "vgann")
	tx, err := lab.AddNodeConfig(netlab.NodeConfig{Name: "tx", MAC: txMAC, Dev: txDev})
	if err != nil {
		t.Fatal(err)
	}
	c, err := lab.StartCapture("ether src " + txMAC.String())
	if err != nil {
		t.Fatal(err)
	}
	return link{tx: tx, cap: c}
}

// newAnnouncer creates the Announcer inside the tx namespace.
func (l link) newAnnouncer(t *testing.T, cfg Config) *Announcer {
	t.Helper()
	var a *Announcer
	if err := l.tx.Do(func() (err error) {
		a, err = New(txDev, cfg, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	})
	return a
}

// announcement is a decoded GARP or NA, with its arrival time.
type announcement struct {
	at     time.Time
	family string
	target netip.Addr
}

// decode checks every field the package promises and returns what the frame
// announces; ok is false for unrelated traffic (the kernel's MLD, RS...).
func decode(t *testing.T, f netlab.Frame) (announcement, bool) {
	t.Helper()
	var eth ethernet.Frame
	if err := eth.UnmarshalBinary(f.Data); err != nil {
		t.Fatalf("bad Ethernet frame % x: %v", f.Data, err)
	}
	switch eth.EtherType {
	case ethernet.EtherTypeARP:
		var p arp.Packet
		if err := p.UnmarshalBinary(eth.Payload); err != nil {
			t.Fatalf("bad ARP packet: %v", err)
		}
		if !bytes.Equal(eth.Destination, ethernet.Broadcast) {
			t.Errorf("GARP Ethernet destination %s, want broadcast", eth.Destination)
		}
		if p.HardwareType != 1 || p.ProtocolType != uint16(ethernet.EtherTypeIPv4) {
			t.Errorf("GARP htype/ptype %d/%#x, want 1/0x0800", p.HardwareType, p.ProtocolType)
		}
		if p.Operation != arp.OperationRequest {
			t.Errorf("GARP operation %v, want request", p.Operation)
		}
		if !bytes.Equal(p.SenderHardwareAddr, txMAC) {
			t.Errorf("GARP sender HW %s, want %s", p.SenderHardwareAddr, txMAC)
		}
		if !bytes.Equal(p.TargetHardwareAddr, ethernet.Broadcast) {
			t.Errorf("GARP target HW %s, want ff:ff:ff:ff:ff:ff", p.TargetHardwareAddr)
		}
		if p.SenderIP != p.TargetIP {
			t.Errorf("GARP sender IP %s != target IP %s", p.SenderIP, p.TargetIP)
		}
		return announcement{at: f.Time, family: "ipv4", target: p.TargetIP}, true

	case ethernet.EtherTypeIPv6:
		h, err := ipv6.ParseHeader(eth.Payload)
		if err != nil {
			t.Fatalf("bad IPv6 header: %v", err)
		}
		const icmpv6 = 58
		body := eth.Payload[ipv6.HeaderLen:]
		if h.NextHeader != icmpv6 || len(body) == 0 || body[0] != byte(ipv6.ICMPTypeNeighborAdvertisement) {
			return announcement{}, false
		}
		m, err := ndp.ParseMessage(body[:h.PayloadLen])
		if err != nil {
			t.Fatalf("bad NA: %v", err)
		}
		na := m.(*ndp.NeighborAdvertisement)
		if want := (net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}); !bytes.Equal(eth.Destination, want) {
			t.Errorf("NA Ethernet destination %s, want %s", eth.Destination, want)
		}
		if h.HopLimit != 255 {
			t.Errorf("NA hop limit %d, want 255", h.HopLimit)
		}
		if !h.Dst.Equal(net.ParseIP("ff02::1")) {
			t.Errorf("NA destination %s, want ff02::1", h.Dst)
		}
		src, _ := netip.AddrFromSlice(h.Src)
		if !src.IsLinkLocalUnicast() {
			t.Errorf("NA source %s, want the link-local address", src)
		}
		if !na.Override || na.Solicited || na.Router {
			t.Errorf("NA flags R=%v S=%v O=%v, want O only", na.Router, na.Solicited, na.Override)
		}
		if len(na.Options) != 1 {
			t.Fatalf("NA options %v, want one", na.Options)
		}
		lla, ok := na.Options[0].(*ndp.LinkLayerAddress)
		if !ok || lla.Direction != ndp.Target || !bytes.Equal(lla.Addr, txMAC) {
			t.Errorf("NA option %+v, want target link-layer address %s", na.Options[0], txMAC)
		}
		// Re-encoding with the pseudo-header checksum must give the wire
		// bytes, which proves the kernel-computed checksum too.
		want, err := ndp.MarshalMessageChecksum(na, src, netip.MustParseAddr("ff02::1"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want, body[:h.PayloadLen]) {
			t.Errorf("NA on the wire % x, want % x", body[:h.PayloadLen], want)
		}
		return announcement{at: f.Time, family: "ipv6", target: na.TargetAddress}, true
	}
	return announcement{}, false
}

func (l link) announcements(t *testing.T) []announcement {
	t.Helper()
	frames, err := l.cap.Frames()
	if err != nil {
		t.Fatal(err)
	}
	var out []announcement
	for _, f := range frames {
		if a, ok := decode(t, f); ok && (a.target == vip4a || a.target == vip4b || a.target == vip6) {
			out = append(out, a)
		}
	}
	return out
}

// waitFor polls until n announcements arrived or timeout passed.
func (l link) waitFor(t *testing.T, n int, timeout time.Duration) []announcement {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := l.announcements(t)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func count(as []announcement) map[netip.Addr]int {
	m := map[netip.Addr]int{}
	for _, a := range as {
		m[a.target]++
	}
	return m
}

func TestBurstFrames(t *testing.T) {
	l := setup(t)
	a := l.newAnnouncer(t, Config{Repeat: 3})
	n, err := a.Burst([]netip.Addr{vip4a, vip4b, vip6, vip4a})
	if err != nil {
		t.Fatal(err)
	}
	if n != 9 {
		t.Errorf("Burst sent %d, want 9 (3 addresses x 3)", n)
	}
	l.waitFor(t, 9, 2*time.Second)
	time.Sleep(100 * time.Millisecond) // anything extra would show now
	got := l.announcements(t)
	c := count(got)
	if c[vip4a] != 3 || c[vip4b] != 3 || c[vip6] != 3 || len(got) != 9 {
		t.Errorf("captured %v, want 3 per address", c)
	}
	if arpN, naN := a.Sent(); arpN != 6 || naN != 3 {
		t.Errorf("Sent() = %d, %d; want 6, 3", arpN, naN)
	}
}

func TestIntervalPacesMessages(t *testing.T) {
	l := setup(t)
	const interval = 40 * time.Millisecond
	a := l.newAnnouncer(t, Config{Repeat: 3, Interval: interval})
	start := time.Now()
	if _, err := a.Burst([]netip.Addr{vip4a}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 2*interval {
		t.Errorf("Burst of 3 paced by %s returned after %s", interval, el)
	}
	got := l.waitFor(t, 3, 2*time.Second)
	if len(got) != 3 {
		t.Fatalf("captured %d, want 3", len(got))
	}
	for i := 1; i < len(got); i++ {
		// Capture timestamps jitter; allow half.
		if gap := got[i].at.Sub(got[i-1].at); gap < interval/2 {
			t.Errorf("gap %d = %s, want about %s", i, gap, interval)
		}
	}
}

func TestDelayedBurst(t *testing.T) {
	l := setup(t)
	const delay = 300 * time.Millisecond
	a := l.newAnnouncer(t, Config{Repeat: 2, Delay: delay})
	var observed atomic.Int64 // OnSent sees the delayed burst too (vigil_vrrp_gratuitous_sent_total)
	a.OnSent(func() { observed.Add(1) })
	start := time.Now()
	if n, err := a.Burst([]netip.Addr{vip4a, vip6}); err != nil || n != 4 {
		t.Fatalf("Burst = %d, %v; want 4, nil", n, err)
	}
	if el := time.Since(start); el > delay/2 {
		t.Errorf("Burst blocked for %s; the delayed burst must not block", el)
	}
	got := l.waitFor(t, 8, 3*time.Second)
	if len(got) != 8 {
		t.Fatalf("captured %d, want 8 (two bursts of 4)", len(got))
	}
	for i, an := range got {
		wantLate := i >= 4
		late := an.at.Sub(start) >= delay-20*time.Millisecond
		if late != wantLate {
			t.Errorf("message %d (%s) arrived %s after Burst; second burst due after %s", i, an.target, an.at.Sub(start), delay)
		}
	}
	if c := count(got); c[vip4a] != 4 || c[vip6] != 4 {
		t.Errorf("captured %v, want 4 per address", c)
	}
	// The delayed burst's last message is on the wire a moment before Sent
	// counts it (after the write returns): give the count that moment.
	arpN, naN := a.Sent()
	for deadline := time.Now().Add(time.Second); (arpN < 4 || naN < 4) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		arpN, naN = a.Sent()
	}
	if arpN != 4 || naN != 4 {
		t.Errorf("Sent() = %d, %d; want 4, 4", arpN, naN)
	}
	if n := observed.Load(); n != 8 {
		t.Errorf("OnSent called %d times, want 8 (both bursts)", n)
	}
}

func TestCancelAndClose(t *testing.T) {
	l := setup(t)
	const delay = 300 * time.Millisecond
	cfg := Config{Repeat: 2, Delay: delay}
	a := l.newAnnouncer(t, cfg)
	b := l.newAnnouncer(t, cfg)

	if _, err := a.Burst([]netip.Addr{vip4a}); err != nil {
		t.Fatal(err)
	}
	a.Cancel()
	if _, err := b.Burst([]netip.Addr{vip6}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay + 300*time.Millisecond)
	if c := count(l.announcements(t)); c[vip4a] != 2 || c[vip6] != 2 {
		t.Errorf("captured %v, want only the first burst (2 each)", c)
	}
	if _, err := b.Burst([]netip.Addr{vip6}); !errors.Is(err, ErrClosed) {
		t.Errorf("Burst after Close: %v, want ErrClosed", err)
	}

	// A cancelled Announcer stays usable.
	if n, err := a.Burst([]netip.Addr{vip4b}); err != nil || n != 2 {
		t.Fatalf("Burst after Cancel = %d, %v; want 2, nil", n, err)
	}
	if got := count(l.waitFor(t, 6, 2*time.Second)); got[vip4b] < 2 {
		t.Errorf("captured %v after re-Burst, want 2 for %s", got, vip4b)
	}
}

func TestNoIPv6OnInterface(t *testing.T) {
	l := setup(t)
	// IPv4-only instance: the NA socket cannot open, New must still work
	// and only IPv6 addresses fail, naming the interface.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.tx.Run(ctx, "sysctl", "-qw", "net.ipv6.conf."+txDev+".disable_ipv6=1"); err != nil {
		t.Fatal(err)
	}
	a := l.newAnnouncer(t, Config{Repeat: 1})
	n, err := a.Burst([]netip.Addr{vip4a, vip6})
	if n != 1 {
		t.Errorf("Burst sent %d, want 1 (the GARP)", n)
	}
	if err == nil || !strings.Contains(err.Error(), txDev) || !strings.Contains(err.Error(), vip6.String()) {
		t.Errorf("Burst error %v, want one naming %s and %s", err, vip6, txDev)
	}
}

func TestCancelStopsBurstInProgress(t *testing.T) {
	l := setup(t)
	const interval = 50 * time.Millisecond
	a := l.newAnnouncer(t, Config{Repeat: 10, Interval: interval, Delay: 100 * time.Millisecond})
	type result struct {
		n   int
		err error
	}
	res := make(chan result, 1)
	go func() {
		n, err := a.Burst([]netip.Addr{vip4a})
		res <- result{n, err}
	}()
	time.Sleep(3 * interval)
	a.Cancel()
	r := <-res
	if r.err != nil || r.n < 1 || r.n >= 10 {
		t.Fatalf("Burst cut by Cancel = %d, %v; want 1..9 sent, nil", r.n, r.err)
	}
	// Neither the rest of the burst nor the delayed one may follow.
	time.Sleep(4 * interval)
	if got := l.announcements(t); len(got) != r.n {
		t.Errorf("captured %d, Burst reported %d sent before Cancel", len(got), r.n)
	}
}

func TestConfigAndInputErrors(t *testing.T) {
	// No privileges needed: these fail before any socket is opened.
	for _, cfg := range []Config{{}, {Repeat: -1}, {Repeat: 1, Interval: -time.Second}, {Repeat: 1, Delay: -time.Second}} {
		if _, err := New("lo", cfg, nil); err == nil {
			t.Errorf("New with %+v: no error", cfg)
		}
	}
	_, err := New("vgnosuch0", DefaultConfig(), nil)
	if err == nil || !strings.Contains(err.Error(), "vgnosuch0") {
		t.Errorf("New on a missing interface: %v, want an error naming it", err)
	}
	a := &Announcer{link: &Link{ifname: "eth9"}}
	list, errs := a.clean([]netip.Addr{{}, netip.MustParseAddr("ff02::1"), netip.MustParseAddr("::ffff:192.0.2.1"), vip6, vip6})
	if len(errs) != 2 || len(list) != 2 || list[0] != netip.MustParseAddr("192.0.2.1") || list[1] != vip6 {
		t.Errorf("clean = %v, %v; want [192.0.2.1 %s] and 2 errors", list, errs, vip6)
	}
	if d := DefaultConfig(); d.Repeat != 5 || d.Interval != 0 || d.Delay != 5*time.Second {
		t.Errorf("DefaultConfig() = %+v, want keepalived's 5 / 0 / 5s", d)
	}
}

// Announcers of several instances share one Link (two sockets per
// interface): each keeps its own schedule, cancelling or closing one does
// not touch the other's delayed burst, and the Link stays open until closed.
func TestSharedLink(t *testing.T) {
	l := setup(t)
	var link *Link
	if err := l.tx.Do(func() (err error) {
		link, err = NewLink(txDev, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	const delay = 300 * time.Millisecond
	a, err := link.Announcer(Config{Repeat: 1, Delay: delay})
	if err != nil {
		t.Fatal(err)
	}
	b, err := link.Announcer(Config{Repeat: 2, Delay: delay})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := a.Burst([]netip.Addr{vip4a}); err != nil || n != 1 {
		t.Fatalf("a.Burst = %d, %v", n, err)
	}
	if n, err := b.Burst([]netip.Addr{vip4b, vip6}); err != nil || n != 4 {
		t.Fatalf("b.Burst = %d, %v", n, err)
	}
	// a leaves master: its delayed burst must not come; b's must.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	l.waitFor(t, 9, 3*time.Second)
	time.Sleep(100 * time.Millisecond) // nothing more may come
	got := count(l.announcements(t))
	if got[vip4a] != 1 || got[vip4b] != 4 || got[vip6] != 4 {
		t.Errorf("captured %v, want %s once (a closed before its second burst), %s and %s 4 times", got, vip4a, vip4b, vip6)
	}
	if arpN, naN := b.Sent(); arpN != 4 || naN != 4 {
		t.Errorf("b.Sent() = %d, %d; want 4, 4 (counts are per Announcer)", arpN, naN)
	}
	if err := link.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Burst([]netip.Addr{vip4b}); !errors.Is(err, ErrLinkClosed) {
		t.Errorf("Burst on a closed Link: %v, want ErrLinkClosed", err)
	}
}

// keepalived garp_master_refresh: while master, every Refresh the addresses
// are announced RefreshRepeat times; Cancel (leaving master) ends it. And
// garp_lower_prio_repeat: BurstLowerPrio sends its own count.
func TestRefreshAndLowerPrio(t *testing.T) {
	l := setup(t)
	const refresh = 200 * time.Millisecond
	a := l.newAnnouncer(t, Config{Repeat: 1, Refresh: refresh, RefreshRepeat: 2, LowerPrioRepeat: 3})
	start := time.Now()
	if n, err := a.Burst([]netip.Addr{vip4a}); err != nil || n != 1 {
		t.Fatalf("Burst = %d, %v", n, err)
	}
	got := l.waitFor(t, 7, 3*time.Second) // 1 now + 2 at each of 3 refreshes
	if len(got) < 7 {
		t.Fatalf("captured %d, want ≥ 7", len(got))
	}
	for i, an := range got[1:7] {
		round := time.Duration(i/2+1) * refresh
		if d := an.at.Sub(start); d < round-20*time.Millisecond {
			t.Errorf("refresh message %d at %s, before refresh %d (%s)", i, d, i/2+1, round)
		}
	}
	// A second Burst (a reload adding VIPs) does not start a second chain:
	// over two refresh periods at most 1 + 2×2 more messages, not 1 + 2×4.
	mark := len(l.announcements(t))
	a.Burst([]netip.Addr{vip4a})
	time.Sleep(2*refresh + refresh/2)
	if extra := len(l.announcements(t)) - mark; extra > 5 {
		t.Fatalf("%d messages in two refresh periods after a second Burst: two refresh chains", extra)
	}
	a.Cancel()
	before := len(l.announcements(t))
	time.Sleep(3 * refresh)
	if after := len(l.announcements(t)); after != before {
		t.Fatalf("%d messages after Cancel", after-before)
	}
	if n, err := a.BurstLowerPrio([]netip.Addr{vip6}); err != nil || n != 3 {
		t.Fatalf("BurstLowerPrio = %d, %v; want 3", n, err)
	}
	time.Sleep(2 * refresh)
	if c := count(l.announcements(t)); c[vip6] != 3 {
		t.Fatalf("lower-priority burst: %v, want 3 for %s and no refresh", c, vip6)
	}
}

// A delayed burst whose timer fires much later than due (the process was
// stopped: SIGSTOP, a frozen VM) is dropped: by then another node may be
// master. The clock is moved forward to make the timer late; the fault
// suite shows the same with a real SIGSTOP (test/fault TestMasterStalled).
func TestStaleDelayedBurstDropped(t *testing.T) {
	l := setup(t)
	a := l.newAnnouncer(t, Config{Repeat: 1, Delay: 200 * time.Millisecond, StaleAfter: 50 * time.Millisecond})
	var skew atomic.Int64
	a.mu.Lock()
	a.now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	a.mu.Unlock()
	if n, err := a.Burst([]netip.Addr{vip4a}); err != nil || n != 1 {
		t.Fatalf("Burst = %d, %v", n, err)
	}
	skew.Store(int64(time.Second)) // the timer will look a second late
	got := l.waitFor(t, 2, time.Second)
	if len(got) != 1 {
		t.Fatalf("captured %d announcements, want only the first burst's 1", len(got))
	}
	// Not stale: the second burst goes out.
	skew.Store(0)
	b := l.newAnnouncer(t, Config{Repeat: 1, Delay: 100 * time.Millisecond, StaleAfter: 50 * time.Millisecond})
	if _, err := b.Burst([]netip.Addr{vip4b}); err != nil {
		t.Fatal(err)
	}
	if got := l.waitFor(t, 3, 2*time.Second); len(got) != 3 {
		t.Fatalf("captured %d announcements, want 3 (a timely second burst is sent)", len(got))
	}
}
