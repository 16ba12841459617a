package kaconf

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeTree writes files (relative path -> content) under a temp dir.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestIncludes: keepalived.conf(5) "include": globs with brace expansion,
// relative to the including file's directory, read where the line stands;
// plain include never fails, the variants make problems errors.
func TestIncludes(t *testing.T) {
	files := map[string]string{
		"keepalived.conf":  "top 1\ninclude conf.d/*.conf\nmid 2\ninclude {b,a}/x.conf\ninclude sub/inc.conf\nend 3\n",
		"conf.d/20-b.conf": "b20\n",
		"conf.d/10-a.conf": "a10\n",
		"conf.d/skip.txt":  "never\n",
		"a/x.conf":         "ax\n",
		"b/x.conf":         "bx\n",
		"sub/inc.conf":     "sub1\ninclude ../sub/more/*.conf\n",
		"sub/more/m.conf":  "m ${_PWD}\n",
	}
	dir := writeTree(t, files)
	main := filepath.Join(dir, "keepalived.conf")
	f, err := Parse(main, Options{ConfigID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	want := "top 1; a10; b20; mid 2; bx; ax; sub1; m " + filepath.Join(dir, "sub/more") + "; end 3"
	if got := flat(f.Nodes); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	wantFiles := []string{main,
		filepath.Join(dir, "conf.d/10-a.conf"), filepath.Join(dir, "conf.d/20-b.conf"),
		filepath.Join(dir, "b/x.conf"), filepath.Join(dir, "a/x.conf"),
		filepath.Join(dir, "sub/inc.conf"), filepath.Join(dir, "sub/more/m.conf")}
	if !reflect.DeepEqual(f.Files, wantFiles) {
		t.Errorf("Files = %v\nwant %v", f.Files, wantFiles)
	}
	// Pos names the included file (joined to the includer's directory) and its line.
	for _, n := range f.Nodes {
		if n.Keyword == "m" && n.Pos != (Pos{filepath.Join(dir, "sub/more/m.conf"), 1}) {
			t.Errorf("m at %v", n.Pos)
		}
		if n.Keyword == "end" && n.Pos != (Pos{main, 6}) {
			t.Errorf("end at %v", n.Pos)
		}
	}
	if len(f.Diags) != 0 {
		t.Errorf("diags: %v", f.Diags)
	}

	// A loop through a glob: a.conf includes loop/*.conf, whose b.conf
	// includes ../a.conf again.
	dir = writeTree(t, map[string]string{"a.conf": "x\ninclude loop/*.conf\n", "loop/b.conf": "y\ninclude ../a.conf\n"})
	_, err = Parse(filepath.Join(dir, "a.conf"), Options{ConfigID: "n1"})
	var e *Error
	if !errors.As(err, &e) || e.Pos != (Pos{filepath.Join(dir, "loop/b.conf"), 2}) || !strings.Contains(e.Msg, "include loop") {
		t.Errorf("loop: err = %v, want an *Error at loop/b.conf:2", err)
	}
}

// TestIncludeRelativeMain: a relative main path keeps includes relative
// to it, as written.
func TestIncludeRelativeMain(t *testing.T) {
	fsys := memFS{"etc/k.conf": "include d/x.conf\n", "etc/d/x.conf": "x\n"}
	f, err := Parse("etc/k.conf", fsys.opts("n1"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Nodes[0].Pos != (Pos{"etc/d/x.conf", 1}) {
		t.Errorf("pos %v", f.Nodes[0].Pos)
	}
}

// TestIncludeInPlace: an include is read where its line stands, so a block
// may open in one file and close in another (keepalived reads one stream);
// and keepalived 2.2.7 finds include lines after conditions, parameters and
// generators (keepalived -t reports the files of `@main include x`, `$INC x`
// and `~SEQ(...) include x${X}` as missing).
func TestIncludeInPlace(t *testing.T) {
	tests := []struct {
		name string
		fsys memFS
		want string
	}{
		{"a block across files",
			memFS{"/k/main.conf": "vrrp_instance V {\ninclude body.conf\n}\n", "/k/body.conf": "priority 100\n"},
			"vrrp_instance \"V\" {\n  priority \"100\"\n}\n"},
		{"include after expansion",
			memFS{"/k/m.conf": "m\n", "/k/x1.conf": "x1\n", "/k/x2.conf": "x2\n", "/k/b.conf": "b\n",
				"/k/main.conf": "@main include m.conf\n@backup include b.conf\n$INC=include\n$INC b.conf\n~SEQ(X, 1, 2) include x${X}.conf\n"},
			"m\nb\nx1\nx2\n"},
	}
	for _, tc := range tests {
		f, err := Parse("/k/main.conf", tc.fsys.opts("main"))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := render(f.Nodes); got != tc.want {
			t.Errorf("%s: tree\n%s\nwant\n%s", tc.name, got, tc.want)
		}
	}
}

// TestIncludeChecks: which include problems are errors (keepalived.conf(5)
// include variants and include_check; keepalived -t: `include missing` is a
// warning with exit 0, `includea missing` and `includew none*` exit 6,
// `includem none*` passes).
func TestIncludeChecks(t *testing.T) {
	fsys := memFS{"/k/a.conf": "a\n", "/k/loop1.conf": "include loop2.conf\n", "/k/loop2.conf": "x\ninclude loop1.conf\n"}
	tests := []struct {
		name, in string
		err      string // "" = no error
		errFile  string
		errLine  int
		diag     string
	}{
		{"plain include of a missing file is a Diag", "include missing.conf\n", "", "", 0, "matches no file"},
		{"plain include of an empty glob is a Diag", "include none*.conf\n", "", "", 0, "matches no file"},
		{"includea of a missing file is an error", "x\nincludea missing.conf\n", "matches no file", "/k/main.conf", 2, ""},
		{"includem of a missing file is an error", "includem missing.conf\n", "matches no file", "/k/main.conf", 1, ""},
		{"includem of an empty glob is not", "includem none*.conf\n", "", "", 0, "matches no file"},
		{"includew of an empty glob is an error", "includew none*.conf\n", "matches no file", "/k/main.conf", 1, ""},
		{"includeb of a brace alternative without a file is an error", "includeb {a,b}.conf\n", "b.conf matches no file (brace_match)", "/k/main.conf", 1, ""},
		{"include of a brace alternative without a file is fine", "include {a,b}.conf\n", "", "", 0, ""},
		{"include_check with no option checks everything", "global_defs {\ninclude_check\n}\ninclude none*.conf\n", "matches no file", "/k/main.conf", 4, ""},
		{"include_check -options", "include_check -wildcard_match\ninclude none*.conf\n", "", "", 0, "matches no file"},
		{"include_check unknown option", "include_check bogus\n", "", "", 0, `unknown option "bogus"`},
		{"include without a name", "include\n", "without a file name", "/k/main.conf", 1, ""},
		{"the pattern is the rest of the line as written (keepalived -t: missing '\"{a,b}/x.conf\" foo')",
			"include \"a.conf\" foo\n", "", "", 0, `include "a.conf" foo matches no file`},
		{"include loop names the line in the file that closes it", "include loop1.conf\n", "include loop", "/k/loop2.conf", 2, ""},
		{"a file including itself", "include main.conf\n", "include loop", "/k/main.conf", 1, ""},
		{"an unreadable match is a Diag for include", "include dir.conf\n", "", "", 0, "cannot read"},
		{"an unreadable match is an error for includer", "includer dir.conf\n", "cannot read", "/k/main.conf", 1, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := fsys.opts("n1")
			opts.Glob = func(p string) ([]string, error) {
				if p == "/k/dir.conf" || p == "/k/main.conf" { // dir.conf: a match that cannot be read (a directory, say)
					return []string{p}, nil
				}
				return fsys.glob(p)
			}
			opts.ReadFile = func(p string) ([]byte, error) {
				if p == "/k/main.conf" {
					return []byte(tc.in), nil
				}
				return fsys.readFile(p)
			}
			f, err := Parse("/k/main.conf", opts)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("err %v", err)
				}
				checkDiag(t, f.Diags, tc.diag)
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Pos != (Pos{tc.errFile, tc.errLine}) || !strings.Contains(e.Msg, tc.err) {
				t.Errorf("err = %v, want %s:%d: ...%s...", err, tc.errFile, tc.errLine, tc.err)
			}
		})
	}
}

func TestExpandBraces(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a", []string{"a"}},
		{"x{a,b}y", []string{"xay", "xby"}},
		{"{foo/{,cat,dog},bar}", []string{"foo/", "foo/cat", "foo/dog", "bar"}}, // keepalived.conf(5)
		{"{a,b}{1,2}", []string{"a1", "a2", "b1", "b2"}},
		{"{a}", []string{"{a}"}},   // no comma: text
		{"{a,b", []string{"{a,b"}}, // no close: text
		{"{x}{a,b}", []string{"{x}a", "{x}b"}},
	}
	for _, tc := range tests {
		if got := expandBraces(tc.in, 100); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("expandBraces(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := expandBraces(strings.Repeat("{a,b}", 13), maxBraceAlternatives); got != nil {
		t.Errorf("8192 alternatives: got %d, want nil", len(got))
	}
}
