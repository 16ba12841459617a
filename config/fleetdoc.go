package config

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"

	"go.yaml.in/yaml/v3"
)

// A fleet document (issue 14) is one YAML document for every director: the
// shared part (vrrp:, lb:) and, under nodes:, each node's own values,
// merged over the shared part by these rules:
//
//   - mappings merge key by key, recursively;
//   - a list of named items (every item a mapping with a name: key, as
//     vrrp.instances, vrrp.scripts, vrrp.sync_groups, lb.virtual_servers)
//     merges item by item: a node's item with the name of a shared one
//     merges into it, one with a new name is added after the shared ones;
//   - anything else (a scalar, another list) in the node's part replaces
//     the shared value.
//
// A node's local settings never come from a fleet document: node:,
// gossip:, telemetry: and fleet: are refused in it, shared or per node.
//
//	vrrp:
//	  instances:
//	    - { name: web, interface: eth0, vrid: 51, priority: 100, vips: [192.0.2.100/24] }
//	nodes:
//	  lb1: { vrrp: { instances: [ { name: web, priority: 150 } ] } }
//	  lb2: { vrrp: { instances: [ { name: web, interface: ens3 } ] } }

// fleetLocalKeys are the top-level keys a fleet document may not set: they
// stay in each node's local file.
var fleetLocalKeys = []string{"node", "gossip", "telemetry", "fleet"}

// fleetSharedKeys are the top-level keys a fleet document may set, for
// every node or under nodes.NAME.
var fleetSharedKeys = []string{"vrrp", "lb"}

// FleetDocument is a parsed fleet document.
type FleetDocument struct {
	file   string
	shared *yaml.Node // the top-level mapping without nodes:
	nodes  map[string]*yaml.Node
	order  []string // node names in document order
	// loader loads the nodes' renderings: they share their virtual
	// servers' text, so after the first node each costs only what differs
	// (see Config).
	loader Loader
	// encoded holds the top-level entries of the shared part, encoded
	// (see sections).
	mu      sync.Mutex
	encoded map[[2]*yaml.Node][]byte
	// verbatim holds the document's own text of each top-level entry
	// (from its key's line to the next key's), when the document allows
	// cutting it so (verbatimEntries): a composition uses it for the
	// entries no node changes instead of encoding them again, which was
	// most of a member's work on a 1,000-virtual-server document (about
	// 0.3 s of CPU each, every member at once).
	verbatim map[*yaml.Node][]byte
}

// ParseFleet parses a fleet document; file names it in errors.
func ParseFleet(data []byte, file string) (*FleetDocument, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: a fleet document is a mapping (vrrp:, lb:, nodes:)", file)
	}
	top := root.Content[0]
	fd := &FleetDocument{file: file, shared: &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}, nodes: map[string]*yaml.Node{}}
	var errs []error
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch {
		case k.Value == "nodes":
			if v.Kind != yaml.MappingNode {
				errs = append(errs, fmt.Errorf("%s:%d:%d: nodes: a mapping of node name to its values", file, v.Line, v.Column))
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				nk, nv := v.Content[j], v.Content[j+1]
				if _, dup := fd.nodes[nk.Value]; dup {
					errs = append(errs, fmt.Errorf("%s:%d:%d: nodes.%s: named twice", file, nk.Line, nk.Column, nk.Value))
					continue
				}
				if nv.Kind != yaml.MappingNode {
					errs = append(errs, fmt.Errorf("%s:%d:%d: nodes.%s: a mapping (vrrp:, lb:)", file, nv.Line, nv.Column, nk.Value))
					continue
				}
				errs = append(errs, checkFleetKeys(file, "nodes."+nk.Value+".", nv)...)
				fd.nodes[nk.Value] = nv
				fd.order = append(fd.order, nk.Value)
			}
		default:
			errs = append(errs, checkFleetKeys(file, "", &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{k, v}})...)
			fd.shared.Content = append(fd.shared.Content, k, v)
		}
	}
	if len(fd.order) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s: nodes: names no node: a fleet document says which nodes it is for", file))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	fd.verbatim = verbatimEntries(data, top)
	return fd, nil
}

