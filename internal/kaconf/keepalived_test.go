package kaconf

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"vigil/test/netlab"
)

// TestKeepalivedAgrees runs `keepalived -t` (config test mode) on inputs the
// parser accepts and on inputs it rejects, and checks that keepalived
// accepts exactly the former. It runs in a namespace of its own whose eth0
// has 192.0.2.1/24, so that the vrrp_instance's interface exists. Root
// only: VIGIL_NETNS=1; skipped when keepalived is not installed
// (test/deps.sh installs it).
func TestKeepalivedAgrees(t *testing.T) {
	netlab.Require(t)
	ka, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("keepalived is not installed (test/deps.sh installs it)")
	}
	lab := netlab.NewForTest(t, "vgkp")
	node, err := lab.AddNode("n1", netip.MustParsePrefix("192.0.2.1/24"))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := filepath.Abs(filepath.Join("testdata", "pair", "keepalived.conf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name, id string
		path     string // a file to test; "" = in written to a temp file
		in       string
		valid    bool
	}{
		{name: "pair config as main", id: "main", path: pair, valid: true},
		{name: "pair config as backup", id: "backup", path: pair, valid: true},
		{name: "one-line block, quoted comment characters", id: "n1", valid: true,
			in: "global_defs { router_id \"lb#1\" }\nglobal_defs\n{\n notification_email_from \"a!b@example.com\" # c\n}\n"},
		{name: "unclosed block", id: "n1", in: "global_defs {\n router_id r1\n"},
		{name: "extra '}'", id: "n1", in: "global_defs {\n router_id r1\n}\n}\n"},
		{name: "unterminated quote", id: "n1", in: "global_defs {\n router_id \"r1\n}\n"},
		{name: "includea of a missing file", id: "n1", in: "includea " + filepath.Join(dir, "missing.conf") + "\n"},
		{name: "~SEQ step 0", id: "n1", in: "global_defs {\n~SEQ(X, 1, 0, 5) router_id r${X}\n}\n"},
		{name: "~SEQ non-number", id: "n1", in: "global_defs {\n~SEQ(X, 1, z) router_id r${X}\n}\n"},
		{name: "~LST tuple too long", id: "n1", in: "global_defs {\n~LST({A}, {1,2}) router_id r${A}\n}\n"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = filepath.Join(dir, "k"+string(rune('a'+i))+".conf")
				if err := os.WriteFile(path, []byte(tc.in), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, perr := Parse(path, Options{ConfigID: tc.id})
			if (perr == nil) != tc.valid {
				t.Fatalf("Parse: err = %v, want valid=%v", perr, tc.valid)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, kerr := node.Run(ctx, ka, "-t", "-f", path, "-i", tc.id)
			if (kerr == nil) != tc.valid {
				t.Errorf("keepalived -t: err = %v, want accepted=%v (Parse: %v)\n%s", kerr, tc.valid, perr, out)
			}
		})
	}
}
