package config

import (
	"strings"
	"testing"
)

// ParseOffHost (import-keepalived --off-host) skips only the lookups on this
// host: programs, users and the FIFO's directory; the rules about the values
// themselves still apply.
func TestParseOffHost(t *testing.T) {
	const base = "node: { name: n1 }\nvrrp:\n  instances:\n    - { name: vi, interface: eth0, vrid: 51, vips: [192.0.2.100/24], notify: { master: %s } }\n"
	cases := []struct {
		name, doc string
		offHost   string // "" when valid off host, else a part of the problem
		onHost    string // a part of the problem on this host
	}{
		{"missing program", strings.Replace(base, "%s", "[/nonexistent/notify.sh]", 1), "", "does not exist"},
		{"unknown user", strings.Replace(base, "%s", "[/bin/true]", 1) + "  script_user: nosuchuser-vigil\n", "", "no user"},
		{"relative program", strings.Replace(base, "%s", "[./notify.sh]", 1), "relative path", "relative path"},
		{"FIFO in a missing directory", strings.Replace(base, "%s", "[/bin/true]", 1) + "  notify_fifo: /nonexistent-dir/vigil.fifo\n", "", "not an existing directory"},
		{"FIFO not absolute", strings.Replace(base, "%s", "[/bin/true]", 1) + "  notify_fifo: vigil.fifo\n", "absolute", "absolute"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check := func(label string, err error, want string) {
				t.Helper()
				switch {
				case want == "" && err != nil:
					t.Errorf("%s: %v", label, err)
				case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
					t.Errorf("%s: got %v, want a problem with %q", label, err, want)
				}
			}
			_, err := ParseOffHost([]byte(c.doc))
			check("off host", err, c.offHost)
			_, err = Parse([]byte(c.doc))
			check("on this host", err, c.onHost)
		})
	}
}
