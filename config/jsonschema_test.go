package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

var updateRef = flag.Bool("update-reference", false, "rewrite docs/config-reference.md")

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	raw, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	// Compiling checks the schema against draft 2020-12's metaschema.
	s, err := c.Compile(SchemaID)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// validateYAML validates YAML text against the schema as an editor would.
func validateYAML(s *jsonschema.Schema, text []byte) error {
	var v any
	if err := yaml.Unmarshal(text, &v); err != nil {
		return err
	}
	js, err := json.Marshal(v)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return err
	}
	return s.Validate(inst)
}

// The shipped configurations are valid for the schema (and for vigil,
// which other tests check).
func TestExamplesMatchSchema(t *testing.T) {
	s := compileSchema(t)
	files, _ := filepath.Glob("../deploy/examples/*.yaml")
	files = append(files, "../cmd/vigil/demo.yaml")
	if len(files) < 3 {
		t.Fatalf("examples: %v", files)
	}
	// demo.yaml is a text/template of `vigil demo`.
	demo := strings.NewReplacer("{{.Name}}", "lb1", "{{.Priority}}", "150", "{{.Interval}}", "1s")
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(text, []byte("\nnodes:")) {
			// A fleet document (vigil config render): each node's
			// rendered file is a vigil.yaml, not the document itself.
			continue
		}
		if err := validateYAML(s, []byte(demo.Replace(string(text)))); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// The schema refuses what the decoder refuses, where a schema can say it:
// unknown keys at every level, wrong types, values outside an enum or a
// range, a key another check type reads.
func TestSchemaRefuses(t *testing.T) {
	s := compileSchema(t)
	base := "node: {name: lb1}\nvrrp:\n  instances:\n    - {name: web, interface: eth0, vrid: 51, vips: [192.0.2.100/24]}\n"
	if err := validateYAML(s, []byte(base)); err != nil {
		t.Fatalf("the base document is refused: %v", err)
	}
	for _, tc := range []struct{ name, doc string }{
		{"unknown top-level key", base + "nodes: {}\n"},
		{"unknown instance key (typo)", strings.Replace(base, "vrid: 51", "vrid: 51, prority: 100", 1)},
		{"list for an integer", strings.Replace(base, "vrid: 51", "vrid: [51]", 1)},
		{"out of range", strings.Replace(base, "vrid: 51", "vrid: 256", 1)},
		{"duration without a unit", base + "gossip: {insecure: true, rejoin_interval: 30}\n"},
		{"enum", base + "telemetry: {log_level: verbose}\n"},
		{"missing required", strings.Replace(base, "interface: eth0, ", "", 1)},
		{"key of another check type", base + "lb: {virtual_servers: [{name: h, address: 192.0.2.1:80, protocol: tcp, real_servers: [{address: 198.51.100.1:80, check: {type: tcp, path: /}}]}]}\n"},
		{"unknown check key", base + "lb: {virtual_servers: [{name: h, address: 192.0.2.1:80, protocol: tcp, check: {type: tcp, delay_loop: 5s}, real_servers: [{address: 198.51.100.1:80}]}]}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := validateYAML(s, []byte(tc.doc)); err == nil {
				t.Fatalf("accepted:\n%s", tc.doc)
			}
		})
	}
}

// docs/config-reference.md is the Markdown the table makes.
func TestReferenceIsGenerated(t *testing.T) {
	const file = "../docs/config-reference.md"
	got := Markdown()
	if *updateRef {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what the key table makes: run go test ./config -run Reference -update-reference", file)
	}
}

// probeKey is a key no version of vigil has: the decoder must call it
// unknown wherever it is put.
const probeKey = "zz_probe"

// sample is a value of kind k; the decoder may refuse it, but not as an
// unknown key.
func sample(k Key) any {
	switch k.Kind {
	case KInt:
		return 1
	case KBool:
		return true
	case KDuration:
		return "1s"
	case KCommand:
		return []any{"/bin/true"}
	case KObject, KStrMap:
		return map[string]any{}
	case KList, KChecks:
		return []any{}
	case KStatus:
		return 200
	case KHTTPVer:
		return "1.1"
	case KVMAC:
		return false
	}
	if k.Enum != nil {
		return k.Enum[0]
	}
	return "x"
}

// step is one level of a key's path in the table.
type step struct {
	key  Key
	list bool // the level is an element of a list (or the mapping form of a union)
}

// build returns a document with value at the path steps lead to, and
// extra keys beside it; checks on the way get a type that reads the next key.
func build(steps []step, leaf map[string]any) (map[string]any, string) {
	var path strings.Builder
	root := map[string]any{"node": map[string]any{"name": "lb1"}}
	if len(steps) == 0 {
		maps.Copy(root, leaf)
	}
	cur := root
	for i, s := range steps {
		// A tunnel is read only with forward: tun beside it.
		if s.key.Name == "tunnel" {
			cur["forward"] = "tun"
		}
		if path.Len() > 0 {
			path.WriteByte('.')
		}
		path.WriteString(s.key.Name)
		var next map[string]any
		if i == len(steps)-1 {
			next = leaf
		} else {
			next = map[string]any{}
		}
		if sameKeys(s.key.Keys, schemaCheck) {
			typ := "tcp"
			if i+1 < len(steps) && steps[i+1].key.Types != nil {
				typ = steps[i+1].key.Types[0]
			}
			if _, ok := next["type"]; !ok {
				next["type"] = typ
			}
		}
		if s.list {
			cur[s.key.Name] = []any{next}
			path.WriteString("[0]")
		} else {
			cur[s.key.Name] = next
		}
		cur = next
	}
	return root, path.String()
}

