package kaconf

import "strings"

// isBlank is keepalived's word separator set (isspace in the C locale).
func isBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

func trimBlank(s string) string {
	i, j := 0, len(s)
	for i < j && isBlank(s[i]) {
		i++
	}
	for j > i && isBlank(s[j-1]) {
		j--
	}
	return s[i:j]
}

// stripComment cuts a physical line at the first '#' or '!' outside quotes:
// keepalived.conf(5) "Comments start with '#' or '!' to the end of the line
// and can start anywhere in a line"; inside a quoted string they are text.
// It is done on the line as read, before substitution, so ${_HASH} and
// ${_BANG} can put the two characters into a value.
func stripComment(line string) string {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0 && c == '\\' && i+1 < len(line):
			i++ // \" does not end the string
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
		case c == '"' || c == '\'':
			quote = c
		case c == '#' || c == '!':
			return line[:i]
		}
	}
	return line
}

type tokKind uint8

const (
	tokWord tokKind = iota
	tokOpen
	tokClose
)

type token struct {
	kind tokKind
	text string
}

// tokenize splits a logical line into words and braces. Words are separated
// by blanks; '{' and '}' outside quotes are tokens of their own even inside
// a word (keepalived -t reads `{kwK}` and `${UNDEF}` as separate braces).
// A quoted part (between " or ') keeps its blanks and braces; the quote
// characters are removed and the part joins the text around it into one
// word (`abcd" efg h jkl "mnop` is one word), and shell escapes inside it are
// decoded (keepalived.conf(5), "Quoted strings"). unterminated reports a
// quote left open at the end of the line (the rest of the line is the
// quoted text then).
func tokenize(line string) (toks []token, unterminated bool) {
	var (
		word    strings.Builder
		inWord  bool
		quote   byte
		flushed = func() {
			if inWord {
				toks = append(toks, token{kind: tokWord, text: word.String()})
				word.Reset()
				inWord = false
			}
		}
	)
	for i := 0; i < len(line); i++ {
		c := line[i]
		if quote != 0 {
			switch {
			case c == quote:
				quote = 0
			case c == '\\' && i+1 < len(line):
				n := decodeEscape(line[i+1:], &word)
				i += n
			default:
				word.WriteByte(c)
			}
			continue
		}
		switch {
		case isBlank(c):
			flushed()
		case c == '{' || c == '}':
			flushed()
			k := tokOpen
			if c == '}' {
				k = tokClose
			}
			toks = append(toks, token{kind: k, text: string(c)})
		case c == '"' || c == '\'':
			quote = c
			inWord = true // "" is an empty word
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	flushed()
	return toks, quote != 0
}

// decodeEscape decodes the escape after a backslash (s starts after it),
// writes its value and returns how many bytes of s it used. The set is
// keepalived.conf(5) "Quoted strings": \a \b \E \f \n \r \t \v, \nnn (up to
// three octal digits), \xXX (any run of hex digits; the low byte is kept),
// \cC (control C) and \C = C for any other C.
func decodeEscape(s string, w *strings.Builder) int {
	switch c := s[0]; c {
	case 'a':
		w.WriteByte('\a')
	case 'b':
		w.WriteByte('\b')
	case 'E', 'e':
		w.WriteByte(0x1b)
	case 'f':
		w.WriteByte('\f')
	case 'n':
		w.WriteByte('\n')
	case 'r':
		w.WriteByte('\r')
	case 't':
		w.WriteByte('\t')
	case 'v':
		w.WriteByte('\v')
	case 'x':
		n, v := 1, 0
		for n < len(s) && hexVal(s[n]) >= 0 {
			v = (v<<4 | hexVal(s[n])) & 0xff
			n++
		}
		if n == 1 { // \x without digits: the letter itself
			w.WriteByte('x')
			return 1
		}
		w.WriteByte(byte(v))
		return n
	case 'c':
		if len(s) < 2 {
			w.WriteByte('c')
			return 1
		}
		if s[1] == '?' {
			w.WriteByte(0x7f)
		} else {
			w.WriteByte(s[1] & 0x1f)
		}
		return 2
	default:
		if c >= '0' && c <= '7' {
			n, v := 0, 0
			for n < len(s) && n < 3 && s[n] >= '0' && s[n] <= '7' {
				v = v<<3 | int(s[n]-'0')
				n++
			}
			w.WriteByte(byte(v))
			return n
		}
		w.WriteByte(c)
	}
	return 1
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
