package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// notifyKeys are the commands of a notify: mapping, in order.
var notifyKeys = []string{"master", "backup", "fault", "stop", "all"}

// notifyKey decodes the notify: key of an instance or sync group.
func (d *decoder) notifyKey(o *object, c *vrrpCtx) Notify {
	raw, present := o.m["notify"]
	if s, isStr := raw.(string); present && isStr {
		o.get("notify")
		d.bad(o.sub("notify"), s, "must be a mapping {master, backup, fault, stop, all, user, timeout}; keepalived's generic notify script is notify: {all: COMMAND}")
		return Notify{Timeout: DefaultNotifyTimeout, User: c.scriptUser}
	}
	no, st := getObject(o, "notify")
	if st != good {
		no = nil
	}
	return d.notify(no, c)
}

// notify decodes a notify: mapping; no is nil for none.
func (d *decoder) notify(no *object, c *vrrpCtx) Notify {
	n := Notify{Timeout: DefaultNotifyTimeout, User: c.scriptUser}
	if no == nil {
		return n
	}
	dst := []*[]string{&n.Master, &n.Backup, &n.Fault, &n.Stop, &n.All}
	for i, k := range notifyKeys {
		*dst[i], _ = d.command(no, k, false, false)
	}
	if u := getString(no, "user"); u.ok() && u.V != "" {
		if msg := d.userProblem(u.V); msg != "" {
			u.reject(d, "%s", msg)
		} else {
			n.User = u.V
		}
	}
	if t := getDuration(no, "timeout"); t.ok() {
		if t.V < 10*time.Millisecond || t.V > time.Hour {
			t.reject(d, "is out of range 10ms..1h")
		} else {
			n.Timeout = t.V
		}
	}
	hints := map[string]string{}
	for _, k := range notifyKeys {
		hints["notify_"+k] = fmt.Sprintf("the key is %q", k)
	}
	hints["notify"] = `the generic command is "all"`
	no.unknown(nil, hints)
	return n
}

// command decodes a command at key: a list (argv, run without a shell) or a
// string. Without shell a string is the path of a program run with no
// arguments; with shell (scripts only) it is a command line for /bin/sh -c.
// The program must exist and be executable. It returns the argv to execute
// and the shell command line ("" without shell). required says whether the
// key must be present.
func (d *decoder) command(o *object, key string, shell, required bool) ([]string, string) {
	raw, present := o.get(key)
	if !present {
		if required {
			d.fail(o.sub(key), "required: a list [/path/to/program, ARG, ...], or a string with shell: true")
		}
		return nil, ""
	}
	p := o.sub(key)
	switch v := raw.(type) {
	case nil:
		d.fail(p, "has no value; give one or remove the key")
	case string:
		if shell {
			if strings.TrimSpace(v) == "" {
				d.bad(p, v, "is empty")
				return nil, ""
			}
			return []string{"/bin/sh", "-c", v}, v
		}
		if strings.ContainsFunc(v, unicode.IsSpace) {
			more := ""
			if required {
				more = ", or set shell: true to run it with /bin/sh -c"
			}
			d.bad(p, v, "has white space: a string is one program path with no arguments, and is not run by a shell; write the command as a list [%s]%s",
				strings.Join(strings.Fields(v), ", "), more)
			return nil, ""
		}
		prog, msg := d.execProblem(v)
		if msg != "" {
			d.bad(p, v, "%s", msg)
			return nil, ""
		}
		return []string{prog}, ""
	case []any:
		if shell {
			d.fail(p, "must be one string with shell: true (it is run by /bin/sh -c); or remove shell: to run the list without a shell")
			return nil, ""
		}
		if len(v) == 0 {
			d.fail(p, "is empty: give the program and its arguments, [/path/to/program, ARG, ...]")
			return nil, ""
		}
		argv := make([]string, len(v))
		ok := true
		for i, a := range v {
			ep := index(p, i)
			switch s := a.(type) {
			case string:
				argv[i] = s
			case map[string]any, map[any]any, []any, nil:
				d.bad(ep, a, "must be a string, not %s", kind(a))
				ok = false
			default:
				d.bad(ep, a, "is not a string; quote it (\"%v\")", a)
				ok = false
			}
		}
		if !ok {
			return nil, ""
		}
		prog, msg := d.execProblem(argv[0])
		if msg != "" {
			d.bad(p+"[0]", argv[0], "%s", msg)
			return nil, ""
		}
		argv[0] = prog
		return argv, ""
	default:
		d.bad(p, raw, "must be a list [/path/to/program, ARG, ...] or a string, not %s", kind(raw))
	}
	return nil, ""
}

// Host lookups: programs, users and directories of this machine. A file
// meant for another one (ParseOffHost) skips them; its other rules apply.

