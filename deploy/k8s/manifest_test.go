package k8s

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite vigil-daemonset.yaml")

// ExampleFile is the checked-in manifest of the default options.
const exampleFile = "vigil-daemonset.yaml"

// The example under deploy/k8s is what `vigil manifest daemonset` prints
// with its defaults (but the image of a dev build), so it cannot drift.
func TestExampleIsGenerated(t *testing.T) {
	got, err := Render(Defaults("dev"))
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(exampleFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the rendered defaults; run go test ./deploy/k8s -run Example -update", exampleFile)
	}
}

// docs decodes a rendered stream into generic documents, by kind.
func docs(t *testing.T, o Options) map[string]map[string]any {
	t.Helper()
	out, err := Render(o)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	byKind := map[string]map[string]any{}
	for {
		var d map[string]any
		if err := dec.Decode(&d); err != nil {
			break
		}
		byKind[d["kind"].(string)] = d
	}
	return byKind
}

// at walks a generic document: map keys, and list elements by index or
// by "name=VALUE".
func at(t *testing.T, v any, path string) any {
	t.Helper()
	for _, k := range strings.Split(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[k]; !ok {
				t.Fatalf("%s: no %q", path, k)
			}
		case []any:
			name, isName := strings.CutPrefix(k, "name=")
			found := false
			for i, e := range c {
				if isName && fmt.Sprint(e.(map[string]any)["name"]) == name || !isName && strconv.Itoa(i) == k {
					v, found = e, true
					break
				}
			}
			if !found {
				t.Fatalf("%s: no element %q", path, k)
			}
		default:
			t.Fatalf("%s: %q inside a %T", path, k, v)
		}
	}
	return v
}

// What issue 16 and the reference (ecosystem §6.4) ask of the DaemonSet,
// one row per requirement.
func TestDaemonSetRequirements(t *testing.T) {
	ds := docs(t, Defaults("1.4.0"))["DaemonSet"]
	pod := "spec.template.spec."
	c := pod + "containers.name=vigil."
	for _, tc := range []struct {
		why, path string
		want      any
	}{
		{"host network: VRRP, VIPs and IPVS are the host's", pod + "hostNetwork", true},
		{"cluster DNS with the host network", pod + "dnsPolicy", "ClusterFirstWithHostNet"},
		{"drop every capability", c + "securityContext.capabilities.drop", []any{"ALL"}},
		{"add NET_ADMIN and NET_RAW only", c + "securityContext.capabilities.add", []any{"NET_ADMIN", "NET_RAW"}},
		{"no privilege escalation", c + "securityContext.allowPrivilegeEscalation", false},
		{"read-only root", c + "securityContext.readOnlyRootFilesystem", true},
		{"node name from the downward API", c + "env.name=VIGIL_NODE_NAME.valueFrom.fieldRef.fieldPath", "spec.nodeName"},
		{"probes reachable on the host's address", c + "env.name=VIGIL_TELEMETRY_LISTEN.value", "$(HOST_IP):9730"},
		{"liveness on /healthz", c + "livenessProbe.httpGet.path", "/healthz"},
		{"liveness on the metrics port", c + "livenessProbe.httpGet.port", "metrics"},
		{"readiness on /readyz", c + "readinessProbe.httpGet.path", "/readyz"},
		{"metrics port", c + "ports.name=metrics.containerPort", MetricsPort},
		{"gossip over TCP", c + "ports.name=gossip-tcp.containerPort", GossipPort},
		{"gossip over UDP", c + "ports.name=gossip-udp.protocol", "UDP"},
		{"gossip keyring from a Secret", pod + "volumes.name=gossip.secret.secretName", "vigil-gossip"},
		{"the keyring's path", c + "env.name=VIGIL_GOSSIP_KEYRING.value", KeyringDir + "/" + KeyringKey},
		{"keyring not readable by group or others", pod + "volumes.name=gossip.secret.defaultMode", 0o400},
		{"config from a ConfigMap", pod + "volumes.name=config.configMap.name", "vigil-config"},
		{"config mounted as a directory", c + "volumeMounts.name=config.mountPath", ConfigDir},
		{"vigil reads the mounted file", c + "args", []any{"run", "--config", ConfigFile, "--admin-socket", AdminSocket}},
		{"state dir survives pod restarts", pod + "volumes.name=state.hostPath.path", StateDir},
		{"writable state dir", c + "volumeMounts.name=state.mountPath", StateDir},
		{"admin socket dir", c + "volumeMounts.name=run.mountPath", RuntimeDir},
		{"node-critical", pod + "priorityClassName", "system-node-critical"},
		{"rolling update", "spec.updateStrategy.type", "RollingUpdate"},
		{"one node at a time", "spec.updateStrategy.rollingUpdate.maxUnavailable", 1},
		{"director nodes only", pod + "nodeSelector.vigil\\.io/director", "true"},
		{"image of the version", c + "image", "ghcr.io/vigil/vigil:1.4.0"},
	} {
		path := strings.ReplaceAll(tc.path, `\.`, "\x00")
		parts := strings.Split(path, ".")
		for i := range parts {
			parts[i] = strings.ReplaceAll(parts[i], "\x00", ".")
		}
		got := atParts(t, ds, parts)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: %s = %v, want %v", tc.why, tc.path, got, tc.want)
		}
	}
	// No subPath anywhere: a ConfigMap mounted with one never updates.
	for _, vm := range at(t, ds, c+"volumeMounts").([]any) {
		if _, ok := vm.(map[string]any)["subPath"]; ok {
			t.Errorf("volume mount %v has a subPath", vm)
		}
	}
}

