package kubecheck

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/openapi/openapitest"
	"sigs.k8s.io/yaml"

	"vigil/deploy/k8s"
)

// The Kubernetes API's OpenAPI v3 documents as a kube-apiserver serves
// them (/openapi/v3/apis/apps/v1 and /api/v1), shipped inside client-go's
// openapitest package: nothing is downloaded at test time.
var (
	schemasOnce sync.Once
	schemas     map[string]*jsonschema.Schema // "apps/v1 DaemonSet" -> schema
	schemasErr  error
)

func loadSchemas() (map[string]*jsonschema.Schema, error) {
	schemasOnce.Do(func() {
		paths, err := openapitest.NewEmbeddedFileClient().Paths()
		if err != nil {
			schemasErr = fmt.Errorf("openapi paths: %w", err)
			return
		}
		c := jsonschema.NewCompiler()
		// OpenAPI 3.0 schemas are draft 4's dialect (boolean
		// exclusiveMaximum, $ref-only objects).
		c.DefaultDraft(jsonschema.Draft4)
		kinds := map[string]struct{ path, def string }{
			"apps/v1 DaemonSet": {"apis/apps/v1", "io.k8s.api.apps.v1.DaemonSet"},
			"v1 ConfigMap":      {"api/v1", "io.k8s.api.core.v1.ConfigMap"},
			"v1 Secret":         {"api/v1", "io.k8s.api.core.v1.Secret"},
		}
		added := map[string]bool{}
		schemas = map[string]*jsonschema.Schema{}
		for gvk, k := range kinds {
			url := "https://openapi.test/" + k.path + ".json"
			if !added[url] {
				gv, ok := paths[k.path]
				if !ok {
					schemasErr = fmt.Errorf("openapitest has no %s document", k.path)
					return
				}
				raw, err := gv.Schema("application/json")
				if err != nil {
					schemasErr = fmt.Errorf("openapi %s: %w", k.path, err)
					return
				}
				doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
				if err != nil {
					schemasErr = fmt.Errorf("openapi %s: %w", k.path, err)
					return
				}
				strict(doc)
				if err := c.AddResource(url, doc); err != nil {
					schemasErr = fmt.Errorf("openapi %s: %w", k.path, err)
					return
				}
				added[url] = true
			}
			s, err := c.Compile(url + "#/components/schemas/" + k.def)
			if err != nil {
				schemasErr = fmt.Errorf("compile %s: %w", k.def, err)
				return
			}
			schemas[gvk] = s
		}
	})
	return schemas, schemasErr
}

// strict closes every object schema that lists its properties, as
// kubeconform's -strict does: the API's document leaves them open (the
// server rejects unknown fields by its field-validation mode, not by the
// schema), and a misspelled field must fail here.
func strict(v any) {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["properties"]; ok {
			if _, ok := v["additionalProperties"]; !ok {
				v["additionalProperties"] = false
			}
		}
		for _, e := range v {
			strict(e)
		}
	case []any:
		for _, e := range v {
			strict(e)
		}
	}
}

// check validates a YAML stream of manifests and returns every problem.
func check(stream []byte) []string {
	var probs []string
	ss, err := loadSchemas()
	if err != nil {
		return []string{err.Error()}
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	for n := 0; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return append(probs, fmt.Sprintf("document %d: %v", n, err))
		}
		probs = append(probs, checkDoc(ss, n, doc)...)
	}
	return probs
}

