package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"vigil/internal/fastyaml"

	"go.yaml.in/yaml/v3"
)

// docFacts is what reading a file learns beyond its values: problems with
// the document as such, keys written with no value, keys with capitals.
type docFacts struct {
	// errs are problems with the document as such: keys of one mapping
	// that differ only in case, a key given twice, a second document. The
	// values are not decoded when there are any.
	errs []FieldError
	// nulls maps the path of every key written with no value (or null)
	// to its line. Outside lists such a key is left out of the values, as
	// if absent (as vigil always read them); a list key is warned of.
	nulls map[string]int
	// spelled maps the path of every key written with capitals, and with
	// no other spelling in its mapping, to how it was written.
	spelled map[string]*spelledKey
	// special: the document has aliases, merge keys or keys with capitals
	// (a Loader decodes apart only items without them).
	special bool
}

// spelledKey is a key written with capitals (Preempt:), which vigil reads
// as its lower-case form.
type spelledKey struct {
	as   string
	line int
	read bool // the decoder read the key (one vigil knows) and warned
}

// document is a file read: the values the decoder walks (map[string]any,
// []any and scalars as yaml.v3 decodes them into interfaces, keys in lower
// case), what the read learnt, and the node tree, kept to place problems.
type document struct {
	root  map[string]any
	tree  *yaml.Node // the first document's content; nil when empty
	facts docFacts
}

// readDoc parses data's first YAML document into nodes, once, and converts
// them to values. reuseKey is a Loader's placeholder key ("" for none), so
// that paths after a placeholder count the items it stands for.
func readDoc(data []byte, reuseKey string) (*document, []FieldError) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var top yaml.Node
	if err := dec.Decode(&top); err != nil {
		if errors.Is(err, io.EOF) {
			return &document{root: map[string]any{}}, nil // no document at all
		}
		return nil, []FieldError{yamlError(err, data)}
	}
	doc := &document{}
	if len(top.Content) > 0 {
		doc.tree = top.Content[0]
	}
	c := converter{f: &doc.facts, reuseKey: reuseKey, budget: aliasBudget(len(data))}
	v := c.value(&top)
	if fe, ok := afterFirst(dec, data); ok {
		doc.facts.errs = append(doc.facts.errs, fe)
	}
	if len(doc.facts.errs) > 0 {
		return nil, doc.facts.errs
	}
	switch m := v.(type) {
	case nil:
		doc.root = map[string]any{}
	case map[string]any:
		doc.root = m
	default:
		fe := FieldError{Msg: "invalid YAML: the document must be a mapping of sections (node:, vrrp:, telemetry:), not " + kind(v)}
		fe.Line, fe.Column = doc.tree.Line, doc.tree.Column
		return nil, []FieldError{fe}
	}
	return doc, nil
}

// yamlError turns a yaml.v3 parse error into a FieldError with its line.
// yaml.v3 leaves the line out for problems on the first line (its marks
// count from 0) and for reader errors (bytes that are no text), which the
// first such byte places.
func yamlError(err error, data []byte) FieldError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		n, _, _ := strings.Cut(rest, ":")
		line, _ = strconv.Atoi(n)
	}
	if line == 0 {
		line = 1
		if i := bytes.IndexFunc(data, func(r rune) bool {
			return (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f || r == utf8.RuneError
		}); i >= 0 {
			line = bytes.Count(data[:i], []byte("\n")) + 1
		}
		msg = fmt.Sprintf("line %d: %s", line, msg)
	}
	return FieldError{Msg: "invalid YAML: " + msg, Line: line}
}

// aliasBudget bounds the nodes aliases may expand to in a file of n bytes:
// without aliases a file has fewer nodes than bytes, and a file of
// aliases to aliases must not blow up (yaml.v3 refuses such files too).
func aliasBudget(n int) int { return 4*n + 10000 }

// pathSeg is one step of a key path: a key, or with key "" a list index.
type pathSeg struct {
	key string
	idx int
}

// converter turns nodes into values, keeping the key path vigil's decoder
// uses (lower-case keys, "[i]" for list elements: vrrp.instances[0].preempt)
// for the facts it records.
type converter struct {
	f        *docFacts
	reuseKey string
	segs     []pathSeg
	lists    int  // the sequences around the node being converted
	budget   int  // nodes still allowed (see aliasBudget)
	over     bool // the budget ran out (reported once)
	// open holds the anchored nodes being converted: an alias to one of
	// them would make a value contain itself.
	open map[*yaml.Node]bool
}

