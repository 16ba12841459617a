package config

import (
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// checkNodeValues parses text as the list of a document ("items:" then
// text) both ways: through read (viper over yaml.v3, what the whole parse
// does) and through nodes and nodeValue. Every item nodeValue converts must
// equal read's; it returns how many it converted.
func checkNodeValues(t *testing.T, text string) int {
	t.Helper()
	doc := []byte("items:\n" + text)
	root, _, errs := read(doc)
	var n yaml.Node
	if err := yaml.Unmarshal(doc, &n); err != nil {
		return 0
	}
	if len(n.Content) != 1 || len(n.Content[0].Content) != 2 || n.Content[0].Content[1].Kind != yaml.SequenceNode {
		return 0
	}
	list, _ := root["items"].([]any)
	converted := 0
	for i, item := range n.Content[0].Content[1].Content {
		v, ok := nodeValue(item)
		if !ok {
			continue
		}
		converted++
		if errs != nil {
			// yaml.v3 refused the document; an item it would refuse
			// must not be converted. Which one it was is not known here,
			// so only a document of that one item can be checked.
			if len(n.Content[0].Content[1].Content) == 1 {
				t.Errorf("item %d converted to %#v; the whole parse refuses it: %v", i, v, errs)
			}
			continue
		}
		if i >= len(list) || !reflect.DeepEqual(v, list[i]) {
			var want any
			if i < len(list) {
				want = list[i]
			}
			t.Errorf("item %d: nodeValue %#v, whole parse %#v", i, v, want)
		}
	}
	return converted
}

// TestNodeValue: what nodeValue converts, it converts as the whole parse
// does; what it is not sure of (octal, timestamps, tags, aliases, merge and
// duplicate keys, keys other than strings), it refuses.
func TestNodeValue(t *testing.T) {
	for _, tc := range []struct {
		item string
		ok   bool
	}{
		{`- {name: a, weight: 3, on: true, off: FALSE, x: ~, y: null, z: "", f: 1.5, g: -2, h: +7, s: "5", q: 'x'}`, true},
		{"- name: a\n  real_servers:\n    - {address: \"198.51.100.1:80\", weight: 0}\n    - address: b\n  list: []\n  map: {}\n  text: |\n    two\n    lines\n", true},
		{`- {v: 0755}`, false},                     // octal to yaml.v3
		{`- {v: 1_000}`, false},                    // underscores
		{`- {v: 0x1f}`, false},                     // hexadecimal
		{`- {v: 2001-12-14}`, false},               // a timestamp
		{`- {v: .inf}`, false},                     // special floats
		{`- {v: 1e3}`, false},                      // exponents
		{`- {v: !!binary aGk=}`, false},            // other tags
		{`- {v: !custom x}`, false},                // custom tags
		{`- {v: &a 1, w: *a}`, false},              // aliases
		{`- {<<: {v: 1}}`, false},                  // merge keys
		{`- {v: 1, v: 2}`, false},                  // duplicate keys
		{`- {Name: a, name: b}`, false},            // the same key to viper
		{`- {Weight: 3}`, false},                   // capitals: the whole parse warns
		{`- {1: a}`, false},                        // a key not a string
		{`- {v: 123456789012345678901234}`, false}, // beyond int64
		{`- {v: yes, w: on, x: y}`, true},          // strings to yaml.v3
		{`- {v: !!str 5, w: !!int "6", x: !!float "1.5"}`, true},
	} {
		n := checkNodeValues(t, tc.item+"\n")
		if got := n > 0; got != tc.ok {
			t.Errorf("%q: converted %v, want %v", tc.item, got, tc.ok)
		}
	}
	// A large file's items: every one converted.
	data := string(largeLB(20, 4))
	at := strings.Index(data, "  virtual_servers:\n") + len("  virtual_servers:\n")
	if n := checkNodeValues(t, data[at:]); n != 20 {
		t.Errorf("converted %d of 20 items", n)
	}
}

// FuzzNodeValue checks checkNodeValues' promise on any YAML (make fuzz).
func FuzzNodeValue(f *testing.F) {
	f.Add("- {name: a, Weight: 3, on: true, f: 1.5, x: ~}\n")
	f.Add("- name: a\n  real_servers:\n    - {address: \"198.51.100.1:80\"}\n")
	f.Add("- {v: 0755, w: 2001-12-14, x: !!binary aGk=}\n- {Name: a, name: b}\n")
	f.Fuzz(func(t *testing.T, text string) {
		checkNodeValues(t, text)
	})
}
