package telemetry

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// series returns the gathered series of family name as "label=value,..."
// (sorted label names) mapped to their values.
func series(t *testing.T, r *Registry, name string) map[string]float64 {
	t.Helper()
	fams, err := r.Reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[strings.Join(ls, ",")] = v
		}
	}
	return out
}

const webLabels = "device=eth0,family=ipv4,vrid=51,vrrp_instance=web"

// stateKey puts the state label where Gather sorts it.
func stateKey(labels, state string) string {
	return strings.Replace(labels, ",vrid=", ",state="+state+",vrid=", 1)
}

func wantSeries(t *testing.T, r *Registry, name string, want map[string]float64) {
	t.Helper()
	got := series(t, r, name)
	if len(got) != len(want) {
		t.Errorf("%s: got %v, want %v", name, got, want)
		return
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s{%s} = %v (present %v), want %v; all: %v", name, k, g, ok, v, got)
		}
	}
}

// An instance's series exist only once it is added, start as the driver
// always made them, follow its events, move with a rename and go with its
// removal.
func TestVRRPInstanceSeries(t *testing.T) {
	r := NewRegistry()
	vip := []netip.Addr{netip.MustParseAddr("192.0.2.100")}
	in := r.VRRP.Instance("web", 51, "eth0", 4)
	in.AdvertSent(false) // not added yet: counts nowhere, creates nothing
	in.GratuitousSent()
	if s := series(t, r, "vigil_vrrp_adverts_sent_total"); len(s) != 0 {
		t.Fatalf("series before Added: %v", s)
	}
	in.Added(VRRPSettings{BasePriority: 100, Priority: 90, AdvertInterval: time.Second, VIPs: vip})
	wantSeries(t, r, "vigil_vrrp_instance_state", map[string]float64{
		stateKey(webLabels, "init"): 1, stateKey(webLabels, "backup"): 0, stateKey(webLabels, "master"): 0, stateKey(webLabels, "fault"): 0})
	wantSeries(t, r, "vigil_vrrp_become_master_total", map[string]float64{webLabels: 0})
	wantSeries(t, r, "vigil_vrrp_effective_priority", map[string]float64{webLabels: 90})
	wantSeries(t, r, "vigil_vip_owned", map[string]float64{"address=192.0.2.100," + webLabels: 0})

	in.AdvertSent(false)
	in.AdvertSent(true)
	in.AdvertReceived(true)
	in.GratuitousSent()
	in.StateChanged(VRRPTransition{From: "backup", To: "master", Cause: "master_down_timer", At: time.Unix(1700000000, 5e8),
		Priority: 90, MasterPriority: 90, MasterInterval: 2 * time.Second})
	in.VIPsOwned(vip)
	wantSeries(t, r, "vigil_vrrp_adverts_sent_total", map[string]float64{webLabels: 2})
	wantSeries(t, r, "vigil_vrrp_priority_zero_sent_total", map[string]float64{webLabels: 1})
	wantSeries(t, r, "vigil_vrrp_priority_zero_received_total", map[string]float64{webLabels: 1})
	wantSeries(t, r, "vigil_vrrp_gratuitous_sent_total", map[string]float64{webLabels: 1})
	wantSeries(t, r, "vigil_vrrp_become_master_total", map[string]float64{webLabels: 1})
	wantSeries(t, r, "vigil_vrrp_last_transition_timestamp_seconds", map[string]float64{webLabels: 1700000000.5})
	wantSeries(t, r, "vigil_vrrp_advert_interval_seconds", map[string]float64{webLabels: 2})
	wantSeries(t, r, "vigil_vrrp_transitions_total", map[string]float64{
		"device=eth0,family=ipv4,from=backup,reason=master_down_timer,to=master,vrid=51,vrrp_instance=web": 1})
	wantSeries(t, r, "vigil_vip_owned", map[string]float64{"address=192.0.2.100," + webLabels: 1})

	// A rename: the old name's series go (but the transitions'), the new
	// ones start over in the current state.
	in.Renamed("www", "master", VRRPSettings{BasePriority: 100, Priority: 90, AdvertInterval: time.Second, VIPs: vip})
	www := strings.Replace(webLabels, "vrrp_instance=web", "vrrp_instance=www", 1)
	wantSeries(t, r, "vigil_vrrp_adverts_sent_total", map[string]float64{www: 0})
	wantSeries(t, r, "vigil_vrrp_instance_state", map[string]float64{
		stateKey(www, "init"): 0, stateKey(www, "backup"): 0, stateKey(www, "master"): 1, stateKey(www, "fault"): 0})
	wantSeries(t, r, "vigil_vip_owned", map[string]float64{"address=192.0.2.100," + www: 1})
	wantSeries(t, r, "vigil_vrrp_last_transition_timestamp_seconds", map[string]float64{})
	if len(series(t, r, "vigil_vrrp_transitions_total")) != 1 {
		t.Error("a rename dropped the transition series")
	}
	in.GratuitousSent()
	wantSeries(t, r, "vigil_vrrp_gratuitous_sent_total", map[string]float64{www: 1})

	in.Removed(vip)
	for _, f := range []string{"vigil_vrrp_instance_state", "vigil_vrrp_adverts_sent_total", "vigil_vip_owned", "vigil_vrrp_base_priority"} {
		wantSeries(t, r, f, map[string]float64{})
	}
	in.AdvertSent(true) // a removed instance's late counts go nowhere
	in.GratuitousSent()
	wantSeries(t, r, "vigil_vrrp_adverts_sent_total", map[string]float64{})
}

