package config

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder collects problems while the settings map is walked.
type decoder struct {
	vsNames []string // lb virtual server names, valid or not otherwise, for track references
	// gossipOn: the file has a gossip: section (decoded before lb).
	gossipOn bool
	// offHost: the file is meant for another machine (ParseOffHost):
	// programs, users and the FIFO's directory are not looked up here.
	offHost bool
	errs    []FieldError
	warns   []string
	env     map[string]string // key path -> environment variable it came from
	// facts is what the parse learnt about the file: lines, keys written
	// with capitals; nil for an item decoded apart from its file.
	facts *docFacts
	// tree is the file's node tree, which places problems (see locate);
	// nil for an item decoded apart from its file.
	tree *yaml.Node

	// items has one entry per element of lb.virtual_servers: the index of
	// its virtual server in LB.VirtualServers when it decoded without an
	// error or warning, else -1 (a Loader reuses only those).
	items []int
	// reuse holds virtual servers a Loader decoded before; the list stands
	// for reuse[n] with the placeholder {reuseKey: n}, in order.
	reuseKey string
	reuse    []VirtualServer
	reusedN  int  // placeholders taken
	reuseBad bool // a placeholder was out of order or malformed
}

func (d *decoder) fail(path, msg string, args ...any) {
	d.report(FieldError{Path: path, Msg: fmt.Sprintf(msg, args...)})
}

// bad reports a problem with the value raw found at path.
func (d *decoder) bad(path string, raw any, msg string, args ...any) {
	m := fmt.Sprintf(msg, args...)
	if ev, ok := d.env[path]; ok {
		m += " (set by $" + ev + ")"
	}
	d.report(FieldError{Path: path, Value: show(raw), Msg: m})
}

// report adds a problem with where it is: the environment variable its
// value came from, or its place in the file (the value's when the problem
// shows it, else the key's; for a key that is not in the file, that of
// the nearest mapping or list around it that is).
func (d *decoder) report(fe FieldError) {
	if ev, ok := d.env[fe.Path]; ok {
		fe.Env = ev
	} else if d.tree != nil {
		fe.Line, fe.Column = locate(d.tree, fe.Path, fe.Value != "")
	}
	d.errs = append(d.errs, fe)
}

func (d *decoder) warn(path, msg string, args ...any) {
	w := fmt.Sprintf(msg, args...)
	if path != "" {
		w = path + ": " + w
	}
	d.warns = append(d.warns, w)
}

// object is one YAML mapping being decoded; it remembers which keys were read
// so the rest can be reported as unknown.
type object struct {
	d     *decoder
	path  string
	m     map[string]any
	known []string
}

// object returns raw as a mapping at path; null is an empty mapping.
func (d *decoder) object(path string, raw any) (*object, bool) {
	o := &object{d: d, path: path}
	switch m := raw.(type) {
	case nil:
		o.m = map[string]any{}
	case map[string]any:
		o.m = m
		// The keys read, present or not: a real server of a large file
		// reads 11, room for them at once.
		o.known = make([]string, 0, max(len(m)+4, 12))
	case map[any]any:
		o.m = make(map[string]any, len(m))
		for k, v := range m {
			o.m[strings.ToLower(fmt.Sprint(k))] = v
		}
	default:
		d.bad(path, raw, "must be a mapping (key: value pairs), not %s", kind(raw))
		return nil, false
	}
	return o, true
}

// index is the path of a list element: "lb.virtual_servers[3]".
func index(list string, i int) string {
	return list + "[" + strconv.Itoa(i) + "]"
}

func (o *object) sub(key string) string {
	if o.path == "" {
		return key
	}
	return o.path + "." + key
}

// get returns the raw value of key and whether the key is present.
func (o *object) get(key string) (any, bool) {
	o.known = append(o.known, key)
	v, ok := o.m[key]
	if ok && o.d.facts != nil && o.d.facts.spelled != nil {
		o.d.spelled(o.sub(key))
	}
	return v, ok
}