func checkDoc(ss map[string]*jsonschema.Schema, n int, doc []byte) []string {
	// As kubectl reads YAML: YAML 1.1 to JSON, duplicate keys refused.
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return []string{fmt.Sprintf("document %d: %v", n, err)}
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(js, &tm); err != nil {
		return []string{fmt.Sprintf("document %d: %v", n, err)}
	}
	gvk := tm.APIVersion + " " + tm.Kind
	s, ok := ss[gvk]
	if !ok {
		return []string{fmt.Sprintf("document %d: unexpected kind %q", n, gvk)}
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return []string{fmt.Sprintf("document %d: %v", n, err)}
	}
	var probs []string
	if err := s.Validate(inst); err != nil {
		probs = append(probs, fmt.Sprintf("%s (document %d) against the OpenAPI schema: %v", gvk, n, err))
	}
	// The Go types the API server decodes into: unknown fields and
	// mistyped values fail (a second opinion on the schema's).
	var errs field.ErrorList
	switch tm.Kind {
	case "DaemonSet":
		var ds appsv1.DaemonSet
		if err := yaml.UnmarshalStrict(doc, &ds); err != nil {
			return append(probs, fmt.Sprintf("%s (document %d) into k8s.io/api: %v", gvk, n, err))
		}
		errs = daemonSet(&ds)
	case "ConfigMap":
		var cm corev1.ConfigMap
		if err := yaml.UnmarshalStrict(doc, &cm); err != nil {
			return append(probs, fmt.Sprintf("%s (document %d) into k8s.io/api: %v", gvk, n, err))
		}
		errs = dataKeys(cm.ObjectMeta, slices.Collect(maps.Keys(cm.Data)))
	case "Secret":
		var sec corev1.Secret
		if err := yaml.UnmarshalStrict(doc, &sec); err != nil {
			return append(probs, fmt.Sprintf("%s (document %d) into k8s.io/api: %v", gvk, n, err))
		}
		errs = dataKeys(sec.ObjectMeta, slices.Collect(maps.Keys(sec.Data)))
	}
	for _, e := range errs {
		probs = append(probs, fmt.Sprintf("%s (document %d): %v", gvk, n, e))
	}
	return probs
}

// invalid turns a validator's messages into errors at p.
func invalid(p *field.Path, v any, msgs []string) field.ErrorList {
	var errs field.ErrorList
	for _, m := range msgs {
		errs = append(errs, field.Invalid(p, v, m))
	}
	return errs
}

// dataKeys checks a ConfigMap's or Secret's metadata and data keys.
func dataKeys(m metav1.ObjectMeta, keys []string) field.ErrorList {
	errs := objectMeta(m, field.NewPath("metadata"))
	for _, k := range keys {
		errs = append(errs, invalid(field.NewPath("data").Key(k), k, validation.IsConfigMapKey(k))...)
	}
	return errs
}

func objectMeta(m metav1.ObjectMeta, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, invalid(p.Child("name"), m.Name, validation.IsDNS1123Subdomain(m.Name))...)
	errs = append(errs, invalid(p.Child("namespace"), m.Namespace, validation.IsDNS1123Label(m.Namespace))...)
	return append(errs, metavalidation.ValidateLabels(m.Labels, p.Child("labels"))...)
}

// The rules of Kubernetes' own validation (pkg/apis/apps/validation and
// pkg/apis/core/validation, which cannot be imported outside
// k8s.io/kubernetes) that a schema does not express, for the fields the
// manifest uses, built from apimachinery's validators.
func daemonSet(ds *appsv1.DaemonSet) field.ErrorList {
	errs := objectMeta(ds.ObjectMeta, field.NewPath("metadata"))
	spec := field.NewPath("spec")
	if ds.Spec.Selector == nil {
		return append(errs, field.Required(spec.Child("selector"), ""))
	}
	errs = append(errs, metavalidation.ValidateLabelSelector(ds.Spec.Selector, metavalidation.LabelSelectorValidationOptions{}, spec.Child("selector"))...)
	tl := ds.Spec.Template.Labels
	errs = append(errs, metavalidation.ValidateLabels(tl, spec.Child("template", "metadata", "labels"))...)
	// "selector does not match template labels"
	if sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector); err != nil || sel.Empty() || !sel.Matches(labels.Set(tl)) {
		errs = append(errs, field.Invalid(spec.Child("template", "metadata", "labels"), tl, "selector does not match template labels"))
	}
	us := ds.Spec.UpdateStrategy
	switch us.Type {
	case appsv1.RollingUpdateDaemonSetStrategyType:
		if ru := us.RollingUpdate; ru != nil && ru.MaxUnavailable != nil && ru.MaxUnavailable.IntValue() < 1 && ru.MaxUnavailable.StrVal == "" {
			errs = append(errs, field.Invalid(spec.Child("updateStrategy", "rollingUpdate", "maxUnavailable"), ru.MaxUnavailable, "must be at least 1"))
		}
	case appsv1.OnDeleteDaemonSetStrategyType, "":
	default:
		errs = append(errs, field.NotSupported(spec.Child("updateStrategy", "type"), us.Type, []string{"RollingUpdate", "OnDelete"}))
	}
	return append(errs, podSpec(&ds.Spec.Template.Spec, spec.Child("template", "spec"))...)
}

