package kaconf

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the parser's output")

// renderPos is render with each line's place, files relative to base.
func renderPos(nodes []*Node, base string) string {
	var b strings.Builder
	var walk func([]*Node, string)
	walk = func(ns []*Node, ind string) {
		for _, n := range ns {
			rel, err := filepath.Rel(base, n.Pos.File)
			if err != nil {
				rel = n.Pos.File
			}
			b.WriteString(ind + n.Keyword)
			for _, a := range n.Args {
				fmt.Fprintf(&b, " %q", a)
			}
			if n.Block {
				b.WriteString(" {")
			}
			fmt.Fprintf(&b, "  # %s:%d\n", filepath.ToSlash(rel), n.Pos.Line)
			walk(n.Children, ind+"  ")
			if n.Block {
				b.WriteString(ind + "}\n")
			}
		}
	}
	walk(nodes, "")
	return b.String()
}

// TestGoldenPair reads testdata/pair (one keepalived.conf for both nodes of
// a pair: @main/@backup lines, @^ unicast peers, parameters, ~SEQ VIPs, an
// included LVS file whose real servers come from a multi-line template and
// ~LST) as each node, and compares the tree with testdata/pair.ID.golden.
// keepalived -t accepts the same files with both ids
// (TestKeepalivedAgrees, VIGIL_NETNS=1).
func TestGoldenPair(t *testing.T) {
	base := filepath.Join("testdata", "pair")
	for _, id := range []string{"main", "backup"} {
		t.Run(id, func(t *testing.T) {
			f, err := Parse(filepath.Join(base, "keepalived.conf"), Options{ConfigID: id})
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Diags) > 0 {
				t.Errorf("diags: %v", f.Diags)
			}
			got := renderPos(f.Nodes, base)
			golden := filepath.Join("testdata", "pair."+id+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("tree differs from %s:\n%s", golden, got)
			}
		})
	}
}