// spelled warns, once, when the key at path was written with capitals
// (Preempt: for preempt). It warns as the key is read, so that a virtual
// server with such a key counts as one with a warning, which a Loader
// never takes over (the warning would be lost).
func (d *decoder) spelled(path string) {
	s := d.facts.spelled[path]
	if s == nil || s.read {
		return
	}
	s.read = true
	key := path[strings.LastIndexByte(path, '.')+1:]
	d.warn(path, "written %q (line %d); keys are lower case: vigil reads it as %q, write it so", s.as, s.line, key)
}

// nullList warns of a list key given no value: a file cut short after
// "instances:" looks just like that.
func (d *decoder) nullList(path string) {
	const why = "the file may be truncated: write [] for an empty list, or remove the key"
	if d.facts != nil {
		if line, ok := d.facts.nulls[path]; ok {
			d.warn(path, "is empty (line %d); %s", line, why)
			return
		}
	}
	d.warn(path, "is empty; %s", why)
}

// unknown reports every key that was not read. notYet names keys of later
// versions; hints explain keys other tools (keepalived) spell differently.
func (o *object) unknown(notYet []string, hints map[string]string) {
	keys := make([]string, 0, len(o.m))
	for k := range o.m {
		if !slices.Contains(o.known, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := o.sub(k)
		// A key written with capitals is named as written.
		as := ""
		if o.d.facts != nil {
			if s := o.d.facts.spelled[p]; s != nil {
				as = fmt.Sprintf(" (written %q, line %d)", s.as, s.line)
			}
		}
		switch {
		case slices.Contains(notYet, k):
			o.d.fail(p, "not supported yet by this version of vigil%s", as)
		case hints[k] != "":
			o.d.fail(p, "unknown key%s; %s", as, hints[k])
		default:
			if s := suggest(k, o.known); s != "" {
				o.d.fail(p, "unknown key%s; did you mean %q?", as, s)
			} else {
				o.d.fail(p, "unknown key%s", as)
			}
		}
	}
}

// suggest returns the known key closest to k, if it is a likely typo.
func suggest(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if d := editDistance(k, c); d < bestD && d < len(c)/2+1 {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// got says whether a field was absent, decoded, or present but invalid
// (already reported).
type got uint8

const (
	missing got = iota
	good
	invalid
)

// field is a decoded scalar with what is needed to report on it.
type field[T any] struct {
	V   T
	Raw any
	St  got
	// The key's path, built only when a message needs it (a config of
	// 10,000 real servers reads 100,000 keys): o.sub(key), or p.
	o   *object
	key string
	p   string
}

func (f field[T]) path() string {
	if f.o != nil {
		return f.o.sub(f.key)
	}
	return f.p
}

func (f field[T]) ok() bool  { return f.St == good }
func (f field[T]) set() bool { return f.St != missing }

// or returns the value, or def when the field is absent or invalid.
func (f field[T]) or(def T) T {
	if f.St == good {
		return f.V
	}
	return def
}

func start[T any](o *object, key string) (field[T], bool) {
	raw, ok := o.get(key)
	f := field[T]{Raw: raw, o: o, key: key}
	if !ok {
		return f, false
	}
	if raw == nil {
		o.d.fail(f.path(), "has no value; give one or remove the key")
		f.St = invalid
		return f, false
	}
	return f, true
}

func (f *field[T]) reject(d *decoder, msg string, args ...any) {
	f.St = invalid
	d.bad(f.path(), f.Raw, msg, args...)
}

func getString(o *object, key string) field[string] {
	f, ok := start[string](o, key)
	if !ok {
		return f
	}
	switch v := f.Raw.(type) {
	case string:
		f.V, f.St = v, good
	case map[string]any, map[any]any, []any:
		f.reject(o.d, "must be a string, not %s", kind(f.Raw))
	default:
		f.reject(o.d, "is not a string; quote it (\"%v\")", f.Raw)
	}
	return f
}

func getInt(o *object, key string) field[int64] {
	f, ok := start[int64](o, key)
	if !ok {
		return f
	}
	if n, ok := toInt(f.Raw); ok {
		f.V, f.St = n, good
	} else if kind(f.Raw) == "a mapping" || kind(f.Raw) == "a list" {
		f.reject(o.d, "must be an integer, not %s", kind(f.Raw))
	} else {
		f.reject(o.d, "is not an integer")
	}
	return f
}

func toInt(raw any) (int64, bool) {
	switch v := raw.(type) {
	case int:
		return int64(v), true
	case int8:
		return int64(v), true
	case int16:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case uint:
		return clampU(uint64(v))
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint64:
		return clampU(v)
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<62 {
			return int64(v), true
		}
	case string: // environment variables, quoted numbers
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		return n, err == nil
	}
	return 0, false
}

func clampU(u uint64) (int64, bool) {
	if u > math.MaxInt64 {
		return math.MaxInt64, true // out of every range; reported as such
	}
	return int64(u), true
}

func getBool(o *object, key string) field[bool] {
	f, ok := start[bool](o, key)
	if !ok {
		return f
	}
	switch v := f.Raw.(type) {
	case bool:
		f.V, f.St = v, good
	case string: // environment variables
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			f.reject(o.d, "is not true or false")
		} else {
			f.V, f.St = b, good
		}
	default:
		f.reject(o.d, "is not true or false")
	}
	return f
}

// getDuration accepts Go duration syntax ("1s", "100ms", "1m30s"). Plain
// numbers are refused, because "1" could mean seconds (keepalived) or
// nanoseconds (Go); only 0 is unambiguous.
func getDuration(o *object, key string) field[time.Duration] {
	f, ok := start[time.Duration](o, key)
	if !ok {
		return f
	}
	const syntax = "use Go duration syntax with a unit, such as 1s, 100ms or 1m30s"
	switch v := f.Raw.(type) {
	case string:
		s := strings.TrimSpace(v)
		dur, err := time.ParseDuration(s)
		switch {
		case err == nil:
			f.V, f.St = dur, good
		case isNumber(s):
			f.reject(o.d, "has no unit; %s", syntax)
		default:
			f.reject(o.d, "is not a duration; %s", syntax)
		}
	default:
		if n, ok := toInt(v); ok && n == 0 {
			f.V, f.St = 0, good
		} else if kind(v) == "an integer" || kind(v) == "a number" {
			f.reject(o.d, "has no unit; %s", syntax)
		} else {
			f.reject(o.d, "is not a duration; %s", syntax)
		}
	}
	return f
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// getList returns the list at key; null is an empty list, and is warned
// of (see nullList).
func getList(o *object, key string) ([]any, string, got) {
	raw, ok := o.get(key)
	p := o.sub(key)
	if !ok {
		// Keys with a null value outside lists are left out: to the
		// decoder they are missing, as they always were; the read saw them.
		if o.d.facts != nil && o.d.facts.nulls != nil {
			if _, null := o.d.facts.nulls[p]; null {
				o.d.nullList(p)
			}
		}
		return nil, p, missing
	}
	switch v := raw.(type) {
	case nil:
		o.d.nullList(p)
		return nil, p, good
	case []any:
		return v, p, good
	}
	if k := kind(raw); k == "a mapping" {
		o.d.bad(p, raw, "must be a list, not %s", k)
	} else {
		o.d.bad(p, raw, "must be a list, not %s (write [%v] for one element)", k, raw)
	}
	return nil, p, invalid
}

// getObject returns the mapping at key; null is an empty mapping.
func getObject(o *object, key string) (*object, got) {
	raw, ok := o.get(key)
	if !ok {
		return nil, missing
	}
	sub, ok := o.d.object(o.sub(key), raw)
	if !ok {
		return nil, invalid
	}
	return sub, good
}

func (o *object) has(key string) bool {
	_, ok := o.m[key]
	return ok
}

// choice reads an enumerated string key: def when absent, else one of
// values.
func (d *decoder) choice(o *object, key, def string, values ...string) string {
	f := getString(o, key)
	if !f.ok() {
		return def
	}
	if !slices.Contains(values, f.V) {
		f.reject(d, "is not one of %s", strings.Join(values, ", "))
		return def
	}
	return f.V
}
