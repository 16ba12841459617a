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
// how long the group went without an advertiser, how many announcements were seen, which were
// stray). The scenarios run vigil and Debian's keepalived 2.2.7 beside it with the same
// configuration and announcement bursts; a broken invariant fails the test for vigil and is
// recorded for keepalived. After the run an outcome table (fault → vigil, keepalived) is printed
// for the README, and TestInvalidAdvertFlood logs its own class → outcome table.
//
// The faults: the master's link cut and restored; a link flap storm (100 ms down/up for 10 s);
// VRRP dropped one way by nftables (a deaf backup, a mute master); 20 % random loss (nftables
// numgen); a master, and a backup, stalled with SIGSTOP past Master_Down_Interval; SIGKILL and
// restart (also with a VIP removed from the configuration meanwhile); 20 reloads with priority
// swaps during a failover; and floods of twelve classes of invalid advert and one of valid
// lower-priority adverts from an attacker with spoofed sources.
//
// The daemons and the test process run at nice -10: on a small machine shared with other work,
// starved daemons miss advert deadlines whatever their code, and the suite would measure the
// machine.
//
// Everything that needs root is gated by VIGIL_NETNS=1 (netlab.Require); run it as
//
//	make build && VIGIL_NETNS=1 VIGIL_LAB_TAG=f VIGIL_BIN=$PWD/bin/vigil go test -count=1 -v ./test/fault/
//
// nftables (nft) drops VRRP in the loss scenarios; test/deps.sh installs it.
package fault
