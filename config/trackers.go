package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// trackKind is a kind of tracked object, as named in messages.
type trackKind string

const (
	kindInterface trackKind = "interface"
	kindScript    trackKind = "script"
	kindFile      trackKind = "file"
	kindProcess   trackKind = "process"
	// kindVirtualServer tracks an lb virtual server's quorum: the master
	// whose service fails gives up the VIP (weight 0, the default: FAULT).
	kindVirtualServer trackKind = "virtual server"
)

// list is the key of the kind's definitions under vrrp: and of its
// references under track:.
func (k trackKind) list() string {
	switch k {
	case kindInterface:
		return "interfaces"
	case kindProcess:
		return "processes"
	case kindVirtualServer:
		return "virtual_servers"
	}
	return string(k) + "s"
}

// trackDef is a defined script, file or process as references see it.
type trackDef struct {
	path      string // vrrp.scripts[0]
	weight    int
	weightSet bool // the definition gave its weight
	weightBad bool // ... and it was invalid (already reported)
	reverse   bool
}

// refMeta is one valid track reference of an instance.
type refMeta struct {
	path   string // vrrp.instances[0].track.scripts[1]
	kind   trackKind
	name   string
	weight int       // resolved
	def    *trackDef // the definition the weight came from; nil when the reference gave it
}

// from says where a resolved weight came from, for messages.
func (r refMeta) from() string {
	switch {
	case r.def == nil:
		return ""
	case r.def.weightSet:
		return " (from " + r.def.path + ".weight)"
	}
	return fmt.Sprintf(" (the default weight of a %s)", r.kind)
}

// a is the kind with its article.
func (k trackKind) a() string {
	if k == kindInterface {
		return "an interface"
	}
	return "a " + string(k)
}

const maxWeight = 253

// weight reads a tracker weight, -253..253.
func (d *decoder) weight(o *object, def int) (int, field[int64]) {
	f := getInt(o, "weight")
	if f.ok() && (f.V < -maxWeight || f.V > maxWeight) {
		f.reject(d, "is out of range -253..253")
	}
	return int(f.or(int64(def))), f
}

// defName decodes the name of a script, file, process or sync group and
// registers it when it is valid and unique; it reports whether it did.
func (d *decoder) defName(o *object, what string, seen map[string]string) (string, bool) {
	name := getString(o, "name")
	d.required(name.St, name.path(), "")
	if name.ok() && !IsInstanceName(name.V) {
		name.reject(d, "is not a valid %s name: use 1..64 of A-Z a-z 0-9 _ . -", what)
	}
	if !name.ok() {
		return name.V, false
	}
	if first, dup := seen[name.V]; dup {
		name.reject(d, "is already the name of %s", first)
		return name.V, false
	}
	seen[name.V] = o.path
	return name.V, true
}

// defs returns the list at key and a fresh registry for its kind.
func (d *decoder) defList(o *object, c *vrrpCtx, kind trackKind) ([]*object, map[string]trackDef) {
	list, p, _ := getList(o, kind.list())
	reg := map[string]trackDef{}
	c.defs[kind] = reg
	var objs []*object
	for i, raw := range list {
		if so, ok := d.object(index(p, i), raw); ok {
			objs = append(objs, so)
		}
	}
	return objs, reg
}

var scriptHints = map[string]string{
	"script": `keepalived's script is "command" here: a list [/usr/bin/pidof, nginx] run without a shell, or a string with shell: true`,
	"args":   `give the arguments in the command list: command: [/path/to/check, ARG, ...]`,
}

// scripts decodes vrrp.scripts.
func (d *decoder) scripts(o *object, c *vrrpCtx) {
	objs, reg := d.defList(o, c, kindScript)
	seen := map[string]string{}
	for _, so := range objs {
		s := Script{Interval: DefaultScriptInterval, Rise: 1, Fall: 1, User: c.scriptUser}
		name, nameOK := d.defName(so, "script", seen)
		s.Name = name

		shell := getBool(so, "shell")
		s.Shell = shell.or(false)
		s.Argv, s.Command = d.command(so, "command", s.Shell, true)

		interval := getDuration(so, "interval")
		if interval.ok() && (interval.V < 10*time.Millisecond || interval.V > 24*time.Hour) {
			interval.reject(d, "is out of range 10ms..24h")
		}
		s.Interval = interval.or(DefaultScriptInterval)
		timeout := getDuration(so, "timeout")
		switch {
		case !timeout.ok():
		case timeout.V < 10*time.Millisecond:
			timeout.reject(d, "is too short: use 10ms or more")
		case (interval.ok() || !interval.set()) && timeout.V > s.Interval:
			timeout.reject(d, "is longer than the interval (%s): a script must end before the next run is due", s.Interval)
		}
		s.Timeout = timeout.or(s.Interval)

		s.Rise = d.count(so, "rise")
		s.Fall = d.count(so, "fall")
		var wf field[int64]
		s.Weight, wf = d.weight(so, 0)
		s.Reverse = getBool(so, "reverse").or(false)
		if u := getString(so, "user"); u.ok() && u.V != "" {
			if msg := d.userProblem(u.V); msg != "" {
				u.reject(d, "%s", msg)
			} else {
				s.User = u.V
			}
		}
		s.InitFail = getBool(so, "init_fail").or(false)
		so.unknown(nil, scriptHints)
		if nameOK {
			reg[name] = trackDef{path: so.path, weight: s.Weight, weightSet: wf.ok(), weightBad: wf.St == invalid, reverse: s.Reverse}
		}
		c.v.Scripts = append(c.v.Scripts, s)
	}
}

