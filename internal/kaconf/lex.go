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

// stripComment cuts a physical line at the first '#' or '!' outside double
// quotes: keepalived.conf(5) "Comments start with '#' or '!' to the end of
// the line and can start anywhere in a line"; keepalived -t reads
// `"kwA#x" y` as the keyword kwA#x. A backslash escapes nothing here
// (keepalived -t reads `"a\"b"` as a\ then an unmatched quote).
func stripComment(line string) string {
	quoted := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '"':
			quoted = !quoted
		case !quoted && (c == '#' || c == '!'):
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

// tokenize splits a logical line into words and braces the way keepalived
// 2.2.7 does for keyword lines (each rule checked with keepalived -t, which
// echoes the words in its smtp_server error):
//   - words are separated by blanks; '{' and '}' outside quotes are tokens of
//     their own even inside a word (`{kwK}`, `${UNDEF}`);
//   - a double-quoted string is one word, quotes removed, blanks, braces,
//     '#' and '!' kept; the quotes also end the word before and after it:
//     `kwD"a b"c` is kwD, "a b", c, and `""` is an empty word;
//   - '#' or '!' outside quotes ends the line, also when a parameter put it
//     there (`a${_HASH}b` is a; `"a${_HASH}b"` is a#b);
//   - single quotes and backslashes are ordinary characters (`'p q'` is two
//     words, `"a\x41b"` stays as written): the shell-like quoting and
//     escapes of keepalived.conf(5) "Quoted strings" apply to script command
//     lines, which SplitScript reads.
//
// unterminated reports a '"' without its closing one (keepalived:
// "Unterminated quote"); the text after it is not a word then.
func tokenize(line string) (toks []token, unterminated bool) {
	start := -1 // start of the unquoted word being read
	flush := func(i int) {
		if start >= 0 {
			toks = append(toks, token{kind: tokWord, text: line[start:i]})
			start = -1
		}
	}
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case isBlank(c):
			flush(i)
		case c == '#' || c == '!':
			flush(i)
			return toks, false
		case c == '{' || c == '}':
			flush(i)
			k := tokOpen
			if c == '}' {
				k = tokClose
			}
			toks = append(toks, token{kind: k, text: string(c)})
		case c == '"':
			flush(i)
			end := strings.IndexByte(line[i+1:], '"')
			if end < 0 {
				return toks, true
			}
			toks = append(toks, token{kind: tokWord, text: line[i+1 : i+1+end]})
			i += 1 + end
		default:
			if start < 0 {
				start = i
			}
		}
	}
	flush(len(line))
	return toks, false
}
