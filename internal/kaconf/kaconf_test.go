package kaconf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// render prints a tree one node a line, children indented, as
// `keyword [args] {` ... `}` so that table tests can state the expected tree
// readably.
func render(nodes []*Node) string {
	var b strings.Builder
	var walk func([]*Node, string)
	walk = func(ns []*Node, ind string) {
		for _, n := range ns {
			b.WriteString(ind + n.Keyword)
			for _, a := range n.Args {
				fmt.Fprintf(&b, " %q", a)
			}
			if n.Block {
				b.WriteString(" {")
			}
			b.WriteString("\n")
			walk(n.Children, ind+"  ")
			if n.Block {
				b.WriteString(ind + "}\n")
			}
		}
	}
	walk(nodes, "")
	return b.String()
}

// memFS is an in-memory file tree for includes: ReadFile and a Glob that
// understands * and ? through filepath.Match.
type memFS map[string]string

func (m memFS) readFile(path string) ([]byte, error) {
	if s, ok := m[filepath.Clean(path)]; ok {
		return []byte(s), nil
	}
	return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
}

func (m memFS) glob(pattern string) ([]string, error) {
	var out []string
	for name := range m {
		ok, err := filepath.Match(filepath.Clean(pattern), name)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, name)
		}
	}
	return out, nil
}

func (m memFS) opts(id string) Options {
	return Options{ConfigID: id, ReadFile: m.readFile, Glob: m.glob, Getenv: func(string) string { return "" }}
}

// noFS fails every include: the input is the only file.
func noFS(id string) Options {
	return memFS{}.opts(id)
}

var syntaxTests = []struct {
	name, in, want string
}{
	{"blocks and nesting (man: blocks delimited by '{' and '}')",
		"global_defs {\n  router_id lb1\n}\nvrrp_instance VI_1 {\n  virtual_ipaddress {\n    192.0.2.10/24 dev eth0\n  }\n}\n",
		"global_defs {\n  router_id \"lb1\"\n}\nvrrp_instance \"VI_1\" {\n  virtual_ipaddress {\n    192.0.2.10/24 \"dev\" \"eth0\"\n  }\n}\n"},
	{"comments with # and ! anywhere on a line (man: DESCRIPTION)",
		"# head\n! bang\nglobal_defs { # open\n  router_id lb1#tail\n  router_id lb2 ! tail\n}\n",
		"global_defs {\n  router_id \"lb1\"\n  router_id \"lb2\"\n}\n"},
	{"double-quoted strings are one word, quotes removed (keepalived -t: smtp_server \"a b\" 25 echoes 'a b')",
		"kw \"a b\" \"\" x\n",
		"kw \"a b\" \"\" \"x\"\n"},
	{"quotes end the word before and after them (keepalived -t: kwD\"a b\"c is kwD, 'a b', c)",
		"kw kwD\"a b\"c x\"\"y\n",
		"kw \"kwD\" \"a b\" \"c\" \"x\" \"\" \"y\"\n"},
	{"single quotes are ordinary characters (keepalived -t: 'p q' is 'p and q')",
		"kw 'p q'\n",
		"kw \"'p\" \"q'\"\n"},
	{"comment characters and braces inside quotes are text (keepalived -t: \"a#b\", \"a!b\")",
		"kw \"a # b ! c { }\"\n",
		"kw \"a # b ! c { }\"\n"},
	{"backslashes are not escapes in keyword lines (keepalived -t: \"a\\x41b\" stays)",
		`kw "a\x41b" a\ b "t\t"` + "\n",
		"kw \"a\\\\x41b\" \"a\\\\\" \"b\" \"t\\\\t\"\n"},
	{"a backslash outside quotes is text (keepalived -t: Unknown keyword 'kwE\\tz')",
		`kwE\tz` + "\n",
		"kwE\\tz\n"},
	{"one-line block (keepalived -t accepts `global_defs { router_id r1 }`)",
		"virtual_server 192.0.2.1 80 { real_server 192.0.2.2 80 { weight 1 } }\n",
		"virtual_server \"192.0.2.1\" \"80\" {\n  real_server \"192.0.2.2\" \"80\" {\n    weight \"1\"\n  }\n}\n"},
	{"'{' alone on the next line (keepalived -t accepts it)",
		"vrrp_instance VI_1\n{\n  priority 100\n}\n",
		"vrrp_instance \"VI_1\" {\n  priority \"100\"\n}\n"},
	{"braces split words (keepalived -t: `{kwK}` is '{', kwK, '}')",
		"global_defs{router_id r1}\n",
		"global_defs {\n  router_id \"r1\"\n}\n"},
	{"words after '}' start a new line in the parent",
		"a {\n x\n} b 1\n",
		"a {\n  x\n}\nb \"1\"\n"},
	{"empty block",
		"notification_email {}\nother\n",
		"notification_email {\n}\nother\n"},
	{"CRLF line ends",
		"a {\r\n x 1\r\n}\r\n",
		"a {\n  x \"1\"\n}\n"},
}

