// Package k8s renders the Kubernetes manifests that run vigil as a
// DaemonSet on the director nodes (`vigil manifest daemonset`). It is pure:
// options in, YAML out; the CLI reads files and the version.
package k8s

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Paths inside the container. The config is a ConfigMap mounted as a
// directory, never with subPath: kubelet swaps the directory's ..data link
// on an update, which a subPath mount never sees.
const (
	ConfigDir   = "/etc/vigil"
	ConfigFile  = ConfigDir + "/vigil.yaml"
	ConfigKey   = "vigil.yaml"
	KeyringDir  = "/etc/vigil-gossip" // beside ConfigDir: no mount inside the read-only ConfigMap
	KeyringKey  = "keyring"
	RuntimeDir  = "/run/vigil"
	AdminSocket = RuntimeDir + "/admin.sock"
	StateDir    = "/var/lib/vigil" // config.DefaultStateDir
)

// Ports: the telemetry port of config.DefaultListen and memberlist's.
const (
	MetricsPort = 9730
	GossipPort  = 7946
)

// StopTimeout is the systemd unit's TimeoutStopSec (deploy/systemd): the
// time a stop is given to send priority-0 adverts, remove the VIPs and the
// IPVS services. GraceMargin covers what a pod adds: kubelet's SIGTERM
// comes after the API's delete, and a loaded node stops a large table
// slower. A test checks StopTimeout against the unit.
const (
	StopTimeout = 15
	GraceMargin = 15
)

// MaxConfigMap is the API server's limit on a ConfigMap's data.
const MaxConfigMap = 1 << 20

// Options say what to render. Defaults gives the usual ones.
type Options struct {
	Name      string // of the DaemonSet, and the prefix of the ConfigMap's
	Namespace string
	Image     string
	// NodeSelector picks the director nodes (label key -> value).
	NodeSelector map[string]string
	// GossipSecret names the Secret whose "keyring" key is the gossip
	// keyring; "" runs every pod alone (no fleet, no gossip ports).
	GossipSecret string
	// UserScripts adds what scripts, notify commands and checks run with
	// user: (or vrrp.script_user) need: SETUID, SETGID, and KILL to stop
	// them on a timeout.
	UserScripts bool
	// HostPID lets vrrp.processes trackers see the host's processes.
	HostPID bool
	// Config, when not nil, is vigil.yaml: the ConfigMap is rendered too.
	Config []byte
	// Keyring, when not nil, is the gossip keyring: the Secret is
	// rendered too (otherwise it is expected to exist).
	Keyring []byte
}

// DefaultImage is the image of a vigil version; "dev" builds have no
// published image of their own, so they get latest.
func DefaultImage(version string) string {
	if version == "" || version == "dev" {
		version = "latest"
	}
	return "ghcr.io/vigil/vigil:" + version
}

// Defaults are the options of `vigil manifest daemonset` without flags.
func Defaults(version string) Options {
	return Options{
		Name:         "vigil",
		Namespace:    "kube-system", // system-node-critical pods are admitted there by default
		Image:        DefaultImage(version),
		NodeSelector: map[string]string{"vigil.io/director": "true"},
		GossipSecret: "vigil-gossip",
	}
}

// ConfigMapName is the ConfigMap the DaemonSet mounts.
func (o Options) ConfigMapName() string { return o.Name + "-config" }

// GracePeriod is terminationGracePeriodSeconds.
func GracePeriod() int { return StopTimeout + GraceMargin }

// Kubernetes' syntax for object names (RFC 1123 labels and subdomains)
// and label keys and values; the kubecheck module checks the output with
// apimachinery's own validators as well.
var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	labelName    = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
)

func labelKeyProblem(k string) string {
	prefix, name, found := strings.Cut(k, "/")
	if !found {
		prefix, name = "", k
	}
	if found && (len(prefix) > 253 || !dnsSubdomain.MatchString(prefix)) {
		return "the prefix before / must be a DNS subdomain (lower case)"
	}
	if len(name) > 63 || !labelName.MatchString(name) {
		return "the name must be 1..63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric"
	}
	return ""
}