// verbatimEntries cuts data, whose top-level mapping is top, into its
// entries' own text, keyed by their key nodes, or returns nil when that
// would not give independent documents: a flow-style top level, a key not
// at the line's start, anchors or aliases (an alias may point into another
// entry), document markers, or keys out of line order.
func verbatimEntries(data []byte, top *yaml.Node) map[*yaml.Node][]byte {
	if top.Style&yaml.FlowStyle != 0 || hasAnchors(top) {
		return nil
	}
	// starts[i] is the offset of line i+1.
	starts := []int{0}
	for i, c := range data {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	for _, st := range starts {
		if rest := data[st:]; bytes.HasPrefix(rest, []byte("---")) || bytes.HasPrefix(rest, []byte("...")) {
			return nil
		}
	}
	out := map[*yaml.Node][]byte{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k := top.Content[i]
		if k.Column != 1 || k.Line < 1 || k.Line > len(starts) {
			return nil
		}
		from, to := starts[k.Line-1], len(data)
		if i+2 < len(top.Content) {
			next := top.Content[i+2]
			if next.Line <= k.Line || next.Line > len(starts) {
				return nil
			}
			to = starts[next.Line-1]
		}
		text := data[from:to]
		if len(text) > 0 && text[len(text)-1] != '\n' {
			text = append(slices.Clip(text), '\n')
		}
		out[k] = text
	}
	return out
}

// hasAnchors reports whether n or a node under it has an anchor or is an
// alias.
func hasAnchors(n *yaml.Node) bool {
	if n.Anchor != "" || n.Kind == yaml.AliasNode {
		return true
	}
	return slices.ContainsFunc(n.Content, hasAnchors)
}

// checkFleetKeys refuses a node-local or unknown top-level key.
func checkFleetKeys(file, prefix string, m *yaml.Node) []error {
	var errs []error
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		switch {
		case slices.Contains(fleetLocalKeys, k.Value):
			errs = append(errs, fmt.Errorf("%s:%d:%d: %s%s: a node's local setting, never taken from a fleet document: keep it in the node's own file",
				file, k.Line, k.Column, prefix, k.Value))
		case !slices.Contains(fleetSharedKeys, k.Value):
			errs = append(errs, fmt.Errorf("%s:%d:%d: %s%s: unknown key in a fleet document (want vrrp, lb or nodes)", file, k.Line, k.Column, prefix, k.Value))
		}
	}
	return errs
}

// Nodes returns the node names the document is for, in document order.
func (fd *FleetDocument) Nodes() []string { return slices.Clone(fd.order) }

// Render returns the configuration node name runs from the document: the
// shared part with its own values merged in, under node: {name: NAME}, as
// YAML. It is what `vigil config render --node` prints, and what problems
// found by Parse are placed in.
func (fd *FleetDocument) Render(name string) ([]byte, error) {
	secs, err := fd.sections(name)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, sec := range secs {
		out = append(out, sec.text...)
	}
	return out, nil
}

// section is one top-level entry of a rendering, encoded.
type section struct {
	key  string
	text []byte
}

// sections is Render's document as its top-level entries, each encoded on
// its own: block-style top-level entries are independent, so the document
// is their concatenation. An entry no node changes (its value is the shared
// part's own node) is encoded once per document: with a large lb: shared by
// every node, encoding was most of validating a push for 50 nodes.
func (fd *FleetDocument) sections(name string) ([]section, error) {
	return fd.sectionsOf(name, false)
}

