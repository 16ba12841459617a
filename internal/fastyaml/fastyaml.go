// Package fastyaml reads the items of a large YAML list that use only the
// plain subset configs are written in, about three times faster than
// yaml.v3, and leaves everything else to yaml.v3.
//
// It exists for one measurement: the start of a daemon with a 1,000
// virtual servers x 10 real servers file, where yaml.v3's scanner and
// parser are most of the time. Without it (issue 12, 2026-12-06, the same
// harness before and after, qemu TCG test VM): start to all destinations
// 1.04 s -> 1.68 s on one vCPU (keepalived: 1.29 s), 0.69 s -> 1.00 s on
// two; `vigil config validate` 0.44 s -> 1.12 s. On the host the
// Loader's cold parse went from 23 to 53 ms. config decodes only items
// that decode cleanly this way; a problem is always reported by the whole
// read, with its FILE:LINE:COLUMN.
package fastyaml

import (
	"bytes"
	"strconv"
	"strings"
)

// Item reads the text of one item of a block sequence ("- " line first)
// in the plain layout configs are written in, and returns the value
// config's whole read (yaml.v3 to nodes, then converted) gives it: maps of
// string keys, []any, string, int, float64, bool and nil. It reports false
// for anything outside that layout, and the item then goes through
// yaml.v3. What it reads:
//   - block mappings with keys of letters, digits, '_' and '-', and block
//     sequences, nested by indentation (a sequence may stand at its key's
//     indentation), with "- key: value" starting a mapping inside an entry;
//   - flow mappings and sequences within one line;
//   - scalars within one line: plain ones of printable ASCII (resolved as
//     yaml.v3 resolves them, see plainValue), single-quoted ones, and
//     double-quoted ones without escapes;
//   - comments after a space, comment lines and blank lines.
//
// Everything else it leaves to yaml.v3: multi-line scalars, block scalars,
// escapes, tags, anchors and aliases, complex keys, duplicate keys, keys
// with capitals (as nodeValue), non-ASCII text, trailing commas, values it
// is not sure how yaml.v3 resolves. config's tests compare what it
// accepts with the whole read's value (TestQuickItem, FuzzQuickItem).
func Item(text []byte) (any, bool) {
	p := quickParser{}
	if !p.split(text) || len(p.lines) == 0 {
		return nil, false
	}
	first := p.lines[0]
	if !seqEntry(first.text) {
		return nil, false
	}
	list, ok := p.seq(first.indent)
	if !ok || len(list) != 1 || p.at != len(p.lines) {
		return nil, false
	}
	return list[0], true
}

type quickLine struct {
	indent int
	text   []byte // from the first non-space to the last
}

type quickParser struct {
	lines []quickLine // without blank and comment lines
	at    int         // the next line to read
}

// split cuts text into lines, dropping blank and comment lines; false for
// bytes outside printable ASCII.
func (p *quickParser) split(text []byte) bool {
	p.lines = make([]quickLine, 0, bytes.Count(text, []byte{'\n'})+1)
	for len(text) > 0 {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		indent := 0
		for indent < len(line) && line[indent] == ' ' {
			indent++
		}
		end := len(line)
		for end > indent && line[end-1] == ' ' {
			end--
		}
		body := line[indent:end]
		for _, c := range body {
			if c < 0x20 || c > 0x7e {
				return false
			}
		}
		if len(body) == 0 || body[0] == '#' {
			continue
		}
		p.lines = append(p.lines, quickLine{indent, body})
	}
	return true
}

// seqEntry reports whether a line's text is a block sequence entry.
func seqEntry(text []byte) bool {
	return text[0] == '-' && (len(text) == 1 || text[1] == ' ')
}

// node reads the block node starting at the current line, whose
// indentation is its column.
func (p *quickParser) node() (any, bool) {
	l := p.lines[p.at]
	if seqEntry(l.text) {
		list, ok := p.seq(l.indent)
		return list, ok
	}
	if keyLen(l.text) > 0 {
		m, ok := p.mapping(l.indent)
		return m, ok
	}
	v, ok := lineValue(l.text)
	if !ok {
		return nil, false
	}
	p.at++
	// A more indented line would continue a plain scalar.
	return v, !p.deeper(l.indent - 1)
}