// contains reports, as yaml.v3 does, an alias inside its anchor's value.
func (c *converter) contains(alias *yaml.Node) bool {
	if !c.open[alias.Alias] {
		return false
	}
	c.f.errs = append(c.f.errs, FieldError{Msg: fmt.Sprintf("invalid YAML: line %d: anchor '%s' value contains itself", alias.Line, alias.Value),
		Line: alias.Line, Column: alias.Column})
	return true
}

// at is the path of key in the mapping being converted.
func (c *converter) at(key string) string {
	var b strings.Builder
	for _, s := range c.segs {
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

// value converts n. A document's values nest as deep as its text does;
// aliases are expanded within the budget.
func (c *converter) value(n *yaml.Node) any {
	if c.budget <= 0 {
		if !c.over {
			c.over = true
			c.f.errs = append(c.f.errs, FieldError{Msg: "invalid YAML: the document contains excessive aliasing", Line: n.Line, Column: n.Column})
		}
		return nil
	}
	c.budget--
	if n.Anchor != "" {
		if c.open == nil {
			c.open = map[*yaml.Node]bool{}
		}
		c.open[n] = true
		defer delete(c.open, n)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return c.value(n.Content[0])
	case yaml.ScalarNode:
		return scalar(n)
	case yaml.SequenceNode:
		c.lists++
		out := make([]any, len(n.Content))
		i := 0
		for j, e := range n.Content {
			if span := c.placeholder(e); span > 0 {
				out[j] = c.value(e)
				i += span // a Loader's placeholder stands for span items
				continue
			}
			c.segs = append(c.segs, pathSeg{idx: i})
			out[j] = c.value(e)
			c.segs = c.segs[:len(c.segs)-1]
			i++
		}
		c.lists--
		return out
	case yaml.MappingNode:
		return c.mapping(n)
	case yaml.AliasNode:
		c.f.special = true
		if n.Alias == nil || c.contains(n) {
			return nil
		}
		return c.value(n.Alias)
	}
	return nil
}

// itemValue converts an item of a list parsed apart from its file (see
// decodeItems); false when it has anything the whole read of the file
// would say more about (aliases, merges, keys with capitals, problems).
func itemValue(n *yaml.Node, size int) (any, bool) {
	var f docFacts
	c := converter{f: &f, lists: 1, budget: aliasBudget(size)}
	v := c.value(n)
	return v, len(f.errs) == 0 && !f.special
}

// scalar converts a scalar as yaml.v3 decodes it into an interface value,
// doing the commonest cases itself.
func scalar(n *yaml.Node) any {
	switch n.Tag {
	case "!!str":
		return n.Value
	case "!!int":
		if fastyaml.PlainDecimal(n.Value, false) {
			if v, err := strconv.Atoi(n.Value); err == nil {
				return v
			}
		}
	case "!!null":
		return nil
	case "!!bool":
		switch n.Value {
		case "true":
			return true
		case "false":
			return false
		}
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return n.Value // yaml.v3 refuses it as its tag: the text, for the decoder to judge
	}
	return v
}

func yamlMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Tag == "!!merge"
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' || c >= 0x80 {
			return true
		}
	}
	return false
}

// mapping converts a mapping: keys in lower case, merged keys (<<) after
// the mapping's own, earlier merges first; keys with a null value are left
// out outside lists and recorded.
func (c *converter) mapping(n *yaml.Node) map[string]any {
	pairs := n.Content
	out := make(map[string]any, len(pairs)/2)
	special := false
	for i := 0; i+1 < len(pairs); i += 2 {
		if k := pairs[i]; isMerge(k) || k.Kind == yaml.ScalarNode && hasUpper(k.Value) {
			special = true
			break
		}
	}
	if special {
		c.f.special = true
		c.fold(n)
	}
	var merges []*yaml.Node
	for i := 0; i+1 < len(pairs); i += 2 {
		k, v := pairs[i], pairs[i+1]
		if isMerge(k) {
			merges = append(merges, v)
			continue
		}
		c.pair(out, n, i, k, v, false)
	}
	seen := map[*yaml.Node]bool{}
	for _, m := range merges {
		c.merge(out, m, seen)
	}
	if c.lists == 0 && c.f.nulls != nil {
		for k, v := range out {
			if v == nil {
				delete(out, k)
			}
		}
	}
	return out
}

