package kaimport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"vigil/config"
	"vigil/internal/kaconf"
)

// Options are the translator's inputs beyond the parsed file.
type Options struct {
	// NodeName is node.name when given (the command's --node-name); else
	// global_defs router_id when it is a valid node name; else none, and
	// vigil uses the host name, as keepalived's router_id does.
	NodeName string
}

// Dropped is a keepalived keyword the vigil document does not carry.
type Dropped struct {
	Pos     kaconf.Pos
	Keyword string
	Reason  string
}

func (d Dropped) String() string { return d.Pos.String() + ": " + d.Keyword + ": " + d.Reason }

// Note is a keepalived setting whose meaning differs in vigil and was
// translated rather than copied.
type Note struct {
	Pos  kaconf.Pos
	What string
}

func (n Note) String() string { return n.Pos.String() + ": " + n.What }

// Result is a translation: the vigil YAML document and the report.
type Result struct {
	YAML []byte
	// Warnings are the parser's (an include that matched nothing, an
	// unknown parameter, ...), as FILE:LINE: message.
	Warnings   []string
	Dropped    []Dropped // in file order
	Translated []Note    // in file order
}

// Report writes the report as the command prints it on stderr: the
// parser's warnings, every dropped keyword (FILE:LINE: keyword: reason),
// then the translations as notes.
func (r *Result) Report(w io.Writer) error {
	var b strings.Builder
	for _, s := range r.Warnings {
		b.WriteString(s + "\n")
	}
	for _, d := range r.Dropped {
		b.WriteString(d.String() + "\n")
	}
	for _, n := range r.Translated {
		if n.Pos.File == "" {
			b.WriteString("note: " + n.What + "\n")
		} else {
			b.WriteString(n.Pos.String() + ": note: " + n.What + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Complete reports whether everything was carried over (nothing dropped).
func (r *Result) Complete() bool { return len(r.Dropped) == 0 }

// Translate turns a parsed keepalived configuration into a vigil YAML
// document. It is pure: no file, host or clock is consulted.
func Translate(f *kaconf.File, opts Options) (*Result, error) {
	if f == nil {
		return nil, errors.New("kaimport: no parsed file")
	}
	t := newTranslator(opts)
	for _, d := range f.Diags {
		t.res.Warnings = append(t.res.Warnings, d.Pos.String()+": warning: "+d.Msg)
	}
	t.index(f.Nodes)
	doc := t.document()
	flowComments(doc)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("kaimport: encode the document: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("kaimport: encode the document: %w", err)
	}
	// The report in file order: files in the order they were read.
	order := map[string]int{}
	for i, name := range f.Files {
		if _, seen := order[name]; !seen {
			order[name] = i
		}
	}
	less := func(a, b kaconf.Pos) bool {
		if a.File != b.File {
			return order[a.File] < order[b.File]
		}
		return a.Line < b.Line
	}
	sort.SliceStable(t.res.Dropped, func(i, j int) bool { return less(t.res.Dropped[i].Pos, t.res.Dropped[j].Pos) })
	sort.SliceStable(t.res.Translated, func(i, j int) bool { return less(t.res.Translated[i].Pos, t.res.Translated[j].Pos) })
	t.res.YAML = buf.Bytes()
	return t.res, nil
}

// translator holds what the passes share.
type translator struct {
	opts Options
	res  *Result

	globals   []*kaconf.Node
	scripts   map[string]*kaconf.Node
	files     map[string]*kaconf.Node
	procs     map[string]*kaconf.Node
	vsGroups  map[string]*kaconf.Node
	instances []*kaconf.Node
	groups    []*kaconf.Node
	servers   []*kaconf.Node
	defOrder  []*kaconf.Node // scripts, files, processes in file order

	g globalDefs

	inst    []*instance
	byName  map[string]*instance
	tracked map[string]map[string]bool // kind -> name -> referenced by an instance
	// fileChecked: track_file names a FILE_CHECK reads.
	fileChecked map[string]bool
}

func newTranslator(opts Options) *translator {
	return &translator{
		opts: opts, res: &Result{},
		scripts: map[string]*kaconf.Node{}, files: map[string]*kaconf.Node{},
		procs: map[string]*kaconf.Node{}, vsGroups: map[string]*kaconf.Node{},
		byName:  map[string]*instance{},
		tracked: map[string]map[string]bool{},
	}
}

func (t *translator) drop(n *kaconf.Node, keyword, reason string, args ...any) {
	if keyword == "" {
		keyword = n.Keyword
	}
	t.res.Dropped = append(t.res.Dropped, Dropped{Pos: n.Pos, Keyword: keyword, Reason: fmt.Sprintf(reason, args...)})
}

func (t *translator) note(n *kaconf.Node, what string, args ...any) {
	t.res.Translated = append(t.res.Translated, Note{Pos: n.Pos, What: fmt.Sprintf(what, args...)})
}

// topLevel are the top-level blocks vigil has no equivalent for, and why.
var topLevel = map[string]string{
	"static_ipaddress":         "vigil manages no static addresses: configure them with the system's network configuration",
	"static_routes":            "vigil manages no static routes: configure them with the system's network configuration",
	"static_rules":             "vigil manages no static rules: configure them with the system's network configuration",
	"bfd_instance":             "vigil has no BFD",
	"garp_group":               "vigil paces GARP/NA per instance (vrrp.garp.interval), not per interface group",
	"linkbeat_interfaces":      "vigil follows link state over netlink only",
	"interface_up_down_delays": "vigil has no link-state debounce",
	"SSL":                      "vigil's https checks use no client certificate; set check: {ca: FILE, tls_verify: true} to verify servers",
	"net_namespace":            "run vigil itself in the namespace (ip netns exec, or the unit's NetworkNamespacePath=)",
	"net_namespace_ipvs":       "vigil programs IPVS in its own network namespace",
	"namespace_with_ipsets":    "vigil uses no ipsets",
	"instance":                 "vigil has no keepalived instance names (one daemon per namespace)",
	"child_wait_time":          "vigil is one process",
	"track_group":              "vigil manages no static addresses",
	"vrrp_track_bfd":           "vigil has no BFD",
}

// index sorts the top-level blocks by kind.
func (t *translator) index(nodes []*kaconf.Node) {
	for _, n := range nodes {
		switch n.Keyword {
		case "global_defs":
			t.globals = append(t.globals, n)
		case "vrrp_script":
			t.define(t.scripts, n, "vrrp_script")
		case "track_file", "vrrp_track_file":
			if n.Keyword == "vrrp_track_file" {
				t.note(n, "vrrp_track_file is keepalived's deprecated name of track_file")
			}
			t.define(t.files, n, "track_file")
		case "vrrp_track_process":
			t.define(t.procs, n, "vrrp_track_process")
		case "vrrp_instance":
			t.instances = append(t.instances, n)
		case "vrrp_sync_group":
			t.groups = append(t.groups, n)
		case "virtual_server_group":
			if len(n.Args) != 1 {
				t.drop(n, "", "needs one name")
				continue
			}
			t.vsGroups[n.Args[0]] = n
		case "virtual_server":
			t.servers = append(t.servers, n)
		default:
			if t.keptBuiltIn(n) {
				break
			}
			if reason, ok := topLevel[n.Keyword]; ok && reason != "" {
				t.drop(n, "", "%s", reason)
			} else {
				t.drop(n, "", "is not a keepalived top-level keyword vigil knows")
			}
		}
	}
}

func (t *translator) define(m map[string]*kaconf.Node, n *kaconf.Node, kind string) {
	if len(n.Args) != 1 || !n.Block {
		t.drop(n, "", "needs one name and a { } block")
		return
	}
	if _, dup := m[n.Args[0]]; dup {
		t.drop(n, "", "%s %q is defined twice: the first definition is kept", kind, n.Args[0])
		return
	}
	m[n.Args[0]] = n
	t.defOrder = append(t.defOrder, n)
}

// document assembles the vigil document from the passes.
func (t *translator) document() *yaml.Node {
	t.globalDefs()
	root := mapping()
	if name, pos := t.nodeName(); name != "" {
		node := mapping()
		add(node, "name", str(name), pos)
		addMap(root, "node", node, nil)
	}
	lb := t.lb() // first: FILE_CHECKs use track_file blocks
	vr := t.vrrp()
	t.lbGlobals(lb)
	if len(vr.Content) > 0 {
		addMap(root, "vrrp", vr, nil)
	}
	if len(lb.Content) > 0 {
		addMap(root, "lb", lb, nil)
	}
	if len(root.Content) == 0 {
		// Nothing to run: say so, so that the document is not taken for a
		// truncated file (vigil refuses a reload to an empty one).
		node := mapping()
		add(node, "allow_empty", boolean(true), nil)
		addMap(root, "node", node, nil)
	}
	return &yaml.Node{Kind: yaml.DocumentNode, HeadComment: "Translated from keepalived.conf by vigil config import-keepalived.\n" +
		"Each value's comment names the keepalived line it came from.", Content: []*yaml.Node{root}}
}

func (t *translator) nodeName() (string, *kaconf.Node) {
	if t.opts.NodeName != "" {
		return t.opts.NodeName, nil
	}
	n := t.g.routerID
	if n == nil || len(n.Args) != 1 {
		return "", nil
	}
	if !config.IsNodeName(n.Args[0]) {
		t.drop(n, "", "%q is not a valid vigil node name (1..253 of A-Z a-z 0-9 _ . -): give one with --node-name, or vigil uses the host name", n.Args[0])
		return "", nil
	}
	t.note(n, "router_id %q is node.name: vigil's name of this node in logs, status and the fleet (keepalived used it in emails and SNMP)", n.Args[0])
	return n.Args[0], n
}

// YAML building: values carry a line comment naming the keepalived line
// they came from.

func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode} }

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func integer(n int64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(n, 10)}
}

func boolean(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

// flow is a one-line list of strings.
func flow(items []string) *yaml.Node {
	s := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, it := range items {
		s.Content = append(s.Content, str(it))
	}
	return s
}

func sequence() *yaml.Node { return &yaml.Node{Kind: yaml.SequenceNode} }

// at is the comment naming where n is.
func at(n *kaconf.Node) string {
	if n == nil {
		return ""
	}
	return n.Pos.String()
}

// add sets key to a scalar or flow value, commented with where it came
// from (n may be nil for a value that came from no line).
func add(m *yaml.Node, key string, v *yaml.Node, n *kaconf.Node) {
	if n != nil && v.LineComment == "" {
		v.LineComment = at(n)
	}
	set(m, key, v)
}

// addMap sets key to a block value, the comment above the key.
func addMap(m *yaml.Node, key string, v *yaml.Node, n *kaconf.Node) {
	k := str(key)
	if n != nil {
		k.HeadComment = at(n) + " " + describe(n)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, k, v)
}

// set replaces key's value, or appends the pair.
func set(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, str(key), v)
}

// get returns key's value in m, nil if absent.
func get(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// item appends a block element to a list, headed by where it came from.
func item(list, v *yaml.Node, n *kaconf.Node) {
	if n != nil {
		v.HeadComment = at(n) + " " + describe(n)
	}
	list.Content = append(list.Content, v)
}

// describe is a keepalived line in short: the keyword and its arguments.
func describe(n *kaconf.Node) string {
	s := n.Keyword
	if len(n.Args) > 0 {
		s += " " + strings.Join(n.Args, " ")
	}
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// flowComments moves the comments inside one-line (flow) collections to
// the collection's own line comment: a flow collection cannot hold them.
func flowComments(n *yaml.Node) {
	if n.Style&yaml.FlowStyle != 0 && len(n.Content) > 0 {
		var cs []string
		var collect func(*yaml.Node)
		collect = func(k *yaml.Node) {
			for _, c := range []string{k.HeadComment, k.LineComment, k.FootComment} {
				if c != "" && !slices.Contains(cs, c) {
					cs = append(cs, c)
				}
			}
			k.HeadComment, k.LineComment, k.FootComment = "", "", ""
			for _, x := range k.Content {
				collect(x)
			}
		}
		for _, k := range n.Content {
			collect(k)
		}
		if n.LineComment == "" && len(cs) > 0 {
			n.LineComment = joinPlaces(cs)
		}
		return
	}
	for _, k := range n.Content {
		flowComments(k)
	}
}

// joinPlaces joins FILE:LINE comments, naming a file once for the lines
// that follow in it ("a.conf:20, 21, 22").
func joinPlaces(cs []string) string {
	var b strings.Builder
	last := ""
	for i, c := range cs {
		if i > 0 {
			b.WriteString(", ")
		}
		file, line, ok := strings.Cut(c, ":")
		if ok && file == last {
			b.WriteString(line)
			continue
		}
		last = file
		b.WriteString(c)
	}
	return b.String()
}
