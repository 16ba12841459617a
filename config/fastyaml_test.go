package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"vigil/internal/fastyaml"
)

// checkQuickItem holds fastyaml.Item to its promise: an item it reads has
// the value the whole read (yaml.v3 to nodes, converted) gives the same
// text as the one item of a list, and the whole read finds nothing in it
// that keeps a Loader from decoding it apart. It reports whether
// fastyaml.Item read the item.
func checkQuickItem(t *testing.T, item string) bool {
	t.Helper()
	got, ok := fastyaml.Item([]byte(item))
	if !ok {
		return false
	}
	doc, errs := readDoc([]byte("items:\n"+item), "")
	if errs != nil {
		t.Errorf("%q: fastyaml.Item read %#v; the whole read refuses it: %v", item, got, errs)
		return true
	}
	if doc.facts.special {
		t.Errorf("%q: fastyaml.Item read %#v; the whole read finds aliases, merge keys or capitals", item, got)
	}
	list, _ := doc.root["items"].([]any)
	if len(list) != 1 {
		t.Errorf("%q: fastyaml.Item read one item; the whole read %d: %#v", item, len(list), doc.root["items"])
		return true
	}
	if !reflect.DeepEqual(got, list[0]) {
		t.Errorf("%q:\nfastyaml.Item %#v\nwhole read    %#v", item, got, list[0])
	}
	return true
}

