package kaconf

import (
	"errors"
	"strings"
)

// SplitScript splits a script command line (vrrp_script's script, notify*,
// misc_path, ...) into its program and arguments by keepalived.conf(5)
// "Quoted strings": unquoted blanks separate words; text between " or '
// keeps its blanks and joins the text around it (`abcd" efg h jkl "mnop` is
// one word); the escapes \a \b \E \f \n \r \t \v, \nnn (octal), \xXX (hex),
// \cC (control C) are decoded and \C is C for any other C, so \" is a quote
// character that neither starts nor ends a quoted string. The keyword
// tokenizer leaves all this to the command line, so a translator passes the
// argument(s) of such a keyword here, joined with blanks.
func SplitScript(s string) ([]string, error) {
	var (
		out    []string
		word   strings.Builder
		inWord bool
		quote  byte
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i += decodeEscape(s[i+1:], &word)
			inWord = true
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			word.WriteByte(c)
		case c == '"' || c == '\'':
			quote = c
			inWord = true
		case isBlank(c):
			if inWord {
				out = append(out, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, errors.New("kaconf: script command line has an unterminated " + string(quote) + " quote")
	}
	if inWord {
		out = append(out, word.String())
	}
	return out, nil
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
