package kaconf

import (
	"path/filepath"
	"strconv"
	"strings"
)

// randomMax is ${_RANDOM}'s default MAX (keepalived.conf(5), "Pre-defined
// definitions": MIN=0, MAX=32767).
const randomMax = 32767

// substitute replaces parameters in one pass (keepalived.conf(5),
// "Parameter substitution"): `${NAME}` anywhere, `$NAME` only when a blank
// or the end of the line follows. A replaced value is not scanned again
// here: the caller runs the result through line() again, which is how
// replacement is recursive and how definitions inside a multi-line value
// ($RS_NUM=1 then $RS) take effect in order. An undefined name stays as
// written. A multi-line value is joined with '\n' so the caller splits it
// into lines.
func (p *pre) substitute(s string, pos Pos) (string, bool) {
	if strings.IndexByte(s, '$') < 0 {
		return s, false
	}
	var b strings.Builder
	b.Grow(len(s))
	changed := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' {
			// Copy up to the next '$' at once.
			j := strings.IndexByte(s[i:], '$')
			if j < 0 {
				j = len(s) - i
			}
			b.WriteString(s[i : i+j])
			i += j - 1
			continue
		}
		if i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		if s[i+1] == '{' {
			end := strings.IndexByte(s[i+2:], '}')
			if end >= 0 {
				if v, ok := p.lookup(s[i+2:i+2+end], pos, true); ok {
					b.WriteString(v)
					changed = true
					i += 2 + end
					continue
				}
			}
			b.WriteByte(c)
			continue
		}
		n := identLen(s[i+1:])
		if n > 0 && (i+1+n == len(s) || isBlank(s[i+1+n])) {
			if v, ok := p.lookup(s[i+1:i+1+n], pos, false); ok {
				b.WriteString(v)
				changed = true
				i += n
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String(), changed
}

// lookup resolves the text of a ${...} (braced) or a bare $NAME. The
// predefined names are keepalived.conf(5)'s "Pre-defined definitions";
// ${_ENV VAR} is keepalived 2.4's addition (it reads the environment).
func (p *pre) lookup(inner string, pos Pos, braced bool) (string, bool) {
	f := strings.Fields(inner)
	if len(f) == 0 {
		return "", false
	}
	name, args := f[0], f[1:]
	switch name {
	case "_PWD":
		if len(args) == 0 {
			return p.pwd(), true
		}
	case "_INSTANCE":
		if len(args) == 0 {
			return p.opts.ConfigID, true
		}
	case "_HASH":
		if len(args) == 0 {
			return "#", true
		}
	case "_BANG":
		if len(args) == 0 {
			return "!", true
		}
	case "_ENV":
		if braced && len(args) == 1 {
			return p.opts.Getenv(args[0]), true
		}
	case "_RANDOM":
		if braced {
			return p.random(args, pos)
		}
	}
	if v, ok := p.params[name]; ok && len(args) == 0 {
		return strings.Join(v, "\n"), true
	}
	if braced && identLen(name) == len(name) && !p.warned[name] {
		p.warned[name] = true
		p.diag(pos, "${%s} is not defined: it stays as written (keepalived leaves undefined parameters alone)", inner)
	}
	return "", false
}

// random is ${_RANDOM [MIN [MAX]]}. An import must give the same output on
// every run, so it takes MIN (0 by default) and says so in a Diag; the
// operator picks the value they want in the result.
func (p *pre) random(args []string, pos Pos) (string, bool) {
	lo, hi := int64(0), int64(randomMax)
	var err error
	if len(args) > 2 {
		p.diag(pos, "${_RANDOM} takes at most MIN and MAX; left as written")
		return "", false
	}
	if len(args) >= 1 {
		if lo, err = strconv.ParseInt(args[0], 10, 64); err != nil || lo < 0 {
			p.diag(pos, "${_RANDOM}: MIN %q is not a non-negative integer; left as written", args[0])
			return "", false
		}
	}
	if len(args) == 2 {
		if hi, err = strconv.ParseInt(args[1], 10, 64); err != nil || hi < lo {
			p.diag(pos, "${_RANDOM}: MAX %q is not an integer >= MIN; left as written", args[1])
			return "", false
		}
	}
	p.diag(pos, "${_RANDOM} is random in keepalived (%d..%d); the import uses MIN, %d, so that its output is reproducible", lo, hi, lo)
	return strconv.FormatInt(lo, 10), true
}

// pwd is ${_PWD}: the directory of the file being read, absolute as
// keepalived's (it changes into that directory to read the file).
func (p *pre) pwd() string {
	dir := p.stack[len(p.stack)-1].dir
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}
