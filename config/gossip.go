package config

// The gossip: section (issue 13): the fleet's memberlist settings and its
// keyring. Absent, the node runs alone as before.

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Gossip configures the fleet: memberlist membership and the shared state
// that travels over it.
type Gossip struct {
	Bind      netip.AddrPort // `bind`, default 0.0.0.0:7946
	Advertise netip.AddrPort // `advertise`; zero value = not set (memberlist picks)
	Join      []string       // `join: [host:port, ...]`; host may be an IP or a name; port required
	Cluster   string         // `cluster`: memberlist Label; default "vigil"; max 255 bytes, printable, no spaces
	Keyring   string         // `keyring`: path of the keyring file ("" only with insecure)
	Keys      [][]byte       // the keyring's keys, decoded, the first is primary; nil when insecure
	Insecure  bool           // `insecure: true` runs without encryption (explicit opt-out)
	Profile   string         // `profile`: lan (default) | lan-fast | wan | local
	Timing    GossipTiming   // `timing:` overrides; zero fields = the profile's value
	Arbitrate bool           // `arbitrate`, default true (split-brain arbitration, see issue 13)
	Rejoin    time.Duration  // `rejoin_interval`, default 30s: how often the join list is retried
	// DirectFanout is `direct_fanout`, default 64: how many members a
	// new row goes to straight from its origin besides its gossip; 0 =
	// gossip only.
	DirectFanout int
}

// GossipTiming overrides memberlist timings of the profile; every field is
// optional and 0 means the profile's value.
type GossipTiming struct {
	ProbeInterval    time.Duration // probe_interval
	ProbeTimeout     time.Duration // probe_timeout (must be < probe_interval when both are set)
	GossipInterval   time.Duration // gossip_interval
	GossipNodes      int           // gossip_nodes
	PushPullInterval time.Duration // push_pull_interval
	SuspicionMult    int           // suspicion_mult
	RetransmitMult   int           // retransmit_mult
	DeadNodeReclaim  time.Duration // dead_node_reclaim (default applied by the driver, not here)
	GossipToTheDead  time.Duration // gossip_to_the_dead
}

// Defaults of the gossip section.
const (
	DefaultGossipPort    = 7946
	DefaultGossipCluster = "vigil"
	DefaultGossipProfile = "lan"
	DefaultGossipRejoin  = 30 * time.Second
	// DefaultDirectFanout is direct_fanout's default (every member of a
	// fleet of tens of directors); MaxDirectFanout bounds it.
	DefaultDirectFanout = 64
	MaxDirectFanout     = 1024
	// GossipKeySize is the size of a keyring key: memberlist's AES-256.
	GossipKeySize = 32
	// MaxNodeNameGossip bounds node.name with gossip on: it is the
	// memberlist node name, carried in every membership message.
	MaxNodeNameGossip = 128
	// maxKeyringSize bounds a keyring file: thousands of keys, far more
	// than a rotation ever holds.
	maxKeyringSize = 1 << 20
)

var gossipHints = map[string]string{
	"bind_addr":      `the key is "bind" (ADDRESS:PORT)`,
	"bind_port":      `give the port in "bind" (ADDRESS:PORT)`,
	"advertise_addr": `the key is "advertise" (ADDRESS:PORT)`,
	"label":          `memberlist's label is "cluster" here`,
	"secret_key":     "put the key in a keyring file: keyring: FILE",
	"encrypt":        "put the key in a keyring file: keyring: FILE",
	"rejoin":         `the key is "rejoin_interval"`,
}

