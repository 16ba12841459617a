package ipvssmoke

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// ipCmd is iproute2's ip, which the VM image installs at this path. It is
// called by full path because busybox sh prefers its own ip applet, which
// knows no netns.
const ipCmd = "/usr/sbin/ip"

// inVM skips unless the test runs in the test VM: these tests change the
// IPVS table and network namespaces of the kernel they run on.
func inVM(t *testing.T) {
	t.Helper()
	if os.Getenv("VIGIL_IN_VM") != "1" {
		t.Skip("runs inside the test VM only (VIGIL_IN_VM=1); from the host: VIGIL_NETNS=1 go test ./test/vm")
	}
}

// run executes a command and fails the test with its output on error.
func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// addNetns creates a named network namespace and removes it when the test
// ends.
func addNetns(t *testing.T, name string) {
	t.Helper()
	run(t, ipCmd, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command(ipCmd, "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
}

// procIPVS is one parsed /proc/net/ip_vs: per service "PROTO HEXADDR:HEXPORT",
// its scheduler and its destinations as "HEXADDR:HEXPORT FORWARD WEIGHT".
type procService struct {
	sched string
	dests []string
}

func parseProcIPVS(t *testing.T, text string) map[string]*procService {
	t.Helper()
	svcs := map[string]*procService{}
	var cur *procService
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && (f[0] == "TCP" || f[0] == "UDP" || f[0] == "SCTP"):
			cur = &procService{sched: f[2]}
			svcs[f[0]+" "+f[1]] = cur
		case len(f) >= 4 && f[0] == "->" && cur != nil:
			cur.dests = append(cur.dests, f[1]+" "+f[2]+" "+f[3])
		}
	}
	// The kernel lists destinations newest first; sort for a stable compare.
	for _, s := range svcs {
		slices.Sort(s.dests)
	}
	return svcs
}