// count reads rise or fall, 1..100, default 1.
func (d *decoder) count(o *object, key string) int {
	f := getInt(o, key)
	if f.ok() && (f.V < 1 || f.V > 100) {
		f.reject(d, "is out of range 1..100")
	}
	return int(f.or(1))
}

var fileHints = map[string]string{
	"file":      `the key is "path"`,
	"init_file": `the key is "init": the value used while the file is missing`,
}

// files decodes vrrp.files.
func (d *decoder) files(o *object, c *vrrpCtx) {
	objs, reg := d.defList(o, c, kindFile)
	seen := map[string]string{}
	for _, fo := range objs {
		f := File{}
		name, nameOK := d.defName(fo, "file", seen)
		f.Name = name
		path := getString(fo, "path")
		d.required(path.St, path.path(), "the absolute path of the file")
		if path.ok() {
			switch {
			case !filepath.IsAbs(path.V):
				path.reject(d, "is not an absolute path")
			case strings.HasSuffix(path.V, "/") || filepath.Clean(path.V) == "/":
				path.reject(d, "names a directory: give the path of a file")
			default:
				f.Path = filepath.Clean(path.V)
			}
		}
		var wf field[int64]
		f.Weight, wf = d.weight(fo, 1)
		f.Reverse = getBool(fo, "reverse").or(false)
		if init := getInt(fo, "init"); init.ok() {
			if init.V < -254 || init.V > 254 {
				init.reject(d, "is out of range -254..254")
			} else {
				f.Init = int(init.V)
			}
		}
		fo.unknown(nil, fileHints)
		if nameOK {
			reg[name] = trackDef{path: fo.path, weight: f.Weight, weightSet: wf.ok(), weightBad: wf.St == invalid, reverse: f.Reverse}
		}
		c.v.Files = append(c.v.Files, f)
	}
}

// commLen is the longest process name the kernel keeps (TASK_COMM_LEN - 1).
const commLen = 15

var processHints = map[string]string{
	"param_match":  `use args: the exact arguments after the process name`,
	"full_command": "processes are matched by their name (comm); use args to match the arguments",
	"param":        `the key is "args"`,
	"params":       `the key is "args"`,
}

// processes decodes vrrp.processes.
func (d *decoder) processes(o *object, c *vrrpCtx) {
	objs, reg := d.defList(o, c, kindProcess)
	seen := map[string]string{}
	for _, po := range objs {
		p := Process{Quorum: 1}
		name, nameOK := d.defName(po, "process", seen)
		p.Name = name
		proc := getString(po, "process")
		d.required(proc.St, proc.path(), "the process name, as in /proc/PID/comm")
		if proc.ok() {
			switch {
			case proc.V == "":
				proc.reject(d, "is empty")
			case strings.HasPrefix(proc.V, "/"):
				proc.reject(d, "is a path: give the process name (%s), as in /proc/PID/comm", filepath.Base(proc.V))
			case len(proc.V) > commLen:
				proc.reject(d, "is longer than %d bytes: the kernel keeps only the first %d of a process name, so write %q", commLen, commLen, proc.V[:commLen])
			case strings.ContainsAny(proc.V, "\x00\n"):
				proc.reject(d, "has a control character")
			default:
				p.Process = proc.V
			}
		}
		p.Args = getString(po, "args").or("")
		var wf field[int64]
		p.Weight, wf = d.weight(po, 0)
		p.Reverse = getBool(po, "reverse").or(false)
		if q := getInt(po, "quorum"); q.ok() {
			if q.V < 1 || q.V > 65535 {
				q.reject(d, "is out of range 1..65535")
			} else {
				p.Quorum = int(q.V)
			}
		}
		if delay := getDuration(po, "delay"); delay.ok() {
			if delay.V < 0 || delay.V > time.Hour {
				delay.reject(d, "is out of range 0s..1h")
			} else {
				p.Delay = delay.V
			}
		}
		po.unknown(nil, processHints)
		if nameOK {
			reg[name] = trackDef{path: po.path, weight: p.Weight, weightSet: wf.ok(), weightBad: wf.St == invalid, reverse: p.Reverse}
		}
		c.v.Processes = append(c.v.Processes, p)
	}
}

