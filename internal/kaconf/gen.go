package kaconf

import (
	"strconv"
	"strings"
)

// generator expands a line starting with ~SEQ(...), ~SEQx(...) or ~LST(...)
// (keepalived.conf(5), "Sequence blocks" and "List blocks"): the rest of the
// line is processed once per value with the variable(s) defined to it, so
// several generators on one line nest, the first outermost. handled is
// false when the line only looks like one (it is then an ordinary line).
func (p *pre) generator(text string, pos Pos, depth int) (handled bool, err error) {
	var kind string
	for _, k := range []string{"~SEQx(", "~SEQ(", "~LST("} {
		if strings.HasPrefix(text, k) {
			kind = k
			break
		}
	}
	if kind == "" {
		return false, nil
	}
	end := strings.IndexByte(text, ')')
	if end < 0 {
		return true, errorf(pos, "%s...) has no closing ')'", kind)
	}
	args := splitArgs(text[len(kind):end])
	rest := text[end+1:]
	var vars []string
	var values [][]string
	if kind == "~LST(" {
		vars, values, err = listValues(args, pos)
	} else {
		vars, values, err = seqValues(kind == "~SEQx(", args, pos, p.opts.MaxLines)
	}
	if err != nil {
		return true, err
	}
	for _, v := range vars {
		// A generator over a parameter's name replaces it for good, and
		// keepalived -t mangles the lines when a ~LST variable shadows a
		// multi-line parameter; reusing another generator's variable works
		// (keepalived -t), though keepalived.conf(5) advises against it.
		if _, defined := p.params[v]; defined && !p.genVars[v] {
			p.diag(pos, "generator variable %s replaces the parameter $%s defined before", v, v)
		}
		p.genVars[v] = true
	}
	for _, vals := range values {
		for i, v := range vars {
			p.params[v] = []string{vals[i]}
		}
		if err := p.line(rest, pos, depth+1); err != nil {
			return true, err
		}
	}
	return true, nil
}

// splitArgs splits a generator's argument list at commas outside {...},
// trimming each.
func splitArgs(s string) []string {
	var out []string
	level, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			level++
		case '}':
			if level > 0 {
				level--
			}
		case ',':
			if level == 0 {
				out = append(out, trimBlank(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, trimBlank(s[start:]))
}

// group reads `{A, B}` as [A B] and a bare `A` as [A].
func group(s string) []string {
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		parts := strings.Split(s[1:len(s)-1], ",")
		for i := range parts {
			parts[i] = trimBlank(parts[i])
		}
		return parts
	}
	return []string{s}
}

func validVar(pos Pos, v string) error {
	if v == "" || identLen(v) != len(v) {
		return errorf(pos, "generator variable %q is not a parameter name (A-Za-z0-9_, not starting with a digit)", v)
	}
	return nil
}

// listValues is ~LST(var, v1, v2, ...) or ~LST({A,B}, {1,2}, {3,4}): at least
// one value, no tuple longer than the variable list.
func listValues(args []string, pos Pos) ([]string, [][]string, error) {
	if len(args) < 2 {
		return nil, nil, errorf(pos, "~LST needs a variable and at least one value")
	}
	vars := group(args[0])
	for _, v := range vars {
		if err := validVar(pos, v); err != nil {
			return nil, nil, err
		}
	}
	values := make([][]string, 0, len(args)-1)
	for _, a := range args[1:] {
		vals := group(a)
		if len(vals) > len(vars) {
			return nil, nil, errorf(pos, "~LST value %s has %d item(s) for %d variable(s)", a, len(vals), len(vars))
		}
		// Missing items are empty (keepalived -t: ~LST({A,B}, {1,2}, {3})
		// gives A=3, B= the second time).
		for len(vals) < len(vars) {
			vals = append(vals, "")
		}
		values = append(values, vals)
	}
	return vars, values, nil
}

// seqValues is ~SEQ(var, [start, [step,]] end): step defaults to 1 or -1
// towards end, start to 1, or -1 when end < 0 (keepalived -t: ~SEQ(X, 0)
// gives 1 then 0). Numbers are read as C's strtol base 0 (0x.. hex, 0..
// octal: keepalived -t reads ~SEQ(Y, 010, 011) as 8, 9). ~SEQx prints the
// values in lower-case hex without 0x.
func seqValues(hex bool, args []string, pos Pos, limit int) ([]string, [][]string, error) {
	if len(args) < 2 || len(args) > 4 {
		return nil, nil, errorf(pos, "~SEQ takes (var, [start, [step,]] end), not %d argument(s)", len(args))
	}
	if err := validVar(pos, args[0]); err != nil {
		return nil, nil, err
	}
	nums := make([]int64, len(args)-1)
	for i, a := range args[1:] {
		n, err := strconv.ParseInt(a, 0, 64)
		if err != nil || strings.Contains(a, "_") {
			return nil, nil, errorf(pos, "~SEQ argument %q is not an integer", a)
		}
		nums[i] = n
	}
	var start, step, end int64
	switch len(nums) {
	case 1:
		end = nums[0]
		start = 1
		if end < 0 {
			start = -1
		}
	case 2:
		start, end = nums[0], nums[1]
	case 3:
		start, step, end = nums[0], nums[1], nums[2]
	}
	if len(nums) < 3 {
		step = 1
		if end < start {
			step = -1
		}
	}
	if step == 0 {
		return nil, nil, errorf(pos, "~SEQ step is 0: the sequence would never end")
	}
	var values [][]string
	for v := start; step > 0 && v <= end || step < 0 && v >= end; {
		if len(values) >= limit {
			return nil, nil, errorf(pos, "~SEQ produces more than %d values (Options.MaxLines)", limit)
		}
		s := strconv.FormatInt(v, 10)
		if hex {
			s = strconv.FormatInt(v, 16)
		}
		values = append(values, []string{s})
		next := v + step
		if step > 0 && next < v || step < 0 && next > v { // int64 overflow: v was the last value
			break
		}
		v = next
	}
	return []string{args[0]}, values, nil
}