// sectionsOf is sections; with verbatim, an entry no node changes is the
// document's own text when it has it (a composition: what a node runs,
// not what render prints).
func (fd *FleetDocument) sectionsOf(name string, verbatim bool) ([]section, error) {
	own, ok := fd.nodes[name]
	if !ok {
		return nil, fmt.Errorf("%s: no node %q under nodes: (it names %v)", fd.file, name, fd.order)
	}
	merged := mergeYAML(fd.shared, own)
	nk := scalarNode("node")
	nk.HeadComment = fmt.Sprintf("The configuration of %s from the fleet document %s (vigil config render).", name, fd.file)
	head, err := encodeEntry(nk, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map",
		Content: []*yaml.Node{scalarNode("name"), scalarNode(name)}})
	if err != nil {
		return nil, fmt.Errorf("rendering %s for %s: %w", fd.file, name, err)
	}
	out := []section{{"node", head}}
	for i := 0; i+1 < len(merged.Content); i += 2 {
		k, v := merged.Content[i], merged.Content[i+1]
		if i == 0 && k.HeadComment != "" {
			// The document's own head comment describes the fleet
			// document, not this rendering.
			c := *k
			c.HeadComment = ""
			k = &c
		}
		if text, ok := fd.verbatim[merged.Content[i]]; ok && verbatim && fd.isShared(merged.Content[i], v) {
			out = append(out, section{k.Value, text})
			continue
		}
		text, err := fd.encodeShared(k, v)
		if err != nil {
			return nil, fmt.Errorf("rendering %s for %s: %w", fd.file, name, err)
		}
		out = append(out, section{k.Value, text})
	}
	return out, nil
}

// encodeShared is encodeEntry, remembered for the shared part's own nodes
// (merges make new nodes, so a remembered pair is one no node changed).
func (fd *FleetDocument) encodeShared(k, v *yaml.Node) ([]byte, error) {
	key := [2]*yaml.Node{k, v}
	fd.mu.Lock()
	text, ok := fd.encoded[key]
	fd.mu.Unlock()
	if ok {
		return text, nil
	}
	text, err := encodeEntry(k, v)
	if err != nil {
		return nil, err
	}
	if fd.isShared(k, v) {
		fd.mu.Lock()
		if fd.encoded == nil {
			fd.encoded = map[[2]*yaml.Node][]byte{}
		}
		fd.encoded[key] = text
		fd.mu.Unlock()
	}
	return text, nil
}

func (fd *FleetDocument) isShared(k, v *yaml.Node) bool {
	for i := 0; i+1 < len(fd.shared.Content); i += 2 {
		if fd.shared.Content[i] == k && fd.shared.Content[i+1] == v {
			return true
		}
	}
	return false
}

// encodeEntry encodes the one-entry mapping {k: v} as a block-style
// document with two-space indentation.
func encodeEntry(k, v *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{k, v}}); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func scalarNode(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
}

// mergeYAML returns over merged onto base by the fleet document's rules;
// neither is changed.
func mergeYAML(base, over *yaml.Node) *yaml.Node {
	base, over = resolveAlias(base), resolveAlias(over)
	switch {
	case base == nil:
		return over
	case over == nil:
		return base
	case base.Kind == yaml.MappingNode && over.Kind == yaml.MappingNode:
		out := &yaml.Node{Kind: yaml.MappingNode, Tag: base.Tag, Style: base.Style, Line: base.Line, Column: base.Column}
		done := map[string]bool{}
		for i := 0; i+1 < len(base.Content); i += 2 {
			k := base.Content[i]
			v := base.Content[i+1]
			if ov := mappingValue(over, k.Value); ov != nil {
				v = mergeYAML(v, ov)
				done[k.Value] = true
			}
			out.Content = append(out.Content, k, v)
		}
		for i := 0; i+1 < len(over.Content); i += 2 {
			if k := over.Content[i]; !done[k.Value] {
				out.Content = append(out.Content, k, over.Content[i+1])
			}
		}
		return out
	case base.Kind == yaml.SequenceNode && over.Kind == yaml.SequenceNode && namedItems(base) && namedItems(over):
		out := &yaml.Node{Kind: yaml.SequenceNode, Tag: base.Tag, Style: base.Style, Line: base.Line, Column: base.Column}
		done := map[string]bool{}
		for _, item := range base.Content {
			item = resolveAlias(item)
			name := mappingValue(item, "name").Value
			for _, o := range over.Content {
				if o = resolveAlias(o); mappingValue(o, "name").Value == name {
					item = mergeYAML(item, o)
					done[name] = true
				}
			}
			out.Content = append(out.Content, item)
		}
		for _, o := range over.Content {
			if o = resolveAlias(o); !done[mappingValue(o, "name").Value] {
				out.Content = append(out.Content, o)
			}
		}
		return out
	}
	return over
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// namedItems reports whether every item of a list is a mapping with a
// scalar name: key.
func namedItems(seq *yaml.Node) bool {
	for _, item := range seq.Content {
		n := mappingValue(resolveAlias(item), "name")
		if n == nil || n.Kind != yaml.ScalarNode {
			return false
		}
	}
	return true
}

// mappingValue returns the value of key in mapping m, or nil.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return resolveAlias(m.Content[i+1])
		}
	}
	return nil
}