// deeper reports whether the current line is indented more than indent.
func (p *quickParser) deeper(indent int) bool {
	return p.at < len(p.lines) && p.lines[p.at].indent > indent
}

// seq reads the block sequence at indent.
func (p *quickParser) seq(indent int) ([]any, bool) {
	list := []any{}
	for p.at < len(p.lines) && p.lines[p.at].indent == indent && seqEntry(p.lines[p.at].text) {
		l := p.lines[p.at]
		rest := l.text[1:]
		n := 0
		for n < len(rest) && rest[n] == ' ' {
			n++
		}
		rest = rest[n:]
		var v any
		ok := true
		switch {
		case len(rest) == 0 || rest[0] == '#':
			// The entry's node is on the lines below, or it is null.
			p.at++
			if p.deeper(indent) {
				v, ok = p.node()
			}
		case seqEntry(rest):
			return nil, false // "- - x"
		default:
			// What follows "- " is a node at its own column ("- key: v"
			// starts a mapping whose keys line up with key).
			p.lines[p.at] = quickLine{indent + 1 + n, rest}
			v, ok = p.node()
		}
		if !ok {
			return nil, false
		}
		list = append(list, v)
	}
	return list, true
}

// mapping reads the block mapping at indent.
func (p *quickParser) mapping(indent int) (map[string]any, bool) {
	m := make(map[string]any, 8)
	for p.at < len(p.lines) && p.lines[p.at].indent == indent {
		l := p.lines[p.at]
		k := keyLen(l.text)
		if k == 0 {
			return nil, false
		}
		key, ok := quickKey(l.text[:k], m)
		if !ok {
			return nil, false
		}
		rest := bytes.TrimLeft(l.text[k+1:], " ")
		p.at++
		var v any
		if len(rest) == 0 || rest[0] == '#' {
			// The value is on the lines below (a sequence may stand at the
			// key's indentation), or it is null.
			if p.deeper(indent) || p.at < len(p.lines) && p.lines[p.at].indent == indent && seqEntry(p.lines[p.at].text) {
				if v, ok = p.node(); !ok {
					return nil, false
				}
			}
		} else {
			if v, ok = lineValue(rest); !ok || p.deeper(indent) {
				return nil, false
			}
		}
		m[key] = v
	}
	return m, true
}

// keyLen returns the length of the plain key a line's text starts with
// when ": " or ":" and the end of the line follow it, else 0. Keys are at
// most 256 bytes long (yaml.v3 refuses keys over 1,024).
func keyLen(text []byte) int {
	n := 0
	for n < len(text) && isKeyByte(text[n], n == 0) {
		n++
	}
	if n == 0 || n > 256 || n == len(text) || text[n] != ':' || n+1 < len(text) && text[n+1] != ' ' {
		return 0
	}
	return n
}

func isKeyByte(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		return true
	case c >= '0' && c <= '9', c == '-':
		return !first
	}
	return false
}

// quickKey returns a key as nodeValue keeps it; false when it would not be
// a string to yaml.v3 (true, null, ...), m has it already, or it has
// capitals (the whole parse warns of those, see nodeValue).
func quickKey(raw []byte, m map[string]any) (string, bool) {
	key := internKey(raw)
	if v, ok := plainValue(key); !ok || v != key {
		return "", false
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c >= 'A' && c <= 'Z' {
			return "", false
		}
	}
	if _, dup := m[key]; dup {
		return "", false
	}
	return key, true
}

// internKey returns the config's own keys without allocating.
func internKey(b []byte) string {
	switch string(b) {
	case "name":
		return "name"
	case "address":
		return "address"
	case "weight":
		return "weight"
	case "protocol":
		return "protocol"
	case "scheduler":
		return "scheduler"
	case "real_servers":
		return "real_servers"
	case "check":
		return "check"
	case "type":
		return "type"
	case "forward":
		return "forward"
	case "interval":
		return "interval"
	case "timeout":
		return "timeout"
	}
	return string(b)
}

// lineValue reads the rest of a line after "key: " or "- " as a flow
// collection or a scalar, a comment at most following it.
func lineValue(text []byte) (any, bool) {
	v, rest, ok := flowValue(text, 0)
	return v, ok && lineEnd(rest)
}

