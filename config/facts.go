package config

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// docFacts is what the parse of a file learns beyond its values: what
// viper's lower-casing of keys and yaml.Unmarshal's one document would
// hide, and where keys stand in the file.
type docFacts struct {
	// errs are problems with the document as such: keys of one mapping
	// that differ only in case, a second document. The values are not
	// decoded when there are any (which of two such keys viper keeps is
	// down to map order).
	errs []FieldError
	// nulls maps the path of every key written with no value (or null)
	// to its line; nullParents holds the paths of the mappings around
	// them. viper leaves such keys out (outside lists), and a mapping
	// with nothing else in it as well.
	nulls       map[string]int
	nullParents map[string]bool
	// spelled maps the path of every key written with capitals, and with
	// no other spelling in its mapping, to how it was written.
	spelled map[string]*spelledKey
}

// spelledKey is a key written with capitals (Preempt:), which viper
// reads as its lower-case form.
type spelledKey struct {
	as   string
	line int
	read bool // the decoder read the key (one vigil knows) and warned
}

// yamlCodec is the YAML decoder of one viper read. It parses the file's
// first document to yaml.v3 nodes and decodes those into the map as
// viper's own codec does (yaml.Unmarshal into the map, which reads the
// first document; a node decodes exactly so), learning the docFacts from
// the nodes on the way: one parse, as before, and a look at what follows.
type yamlCodec struct {
	reuseKey string // the Loader's placeholder key; "" for none
	facts    docFacts
}

func (c *yamlCodec) Decoder(string) (viper.Decoder, error) { return c, nil }

func (c *yamlCodec) Decode(b []byte, v map[string]any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil // no document at all: yaml.Unmarshal leaves the map empty
		}
		return err
	}
	w := walker{f: &c.facts, reuseKey: c.reuseKey, budget: mergeBudget}
	w.node(&doc)
	if fe, ok := afterFirst(dec, b); ok {
		c.facts.errs = append(c.facts.errs, fe)
	}
	if len(c.facts.errs) > 0 {
		return nil // reported instead of the values
	}
	return doc.Decode(&v)
}

// mergeBudget bounds the keys of merged mappings (<<: *anchor) one file's
// walk looks at, so that a file of aliases to aliases cannot make it
// quadratic; yaml.v3 refuses such files as excessive aliasing anyway.
const mergeBudget = 1 << 20

// pathSeg is one step of a key path: a key, or with key "" a list index.
type pathSeg struct {
	key string
	idx int
}

// walker visits a document's nodes with the key path vigil's decoder uses
// (lower-case keys, "[i]" for list elements: vrrp.instances[0].preempt).
type walker struct {
	f        *docFacts
	reuseKey string
	segs     []pathSeg
	budget   int
}

// at is the path of key in the mapping being walked.
func (w *walker) at(key string) string {
	var b strings.Builder
	for _, s := range w.segs {
		if s.key == "" {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.idx))
			b.WriteByte(']')
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.key)
	}
	if b.Len() > 0 {
		b.WriteByte('.')
	}
	b.WriteString(key)
	return b.String()
}

// node walks n. An alias is not followed: its anchor was walked where it
// stands (merged keys are looked at by fold).
func (w *walker) node(n *yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			w.node(c)
		}
	case yaml.MappingNode:
		w.mapping(n)
	case yaml.SequenceNode:
		w.seq(n)
	}
}

func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Tag == "!!merge"
}

func (w *walker) mapping(n *yaml.Node) {
	pairs := n.Content
	// Keys all in lower case and no merges, as nearly every mapping is:
	// yaml.v3 refuses a key given twice, so none is equal to another
	// once lower-cased.
	special := false
	for i := 0; i+1 < len(pairs); i += 2 {
		if k := pairs[i]; isMerge(k) || k.Kind == yaml.ScalarNode && strings.ToLower(k.Value) != k.Value {
			special = true
			break
		}
	}
	if special {
		w.fold(n)
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		k, v := pairs[i], pairs[i+1]
		if k.Kind != yaml.ScalarNode || isMerge(k) {
			continue
		}
		key := strings.ToLower(k.Value)
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag == "!!null" {
				w.null(key, k.Line)
			}
		case yaml.MappingNode, yaml.SequenceNode:
			w.segs = append(w.segs, pathSeg{key: key})
			w.node(v)
			w.segs = w.segs[:len(w.segs)-1]
		}
	}
}

// null records key of the mapping being walked as written with a null
// value on line.
func (w *walker) null(key string, line int) {
	if w.f.nulls == nil {
		w.f.nulls, w.f.nullParents = map[string]int{}, map[string]bool{}
	}
	w.f.nulls[w.at(key)] = line
	for i := len(w.segs); i > 0; i-- {
		if w.segs[i-1].key == "" {
			continue // "a.b[0]" is no mapping's path; "a.b[0].c" is
		}
		segs := w.segs
		w.segs = w.segs[:i-1]
		p := w.at(segs[i-1].key)
		w.segs = segs
		if w.f.nullParents[p] {
			break // and its ancestors, by an earlier key
		}
		w.f.nullParents[p] = true
	}
}

func (w *walker) seq(n *yaml.Node) {
	i := 0
	for _, c := range n.Content {
		if span := w.placeholder(c); span > 0 {
			i += span // a Loader's placeholder stands for span items
			continue
		}
		if c.Kind == yaml.MappingNode || c.Kind == yaml.SequenceNode {
			w.segs = append(w.segs, pathSeg{idx: i})
			w.node(c)
			w.segs = w.segs[:len(w.segs)-1]
		}
		i++
	}
}