// gossip decodes the gossip: section; node is this node's, already decoded.
func (d *decoder) gossip(o *object, node Node) *Gossip {
	g := &Gossip{
		Bind:      netip.AddrPortFrom(netip.IPv4Unspecified(), DefaultGossipPort),
		Cluster:   DefaultGossipCluster,
		Profile:   DefaultGossipProfile,
		Arbitrate: true,
		Rejoin:    DefaultGossipRejoin,

		DirectFanout: DefaultDirectFanout,
	}
	if f := getString(o, "bind"); f.ok() {
		if ap, msg := gossipAddrPort(f.V); msg != "" {
			f.reject(d, "%s", msg)
		} else {
			g.Bind = ap
		}
	}
	if f := getString(o, "advertise"); f.ok() {
		ap, msg := gossipAddrPort(f.V)
		if msg == "" && ap.Addr().IsUnspecified() {
			msg = "is the unspecified address: advertise the address the other members reach this node at"
		}
		if msg != "" {
			f.reject(d, "%s", msg)
		} else {
			g.Advertise = ap
		}
	}
	if list, p, st := getList(o, "join"); st == good {
		for i, raw := range list {
			s, ok := raw.(string)
			if !ok {
				d.bad(index(p, i), raw, "must be HOST:PORT, a string")
				continue
			}
			if msg := joinProblem(s); msg != "" {
				d.bad(index(p, i), raw, "%s", msg)
				continue
			}
			g.Join = append(g.Join, strings.TrimSpace(s))
		}
	}
	if f := getString(o, "cluster"); f.ok() {
		if msg := clusterProblem(f.V); msg != "" {
			f.reject(d, "%s", msg)
		} else {
			g.Cluster = f.V
		}
	}
	g.Profile = d.choice(o, "profile", DefaultGossipProfile, "lan", "lan-fast", "wan", "local")
	g.Arbitrate = getBool(o, "arbitrate").or(true)
	if f := getDuration(o, "rejoin_interval"); f.ok() {
		if f.V < time.Second {
			f.reject(d, "is below 1s: the join list would be hammered")
		} else {
			g.Rejoin = f.V
		}
	}
	if f := getInt(o, "direct_fanout"); f.ok() {
		if f.V < 0 || f.V > MaxDirectFanout {
			f.reject(d, "is %d: want 0 (gossip only) to %d", f.V, MaxDirectFanout)
		} else {
			g.DirectFanout = int(f.V)
		}
	}
	if to, st := getObject(o, "timing"); st == good {
		g.Timing = d.gossipTiming(to)
	}
	d.keyring(o, g)
	o.unknown(nil, gossipHints)

	// node.name is the memberlist node name: IsNodeName already keeps out
	// white space and control characters; memberlist wants it short.
	if n := node.Name; n != "" && IsNodeName(n) && len(n) > MaxNodeNameGossip {
		d.bad("node.name", n, "is %d bytes: with gossip: it is the memberlist node name, at most %d bytes", len(n), MaxNodeNameGossip)
	}
	return g
}

// keyring reads keyring and insecure: encryption unless refused in so
// many words.
func (d *decoder) keyring(o *object, g *Gossip) {
	kr := getString(o, "keyring")
	insecure := getBool(o, "insecure")
	g.Insecure = insecure.or(false)
	switch {
	case kr.set() && insecure.ok() && insecure.V:
		insecure.reject(d, "together with keyring is ambiguous: remove insecure to encrypt, or keyring to run in the clear")
	case !kr.set() && !g.Insecure:
		var from []string
		for _, k := range EnvKeys() {
			if ev, ok := d.env[k]; ok && strings.HasPrefix(k, "gossip.") {
				from = append(from, "$"+ev)
			}
		}
		by := ""
		if len(from) > 0 {
			by = " (gossip is on: " + strings.Join(from, ", ") + " set)"
		}
		d.fail(o.sub("keyring"), "gossip without a keyring is refused: set keyring: FILE (create one with `vigil gossip keygen > FILE`) or insecure: true%s", by)
	case !kr.ok():
	case !filepath.IsAbs(kr.V):
		kr.reject(d, "must be an absolute path")
	default:
		keys, err := ReadKeyring(kr.V)
		if err != nil {
			kr.reject(d, "cannot be used: %v", err)
			return
		}
		g.Keyring, g.Keys = kr.V, keys
		if fi, err := os.Stat(kr.V); err == nil && fi.Mode().Perm()&0o077 != 0 {
			d.warn(kr.path(), "keyring %s is readable by other users (mode %04o): chmod 600", kr.V, fi.Mode().Perm())
		}
	}
}

func (d *decoder) gossipTiming(o *object) GossipTiming {
	var t GossipTiming
	for _, k := range []struct {
		key string
		v   *time.Duration
	}{
		{"probe_interval", &t.ProbeInterval}, {"probe_timeout", &t.ProbeTimeout},
		{"gossip_interval", &t.GossipInterval}, {"push_pull_interval", &t.PushPullInterval},
		{"dead_node_reclaim", &t.DeadNodeReclaim}, {"gossip_to_the_dead", &t.GossipToTheDead},
	} {
		f := getDuration(o, k.key)
		if !f.ok() {
			continue
		}
		if f.V <= 0 {
			f.reject(d, "must be above 0 (leave the key out for the profile's value)")
			continue
		}
		*k.v = f.V
		if k.key == "probe_timeout" && t.ProbeInterval > 0 && f.V >= t.ProbeInterval {
			f.reject(d, "is not shorter than probe_interval (%s): a probe must end before the next starts", t.ProbeInterval)
			t.ProbeTimeout = 0
		}
	}
	for _, k := range []struct {
		key string
		v   *int
	}{{"gossip_nodes", &t.GossipNodes}, {"suspicion_mult", &t.SuspicionMult}, {"retransmit_mult", &t.RetransmitMult}} {
		f := getInt(o, k.key)
		if !f.ok() {
			continue
		}
		if f.V < 1 || f.V > 1<<16 {
			f.reject(d, "is out of range 1..65536")
			continue
		}
		*k.v = int(f.V)
	}
	o.unknown(nil, nil)
	return t
}

