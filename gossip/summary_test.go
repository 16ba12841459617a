package gossip

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/lb"
	"vigil/vrrp"
)

var tSummary = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// The issue asks for the instance state as VRRP names it; gossip cannot
// import vrrp, so its constants must agree with vrrp.State.String.
func TestStateNamesMatchVRRP(t *testing.T) {
	for _, c := range []struct {
		s    vrrp.State
		want string
	}{{vrrp.StateInit, StateInit}, {vrrp.StateBackup, StateBackup}, {vrrp.StateMaster, StateMaster}, {vrrp.StateFault, StateFault}} {
		if got := c.s.String(); got != c.want {
			t.Errorf("vrrp state %d prints %q, gossip expects %q", c.s, got, c.want)
		}
	}
}

// roundTrip checks that v encodes and decodes back as want.
func roundTrip[T any](t *testing.T, v T, encode func(T) ([]byte, error), decode func([]byte) (T, error), want T) {
	t.Helper()
	b, err := encode(v)
	if err != nil {
		t.Fatalf("%T: %v", v, err)
	}
	if got, err := decode(b); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("%T: got %+v, %v; want %+v", v, got, err, want)
	}
}

func TestValuesRoundTrip(t *testing.T) {
	ns := NodeSummary{Build: "1.2.3", ConfigVersion: 7, ConfigHash: "abc", Started: tSummary, Drained: true}
	roundTrip(t, ns, NodeSummary.Encode, DecodeNodeSummary, ns)

	vips := []netip.Addr{netip.MustParseAddr("192.0.2.101"), netip.MustParseAddr("192.0.2.100")}
	is := InstanceSummary{Name: "web", VRID: 51, Family: 4, Interface: "eth0", State: StateMaster, Base: 150, Priority: 130,
		Primary: netip.MustParseAddr("192.0.2.11"), Interval: time.Second, VIPs: vips}
	want := is
	want.VIPs = []netip.Addr{vips[1], vips[0]} // sorted
	want.VIPCount, want.VIPSet = 2, HashVIPs(vips)
	roundTrip(t, is, InstanceSummary.Encode, DecodeInstanceSummary, want)

	hr := HealthResult{VS: "http", RS: lb.DestKey{Addr: netip.MustParseAddr("2001:db8::11"), Port: 8080}, Up: true,
		Since: tSummary, Probing: true, Interval: 2 * time.Second}
	roundTrip(t, hr, HealthResult.Encode, DecodeHealthResult, hr)

	dd := DesiredDigest{ConfigVersion: 7, ConfigHash: "abc", Digest: "0123"}
	roundTrip(t, dd, DesiredDigest.Encode, DecodeDesiredDigest, dd)

	ca := ConfigAnnouncement{Version: 12, Hash: strings.Repeat("ab", 32), Origin: "lb1", Size: 4096, PushedBy: "root",
		Trace: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	roundTrip(t, ca, ConfigAnnouncement.Encode, DecodeConfigAnnouncement, ca)
	if ca.FetchKey() != "fleet/"+ca.Hash {
		t.Errorf("fetch key %q", ca.FetchKey())
	}
}

// Forward compatibility (issue 13: "Unknown kinds are ignored", and so are
// unknown fields of known ones); a value of a newer incompatible version is
// refused, not misread.
func TestDecodeValueVersions(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     error // nil: decodes
	}{
		{"unknown fields ignored", `{"v":1,"d":{"b":"9.9","zz":[1,2]},"extra":true}`, nil},
		{"newer version refused", `{"v":2,"d":{"b":"9.9"}}`, ErrValueVersion},
		{"missing version refused", `{"d":{"b":"9.9"}}`, ErrValueVersion},
		{"not JSON", `\x00`, errors.New("any")},
		{"wrong type", `{"v":1,"d":{"b":5}}`, errors.New("any")},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeNodeSummary([]byte(c.in))
			switch {
			case c.want == nil && (err != nil || got.Build != "9.9"):
				t.Errorf("got %+v, %v; want build 9.9", got, err)
			case c.want == ErrValueVersion && !errors.Is(err, ErrValueVersion):
				t.Errorf("err %v, want ErrValueVersion", err)
			case c.want != nil && err == nil:
				t.Errorf("decoded %+v, want an error", got)
			}
		})
	}
}

