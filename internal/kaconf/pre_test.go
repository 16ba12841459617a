package kaconf

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// flat renders top-level keyword lines as "kw arg arg" joined by "; " (the
// preprocessing tests have no blocks worth drawing).
func flat(nodes []*Node) string {
	var parts []string
	for _, n := range nodes {
		parts = append(parts, strings.Join(append([]string{n.Keyword}, n.Args...), " "))
	}
	return strings.Join(parts, "; ")
}

type preCase struct {
	name string
	id   string // config id; "" = "main"
	in   string
	want string // flat() of the result
	diag string // a Diag that must be there ("" = none at all)
}

func runPre(t *testing.T, tests []preCase, env map[string]string) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.id
			if id == "" {
				id = "main"
			}
			opts := noFS(id)
			opts.Getenv = func(k string) string { return env[k] }
			f, err := ParseBytes("/etc/keepalived/keepalived.conf", []byte(tc.in), opts)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := flat(f.Nodes); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			checkDiag(t, f.Diags, tc.diag)
		})
	}
}

func checkDiag(t *testing.T, diags []Diag, want string) {
	t.Helper()
	if want == "" {
		if len(diags) > 0 {
			t.Errorf("unexpected diags %v", diags)
		}
		return
	}
	for _, d := range diags {
		if strings.Contains(d.String(), want) {
			return
		}
	}
	t.Errorf("diags %v, want one containing %q", diags, want)
}

// TestConditional: keepalived.conf(5) "Conditional configuration and
// configuration id", with the man page's example read by two config ids.
func TestConditional(t *testing.T) {
	in := "@main router_id main_router\n@backup router_id backup_router\n" +
		"@^main peer 192.0.2.1\n@^backup peer 192.0.2.2\n@^backup2 peer 192.0.2.3\n" +
		"@main\n@main $P=240\npriority $P\n"
	runPre(t, []preCase{
		{"main: @main lines, @^ lines of the others", "main", in,
			"router_id main_router; peer 192.0.2.2; peer 192.0.2.3; priority 240", ""},
		{"backup: @backup lines; $P undefined stays", "backup", in,
			"router_id backup_router; peer 192.0.2.1; peer 192.0.2.3; priority $P", ""},
		{"other id: neither router_id (man: \"the router_id will not be set\")", "lb9", in,
			"peer 192.0.2.1; peer 192.0.2.2; peer 192.0.2.3; priority $P", ""},
		{"the id is the word right after '@': '@ main' is the empty id", "main", "@ main x\n", "", ""},
		{"a parameter can hold the condition (man: $IF_MAIN=@main)", "main",
			"$IF_MAIN=@main\n$IF_MAIN priority 240\n", "priority 240", ""},
		{"... and the line goes when the id differs", "backup",
			"$IF_MAIN=@main\n$IF_MAIN priority 240\n", "", ""},
	}, nil)
}

