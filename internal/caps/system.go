package caps

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"vigil/config"
)

// Missing returns a Warning for every capability the features of cfg need
// that this process does not have, or one Warning with Err when its sets
// cannot be read. Needs this host meets otherwise (a low port allowed to
// everyone, unprivileged ping) are left out.
func Missing(cfg *config.Config) []Warning {
	eff, bnd, err := Current()
	if err != nil {
		return []Warning{{Err: err}}
	}
	return Check(readSystem().filter(Needs(cfg)), eff, bnd)
}

// Current returns the effective and bounding capability sets of this
// process (of the thread reading them: vigil never changes them per
// thread).
func Current() (eff, bnd Set, err error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0, err
	}
	return parseStatus(b)
}

// parseStatus reads CapEff and CapBnd from /proc/PID/status.
func parseStatus(b []byte) (eff, bnd Set, err error) {
	var seenEff, seenBnd bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "CapEff" && k != "CapBnd") {
			continue
		}
		n, perr := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if perr != nil {
			return 0, 0, fmt.Errorf("/proc/self/status: %s: %q: %w", k, strings.TrimSpace(v), perr)
		}
		if k == "CapEff" {
			eff, seenEff = Set(n), true
		} else {
			bnd, seenBnd = Set(n), true
		}
	}
	if !seenEff || !seenBnd {
		return 0, 0, fmt.Errorf("/proc/self/status: no CapEff and CapBnd lines")
	}
	return eff, bnd, nil
}

// system is what lets this host do without a capability.
type system struct {
	// unprivPort is net.ipv4.ip_unprivileged_port_start: ports from it on
	// need no CAP_NET_BIND_SERVICE.
	unprivPort int
	// ping: net.ipv4.ping_group_range includes one of the process's
	// groups, so ping checks need no raw socket.
	ping bool
}

func readSystem() system {
	s := system{unprivPort: 1024}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			s.unprivPort = n
		}
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ping_group_range"); err == nil {
		groups, _ := os.Getgroups()
		s.ping = pingAllowed(string(b), append(groups, os.Getegid()))
	}
	return s
}

// pingAllowed reads ping_group_range ("LOW\tHIGH"; the default "1 0" is
// empty) and reports whether one of groups is in it.
func pingAllowed(rng string, groups []int) bool {
	f := strings.Fields(rng)
	if len(f) != 2 {
		return false
	}
	lo, err1 := strconv.ParseInt(f[0], 10, 64)
	hi, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	for _, g := range groups {
		if int64(g) >= lo && int64(g) <= hi {
			return true
		}
	}
	return false
}

// filter drops the needs the host meets without a capability.
func (s system) filter(needs []Need) []Need {
	var out []Need
	for _, n := range needs {
		switch {
		case n.Cap == NetBindService && int(n.Port) >= s.unprivPort:
		case n.Cap == NetRaw && n.Ping && s.ping:
		default:
			out = append(out, n)
		}
	}
	return out
}