func atParts(t *testing.T, v any, parts []string) any {
	t.Helper()
	for _, k := range parts {
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[k]; !ok {
				t.Fatalf("%v: no %q", parts, k)
			}
		default:
			v = at(t, v, k)
		}
	}
	return v
}

// The grace period covers the systemd unit's stop timeout, which is the
// time vigil is known to need to hand off its VIPs, plus a margin.
func TestGraceCoversTheUnitsStopTimeout(t *testing.T) {
	unit, err := os.ReadFile("../systemd/vigil.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\d+)$`).FindSubmatch(unit)
	if m == nil {
		t.Fatal("the unit has no TimeoutStopSec=N")
	}
	sec, _ := strconv.Atoi(string(m[1]))
	if sec != StopTimeout {
		t.Fatalf("the unit stops in %ds, StopTimeout says %d", sec, StopTimeout)
	}
	ds := docs(t, Defaults("dev"))["DaemonSet"]
	if g := at(t, ds, "spec.template.spec.terminationGracePeriodSeconds").(int); g < sec+10 {
		t.Fatalf("grace %ds: not the unit's %ds plus a margin", g, sec)
	}
}

// The flags change what they say and nothing they should not.
func TestOptions(t *testing.T) {
	o := Defaults("dev")
	o.GossipSecret = ""
	alone := docs(t, o)["DaemonSet"]
	c := "spec.template.spec.containers.0."
	for _, p := range at(t, alone, c+"ports").([]any) {
		if n := p.(map[string]any)["name"]; n != "metrics" {
			t.Errorf("without gossip, port %v", n)
		}
	}
	for _, e := range at(t, alone, c+"env").([]any) {
		if n := e.(map[string]any)["name"].(string); strings.HasPrefix(n, "VIGIL_GOSSIP_") {
			t.Errorf("without gossip, env %s turns gossip on", n)
		}
	}

	o = Defaults("dev")
	o.UserScripts, o.HostPID = true, true
	o.Config, o.Keyring = []byte("node: {name: lb1}\n"), []byte("a2V5\n")
	all := docs(t, o)
	if got := at(t, all["DaemonSet"], c+"securityContext.capabilities.add"); fmt.Sprint(got) != "[NET_ADMIN NET_RAW SETUID SETGID KILL]" {
		t.Errorf("--user-scripts: add %v", got)
	}
	if at(t, all["DaemonSet"], "spec.template.spec.hostPID") != true {
		t.Error("--host-pid: no hostPID")
	}
	if got := at(t, all["ConfigMap"], "data").(map[string]any)[ConfigKey]; got != "node: {name: lb1}\n" {
		t.Errorf("ConfigMap data %q", got)
	}
	if got := at(t, all["Secret"], "data."+KeyringKey); got != "YTJWNQo=" {
		t.Errorf("Secret data %q, want the keyring in base64", got)
	}
	if got := at(t, all["ConfigMap"], "metadata.name"); got != "vigil-config" {
		t.Errorf("ConfigMap name %v", got)
	}
	// Without content, no ConfigMap or Secret: they are expected to exist.
	if d := docs(t, Defaults("dev")); len(d) != 1 {
		t.Errorf("defaults render %d documents, want the DaemonSet alone", len(d))
	}
}

// Kubernetes' name and label syntax (RFC 1123; label keys as
// prefix/name) is refused before anything is printed.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string // "" = valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"upper-case namespace", func(o *Options) { o.Namespace = "Kube-System" }, "namespace"},
		{"name leaving no room for -config", func(o *Options) { o.Name = strings.Repeat("a", 57) }, "name"},
		{"empty image", func(o *Options) { o.Image = "" }, "image"},
		{"secret with _", func(o *Options) { o.GossipSecret = "vigil_gossip" }, "gossip secret"},
		{"no gossip", func(o *Options) { o.GossipSecret = "" }, ""},
		{"keyring without a secret", func(o *Options) { o.GossipSecret, o.Keyring = "", []byte("k") }, "keyring"},
		{"selector key with two slashes", func(o *Options) { o.NodeSelector = map[string]string{"a/b/c": "x"} }, "node selector key"},
		{"selector prefix upper case", func(o *Options) { o.NodeSelector = map[string]string{"Vigil.io/director": "true"} }, "prefix"},
		{"selector value with space", func(o *Options) { o.NodeSelector = map[string]string{"role": "lb 1"} }, "node selector role"},
		{"empty selector value", func(o *Options) { o.NodeSelector = map[string]string{"node-role.kubernetes.io/lb": ""} }, ""},
		{"config over 1 MiB", func(o *Options) { o.Config = make([]byte, MaxConfigMap+1) }, "limit"},
		{"config not UTF-8", func(o *Options) { o.Config = []byte{0xff, 0xfe} }, "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Defaults("dev")
			tc.edit(&o)
			err := o.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
			if _, rerr := Render(o); (rerr == nil) != (err == nil) {
				t.Fatalf("Render and Validate disagree: %v, %v", rerr, err)
			}
		})
	}
}

func TestDefaultImage(t *testing.T) {
	for _, v := range [][2]string{{"dev", "ghcr.io/vigil/vigil:latest"}, {"", "ghcr.io/vigil/vigil:latest"}, {"v1.2.0", "ghcr.io/vigil/vigil:v1.2.0"}} {
		if got := DefaultImage(v[0]); got != v[1] {
			t.Errorf("DefaultImage(%q) = %q, want %q", v[0], got, v[1])
		}
	}
	ds := docs(t, Defaults("v9"))["DaemonSet"]
	if got := at(t, ds, "spec.template.spec.containers.0.image"); got != "ghcr.io/vigil/vigil:v9" {
		t.Errorf("image %v, not the version's", got)
	}
}