// Validate names the first option Kubernetes would refuse.
func (o Options) Validate() error {
	// A ConfigMap name is Name + "-config": Name leaves room for it.
	if len(o.Name) > 63-len("-config") || !dnsLabel.MatchString(o.Name) {
		return fmt.Errorf("name %q: use 1..56 of a-z 0-9 - starting and ending alphanumeric", o.Name)
	}
	if len(o.Namespace) > 63 || !dnsLabel.MatchString(o.Namespace) {
		return fmt.Errorf("namespace %q: use 1..63 of a-z 0-9 - starting and ending alphanumeric", o.Namespace)
	}
	if o.Image == "" || strings.ContainsAny(o.Image, " \t\n") {
		return fmt.Errorf("image %q: give an image reference without spaces", o.Image)
	}
	if o.GossipSecret != "" && (len(o.GossipSecret) > 253 || !dnsSubdomain.MatchString(o.GossipSecret)) {
		return fmt.Errorf("gossip secret %q: use a DNS subdomain (a-z 0-9 - .)", o.GossipSecret)
	}
	if o.Keyring != nil && o.GossipSecret == "" {
		return fmt.Errorf("a gossip keyring needs a gossip secret name to put it in")
	}
	// The API server refuses a ConfigMap over 1 MiB; its data is text
	// (binaryData would not be a file vigil could read as YAML anyway).
	if len(o.Config) > MaxConfigMap {
		return fmt.Errorf("config: %d bytes, over a ConfigMap's limit of %d", len(o.Config), MaxConfigMap)
	}
	if !utf8.Valid(o.Config) {
		return fmt.Errorf("config: not UTF-8 text")
	}
	for _, k := range slices.Sorted(maps.Keys(o.NodeSelector)) {
		if p := labelKeyProblem(k); p != "" {
			return fmt.Errorf("node selector key %q: %s", k, p)
		}
		if v := o.NodeSelector[k]; v != "" && (len(v) > 63 || !labelName.MatchString(v)) {
			return fmt.Errorf("node selector %s=%q: a value is 0..63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric", k, v)
		}
	}
	return nil
}

// Render returns the manifests as one YAML stream: the ConfigMap and the
// Secret when their content is given, then the DaemonSet.
func Render(o Options) ([]byte, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var makers []func(Options) (*yaml.Node, error)
	if o.Config != nil {
		makers = append(makers, configMap)
	}
	if o.Keyring != nil {
		makers = append(makers, secret)
	}
	makers = append(makers, daemonSet)
	var buf bytes.Buffer
	for i, mk := range makers {
		d, err := mk(o)
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(d); err != nil {
			return nil, fmt.Errorf("manifest: encode: %w", err)
		}
		if err := enc.Close(); err != nil {
			return nil, fmt.Errorf("manifest: encode: %w", err)
		}
	}
	return buf.Bytes(), nil
}

func labels(o Options) m {
	return m{"app.kubernetes.io/name", o.Name, "app.kubernetes.io/component", "director"}
}

func metadata(o Options, name string) m {
	return m{"name", name, "namespace", o.Namespace, "labels", labels(o)}
}

func configMap(o Options) (*yaml.Node, error) {
	return doc("", m{
		"apiVersion", "v1",
		"kind", "ConfigMap",
		"metadata", metadata(o, o.ConfigMapName()),
		"data", m{ConfigKey, string(o.Config)},
	})
}

func secret(o Options) (*yaml.Node, error) {
	return doc("", m{
		"apiVersion", "v1",
		"kind", "Secret",
		"metadata", metadata(o, o.GossipSecret),
		"type", "Opaque",
		"data", m{KeyringKey, base64.StdEncoding.EncodeToString(o.Keyring)},
	})
}