// pair converts one key and value of mapping n (at index i of its
// content) into out; merged pairs only fill keys out has not.
func (c *converter) pair(out map[string]any, n *yaml.Node, i int, k, v *yaml.Node, merged bool) {
	if k.Kind != yaml.ScalarNode {
		c.f.errs = append(c.f.errs, FieldError{Path: c.at("?"), Msg: "a key must be a plain name, not a list or a mapping", Line: k.Line, Column: k.Column})
		return
	}
	key := k.Value
	if k.Tag != "!!str" {
		// A key of another type (0x1f, true, ~) by its value, as vigil
		// always read it; vigil's keys are all strings.
		key = ""
		if v := scalar(k); v != nil {
			key = fmt.Sprint(v)
		}
	}
	if special := hasUpper(key); special {
		key = strings.ToLower(key)
	}
	if _, dup := out[key]; dup {
		if !merged {
			c.duplicate(n, i, k)
		}
		return
	}
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" || v.Kind == yaml.AliasNode && v.Alias != nil && v.Alias.Tag == "!!null" {
		if c.f.nulls == nil {
			c.f.nulls = map[string]int{}
		}
		p := c.at(key)
		if _, ok := c.f.nulls[p]; !ok {
			c.f.nulls[p] = k.Line
		}
		out[key] = nil // until the mapping is done: a second such key is a duplicate
		return
	}
	c.segs = append(c.segs, pathSeg{key: key})
	out[key] = c.value(v)
	c.segs = c.segs[:len(c.segs)-1]
}

// duplicate reports key k (at index i of mapping n) given twice, as
// yaml.v3 words it; keys that differ in case only are fold's.
func (c *converter) duplicate(n *yaml.Node, i int, k *yaml.Node) {
	for j := 0; j < i; j += 2 {
		if prev := n.Content[j]; prev.Kind == yaml.ScalarNode && prev.Value == k.Value {
			c.f.errs = append(c.f.errs, FieldError{Msg: fmt.Sprintf("invalid YAML: line %d: mapping key %q already defined at line %d", k.Line, k.Value, prev.Line),
				Line: k.Line, Column: k.Column})
			return
		}
	}
}

// merge fills out with the keys of a merge value (<<: *a, <<: [*a, *b],
// or a mapping) that it has not, nested merges included.
func (c *converter) merge(out map[string]any, v *yaml.Node, seen map[*yaml.Node]bool) {
	for v.Kind == yaml.AliasNode && v.Alias != nil {
		if c.contains(v) {
			return
		}
		v = v.Alias
	}
	if seen[v] {
		return
	}
	seen[v] = true
	switch v.Kind {
	case yaml.MappingNode:
		var nested []*yaml.Node
		for i := 0; i+1 < len(v.Content); i += 2 {
			if k := v.Content[i]; isMerge(k) {
				nested = append(nested, v.Content[i+1])
			} else {
				c.pair(out, v, i, k, v.Content[i+1], true)
			}
		}
		for _, m := range nested {
			c.merge(out, m, seen)
		}
	case yaml.SequenceNode:
		for _, e := range v.Content {
			c.merge(out, e, seen)
		}
	default:
		c.f.errs = append(c.f.errs, FieldError{Path: c.at("<<"), Msg: "invalid YAML: map merge requires a mapping or a list of mappings", Line: v.Line, Column: v.Column})
	}
}

