package kaconf

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, and every error is an *Error naming a line
// of the input (the only file: includes fail to read, and an include of the
// input itself is a loop). Run it with
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 60s ./internal/kaconf/
func FuzzParse(f *testing.F) {
	for _, tc := range syntaxTests {
		f.Add(tc.in)
	}
	for _, tc := range syntaxErrorTests {
		f.Add(tc.in)
	}
	for _, tc := range parameterTests {
		f.Add(tc.in)
	}
	for _, tc := range generatorTests {
		f.Add(tc.in)
	}
	for _, tc := range expansionErrorTests {
		if len(tc.in) < 1024 {
			f.Add(tc.in)
		}
	}
	f.Add("include k.conf\nincludea x{a,b}*.conf\ninclude_check +match -readable\n@^main x\n")
	f.Fuzz(func(t *testing.T, in string) {
		const name = "/etc/keepalived/k.conf"
		opts := Options{
			ConfigID: "main",
			ReadFile: func(p string) ([]byte, error) { return nil, errors.New("fuzz: no includes") },
			Glob:     func(p string) ([]string, error) { return []string{p}, nil },
			Getenv:   func(string) string { return "" },
			MaxLines: 2000, // keeps each input fast; the limits themselves are tested above
		}
		file, err := ParseBytes(name, []byte(in), opts)
		lines := strings.Count(in, "\n") + 1
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			if e.Pos.File != name || e.Pos.Line < 1 || e.Pos.Line > lines {
				t.Fatalf("error %v names %s, not a line of %s (1..%d)", err, e.Pos, name, lines)
			}
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("%s:%d: ", name, e.Pos.Line)) {
				t.Fatalf("Error() = %q does not start with FILE:LINE", err.Error())
			}
			return
		}
		var walk func([]*Node)
		walk = func(ns []*Node) {
			for _, n := range ns {
				if n.Pos.File != name || n.Pos.Line < 1 || n.Pos.Line > lines {
					t.Fatalf("node %q at %s, not a line of the input (1..%d)", n.Keyword, n.Pos, lines)
				}
				walk(n.Children)
			}
		}
		walk(file.Nodes)
	})
}

// BenchmarkManPageScale parses keepalived.conf(5)'s scale example: one
// ~SEQ line making 65,024 vrrp_instance and track_file blocks (715,264
// lines). go test -run '^$' -bench ManPageScale -benchmem ./internal/kaconf/
func BenchmarkManPageScale(b *testing.B) {
	in := []byte(`$VI4= \
track_file offset_instance_4.${IF}.${NUM}.${ID} { \
    file "${_PWD}/679/track_files/4.${IF}.${NUM}.${ID}" \
    weight -100 \
} \
vrrp_instance vrrp4.${IF}.${NUM}.${ID} { \
    interface bond${IF}.${NUM} \
    use_vmac vrrp4.${IF}.${NUM}.${ID} \
    virtual_router_id ${ID} \
    priority 130 \
    virtual_ipaddress { \
        2001:db8:${IF}:${NUM}::${ID}/64 \
    } \
    track_file { \
        offset_instance_4.${IF}.${NUM}.${ID} \
    } \
}

~SEQ(IF,0,7) ~SEQ(NUM,0,31) ~SEQ(ID,1,254) $VI4
`)
	for b.Loop() {
		f, err := ParseBytes("/etc/keepalived/keepalived.conf", in, Options{ConfigID: "n1"})
		if err != nil {
			b.Fatal(err)
		}
		if len(f.Nodes) != 2*65024 {
			b.Fatalf("%d top-level nodes, want %d", len(f.Nodes), 2*65024)
		}
	}
}
