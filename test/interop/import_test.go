package interop

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/test/netlab"
	"vigil/test/peer"
)

// importedPair is one keepalived.conf for both directors of an nginx VIP pair, written the way
// operators share one file across nodes: `@ID` lines per node (keepalived's --config-id, vigil's
// import-keepalived --config-id), parameters, the predefined ${_INSTANCE} (the config id), unicast
// with PASS authentication, and a vrrp_script with a negative weight. FLAGDIR is replaced by the
// lab directory: the script succeeds while FLAGDIR/<id>.up exists.
const importedPair = `! nginx VIP pair: one file for both directors (config ids "vigil" and "kad")
$IFACE=eth0
$VIP=192.0.2.100

global_defs {
    @vigil router_id vigil
    @kad router_id kad
    script_user root
    enable_script_security
    vrrp_garp_master_delay 0
    vrrp_garp_master_repeat 1
}

vrrp_script chk_nginx {
    script "/usr/bin/test -e FLAGDIR/${_INSTANCE}.up"
    interval 1
    fall 1
    rise 1
    weight -60      # 150 - 60 = 90: below the peer's 100
}

vrrp_instance VI_web {
    state BACKUP
    interface $IFACE
    virtual_router_id 51
    @vigil priority 150
    @kad priority 100
    advert_int 1
    @vigil unicast_src_ip 192.0.2.11
    @kad unicast_src_ip 192.0.2.12
    unicast_peer {
        @vigil 192.0.2.12
        @kad 192.0.2.11
    }
    authentication {
        auth_type PASS
        auth_pass s3cret
    }
    virtual_ipaddress {
        ${VIP}/24 dev $IFACE
    }
    track_script {
        chk_nginx
    }
}
`

