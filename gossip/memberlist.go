package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

// Options is what vigil's configuration says about memberlist; the node
// package turns its `gossip:` section into one.
type Options struct {
	Name      string
	Bind      netip.AddrPort // BindAddr/BindPort; zero = the profile's 0.0.0.0:7946
	Advertise netip.AddrPort // zero = unset (memberlist picks the bind address)
	Cluster   string         // memberlist Label: two fleets on one network never merge
	Keys      [][]byte       // nil = no encryption; the first is the primary key
	Profile   string         // "lan" (default) | "wan" | "local"
	Timing    Timing         // zero fields = the profile's values
	Log       *slog.Logger   // memberlist's own log lines go here (nil = slog.Default())
}

// Timing overrides the memberlist timings that matter; a zero field keeps
// the profile's value.
type Timing struct {
	ProbeInterval, ProbeTimeout, GossipInterval time.Duration
	GossipNodes                                 int
	PushPullInterval                            time.Duration
	SuspicionMult, RetransmitMult               int
	DeadNodeReclaim, GossipToTheDead            time.Duration
}

// DefaultDeadNodeReclaim is the DeadNodeReclaimTime used when Timing does
// not set one. memberlist's own default (0) refuses a known name at a new
// address until the dead entry is reaped (GossipToTheDead, 30 s on LAN), so
// a node restarted on another address (DHCP, a rescheduled pod) stays out
// for that long. The clock starts only once the old entry is dead, which
// already took the suspicion timeout, so a short value adds little to a
// restart; 2 s (two LAN probe intervals, not Antrea's 10 ms) still gives a
// wrongly declared dead node the chance to refute before a duplicate-name
// impostor takes its name over.
const DefaultDeadNodeReclaim = 2 * time.Second

// LANFastConfig is the `lan-fast` profile, for directors on one LAN:
// memberlist's LAN timings with gossip and probes twice as often (a
// director LAN answers in well under 200 ms), gossip to 4 members a round
// instead of 3, and each new row sent more times. A holder sends a row
// RetransmitMult × ceil(log10(n+1)) times to random members, so a member
// misses it with probability about e^-limit per holder round: at 50
// members LAN's 8 leaves one member out of ~60 changes until the next
// push/pull (60 s at that size), 12 makes it about 1 in 3,000. Measured at
// 50 in-process members (docs/benchmarks.md): all changes delivered, p99
// 0.29 s for a health row and 0.47–0.55 s for a node summary, against LAN's
// 0.8 s; a SIGKILLed member dead everywhere in about 4.6 s against 9–10 s.
// The cost: twice LAN's idle traffic (about 160 B/s per member), and probes
// that a slow or lossy network fails more often.
func LANFastConfig() *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.RetransmitMult = 6
	mc.GossipNodes = 4
	mc.GossipInterval = 100 * time.Millisecond
	mc.ProbeInterval = 500 * time.Millisecond
	mc.ProbeTimeout = 200 * time.Millisecond
	return mc
}

// ProfileConfig is memberlist's configuration for a gossip profile ("" is
// lan), before the node's own settings.
//
// Compression is on for wan only. memberlist compresses every packet and
// every push/pull with LZW when EnableCompression is set (its default), and
// allocates a new 64 kB LZW table for each: with 20 idle members in
// namespaces that was a quarter of a member's CPU and a third of its
// garbage (CPU profile, BenchmarkRollout; docs/benchmarks.md), to save a
// fraction of packets that are a few hundred bytes on a LAN. A receiver
// decodes a compressed message whatever its own setting, so members of
// either setting gossip together.
func ProfileConfig(profile string) (*memberlist.Config, error) {
	var mc *memberlist.Config
	switch profile {
	case "", "lan":
		mc = memberlist.DefaultLANConfig()
	case "wan":
		mc = memberlist.DefaultWANConfig()
	case "local":
		mc = memberlist.DefaultLocalConfig()
	case "lan-fast":
		mc = LANFastConfig()
	default:
		return nil, fmt.Errorf("gossip: profile %q: want lan, lan-fast, wan or local", profile)
	}
	mc.EnableCompression = profile == "wan"
	return mc, nil
}