// Discards with no instance carry the socket's labels only.
func TestVRRPPacketErrorWithoutInstance(t *testing.T) {
	r := NewRegistry()
	r.VRRP.PacketError("eth1", 6, "vrid")
	wantSeries(t, r, "vigil_vrrp_packet_errors_total", map[string]float64{"device=eth1,family=ipv6,reason=vrid,vrid=,vrrp_instance=": 1})
}

// The event methods reach every VRRP family, and the families pass
// promlint. (test/prom runs promtool on a scrape as well.)
func TestVRRPEventsCoverEveryFamily(t *testing.T) {
	r := NewRegistry()
	vip := []netip.Addr{netip.MustParseAddr("192.0.2.100")}
	in := r.VRRP.Instance("web", 51, "eth0", 4)
	in.Added(VRRPSettings{BasePriority: 100, Priority: 100, AdvertInterval: time.Second, VIPs: vip})
	in.StateChanged(VRRPTransition{From: "backup", To: "master", Cause: "master_down_timer", At: time.Now(), Priority: 100, MasterPriority: 100, MasterInterval: time.Second})
	in.AdvertSent(true)
	in.AdvertReceived(true)
	in.SendFailed()
	in.PacketError("ttl")
	in.Notice("interval_mismatch")
	in.AlternateChecksum("message_only")
	in.GratuitousSent()
	in.VIPsOwned(vip)
	in.TransitionEffective("master", "master_down_timer", 3*time.Millisecond)
	fams, err := r.Reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range fams {
		have[f.GetName()] = len(f.GetMetric()) > 0
	}
	for _, c := range r.VRRP.Collectors() {
		ch := make(chan *prometheus.Desc, 1)
		c.Describe(ch)
		d := (<-ch).String()
		name := d[strings.Index(d, `fqName: "`)+len(`fqName: "`):]
		name = name[:strings.IndexByte(name, '"')]
		if !have[name] {
			t.Errorf("no event reaches %s", name)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(fams).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "vigil_v") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}

// The per-advert calls stay allocation-free: they run for every advert
// sent and received.
func TestVRRPAdvertPathDoesNotAllocate(t *testing.T) {
	in := NewRegistry().VRRP.Instance("web", 51, "eth0", 4)
	in.Added(VRRPSettings{BasePriority: 100, Priority: 100, AdvertInterval: time.Second})
	if n := testing.AllocsPerRun(100, func() {
		in.AdvertSent(false)
		in.AdvertSent(true)
		in.AdvertReceived(false)
		in.AdvertReceived(true)
		in.GratuitousSent()
	}); n != 0 {
		t.Fatalf("%v allocations per advert", n)
	}
}

func BenchmarkVRRPAdvertPath(b *testing.B) {
	in := NewRegistry().VRRP.Instance("web", 51, "eth0", 4)
	in.Added(VRRPSettings{BasePriority: 100, Priority: 100, AdvertInterval: time.Second})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		in.AdvertSent(i%64 == 0)
		in.AdvertReceived(i%64 == 1)
		in.GratuitousSent()
	}
}
