package config

import (
	"bytes"
	"encoding/base64"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testKey is a 32-byte key filled with b.
func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, GossipKeySize) }

// writeTestKeyring writes keys, base64, one per line, to a new file of
// mode perm and returns its path.
func writeTestKeyring(t *testing.T, perm os.FileMode, keys ...[]byte) string {
	t.Helper()
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	}
	return writeRaw(t, perm, b.String())
}

func writeRaw(t *testing.T, perm os.FileMode, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(p, []byte(text), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

// gossipDoc is a config with one virtual server and the given gossip:
// section body (flow mapping).
func gossipDoc(gossip string) string {
	return lbDoc(httpVS) + "gossip: " + gossip + "\n"
}

func gossipWarnings(c *Config) []string {
	var out []string
	for _, w := range c.Warnings {
		if strings.HasPrefix(w, "gossip") {
			out = append(out, w)
		}
	}
	return out
}

// The README's example decodes to every field; an absent section is nil.
func TestGossipAllKeys(t *testing.T) {
	kr := writeTestKeyring(t, 0o600, testKey(1), testKey(2))
	y := lbDoc(httpVS) + `gossip:
  bind: 192.0.2.11:7946
  advertise: 192.0.2.11:7946
  join: [192.0.2.12:7946, "[2001:db8::13]:7946", lb3.example.net:7946]
  cluster: edge-prod
  keyring: ` + kr + `
  profile: wan
  timing: {probe_interval: 1s, probe_timeout: 500ms, gossip_interval: 200ms, gossip_nodes: 4,
           push_pull_interval: 30s, suspicion_mult: 5, retransmit_mult: 3,
           dead_node_reclaim: 10s, gossip_to_the_dead: 1m}
  arbitrate: false
  rejoin_interval: 1m
  direct_fanout: 8
`
	c := mustParse(t, y)
	want := &Gossip{
		Bind:      netip.MustParseAddrPort("192.0.2.11:7946"),
		Advertise: netip.MustParseAddrPort("192.0.2.11:7946"),
		Join:      []string{"192.0.2.12:7946", "[2001:db8::13]:7946", "lb3.example.net:7946"},
		Cluster:   "edge-prod",
		Keyring:   kr,
		Keys:      [][]byte{testKey(1), testKey(2)},
		Profile:   "wan",
		Timing: GossipTiming{ProbeInterval: time.Second, ProbeTimeout: 500 * time.Millisecond,
			GossipInterval: 200 * time.Millisecond, GossipNodes: 4, PushPullInterval: 30 * time.Second,
			SuspicionMult: 5, RetransmitMult: 3, DeadNodeReclaim: 10 * time.Second, GossipToTheDead: time.Minute},
		Rejoin: time.Minute, DirectFanout: 8,
	}
	if !reflect.DeepEqual(c.Gossip, want) {
		t.Errorf("gossip\n%+v\nwant\n%+v", c.Gossip, want)
	}
	if w := gossipWarnings(c); len(w) != 0 {
		t.Errorf("warnings: %v", w)
	}
	if c := mustParse(t, lbDoc(httpVS)); c.Gossip != nil {
		t.Errorf("no gossip: section gave %+v", c.Gossip)
	}
}

// Issue 13's defaults: bind 0.0.0.0:7946, cluster "vigil", profile lan,
// arbitrate on, rejoin every 30s; insecure leaves the keys nil.
func TestGossipDefaults(t *testing.T) {
	c := mustParse(t, gossipDoc("{insecure: true}"))
	want := &Gossip{
		Bind:      netip.MustParseAddrPort("0.0.0.0:7946"),
		Cluster:   "vigil",
		Insecure:  true,
		Profile:   "lan",
		Arbitrate: true,
		Rejoin:    30 * time.Second,

		DirectFanout: 64,
	}
	if !reflect.DeepEqual(c.Gossip, want) {
		t.Errorf("gossip\n%+v\nwant\n%+v", c.Gossip, want)
	}
}

// Every rule of the gossip: section (issue 13), each one problem at its
// key path.
func TestGossipInvalid(t *testing.T) {
	kr := writeTestKeyring(t, 0o600, testKey(1))
	// g is a gossip section with a valid keyring and kv.
	g := func(kv string) string { return gossipDoc("{keyring: " + kr + ", " + kv + "}") }
	long := strings.Repeat("n", 129)
	cases := []struct{ name, y, path, frag string }{
		// encrypted by default
		{"no keyring", gossipDoc("{bind: 192.0.2.11:7946}"), "gossip.keyring",
			"gossip without a keyring is refused: set keyring: FILE (create one with `vigil gossip keygen > FILE`) or insecure: true"},
		{"empty section", lbDoc(httpVS) + "gossip:\n", "gossip", "has no value: give at least keyring: FILE"},
		{"empty mapping", lbDoc(httpVS) + "gossip: {}\n", "gossip.keyring", "gossip without a keyring is refused"},
		{"insecure false", gossipDoc("{insecure: false}"), "gossip.keyring", "gossip without a keyring is refused"},
		{"insecure and keyring", g("insecure: true"), "gossip.insecure", "true together with keyring is ambiguous"},
		{"keyring relative", gossipDoc("{keyring: gossip.key}"), "gossip.keyring", `"gossip.key" must be an absolute path`},
		{"keyring missing", gossipDoc("{keyring: /nonexistent/gossip.key}"), "gossip.keyring",
			`"/nonexistent/gossip.key" cannot be used: keyring: open /nonexistent/gossip.key: no such file or directory`},
		{"keyring bad key", gossipDoc("{keyring: " + writeRaw(t, 0o600, "# keys\n\nnot-base64!\n") + "}"), "gossip.keyring",
			"gossip.key:3: the key is not base64"},
		// bind and advertise
		{"bind no port", g("bind: 192.0.2.11"), "gossip.bind", `"192.0.2.11" is not ADDRESS:PORT`},
		{"bind name", g("bind: \"lb1:7946\""), "gossip.bind", "is not ADDRESS:PORT"},
		{"bind port 0", g("bind: \"192.0.2.11:0\""), "gossip.bind", "has port 0"},
		{"bind port too big", g("bind: \"192.0.2.11:65536\""), "gossip.bind", "is not ADDRESS:PORT"},
		{"bind v6 no brackets", g("bind: \"2001:db8::1:7946\""), "gossip.bind", "is not ADDRESS:PORT"},
		{"advertise unspecified", g("advertise: 0.0.0.0:7946"), "gossip.advertise", "is the unspecified address"},
		{"advertise v6 unspecified", g("advertise: \"[::]:7946\""), "gossip.advertise", "is the unspecified address"},
		// join
		{"join no port", g("join: [192.0.2.12]"), "gossip.join[0]", `"192.0.2.12" is not HOST:PORT`},
		{"join name no port", g("join: [192.0.2.12:7946, lb2]"), "gossip.join[1]", "the port is required"},
		{"join bad port", g("join: [\"lb2:gossip\"]"), "gossip.join[0]", "has no valid port"},
		{"join bad host", g("join: [\"lb 2:7946\"]"), "gossip.join[0]", "neither an IP address nor a DNS name"},
		{"join not a string", g("join: [{a: 1}]"), "gossip.join[0]", "must be HOST:PORT"},
		{"join scalar", g("join: 192.0.2.12:7946"), "gossip.join", "must be a list"},
		// cluster
		{"cluster empty", g("cluster: \"\""), "gossip.cluster", "is empty"},
		{"cluster space", g("cluster: \"edge prod\""), "gossip.cluster", "white space"},
		{"cluster control", g("cluster: \"edge\\tprod\""), "gossip.cluster", "white space or unprintable"},
		{"cluster long", g("cluster: " + strings.Repeat("c", 256) + ""), "gossip.cluster", "is 256 bytes, over memberlist's 255"},
		// profile, timing, rejoin
		{"profile", g("profile: lan2"), "gossip.profile", `"lan2" is not one of lan, lan-fast, wan, local`},
		{"timing zero", g("timing: {probe_interval: 0s}"), "gossip.timing.probe_interval", "must be above 0"},
		{"timing negative", g("timing: {gossip_to_the_dead: -1s}"), "gossip.timing.gossip_to_the_dead", "must be above 0"},
		{"timing no unit", g("timing: {gossip_interval: 200}"), "gossip.timing.gossip_interval", "has no unit"},
		{"probe timeout = interval", g("timing: {probe_interval: 1s, probe_timeout: 1s}"),
			"gossip.timing.probe_timeout", `"1s" is not shorter than probe_interval (1s)`},
		{"probe timeout > interval", g("timing: {probe_timeout: 2s, probe_interval: 1s}"),
			"gossip.timing.probe_timeout", "is not shorter than probe_interval"},
		{"gossip nodes 0", g("timing: {gossip_nodes: 0}"), "gossip.timing.gossip_nodes", "is out of range 1..65536"},
		{"suspicion mult negative", g("timing: {suspicion_mult: -1}"), "gossip.timing.suspicion_mult", "out of range"},
		{"retransmit mult", g("timing: {retransmit_mult: x}"), "gossip.timing.retransmit_mult", "is not an integer"},
		{"timing unknown", g("timing: {probe_intreval: 1s}"), "gossip.timing.probe_intreval", `did you mean "probe_interval"?`},
		{"rejoin short", g("rejoin_interval: 500ms"), "gossip.rejoin_interval", "is below 1s"},
		{"rejoin zero", g("rejoin_interval: 0s"), "gossip.rejoin_interval", "is below 1s"},
		{"fanout negative", g("direct_fanout: -1"), "gossip.direct_fanout", "want 0 (gossip only) to 1024"},
		{"fanout too large", g("direct_fanout: 1025"), "gossip.direct_fanout", "want 0 (gossip only) to 1024"},
		{"arbitrate", g("arbitrate: maybe"), "gossip.arbitrate", "is not true or false"},
		{"unknown", g("bind_addr: 192.0.2.11"), "gossip.bind_addr", `the key is "bind"`},
		{"section scalar", lbDoc(httpVS) + "gossip: on\n", "gossip", "must be a mapping"},
		// node.name is the memberlist node name
		{"node name long", "node: {name: " + long + "}\nlb:\n  virtual_servers: [" + httpVS + "]\ngossip: {keyring: " + kr + "}\n",
			"node.name", "is 129 bytes: with gossip: it is the memberlist node name, at most 128 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ve := mustFail(t, tc.y)
			wantErr(t, ve, tc.path, tc.frag)
			if len(ve.Errors) != 1 {
				t.Errorf("want exactly one error, got:\n%v", ve)
			}
		})
	}
}

// What the rules allow: a join entry that is this node itself (memberlist
// skips itself), IPv6 in brackets, a 128-byte node name, names in join, a
// long name without gossip.
func TestGossipAccepted(t *testing.T) {
	kr := writeTestKeyring(t, 0o600, testKey(1))
	n128 := strings.Repeat("n", 128)
	for _, y := range []string{
		gossipDoc("{keyring: " + kr + ", bind: 192.0.2.11:7946, advertise: 192.0.2.11:7946, join: [192.0.2.11:7946, 192.0.2.12:7946]}"),
		gossipDoc("{keyring: " + kr + `, bind: "[2001:db8::11]:7946", join: ["[2001:db8::12]:7946", lb2.example.net:7946, lb3:1]}`),
		gossipDoc("{insecure: true, bind: \"[::]:7946\", timing: {probe_timeout: 2s}}"),
		"node: {name: " + n128 + "}\nlb:\n  virtual_servers: [" + httpVS + "]\ngossip: {insecure: true}\n",
		"node: {name: " + strings.Repeat("n", 200) + "}\nlb:\n  virtual_servers: [" + httpVS + "]\n",
	} {
		mustParse(t, y)
	}
}

// Problems of the gossip section print as FILE:LINE:COL: path: value
// message, like every other (TestErrorPositions).
func TestGossipErrorPositions(t *testing.T) {
	kr := writeTestKeyring(t, 0o600, testKey(1))
	y := `node: {name: lb1}
lb:
  virtual_servers:
    - name: http
      address: 192.0.2.100:80
      protocol: tcp
      health_policy: sometimes
      real_servers: [{address: 198.51.100.11:8080}]
gossip:
  bind: 192.0.2.11
  advertise: 0.0.0.0:7946
  join: [192.0.2.12:7946, lb2]
  keyring: ` + kr + `
  insecure: true
  timing: {probe_interval: 1s, probe_timeout: 1s}
`
	f := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(f, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(f)
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		"config " + f + ": 6 problems:",
		f + `:10:9: gossip.bind: "192.0.2.11" is not ADDRESS:PORT`,
		f + `:11:14: gossip.advertise: "0.0.0.0:7946" is the unspecified address`,
		f + `:12:27: gossip.join[1]: "lb2" is not HOST:PORT`,
		f + `:15:47: gossip.timing.probe_timeout: "1s" is not shorter than probe_interval (1s)`,
		f + `:14:13: gossip.insecure: true together with keyring is ambiguous`,
		f + `:7:22: lb.virtual_servers[0].health_policy: "sometimes" is not a health policy: use local, any or quorum`,
	}
	wantLines(t, err, want)
}

// health_policy (issue 13): default quorum with a gossip: section, local
// without; any and quorum without gossip: are errors naming the section.
func TestHealthPolicy(t *testing.T) {
	vs := func(policy string) string {
		if policy == "" {
			return httpVS
		}
		return strings.Replace(httpVS, "{name: http,", "{name: http, health_policy: "+policy+",", 1)
	}
	const gossip = "gossip: {insecure: true}\n"
	cases := []struct {
		name, y string
		want    HealthPolicy
		err     string
	}{
		{"default without gossip", lbDoc(vs("")), HealthLocal, ""},
		{"default with gossip", lbDoc(vs("")) + gossip, HealthQuorum, ""},
		{"local without gossip", lbDoc(vs("local")), HealthLocal, ""},
		{"local with gossip", lbDoc(vs("local")) + gossip, HealthLocal, ""},
		{"any with gossip", lbDoc(vs("any")) + gossip, HealthAny, ""},
		{"quorum with gossip", lbDoc(vs("quorum")) + gossip, HealthQuorum, ""},
		{"any without gossip", lbDoc(vs("any")), "", `"any" needs a gossip: section`},
		{"quorum without gossip", lbDoc(vs("quorum")), "", `"quorum" needs a gossip: section`},
		{"unknown", lbDoc(vs("majority")) + gossip, "", `"majority" is not a health policy: use local, any or quorum`},
		{"case", lbDoc(vs("Quorum")) + gossip, "", "is not a health policy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err != "" {
				ve := mustFail(t, tc.y)
				wantErr(t, ve, "lb.virtual_servers[0].health_policy", tc.err)
				if len(ve.Errors) != 1 {
					t.Errorf("want one error, got:\n%v", ve)
				}
				return
			}
			c := mustParse(t, tc.y)
			if got := c.LB.VirtualServers[0].HealthPolicy; got != tc.want {
				t.Errorf("health policy %q, want %q", got, tc.want)
			}
		})
	}
}

