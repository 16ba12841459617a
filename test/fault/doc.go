// Package fault is vigil's fault suite: network-namespace scenarios that break a running cluster
// (a master's link cut or flapping, VRRP lost one way or at random, a master stalled with SIGSTOP
// or killed and restarted, reloads during a failover, floods of invalid adverts) and then hold it,
// from the bridge capture and from the nodes' state, to the invariants of issue 11:
//
//   - exactly one master per virtual router within 2 × Master_Down_Interval of the heal (only one
//     source advertising at a non-zero priority on the wire, and one node in MASTER by state);
//   - no virtual address on a node that is not master (read from the interfaces);
//   - no stray gratuitous ARP or unsolicited neighbour advertisement for a virtual address from a
//     node after it released it.
//
// Checker does the judging and reports the figures (how long after the heal one master remained,
// how many announcements were seen, which were stray). The scenarios run vigil and, where the same
// test applies, Debian's keepalived beside it, and log one outcome line per fault for the README.
//
// Everything that needs root is gated by VIGIL_NETNS=1 (netlab.Require); run it as
//
//	make build && VIGIL_NETNS=1 VIGIL_LAB_TAG=f VIGIL_BIN=$PWD/bin/vigil go test -count=1 -v ./test/fault/
//
// nftables (nft) drops VRRP in the loss scenarios; test/deps.sh installs it.
package fault