// MemberlistConfig builds memberlist's configuration from o. Errors name
// the field at fault; key material never appears in them.
func MemberlistConfig(o Options) (*memberlist.Config, error) {
	mc, err := ProfileConfig(o.Profile)
	if err != nil {
		return nil, err
	}
	if o.Name != "" {
		mc.Name = o.Name
	}
	if o.Bind.IsValid() {
		mc.BindAddr, mc.BindPort = o.Bind.Addr().String(), int(o.Bind.Port())
	}
	if o.Advertise.IsValid() {
		mc.AdvertiseAddr, mc.AdvertisePort = o.Advertise.Addr().String(), int(o.Advertise.Port())
	}
	if len(o.Cluster) > memberlist.LabelMaxSize {
		return nil, fmt.Errorf("gossip: cluster name is %d bytes, over %d", len(o.Cluster), memberlist.LabelMaxSize)
	}
	mc.Label = o.Cluster
	if len(o.Keys) > 0 {
		for i, k := range o.Keys {
			if err := memberlist.ValidateKey(k); err != nil {
				return nil, fmt.Errorf("gossip: key %d of the keyring: %w", i+1, err)
			}
		}
		kr, err := memberlist.NewKeyring(o.Keys[1:], o.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("gossip: keyring: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	if err := o.Timing.apply(mc); err != nil {
		return nil, err
	}
	lg := o.Log
	if lg == nil {
		lg = slog.Default()
	}
	mc.Logger = log.New(slogWriter{lg}, "", 0)
	return mc, nil
}

// override sets *dst to v unless v is 0 (the profile's value stays).
func override[T time.Duration | int](name string, v T, dst *T) error {
	if v < 0 {
		return fmt.Errorf("gossip: timing %s is %v: want a positive value or 0 for the profile's", name, v)
	}
	if v > 0 {
		*dst = v
	}
	return nil
}

func (t Timing) apply(mc *memberlist.Config) error {
	err := errors.Join(
		override("probe_interval", t.ProbeInterval, &mc.ProbeInterval),
		override("probe_timeout", t.ProbeTimeout, &mc.ProbeTimeout),
		override("gossip_interval", t.GossipInterval, &mc.GossipInterval),
		override("push_pull_interval", t.PushPullInterval, &mc.PushPullInterval),
		override("dead_node_reclaim", t.DeadNodeReclaim, &mc.DeadNodeReclaimTime),
		override("gossip_to_the_dead", t.GossipToTheDead, &mc.GossipToTheDeadTime),
		override("gossip_nodes", t.GossipNodes, &mc.GossipNodes),
		override("suspicion_mult", t.SuspicionMult, &mc.SuspicionMult),
		override("retransmit_mult", t.RetransmitMult, &mc.RetransmitMult),
	)
	if err != nil {
		return err
	}
	if t.DeadNodeReclaim == 0 {
		mc.DeadNodeReclaimTime = DefaultDeadNodeReclaim
	}
	if mc.ProbeTimeout >= mc.ProbeInterval {
		return fmt.Errorf("gossip: timing probe_timeout %v must be shorter than probe_interval %v", mc.ProbeTimeout, mc.ProbeInterval)
	}
	return nil
}

// slogWriter receives memberlist's log lines ("[WARN] memberlist: ...",
// written through a log.Logger) and logs each at the matching slog level.
type slogWriter struct{ log *slog.Logger }

var logLevels = []struct {
	tag   []byte
	level slog.Level
}{
	{[]byte("[DEBUG]"), slog.LevelDebug},
	{[]byte("[INFO]"), slog.LevelInfo},
	{[]byte("[WARN]"), slog.LevelWarn},
	{[]byte("[ERR]"), slog.LevelError},
	{[]byte("[ERROR]"), slog.LevelError},
}

func (w slogWriter) Write(p []byte) (int, error) {
	level, msg := parseLogLine(p)
	w.log.Log(context.Background(), level, msg, "component", "memberlist")
	return len(p), nil
}

// parseLogLine splits a memberlist log line into its level and message; a
// line without a known tag is logged at Info.
func parseLogLine(p []byte) (slog.Level, string) {
	p = bytes.TrimSpace(p)
	level := slog.LevelInfo
	for _, l := range logLevels {
		if rest, ok := bytes.CutPrefix(p, l.tag); ok {
			level, p = l.level, bytes.TrimSpace(rest)
			break
		}
	}
	p, _ = bytes.CutPrefix(p, []byte("memberlist: "))
	return level, string(p)
}