// A Loader reuses virtual servers across files: the default policy must
// follow the gossip: section of each file, not the file the item was
// first decoded in.
func TestHealthPolicyLoaderReuse(t *testing.T) {
	vals := make([]int, 6)
	for i := range vals {
		vals[i] = 3 * i // one real server each
	}
	base := reuseConfig(vals)
	l := Loader{par: parallelism{procs: 1, min: 1}}
	for i, tc := range []struct {
		y    string
		want HealthPolicy
	}{
		{base, HealthLocal},
		{base + "gossip: {insecure: true}\n", HealthQuorum},
		{base, HealthLocal},
	} {
		c, err := l.Parse([]byte(tc.y))
		if err != nil {
			t.Fatalf("parse %d: %v", i, err)
		}
		if i > 0 && l.Reused() == 0 {
			t.Fatalf("parse %d reused nothing: the test checks nothing", i)
		}
		for _, vs := range c.LB.VirtualServers {
			if vs.HealthPolicy != tc.want {
				t.Fatalf("parse %d: %s has %q, want %q", i, vs.Spec.Name, vs.HealthPolicy, tc.want)
			}
		}
	}
}

// The keyring file format of issue 13: one base64 key per line, blank
// lines and # comments ignored, 32 bytes each; errors name FILE:LINE and
// never the key material.
func TestReadKeyring(t *testing.T) {
	k1 := base64.StdEncoding.EncodeToString(testKey(1))
	k2 := base64.StdEncoding.EncodeToString(testKey(2))
	short := base64.StdEncoding.EncodeToString(testKey(3)[:16])
	cases := []struct {
		name, text string
		want       [][]byte
		err        string // after the file's path
	}{
		{"one", k1 + "\n", [][]byte{testKey(1)}, ""},
		{"two, comments, blanks, CRLF, no final newline", "# primary\n\n  " + k2 + "  \r\n# old\n" + k1,
			[][]byte{testKey(2), testKey(1)}, ""},
		{"empty", "", nil, " has no key"},
		{"comments only", "# nothing\n\n", nil, " has no key"},
		{"not base64", k1 + "\n\n" + k1[:10] + "*" + k1[11:] + "\n", nil, ":3: the key is not base64"},
		{"url encoding", strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))) + "\n",
			nil, ":1: the key is not base64"},
		{"AES-128 key", "# x\n" + short + "\n", nil, ":2: the key is 16 bytes, want 32 (AES-256)"},
		{"duplicate", k1 + "\n" + k2 + "\n" + k1 + "\n", nil, ":3: the key of line 1 again"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeRaw(t, 0o600, tc.text)
			keys, err := ReadKeyring(p)
			if tc.err == "" {
				if err != nil || !reflect.DeepEqual(keys, tc.want) {
					t.Fatalf("keys %x, err %v; want %x", keys, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), p+tc.err) {
				t.Fatalf("err %v, want %q", err, p+tc.err)
			}
			for _, line := range strings.Split(tc.text, "\n") {
				if len(line) > 8 && !strings.HasPrefix(line, "#") && strings.Contains(err.Error(), strings.TrimSpace(line)) {
					t.Errorf("the error shows key material: %v", err)
				}
			}
		})
	}
	if _, err := ReadKeyring(filepath.Join(t.TempDir(), "none")); !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// WriteKeyring writes what ReadKeyring reads, mode 0600, replacing the