var (
	dnsPolicies   = []corev1.DNSPolicy{corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone}
	hostPathTypes = []corev1.HostPathType{corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory,
		corev1.HostPathFileOrCreate, corev1.HostPathFile, corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev}
	protocols = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}
	// The field paths the downward API gives environment variables.
	envFieldPaths = []string{"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
		"spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"}
	envRef = regexp.MustCompile(`\$\(([^)]*)\)`)
)

func podSpec(ps *corev1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if !slices.Contains(dnsPolicies, ps.DNSPolicy) && ps.DNSPolicy != "" {
		errs = append(errs, field.NotSupported(p.Child("dnsPolicy"), ps.DNSPolicy, dnsPolicies))
	}
	errs = append(errs, metavalidation.ValidateLabels(ps.NodeSelector, p.Child("nodeSelector"))...)
	if g := ps.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		errs = append(errs, field.Invalid(p.Child("terminationGracePeriodSeconds"), *g, "must be >= 0"))
	}
	for i, t := range ps.Tolerations {
		tp := p.Child("tolerations").Index(i)
		if t.Operator == corev1.TolerationOpExists && t.Value != "" {
			errs = append(errs, field.Invalid(tp.Child("value"), t.Value, "must be empty when operator is Exists"))
		}
		if t.Key == "" && t.Operator != corev1.TolerationOpExists {
			errs = append(errs, field.Invalid(tp.Child("operator"), t.Operator, "must be Exists when key is empty"))
		}
	}
	vols := map[string]bool{}
	for i, v := range ps.Volumes {
		vp := p.Child("volumes").Index(i)
		errs = append(errs, invalid(vp.Child("name"), v.Name, validation.IsDNS1123Label(v.Name))...)
		if vols[v.Name] {
			errs = append(errs, field.Duplicate(vp.Child("name"), v.Name))
		}
		vols[v.Name] = true
		sources := 0
		if hp := v.HostPath; hp != nil {
			sources++
			if !strings.HasPrefix(hp.Path, "/") {
				errs = append(errs, field.Invalid(vp.Child("hostPath", "path"), hp.Path, "must be absolute"))
			}
			if hp.Type != nil && !slices.Contains(hostPathTypes, *hp.Type) {
				errs = append(errs, field.NotSupported(vp.Child("hostPath", "type"), *hp.Type, hostPathTypes))
			}
		}
		if v.EmptyDir != nil {
			sources++
		}
		if cm := v.ConfigMap; cm != nil {
			sources++
			errs = append(errs, invalid(vp.Child("configMap", "name"), cm.Name, validation.IsDNS1123Subdomain(cm.Name))...)
		}
		if s := v.Secret; s != nil {
			sources++
			errs = append(errs, invalid(vp.Child("secret", "secretName"), s.SecretName, validation.IsDNS1123Subdomain(s.SecretName))...)
			if s.DefaultMode != nil && (*s.DefaultMode < 0 || *s.DefaultMode > 0o777) {
				errs = append(errs, field.Invalid(vp.Child("secret", "defaultMode"), *s.DefaultMode, "must be 0..0777"))
			}
		}
		if sources != 1 {
			errs = append(errs, field.Invalid(vp, v.Name, "must have exactly one source of the kinds used here"))
		}
	}
	if len(ps.Containers) == 0 {
		errs = append(errs, field.Required(p.Child("containers"), ""))
	}
	for i := range ps.Containers {
		errs = append(errs, container(&ps.Containers[i], p.Child("containers").Index(i), vols, ps.HostNetwork)...)
	}
	return errs
}