// TestInteropImported is issue 16's interop proof of the importer: keepalived runs on the
// original file (config id "kad"), vigil on what `vigil config import-keepalived --config-id
// vigil` made of the same file; they form one virtual router. vigil (150) is master; its check
// fails (weight -60: 90) and keepalived (100) takes over; the check recovers and vigil takes the
// VIP back. At each step exactly one of them holds the VIP.
func TestInteropImported(t *testing.T) {
	bin, lab, nv, nk, conf := importLab(t, "vgioim")
	dir := lab.Dir()
	yaml := importFor(t, bin, conf, "vigil")

	pv, err := peer.StartVigilYAML(nv, bin, string(yaml))
	if err != nil {
		t.Fatal(err)
	}
	pk, err := peer.StartKeepalivedFile(nk, conf, "--vrrp", "--config-id", "kad")
	if err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParseAddr("192.0.2.100")
	logs := func() string {
		return "\nvigil:\n" + pv.LogTail(4000) + "\nkeepalived:\n" + pk.LogTail(4000)
	}
	// one waits until want holds the VIP, then checks for a while that the other does not.
	one := func(step string, want, other *netlab.Node, within time.Duration) {
		t.Helper()
		start := time.Now()
		if err := want.WaitAddr(netlab.Dev, vip, true, within); err != nil {
			t.Fatalf("%s: %s does not hold the VIP: %v%s", step, want.Name, err, logs())
		}
		took := time.Since(start)
		if err := other.WaitAddr(netlab.Dev, vip, false, 4*time.Second); err != nil {
			t.Fatalf("%s: %s still holds the VIP too: %v%s", step, other.Name, err, logs())
		}
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			a, _ := want.HasAddr(netlab.Dev, vip)
			b, _ := other.HasAddr(netlab.Dev, vip)
			if !a || b {
				t.Fatalf("%s: not one master: %s holds %v, %s holds %v%s", step, want.Name, a, other.Name, b, logs())
			}
		}
		t.Logf("%s: %s master after %v", step, want.Name, took.Round(time.Millisecond))
	}
	// Start: both BACKUP; vigil (150) wins after Master_Down_Interval.
	one("start", nv, nk, 10*time.Second)
	// vigil's check fails: 150 - 60 = 90 < 100, keepalived preempts.
	if err := os.Remove(filepath.Join(dir, "vigil.up")); err != nil {
		t.Fatal(err)
	}
	one("vigil's check fails", nk, nv, 10*time.Second)
	// It recovers: 150 again, vigil preempts keepalived.
	if err := os.WriteFile(filepath.Join(dir, "vigil.up"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	one("vigil's check recovers", nv, nk, 10*time.Second)
	// keepalived's own check fails too (its weight applies on its side): nothing changes.
	if err := os.Remove(filepath.Join(dir, "kad.up")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	one("keepalived's check fails", nv, nk, time.Second)
	// vigil stops: its priority-0 advert hands the VIP to keepalived (at 40) after Skew_Time.
	if err := pv.Stop(stopTimeout); err != nil {
		t.Fatalf("stop vigil: %v%s", err, logs())
	}
	if err := nk.WaitAddr(netlab.Dev, vip, true, 5*time.Second); err != nil {
		t.Fatalf("vigil stopped: keepalived does not take over: %v%s", err, logs())
	}
}

// importLab returns the vigil binary, builds the two directors "vigil" (192.0.2.11) and "kad"
// (192.0.2.12) and writes the pair's keepalived.conf, with both checks passing, into the lab
// directory.
func importLab(t *testing.T, tag string) (string, *netlab.Lab, *netlab.Node, *netlab.Node, string) {
	t.Helper()
	bin := peers(t)
	lab := netlab.NewForTest(t, tag)
	nv, err := lab.AddNode("vigil", netip.MustParsePrefix("192.0.2.11/24"))
	if err != nil {
		t.Fatal(err)
	}
	nk, err := lab.AddNode("kad", netip.MustParsePrefix("192.0.2.12/24"))
	if err != nil {
		t.Fatal(err)
	}
	dir := lab.Dir()
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte(strings.ReplaceAll(importedPair, "FLAGDIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"vigil", "kad"} {
		if err := os.WriteFile(filepath.Join(dir, id+".up"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return bin, lab, nv, nk, conf
}

// importFor runs `vigil config import-keepalived --config-id ID` on the pair's file: the result
// must be complete (exit 0) and pass `vigil config validate`. It returns the YAML.
func importFor(t *testing.T, bin, conf, id string) string {
	t.Helper()
	out := filepath.Join(filepath.Dir(conf), id+"-imported.yaml")
	report, err := exec.Command(bin, "config", "import-keepalived", "--config-id", id, "-o", out, conf).CombinedOutput()
	if err != nil {
		t.Fatalf("vigil config import-keepalived --config-id %s: %v\n%s", id, err, report)
	}
	t.Logf("import-keepalived --config-id %s report:\n%s", id, report)
	yaml, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if check, err := exec.Command(bin, "config", "validate", "--config", out).CombinedOutput(); err != nil {
		t.Fatalf("vigil config validate on the imported file: %v\n%s\n%s", err, check, yaml)
	}
	return string(yaml)
}

var (
	pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
	pingReply   = regexp.MustCompile(`(?m)^\[(\d+\.\d+)\] .*icmp_seq=(\d+) `)
)

// TestRollingSwap is the migration guide's rolling swap of a keepalived pair to vigil, with a
// client pinging the VIP every 20 ms throughout: keepalived runs on both directors (vigil's node
// at 150 is master); the backup's keepalived is replaced by vigil on the imported file; then the
// master's keepalived stops (its priority-0 advert hands the VIP to the vigil backup after
// Skew_Time, RFC 3768 §6.4.2) and vigil starts there, taking the VIP back by preemption. The only
// loss the client may see is the Skew_Time gap of the one handoff away from the old master
// (100 ms margin for the GARP and the 20 ms ping grain).
func TestRollingSwap(t *testing.T) {
	bin, lab, na, nb, conf := importLab(t, "vgiosw")
	client, err := lab.AddNode("client", netip.MustParsePrefix("192.0.2.20/24"))
	if err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParseAddr("192.0.2.100")
	kaA, err := peer.StartKeepalivedFile(na, conf, "--vrrp", "--config-id", "vigil")
	if err != nil {
		t.Fatal(err)
	}
	kaB, err := peer.StartKeepalivedFile(nb, conf, "--vrrp", "--config-id", "kad")
	if err != nil {
		t.Fatal(err)
	}
	if err := na.WaitAddr(netlab.Dev, vip, true, 10*time.Second); err != nil {
		t.Fatalf("keepalived pair: no master: %v\n%s", err, kaA.LogTail(3000))
	}

	// The client: 1,500 pings 20 ms apart (30 s), counted at the end.
	const count, every = 1500, 20 * time.Millisecond
	type result struct {
		out []byte
		err error
	}
	pinged := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := client.Run(ctx, "ping", "-n", "-D", "-c", strconv.Itoa(count), "-i", fmt.Sprint(every.Seconds()), "-W", "1", vip.String())
		pinged <- result{out, err}
	}()
	time.Sleep(2 * time.Second)

	// 1. The backup: keepalived → vigil. The master keeps the VIP.
	if err := kaB.Stop(stopTimeout); err != nil {
		t.Fatalf("stop keepalived on %s: %v", nb.Name, err)
	}
	vb, err := peer.StartVigilYAML(nb, bin, importFor(t, bin, conf, "kad"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second) // past Master_Down_Interval: a vigil that did not hear the master would take over
	if held, _ := nb.HasAddr(netlab.Dev, vip); held {
		t.Fatalf("vigil on the backup took the VIP from keepalived's master\n%s", vb.LogTail(3000))
	}
	// 2. The master: keepalived stops (priority 0), vigil on the backup takes over.
	stopped := time.Now()
	var tookOver time.Time
	if err := kaA.Stop(stopTimeout); err != nil {
		t.Fatalf("stop keepalived on %s: %v", na.Name, err)
	}
	if err := nb.WaitAddr(netlab.Dev, vip, true, 5*time.Second); err != nil {
		t.Fatalf("vigil on %s does not take over from the stopped keepalived: %v\n%s", nb.Name, err, vb.LogTail(3000))
	}
	tookOver = time.Now()
	t.Logf("keepalived master stopped → vigil backup holds the VIP: %v (polled)", tookOver.Sub(stopped).Round(time.Millisecond))
	// 3. vigil on the old master, which takes the VIP back (150 > 100, preemption: no gap).
	va, err := peer.StartVigilYAML(na, bin, importFor(t, bin, conf, "vigil"))
	if err != nil {
		t.Fatal(err)
	}
	if err := na.WaitAddr(netlab.Dev, vip, true, 10*time.Second); err != nil {
		t.Fatalf("vigil on %s does not take the VIP back: %v\n%s", na.Name, err, va.LogTail(3000))
	}
	if err := nb.WaitAddr(netlab.Dev, vip, false, 5*time.Second); err != nil {
		t.Fatalf("both vigils hold the VIP: %v", err)
	}

	r := <-pinged
	m := pingSummary.FindSubmatch(r.out)
	if m == nil {
		t.Fatalf("ping: no summary (%v):\n%s", r.err, r.out)
	}
	sent, _ := strconv.Atoi(string(m[1]))
	got, _ := strconv.Atoi(string(m[2]))
	lost := sent - got
	// Skew_Time for priority 100 at 1 s adverts (RFC 3768 §6.1): (256-100)/256 s.
	skew := time.Duration(256-100) * time.Second / 256
	budget := int((skew+100*time.Millisecond)/every) + 1
	t.Logf("client pinging the VIP every %v through the swap: %d sent, %d lost (%v of replies; budget %d = Skew_Time %v + 100 ms)",
		every, sent, lost, time.Duration(lost)*every, budget, skew.Round(time.Millisecond))
	if sent < count {
		t.Fatalf("ping stopped early: %d of %d sent (%v)\n%s", sent, count, r.err, r.out)
	}
	if lost > budget {
		t.Fatalf("the swap lost %d pings (%v); the handoff should cost at most Skew_Time (%d pings)", lost, time.Duration(lost)*every, budget)
	}
	// Every loss began during step 2, between keepalived's stop and vigil's takeover: steps 1
	// and 3 lose nothing. ping -D stamps each reply with the wall clock; a run of lost pings
	// began after the reply before it (ping's pacing drifts from 20 ms, so sequence numbers
	// do not give the time).
	var stamps []time.Time
	var seqs []int
	for _, m := range pingReply.FindAllSubmatch(r.out, -1) {
		sec, _ := strconv.ParseFloat(string(m[1]), 64)
		seq, _ := strconv.Atoi(string(m[2]))
		stamps, seqs = append(stamps, time.UnixMicro(int64(sec*1e6))), append(seqs, seq)
	}
	from, to := stopped.Add(-200*time.Millisecond), tookOver.Add(200*time.Millisecond)
	for i := 1; i < len(seqs); i++ {
		if gap := seqs[i] - seqs[i-1] - 1; gap > 0 {
			began := stamps[i-1]
			t.Logf("pings %d..%d lost, after the reply at %s (step 2: keepalived stopped at %s, vigil held the VIP at %s)",
				seqs[i-1]+1, seqs[i]-1, began.Format("15:04:05.000"), stopped.Format("15:04:05.000"), tookOver.Format("15:04:05.000"))
			if began.Before(from) || began.After(to) {
				t.Errorf("%d pings lost outside the handoff of step 2", gap)
			}
		}
	}
}