var parameterTests = []preCase{
	{"$NAME before a blank or the end, ${NAME} anywhere", "",
		"$A=x\n$B=\nkw $A ${A}y $Ay $A\n", "kw x xy $Ay x", ""},
	{"empty value allowed; value trimmed", "", "$E=\n$F=  v w  \nkw a${E}b ${F}\n", "kw ab v w", ""},
	{"no blank allowed before '=' (else it is an ordinary line)", "", "$A =x\n", "$A =x", ""},
	{"names cannot start with a digit", "", "$1A=x\n", "$1A=x", ""},
	{"replacement is recursive and done at use time (man: ADDRESS_BASE example)", "",
		"$ADDRESS_BASE=10.2.${ADDRESS_BASE_SUB}\n$ADDRESS_BASE_SUB=0\n${ADDRESS_BASE}.100/32\n$ADDRESS_BASE_SUB=10\n${ADDRESS_BASE}.100/32\n",
		"10.2.0.100/32; 10.2.10.100/32", ""},
	{"an undefined ${NAME} stays, with a Diag", "", "kw \"${NOPE}\"\n", "kw ${NOPE}", "${NOPE} is not defined"},
	{"an undefined $NAME stays silently (scripts use $ too)", "", "kw $HOME\n", "kw $HOME", ""},
	{"redefinition takes effect from its line on", "", "$A=1\nkw $A\n$A=2\nkw $A\n", "kw 1; kw 2", ""},
	{"multi-line definition (man: $INSTANCE example)", "high",
		"$INSTANCE= \\\nvrrp_instance VI_${NUM} { \\\n  @high priority 130 \\\n  @low priority 120 \\\n}\n$NUM=0\n$INSTANCE\n$NUM=1\n$INSTANCE\n",
		"vrrp_instance VI_0; vrrp_instance VI_1", ""},
	{"definitions inside a multi-line value run in order (man: $VS with $RS_NUM=1 \\ $RS)", "",
		"$RS= \\\nrs ${VS_NUM}.${RS_NUM}\n$VS= \\\nvs ${VS_NUM} \\\n$RS_NUM=1 \\\n$RS \\\n$RS_NUM=2 \\\n$RS\n$VS_NUM=7\n$VS\n",
		"vs 7; rs 7.1; rs 7.2", ""},
	{"a comment-only line inside a multi-line definition is skipped (keepalived -t)", "",
		"$M= \\\nk1 \\\n# c\nk2 \\\nk3\n$M\n", "k1; k2; k3", ""},
	{"a blank line ends a multi-line definition (keepalived -t reads the next as a line)", "",
		"$M= \\\nk1 \\\n\nk2\n$M\n", "k2; k1", ""},
	{"a multi-line definition on a line for another id skips its lines", "main",
		"@backup $M= \\\nk1 \\\nk2\nk3\n", "k3", ""},
	{"a multi-line definition still open at the end of the file", "",
		"$M= \\\nk1 \\\n", "", "multi-line definition of $M ends with the file"},
	{"a multi-line value used inside a line splits it into lines", "",
		"$M= \\\nb \\\nc\na $M\n", "a b; c", ""},
	{"${_INSTANCE} is the config id", "lb7", "kw ${_INSTANCE}\n", "kw lb7", ""},
	{"${_PWD} is the file's directory", "", "kw ${_PWD}/s.sh\n", "kw /etc/keepalived/s.sh", ""},
	{"${_ENV VAR} reads the environment (keepalived 2.4)", "", "kw ${_ENV VIGIL_T}\n", "kw v1", ""},
	{"${_RANDOM} takes MIN, 0 by default, with a Diag", "", "kw ${_RANDOM}\n", "kw 0", "the import uses MIN, 0"},
	{"${_RANDOM MIN MAX} takes MIN", "", "kw ${_RANDOM 5 9}\n", "kw 5", "(5..9)"},
	{"${_RANDOM} with a bad MAX stays", "", "kw \"${_RANDOM 5 x}\"\n", "kw ${_RANDOM 5 x}", "MAX \"x\""},
	{"${_HASH} and ${_BANG} in quotes are the characters (keepalived -t: \"a${_HASH}b\" is a#b)", "",
		"kw \"a${_HASH}b${_BANG}c\"\n", "kw a#b!c", ""},
	{"${_HASH} outside quotes starts a comment (keepalived -t: a${_HASH}b is a)", "",
		"kw a${_HASH}b\nkw2 x${_BANG}y\n$_HASH kw3\n", "kw a; kw2 x", ""},
	{"comments are removed before definitions", "", "$A=x # c\nkw $A\n", "kw x", ""},
}

// TestParameters: keepalived.conf(5) "Parameter substitution" and
// "Pre-defined definitions".
func TestParameters(t *testing.T) {
	runPre(t, parameterTests, map[string]string{"VIGIL_T": "v1"})
}

