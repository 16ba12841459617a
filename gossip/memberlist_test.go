package gossip

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// MemberlistConfig maps vigil's gossip options onto memberlist's profiles
// (config.go DefaultLANConfig/WANConfig/LocalConfig) and overrides (issue
// 13: bind, advertise, cluster label, keyring, profile with timing
// overrides; DeadNodeReclaimTime so a restarted node rejoins at a new
// address).
func TestMemberlistConfig(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16)
	tests := []struct {
		name  string
		o     Options
		check func(*memberlist.Config) bool
	}{
		{"lan is the default profile", Options{}, func(c *memberlist.Config) bool {
			l := memberlist.DefaultLANConfig()
			return c.ProbeInterval == l.ProbeInterval && c.SuspicionMult == l.SuspicionMult && c.BindPort == 7946 && c.TCPTimeout == l.TCPTimeout
		}},
		{"wan profile", Options{Profile: "wan"}, func(c *memberlist.Config) bool {
			return c.ProbeInterval == memberlist.DefaultWANConfig().ProbeInterval && c.TCPTimeout == memberlist.DefaultWANConfig().TCPTimeout
		}},
		{"local profile", Options{Profile: "local"}, func(c *memberlist.Config) bool {
			return c.GossipInterval == memberlist.DefaultLocalConfig().GossipInterval && c.SuspicionMult == 3
		}},
		{"dead node reclaim defaults to non-zero", Options{}, func(c *memberlist.Config) bool {
			return c.DeadNodeReclaimTime == DefaultDeadNodeReclaim && DefaultDeadNodeReclaim > 0
		}},
		{"dead node reclaim override", Options{Timing: Timing{DeadNodeReclaim: time.Minute}}, func(c *memberlist.Config) bool {
			return c.DeadNodeReclaimTime == time.Minute
		}},
		{"name, bind and advertise", Options{Name: "lb1", Bind: netip.MustParseAddrPort("192.0.2.10:7000"), Advertise: netip.MustParseAddrPort("[2001:db8::1]:7001")},
			func(c *memberlist.Config) bool {
				return c.Name == "lb1" && c.BindAddr == "192.0.2.10" && c.BindPort == 7000 && c.AdvertiseAddr == "2001:db8::1" && c.AdvertisePort == 7001
			}},
		{"no advertise leaves memberlist's choice", Options{}, func(c *memberlist.Config) bool {
			return c.AdvertiseAddr == "" && c.AdvertisePort == memberlist.DefaultLANConfig().AdvertisePort
		}},
		{"cluster is the label", Options{Cluster: "prod"}, func(c *memberlist.Config) bool { return c.Label == "prod" }},
		{"no compression on a LAN", Options{}, func(c *memberlist.Config) bool { return !c.EnableCompression }},
		{"no compression with lan-fast or local", Options{Profile: "lan-fast"}, func(c *memberlist.Config) bool {
			l, _ := ProfileConfig("local")
			return !c.EnableCompression && !l.EnableCompression
		}},
		{"compression over a WAN", Options{Profile: "wan"}, func(c *memberlist.Config) bool { return c.EnableCompression }},
		{"no keys: no encryption", Options{}, func(c *memberlist.Config) bool { return c.Keyring == nil && !c.EncryptionEnabled() }},
		{"keys: first is primary, verify both ways", Options{Keys: [][]byte{k1, k2}}, func(c *memberlist.Config) bool {
			keys := c.Keyring.GetKeys()
			return c.EncryptionEnabled() && len(keys) == 2 && bytes.Equal(keys[0], k1) && c.GossipVerifyIncoming && c.GossipVerifyOutgoing
		}},
		{"timing overrides, zero keeps the profile's", Options{Timing: Timing{ProbeInterval: 2 * time.Second, GossipNodes: 5, RetransmitMult: 6, GossipToTheDead: time.Minute}},
			func(c *memberlist.Config) bool {
				l := memberlist.DefaultLANConfig()
				return c.ProbeInterval == 2*time.Second && c.GossipNodes == 5 && c.RetransmitMult == 6 && c.GossipToTheDeadTime == time.Minute &&
					c.ProbeTimeout == l.ProbeTimeout && c.PushPullInterval == l.PushPullInterval && c.SuspicionMult == l.SuspicionMult
			}},
		{"memberlist logs through slog", Options{}, func(c *memberlist.Config) bool { return c.Logger != nil && c.LogOutput == nil }},
	}
	for _, tt := range tests {
		c, err := MemberlistConfig(tt.o)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !tt.check(c) {
			t.Errorf("%s: unexpected config %+v", tt.name, c)
		}
	}

	bad := []struct {
		name, want string
		o          Options
	}{
		{"unknown profile", "profile", Options{Profile: "lan2"}},
		{"key of 20 bytes", "key 2", Options{Keys: [][]byte{k1, make([]byte, 20)}}},
		{"negative timing", "probe_interval", Options{Timing: Timing{ProbeInterval: -time.Second}}},
		{"negative count", "suspicion_mult", Options{Timing: Timing{SuspicionMult: -1}}},
		{"probe timeout not under the interval", "probe_timeout", Options{Timing: Timing{ProbeTimeout: 2 * time.Second}}},
		{"label too long", "cluster name", Options{Cluster: strings.Repeat("x", 256)}},
	}
	for _, tt := range bad {
		_, err := MemberlistConfig(tt.o)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one naming %q", tt.name, err, tt.want)
		}
		if err != nil && (strings.Contains(err.Error(), "\x01") || strings.Contains(err.Error(), "AQEB")) {
			t.Errorf("%s: error shows key material: %v", tt.name, err)
		}
	}
}

