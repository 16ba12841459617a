package nslab

import "path/filepath"

// Privileges are the capabilities a systemd unit gives a service that runs as root (no User=),
// and setpriv reproduces them: CapabilityBoundingSet= is the bounding set, AmbientCapabilities=
// the inheritable and ambient sets, NoNewPrivileges= the no_new_privs bit. After execve, root's
// permitted and effective sets are the bounding set, as under systemd. The names are lowercase
// without "cap_" (setpriv's spelling).
type Privileges struct {
	Unit            string // the file they were read from
	Bounding        []string
	Ambient         []string
	NoNewPrivileges bool
}

// SetprivArgs are setpriv's options (without the command) that give a process started as root
// these privileges.
func (p *Privileges) SetprivArgs() []string {
	list := func(caps []string) string {
		s := "-all"
		for _, c := range caps {
			s += ",+" + c
		}
		return s
	}
	args := []string{"--bounding-set=" + list(p.Bounding), "--inh-caps=" + list(p.Ambient), "--ambient-caps=" + list(p.Ambient)}
	if p.NoNewPrivileges {
		args = append(args, "--no-new-privs")
	}
	return args
}

// isVigilDaemon tells a `vigil run` command line apart from the other programs labs start.
func isVigilDaemon(name string, args []string) bool {
	return filepath.Base(name) == "vigil" && len(args) > 0 && args[0] == "run"
}