// lineEnd reports whether nothing but spaces and a comment after a space
// is left of a line.
func lineEnd(rest []byte) bool {
	t := bytes.TrimLeft(rest, " ")
	return len(t) == 0 || t[0] == '#' && len(t) < len(rest)
}

// maxFlowDepth bounds the nesting of flow collections quickItem reads (a
// config needs a few levels; yaml.v3 refuses over 10,000).
const maxFlowDepth = 32

// flowValue reads a value at the start of text: a flow collection, a quoted
// scalar or a plain scalar, and returns it with the text after it. depth
// is the number of flow collections around it (0: in block context).
func flowValue(text []byte, depth int) (any, []byte, bool) {
	if len(text) == 0 || depth == maxFlowDepth && (text[0] == '{' || text[0] == '[') {
		return nil, nil, false
	}
	switch text[0] {
	case '{':
		return flowMapping(text[1:], depth+1)
	case '[':
		return flowSeq(text[1:], depth+1)
	case '"':
		end := bytes.IndexByte(text[1:], '"')
		if end < 0 || bytes.IndexByte(text[1:1+end], '\\') >= 0 {
			return nil, nil, false
		}
		return string(text[1 : 1+end]), text[2+end:], true
	case '\'':
		var b []byte
		for i := 1; i < len(text); i++ {
			if text[i] != '\'' {
				b = append(b, text[i])
				continue
			}
			if i+1 < len(text) && text[i+1] == '\'' {
				b = append(b, '\'')
				i++
				continue
			}
			return string(b), text[i+1:], true
		}
		return nil, nil, false
	}
	n := plainLen(text, depth > 0)
	if n == 0 {
		return nil, nil, false
	}
	v, ok := plainValue(string(bytes.TrimRight(text[:n], " ")))
	return v, text[n:], ok
}