// memberlist's "[LEVEL] memberlist: text" lines become slog records at
// the matching level.
func TestParseLogLine(t *testing.T) {
	tests := []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:7947\n", slog.LevelDebug, "Stream connection from=127.0.0.1:7947"},
		{"[INFO] memberlist: Suspect n1 has failed, no acks received", slog.LevelInfo, "Suspect n1 has failed, no acks received"},
		{"[WARN] memberlist: Refuting a dead message (from: n2)", slog.LevelWarn, "Refuting a dead message (from: n2)"},
		{"[ERR] memberlist: Push/Pull with n2 failed: EOF", slog.LevelError, "Push/Pull with n2 failed: EOF"},
		{"[ERR] Failed to shutdown transport: x", slog.LevelError, "Failed to shutdown transport: x"},
		{"no tag at all", slog.LevelInfo, "no tag at all"},
	}
	for _, tt := range tests {
		level, msg := parseLogLine([]byte(tt.line))
		if level != tt.level || msg != tt.msg {
			t.Errorf("parseLogLine(%q) = %v %q, want %v %q", tt.line, level, msg, tt.level, tt.msg)
		}
	}
	var buf bytes.Buffer
	lg := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	mc, err := MemberlistConfig(Options{Log: lg})
	if err != nil {
		t.Fatal(err)
	}
	mc.Logger.Printf("[DEBUG] memberlist: hidden")
	mc.Logger.Printf("[WARN] memberlist: shown %d", 1)
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, "level=WARN") || !strings.Contains(out, `msg="shown 1"`) {
		t.Errorf("slog output %q", out)
	}
}

// Rows lists a kind's live rows of every origin; Withdraw removes one
// fleet-wide; Stats counts rows sent and received by kind.
func TestRowsWithdrawStats(t *testing.T) {
	nw := newMemNet()
	a := newNode(t, nw, "a", nil, nil).run(t)
	b := newNode(t, nw, "b", nil, func(c *ClusterConfig) { c.Join = []string{a.tr.addr} }).run(t)
	waitMembers(t, "joined", 2, a, b)
	if a.c.Self() != "a" {
		t.Errorf("Self() = %q", a.c.Self())
	}
	for _, p := range []struct {
		c   *Cluster
		key string
	}{{a.c, "k2"}, {a.c, "k1"}, {b.c, "k1"}} {
		if err := p.c.Publish(KindHealth, p.key, []byte("up")); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.c.Publish(KindNode, "summary", []byte("s")); err != nil {
		t.Fatal(err)
	}
	ids := func(c *Cluster) string {
		var s []string
		for _, r := range c.Rows(KindHealth) {
			s = append(s, r.Origin+"/"+r.Key)
		}
		return strings.Join(s, " ")
	}
	eventually(t, "all health rows on b", func() bool { return ids(b.c) == "a/k1 a/k2 b/k1" })
	if err := a.c.Withdraw(KindHealth, "k2"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "withdrawal on b", func() bool { return ids(b.c) == "a/k1 b/k1" })
	if err := a.c.Withdraw("nosuchkind", "k"); err == nil {
		t.Error("Withdraw of an unknown kind succeeded")
	}
	sa, sb := a.c.Stats(), b.c.Stats()
	if sa.Sent[KindHealth].Msgs < 3 || sa.Sent[KindHealth].Bytes == 0 || sa.Sent[KindNode].Msgs == 0 {
		t.Errorf("a sent %+v", sa.Sent)
	}
	if sb.Received[KindHealth].Msgs < 3 || sb.Received[KindNode].Msgs == 0 || sb.Received[KindHealth].Bytes == 0 {
		t.Errorf("b received %+v", sb.Received)
	}
	if sa.Members[StateAlive] != 2 {
		t.Errorf("a's members by state %v", sa.Members)
	}
}