// Config renders the document for node name and loads the result as a
// node's file would be loaded (environment overrides included), with a
// gossip section as every fleet member has. Problems
// are placed in the rendered document, named "FILE[NAME]": the lines of
// `vigil config render --node NAME FILE`.
func (fd *FleetDocument) Config(name string) (*Config, error) {
	out, err := fd.Render(name)
	if err != nil {
		return nil, err
	}
	// Every node a document goes to has a gossip section (pushes travel
	// by gossip) in its own file: check with one, so that rules that
	// depend on it (health_policy) apply as on the node. Appended, it
	// moves no line of the rendering.
	out = append(out, "gossip: { insecure: true }\n"...)
	return fd.loader.ParseFile(out, fmt.Sprintf("%s[%s]", fd.file, name))
}

// Compose is the configuration a node following the fleet runs: the
// document rendered for name, with the node's local settings (node:,
// gossip:, telemetry:, fleet:) taken from its own file's bytes local,
// never from the document. label names the result in problems and in
// Config.Path (for example "fleet v12").
func (fd *FleetDocument) Compose(name string, local []byte, label string) (*Config, error) {
	return fd.ComposeWith(&fd.loader, name, local, label)
}

// ComposeWith is Compose loading the result with l: a node that keeps one
// Loader across fleet versions parses only the virtual servers a version
// changed.
func (fd *FleetDocument) ComposeWith(l *Loader, name string, local []byte, label string) (*Config, error) {
	out, err := fd.composeYAML(name, local)
	if err != nil {
		return nil, err
	}
	return l.ParseFile(out, label)
}

// composeYAML is Compose's document, before it is loaded: the local file's
// local entries, then the rendering's others (as in sections, entries are
// independent).
func (fd *FleetDocument) composeYAML(name string, local []byte) ([]byte, error) {
	secs, err := fd.sectionsOf(name, true)
	if err != nil {
		return nil, err
	}
	var ldoc yaml.Node
	if err := yaml.Unmarshal(local, &ldoc); err != nil {
		return nil, fmt.Errorf("composing %s for %s: the local file: %w", fd.file, name, err)
	}
	if len(ldoc.Content) != 1 || ldoc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("composing %s for %s: the local file is not a mapping", fd.file, name)
	}
	lm := ldoc.Content[0]
	var out []byte
	if mappingValue(lm, "node") == nil {
		// The local file names the node by the hostname default; the
		// document was rendered for name: keep that.
		out = append(out, secs[0].text...)
	}
	for _, key := range fleetLocalKeys {
		if v := mappingValue(lm, key); v != nil {
			text, err := encodeEntry(scalarNode(key), v)
			if err != nil {
				return nil, fmt.Errorf("composing %s for %s: %w", fd.file, name, err)
			}
			out = append(out, text...)
		}
	}
	for _, sec := range secs {
		if !slices.Contains(fleetLocalKeys, sec.key) {
			out = append(out, sec.text...)
		}
	}
	return out, nil
}