// TestSyntax checks the word and block rules of keepalived.conf(5)
// (DESCRIPTION, "Quoted strings") and what keepalived -t of 2.2.7 accepts.
func TestSyntax(t *testing.T) {
	for _, tc := range syntaxTests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseBytes("k.conf", []byte(tc.in), noFS("n1"))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := render(f.Nodes); got != tc.want {
				t.Errorf("tree:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestPositions: every node carries the line its keyword was on.
func TestPositions(t *testing.T) {
	in := "# c\nglobal_defs\n{\n  router_id r1\n}\n\nvrrp_instance V { priority 1\n}\n"
	f, err := ParseBytes("dir/k.conf", []byte(in), noFS("n1"))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	var walk func([]*Node)
	walk = func(ns []*Node) {
		for _, n := range ns {
			got = append(got, n.Keyword+"@"+n.Pos.String())
			walk(n.Children)
		}
	}
	walk(f.Nodes)
	want := []string{"global_defs@dir/k.conf:2", "router_id@dir/k.conf:4", "vrrp_instance@dir/k.conf:7", "priority@dir/k.conf:7"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("positions %v, want %v", got, want)
	}
}

var syntaxErrorTests = []struct {
	name, in string
	line     int
	msg      string
}{
	{"unclosed block names the line it opened (keepalived -t: \"missing '}'\")",
		"global_defs {\n  router_id r1\n", 1, "never closed"},
	{"innermost unclosed block of two",
		"a {\n b {\n  c\n", 2, "never closed: missing '}' (and 1 enclosing"},
	{"a block closed later does not hide the unclosed outer one",
		"a {\n b {\n  c\n }\n d {\n e\n}\n", 1, "never closed"},
	{"extra '}' names its line (keepalived -t: \"(Line 4) Extra '}' found\")",
		"global_defs {\n  router_id r1\n}\n}\n", 4, "closes no block"},
	{"'{' without a keyword", "{\n}\n", 1, "without a keyword"},
	{"'{' after '}' on one line", "a {\n} {\n}\n", 2, "without a keyword"},
	{"unterminated quote (keepalived -t: \"Unterminated quote\")",
		"global_defs {\n smtp_server \"abc\n}\n", 2, "unterminated quoted string"},
	{"a backslash does not escape a quote (keepalived -t: \"a\\\"b\" is an unmatched quote)",
		"kw \"a\\\"b\"\n", 1, "unterminated quoted string"},
}

// TestErrors: every syntax problem is an *Error naming the right line.
func TestErrors(t *testing.T) {
	for _, tc := range syntaxErrorTests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBytes("k.conf", []byte(tc.in), noFS("n1"))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Pos.Line != tc.line || e.Pos.File != "k.conf" || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("err = %v, want k.conf:%d: ...%s...", err, tc.line, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("k.conf:%d: ", tc.line)) {
				t.Errorf("Error() = %q, want it to start with FILE:LINE", err.Error())
			}
		})
	}
}

// TestParseFile reads from the OS with the zero Options' hooks.
func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte("global_defs {\n router_id r1\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(path, Options{ConfigID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if g := f.Nodes[0].Find("router_id"); g == nil || g.Args[0] != "r1" {
		t.Errorf("router_id = %+v", g)
	}
	if !reflect.DeepEqual(f.Files, []string{path}) {
		t.Errorf("Files = %v", f.Files)
	}
	// The zero Options: config id = short host name, environment from the OS.
	t.Setenv("VIGIL_KACONF_T", "from-env")
	if err := os.WriteFile(path, []byte("kw ${_INSTANCE} ${_ENV VIGIL_KACONF_T}\n@"+shortHostname()+" mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	short, _, _ := strings.Cut(host, ".")
	if f, err = Parse(path, Options{}); err != nil {
		t.Fatal(err)
	}
	if got, want := render(f.Nodes), fmt.Sprintf("kw %q \"from-env\"\nmine\n", short); got != want {
		t.Errorf("zero Options: got %q, want %q", got, want)
	}
	if _, err := Parse(filepath.Join(dir, "missing.conf"), Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing main file: err = %v, want ErrNotExist wrapped", err)
	}
}
