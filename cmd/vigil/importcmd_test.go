package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vigil config import-keepalived's exit status (issue 16): 0 complete, 3
// partial, 1 invalid input (keepalived syntax, or a document vigil's
// validation refuses); -o writes the file.
func TestImportKeepalived(t *testing.T) {
	const inst = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n virtual_ipaddress {\n  192.0.2.100/24\n }\n"
	cases := []struct {
		name, conf string
		flags      []string
		code       int
		out        []string // in stdout+stderr (or the message)
	}{
		{"complete", inst + "}\n", nil, 0, []string{"vrid: 51", "note: no version"}},
		{"partial", inst + " smtp_alert\n}\n", nil, 3, []string{"t.conf:7: smtp_alert: vigil sends no email", "vrid: 51"}},
		{"syntax error", inst, nil, 1, []string{"t.conf"}},
		{"not valid for vigil", inst + " notify_master /nonexistent/notify.sh\n}\n", nil, 1, []string{"not valid", "does not exist", "--off-host"}},
		// A file for another machine: its programs and users are not this host's.
		{"off host", inst + " notify_master /nonexistent/notify.sh\n notify_backup \"/bin/true\" nosuchuser\n}\n", []string{"--off-host"}, 0,
			[]string{"master: [/nonexistent/notify.sh]", "user: nosuchuser"}},
		{"off host, still invalid", inst + " notify_master ./notify.sh\n}\n", []string{"--off-host"}, 1, []string{"not valid", "relative path"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "t.conf")
			if err := os.WriteFile(p, []byte(c.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			out, code, msg := run(t, append([]string{"config", "import-keepalived", "--node-name", "lb1", p}, c.flags...)...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; out %q msg %q", code, c.code, out, msg)
			}
			for _, w := range c.out {
				if !strings.Contains(out+msg, w) {
					t.Errorf("output lacks %q: out %q msg %q", w, out, msg)
				}
			}
		})
	}
	dir := t.TempDir()
	in, outFile := filepath.Join(dir, "k.conf"), filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(in, []byte(inst+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code, msg := run(t, "config", "import-keepalived", "-o", outFile, "--node-name", "lb1", in); code != 0 || strings.Contains(out, "vrid:") {
		t.Fatalf("-o: exit %d, out %q msg %q", code, out, msg)
	}
	if _, code, msg := run(t, "config", "validate", "--config", outFile); code != 0 {
		t.Fatalf("the written file does not validate: %s", msg)
	}
}
