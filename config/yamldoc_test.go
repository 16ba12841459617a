package config

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// viperRead is read before vigil had its own YAML codec: viper's.
func viperRead(data []byte) (map[string]any, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, err
	}
	return v.AllSettings(), nil
}

// anyAfterFirst reports whether anything but empty documents follows the
// first, by decoding them all.
func anyAfterFirst(b []byte) bool {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		return false
	}
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == io.EOF {
			return false
		}
		if err != nil {
			return true
		}
		if !(len(n.Content) == 1 && n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null") {
			return true
		}
	}
}

// read is readDoc for tests: the values, and the problems instead.
func read(data []byte) (map[string]any, []FieldError) {
	doc, errs := readDoc(data, "")
	if errs != nil {
		return nil, errs
	}
	return doc.root, nil
}

// withoutEmpty removes the mappings left empty outside lists, recursively:
// viper's AllSettings has no such keys, vigil's read keeps them (a
// mapping written is there, empty or not).
func withoutEmpty(m map[string]any) map[string]any {
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			if len(withoutEmpty(sub)) == 0 {
				delete(m, k)
			}
		}
	}
	return m
}

// FuzzReadMatchesViper holds readDoc to what vigil read before it had its
// own reader, viper's (yaml.v3 into a map, keys lower-cased): for any file
// without keys differing only in case and with one document, the same
// values, and an error exactly when viper has one; a file with more than
// one document is reported exactly when there is something after the
// first.
func FuzzReadMatchesViper(f *testing.F) {
	f.Add("a: 1\n")
	f.Add("a: &x {b: 1}\nc: {<<: *x, d: 2}\n")
	f.Add("a: 1\n---\nb: 2\n")
	f.Add("---\na: [1, {b: ~}]\n...\n")
	f.Add(string(largeLB(3, 2)))
	f.Add("x:\n  y:\n  z: {w: }\n")
	f.Add("\xef\xbb\xbfa: 1\n\xef\xbb\xbf---\nb: 1\n")
	f.Add("{}0")
	f.Add("a: {Key: 1, b: [0x1f, 0o17, 1.5e3, .inf, 2001-12-14, !!str 3, !!binary aGk=, yes, ~]}\n")
	f.Add("a: {b: 1, b: 2}\n")
	f.Add("a: &a [*a]\n")
	f.Add("- 1\n")
	f.Fuzz(func(t *testing.T, s string) {
		b := []byte(s)
		got, errs := read(b)
		if caseDup(errs) {
			return
		}
		if second := len(errs) > 0 && (strings.Contains(errs[0].Msg, "second YAML document") || strings.Contains(errs[0].Msg, "after the first document")); second {
			if !anyAfterFirst(b) {
				t.Fatalf("second document reported: %v", errs)
			}
			return
		}
		want, werr := viperRead(b)
		if werr != nil || len(errs) > 0 {
			if (werr != nil) != (len(errs) > 0) && !anyAfterFirst(b) {
				t.Fatalf("errors %v, viper's %v", errs, werr)
			}
			return
		}
		if anyAfterFirst(b) {
			t.Fatalf("a second document is not reported")
		}
		if dotted(got) {
			return // viper nests "a.b: 1" as a: {b: 1}, drops "": vigil has no such keys
		}
		if got = withoutEmpty(got); !reflect.DeepEqual(got, want) {
			t.Fatalf("got %#v\nwant %#v", got, want)
		}
	})
}

// caseDup reports whether the read found keys differing only in case.
func caseDup(errs []FieldError) bool {
	for _, e := range errs {
		if e.Path != "" {
			return true
		}
	}
	return false
}

// dotted reports whether a key of v, at any depth, has a dot or is empty
// (viper drops those).
func dotted(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if k == "" || strings.Contains(k, ".") || dotted(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if dotted(e) {
				return true
			}
		}
	}
	return false
}

// A file of aliases to aliases is refused quickly, not expanded.
func TestExcessiveAliasing(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 12; i++ {
		p := fmt.Sprintf("*a%d", i-1)
		fmt.Fprintf(&b, "a%d: &a%d [%s]\n", i, i, strings.Repeat(p+", ", 9)+p)
	}
	ve := mustFail(t, b.String())
	if len(ve.Errors) != 1 || !strings.Contains(ve.Errors[0].Msg, "excessive aliasing") {
		t.Fatalf("%v", ve)
	}
}
