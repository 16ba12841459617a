// Package fleet tests the gossip fleet (issue 13) with real vigil processes in network
// namespaces: membership, refusals, key rotation, split-brain arbitration, and a keepalived peer
// in a virtual router shared with vigil nodes. Root only: VIGIL_NETNS=1.
package fleet