func (d *decoder) execProblem(prog string) (string, string) {
	if d.offHost && prog != "" && (filepath.IsAbs(prog) || !strings.Contains(prog, "/")) {
		return prog, "" // a bare name is looked up in PATH there
	}
	return execProblem(prog)
}

func (d *decoder) userProblem(s string) string {
	if d.offHost {
		return ""
	}
	return userProblem(s)
}

func (d *decoder) fifoProblem(p string) string {
	if d.offHost {
		if !filepath.IsAbs(p) {
			return "is not an absolute path"
		}
		return ""
	}
	return fifoProblem(p)
}

// execProblem checks that prog names an executable file: an absolute path,
// or a name without a slash found through PATH (then the found path is
// returned, so the daemon does not depend on its own PATH).
func execProblem(prog string) (string, string) {
	if prog == "" {
		return "", "is empty: give the program's path"
	}
	if !strings.Contains(prog, "/") {
		found, err := exec.LookPath(prog)
		if err != nil || !filepath.IsAbs(found) {
			return "", "is not found in PATH: give the program's absolute path"
		}
		return found, ""
	}
	if !filepath.IsAbs(prog) {
		return "", "is a relative path: give the program's absolute path (or a command name found in PATH)"
	}
	fi, err := os.Stat(prog)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", "does not exist"
	case err != nil:
		return "", fmt.Sprintf("cannot be checked: %v", errors.Unwrap(err))
	case fi.IsDir():
		return "", "is a directory, not a program"
	case !fi.Mode().IsRegular():
		return "", "is not a regular file"
	case fi.Mode().Perm()&0o111 == 0:
		return "", "is not executable (chmod +x it)"
	}
	return prog, ""
}

var userNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$`)

// userProblem checks a "user[:group]" setting against this system's users
// and groups (numeric IDs are allowed).
func userProblem(s string) string {
	name, group, hasGroup := strings.Cut(s, ":")
	switch {
	case name == "":
		return "has no user: write USER or USER:GROUP"
	case hasGroup && group == "":
		return "has an empty group: write USER or USER:GROUP"
	case !userNameRE.MatchString(name) || (hasGroup && !userNameRE.MatchString(group)):
		return "is not USER or USER:GROUP"
	}
	var err error
	if isDigits(name) {
		_, err = user.LookupId(name)
	} else {
		_, err = user.Lookup(name)
	}
	if err != nil {
		return fmt.Sprintf("names no user on this system (%q)", name)
	}
	if hasGroup {
		if isDigits(group) {
			_, err = user.LookupGroupId(group)
		} else {
			_, err = user.LookupGroup(group)
		}
		if err != nil {
			return fmt.Sprintf("names no group on this system (%q)", group)
		}
	}
	return ""
}

// maxGID is the highest group ID chown takes ((gid_t)-1 means "no change").
const maxGID = 1<<32 - 2

// groupProblem checks the syntax of a group name or numeric gid; whether
// the group exists is groupMissing's.
func groupProblem(s string) string {
	if isDigits(s) {
		if n, err := strconv.ParseUint(s, 10, 64); err != nil || n > maxGID {
			return fmt.Sprintf("is out of range: a gid is 0..%d", maxGID)
		}
		return ""
	}
	if !userNameRE.MatchString(s) || len(s) > 256 {
		return "is not a group name or a numeric gid (a name is letters, digits, _ . - and not longer than 256 bytes, starting with a letter, digit or _)"
	}
	return ""
}

// groupMissing says when a valid group name or gid names no group on this
// system now; "" when it does.
func groupMissing(s string) string {
	var err error
	if isDigits(s) {
		_, err = user.LookupGroupId(s)
	} else {
		_, err = user.LookupGroup(s)
	}
	var unknownName user.UnknownGroupError
	var unknownID user.UnknownGroupIdError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &unknownName), errors.As(err, &unknownID):
		return fmt.Sprintf("%q names no group on this system now: create it before vigil creates the FIFO, or the FIFO cannot be given to it", s)
	}
	return fmt.Sprintf("%q cannot be looked up now: %v", s, err)
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// fifoProblem checks a notify FIFO path: absolute, in an existing directory,
// and a FIFO if it exists (the daemon creates it otherwise).
func fifoProblem(p string) string {
	if !filepath.IsAbs(p) {
		return "is not an absolute path"
	}
	fi, err := os.Stat(p)
	switch {
	case err == nil:
		if fi.Mode()&fs.ModeNamedPipe == 0 {
			return "exists and is not a FIFO (remove it, or choose another path: vigil creates the FIFO)"
		}
		return ""
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("cannot be checked: %v", errors.Unwrap(err))
	}
	dir := filepath.Dir(p)
	if di, err := os.Stat(dir); err != nil || !di.IsDir() {
		return fmt.Sprintf("is in %s, which is not an existing directory", dir)
	}
	return ""
}