// file whole and leaving no temporary file; it refuses keys of the wrong
// size and an empty keyring, leaving the file as it was.
func TestWriteKeyring(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "gossip.key")
	keys := [][]byte{testKey(7), testKey(8), testKey(9)}
	for _, ks := range [][][]byte{keys, keys[1:]} { // create, then replace
		if err := WriteKeyring(p, ks); err != nil {
			t.Fatal(err)
		}
		got, err := ReadKeyring(p)
		if err != nil || !reflect.DeepEqual(got, ks) {
			t.Fatalf("read back %x, %v; want %x", got, err, ks)
		}
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, %v; want 0600", fi.Mode(), err)
		}
	}
	for _, bad := range [][][]byte{nil, {testKey(1), testKey(1)[:16]}} {
		if err := WriteKeyring(p, bad); err == nil {
			t.Errorf("WriteKeyring accepted %d keys of sizes %v", len(bad), bad)
		}
	}
	if got, err := ReadKeyring(p); err != nil || !reflect.DeepEqual(got, keys[1:]) {
		t.Errorf("a refused write changed the file: %x, %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files left in the directory: %v", entries)
	}
	if err := WriteKeyring(filepath.Join(dir, "no", "such", "dir"), keys); err == nil {
		t.Error("a write into a missing directory succeeded")
	}
}