func container(c *corev1.Container, p *field.Path, vols map[string]bool, hostNetwork bool) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, invalid(p.Child("name"), c.Name, validation.IsDNS1123Label(c.Name))...)
	if c.Image == "" {
		errs = append(errs, field.Required(p.Child("image"), ""))
	}
	ports := map[string]bool{}
	for i, port := range c.Ports {
		pp := p.Child("ports").Index(i)
		errs = append(errs, invalid(pp.Child("name"), port.Name, validation.IsValidPortName(port.Name))...)
		if ports[port.Name] {
			errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
		}
		ports[port.Name] = true
		errs = append(errs, invalid(pp.Child("containerPort"), port.ContainerPort, validation.IsValidPortNum(int(port.ContainerPort)))...)
		if !slices.Contains(protocols, port.Protocol) {
			errs = append(errs, field.NotSupported(pp.Child("protocol"), port.Protocol, protocols))
		}
		// "must match containerPort when hostNetwork is true"
		if hostNetwork && port.HostPort != 0 && port.HostPort != port.ContainerPort {
			errs = append(errs, field.Invalid(pp.Child("hostPort"), port.HostPort, "must match containerPort when hostNetwork is true"))
		}
	}
	defined := map[string]bool{}
	for i, e := range c.Env {
		ep := p.Child("env").Index(i)
		errs = append(errs, invalid(ep.Child("name"), e.Name, validation.IsEnvVarName(e.Name))...)
		// Kubernetes expands $(VAR) only with variables defined before:
		// a later or unknown one stays as it is written.
		for _, ref := range envRef.FindAllStringSubmatch(e.Value, -1) {
			if !defined[ref[1]] {
				errs = append(errs, field.Invalid(ep.Child("value"), e.Value, "refers to $("+ref[1]+"), not defined before it"))
			}
		}
		defined[e.Name] = true
		if vf := e.ValueFrom; vf != nil {
			if e.Value != "" {
				errs = append(errs, field.Invalid(ep.Child("valueFrom"), "", "may not be given with value"))
			}
			if vf.FieldRef == nil || !slices.Contains(envFieldPaths, vf.FieldRef.FieldPath) {
				errs = append(errs, field.Invalid(ep.Child("valueFrom", "fieldRef"), vf.FieldRef, "must be a supported downward API field"))
			}
		}
	}
	mounts := map[string]bool{}
	for i, vm := range c.VolumeMounts {
		mp := p.Child("volumeMounts").Index(i)
		if !vols[vm.Name] {
			errs = append(errs, field.NotFound(mp.Child("name"), vm.Name))
		}
		if !strings.HasPrefix(vm.MountPath, "/") || mounts[vm.MountPath] {
			errs = append(errs, field.Invalid(mp.Child("mountPath"), vm.MountPath, "must be absolute and unique"))
		}
		mounts[vm.MountPath] = true
	}
	for name, pr := range map[string]*corev1.Probe{"livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe, "startupProbe": c.StartupProbe} {
		if pr == nil {
			continue
		}
		pp := p.Child(name)
		if pr.HTTPGet == nil {
			errs = append(errs, field.Required(pp.Child("httpGet"), "the manifest's probes are HTTP"))
			continue
		}
		if port := pr.HTTPGet.Port; port.StrVal != "" && !ports[port.StrVal] {
			errs = append(errs, field.Invalid(pp.Child("httpGet", "port"), port.StrVal, "names no container port"))
		}
		if !strings.HasPrefix(pr.HTTPGet.Path, "/") {
			errs = append(errs, field.Invalid(pp.Child("httpGet", "path"), pr.HTTPGet.Path, "must be absolute"))
		}
		// "must be 1 for liveness and startup probes"
		if name != "readinessProbe" && pr.SuccessThreshold > 1 {
			errs = append(errs, field.Invalid(pp.Child("successThreshold"), pr.SuccessThreshold, "must be 1"))
		}
	}
	if sc := c.SecurityContext; sc != nil {
		sp := p.Child("securityContext")
		// "cannot set allowPrivilegeEscalation to false and privileged to
		// true" / "... and capabilities.Add CAP_SYS_ADMIN"
		if ape := sc.AllowPrivilegeEscalation; ape != nil && !*ape {
			if sc.Privileged != nil && *sc.Privileged {
				errs = append(errs, field.Invalid(sp, sc, "cannot set allowPrivilegeEscalation to false and privileged to true"))
			}
			if sc.Capabilities != nil && slices.Contains(sc.Capabilities.Add, "SYS_ADMIN") {
				errs = append(errs, field.Invalid(sp, sc, "cannot set allowPrivilegeEscalation to false and capabilities.Add CAP_SYS_ADMIN"))
			}
		}
	}
	return errs
}