// parseProblems decodes doc and returns its problems by path.
func parseProblems(t *testing.T, doc map[string]any) map[string][]string {
	t.Helper()
	text, err := json.Marshal(doc) // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(text)
	out := map[string][]string{}
	var ve *ValidationError
	if errors.As(err, &ve) {
		for _, fe := range ve.Errors {
			out[fe.Path] = append(out[fe.Path], fe.Msg)
		}
	} else if err != nil {
		t.Fatalf("%s: %v", text, err)
	}
	return out
}

func refusedAsKey(msgs []string) bool {
	for _, m := range msgs {
		if strings.HasPrefix(m, "unknown key") || strings.HasPrefix(m, "not supported yet") || strings.HasPrefix(m, "is not used by a") {
			return true
		}
	}
	return false
}

// mapping is one mapping of the table: the steps to it and its keys.
type mapping struct {
	steps []step
	keys  []Key
}

func mappings() []mapping {
	var out []mapping
	var walk func(steps []step, keys []Key)
	walk = func(steps []step, keys []Key) {
		out = append(out, mapping{steps, keys})
		for _, k := range keys {
			switch {
			case k.Kind == KObject:
				walk(append(slices.Clone(steps), step{k, false}), k.Keys)
			case k.Kind == KList && k.Elem == "", k.Kind == KChecks, len(k.Keys) > 0:
				walk(append(slices.Clone(steps), step{k, k.Kind != KSorry}), k.Keys)
			}
		}
	}
	walk(nil, Schema)
	return out
}

// (a) Every key of the table is read by the decoder where the table puts
// it: put there, it is not called unknown, while a made-up key beside it
// is (so the mapping was really decoded).
func TestSchemaKeysAreDecoded(t *testing.T) {
	n := 0
	for _, m := range mappings() {
		for _, k := range m.keys {
			leaf := map[string]any{k.Name: sample(k), probeKey: 1}
			if sameKeys(m.keys, schemaCheck) {
				typ := "tcp"
				if k.Types != nil {
					typ = k.Types[0]
				}
				if k.Name != "type" {
					leaf["type"] = typ
				}
			}
			doc, at := build(m.steps, leaf)
			probs := parseProblems(t, doc)
			prefix := at
			if prefix != "" {
				prefix += "."
			}
			if !refusedAsKey(probs[prefix+probeKey]) {
				t.Errorf("%s: the decoder did not read this mapping (no unknown-key error for %s): %v", prefix+k.Name, probeKey, probs)
				continue
			}
			if refusedAsKey(probs[prefix+k.Name]) {
				t.Errorf("%s: in the schema, refused by the decoder: %v", prefix+k.Name, probs[prefix+k.Name])
			}
			n++
		}
	}
	if n < 200 {
		t.Errorf("only %d keys checked", n)
	}
	t.Logf("%d keys of the schema read by the decoder", n)
}

// decoderWords returns every string literal of the decoder's source that
// could be a key: whatever the decoder reads, it reads by one of these.
func decoderWords(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob("*.go")
	word := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	seen := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "keys.go" || f == "jsonschema.go" {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			if bl, ok := n.(*ast.BasicLit); ok && bl.Kind == token.STRING {
				if s, err := strconv.Unquote(bl.Value); err == nil && word.MatchString(s) {
					seen[s] = true
				}
			}
			return true
		})
	}
	words := make([]string, 0, len(seen))
	for w := range seen {
		words = append(words, w)
	}
	slices.Sort(words)
	return words
}

// (b) Every key the decoder reads is in the table: each word of its source
// that the table does not list for a mapping is refused there as a key.
// (Keys the decoder would build from pieces are beyond this test; it has
// none.)
func TestDecoderKeysAreInSchema(t *testing.T) {
	words := decoderWords(t)
	if len(words) < 200 || !slices.Contains(words, "advert_interval") {
		t.Fatalf("the decoder's words look wrong: %d", len(words))
	}
	checked := 0
	for _, m := range mappings() {
		leaf := map[string]any{}
		for _, w := range words {
			if !slices.ContainsFunc(m.keys, func(k Key) bool { return k.Name == w }) {
				leaf[w] = 1
			}
		}
		if sameKeys(m.keys, schemaCheck) {
			leaf["type"] = "tcp"
		}
		doc, at := build(m.steps, leaf)
		probs := parseProblems(t, doc)
		prefix := at
		if prefix != "" {
			prefix += "."
		}
		for w := range leaf {
			if w == "type" && sameKeys(m.keys, schemaCheck) {
				continue
			}
			if !refusedAsKey(probs[prefix+w]) {
				t.Errorf("%s: read by the decoder but not in the schema (problems: %v)", prefix+w, probs[prefix+w])
			}
			checked++
		}
	}
	t.Logf("%d (mapping, word) pairs refused by the decoder as the schema says", checked)
}

// A made-up key is refused by both, at the top and deep inside.
func TestUnknownKeyRefusedByBoth(t *testing.T) {
	s := compileSchema(t)
	for _, doc := range []string{
		"node: {name: lb1}\nzz_probe: 1\n",
		"node: {name: lb1}\nvrrp: {instances: [{name: web, interface: eth0, vrid: 51, vips: [192.0.2.100], track: {zz_probe: []}}]}\n",
	} {
		if err := validateYAML(s, []byte(doc)); err == nil {
			t.Errorf("the schema accepts %q", doc)
		}
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), "zz_probe: unknown key") {
			t.Errorf("the decoder: %v", err)
		}
	}
}
