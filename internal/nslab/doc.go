// Package nslab builds small layer-2 labs out of Linux network namespaces: a bridge, nodes on it,
// processes in the nodes and captures of the segment.
//
// A Lab is one Ethernet segment: a bridge "br0" in its own "switch" namespace ("<prefix>sw"), and N
// nodes, each a namespace ("<prefix><name>") whose "eth0" (or the name NodeConfig.Dev gives) is a
// veth whose other end ("<name>") is a port of the bridge. Nothing is created in the root
// namespace. The bridge runs without STP, with forward delay 0 and multicast snooping off, so VRRP
// multicast floods to every node; IPv6 is off in the switch namespace so the switch itself adds no
// traffic to the segment.
//
//	lab, err := nslab.New("vdemo")
//	defer lab.Close()
//	n1, err := lab.AddNode("n1", netip.MustParsePrefix("192.0.2.11/24"))
//	cap, err := lab.StartCapture(nslab.FilterVRRP)
//	p, err := n1.Start(vigil, "run", "--config", cfg)
//	...
//	frames, err := cap.Stop()
//	adverts := nslab.VRRPFrames(frames)
//
// Everything a lab creates is removed by Lab.Close (idempotent), also when processes refuse to die;
// Cleanup removes what a crashed run with the same prefix left behind. Prefixes must therefore be
// unique among labs that may exist at the same time, and a prefix must not be the beginning of
// another lab's prefix; Tagged keeps two checkouts' labs apart.
//
// Addresses are restricted to the documentation ranges (192.0.2.0/24, 198.51.100.0/24,
// 203.0.113.0/24, 2001:db8::/32) and IPv6 link-local addresses.
//
// `vigil demo` and the tests (through test/netlab, which adds the test gates and the systemd
// unit's privileges) use it. ReadPcap and VRRPFrames need no privileges; everything else needs
// root and iproute2 (tcpdump for captures).
package nslab