// A keyring others can read is a warning, not an error (issue 13).
func TestKeyringModeWarning(t *testing.T) {
	for _, tc := range []struct {
		perm os.FileMode
		warn string
	}{
		{0o600, ""},
		{0o400, ""},
		{0o644, "(mode 0644): chmod 600"},
		{0o640, "(mode 0640): chmod 600"},
		{0o620, "(mode 0620): chmod 600"},
	} {
		kr := writeTestKeyring(t, tc.perm, testKey(1))
		c := mustParse(t, gossipDoc("{keyring: "+kr+"}"))
		got := strings.Join(gossipWarnings(c), "\n")
		if tc.warn == "" {
			if got != "" {
				t.Errorf("mode %04o: warnings %q", tc.perm, got)
			}
			continue
		}
		if want := "gossip.keyring: keyring " + kr + " is readable by other users " + tc.warn; !strings.Contains(got, want) {
			t.Errorf("mode %04o: warnings %q, want %q", tc.perm, got, want)
		}
	}
}

// Changes.Gossip (issue 13): set when the section is added, removed or
// any setting differs, keys by value; Empty sees it.
func TestDiffGossip(t *testing.T) {
	k1 := writeTestKeyring(t, 0o600, testKey(1))
	k1again := writeTestKeyring(t, 0o600, testKey(1))
	k2 := writeTestKeyring(t, 0o600, testKey(1), testKey(2))
	parse := func(g string) *Config {
		if g == "" {
			return mustParse(t, lbDoc(httpVS))
		}
		return mustParse(t, gossipDoc(g))
	}
	cases := []struct {
		name, old, new string
		want           bool
	}{
		{"none", "", "", false},
		{"same", "{keyring: " + k1 + "}", "{keyring: " + k1 + "}", false},
		{"added", "", "{keyring: " + k1 + "}", true},
		{"removed", "{insecure: true}", "", true},
		{"key added", "{keyring: " + k1 + "}", "{keyring: " + k2 + "}", true},
		{"keyring moved", "{keyring: " + k1 + "}", "{keyring: " + k1again + "}", true},
		{"timing", "{insecure: true}", "{insecure: true, timing: {probe_interval: 2s}}", true},
		{"join", "{insecure: true, join: [192.0.2.12:7946]}", "{insecure: true, join: [192.0.2.13:7946]}", true},
		{"arbitrate", "{insecure: true}", "{insecure: true, arbitrate: false}", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch := Diff(parse(tc.old), parse(tc.new))
			if ch.Gossip != tc.want {
				t.Errorf("Gossip = %v, want %v", ch.Gossip, tc.want)
			}
			if ch.Empty() == tc.want {
				t.Errorf("Empty() = %v with Gossip %v", ch.Empty(), ch.Gossip)
			}
		})
	}
}

// A VIGIL_GOSSIP_* variable without a gossip: section in the file turns
// gossip on, as for every other section; the keyring error then says so.
func TestGossipFromEnv(t *testing.T) {
	t.Setenv("VIGIL_GOSSIP_ADVERTISE", "192.0.2.11:7946")
	ve := mustFail(t, lbDoc(httpVS))
	wantErr(t, ve, "gossip.keyring", "(gossip is on: $VIGIL_GOSSIP_ADVERTISE set)")
	t.Setenv("VIGIL_GOSSIP_ADVERTISE", "0.0.0.0:7946")
	ve = mustFail(t, gossipDoc("{insecure: true}"))
	wantErr(t, ve, "gossip.advertise", `"0.0.0.0:7946" is the unspecified address`)
	if !strings.Contains(ve.Error(), "$VIGIL_GOSSIP_ADVERTISE") {
		t.Errorf("variable not named: %v", ve)
	}
}