// track decodes an instance's track: mapping.
func (d *decoder) track(o *object, c *vrrpCtx, m *instMeta) Track {
	var t Track
	to, st := getObject(o, "track")
	if st != good {
		return t
	}
	t.Interfaces = d.trackRefs(to, kindInterface, c, m)
	t.Scripts = d.trackRefs(to, kindScript, c, m)
	t.Files = d.trackRefs(to, kindFile, c, m)
	t.Processes = d.trackRefs(to, kindProcess, c, m)
	t.VirtualServers = d.trackRefs(to, kindVirtualServer, c, m)
	to.unknown(nil, map[string]string{
		"interface": `the key is "interfaces"`, "script": `the key is "scripts"`,
		"file": `the key is "files"`, "process": `the key is "processes"`,
		"virtual_server": `the key is "virtual_servers"`,
	})
	return t
}

// trackRefs decodes one list of track references: NAME or {name, weight,
// reverse}.
func (d *decoder) trackRefs(to *object, tk trackKind, c *vrrpCtx, m *instMeta) []TrackRef {
	list, lp, _ := getList(to, tk.list())
	var refs []TrackRef
	seen := map[string]string{}
	for j, raw := range list {
		p := index(lp, j)
		var (
			r        TrackRef
			revSet   bool
			weightOK = true
		)
		switch v := raw.(type) {
		case string:
			r.Name = v
		case map[string]any, map[any]any:
			ro, _ := d.object(p, raw)
			name := getString(ro, "name")
			d.required(name.St, name.path(), "")
			var wf field[int64]
			r.Weight, wf = d.weight(ro, 0)
			r.WeightSet = wf.ok()
			weightOK = wf.St != invalid
			rev := getBool(ro, "reverse")
			r.Reverse, revSet = rev.or(false), rev.ok()
			ro.unknown(nil, nil)
			if !name.ok() {
				continue
			}
			r.Name = name.V
		default:
			d.bad(p, raw, "must be a %s name or a mapping {name, weight, reverse}, not %s", tk, kind(raw))
			continue
		}
		var def trackDef
		if tk == kindInterface {
			if msg := ifnameProblem(r.Name); msg != "" {
				d.bad(p, r.Name, "%s", msg)
				continue
			}
		} else {
			var ok bool
			if def, ok = c.defs[tk][r.Name]; !ok {
				d.bad(p, r.Name, "%s", unknownTracker(tk, r.Name, c))
				continue
			}
		}
		if first, dup := seen[r.Name]; dup {
			d.bad(p, r.Name, "repeats %s", first)
			continue
		}
		seen[r.Name] = p
		rm := refMeta{path: p, kind: tk, name: r.Name}
		if !r.WeightSet {
			weightOK = weightOK && !def.weightBad
			r.Weight = def.weight
			if def.path != "" {
				rm.def = &def
			}
		}
		if !revSet {
			r.Reverse = def.reverse
		}
		rm.weight = r.Weight
		refs = append(refs, r)
		if weightOK {
			m.refs = append(m.refs, rm)
		}
	}
	return refs
}

// unknownTracker explains a reference to an undefined script, file or
// process.
func unknownTracker(kind trackKind, name string, c *vrrpCtx) string {
	known := make([]string, 0, len(c.defs[kind]))
	for n := range c.defs[kind] {
		known = append(known, n)
	}
	slices.Sort(known)
	msg := fmt.Sprintf("is not a defined %s: define it under vrrp.%s", kind, kind.list())
	if kind == kindVirtualServer {
		msg = "is not a virtual server: name one of lb.virtual_servers"
	}
	if s := suggest(name, known); s != "" {
		msg += fmt.Sprintf(", or did you mean %q?", s)
	} else if len(known) > 0 {
		msg += " (defined: " + strings.Join(known, ", ") + ")"
	}
	return msg
}

// unusedTrackers warns about definitions no instance tracks: they never run
// (keepalived does the same).
func (d *decoder) unusedTrackers(c *vrrpCtx, metas []instMeta) {
	used := map[trackKind]map[string]bool{}
	for _, m := range metas {
		for _, r := range m.refs {
			if used[r.kind] == nil {
				used[r.kind] = map[string]bool{}
			}
			used[r.kind][r.name] = true
		}
	}
	names := map[trackKind][]string{}
	for _, s := range c.v.Scripts {
		names[kindScript] = append(names[kindScript], s.Name)
	}
	for _, f := range c.v.Files {
		names[kindFile] = append(names[kindFile], f.Name)
	}
	for _, p := range c.v.Processes {
		names[kindProcess] = append(names[kindProcess], p.Name)
	}
	for _, tk := range []trackKind{kindScript, kindFile, kindProcess} {
		done := map[string]bool{}
		for _, name := range names[tk] {
			if def, ok := c.defs[tk][name]; ok && !used[tk][name] && !done[name] {
				done[name] = true
				d.warn(def.path, "%s %q is not tracked by any instance, so it is not watched", tk, name)
			}
		}
	}
}