func render(t *testing.T, o k8s.Options) []byte {
	t.Helper()
	out, err := k8s.Render(o)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func full() k8s.Options {
	o := k8s.Defaults("1.2.3")
	o.Config = []byte("node: {name: lb1}\n")
	o.Keyring = []byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	o.UserScripts, o.HostPID = true, true
	return o
}

// The manifests vigil prints are valid Kubernetes objects: every
// combination of the flags, and the example checked in under deploy/k8s.
func TestManifestsAreValid(t *testing.T) {
	alone := k8s.Defaults("dev")
	alone.GossipSecret = ""
	other := full()
	other.Namespace, other.Name = "lb", "edge-directors"
	other.NodeSelector = map[string]string{"node-role.kubernetes.io/lb": "", "topology.kubernetes.io/zone": "eu-1a"}
	example, err := os.ReadFile("../vigil-daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, stream := range map[string][]byte{
		"defaults":   render(t, k8s.Defaults("dev")),
		"no gossip":  render(t, alone),
		"all":        render(t, full()),
		"other":      render(t, other),
		"checked-in": example,
	} {
		t.Run(name, func(t *testing.T) {
			for _, p := range check(stream) {
				t.Error(p)
			}
		})
	}
}

// Each broken manifest must fail: the checks above can fail, and each
// mistake is caught by the layer named.
func TestBrokenManifestsFail(t *testing.T) {
	good := string(render(t, full()))
	if p := check([]byte(good)); len(p) > 0 {
		t.Fatalf("the manifest to break is not valid to start with: %v", p)
	}
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"misspelled field (schema: additionalProperties)", "hostNetwork: true", "hostNetwrok: true", "additional properties 'hostNetwrok' not allowed"},
		{"wrong type (schema: integer)", "terminationGracePeriodSeconds: 30", `terminationGracePeriodSeconds: "30"`, "terminationGracePeriodSeconds': got string, want integer"},
		{"wrong type (schema: boolean)", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: yes please", "readOnlyRootFilesystem': got string, want boolean"},
		{"list for a mapping (schema: object)", "nodeSelector:\n        vigil.io/director: \"true\"", "nodeSelector: [vigil]", "nodeSelector': got array, want object"},
		{"missing required container name (schema: required)", "- name: vigil\n          image:", "- image:", "missing property 'name'"},
		{"duplicate key (YAML)", "hostNetwork: true\n", "hostNetwork: true\n      hostNetwork: false\n", "hostNetwork"},
		{"unsupported dnsPolicy", "dnsPolicy: ClusterFirstWithHostNet", "dnsPolicy: ClusterFirstWithHostNetwork", "dnsPolicy"},
		{"selector not matching the template", "      app.kubernetes.io/component: director\n  updateStrategy", "      app.kubernetes.io/component: directors\n  updateStrategy", "selector does not match"},
		{"probe on an unknown port", "port: metrics\n            periodSeconds: 10", "port: metric\n            periodSeconds: 10", "names no container port"},
		{"port name too long", "name: gossip-udp", "name: gossip-udp-memberlist", "ports[2].name"},
		{"env var used before it is defined", "name: HOST_IP", "name: HOST_ADDRESS", "not defined before"},
		{"unsupported downward API field", "fieldPath: spec.nodeName", "fieldPath: spec.node", "fieldRef"},
		{"mount of no volume", "- name: tmp\n              mountPath", "- name: temp\n              mountPath", "volumeMounts[3].name"},
		{"hostPort other than containerPort on the host network", "containerPort: 9730", "containerPort: 9730\n              hostPort: 9731", "hostPort"},
		{"bad hostPath type", "type: DirectoryOrCreate", "type: DirOrCreate", "hostPath.type"},
		{"bad label value", "vigil.io/director: \"true\"", "vigil.io/director: \"-true\"", "nodeSelector"},
		{"bad secret data (base64)", "keyring: QUFB", "keyring: QU%FB", "Secret"},
		{"privileged with allowPrivilegeEscalation false", "runAsUser: 0", "runAsUser: 0\n            privileged: true", "privileged to true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Count(good, tc.old) < 1 {
				t.Fatalf("the manifest has no %q to break", tc.old)
			}
			bad := strings.Replace(good, tc.old, tc.new, 1)
			probs := check([]byte(bad))
			if len(probs) == 0 {
				t.Fatalf("accepted:\n%s", bad)
			}
			t.Log(strings.Join(probs, "\n"))
			if !strings.Contains(strings.Join(probs, "\n"), tc.want) {
				t.Fatalf("problems do not mention %q:\n%s", tc.want, strings.Join(probs, "\n"))
			}
		})
	}
}
