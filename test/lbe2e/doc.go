// Package lbe2e holds the load-balancing scenarios that need a kernel with
// IPVS: a client, two directors running vigil and real servers in network
// namespaces, with real traffic through the VIP (NAT and DR), real-server
// failure and recovery, quorum and the sorry server, a reload that touches
// one real server, and a director failover. They run inside the test VM
// (vigil/test/vm runs them from the host); anywhere else they skip.
package lbe2e