// plainLen returns the length of the plain scalar text starts with: up to
// a comment, ": ", the end of the line, or in a flow collection a flow
// indicator. 0 when it does not start one, or holds characters it is not
// sure yaml.v3 reads the same way.
func plainLen(text []byte, inFlow bool) int {
	c := text[0]
	switch {
	case isAlnum(c), c == '/', c == '.', c == '_', c == '~', c == '$', c == '+':
	case c == '-':
		if len(text) == 1 || text[1] == ' ' || inFlow && isFlowIndicator(text[1]) {
			return 0
		}
	default:
		return 0
	}
	for i := 1; i < len(text); i++ {
		c := text[i]
		switch {
		case isAlnum(c), strings.IndexByte("-._/~+=@%$()^;<>!?*&|`'\"\\", c) >= 0:
			if inFlow && c == '?' {
				return 0
			}
		case c == ' ':
			if i+1 < len(text) && text[i+1] == '#' {
				return i
			}
		case c == ':':
			if i+1 == len(text) || text[i+1] == ' ' {
				return i
			}
			if !isAlnum(text[i+1]) && text[i+1] != ':' && text[i+1] != '/' && text[i+1] != '.' {
				return 0
			}
		case inFlow && isFlowIndicator(c):
			return i
		case c == ',' || c == '[' || c == ']' || c == '{' || c == '}':
			// in block context these are part of the scalar
		default:
			return 0 // '#' without a space before it, and the rest
		}
	}
	return len(text)
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isFlowIndicator(c byte) bool {
	return c == ',' || c == '[' || c == ']' || c == '{' || c == '}'
}

// flowMapping reads a flow mapping after its '{' on one line, depth
// collections deep.
func flowMapping(text []byte, depth int) (any, []byte, bool) {
	m := make(map[string]any, 8)
	text = bytes.TrimLeft(text, " ")
	if len(text) > 0 && text[0] == '}' {
		return m, text[1:], true
	}
	for {
		k := keyLen(text)
		if k == 0 || k+1 == len(text) {
			return nil, nil, false
		}
		key, ok := quickKey(text[:k], m)
		if !ok {
			return nil, nil, false
		}
		var v any
		v, text, ok = flowValue(bytes.TrimLeft(text[k+1:], " "), depth)
		if !ok {
			return nil, nil, false
		}
		m[key] = v
		var done bool
		if text, done, ok = flowNext(text, '}'); !ok || done {
			return m, text, ok
		}
	}
}

// flowNext reads what follows an entry of a flow collection that end
// closes: end (done), or a comma and spaces before the next entry; false
// for anything else, a trailing comma or an empty entry included.
func flowNext(text []byte, end byte) (rest []byte, done, ok bool) {
	text = bytes.TrimLeft(text, " ")
	switch {
	case len(text) == 0:
	case text[0] == end:
		return text[1:], true, true
	case text[0] == ',':
		text = bytes.TrimLeft(text[1:], " ")
		if len(text) > 0 && text[0] != end && text[0] != ',' {
			return text, false, true
		}
	}
	return nil, false, false
}

// flowSeq reads a flow sequence after its '[' on one line, depth
// collections deep.
func flowSeq(text []byte, depth int) (any, []byte, bool) {
	list := []any{}
	text = bytes.TrimLeft(text, " ")
	if len(text) > 0 && text[0] == ']' {
		return list, text[1:], true
	}
	for {
		if keyLen(text) > 0 {
			return nil, nil, false // a single-pair mapping
		}
		v, rest, ok := flowValue(text, depth)
		if !ok {
			return nil, nil, false
		}
		list = append(list, v)
		var done bool
		if text, done, ok = flowNext(rest, ']'); !ok || done {
			return list, text, ok
		}
	}
}

// plainValue resolves a plain scalar as yaml.v3 does (resolve) and as
// scalarValue converts it; false where it is not sure: integers and floats
// other than plain decimals, special floats, timestamps, merge keys, and
// anything starting with a digit, a sign or a point that is not clearly
// text.
func plainValue(s string) (any, bool) {
	switch s {
	case "~", "null", "Null", "NULL":
		return nil, true
	case "true", "True", "TRUE":
		return true, true
	case "false", "False", "FALSE":
		return false, true
	}
	c := s[0]
	if c != '+' && c != '-' && c != '.' && (c < '0' || c > '9') {
		return s, c != '<' // "<<" merges
	}
	if PlainDecimal(s, false) {
		v, err := strconv.Atoi(s)
		return v, err == nil
	}
	if PlainDecimal(s, true) {
		v, err := strconv.ParseFloat(s, 64)
		return v, err == nil
	}
	if c >= '0' && c <= '9' {
		return s, textNotNumber(s)
	}
	// A sign or a point, then a letter: no number yaml.v3 reads (-f,
	// .hidden), but for .inf and .nan.
	if len(s) > 1 && isLetter(s[1]) && !strings.EqualFold(s, ".inf") && !strings.EqualFold(s, ".nan") {
		return s, true
	}
	return nil, false
}

// textNotNumber reports whether s, which starts with a digit, is text to
// yaml.v3: no timestamp (those start with four digits and '-'), and a
// character no integer or float yaml.v3 reads has: ':' or '/', a second
// point, or a letter other than the hexadecimal digits and the x, o, b and
// e of prefixes and exponents (addresses like 192.0.2.1 and 192.0.2.1:80,
// durations like 10s).
func textNotNumber(s string) bool {
	if len(s) > 4 && s[4] == '-' && digits(s[:4], 4) {
		return false
	}
	if strings.ContainsAny(s, ":/") || strings.Count(s, ".") >= 2 {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20 // lower case, for letters
		if c >= 'a' && c <= 'z' && (c > 'f' && c != 'x' && c != 'o') {
			return true
		}
	}
	return false
}

// PlainDecimal reports whether s is an optional sign and 1 to 18 digits
// without a leading zero (yaml.v3 reads 0755 as octal), followed when
// frac by a point and 1 to 15 digits: a number whose value yaml.v3 and
// strconv agree on.
func PlainDecimal(s string, frac bool) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	intPart, fracPart, hasPoint := strings.Cut(s, ".")
	if hasPoint != frac || !digits(intPart, 18) || (len(intPart) > 1 && intPart[0] == '0') {
		return false
	}
	return !frac || digits(fracPart, 15)
}

func digits(s string, most int) bool {
	if s == "" || len(s) > most {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