var generatorTests = []preCase{
	{"~SEQ (man example)", "", "~SEQ(SUBNET, 0, 3) ip_address 10.0.${SUBNET}.1\n",
		"ip_address 10.0.0.1; ip_address 10.0.1.1; ip_address 10.0.2.1; ip_address 10.0.3.1", ""},
	{"~SEQx with decimal or 0x arguments (man example)", "",
		"~SEQx(S, 144, 16, 192) a fe80::20:${S}:1\n~SEQx(S, 0x90, 0x10, 0xc0) b ${S}\n",
		"a fe80::20:90:1; a fe80::20:a0:1; a fe80::20:b0:1; a fe80::20:c0:1; b 90; b a0; b b0; b c0", ""},
	{"two ~SEQx on a line, negative step (man example)", "",
		"~SEQx(AD2, 0x90, 0x10, 0xa0) ~SEQx(AD1, 0x12, -1, 0x11) fe81::10:${AD2}:${AD1}\n",
		"fe81::10:90:12; fe81::10:90:11; fe81::10:a0:12; fe81::10:a0:11", ""},
	{"step defaults towards end, start to 1 (keepalived -t: ~SEQ(X, 0) is 1, 0)", "",
		"~SEQ(X, 3) a${X}\n~SEQ(X, 0) b${X}\n~SEQ(X, -2) c${X}\n~SEQ(X, 5, 3) d${X}\n",
		"a1; a2; a3; b1; b0; c-1; c-2; d5; d4; d3", ""},
	{"numbers as strtol base 0 (keepalived -t: ~SEQ(Y, 010, 011) is 8, 9)", "",
		"~SEQ(Y, 010, 011) h${Y}\n", "h8; h9", ""},
	{"~LST one variable", "", "~LST(V, a, b, c) kw ${V}\n", "kw a; kw b; kw c", ""},
	{"~LST several variables (man example)", "",
		"~LST({IP, IP1}, {10,1},{20,4},{5,6},{12,8}) 192.168.${IP}.${IP1}\n",
		"192.168.10.1; 192.168.20.4; 192.168.5.6; 192.168.12.8", ""},
	{"~LST tuple too short: the rest are empty (keepalived -t)", "",
		"~LST({A,B}, {1,2}, {3}) k ${A}.${B}\n", "k 1.2; k 3.", ""},
	{"~LST nested (man example, shortened)", "",
		"~LST(IP, 1, 2) ~LST(IP1, 5,6,7) 192.169.${IP}.${IP1}\n",
		"192.169.1.5; 192.169.1.6; 192.169.1.7; 192.169.2.5; 192.169.2.6; 192.169.2.7", ""},
	{"~LST and ~SEQ combined (man example, shortened)", "",
		"~LST({IP,   IP1},  {10,1},{20,4})  ~SEQ(IP2,168,2,172) 192.${IP2}.${IP}.${IP1}\n",
		"192.168.10.1; 192.170.10.1; 192.172.10.1; 192.168.20.4; 192.170.20.4; 192.172.20.4", ""},
	{"a generator repeats a multi-line parameter", "",
		"$B= \\\nx${N} \\\ny${N}\n~SEQ(N, 1, 2) $B\n", "x1; y1; x2; y2", ""},
	{"a generator line under a condition", "backup", "@main ~SEQ(N, 1, 2) a${N}\n@backup ~LST(N, q) b${N}\n", "bq", ""},
	{"a generator over a parameter's name is a Diag", "",
		"$RS=x\n~LST(RS, 1) a${RS}\n", "a1", "generator variable RS replaces the parameter $RS"},
	{"'~' not followed by a generator is an ordinary word", "", "~foo bar\n", "~foo bar", ""},
}

// TestGenerators: keepalived.conf(5) "Sequence blocks" and "List blocks",
// with the man page's examples and keepalived -t's defaults.
func TestGenerators(t *testing.T) {
	runPre(t, generatorTests, nil)
}