// TestQuickItem: the layouts configs are written in are read as the whole
// parse reads them; whatever quickItem is not sure of goes to yaml.v3.
func TestQuickItem(t *testing.T) {
	for _, tc := range []struct {
		item string
		read bool
	}{
		// Flow style on one line, as the benchmark's file.
		{`    - {name: vs0, address: "203.0.113.1:80", protocol: tcp, real_servers: [{address: "198.51.100.1:8080", weight: 1}, {address: '198.51.100.2:8080', weight: 2}]}` + "\n", true},
		// Block style, comments, blank lines, a sequence at its key's
		// indentation, entries that start mappings, extra spaces.
		{"    - name: web   # the site\n      address: 203.0.113.10:443\n\n      protocol: tcp\n      # a comment line\n      real_servers:\n      - address: 198.51.100.1:443\n        weight: 3\n        checks:\n          -   type: http\n              path: /healthz?full=1\n              status: [200, 204]\n      -\n        address: 198.51.100.2:443\n      quorum:\n      sorry_server: ~\n", true},
		// Scalars resolved as yaml.v3 does: bool and null words, numbers
		// in plain decimal, text that only looks numeric.
		{`- {a: true, b: False, c: NULL, d: null, e: ~, f: -3, g: +4, h: 0, i: 1.25, j: 192.0.2.1, k: "2001:db8::1", l: yes, m: on, n: 'it''s', o: X, p: a b  c, q: [], r: {}}` + "\n", true},
		{"- v: 2001:db8::1\n  w: a:b\n  x: /bin/check --port=80 %h\n  y: it's a [test], {x}\n  z: \"# not a comment\"\n", true},
		{"- plain\n", true},
		{"- [a, b]\n", true},
		{"-\n  - a\n", true},

		// Left to yaml.v3.
		{"- {v: 0755}\n", false},                     // octal
		{"- {v: 1_000}\n", false},                    // underscores
		{"- {v: 0x1f}\n", false},                     // hexadecimal
		{"- {v: 1e3}\n", false},                      // exponents
		{"- {v: .5}\n", false},                       // a float without digits before the point
		{"- {v: 2001-12-14}\n", false},               // a timestamp
		{"- {v: .inf}\n", false},                     // special floats
		{"- {v: 123456789012345678901234}\n", false}, // beyond int64
		{"- {v: 192.0.2.1}\n- x\n", false},           // two items
		{"- {<<: {v: 1}}\n", false},                  // merge keys
		{"- {v: 1, v: 2}\n", false},                  // duplicate keys
		{"- {Name: a, name: b}\n", false},            // the same key to viper
		{"- {O: x}\n", false},                        // capitals: the whole parse warns
		{"- name: a\n  Address: b\n", false},         // in a block mapping too
		{"- {1: a}\n", false},                        // a key not a string
		{"- {true: a}\n", false},
		{"- {v: &a 1, w: *a}\n", false}, // anchors and aliases
		{"- {v: !!str 5}\n", false},     // tags
		{"- {v: \"a\\tb\"}\n", false},   // escapes
		{"- {v: [a, b, ]}\n", false},    // a trailing comma
		{"- {v: [a,\n    b]}\n", false}, // flow over two lines
		{"- v: a\n    b\n", false},      // a plain scalar over two lines
		{"- v: |\n    text\n", false},   // block scalars
		{"- v: \"two\n    lines\"\n", false},
		{"- ? v\n  : w\n", false},     // complex keys
		{"- v: a#b\n", false},         // '#' within a scalar
		{"- {v: a:b}\n", true},        // ':' within a flow scalar
		{"- {v: a: b}\n", false},      // ": " within a flow scalar
		{"- v: a: b\n", false},        // ": " within a plain scalar
		{"- name: café\n", false},     // beyond ASCII
		{"- - a\n", false},            // an entry starting a sequence
		{"- v: 1\n   w: 2\n", false},  // inconsistent indentation
		{"- v: x\n - w\n", false},     // a line of no node
		{"- {v: 1}\n  w: 2\n", false}, // a line after a flow mapping
		{"- v: \"x\"#c\n", false},     // a comment without a space
		{"- {v: [a, {w: 1}], x: [1, 2.5]}\n", true},
		// Text that starts like a number: durations, options, dot-files.
		{"- {a: 10s, b: 1m30s, c: 500ms, d: [/bin/test, -f, /x], e: .hidden, f: -x, g: +y}\n", true},
		{"- {v: -.inf}\n", false},
		{"- {v: .NaN}\n", false},
		{"- {v: 1d}\n", false}, // a hexadecimal digit: not sure
		{"- " + strings.Repeat("[", 32) + strings.Repeat("]", 32) + "\n", true},
		{"- " + strings.Repeat("[", 33) + strings.Repeat("]", 33) + "\n", false}, // nested deeper than maxFlowDepth
	} {
		if got := checkQuickItem(t, tc.item); got != tc.read {
			t.Errorf("%q: read %v, want %v", tc.item, got, tc.read)
		}
	}
	// The example configuration's virtual servers (block style, comments
	// everywhere, durations, nested checks): read.
	example, err := os.ReadFile("../deploy/examples/vigil.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ex, ok := vsItems(example)
	if !ok || len(ex) == 0 {
		t.Fatalf("vsItems of the example: %d items, %v", len(ex), ok)
	}
	for _, it := range ex {
		if !checkQuickItem(t, string(example[it[0]:it[1]])) {
			t.Errorf("the example's item not read: %q", example[it[0]:it[1]])
		}
	}
	// The benchmarks' files, in flow and block style: every item read.
	for _, data := range []string{string(largeLB(20, 4)), string(largeLBBlock(20, 4))} {
		items, ok := vsItems([]byte(data))
		if !ok || len(items) != 20 {
			t.Fatalf("vsItems: %d items, %v", len(items), ok)
		}
		for _, it := range items {
			if !checkQuickItem(t, data[it[0]:it[1]]) {
				t.Errorf("not read: %q", data[it[0]:it[1]])
			}
		}
	}
}

// FuzzQuickItem checks checkQuickItem's promise on any text (make fuzz).
func FuzzQuickItem(f *testing.F) {
	f.Add(`    - {name: vs0, address: "203.0.113.1:80", real_servers: [{address: '198.51.100.1:8080', weight: 1}]}` + "\n")
	f.Add("    - name: web   # the site\n      address: 203.0.113.10:443\n\n      real_servers:\n      - address: 198.51.100.1:443\n        checks:\n          -   type: http\n              status: [200, 204]\n      -\n        address: x\n      quorum:\n")
	f.Add(`- {a: true, b: False, c: NULL, e: ~, f: -3, g: +4, i: 1.25, j: 192.0.2.1, k: 2001:db8::1, n: 'it''s', O: x, p: a b, q: [], r: {}}` + "\n")
	f.Add("- v: a:b\n  w: /bin/x --p=1 %h\n  y: it's a [test], {x}\n")
	f.Add("- {a: 10s, b: 1m30s, d: [/bin/test, -f, /x], e: .hidden, f: -x, g: +y, h: 0x1f, i: 1e3, j: 2001-12-14, k: .inf}\n")
	f.Fuzz(func(t *testing.T, item string) {
		checkQuickItem(t, item)
	})
}