// placeholder returns how many items a Loader placeholder {key: [first,
// count]} stands for; 0 when n is none. A malformed one counts as one: the
// decoder then refuses it and the file is parsed whole.
func (c *converter) placeholder(n *yaml.Node) int {
	if c.reuseKey == "" || n.Kind != yaml.MappingNode || len(n.Content) != 2 || n.Content[0].Value != c.reuseKey {
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
// once lower-cased (as vigil reads them) but spelled differently: an
// error, since one would silently replace the other. A key spelled with
// capitals and no other way is noted in spelled.
func (c *converter) fold(n *yaml.Node) {
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
		c.mergedKeys(m, seen, add)
	}
	for _, lower := range order {
		g := groups[lower]
		if len(g) == 1 {
			if g[0].text != lower {
				if c.f.spelled == nil {
					c.f.spelled = map[string]*spelledKey{}
				}
				c.f.spelled[c.at(lower)] = &spelledKey{as: g[0].text, line: g[0].line}
			}
			continue
		}
		slices.SortStableFunc(g, func(a, b keyAt) int { return a.line - b.line })
		list := make([]string, len(g))
		for i, s := range g {
			list[i] = fmt.Sprintf("%q (line %d)", s.text, s.line)
		}
		c.f.errs = append(c.f.errs, FieldError{Path: c.at(lower), Msg: fmt.Sprintf(
			"keys %s and %s differ only in case; vigil reads keys in lower case, so one would silently replace the other: keep one, spelled %q",
			strings.Join(list[:len(list)-1], ", "), list[len(list)-1], lower)})
	}
}

// mergedKeys passes add the keys a merge value (<<: *a, <<: [*a, *b], or
// a mapping) brings into its mapping, those of nested merges included.
func (c *converter) mergedKeys(v *yaml.Node, seen map[*yaml.Node]bool, add func(*yaml.Node)) {
	for v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	if seen[v] || c.budget <= 0 {
		return
	}
	seen[v] = true
	switch v.Kind {
	case yaml.MappingNode:
		c.budget -= len(v.Content) / 2
		for i := 0; i+1 < len(v.Content); i += 2 {
			if k := v.Content[i]; isMerge(k) {
				c.mergedKeys(v.Content[i+1], seen, add)
			} else {
				add(k)
			}
		}
	case yaml.SequenceNode:
		for _, e := range v.Content {
			c.mergedKeys(e, seen, add)
		}
	}
}

// afterFirst reports what follows the first document, which decoding one
// document ignores: a second document with content ("---" then more), or
// text that is no document at all. An empty document (a "---"
// at the end) is nothing to lose.
func afterFirst(dec *yaml.Decoder, b []byte) (FieldError, bool) {
	const msg = "line %d: a second YAML document starts here; vigil reads one document per file and would ignore the rest: merge it into the first, or remove it"
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		switch {
		case errors.Is(err, io.EOF):
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

// locate returns the line and column of the node at a decoder path
// (vrrp.instances[0].vips[1]) in tree: the value's place with value, else
// the key's. Where the path leaves the file (a key that is not there) it
// returns the place of the deepest node on the path that is, and 0, 0 when
// not even the first step is. A path that names a template for a real
// server ("lb.virtual_servers[0].check (for ...).port") is placed in the
// template.
func locate(tree *yaml.Node, path string, value bool) (line, col int) {
	if i := strings.Index(path, " ("); i >= 0 {
		if j := strings.Index(path[i:], ")"); j >= 0 {
			path = path[:i] + path[i+j+1:]
		}
	}
	n := tree
	for path != "" {
		var key string
		idx := -1
		if path[0] == '[' {
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return line, col
			}
			idx, _ = strconv.Atoi(path[1:end])
			path = path[end+1:]
		} else {
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			key, path = path[:end], path[end:]
		}
		path = strings.TrimPrefix(path, ".")
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line, col
			}
			n = n.Content[idx]
			line, col = n.Line, n.Column
			continue
		}
		k, v := findKey(n, key, map[*yaml.Node]bool{})
		if k == nil {
			return line, col
		}
		n = v
		line, col = k.Line, k.Column
		if value && path == "" {
			line, col = v.Line, v.Column
		}
	}
	return line, col
}

// findKey finds key, in lower case, in mapping n or what it merges.
func findKey(n *yaml.Node, key string, seen map[*yaml.Node]bool) (k, v *yaml.Node) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if seen[n] {
		return nil, nil
	}
	seen[n] = true
	switch n.Kind {
	case yaml.SequenceNode: // a merge's list
		for _, e := range n.Content {
			if k, v := findKey(e, key, seen); k != nil {
				return k, v
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if c := n.Content[i]; !isMerge(c) && c.Kind == yaml.ScalarNode && strings.EqualFold(c.Value, key) {
				return c, n.Content[i+1]
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if isMerge(n.Content[i]) {
				if k, v := findKey(n.Content[i+1], key, seen); k != nil {
					return k, v
				}
			}
		}
	}
	return nil, nil
}