const header = `vigil DaemonSet: one director per node labelled %s.
Prerequisites on every such node (a pod cannot do them: it has no SYS_MODULE):
- the IPVS modules loaded: ip_vs and the schedulers in use, e.g.
  printf 'ip_vs\nip_vs_wrr\n' > /etc/modules-load.d/vigil.conf && systemctl restart systemd-modules-load
- net.ipv4.ip_forward=1 for NAT forwarding (/etc/sysctl.d).
/proc/sys is read-only in the pod: vrrp instances with vmac: need the macvlan's
sysctls set on the host, or a privileged pod.
The config is the ConfigMap %s (key %s, mounted as a directory so that
updates reach the file); node.name comes from the node's name and
telemetry.listen is the node's address, whatever the file says. vigil does not
watch the file: after an update, reload each pod
(kubectl exec POD -- vigil config reload) or push it (vigil config push).`

const gossipNote = `
The gossip keyring comes from the Secret %s (key %s), e.g.
  kubectl -n %s create secret generic %s --from-literal=%s="$(vigil gossip keygen)"
It is read-only here: rotate keys by editing the Secret (the new key second,
then first) and restarting the pods one by one, not with vigil gossip keys.`

func daemonSet(o Options) (*yaml.Node, error) {
	sel := make([]string, 0, len(o.NodeSelector))
	for _, k := range slices.Sorted(maps.Keys(o.NodeSelector)) {
		sel = append(sel, k+"="+o.NodeSelector[k])
	}
	comment := fmt.Sprintf(header, strings.Join(sel, ","), o.ConfigMapName(), ConfigKey)
	if o.GossipSecret != "" {
		comment += fmt.Sprintf(gossipNote, o.GossipSecret, KeyringKey, o.Namespace, o.GossipSecret, KeyringKey)
	}

	nodeSelector := m{}
	for _, k := range slices.Sorted(maps.Keys(o.NodeSelector)) {
		nodeSelector = append(nodeSelector, k, o.NodeSelector[k])
	}

	env := l{
		m{"name", "VIGIL_NODE_NAME", "valueFrom", m{"fieldRef", m{"fieldPath", "spec.nodeName"}}},
		m{"name", "HOST_IP", "valueFrom", m{"fieldRef", m{"fieldPath", "status.hostIP"}}},
		// The kubelet probes the pod's address, the node's with
		// hostNetwork: the default 127.0.0.1 would fail every probe.
		m{"name", "VIGIL_TELEMETRY_LISTEN", "value", "$(HOST_IP):" + strconv.Itoa(MetricsPort)},
		// What `kubectl exec POD -- vigil status` connects to.
		m{"name", "VIGIL_SOCKET", "value", AdminSocket},
	}
	ports := l{m{"name", "metrics", "containerPort", MetricsPort, "protocol", "TCP"}}
	mounts := l{
		m{"name", "config", "mountPath", ConfigDir, "readOnly", true},
		m{"name", "state", "mountPath", StateDir},
		m{"name", "run", "mountPath", RuntimeDir},
		m{"name", "tmp", "mountPath", "/tmp"},
	}
	volumes := l{
		m{"name", "config", "configMap", m{"name", o.ConfigMapName()}},
		withComment(m{"name", "state", "hostPath", m{"path", StateDir, "type", "DirectoryOrCreate"}},
			"the applied fleet version and its history (fleet.state_dir) outlive the pod"),
		withComment(m{"name", "run", "hostPath", m{"path", RuntimeDir, "type", "DirectoryOrCreate"}},
			"the records of the VIPs and IPVS services vigil made, which outlive the pod\n"+
				"in the host's network: the next pod removes those the config dropped"),
		m{"name", "tmp", "emptyDir", m{}},
	}
	if o.GossipSecret != "" {
		// Setting the keyring turns gossip on even for a file without a
		// gossip: section (config.EnvKeys); encrypted, never insecure.
		env = append(env,
			m{"name", "VIGIL_GOSSIP_KEYRING", "value", KeyringDir + "/" + KeyringKey},
			m{"name", "VIGIL_GOSSIP_ADVERTISE", "value", "$(HOST_IP):" + strconv.Itoa(GossipPort)})
		ports = append(ports,
			m{"name", "gossip-tcp", "containerPort", GossipPort, "protocol", "TCP"},
			m{"name", "gossip-udp", "containerPort", GossipPort, "protocol", "UDP"})
		mounts = append(mounts, m{"name", "gossip", "mountPath", KeyringDir, "readOnly", true})
		// 0400: vigil warns of a keyring readable by group or others.
		volumes = append(volumes, m{"name", "gossip", "secret", m{"secretName", o.GossipSecret, "defaultMode", 0o400}})
	}

	add := l{"NET_ADMIN", "NET_RAW"}
	if o.UserScripts {
		add = append(add, "SETUID", "SETGID", "KILL")
	}
	capsComment := "NET_ADMIN: VIPs, IPVS, nftables (accept: false); NET_RAW: VRRP, GARP/NA, ping checks"
	if o.UserScripts {
		capsComment += "; SETUID, SETGID, KILL: commands run with user:"
	} else {
		capsComment += "\n(--user-scripts adds SETUID, SETGID and KILL for commands run with user:)"
	}

	probe := func(path string, period, failures int) m {
		return m{"httpGet", m{"path", path, "port", "metrics"}, "periodSeconds", period, "timeoutSeconds", 2, "failureThreshold", failures}
	}
	container := m{
		"name", "vigil",
		"image", o.Image,
		"args", l{"run", "--config", ConfigFile, "--admin-socket", AdminSocket},
		"env", env,
		"ports", ports,
		// A large file and IPVS table take a while at start: liveness
		// waits for it; readiness says when vigil has applied it.
		"startupProbe", probe("/healthz", 2, 30),
		"livenessProbe", probe("/healthz", 10, 3),
		"readinessProbe", probe("/readyz", 5, 2),
		// No CPU limit: throttling delays adverts past the backups' timers.
		"resources", m{"requests", m{"cpu", "50m", "memory", "64Mi"}},
		"securityContext", m{
			// Kubernetes grants added capabilities to root only (no
			// ambient set): vigil runs as uid 0 with just these.
			"runAsUser", 0,
			"allowPrivilegeEscalation", false,
			"readOnlyRootFilesystem", true,
			"capabilities", withComment(m{"drop", l{"ALL"}, "add", add}, capsComment),
			"seccompProfile", m{"type", "RuntimeDefault"},
		},
		"volumeMounts", mounts,
	}
	podSpec := m{
		"hostNetwork", true,
		"dnsPolicy", "ClusterFirstWithHostNet",
	}
	if o.HostPID {
		podSpec = append(podSpec, "hostPID", withComment(true, "vrrp.processes trackers see the host's processes"))
	}
	podSpec = append(podSpec,
		"priorityClassName", "system-node-critical",
		"terminationGracePeriodSeconds", withComment(GracePeriod(),
			fmt.Sprintf("masters send priority 0 and remove VIPs and IPVS services: the unit's %ds and a margin", StopTimeout)),
		"nodeSelector", nodeSelector,
		"tolerations", l{m{"operator", "Exists", "effect", "NoSchedule"}, m{"operator", "Exists", "effect", "NoExecute"}},
		"containers", l{container},
		"volumes", volumes,
	)
	return doc(comment, m{
		"apiVersion", "apps/v1",
		"kind", "DaemonSet",
		"metadata", metadata(o, o.Name),
		"spec", m{
			"selector", m{"matchLabels", labels(o)},
			"updateStrategy", m{"type", "RollingUpdate", "rollingUpdate", m{"maxUnavailable", 1}},
			"template", m{
				"metadata", m{"labels", labels(o)},
				"spec", podSpec,
			},
		},
	})
}
