package kaconf

import (
	"path/filepath"
	"strings"
)

// logical is one line after preprocessing, with the place it came from.
type logical struct {
	text string
	pos  Pos
}

// maxDepth bounds nested parameter/generator expansion of one line (a
// definition that uses itself would otherwise never end) and nested includes.
const maxDepth = 64

// multiline is a `$NAME= \` definition being read (keepalived.conf(5),
// "Parameter substitution": every line but the last ends with '\').
// discard is set when the definition stands on a conditional line that is
// not for this config id: its lines are skipped, not read as lines.
type multiline struct {
	name    string
	lines   []string
	discard bool
	pos     Pos
}

// fileState is what belongs to the file being read: its directory (for
// relative includes and ${_PWD}) and its include_check level, which
// keepalived saves when it opens an include and restores after it.
type fileState struct {
	path  string
	dir   string
	check includeCheck
}

// pre expands one configuration (the main file and its includes) into
// logical lines. It is pure apart from the ReadFile/Glob/Getenv hooks.
type pre struct {
	opts    Options
	params  map[string][]string // a multi-line value has several lines
	files   []string
	diags   []Diag
	out     []logical
	stack   []fileState
	ml      *multiline
	warned  map[string]bool // unknown ${NAME} reported once per name
	genVars map[string]bool // parameters last set by a generator
	work    int             // bytes of lines processed, bounded by MaxLines*workPerLine
}

// workPerLine is the expansion budget per allowed line: 256 bytes a line on
// average, 256 MiB for DefaultMaxLines.
const workPerLine = 256

func newPre(opts Options) *pre {
	return &pre{opts: opts, params: map[string][]string{}, warned: map[string]bool{}, genVars: map[string]bool{}}
}

func (p *pre) diag(pos Pos, format string, a ...any) {
	p.diags = append(p.diags, Diag{Pos: pos, Msg: errorf(pos, format, a...).Msg})
}

// readFile reads one file's lines; includes are read where they stand.
func (p *pre) readFile(name string, data []byte) error {
	var check includeCheck
	if n := len(p.stack); n > 0 {
		check = p.stack[n-1].check
	}
	p.files = append(p.files, name)
	p.stack = append(p.stack, fileState{path: name, dir: filepath.Dir(name), check: check})
	defer func() { p.stack = p.stack[:len(p.stack)-1] }()

	lines := strings.Split(string(data), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1] // a final newline ends the last line, it does not start one
	}
	for i, raw := range lines {
		pos := Pos{File: name, Line: i + 1}
		text := trimBlank(stripComment(raw))
		if p.ml != nil {
			p.continueDefinition(text, trimBlank(raw) == "")
			continue
		}
		if err := p.line(text, pos, 0); err != nil {
			return err
		}
	}
	if p.ml != nil {
		// The file ends the definition; say so, as a forgotten last line
		// usually means a stray '\'.
		start, mlName := p.ml.pos, p.ml.name
		p.endDefinition()
		p.diag(start, "multi-line definition of $%s ends with the file (its last line ends with '\\')", mlName)
	}
	return nil
}