var expansionErrorTests = []struct {
	name, in string
	max      int
	line     int
	msg      string
}{
	{"~SEQ step 0", "a\n~SEQ(X, 1, 0, 5) k\n", 0, 2, "step is 0"},
	{"~SEQ non-number", "~SEQ(X, 1, z) k\n", 0, 1, `"z" is not an integer`},
	{"~SEQ too few arguments", "\n\n~SEQ(X) k\n", 0, 3, "not 1 argument"},
	{"~SEQ bad variable", "~SEQ(1X, 3) k\n", 0, 1, "not a parameter name"},
	{"~LST tuple too long (keepalived -t: \"too many values\")", "~LST({A}, {1,2}) k\n", 0, 1, "2 item(s) for 1 variable(s)"},
	{"~LST without values", "~LST(A) k\n", 0, 1, "at least one value"},
	{"generator without ')'", "x\n~LST(A, 1 k\n", 0, 2, "no closing ')'"},
	{"a definition that uses itself", "$A=${A}x\nk ${A}\n", 0, 2, "nested more than"},
	{"too many lines from a generator", "~SEQ(X, 1, 1000) k\n", 100, 1, "more than 100"},
	{"too many lines from nested generators", "~SEQ(X, 1, 20) ~SEQ(Y, 1, 20) k\n", 100, 1, "more than 100 lines"},
	{"a line that doubles itself", "$A=${B}${B}\n$B=${C}${C}\n$C=${D}${D}\n$D=${E}${E}\n$E=" + strings.Repeat("x", 1<<17) + "\nk ${A}\n", 0, 6, "longer than"},
}

// TestExpansionErrors: bad generators and runaway expansion are *Errors
// naming the line.
func TestExpansionErrors(t *testing.T) {
	for _, tc := range expansionErrorTests {
		t.Run(tc.name, func(t *testing.T) {
			opts := noFS("main")
			opts.MaxLines = tc.max
			_, err := ParseBytes("k.conf", []byte(tc.in), opts)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Pos != (Pos{"k.conf", tc.line}) || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("err = %v, want k.conf:%d: ...%s...", err, tc.line, tc.msg)
			}
		})
	}
}

// TestSplitScript: keepalived.conf(5) "Quoted strings", which describes
// script command lines.
func TestSplitScript(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{`abcd" efg h jkl "mnop`, []string{"abcd efg h jkl mnop"}, false},
		{`abcd "efg h jkl" mnop`, []string{"abcd", "efg h jkl", "mnop"}, false},
		{`/bin/chk.sh 'a b' c`, []string{"/bin/chk.sh", "a b", "c"}, false},
		{`a\"b "c\"d" \\`, []string{`a"b`, `c"d`, `\`}, false},
		{`"\a\b\E\f\n\r\t\v"`, []string{"\a\b\x1b\f\n\r\t\v"}, false},
		{`\101\0\x41\x4a4c\cA\c?\q`, []string{"A\x00AL\x01\x7fq"}, false},
		{`x ""`, []string{"x", ""}, false},
		{`"open`, nil, true},
		{`  `, nil, false},
	}
	for _, tc := range tests {
		got, err := SplitScript(tc.in)
		if (err != nil) != tc.err || strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("SplitScript(%q) = %q, %v; want %q (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// TestFindHelpers covers Find and FindAll, nil receivers included.
func TestFindHelpers(t *testing.T) {
	f, err := ParseBytes("k.conf", []byte("v {\n a 1\n b\n a 2\n}\n"), noFS("n"))
	if err != nil {
		t.Fatal(err)
	}
	v := f.Nodes[0]
	if a := v.Find("a"); a == nil || a.Args[0] != "1" {
		t.Errorf("Find(a) = %+v", a)
	}
	if v.Find("zz") != nil {
		t.Error("Find(zz) found something")
	}
	if all := v.FindAll("a"); len(all) != 2 || all[1].Args[0] != "2" {
		t.Errorf("FindAll(a) = %+v", all)
	}
	var none *Node
	if none.Find("a") != nil || none.FindAll("a") != nil {
		t.Error("nil node found children")
	}
	if got := filepath.ToSlash(v.Find("b").Pos.String()); got != "k.conf:3" {
		t.Errorf("Pos = %s", got)
	}
}
