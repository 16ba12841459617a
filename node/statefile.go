package node

import "vigil/internal/statefile"

// StateDir holds what vigil must remember across a restart but not a
// reboot.
const StateDir = statefile.Dir

// stateFile and writeStateFile are internal/statefile's, which the load
// balancer (lb/balancer) shares.
func stateFile(kind string) string { return statefile.Path(kind) }

func writeStateFile(path string, data []byte) error { return statefile.Write(path, data) }
