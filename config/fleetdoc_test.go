package config

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The example fleet document (deploy/examples/fleet-lvs-dr.yaml, issue 14's 3-director LVS-DR
// fleet) renders, for each node, a configuration that loads, with that node's own values merged
// over the shared part: priorities, an interface name, unicast source and peers.
func TestFleetExampleRenders(t *testing.T) {
	data, err := os.ReadFile("../deploy/examples/fleet-lvs-dr.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := ParseFleet(data, "fleet-lvs-dr.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(fd.Nodes(), ","); got != "lb1,lb2,lb3" {
		t.Fatalf("nodes %s", got)
	}
	want := map[string]struct {
		prio  uint8
		iface string
		src   string
	}{"lb1": {150, "eth0", "192.0.2.11"}, "lb2": {120, "ens3", "192.0.2.12"}, "lb3": {100, "eth0", "192.0.2.13"}}
	for _, name := range fd.Nodes() {
		out, err := fd.Render(name)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := Parse(out)
		if err != nil {
			t.Fatalf("%s's rendered config does not load: %v\n%s", name, err, out)
		}
		w := want[name]
		in := cfg.VRRP.Instances[0]
		if cfg.Node.Name != name || in.Priority != w.prio || in.Interface != w.iface || in.Unicast == nil ||
			in.Unicast.Source.String() != w.src || len(in.Unicast.Peers) != 2 {
			t.Errorf("%s: node %q, priority %d, interface %q, unicast %+v; want %+v", name, cfg.Node.Name, in.Priority, in.Interface, in.Unicast, w)
		}
		// Shared parts come through untouched: the tracked script and the virtual server.
		if len(in.Track.Scripts) != 1 || len(cfg.LB.VirtualServers) != 1 || len(cfg.LB.VirtualServers[0].Reals) != 2 {
			t.Errorf("%s: shared parts lost:\n%s", name, out)
		}
	}
}

// The merge rules, one case each.
func TestFleetMerge(t *testing.T) {
	const shared = `
vrrp:
  instances:
    - { name: a, interface: eth0, vrid: 1, priority: 100, vips: [192.0.2.100/24] }
    - { name: b, interface: eth0, vrid: 2, priority: 100, vips: [192.0.2.101/24] }
`
	cases := []struct {
		name, node string
		want       []string // substrings of the rendered document, in order
		absent     []string
	}{
		{"named item merged by name, key by key", `{ vrrp: { instances: [ { name: b, priority: 200 } ] } }`,
			[]string{"name: a", "priority: 100", "name: b", "vrid: 2", "priority: 200"}, []string{}},
		{"a new named item is added after the shared ones", `{ vrrp: { instances: [ { name: c, interface: eth1, vrid: 3, priority: 50, vips: [192.0.2.102/24] } ] } }`,
			[]string{"name: a", "name: b", "name: c", "vrid: 3"}, nil},
		{"a list of unnamed values replaces", `{ vrrp: { instances: [ { name: a, vips: [192.0.2.110/24] } ] } }`,
			[]string{"192.0.2.110/24", "192.0.2.101/24"}, []string{"192.0.2.100/24"}},
		{"a new top-level section is added", `{ lb: { virtual_servers: [] } }`, []string{"lb:"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fd, err := ParseFleet([]byte(shared+"nodes:\n  n1: "+c.node+"\n"), "f.yaml")
			if err != nil {
				t.Fatal(err)
			}
			out, err := fd.Render("n1")
			if err != nil {
				t.Fatal(err)
			}
			s := string(out)
			pos := 0
			for _, w := range c.want {
				i := strings.Index(s[pos:], w)
				if i < 0 {
					t.Fatalf("%q missing (in order) from:\n%s", w, s)
				}
				pos += i + len(w)
			}
			for _, a := range c.absent {
				if strings.Contains(s, a) {
					t.Fatalf("%q still in:\n%s", a, s)
				}
			}
			if _, err := Parse(out); err != nil {
				t.Fatalf("rendered config does not load: %v\n%s", err, s)
			}
		})
	}
}

// A node's local settings never come from a fleet document; unknown keys and a document naming
// no node are refused, each with its position.
func TestFleetRefusals(t *testing.T) {
	cases := []struct{ doc, want string }{
		{"gossip: { insecure: true }\nnodes: { n1: {} }\n", "f.yaml:1:1: gossip: a node's local setting"},
		{"vrrp: {}\nnodes:\n  n1: { telemetry: { listen: \"\" } }\n", "f.yaml:3:9: nodes.n1.telemetry: a node's local setting"},
		{"node: { name: x }\nnodes: { n1: {} }\n", "f.yaml:1:1: node: a node's local setting"},
		{"vrrrp: {}\nnodes: { n1: {} }\n", "f.yaml:1:1: vrrrp: unknown key in a fleet document"},
		{"vrrp: {}\n", "nodes: names no node"},
		{"nodes: [n1]\n", "f.yaml:1:8: nodes: a mapping"},
		{"nodes:\n  n1: {}\n  n1: {}\n", "nodes.n1: named twice"},
		{"- a\n", "a fleet document is a mapping"},
	}
	for _, c := range cases {
		_, err := ParseFleet([]byte(c.doc), "f.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.doc, err, c.want)
		}
	}
	fd, err := ParseFleet([]byte("nodes: { n1: {} }\n"), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fd.Render("n2"); err == nil || !strings.Contains(err.Error(), `no node "n2"`) {
		t.Errorf("render of an unnamed node: %v", err)
	}
}

// A problem in one node's result is placed in that node's rendered document, named FILE[NODE].
func TestFleetConfigPlacesProblems(t *testing.T) {
	doc := "vrrp:\n  instances:\n    - { name: a, interface: eth0, vrid: 1, priority: 100, vips: [192.0.2.100/24] }\n" +
		"nodes:\n  n1: {}\n  n2: { vrrp: { instances: [ { name: a, vrid: 300 } ] } }\n"
	fd, err := ParseFleet([]byte(doc), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fd.Config("n1"); err != nil {
		t.Fatalf("n1: %v", err)
	}
	_, err = fd.Config("n2")
	if err == nil || !strings.Contains(err.Error(), "f.yaml[n2]:") || !strings.Contains(err.Error(), "vrrp.instances[0].vrid") {
		t.Fatalf("n2: %v", err)
	}
}

// A node following the fleet runs the document rendered for it with its own local settings:
// node:, gossip:, telemetry: and fleet: come from its file, vrrp: and lb: from the document
// (the local file's own vrrp: is not used).
func TestFleetCompose(t *testing.T) {
	data, err := os.ReadFile("../deploy/examples/fleet-lvs-dr.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := ParseFleet(data, "fleet-lvs-dr.yaml")
	if err != nil {
		t.Fatal(err)
	}
	local := []byte(`node: { name: lb2 }
gossip: { insecure: true, bind: 192.0.2.12:7946 }
telemetry: { listen: "192.0.2.12:9730" }
fleet: { config: follow }
vrrp:
  instances:
    - { name: old, interface: eth9, vrid: 9, priority: 100, vips: [192.0.2.199/24] }
`)
	cfg, err := fd.Compose("lb2", local, "fleet v3")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node.Name != "lb2" || cfg.Gossip == nil || cfg.Gossip.Bind.String() != "192.0.2.12:7946" ||
		cfg.Telemetry.Listen != "192.0.2.12:9730" || !cfg.Fleet.Follows() {
		t.Errorf("local settings: node %+v gossip %+v telemetry %+v fleet %+v", cfg.Node, cfg.Gossip, cfg.Telemetry, cfg.Fleet)
	}
	if len(cfg.VRRP.Instances) != 1 || cfg.VRRP.Instances[0].Name != "web" || cfg.VRRP.Instances[0].Interface != "ens3" ||
		cfg.VRRP.Instances[0].Priority != 120 || len(cfg.LB.VirtualServers) != 1 {
		t.Errorf("fleet settings: %+v, %d virtual servers", cfg.VRRP.Instances, len(cfg.LB.VirtualServers))
	}
	// Problems are named by the label.
	bad, err := ParseFleet([]byte("vrrp:\n  instances:\n    - { name: a, interface: eth0, vrid: 300, priority: 100, vips: [192.0.2.100/24] }\nnodes: { lb2: {} }\n"), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Compose("lb2", local, "fleet v4"); err == nil || !strings.Contains(err.Error(), "fleet v4") {
		t.Errorf("a bad document: %v", err)
	}
}

// A fleet member always has gossip: the document is checked with it, so health_policy quorum
// (only valid with gossip) passes validation.
func TestFleetConfigHasGossip(t *testing.T) {
	doc := "lb:\n  virtual_servers:\n    - { name: web, address: 192.0.2.100:80, protocol: tcp, health_policy: quorum, real_servers: [ { address: \"198.51.100.11:80\" } ] }\nnodes: { n1: {} }\n"
	fd, err := ParseFleet([]byte(doc), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := fd.Config("n1")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LB.VirtualServers[0].HealthPolicy != HealthQuorum {
		t.Fatalf("policy %q", cfg.LB.VirtualServers[0].HealthPolicy)
	}
}

// Render encodes each top-level entry on its own and remembers the shared ones (for speed);
// the result must be exactly the whole merged document encoded at once, for every node: the
// example (node values merged into vrrp:) and a document with comments, an lb: one node
// overrides and one it does not.
func TestFleetRenderIsWholeEncoding(t *testing.T) {
	example, err := os.ReadFile("../deploy/examples/fleet-lvs-dr.yaml")
	if err != nil {
		t.Fatal(err)
	}
	commented := []byte(`# the fleet's document
vrrp:
  # the one router
  instances:
    - { name: a, interface: eth0, vrid: 1, priority: 100, vips: [192.0.2.100/24] }
# the services
lb:
  virtual_servers:
    - { name: web, address: "192.0.2.100:80", protocol: tcp, real_servers: [{ address: "198.51.100.1:80" }] } # trailing
nodes:
  n1: { vrrp: { instances: [ { name: a, priority: 150 } ] } }
  n2: { lb: { virtual_servers: [ { name: web, scheduler: wrr } ] } }
  n3: {}
`)
	for _, doc := range [][]byte{example, commented} {
		fd, err := ParseFleet(doc, "f.yaml")
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second time from remembered entries
			for _, name := range fd.Nodes() {
				got, err := fd.Render(name)
				if err != nil {
					t.Fatal(err)
				}
				merged := mergeYAML(fd.shared, fd.nodes[name])
				whole := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
				nk := scalarNode("node")
				nk.HeadComment = fmt.Sprintf("The configuration of %s from the fleet document f.yaml (vigil config render).", name)
				whole.Content = append(whole.Content, nk, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map",
					Content: []*yaml.Node{scalarNode("name"), scalarNode(name)}})
				whole.Content = append(whole.Content, merged.Content...)
				first := *whole.Content[2]
				first.HeadComment = ""
				whole.Content[2] = &first
				var b bytes.Buffer
				enc := yaml.NewEncoder(&b)
				enc.SetIndent(2)
				if err := enc.Encode(whole); err != nil {
					t.Fatal(err)
				}
				if err := enc.Close(); err != nil {
					t.Fatal(err)
				}
				if string(got) != b.String() {
					t.Errorf("%s: rendered by entries:\n%s\nwhole:\n%s", name, got, b.String())
				}
			}
		}
	}
}

// A node composes every version it applies with one Loader (node/fleetcfg.go): a version
// changing one weight of 200 virtual servers reuses the other 199, and the result equals a
// compose without reuse.
func TestFleetComposeReuses(t *testing.T) {
	doc := func(weight int) []byte {
		var b strings.Builder
		b.WriteString("vrrp:\n  instances:\n    - { name: a, interface: eth0, vrid: 1, priority: 100, vips: [192.0.2.100/24] }\nlb:\n  virtual_servers:\n")
		for i := range 200 {
			w := 1
			if i == 7 {
				w = weight
			}
			fmt.Fprintf(&b, "    - { name: vs%d, address: \"192.0.2.%d:%d\", protocol: tcp, real_servers: [{ address: \"198.51.100.1:8080\", weight: %d }] }\n", i, 1+i/50, 80+i%50, w)
		}
		b.WriteString("nodes: { n1: {} }\n")
		return []byte(b.String())
	}
	local := []byte("node: { name: n1 }\ngossip: { insecure: true }\n")
	var l Loader
	for v, weight := range []int{1, 2} {
		fd, err := ParseFleet(doc(weight), "f.yaml")
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := fd.ComposeWith(&l, "n1", local, fmt.Sprintf("fleet v%d", v+1))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := fd.Compose("n1", local, "plain")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cfg.LB, plain.LB) || !reflect.DeepEqual(cfg.VRRP, plain.VRRP) || cfg.Gossip == nil {
			t.Fatalf("version %d: composed with reuse differs from without", v+1)
		}
		if got := cfg.LB.VirtualServers[7].Spec.Reals[0].Weight; got != weight {
			t.Fatalf("version %d: weight %d, want %d", v+1, got, weight)
		}
		if v == 1 && l.Reused() != 199 {
			t.Errorf("the second version reused %d virtual servers, want 199", l.Reused())
		}
	}
}

// A composition uses the document's own text for the entries no node changes (verbatimEntries):
// what a node runs is the same as from the encoding, for every node (also one that changes an
// entry, which is encoded), and documents that cannot be cut into independent entries (a flow
// top level, anchors and aliases, document markers) are encoded as before.
func TestFleetComposeVerbatim(t *testing.T) {
	example, err := os.ReadFile("../deploy/examples/fleet-lvs-dr.yaml")
	if err != nil {
		t.Fatal(err)
	}
	shared := "    - { name: a, interface: eth0, vrid: 1, priority: 100, vips: [192.0.2.100/24] }\n"
	cases := []struct {
		name     string
		doc      string
		verbatim bool
		own      string // text only the document's own (not the encoder's) has, in node n1's composition
	}{
		{"the example", string(example), true, ""},
		{"comments, a node changing lb:", "# fleet\nvrrp:\n  # the router\n  instances:\n" + shared +
			"# services\nlb:\n    virtual_servers:\n      - { name: web, address: \"192.0.2.100:80\", protocol: tcp, real_servers: [{ address: \"198.51.100.1:80\" }] }\n" +
			"nodes:\n  n1: {}\n  n2: { lb: { virtual_servers: [ { name: web, scheduler: wrr } ] } }", true, "lb:\n    virtual_servers:\n"},
		{"nodes: first, no final newline", "nodes: { n1: {} }\nvrrp:\n  instances:\n" + strings.TrimSuffix(shared, "\n"), true, shared},
		{"a flow top level", "{ vrrp: { instances: [ { name: a, interface: eth0, vrid: 1, priority: 100, vips: [192.0.2.100/24] } ] }, nodes: { n1: {} } }\n", false, ""},
		{"an anchor", "vrrp:\n  instances:\n    - &r { name: a, interface: eth0, vrid: 1, priority: 100, vips: [192.0.2.100/24] }\nnodes: { n1: {} }\n", false, ""},
		{"document markers", "---\nvrrp:\n  instances:\n" + shared + "nodes: { n1: {} }\n...\n", false, ""},
	}
	local := []byte("node: { name: x }\ngossip: { insecure: true }\n")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fd, err := ParseFleet([]byte(tc.doc), "f.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if (fd.verbatim != nil) != tc.verbatim {
				t.Fatalf("entries cut verbatim: %v, want %v", fd.verbatim != nil, tc.verbatim)
			}
			encoded, err := ParseFleet([]byte(tc.doc), "f.yaml")
			if err != nil {
				t.Fatal(err)
			}
			encoded.verbatim = nil
			for _, name := range fd.Nodes() {
				got, err := fd.Compose(name, local, "v")
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				want, err := encoded.Compose(name, local, "v")
				if err != nil {
					t.Fatalf("%s, encoded: %v", name, err)
				}
				if !reflect.DeepEqual(got.LB, want.LB) || !reflect.DeepEqual(got.VRRP, want.VRRP) {
					t.Errorf("%s: composed from the document's text differs from the encoding", name)
				}
			}
			if tc.own != "" {
				text, err := fd.composeYAML("n1", local)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(text, []byte(tc.own)) {
					t.Errorf("a shared entry is not the document's own text (%q):\n%s", tc.own, text)
				}
			}
		})
	}
}
