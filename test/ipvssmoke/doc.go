// Package ipvssmoke holds smoke tests that run inside the test VM
// (vigil/test/vm), where the kernel has IPVS: they prove that moby/ipvs
// programs and dumps a real IPVS table and that network namespaces, veth
// pairs and per-namespace IPVS work there, before the lb package and the
// scenarios build on them. On any other machine they skip, unless
// VIGIL_IN_VM=1 says the kernel is the VM's (the harness sets it).
//
// Run them from the host with: VIGIL_NETNS=1 go test ./test/vm -run IPVSSmoke
package ipvssmoke
