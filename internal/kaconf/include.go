package kaconf

import (
	"path/filepath"
	"slices"
	"strings"
)

// includeCheck is keepalived's include_check level (keepalived.conf(5),
// global_defs include_check): which include problems are errors.
type includeCheck uint8

const (
	checkReadable includeCheck = 1 << iota // a match is not a readable file
	checkMatch                             // no file matches a pattern without wildcards
	checkWildcard                          // no file matches, wildcards or not
	checkBrace                             // an alternative of a brace expansion matches nothing
	checkAll      = checkReadable | checkMatch | checkWildcard | checkBrace
)

// includeKeywords maps the include variants of keepalived.conf(5) to the
// checks they add: includer = readable, includem = match, includew =
// wildcard_match, includeb = brace_match, includea = all. Plain include
// never fails ("retained for backward compatibility").
var includeKeywords = map[string]includeCheck{
	"include":  0,
	"includer": checkReadable,
	"includem": checkMatch,
	"includew": checkWildcard,
	"includeb": checkBrace,
	"includea": checkAll,
}

var checkNames = map[string]includeCheck{
	"readable":       checkReadable,
	"match":          checkMatch,
	"wildcard_match": checkWildcard,
	"brace_match":    checkBrace,
}

// includeLine reports whether a line (comments removed) is an include.
func includeLine(text string) (kw, rest string, ok bool) {
	i := 0
	for i < len(text) && !isBlank(text[i]) {
		i++
	}
	if _, ok := includeKeywords[text[:i]]; !ok {
		return "", "", false
	}
	return text[:i], trimBlank(text[i:]), true
}

// include reads the files an include line names, in glob order, where the
// line stands. Relative patterns are relative to the including file's
// directory (keepalived.conf(5), "include").
func (p *pre) include(kw, rest string, pos Pos) error {
	// keepalived takes the rest of the line as the pattern, as written:
	// keepalived -t reports `include "{a,b}/x.conf" foo` as missing file
	// '"{a,b}/x.conf" foo'.
	if rest == "" {
		return errorf(pos, "%s without a file name", kw)
	}
	cur := &p.stack[len(p.stack)-1]
	check := cur.check | includeKeywords[kw]
	if check&(checkMatch|checkWildcard|checkBrace) != 0 {
		check |= checkReadable // "match, wildcard_match and brace_match include the readable check"
	}
	pattern := rest
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(cur.dir, pattern)
	}
	alts := expandBraces(pattern, maxBraceAlternatives)
	if alts == nil {
		return errorf(pos, "%s %s: more than %d brace alternatives", kw, rest, maxBraceAlternatives)
	}
	braced := len(alts) > 1 || alts[0] != pattern
	var matches []string
	for _, alt := range alts {
		m, err := p.opts.Glob(alt)
		if err != nil {
			return errorf(pos, "%s %s: bad pattern: %v", kw, rest, err)
		}
		if len(m) == 0 {
			switch {
			case braced && check&checkBrace != 0:
				return errorf(pos, "%s %s: %s matches no file (brace_match)", kw, rest, alt)
			case check&checkWildcard != 0 || check&checkMatch != 0 && !hasMeta(alt):
				return errorf(pos, "%s %s: %s matches no file", kw, rest, alt)
			}
		}
		slices.Sort(m) // each alternative sorted on its own, as glob(3) with GLOB_BRACE
		matches = append(matches, m...)
	}
	if len(matches) == 0 {
		p.diag(pos, "%s %s matches no file", kw, rest)
		return nil
	}
	for _, m := range matches {
		if err := p.readInclude(kw, m, pos, check); err != nil {
			return err
		}
	}
	return nil
}

func (p *pre) readInclude(kw, path string, pos Pos, check includeCheck) error {
	key := filepath.Clean(path)
	for _, f := range p.stack {
		if filepath.Clean(f.path) == key {
			return errorf(pos, "%s %s: include loop (%s is already being read)", kw, path, f.path)
		}
	}
	if len(p.stack) >= maxDepth {
		return errorf(pos, "%s %s: includes nested more than %d deep", kw, path, maxDepth)
	}
	data, err := p.opts.ReadFile(path)
	if err != nil {
		if check&checkReadable != 0 {
			return errorf(pos, "%s: cannot read %s: %v", kw, path, err)
		}
		p.diag(pos, "%s: cannot read %s: %v (skipped)", kw, path, err)
		return nil
	}
	return p.readFile(path, data)
}

// hasMeta reports whether a pattern has glob wildcards.
func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[`) }

// maxBraceAlternatives bounds a pattern's brace expansion, which grows as
// the product of its lists.
const maxBraceAlternatives = 4096

// expandBraces expands csh-style {a,b} alternatives, nested ones too, left
// to right as glob(3) with GLOB_BRACE does ("{foo/{,cat,dog},bar}" in
// keepalived.conf(5)). A brace without a matching close or a comma is text.
// It returns nil when there would be more than limit alternatives.
func expandBraces(s string, limit int) []string {
	open := -1
	for i := 0; i < len(s); i++ {
		if s[i] != '{' {
			continue
		}
		open = i
		level, commas := 0, []int{}
		close := -1
		for j := i; j < len(s) && close < 0; j++ {
			switch s[j] {
			case '{':
				level++
			case '}':
				level--
				if level == 0 {
					close = j
				}
			case ',':
				if level == 1 {
					commas = append(commas, j)
				}
			}
		}
		if close < 0 || len(commas) == 0 {
			continue // not an alternative list: keep scanning after this '{'
		}
		var out []string
		prev := open + 1
		for _, c := range append(commas, close) {
			tails := expandBraces(s[prev:c]+s[close+1:], limit-len(out))
			if tails == nil || len(out)+len(tails) > limit {
				return nil
			}
			for _, tail := range tails {
				out = append(out, s[:open]+tail)
			}
			prev = c + 1
		}
		return out
	}
	return []string{s}
}

// includeCheck applies an `include_check [OPTIONS]` line to the file being
// read (keepalived.conf(5), global_defs): no option means all; options with
// '+' or '-' add to or remove from the current level, plain ones set it. The
// level is the file's own: an included file starts with its includer's and
// its changes end with it.
func (p *pre) includeCheck(rest string, pos Pos) {
	cur := &p.stack[len(p.stack)-1]
	words := strings.Fields(rest)
	if len(words) == 0 {
		cur.check = checkAll
		return
	}
	level := cur.check
	for _, w := range words {
		if w[0] != '+' && w[0] != '-' {
			level = 0
			break
		}
	}
	for _, w := range words {
		op, name := byte(0), w
		if w[0] == '+' || w[0] == '-' {
			op, name = w[0], w[1:]
		}
		c, ok := checkNames[name]
		if !ok {
			p.diag(pos, "include_check: unknown option %q (readable, match, wildcard_match, brace_match)", w)
			continue
		}
		if op == '-' {
			level &^= c
		} else {
			level |= c
		}
	}
	cur.check = level
}
