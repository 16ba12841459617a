// Command vigil is the vigil daemon and its operator CLI in one binary.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// defaultMemProfileRate is the runtime's heap-profile sampling rate,
// given back when telemetry.pprof serves profiles.
var defaultMemProfileRate = runtime.MemProfileRate

func main() {
	// Heap-profile sampling keeps a hash of allocation stacks (1.4 MB
	// reserved, touched as stacks are sampled) that only /debug/pprof
	// reads: off unless the daemon serves it (runDaemon) or GODEBUG
	// asks for a rate.
	if !strings.Contains(os.Getenv("GODEBUG"), "memprofilerate") {
		runtime.MemProfileRate = 0
	}
	err := newRootCmd().Execute()
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, ee.msg)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "vigil:", err)
	os.Exit(1)
}

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return fmt.Sprintf("exit %d: %s", e.code, e.msg) }
