package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every problem of a file is printed FILE:LINE:COLUMN: path: message, at
// the value when the message shows it and at the key otherwise: unknown
// keys, wrong types, rules checked after decoding, in a virtual server's
// check and in nested flow mappings; a value from the environment names
// its variable instead.
func TestErrorPositions(t *testing.T) {
	const y = `node:
  name: lb1
vrrp:
  instances:
    - name: web
      interface: eth0
      vrid: 300
      prority: 100
      vips: [192.0.2.100/24, 192.0.2.300]
lb:
  virtual_servers:
    - name: web
      address: 192.0.2.100:80
      protocol: tcp
      check:
        type: http
        timeout: soon
      real_servers:
        - address: 198.51.100.11:8080
          check: {type: http, port: x}
        - address: 198.51.100.12:8080
          check:
            - {type: tcp, interval: 1s, timeout: 2s}
            - {type: udp, source: "2001:db8::1", bogus: {a: 1}}
telemetry:
  log_level: loud
`
	f := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(f, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VIGIL_TELEMETRY_LOG_FORMAT", "xml")
	_, err := Load(f)
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		"config " + f + ": 10 problems:",
		f + `:17:18: lb.virtual_servers[0].check.timeout: "soon" is not a duration`,
		f + `:20:37: lb.virtual_servers[0].real_servers[0].check.port: "x" is not an integer`,
		f + `:23:50: lb.virtual_servers[0].real_servers[1].check[0].timeout: "2s" is longer than the interval (1s)`,
		f + ":24:27: lb.virtual_servers[0].real_servers[1].check[1].source: 2001:db8::1 family differs from target",
		f + ":24:50: lb.virtual_servers[0].real_servers[1].check[1].bogus: unknown key",
		f + ":7:13: vrrp.instances[0].vrid: 300 is out of range 1..255",
		f + `:9:30: vrrp.instances[0].vips[1]: "192.0.2.300" is not an IP address or prefix`,
		f + ":8:7: vrrp.instances[0].prority: unknown key",
		f + `:26:14: telemetry.log_level: "loud" is not a log level`,
		`$VIGIL_TELEMETRY_LOG_FORMAT: telemetry.log_format: "xml" is not a log format`,
	}
	wantLines(t, err, want)
}

// wantLines checks that err prints as one line per element of want, each
// starting with it.
func wantLines(t *testing.T, err error, want []string) {
	t.Helper()
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Errorf("%d lines, want %d", len(got), len(want))
	}
	for i, w := range want {
		if i >= len(got) || !strings.HasPrefix(got[i], w) {
			t.Errorf("line %d: want prefix\n%s\nall:\n%v", i, w, err)
		}
	}
}
