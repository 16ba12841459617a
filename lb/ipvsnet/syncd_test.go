package ipvsnet

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
)

// nestedDaemon unpacks encodeDaemon's output: exactly one top-level
// IPVS_CMD_ATTR_DAEMON, marked nested, and its attributes by type.
func nestedDaemon(t *testing.T, b []byte) map[uint16][]byte {
	t.Helper()
	top, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(top) != 1 || top[0].Type&^netlink.Nested != cmdAttrDaemon || top[0].Type&netlink.Nested == 0 {
		t.Fatalf("top-level attributes %+v, want one nested type %d", top, cmdAttrDaemon)
	}
	inner, err := netlink.UnmarshalAttributes(top[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	m := map[uint16][]byte{}
	for _, a := range inner {
		if _, dup := m[a.Type]; dup {
			t.Fatalf("attribute %d twice", a.Type)
		}
		m[a.Type] = a.Data
	}
	return m
}

func u16(v uint16) []byte { return binary.NativeEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// TestEncodeDaemon pins the wire form the kernel parses: u32 state and
// sync id, a NUL-terminated interface name, the IPv4 group in network
// order, port and max length as host-order u16, TTL as u8; unset optional
// settings are left out so the kernel applies its defaults.
func TestEncodeDaemon(t *testing.T) {
	for _, tc := range []struct {
		name      string
		d         SyncDaemon
		stateOnly bool
		want      map[uint16][]byte
	}{
		{"full ipv4", SyncDaemon{State: SyncMaster, Interface: "eth1", SyncID: 7, MaxLen: 1400,
			Group: netip.MustParseAddr("239.1.2.3"), Port: 9000, TTL: 3}, false,
			map[uint16][]byte{
				daemonAttrState: u32(1), daemonAttrMcastIfn: []byte("eth1\x00"), daemonAttrSyncID: u32(7),
				daemonAttrSyncMaxLen: u16(1400), daemonAttrMcastGroup: {239, 1, 2, 3},
				daemonAttrMcastPort: u16(9000), daemonAttrMcastTTL: {3},
			}},
		{"defaults", SyncDaemon{State: SyncBackup, Interface: "bond0", SyncID: 0}, false,
			map[uint16][]byte{daemonAttrState: u32(2), daemonAttrMcastIfn: []byte("bond0\x00"), daemonAttrSyncID: u32(0)}},
		{"ipv6 group", SyncDaemon{State: SyncBackup, Interface: "e", SyncID: 255, Group: netip.MustParseAddr("ff02::81")}, false,
			map[uint16][]byte{daemonAttrState: u32(2), daemonAttrMcastIfn: []byte("e\x00"), daemonAttrSyncID: u32(255),
				daemonAttrMcastGroup6: netip.MustParseAddr("ff02::81").AsSlice()}},
		{"v4-mapped group goes as ipv4", SyncDaemon{State: SyncMaster, Interface: "e", Group: netip.MustParseAddr("::ffff:224.0.0.81")}, false,
			map[uint16][]byte{daemonAttrState: u32(1), daemonAttrMcastIfn: []byte("e\x00"), daemonAttrSyncID: u32(0),
				daemonAttrMcastGroup: {224, 0, 0, 81}}},
		{"stop carries the state only", SyncDaemon{State: SyncBackup, Interface: "eth1", SyncID: 9, Port: 1}, true,
			map[uint16][]byte{daemonAttrState: u32(2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := nestedDaemon(t, encodeDaemon(tc.d, tc.stateOnly))
			if len(got) != len(tc.want) {
				t.Errorf("attributes %v, want %v", got, tc.want)
			}
			for typ, w := range tc.want {
				if !bytes.Equal(got[typ], w) {
					t.Errorf("attribute %d = %x, want %x", typ, got[typ], w)
				}
			}
		})
	}
}

// kernelReply builds a GET_DAEMON dump message as the kernel fills it.
func kernelReply(t *testing.T, fill func(n *netlink.AttributeEncoder)) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	ae.Nested(cmdAttrDaemon, func(n *netlink.AttributeEncoder) error { fill(n); return nil })
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeDaemon(t *testing.T) {
	b := kernelReply(t, func(n *netlink.AttributeEncoder) {
		n.Uint32(daemonAttrState, 2)
		n.String(daemonAttrMcastIfn, "eth0")
		n.Uint32(daemonAttrSyncID, 42)
		n.Uint16(daemonAttrSyncMaxLen, 1472)
		n.Uint16(daemonAttrMcastPort, 8848)
		n.Uint8(daemonAttrMcastTTL, 1)
		n.Bytes(daemonAttrMcastGroup, []byte{224, 0, 0, 81})
		n.Uint32(99, 1) // an attribute from a newer kernel is ignored
	})
	got, err := decodeDaemon(b)
	if err != nil {
		t.Fatal(err)
	}
	want := SyncDaemon{State: SyncBackup, Interface: "eth0", SyncID: 42, MaxLen: 1472, Group: DefaultSyncGroup, Port: 8848, TTL: 1}
	if got != want {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}

	// What encodeDaemon writes, decodeDaemon reads (the IPv6 group too).
	d := SyncDaemon{State: SyncMaster, Interface: "eth2", SyncID: 3, MaxLen: 1000, Group: netip.MustParseAddr("ff05::1:3"), Port: 1234, TTL: 4}
	if rt, err := decodeDaemon(encodeDaemon(d, false)); err != nil || rt != d {
		t.Fatalf("round trip = %+v, %v; want %+v", rt, err, d)
	}
}

func TestDecodeDaemonErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"no daemon attribute", func() []byte {
			b, _ := netlink.MarshalAttributes([]netlink.Attribute{{Type: 1, Data: u32(1)}})
			return b
		}(), "without IPVS_CMD_ATTR_DAEMON"},
		{"no state", kernelReply(t, func(n *netlink.AttributeEncoder) { n.String(daemonAttrMcastIfn, "eth0") }), "state 0"},
		{"sync id above 8 bits", kernelReply(t, func(n *netlink.AttributeEncoder) {
			n.Uint32(daemonAttrState, 1)
			n.Uint32(daemonAttrSyncID, 256)
		}), "sync id 256"},
		{"short group", kernelReply(t, func(n *netlink.AttributeEncoder) {
			n.Uint32(daemonAttrState, 1)
			n.Bytes(daemonAttrMcastGroup, []byte{224, 0, 0})
		}), "group of 3 bytes"},
		{"truncated", []byte{8, 0, 3}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeDaemon(tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decodeDaemon = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestSatisfiedBy is the idempotence rule StartSyncDaemon applies to what
// the kernel reports: defaults left out equal defaults spelled out, a max
// length left to the kernel accepts the one it chose, any other
// difference means a restart.
func TestSatisfiedBy(t *testing.T) {
	asked := SyncDaemon{State: SyncMaster, Interface: "eth0", SyncID: 1}
	running := SyncDaemon{State: SyncMaster, Interface: "eth0", SyncID: 1, MaxLen: 1472,
		Group: netip.MustParseAddr("224.0.0.81"), Port: 8848, TTL: 1}
	if !asked.satisfiedBy(running) {
		t.Errorf("defaults not satisfied by the kernel's report of them")
	}
	explicit := running
	if !explicit.satisfiedBy(running) {
		t.Errorf("identical settings not satisfied")
	}
	for name, change := range map[string]func(*SyncDaemon){
		"state":     func(d *SyncDaemon) { d.State = SyncBackup },
		"interface": func(d *SyncDaemon) { d.Interface = "eth1" },
		"sync id":   func(d *SyncDaemon) { d.SyncID = 2 },
		"max len":   func(d *SyncDaemon) { d.MaxLen = 1000 },
		"group":     func(d *SyncDaemon) { d.Group = netip.MustParseAddr("239.0.0.1") },
		"port":      func(d *SyncDaemon) { d.Port = 8849 },
		"ttl":       func(d *SyncDaemon) { d.TTL = 2 },
	} {
		d := explicit
		change(&d)
		if d.satisfiedBy(running) {
			t.Errorf("a different %s is satisfied by %s", name, running)
		}
	}
}

func TestSyncDaemonValidate(t *testing.T) {
	ok := SyncDaemon{State: SyncBackup, Interface: "eth0"}
	if err := ok.validate(); err != nil {
		t.Fatalf("valid daemon: %v", err)
	}
	for name, d := range map[string]SyncDaemon{
		"no state":           {Interface: "eth0"},
		"both states":        {State: 3, Interface: "eth0"},
		"no interface":       {State: SyncMaster},
		"interface too long": {State: SyncMaster, Interface: "abcdefghijklmnop"},
		"unicast group":      {State: SyncMaster, Interface: "eth0", Group: netip.MustParseAddr("192.0.2.1")},
		"unicast ipv6 group": {State: SyncMaster, Interface: "eth0", Group: netip.MustParseAddr("2001:db8::1")},
	} {
		if err := d.validate(); err == nil {
			t.Errorf("%s: %+v accepted", name, d)
		}
	}
	if err := (SyncDaemon{State: SyncMaster, Interface: strings.Repeat("x", 15)}).validate(); err != nil {
		t.Errorf("15-byte interface name refused: %v", err)
	}
}

func TestSyncDaemonString(t *testing.T) {
	for d, want := range map[SyncDaemon]string{
		{State: SyncBackup, Interface: "eth0", SyncID: 3}:                                                                 "backup on eth0 syncid 3",
		{State: SyncMaster, Interface: "eth1", Group: netip.MustParseAddr("239.0.0.1"), Port: 9000, TTL: 2, MaxLen: 1400}: "master on eth1 syncid 0 group 239.0.0.1 port 9000 ttl 2 maxlen 1400",
	} {
		if got := d.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}
