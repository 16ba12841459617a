package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// everyPath parses y every way a file reaches a Config: Parse, Load, a
// Loader's Load and ParseFile (what reloads use), and Loaders that decode
// the virtual servers apart or take them over from a parse before
// (placeholders). Every way must give the same result or the same error;
// it returns Load's.
func everyPath(t *testing.T, y string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	type way struct {
		name string
		cfg  *Config
		err  error
	}
	var ways []way
	add := func(name string, cfg *Config, err error) {
		if cfg != nil {
			c := *cfg
			c.Path = "" // Parse's has none
			cfg = &c
		}
		if err != nil {
			// Parse names no file: compare the problems and their places.
			msg := err.Error()
			var ve *ValidationError
			if errors.As(err, &ve) {
				var b strings.Builder
				for _, fe := range ve.Errors {
					fe.File = "" // Parse's name none
					fmt.Fprintf(&b, "%d:%d %s\n", fe.Line, fe.Column, fe.Error())
				}
				msg = b.String()
			}
			err = errors.New(msg)
		}
		ways = append(ways, way{name, cfg, err})
	}
	c, err := Load(path)
	add("Load", c, err)
	c, err = Parse([]byte(y))
	add("Parse", c, err)
	c, err = (&Loader{}).Load(path)
	add("Loader.Load", c, err)
	c, err = (&Loader{}).ParseFile([]byte(y), path)
	add("Loader.ParseFile", c, err)
	apart := &Loader{par: parallelism{procs: 2, min: 1, unit: 1}}
	c, err = apart.ParseFile([]byte(y), path)
	add("Loader decoding apart", c, err)
	// Parsed again, the items that decoded cleanly are placeholders.
	c, err = apart.ParseFile([]byte(y), path)
	add("Loader with placeholders", c, err)
	for _, w := range ways[1:] {
		if fmt.Sprint(w.err) != fmt.Sprint(ways[0].err) {
			t.Errorf("%s: error\n%v\nLoad's\n%v", w.name, w.err, ways[0].err)
		} else if !reflect.DeepEqual(w.cfg, ways[0].cfg) {
			t.Errorf("%s: config differs from Load's:\n%+v\n%+v", w.name, w.cfg, ways[0].cfg)
		}
	}
	return Load(path)
}

// vsBlock is an lb section of n virtual servers in the block layout a
// Loader reads apart; extra is added to the item with index at.
func vsBlock(n, at int, extra string) string {
	var b strings.Builder
	b.WriteString("lb:\n  virtual_servers:\n")
	for i := range n {
		fmt.Fprintf(&b, "    - name: vs%d\n      address: 203.0.113.%d:80\n      protocol: tcp\n      real_servers:\n        - address: 198.51.100.1:80\n          weight: 1\n", i, i+1)
		if i == at {
			b.WriteString(extra)
		}
	}
	return b.String()
}

func hasWarning(c *Config, frags ...string) bool {
	for _, w := range c.Warnings {
		ok := true
		for _, f := range frags {
			ok = ok && strings.Contains(w, f)
		}
		if ok {
			return true
		}
	}
	return false
}