// The issue's size rule: "An InstanceSummary with 20 IPv6 VIPs and a
// 64-byte name must fit (truncate VIPs list, VIPSet still covers all); a
// HealthResult with a 64-byte VS name must fit" in one row of
// DefaultMaxRowSize, framing included.
func TestValuesFitOneRow(t *testing.T) {
	long := strings.Repeat("n", 64)
	st, err := NewStore(Config{Self: strings.Repeat("o", 64), Epoch: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	var vips []netip.Addr
	for i := range 20 {
		vips = append(vips, netip.MustParseAddr(fmt.Sprintf("2001:db8:ffff:ffff:ffff:ffff:ffff:%x", 0xff00+i)))
	}
	slices.Reverse(vips)
	is := InstanceSummary{Name: long, VRID: 255, Family: 6, Interface: strings.Repeat("i", 15), State: StateBackup,
		Base: 254, Priority: 254, Primary: netip.MustParseAddr("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
		Interval: 40950 * time.Millisecond, VIPs: vips}
	b, err := is.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Publish(KindVRRP, long, b); err != nil {
		t.Fatalf("instance summary of %d bytes: %v", len(b), err)
	}
	got, err := DecodeInstanceSummary(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("instance summary: value %d bytes, row %d bytes, %d of 20 VIPs listed", len(b), EncodedSize(Row{RowID: RowID{Origin: strings.Repeat("o", 64), Kind: KindVRRP, Key: long}, Version: Version{Epoch: 1 << 62, Seq: 1}, Value: b}), len(got.VIPs))
	sorted := slices.SortedFunc(slices.Values(vips), netip.Addr.Compare)
	if len(got.VIPs) == 20 || !slices.Equal(got.VIPs, sorted[:len(got.VIPs)]) {
		t.Errorf("VIPs %v: want a truncated prefix of %v", got.VIPs, sorted)
	}
	if got.VIPCount != 20 || got.VIPSet != HashVIPs(vips) || got.Key() != is.Key() {
		t.Errorf("count %d, set %s, key %v: want 20, the hash of all VIPs, key %v", got.VIPCount, got.VIPSet, got.Key(), is.Key())
	}

	hr := HealthResult{VS: long, RS: lb.DestKey{Addr: netip.MustParseAddr("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), Port: 65535},
		Up: true, Since: tSummary, Probing: true, Interval: time.Hour}
	if b, err = hr.Encode(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Publish(KindHealth, HealthKey(hr.VS, hr.RS), b); err != nil {
		t.Fatalf("health result of %d bytes: %v", len(b), err)
	}
	// An announcement with an ed25519 signature (88 base64 bytes) and a trace context.
	ca := ConfigAnnouncement{Version: 1 << 62, Hash: strings.Repeat("f", 64), Origin: long, Size: 64 << 20, PushedBy: long,
		Signature: strings.Repeat("s", 88), Trace: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	if b, err = ca.Encode(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Publish(KindConfig, KeyConfig, b); err != nil {
		t.Fatalf("config announcement of %d bytes: %v", len(b), err)
	}
}

// "HealthKey(vs, rs): unambiguous for any vs name" (issue 13 brief): names
// that hold the separator or look like a length prefix still give distinct
// keys.
func TestHealthKeyUnambiguous(t *testing.T) {
	a := lb.DestKey{Addr: netip.MustParseAddr("192.0.2.1"), Port: 80}
	b := lb.DestKey{Addr: netip.MustParseAddr("2001:db8::1"), Port: 80}
	ids := []lb.RealServerID{
		{VS: "", RS: a}, {VS: "x", RS: a}, {VS: "x", RS: b}, {VS: "x|192.0.2.1:80", RS: a},
		{VS: "1:x", RS: a}, {VS: "x|", RS: a}, {VS: "4:x|1", RS: b}, {VS: "x", RS: lb.DestKey{Addr: a.Addr, Port: 8}},
	}
	seen := map[string]lb.RealServerID{}
	for _, id := range ids {
		k := HealthKey(id.VS, id.RS)
		if o, dup := seen[k]; dup {
			t.Errorf("%+v and %+v share key %q", o, id, k)
		}
		seen[k] = id
	}
}

// VIPSet identifies a virtual router's VIPs (issue 13: "same VRID, family
// and VIP set"): order, repetition and IPv4-mapped spelling do not matter;
// another address does.
func TestHashVIPs(t *testing.T) {
	p := netip.MustParseAddr
	base := HashVIPs([]netip.Addr{p("192.0.2.100"), p("192.0.2.101")})
	for _, c := range []struct {
		name string
		vips []netip.Addr
		same bool
	}{
		{"reordered", []netip.Addr{p("192.0.2.101"), p("192.0.2.100")}, true},
		{"repeated", []netip.Addr{p("192.0.2.101"), p("192.0.2.100"), p("192.0.2.101")}, true},
		{"v4-mapped", []netip.Addr{p("::ffff:192.0.2.100"), p("192.0.2.101")}, true},
		{"one more", []netip.Addr{p("192.0.2.100"), p("192.0.2.101"), p("192.0.2.102")}, false},
		{"one fewer", []netip.Addr{p("192.0.2.100")}, false},
		{"other address", []netip.Addr{p("192.0.2.100"), p("192.0.2.102")}, false},
	} {
		if got := HashVIPs(c.vips) == base; got != c.same {
			t.Errorf("%s: same hash %v, want %v", c.name, got, c.same)
		}
	}
}
