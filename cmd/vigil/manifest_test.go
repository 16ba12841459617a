package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"vigil/config"
)

// The variables the manifest sets are the ones vigil reads: node.name and
// telemetry.listen through config's VIGIL_* overrides, and the socket
// through VIGIL_SOCKET (the client commands' default).
func TestManifestEnvIsVigils(t *testing.T) {
	out, code, msg := run(t, "manifest", "daemonset")
	if code != 0 {
		t.Fatalf("code %d: %s", code, msg)
	}
	names := regexp.MustCompile(`(?m)^\s+- name: (VIGIL_\w+)$`).FindAllStringSubmatch(out, -1)
	var got []string
	for _, n := range names {
		got = append(got, n[1])
	}
	var keys []string
	for _, k := range config.EnvKeys() {
		keys = append(keys, config.EnvVar(k))
	}
	for _, want := range []string{config.EnvVar("node.name"), config.EnvVar("telemetry.listen"),
		config.EnvVar("gossip.keyring"), config.EnvVar("gossip.advertise"), "VIGIL_SOCKET"} {
		if !slices.Contains(got, want) {
			t.Errorf("the manifest does not set %s (it sets %v)", want, got)
		}
	}
	for _, n := range got {
		if n != "VIGIL_SOCKET" && !slices.Contains(keys, n) {
			t.Errorf("the manifest sets %s, which config does not read (it reads %v)", n, keys)
		}
	}
	if !strings.Contains(out, "--admin-socket") {
		t.Error("run's --admin-socket flag is not used")
	}
}

func TestManifestFlags(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vigil.yaml")
	key := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(cfg, []byte("node: {name: lb1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte("a2V5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code, msg := run(t, "manifest", "daemonset", "-n", "lb", "--image", "registry.example/vigil:1",
		"--node-selector", "role=lb", "--with-config", cfg, "--with-gossip-keyring", key, "--user-scripts")
	if code != 0 {
		t.Fatalf("code %d: %s", code, msg)
	}
	for _, want := range []string{"kind: ConfigMap", "kind: Secret", "kind: DaemonSet", "namespace: lb",
		"image: registry.example/vigil:1", "role: lb", "node: {name: lb1}", "keyring: YTJWNQo=", "- SETUID"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"-n", "Kube_System"}, 2},
		{[]string{"--with-config", filepath.Join(dir, "missing.yaml")}, 1},
		{[]string{"extra"}, 2},
		{[]string{"--no-such-flag"}, 2},
	} {
		if _, code, msg := run(t, append([]string{"manifest", "daemonset"}, tc.args...)...); code != tc.code {
			t.Errorf("%v: code %d (%s), want %d", tc.args, code, msg, tc.code)
		}
	}
}