// placeholder returns how many items a Loader placeholder {key: [first,
// count]} stands for; 0 when n is none. A malformed one counts as one: the
// decoder then refuses it and the file is parsed whole.
func (w *walker) placeholder(n *yaml.Node) int {
	if w.reuseKey == "" || n.Kind != yaml.MappingNode || len(n.Content) != 2 || n.Content[0].Value != w.reuseKey {
		return 0
	}
	if s := n.Content[1]; s.Kind == yaml.SequenceNode && len(s.Content) == 2 {
		if k, err := strconv.Atoi(s.Content[1].Value); err == nil && k > 0 {
			return k
		}
	}
	return 1
}

// keyAt is one spelling of a key and the line it is first written on.
type keyAt struct {
	text string
	line int
}

// fold finds the keys of mapping n, merged ones included, that are equal
// once lower-cased (as viper reads them) but spelled differently: an
// error, since one would silently replace the other. A key spelled with
// capitals and no other way is noted in spelled.
func (w *walker) fold(n *yaml.Node) {
	var order []string
	groups := map[string][]keyAt{}
	add := func(k *yaml.Node) {
		if k.Kind != yaml.ScalarNode {
			return
		}
		lower := strings.ToLower(k.Value)
		g := groups[lower]
		for _, s := range g {
			if s.text == k.Value {
				return // the same key: a merged value overridden, as YAML means
			}
		}
		if len(g) == 0 {
			order = append(order, lower)
		}
		groups[lower] = append(g, keyAt{k.Value, k.Line})
	}
	var merged []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; isMerge(k) {
			merged = append(merged, n.Content[i+1])
		} else {
			add(k)
		}
	}
	seen := map[*yaml.Node]bool{}
	for _, m := range merged {
		w.mergedKeys(m, seen, add)
	}
	for _, lower := range order {
		g := groups[lower]
		if len(g) == 1 {
			if g[0].text != lower {
				if w.f.spelled == nil {
					w.f.spelled = map[string]*spelledKey{}
				}
				w.f.spelled[w.at(lower)] = &spelledKey{as: g[0].text, line: g[0].line}
			}
			continue
		}
		slices.SortStableFunc(g, func(a, b keyAt) int { return a.line - b.line })
		list := make([]string, len(g))
		for i, s := range g {
			list[i] = fmt.Sprintf("%q (line %d)", s.text, s.line)
		}
		w.f.errs = append(w.f.errs, FieldError{Path: w.at(lower), Msg: fmt.Sprintf(
			"keys %s and %s differ only in case; vigil reads keys in lower case, so one would silently replace the other: keep one, spelled %q",
			strings.Join(list[:len(list)-1], ", "), list[len(list)-1], lower)})
	}
}

// mergedKeys passes add the keys a merge value (<<: *a, <<: [*a, *b], or
// a mapping) brings into its mapping, those of nested merges included.
func (w *walker) mergedKeys(v *yaml.Node, seen map[*yaml.Node]bool, add func(*yaml.Node)) {
	for v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	if seen[v] || w.budget <= 0 {
		return
	}
	seen[v] = true
	switch v.Kind {
	case yaml.MappingNode:
		w.budget -= len(v.Content) / 2
		for i := 0; i+1 < len(v.Content); i += 2 {
			if k := v.Content[i]; isMerge(k) {
				w.mergedKeys(v.Content[i+1], seen, add)
			} else {
				add(k)
			}
		}
	case yaml.SequenceNode:
		for _, c := range v.Content {
			w.mergedKeys(c, seen, add)
		}
	}
}

// afterFirst reports what follows the first document, which yaml.Unmarshal
// (and so viper) ignores: a second document with content ("---" then
// more), or text that is no document at all. An empty document (a "---"
// at the end) is nothing to lose.
func afterFirst(dec *yaml.Decoder, b []byte) (FieldError, bool) {
	const msg = "line %d: a second YAML document starts here; vigil reads one document per file and would ignore the rest: merge it into the first, or remove it"
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		switch {
		case err == io.EOF:
			return FieldError{}, false
		case err != nil:
			if line := markerAfterStart(b); line > 0 {
				return FieldError{Msg: fmt.Sprintf(msg, line)}, true // one that does not parse
			}
			return FieldError{Msg: "invalid YAML after the first document: " + yamlMessage(err)}, true
		case len(n.Content) == 1 && n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null":
			continue // "---" and nothing, or comments
		}
		return FieldError{Msg: fmt.Sprintf(msg, n.Line)}, true
	}
}

// markerAfterStart returns the line of the first document marker ("---"
// or "..." at the start of a line, alone or before a space) other than a
// "---" that opens the file (after comments, blank lines and directives);
// 0 for none. It places a second document that does not parse.
func markerAfterStart(b []byte) int {
	started := false
	line := 0
	for len(b) > 0 {
		line++
		l := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			l, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		l = bytes.TrimPrefix(l, []byte("\xef\xbb\xbf")) // allowed before every document
		if isMarker(l) {
			if started || !bytes.HasPrefix(l, []byte("---")) {
				return line
			}
			started = true
			continue
		}
		if !started {
			t := bytes.TrimLeft(l, " \t\r")
			if len(t) > 0 && t[0] != '#' && l[0] != '%' {
				started = true
			}
		}
	}
	return 0
}

func isMarker(l []byte) bool {
	if len(l) < 3 || !bytes.HasPrefix(l, []byte("---")) && !bytes.HasPrefix(l, []byte("...")) {
		return false
	}
	return len(l) == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\r'
}