// gossipAddrPort parses bind and advertise: an IP address and a port.
func gossipAddrPort(s string) (netip.AddrPort, string) {
	ap, err := netip.ParseAddrPort(strings.TrimSpace(s))
	switch {
	case err != nil:
		return ap, "is not ADDRESS:PORT (IPv6: [ADDRESS]:PORT)"
	case ap.Port() == 0:
		return ap, "has port 0: use 1..65535"
	case ap.Addr().Zone() != "":
		return ap, "has a zone: not allowed here"
	case ap.Addr().IsMulticast():
		return ap, "is a multicast address"
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ""
}

// joinProblem checks a join entry: HOST:PORT, the host an IP address or a
// DNS name (resolved by the driver when it joins).
func joinProblem(s string) string {
	host, port, err := net.SplitHostPort(strings.TrimSpace(s))
	if err != nil {
		return "is not HOST:PORT (IPv6: [ADDRESS]:PORT): the port is required"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "has no valid port: use 1..65535"
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.IsUnspecified() || a.IsMulticast() {
			return "is not an address a member can be reached at"
		}
		return ""
	}
	if host == "" || len(host) > 253 || strings.ContainsFunc(host, func(r rune) bool {
		return !(r < utf8.RuneSelf && (r == '.' || r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)))
	}) {
		return "has a host that is neither an IP address nor a DNS name"
	}
	return ""
}

// clusterProblem checks the memberlist label: memberlist refuses one over
// 255 bytes; an empty one would merge with every unlabelled fleet.
func clusterProblem(s string) string {
	switch {
	case s == "":
		return "is empty: fleets on one network would merge; leave the key out for \"vigil\""
	case len(s) > 255:
		return fmt.Sprintf("is %d bytes, over memberlist's 255", len(s))
	case strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }):
		return "has white space or unprintable characters"
	}
	return ""
}

// ReadKeyring reads a gossip keyring file: one key per line in standard
// base64, each decoding to GossipKeySize bytes; blank lines and lines
// starting with # are ignored. The first key is the primary. An error
// names the file and line of a bad key, never the key material; a file
// with no key or a key given twice is an error.
func ReadKeyring(path string) ([][]byte, error) {
	data, tooBig, err := readLimited(path, maxKeyringSize)
	switch {
	case err != nil:
		return nil, fmt.Errorf("keyring: %w", err)
	case tooBig:
		return nil, fmt.Errorf("keyring %s: larger than %d bytes: not a keyring", path, maxKeyringSize)
	}
	var keys [][]byte
	var lines []int
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		n := i + 1
		key := make([]byte, base64.StdEncoding.DecodedLen(len(line)))
		// The decoder's error quotes no input, but say nothing of it.
		m, err := base64.StdEncoding.Decode(key, line)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%s:%d: the key is not base64 (standard encoding)", path, n)
		case m != GossipKeySize:
			return nil, fmt.Errorf("%s:%d: the key is %d bytes, want %d (AES-256)", path, n, m, GossipKeySize)
		}
		key = key[:m]
		for j, k := range keys {
			if subtle.ConstantTimeCompare(k, key) == 1 {
				return nil, fmt.Errorf("%s:%d: the key of line %d again", path, n, lines[j])
			}
		}
		keys, lines = append(keys, key), append(lines, n)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("keyring %s has no key: write one base64 AES-256 key per line (`vigil gossip keygen`)", path)
	}
	return keys, nil
}

// WriteKeyring replaces the keyring file at path with keys, the first the
// primary, as ReadKeyring reads them. The file is written whole or not at
// all: a temporary file in the same directory, mode 0600, synced, then
// renamed over path.
func WriteKeyring(path string, keys [][]byte) error {
	if len(keys) == 0 {
		return fmt.Errorf("keyring %s: no key to write", path)
	}
	var b bytes.Buffer
	b.WriteString("# vigil gossip keyring: one base64 AES-256 key per line, the first is primary\n")
	for i, k := range keys {
		if len(k) != GossipKeySize {
			return fmt.Errorf("keyring %s: key %d is %d bytes, want %d", path, i+1, len(k), GossipKeySize)
		}
		b.WriteString(base64.StdEncoding.EncodeToString(k))
		b.WriteByte('\n')
	}
	if err := writeDurable(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("keyring %s: %w", path, err)
	}
	return nil
}

// writeDurable writes data to path atomically and durably: a temporary
// file in the same directory with mode, synced, renamed over path, and
// the directory synced (a rename lasts a power cut only then).
func writeDurable(path string, data []byte, mode os.FileMode) error {
	return writeSynced(path, data, mode, true)
}

// writeSynced is writeDurable; without syncDir the new name is durable
// only once something syncs the directory.
func writeSynced(path string, data []byte, mode os.FileMode, syncDir bool) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if !syncDir {
		return nil
	}
	if dh, err := os.Open(dir); err == nil {
		serr := dh.Sync()
		dh.Close()
		if serr != nil && !errors.Is(serr, os.ErrInvalid) {
			return fmt.Errorf("sync directory: %w", serr)
		}
	}
	return nil
}