// continueDefinition takes one more line of a multi-line definition.
// keepalived 2.2.7 ends the definition at a blank line (keepalived -t: the
// line after it is read as an ordinary line), although the man page's
// example has blank lines inside one, and skips a line that holds only a
// comment.
func (p *pre) continueDefinition(text string, blank bool) {
	if blank {
		p.endDefinition()
		return
	}
	if text == "" {
		return
	}
	if strings.HasSuffix(text, `\`) {
		if t := trimBlank(text[:len(text)-1]); t != "" {
			p.ml.lines = append(p.ml.lines, t)
		}
		return
	}
	p.ml.lines = append(p.ml.lines, text)
	p.endDefinition()
}

func (p *pre) endDefinition() {
	if !p.ml.discard {
		p.params[p.ml.name] = p.ml.lines
	}
	p.ml = nil
}

// line processes one logical line: conditional, definition, generator,
// substitution, in keepalived's order (keepalived.conf(5): `@main
// $PRIORITY=240` defines only on main; `$IF_MAIN=@main` then `$IF_MAIN
// priority 240` is conditional after substitution). depth counts the
// expansions that produced this line.
func (p *pre) line(text string, pos Pos, depth int) error {
	if depth > maxDepth {
		return errorf(pos, "parameter or generator expansion nested more than %d levels deep (a definition that uses itself?)", maxDepth)
	}
	text = trimBlank(text)
	if text == "" {
		return nil
	}
	// Nested generators can loop without producing a line (`~SEQ(X, 1,
	// 1000000) ~SEQ(Y, 1, 1000000) $A=1`), so the work is bounded, not
	// only the output.
	p.work += len(text) + 1
	if p.work > p.opts.MaxLines*workPerLine {
		return errorf(pos, "expansion does more than %d bytes of work (Options.MaxLines × %d)", p.opts.MaxLines*workPerLine, workPerLine)
	}
	if text[0] == '@' {
		rest, ok := p.conditional(text)
		if !ok {
			// A multi-line definition on a skipped line still owns its
			// continuation lines.
			if name, value, isDef := definition(rest); isDef && depth == 0 && strings.HasSuffix(value, `\`) {
				p.ml = &multiline{name: name, discard: true, pos: pos}
			}
			return nil
		}
		text = rest
		if text == "" {
			return nil
		}
	}
	if name, value, ok := definition(text); ok {
		if strings.HasSuffix(value, `\`) && depth == 0 {
			delete(p.genVars, name)
			p.ml = &multiline{name: name, pos: pos}
			if first := trimBlank(value[:len(value)-1]); first != "" {
				p.ml.lines = append(p.ml.lines, first)
			}
			return nil
		}
		p.params[name] = []string{value}
		delete(p.genVars, name)
		return nil
	}
	if text[0] == '~' {
		if handled, err := p.generator(text, pos, depth); handled || err != nil {
			return err
		}
	}
	out, changed := p.substitute(text, pos)
	if changed {
		if len(out) > maxLineLen {
			return errorf(pos, "line longer than %d bytes after parameter substitution", maxLineLen)
		}
		for _, l := range strings.Split(out, "\n") {
			if err := p.line(l, pos, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	// keepalived 2.2.7 recognises include on the expanded line: `@main
	// include x`, `$INC x` with $INC=include and a ~SEQ generating include
	// lines all include (keepalived -t reports the missing files), although
	// keepalived.conf(5) says include is detected before expansion.
	if kw, rest, ok := includeLine(text); ok {
		return p.include(kw, rest, pos)
	}
	if rest, ok := strings.CutPrefix(text, "include_check"); ok && (rest == "" || isBlank(rest[0])) {
		p.includeCheck(rest, pos) // and kept as a line: it is a global_defs keyword
	}
	if len(p.out) >= p.opts.MaxLines {
		return errorf(pos, "more than %d lines after expansion (Options.MaxLines)", p.opts.MaxLines)
	}
	p.out = append(p.out, logical{text: text, pos: pos})
	return nil
}

// conditional evaluates an `@ID rest` or `@^ID rest` line (keepalived.conf(5)
// "Conditional configuration and configuration id"): the word right after
// '@' is compared with the config id; '^' negates. It returns the rest of
// the line and whether the line is used.
func (p *pre) conditional(text string) (string, bool) {
	s := text[1:]
	neg := strings.HasPrefix(s, "^")
	if neg {
		s = s[1:]
	}
	i := 0
	for i < len(s) && !isBlank(s[i]) {
		i++
	}
	id, rest := s[:i], trimBlank(s[i:])
	return rest, (id == p.opts.ConfigID) != neg
}

// definition recognises `$NAME=VALUE`: no blank before '=', NAME of
// A-Za-z0-9_ not starting with a digit (keepalived.conf(5), "Parameter
// substitution"). VALUE has its surrounding blanks removed; it may be empty.
func definition(text string) (name, value string, ok bool) {
	if len(text) < 3 || text[0] != '$' {
		return "", "", false
	}
	n := identLen(text[1:])
	if n == 0 || 1+n >= len(text) || text[1+n] != '=' {
		return "", "", false
	}
	return text[1 : 1+n], trimBlank(text[2+n:]), true
}

// identLen is the length of the parameter name at the start of s.
func identLen(s string) int {
	i := 0
	for i < len(s) {
		c := s[i]
		if c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			i++
			continue
		}
		break
	}
	return i
}
