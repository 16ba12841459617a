package netlab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// EnvUnit names the systemd unit whose privileges test labs give the vigil daemons they start
// (default: deploy/systemd/vigil.service of the module the tests run in).
const EnvUnit = "VIGIL_UNIT"

// unitPath is the shipped unit, relative to the module root.
const unitPath = "deploy/systemd/vigil.service"

// UnitPrivileges reads the privileges of $VIGIL_UNIT, or of deploy/systemd/vigil.service found
// by walking up from the working directory to the module root (go.mod).
func UnitPrivileges() (*Privileges, error) {
	path := os.Getenv(EnvUnit)
	if path == "" {
		root, err := moduleRoot()
		if err != nil {
			return nil, fmt.Errorf("netlab: finding %s: %w (or set %s)", unitPath, err, EnvUnit)
		}
		path = filepath.Join(root, unitPath)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("netlab: unit privileges: %w", err)
	}
	defer f.Close()
	p, err := parseUnit(f)
	if err != nil {
		return nil, fmt.Errorf("netlab: unit %s: %w", path, err)
	}
	p.Unit = path
	return p, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

var capNameRE = regexp.MustCompile(`^CAP_[A-Z_]+$`)

// parseUnit reads the [Service] section's CapabilityBoundingSet=, AmbientCapabilities= and
// NoNewPrivileges= as systemd does: capability lines add up, an empty assignment resets the list.
// An inverted list ("~CAP_...") is refused rather than guessed at.
func parseUnit(r io.Reader) (*Privileges, error) {
	p := &Privileges{}
	var bounding, ambient []string
	var boundingSet bool
	section := ""
	sc := bufio.NewScanner(r)
	var line string
	for n := 1; sc.Scan(); n++ {
		part := sc.Text()
		if strings.HasSuffix(part, `\`) { // a continuation line
			line += strings.TrimSuffix(part, `\`) + " "
			continue
		}
		line += part
		l := strings.TrimSpace(line)
		line = ""
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
			continue
		case l[0] == '[':
			section = l
			continue
		case section != "[Service]":
			continue
		}
		key, val, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "CapabilityBoundingSet", "AmbientCapabilities":
			dst := &bounding
			if key == "AmbientCapabilities" {
				dst = &ambient
			} else {
				boundingSet = true
			}
			if val == "" {
				*dst = nil
				continue
			}
			if strings.HasPrefix(val, "~") {
				return nil, fmt.Errorf("line %d: %s=%s: inverted capability lists are not supported by the test harness", n, key, val)
			}
			for _, c := range strings.Fields(val) {
				if !capNameRE.MatchString(c) {
					return nil, fmt.Errorf("line %d: %s=: %q is not a capability name", n, key, c)
				}
				name := strings.ToLower(strings.TrimPrefix(c, "CAP_"))
				if !slices.Contains(*dst, name) {
					*dst = append(*dst, name)
				}
			}
		case "NoNewPrivileges":
			switch strings.ToLower(val) {
			case "yes", "true", "on", "1":
				p.NoNewPrivileges = true
			case "no", "false", "off", "0", "":
				p.NoNewPrivileges = false
			default:
				return nil, fmt.Errorf("line %d: NoNewPrivileges=%s: not a boolean", n, val)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !boundingSet {
		return nil, errors.New("no CapabilityBoundingSet= in [Service]: the daemon would keep every capability")
	}
	for _, a := range ambient {
		if !slices.Contains(bounding, a) {
			return nil, fmt.Errorf("AmbientCapabilities= has cap_%s, which CapabilityBoundingSet= lacks", a)
		}
	}
	slices.Sort(bounding)
	slices.Sort(ambient)
	p.Bounding, p.Ambient = bounding, ambient
	return p, nil
}

// CapMask is caps as /proc/PID/status prints a set (CapBnd, CapEff...).
func CapMask(caps []string) (uint64, error) {
	var m uint64
	for _, c := range caps {
		n, ok := capNumbers[c]
		if !ok {
			return 0, fmt.Errorf("netlab: capability %q: number unknown to the test harness", c)
		}
		m |= 1 << n
	}
	return m, nil
}

// capNumbers are linux/capability.h's numbers.
var capNumbers = map[string]uint{
	"chown": 0, "dac_override": 1, "dac_read_search": 2, "fowner": 3, "fsetid": 4, "kill": 5,
	"setgid": 6, "setuid": 7, "setpcap": 8, "linux_immutable": 9, "net_bind_service": 10,
	"net_broadcast": 11, "net_admin": 12, "net_raw": 13, "ipc_lock": 14, "ipc_owner": 15,
	"sys_module": 16, "sys_rawio": 17, "sys_chroot": 18, "sys_ptrace": 19, "sys_pacct": 20,
	"sys_admin": 21, "sys_boot": 22, "sys_nice": 23, "sys_resource": 24, "sys_time": 25,
	"sys_tty_config": 26, "mknod": 27, "lease": 28, "audit_write": 29, "audit_control": 30,
	"setfcap": 31, "mac_override": 32, "mac_admin": 33, "syslog": 34, "wake_alarm": 35,
	"block_suspend": 36, "audit_read": 37, "perfmon": 38, "bpf": 39, "checkpoint_restore": 40,
}