// Two keys of one mapping that viper would read as one are an error
// naming the path, both spellings and their lines, on every path.
func TestCaseDuplicateKeys(t *testing.T) {
	for _, tc := range []struct {
		name, y, path string
		frags         []string
	}{
		{"instance key", one("preempt: true") + "      Preempt: false\n",
			"vrrp.instances[0].preempt", []string{`"preempt" (line 7)`, `"Preempt" (line 8)`, "differ only in case"}},
		{"section", "VRRP: {instances: []}\n" + one(),
			"vrrp", []string{`"VRRP" (line 1)`, `"vrrp" (line 2)`}},
		{"flow mapping", "node: {name: a, NAME: b}\n" + one(),
			"node.name", []string{`"name" (line 1)`, `"NAME" (line 1)`}},
		{"three spellings", one("vrid: 1") + "      VRID: 2\n      Vrid: 3\n",
			"vrrp.instances[0].vrid", []string{`"vrid" (line 5), "VRID" (line 7) and "Vrid" (line 8)`}},
		{"merged from an anchor", "vrrp:\n  instances:\n    - &a {name: a, interface: eth0, vrid: 1, vips: [192.0.2.1], preempt: true}\n    - {<<: *a, name: b, vrid: 2, vips: [192.0.2.2], Preempt: false}\n",
			"vrrp.instances[1].preempt", []string{`"preempt" (line 3)`, `"Preempt" (line 4)`}},
		// Inside a virtual server that a Loader would decode apart, after
		// others it takes over: the path counts every item.
		{"virtual server", vsBlock(5, 3, "      Name: other\n"),
			"lb.virtual_servers[3].name", []string{`"name" (line 21)`, `"Name" (line 27)`}},
		{"real server", vsBlock(5, 4, "          WEIGHT: 2\n"),
			"lb.virtual_servers[4].real_servers[0].weight", []string{`"weight" (line 32)`, `"WEIGHT" (line 33)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := everyPath(t, tc.y)
			if err == nil {
				t.Fatal("accepted")
			}
			validationError(t, err, tc.path, tc.frags...)
		})
	}
	// The same key overriding a merged one is YAML, not a duplicate.
	c, err := everyPath(t, "vrrp:\n  instances:\n    - &a {name: a, interface: eth0, vrid: 1, vips: [192.0.2.1], preempt: true}\n    - {<<: *a, name: b, vrid: 2, vips: [192.0.2.2], preempt: false}\n")
	if err != nil {
		t.Fatal(err)
	}
	if !c.VRRP.Instances[0].Preempt || c.VRRP.Instances[1].Preempt {
		t.Errorf("merge: %+v", c.VRRP.Instances)
	}
}

// A known key written with capitals alone is read as its lower-case form,
// with a warning giving the canonical spelling; an unknown one is named
// as written.
func TestCapitalisedKey(t *testing.T) {
	c, err := everyPath(t, "Node: {name: a}\n"+one("Preempt: false"))
	if err != nil {
		t.Fatal(err)
	}
	if c.VRRP.Instances[0].Preempt || c.Node.Name != "a" {
		t.Errorf("Preempt: false not read: %+v", c.VRRP.Instances[0])
	}
	for _, w := range []string{
		`node: written "Node" (line 1); keys are lower case: vigil reads it as "node", write it so`,
		`vrrp.instances[0].preempt: written "Preempt" (line 8); keys are lower case: vigil reads it as "preempt", write it so`,
	} {
		if !hasWarning(c, w) {
			t.Errorf("no warning %q in %q", w, c.Warnings)
		}
	}
	// In a virtual server a Loader would otherwise take over as it is.
	c, err = everyPath(t, vsBlock(4, 2, "      Scheduler: wrr\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.LB.VirtualServers[2].Spec.Service.Scheduler != "wrr" || !hasWarning(c, `lb.virtual_servers[2].scheduler: written "Scheduler" (line 21)`) {
		t.Errorf("scheduler %q, warnings %q", c.LB.VirtualServers[2].Spec.Service.Scheduler, c.Warnings)
	}
	_, err = everyPath(t, one("Prority: 100"))
	validationError(t, err, "vrrp.instances[0].prority", `unknown key (written "Prority", line 7); did you mean "priority"?`)
}

// A second YAML document is an error with its line; an empty one at the
// end, or a "---" opening the file, is not.
func TestSecondDocument(t *testing.T) {
	for _, tc := range []struct {
		name, y string
		line    int // 0: accepted; < 0: no document at -line
	}{
		{"second document", one() + "---\nvrrp: {instances: []}\n", 7},
		{"after an end marker", one() + "...\nnode: {name: x}\n", 7},
		{"after an empty one", one() + "---\n# nothing\n---\nnode: {name: x}\n", 9},
		{"that does not parse", one() + "--- \nnode: [\n", 7},
		{"a scalar", one() + "--- text\n", 7},
		{"text after the document", "{vrrp: {instances: []}}\nnode: {name: a}\n", -1}, // yaml.v3 places it at the end of the first
		{"leading marker", "# vigil\n%YAML 1.1\n---\n" + one(), 0},
		{"empty document at the end", one() + "---\n", 0},
		{"end marker at the end", "---\n" + one() + "...\n", 0},
		{"marker-like text in a value", one() + "      notify: {master: [/bin/true, \"---\"]}\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := everyPath(t, tc.y)
			if tc.line == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if tc.line < 0 {
				validationError(t, err, "", fmt.Sprintf("invalid YAML after the first document: line %d: ", -tc.line))
				return
			}
			validationError(t, err, "", fmt.Sprintf("line %d: a second YAML document starts here", tc.line))
		})
	}
}

// A config that runs nothing (an empty or truncated file) is valid but
// warned of, unless node.allow_empty says it is meant; a list key with no
// value is warned of with its line.
func TestEmptyConfig(t *testing.T) {
	const refused = "a reload to it is refused (it would remove every instance and VIP this node holds); if this node is meant to run none, say so with node.allow_empty: true"
	for _, tc := range []struct {
		name, y  string
		empty    bool
		warnings []string // each one wanted, in order; nil: none
	}{
		{"empty file", "", true, []string{"the configuration has no VRRP instances and no virtual servers: " + refused}},
		{"comments only", "# vigil\n\n", true, []string{refused}},
		{"sections only", "node:\nvrrp:\nlb:\n", true, []string{refused}},
		{"cut after instances", "node: {name: a}\nvrrp:\n  instances:\n", true, []string{
			"vrrp.instances: is empty (line 3); the file may be truncated: write [] for an empty list, or remove the key", refused}},
		{"cut after instances, other keys before", "vrrp:\n  strict: false\n  instances:\n", true, []string{"vrrp.instances: is empty (line 3)", refused}},
		{"null virtual servers", "lb:\n  virtual_servers: ~\n", true, []string{"lb.virtual_servers: is empty (line 2)", refused}},
		{"said so", "node: {allow_empty: true}\n", true, nil},
		{"said so, lists explicitly empty", "node:\n  allow_empty: true\nvrrp:\n  instances: []\nlb:\n  virtual_servers: []\n", true, nil},
		{"not empty", one(), false, nil},
		{"allow_empty on a config that runs something", "node: {allow_empty: true}\n" + one(), false, nil},
		{"virtual servers only", vsBlock(1, -1, ""), false, []string{"vrrp.instances: no VRRP instances are configured"}},
		{"real servers cut off", vsBlock(3, 1, "") + "    - name: last\n      address: 203.0.113.9:80\n      protocol: tcp\n      real_servers:\n", false, []string{
			"lb.virtual_servers[3].real_servers: is empty (line 24); the file may be truncated",
			"vrrp.instances: no VRRP instances are configured"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := everyPath(t, tc.y)
			if err != nil {
				t.Fatal(err)
			}
			if c.Empty() != tc.empty {
				t.Errorf("Empty() = %v", c.Empty())
			}
			if len(c.Warnings) != len(tc.warnings) {
				t.Fatalf("warnings %q, want %d: %q", c.Warnings, len(tc.warnings), tc.warnings)
			}
			for i, w := range tc.warnings {
				if !strings.Contains(c.Warnings[i], w) {
					t.Errorf("warning %d: %q, want %q", i, c.Warnings[i], w)
				}
			}
		})
	}
	// Only the file can say it: the environment does not override it.
	t.Setenv("VIGIL_NODE_ALLOW_EMPTY", "true")
	if c := mustParse(t, ""); c.Node.AllowEmpty || !hasWarning(c, refused) {
		t.Errorf("from the environment: %+v %q", c.Node, c.Warnings)
	}
	mustFail(t, "node: {allow_empty: maybe}\n")
}

// telemetry.pprof with a listener reachable from other hosts is warned of.
func TestPprofExposure(t *testing.T) {
	const exposed = "anybody who can reach the port can take CPU and heap profiles"
	for _, tc := range []struct {
		listen string
		pprof  bool
		where  string // "" = no warning
	}{
		{"0.0.0.0:9730", true, "on 0.0.0.0:9730, which is every interface"},
		{"[::]:9730", true, "on [::]:9730, which is every interface"},
		{":9730", true, "on :9730, which is every interface"},
		{"192.0.2.10:9730", true, "on 192.0.2.10:9730, not a loopback address"},
		{"[2001:db8::1]:9730", true, "not a loopback address"},
		{"lb1.example.net:9730", true, "a host name, not a loopback address"},
		{"127.0.0.1:9730", true, ""},
		{"127.0.0.2:9730", true, ""},
		{"[::1]:9730", true, ""},
		{"[::ffff:127.0.0.1]:9730", true, ""},
		{"localhost:9730", true, ""},
		{"", true, ""},
		{"0.0.0.0:9730", false, ""},
	} {
		c, err := everyPath(t, fmt.Sprintf("telemetry: {listen: %q, pprof: %v}\n%s", tc.listen, tc.pprof, one()))
		if err != nil {
			t.Fatal(err)
		}
		got := hasWarning(c, "telemetry.pprof: true serves Go's /debug/pprof/", exposed)
		if got != (tc.where != "") || got && !hasWarning(c, tc.where) {
			t.Errorf("listen %q pprof %v: warnings %q, want %q", tc.listen, tc.pprof, c.Warnings, tc.where)
		}
	}
	// From the environment: named.
	t.Setenv("VIGIL_TELEMETRY_LISTEN", "0.0.0.0:9730")
	t.Setenv("VIGIL_TELEMETRY_PPROF", "true")
	if c := mustParse(t, one()); !hasWarning(c, exposed, "(set by $VIGIL_TELEMETRY_LISTEN and $VIGIL_TELEMETRY_PPROF)") {
		t.Errorf("environment: %q", c.Warnings)
	}
}

// vrrp.notify_fifo_group: a group name or gid, checked for syntax; one
// that does not exist (yet) is a warning.
func TestNotifyFIFOGroup(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "events")
	withFIFO := func(group string) string {
		return withVRRP(one(), "notify_fifo: "+fifo, "notify_fifo_group: "+group)
	}
	for _, tc := range []struct {
		y, want, warn string
	}{
		{withFIFO(`""`), "", ""},
		{withFIFO("root"), "root", ""},
		{withFIFO("0"), "0", ""},   // a number
		{withFIFO(`"0"`), "0", ""}, // a string
		{withFIFO("vigil-no-such-group"), "vigil-no-such-group", `vrrp.notify_fifo_group: "vigil-no-such-group" names no group on this system now`},
		{withFIFO("4294967294"), "4294967294", "names no group on this system now"},
		{withVRRP(one(), "notify_fifo_group: root"), "root", `vrrp.notify_fifo_group: "root" has no effect without vrrp.notify_fifo`},
	} {
		c, err := everyPath(t, tc.y)
		if err != nil {
			t.Fatalf("%s: %v", tc.y, err)
		}
		if c.VRRP.NotifyFIFOGroup != tc.want {
			t.Errorf("%q, want %q", c.VRRP.NotifyFIFOGroup, tc.want)
		}
		if tc.warn == "" && len(c.Warnings) > 0 || tc.warn != "" && !hasWarning(c, tc.warn) {
			t.Errorf("warnings %q, want %q", c.Warnings, tc.warn)
		}
	}
	for _, tc := range []struct{ group, frag string }{
		{"4294967295", "4294967295 is out of range: a gid is 0..4294967294"},
		{"-1", "-1 is out of range"},
		{"-adm", `"-adm" is not a group name or a numeric gid`},
		{`"a b"`, `"a b" is not a group name or a numeric gid`},
		{"[adm]", "must be a group name or a numeric gid, not a list"},
		{"1.5", "must be a group name or a numeric gid, not a number"},
	} {
		_, err := everyPath(t, withFIFO(tc.group))
		validationError(t, err, "vrrp.notify_fifo_group", tc.frag)
	}
	// The environment overrides it, and Diff reports a change.
	old := mustParse(t, withVRRP(one(), "notify_fifo: "+fifo))
	t.Setenv("VIGIL_VRRP_NOTIFY_FIFO_GROUP", "adm")
	c := mustParse(t, withFIFO("root"))
	if c.VRRP.NotifyFIFOGroup != "adm" {
		t.Errorf("from the environment: %q", c.VRRP.NotifyFIFOGroup)
	}
	if ch := Diff(old, c); !reflect.DeepEqual(ch.Other, []string{"vrrp.notify_fifo_group"}) {
		t.Errorf("Diff: %q", ch.Other)
	}
}
