// Package netlab builds small layer-2 labs out of Linux network namespaces for vigil's end-to-end
// tests, keepalived interop tests, benchmarks and the `vigil demo` command.
//
// A Lab is one Ethernet segment: a bridge "br0" in its own "switch" namespace ("<prefix>sw"), and N
// nodes, each a namespace ("<prefix><name>") whose "eth0" (or the name NodeConfig.Dev gives) is a
// veth whose other end ("<name>") is a port of the bridge. Nothing is created in the root
// namespace. The bridge runs without STP, with forward delay 0 and multicast snooping off, so VRRP
// multicast floods to every node; IPv6 is off in the switch namespace so the switch itself adds no
// traffic to the segment.
//
// Typical use in a root-only test:
//
//	lab := netlab.NewForTest(t, "vge2e")                 // skips unless VIGIL_NETNS=1
//	n1, err := lab.AddNode("n1", netip.MustParsePrefix("192.0.2.11/24"))
//	cap, err := lab.StartCapture(netlab.FilterVRRP)
//	p, err := n1.Start(os.Getenv("VIGIL_BIN"), "run", "--config", cfg)
//	...
//	frames, err := cap.Stop()
//	adverts := netlab.VRRPFrames(frames)
//
// A test lab (NewForTest) starts every `vigil run` under the shipped systemd unit's capability
// bounding set, ambient set and no_new_privs (read from deploy/systemd/vigil.service, or
// $VIGIL_UNIT, and applied with setpriv), so the unit and the features it must allow cannot
// drift apart unnoticed; StartOptions.FullPrivileges opts out.
//
// Everything a lab creates is removed by Lab.Close (idempotent), also when processes refuse to die;
// Cleanup removes what a crashed run with the same prefix left behind. Prefixes must therefore be
// unique among labs that may exist at the same time (one per test package is the convention), and a
// prefix must not be the beginning of another package's prefix.
//
// Addresses are restricted to the documentation ranges (192.0.2.0/24, 198.51.100.0/24,
// 203.0.113.0/24, 2001:db8::/32) and IPv6 link-local addresses.
//
// ReadPcap and VRRPFrames need no privileges; everything else needs root and iproute2 (tcpdump for
// captures).
package netlab
