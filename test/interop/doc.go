// Package interop runs mixed clusters of vigil and Debian's keepalived on real raw sockets in
// network namespaces (test/netlab) and checks that they agree on one master, hand the VIP over on a
// graceful stop (priority 0) and on node loss (link cut), preempt back, and that every VRRP packet
// vigil puts on the wire is valid VRRP as tshark (Wireshark's dissector) and an independent
// checksum computation in this package see it.
//
// The tests are root-only and gated by VIGIL_NETNS=1 (netlab.NewForTest); they need keepalived,
// tcpdump and tshark (test/deps.sh installs them):
//
//	VIGIL_NETNS=1 go test -count=1 -v ./test/interop/
//
// Lab prefixes: "vgio" and two digits, one per lab, so that a failed lab's kept directory is not
// removed by the next subtest's leftover cleanup. VIGIL_INTEROP_KEEP=1 keeps the directories of
// passing labs too.
package interop
