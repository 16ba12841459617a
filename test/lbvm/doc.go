// Package lbvm tests the lb package and its applier lb/ipvsnet on a real
// kernel's IPVS, inside the test VM (vigil/test/vm): reconcile from cold,
// minimal changes, foreign services left alone, every scheduler the kernel
// has, all forwarding methods, persistence, one-packet scheduling,
// thresholds, IPv6 and firewall marks, and Render against the real ipvsadm
// byte for byte, and the connection synchronisation daemons (start, read
// back, idempotent start, restart on change, stop, and a connection
// through one director's NAT service reaching the backup's table over a
// netlab segment). Each test works in its own network namespace, so each
// starts from an empty table. On any other machine they skip, unless
// VIGIL_IN_VM=1 says the kernel is the VM's (the harness sets it).
//
// Run them from the host with: VIGIL_NETNS=1 go test ./test/vm -run LB
//
// The reconcile benchmark (TestBenchReconcile) runs only with
// VIGIL_LB_BENCH=1; from the host: VIGIL_NETNS=1 VIGIL_BENCH=1 go test
// ./test/vm -run LBBench -v.
package lbvm
