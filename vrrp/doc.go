// Package vrrp is vigil's pure VRRP core: the VRRPv2 (RFC 3768) and VRRPv3
// (RFC 5798, RFC 9568) packet codec with both IPv4 checksum readings, the
// receive checks of §7.1 with one Reason per failure, the timer arithmetic,
// and the Instance state machine of §6.4.
//
// Nothing here does I/O, starts goroutines or reads the clock: inputs carry
// the time and return Actions that the driver (package vrrp/router, its
// sockets in vrrp/vrrpnet) carries out in order. This is the etcd-io/raft
// shape, and it is what lets the tests check every RFC rule
// deterministically.
package vrrp
