package kaimport

import (
	"bytes"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"vigil/internal/kaconf"
)

// timing is the checker timing keepalived inherits virtual server → real
// server → checker (keepalived.conf(5): "VS value is default for RS, RS
// value is default for checkers").
type timing struct {
	delayLoop, connectTimeout, retry, delayBeforeRetry, warmup, virtualhost *kaconf.Node
}

func (tm timing) with(n *kaconf.Node) (timing, bool) {
	switch n.Keyword {
	case "delay_loop":
		tm.delayLoop = n
	case "connect_timeout":
		tm.connectTimeout = n
	case "retry", "nb_get_retry":
		tm.retry = n
	case "delay_before_retry":
		tm.delayBeforeRetry = n
	case "warmup":
		tm.warmup = n
	case "virtualhost":
		tm.virtualhost = n
	default:
		return tm, false
	}
	return tm, true
}

// inherit takes c into tm when it is a timing keyword, noting the legacy
// nb_get_retry.
func (t *translator) inherit(tm timing, c *kaconf.Node) (timing, bool) {
	next, ok := tm.with(c)
	if ok && c.Keyword == "nb_get_retry" {
		t.note(c, "nb_get_retry is keepalived's legacy name of retry")
	}
	return next, ok
}

// vsNotes are notes given once per virtual server.
type vsNotes struct {
	delayLoop, connectTimeout, http10 bool
}

var vsReasons = map[string]string{
	"smtp_alert":       "vigil sends no email",
	"snmp_name":        "vigil has no SNMP",
	"net_mask":         "not a keepalived 2 keyword (ignored by keepalived)",
	"hashed":           "legacy ipvsadm flag with no effect",
	"lvs_flush":        "belongs to global_defs",
	"nat_mask":         "not a keepalived 2 keyword (ignored by keepalived)",
	"log_all_failures": "vigil logs every check state change",
}

var schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos"}

// lb assembles the lb: section's virtual servers.
func (t *translator) lb() *yaml.Node {
	m := mapping()
	list := sequence()
	names := map[string]bool{}
	for _, n := range t.servers {
		for _, vs := range t.virtualServer(n, names) {
			item(list, vs, n)
		}
	}
	if len(list.Content) > 0 {
		addMap(m, "virtual_servers", list, nil)
	}
	return m
}

// lbGlobals adds global_defs' LVS settings to lb:, once the instances
// are known (lvs_sync_daemon follows one).
func (t *translator) lbGlobals(m *yaml.Node) {
	g := t.g
	if n := g.syncDaemon; n != nil {
		t.syncDaemon(m, n)
	}
	if g.flush != nil {
		add(m, "foreign_services", str("remove"), g.flush)
		t.note(g.flush, "%s: vigil owns the whole IPVS table (foreign_services: remove): services it did not create are removed", g.flush.Keyword)
	}
	if g.timeouts != nil {
		addMap(m, "timeouts", g.timeouts, nil)
		g.timeouts.Style = yaml.FlowStyle
	}
	if g.rsInit != nil {
		add(m, "rs_init_notifies", boolean(true), g.rsInit)
	}
	order(m, []string{"sync_daemon", "foreign_services", "timeouts", "rs_init_notifies", "virtual_servers"})
}

// syncDaemon translates lvs_sync_daemon IF [inst] VI [id N] [maxlen N]
// [port N] [ttl N] [group ADDR].
func (t *translator) syncDaemon(m *yaml.Node, n *kaconf.Node) {
	if len(n.Args) < 1 {
		t.drop(n, "", "needs an interface")
		return
	}
	sd := mapping()
	sd.Style = yaml.FlowStyle
	add(sd, "interface", str(n.Args[0]), nil)
	args := n.Args[1:]
	var inst string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "inst":
			if i+1 < len(args) {
				inst = args[i+1]
				i++
			}
		case "id":
			if i+1 < len(args) {
				if v, ok := parseInt(args[i+1], 0, 255); ok {
					add(sd, "sync_id", integer(v), nil)
				} else {
					t.drop(n, "lvs_sync_daemon id", "is not 0..255")
				}
				i++
			}
		case "maxlen", "port", "ttl", "group":
			t.drop(n, "lvs_sync_daemon "+a, "vigil runs the kernel's sync daemon with its defaults (port 8848, group 224.0.0.81)")
			i++
		default:
			if inst == "" && i == 0 {
				inst = a // "inst" may be omitted
				continue
			}
			t.drop(n, "lvs_sync_daemon "+a, "is not a keepalived lvs_sync_daemon option")
		}
	}
	if inst == "" {
		t.drop(n, "", "names no vrrp_instance: vigil runs the sync daemon as master on the instance's master only")
		return
	}
	if _, ok := t.byName[inst]; !ok {
		t.drop(n, "", "%q is not a translated vrrp_instance", inst)
		return
	}
	add(sd, "instance", str(inst), nil)
	order(sd, []string{"interface", "instance", "sync_id"})
	sd.LineComment = at(n)
	set(m, "sync_daemon", sd)
}

// vsKey is one service a virtual_server line stands for.
type vsKey struct {
	addrs  []string // ADDRESS:PORT entries (a group may give several)
	fwmark string
	family string // ipv4|ipv6, with fwmark
	port   int
	fam    int
	name   string
}

// virtualServer translates one virtual_server: one vigil virtual server,
// or several for a group whose addresses differ in port or family.
func (t *translator) virtualServer(n *kaconf.Node, names map[string]bool) []*yaml.Node {
	keys := t.vsKeys(n)
	if len(keys) == 0 {
		return nil
	}
	body, ok := t.vsBody(n, keys[0])
	if !ok {
		return nil
	}
	var out []*yaml.Node
	for _, k := range keys {
		vs := mapping()
		name := k.name
		for i := 2; names[name]; i++ {
			name = k.name + "-" + strconv.Itoa(i)
		}
		names[name] = true
		add(vs, "name", str(name), nil)
		switch {
		case k.fwmark != "":
			add(vs, "fwmark", integer(mustInt(k.fwmark)), n)
			if k.family == "ipv6" {
				add(vs, "family", str("ipv6"), n)
			}
		case len(k.addrs) == 1 && n.Args[0] != "group":
			add(vs, "address", str(k.addrs[0]), n)
		default:
			add(vs, "addresses", flow(k.addrs), n)
		}
		vs.Content = append(vs.Content, body.Content...)
		if k.fwmark != "" {
			// protocol is not used by a fwmark service.
			del(vs, "protocol")
		}
		out = append(out, vs)
	}
	return out
}

func del(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// vsKeys reads the service(s) of a virtual_server line.
func (t *translator) vsKeys(n *kaconf.Node) []vsKey {
	if !n.Block || len(n.Args) == 0 {
		t.drop(n, "", "needs IP [PORT], fwmark N or group NAME, and a { } block")
		return nil
	}
	proto := "tcp"
	if p := n.Find("protocol"); p != nil {
		proto = strings.ToLower(first(p))
	} else {
		proto = "udp"
	}
	switch n.Args[0] {
	case "fwmark":
		if len(n.Args) != 2 {
			t.drop(n, "", "needs fwmark N")
			return nil
		}
		if _, ok := parseInt(n.Args[1], 1, 0xffffffff); !ok {
			t.drop(n, "", "fwmark %q is not 1..4294967295", n.Args[1])
			return nil
		}
		k := vsKey{fwmark: n.Args[1], name: "fwmark-" + n.Args[1]}
		if f := n.Find("ip_family"); f != nil && first(f) == "inet6" {
			k.family = "ipv6"
		}
		return []vsKey{k}
	case "group":
		if len(n.Args) != 2 {
			t.drop(n, "", "needs group NAME")
			return nil
		}
		g := t.vsGroups[n.Args[1]]
		if g == nil {
			t.drop(n, "", "virtual_server_group %q is not defined", n.Args[1])
			return nil
		}
		return t.groupKeys(g, proto+"-"+sanitize(n.Args[1], 50))
	}
	a, err := netip.ParseAddr(n.Args[0])
	if err != nil || len(n.Args) > 2 {
		t.drop(n, "", "%q is not IP [PORT]", strings.Join(n.Args, " "))
		return nil
	}
	port := 0
	if len(n.Args) == 2 {
		p, ok := parseInt(n.Args[1], 0, 65535)
		if !ok {
			t.drop(n, "", "port %q is not 0..65535", n.Args[1])
			return nil
		}
		port = int(p)
	}
	return []vsKey{{addrs: []string{hostPort(a, port)}, port: port, fam: famOf(a),
		name: proto + "-" + strings.ReplaceAll(a.String(), ":", "-") + "-" + strconv.Itoa(port)}}
}

func famOf(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

// groupKeys expands a virtual_server_group into services of one family
// and port each (vigil's addresses: share them; a group with several is
// split into one virtual server per family and port).
func (t *translator) groupKeys(g *kaconf.Node, name string) []vsKey {
	var keys []vsKey
	byFP := map[[2]int]int{}
	var marks []*kaconf.Node
	for _, e := range g.Children {
		if e.Keyword == "fwmark" {
			marks = append(marks, e)
			continue
		}
		port := 0
		if len(e.Args) > 0 {
			p, ok := parseInt(e.Args[0], 0, 65535)
			if !ok {
				t.drop(e, "virtual_server_group "+e.Keyword, "port %q is not 0..65535", e.Args[0])
				continue
			}
			port = int(p)
		}
		addrs, fam, ok := expandGroupEntry(e.Keyword)
		if !ok {
			t.drop(e, "virtual_server_group "+e.Keyword, "is not an address, a range or a prefix of at most 256 addresses")
			continue
		}
		i, seen := byFP[[2]int{fam, port}]
		if !seen {
			i = len(keys)
			byFP[[2]int{fam, port}] = i
			keys = append(keys, vsKey{port: port, fam: fam, name: name})
			if i > 0 {
				keys[i].name = name + "-" + strconv.Itoa(port)
				t.note(e, "group %s: addresses with port %d (IPv%d) are a virtual server of their own: vigil's addresses share one port and family", g.Args[0], port, fam)
			}
		}
		for _, a := range addrs {
			keys[i].addrs = append(keys[i].addrs, a+":"+strconv.Itoa(port))
		}
		if fam == 6 {
			for j, a := range keys[i].addrs[len(keys[i].addrs)-len(addrs):] {
				ap, _ := netip.ParseAddr(strings.TrimSuffix(a, ":"+strconv.Itoa(port)))
				keys[i].addrs[len(keys[i].addrs)-len(addrs)+j] = hostPort(ap, port)
			}
		}
	}
	switch {
	case len(marks) == 1 && len(keys) == 0:
		k := vsKey{fwmark: first(marks[0]), name: name}
		if len(marks[0].Args) > 1 && marks[0].Args[1] == "inet6" {
			k.family = "ipv6"
		}
		return []vsKey{k}
	default:
		for _, mk := range marks {
			t.drop(mk, "virtual_server_group fwmark", "vigil's group is addresses only: give the fwmark a virtual_server fwmark of its own")
		}
	}
	if len(keys) == 0 {
		t.drop(g, "", "has no address vigil can use")
	}
	return keys
}

// expandGroupEntry reads IP, A.B.C.D-E (kept as vigil reads it),
// A.B.C.D-E.F.G.H or a prefix (written out, at most 256 addresses).
func expandGroupEntry(s string) ([]string, int, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return []string{a.String()}, famOf(a), true
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		p = p.Masked()
		if p.Addr().BitLen()-p.Bits() > 8 {
			return nil, 0, false
		}
		var out []string
		for a := p.Addr(); p.Contains(a); a = a.Next() {
			out = append(out, a.String())
		}
		return out, famOf(p.Addr()), true
	}
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		return nil, 0, false
	}
	first, err := netip.ParseAddr(lo)
	if err != nil {
		return nil, 0, false
	}
	var last netip.Addr
	if first.Is4() && !strings.Contains(hi, ".") {
		if n, err := strconv.Atoi(hi); err == nil && n >= int(first.As4()[3]) && n <= 255 {
			return []string{first.String() + "-" + hi}, 4, true
		}
		return nil, 0, false
	}
	if last, err = netip.ParseAddr(hi); err != nil || last.Less(first) || famOf(last) != famOf(first) {
		return nil, 0, false
	}
	var out []string
	for a := first; !last.Less(a); a = a.Next() {
		if len(out) == 256 {
			return nil, 0, false
		}
		out = append(out, a.String())
	}
	return out, famOf(first), true
}

// vsBody translates everything of a virtual_server but its service.
func (t *translator) vsBody(n *kaconf.Node, key vsKey) (*yaml.Node, bool) {
	m := mapping()
	var tm timing
	var notes vsNotes
	notify := mapping()
	var sorry, sorryMethod *kaconf.Node
	var reals []*kaconf.Node
	fwd := ""
	for _, c := range n.Children {
		if next, ok := t.inherit(tm, c); ok {
			tm = next
			continue
		}
		switch c.Keyword {
		case "protocol":
			switch p := strings.ToLower(first(c)); p {
			case "tcp", "udp", "sctp":
				add(m, "protocol", str(p), c)
			default:
				t.drop(c, "", "is not TCP, UDP or SCTP")
			}
		case "lvs_sched", "lb_algo":
			s := strings.ToLower(first(c))
			if !slices.Contains(schedulers, s) {
				t.drop(c, "", "%q is not an IPVS scheduler: vigil uses its default, wlc (as keepalived)", first(c))
				continue
			}
			add(m, "scheduler", str(s), c)
			if c.Keyword == "lb_algo" {
				t.note(c, "lb_algo is keepalived's legacy name of lvs_sched (scheduler)")
			}
		case "flag-1", "flag-2", "flag-3", "sh-port", "sh-fallback", "mh-port", "mh-fallback":
			f := get(m, "scheduler_flags")
			if f == nil {
				f = flow(nil)
				add(m, "scheduler_flags", f, c)
			}
			f.Content = append(f.Content, str(c.Keyword))
		case "ops":
			add(m, "one_packet", boolean(true), c)
		case "lvs_method", "lb_kind":
			fwd = t.forward(m, c)
			if c.Keyword == "lb_kind" {
				t.note(c, "lb_kind is keepalived's legacy name of lvs_method (forward)")
			}
		case "persistence_timeout":
			secs := int64(360)
			if len(c.Args) > 0 {
				v, ok := parseInt(first(c), 0, 0xffffffff)
				if !ok {
					t.drop(c, "", "is not a number of seconds")
					continue
				}
				secs = v
			} else {
				t.note(c, "persistence_timeout without a value is keepalived's 6 minutes, persistence: 360s")
			}
			if secs > 0 {
				add(m, "persistence", str(duration(time.Duration(secs)*time.Second)), c)
			}
		case "persistence_granularity":
			if bits, ok := maskBits(first(c), key.fam == 6 || key.family == "ipv6"); ok {
				add(m, "persistence_granularity", integer(int64(bits)), c)
			} else {
				t.drop(c, "", "%q is not a contiguous netmask or prefix length", first(c))
			}
		case "persistence_engine":
			add(m, "persistence_engine", str(first(c)), c)
		case "ha_suspend":
			add(m, "ha_suspend", boolean(true), c)
		case "alpha":
			add(m, "alpha", boolean(true), c)
		case "omega":
			add(notify, "omega", boolean(true), c)
		case "quorum", "hysteresis":
			if v, ok := parseInt(first(c), 0, 1<<24); ok {
				add(m, c.Keyword, integer(v), c)
			} else {
				t.drop(c, "", "is not a number")
			}
		case "quorum_up", "quorum_down":
			argv, user, ok := t.command(c)
			if !ok {
				continue
			}
			add(notify, c.Keyword, flow(argv), c)
			if user != "" {
				if prev := get(notify, "user"); prev != nil && prev.Value != user {
					t.drop(c, c.Keyword+" "+user, "vigil runs a virtual server's notify commands as one user, %s", prev.Value)
				} else {
					add(notify, "user", str(user), c)
				}
			}
		case "ip_family":
			if key.fwmark == "" {
				t.drop(c, "", "is for fwmark services only (the address gives the family)")
			}
		case "sorry_server":
			sorry = c
		case "sorry_server_lvs_method":
			sorryMethod = c
		case "sorry_server_inhibit":
			add(m, "sorry_server_inhibit", boolean(true), c)
		case "inhibit_on_failure":
			if v, ok := parseBool(c.Args); ok && v {
				add(m, "inhibit_on_failure", boolean(true), c)
			}
		case "real_server":
			reals = append(reals, c)
		default:
			if r, ok := vsReasons[c.Keyword]; ok {
				t.drop(c, "", "%s", r)
			} else {
				t.drop(c, "", "no vigil equivalent in a virtual_server")
			}
		}
	}
	if key.fwmark == "" && get(m, "protocol") == nil {
		add(m, "protocol", str("udp"), n)
		t.note(n, "no protocol: keepalived 2.2 uses UDP (\"no protocol set - defaulting to UDP\"), so protocol: udp is written; vigil requires it. Write protocol TCP if TCP was meant")
	}
	if sorry != nil {
		t.sorry(m, sorry, sorryMethod, key)
	} else if sorryMethod != nil {
		t.drop(sorryMethod, "", "there is no sorry_server")
	}
	rs := sequence()
	var checks []*yaml.Node
	allOne := true
	for _, r := range reals {
		rm, cs := t.realServer(r, key, tm, fwd, &notes)
		if rm == nil {
			continue
		}
		if len(cs) != 1 {
			allOne = false
		}
		checks = append(checks, cs...)
		if len(cs) == 1 {
			set(rm, "check", cs[0])
		} else if len(cs) > 1 {
			l := sequence()
			l.Content = cs
			set(rm, "check", l)
		}
		item(rs, rm, r)
	}
	// The same single check on every real server is written once, as the
	// virtual server's check.
	if allOne && len(rs.Content) > 1 && sameChecks(checks) {
		k := str("check")
		k.HeadComment = "the same check on every real server, written once (" + at(reals[0]) + " and the others)"
		m.Content = append(m.Content, k, checks[0])
		for _, r := range rs.Content {
			del(r, "check")
		}
	}
	if len(rs.Content) > 0 {
		addMap(m, "real_servers", rs, nil)
	} else if sorry == nil {
		t.drop(n, "", "has no real server vigil can carry (and no sorry_server)")
		return nil, false
	}
	if len(notify.Content) > 0 {
		set(m, "notify", notify)
	}
	order(m, []string{"protocol", "scheduler", "scheduler_flags", "one_packet", "forward", "tunnel", "persistence",
		"persistence_granularity", "persistence_engine", "quorum", "hysteresis", "sorry_server", "sorry_server_inhibit",
		"inhibit_on_failure", "alpha", "ha_suspend", "notify", "check", "real_servers"})
	return m, true
}

// sameChecks reports whether the checks are equal but for their comments.
func sameChecks(cs []*yaml.Node) bool {
	first := plain(cs[0])
	for _, c := range cs[1:] {
		if !bytes.Equal(plain(c), first) {
			return false
		}
	}
	return true
}

// plain encodes n without comments.
func plain(n *yaml.Node) []byte {
	var strip func(*yaml.Node) *yaml.Node
	strip = func(n *yaml.Node) *yaml.Node {
		c := *n
		c.HeadComment, c.LineComment, c.FootComment = "", "", ""
		c.Content = nil
		for _, k := range n.Content {
			c.Content = append(c.Content, strip(k))
		}
		return &c
	}
	out, _ := yaml.Marshal(strip(n))
	return out
}

// forward translates lvs_method NAT|DR|TUN [type ipip|gue port N|gre]
// [nocsum|csum|remcsum] into forward: and tunnel:.
func (t *translator) forward(m *yaml.Node, c *kaconf.Node) string {
	f := strings.ToLower(first(c))
	switch f {
	case "nat", "dr":
		add(m, "forward", str(f), c)
		if len(c.Args) > 1 {
			t.drop(c, "", "takes no options with %s", first(c))
		}
		return f
	case "tun":
	default:
		t.drop(c, "", "%q is not NAT, DR or TUN", first(c))
		return ""
	}
	add(m, "forward", str("tun"), c)
	tun := mapping()
	tun.Style = yaml.FlowStyle
	args := c.Args[1:]
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "type":
			if i+1 < len(args) {
				add(tun, "type", str(args[i+1]), nil)
				i++
			}
		case "port":
			if i+1 < len(args) {
				if p, ok := parseInt(args[i+1], 1, 65535); ok {
					add(tun, "port", integer(p), nil)
				}
				i++
			}
		case "csum", "remcsum":
			add(tun, "checksum", str(args[i]), nil)
		case "nocsum":
		default:
			t.drop(c, "", "%q is not a tunnel option", args[i])
		}
	}
	if len(tun.Content) > 0 {
		order(tun, []string{"type", "port", "checksum"})
		tun.LineComment = at(c)
		set(m, "tunnel", tun)
	}
	return "tun"
}

// sorry translates sorry_server IP [PORT] (and its lvs method).
func (t *translator) sorry(m *yaml.Node, n, method *kaconf.Node, key vsKey) {
	addr, ok := destAddr(n, key)
	if !ok {
		t.drop(n, "", "%q is not IP [PORT]", strings.Join(n.Args, " "))
		return
	}
	if method == nil {
		add(m, "sorry_server", str(addr), n)
		return
	}
	s := mapping()
	s.Style = yaml.FlowStyle
	add(s, "address", str(addr), nil)
	t.forward(s, &kaconf.Node{Keyword: "sorry_server_lvs_method", Args: method.Args, Pos: method.Pos})
	for _, k := range []*yaml.Node{get(s, "forward"), get(s, "tunnel")} {
		if k != nil {
			k.LineComment = ""
		}
	}
	s.LineComment = at(n)
	set(m, "sorry_server", s)
}

// destAddr reads IP [PORT] of a real or sorry server: ADDRESS:PORT, or
// the address alone (the virtual server's port).
func destAddr(n *kaconf.Node, key vsKey) (string, bool) {
	if len(n.Args) < 1 || len(n.Args) > 2 {
		return "", false
	}
	a, err := netip.ParseAddr(n.Args[0])
	if err != nil {
		return "", false
	}
	if len(n.Args) == 1 {
		return a.String(), true
	}
	p, ok := parseInt(n.Args[1], 0, 65535)
	if !ok {
		return "", false
	}
	return hostPort(a, int(p)), true
}

var rsReasons = map[string]string{
	"smtp_alert": "vigil sends no email",
	"snmp_name":  "vigil has no SNMP",
	"BFD_CHECK":  "vigil has no BFD",
}

// realServer translates one real_server; it returns the mapping and its
// checks (not yet set on it).
func (t *translator) realServer(n *kaconf.Node, key vsKey, tm timing, vsFwd string, notes *vsNotes) (*yaml.Node, []*yaml.Node) {
	addr, ok := destAddr(n, key)
	if !ok || !n.Block {
		t.drop(n, "", "%q is not IP [PORT] with a { } block", strings.Join(n.Args, " "))
		return nil, nil
	}
	m := mapping()
	var checkers []*kaconf.Node
	fwd := vsFwd
	for _, c := range n.Children {
		if next, ok := t.inherit(tm, c); ok {
			tm = next
			continue
		}
		switch c.Keyword {
		case "weight":
			if w, ok := parseInt(first(c), 0, 65535); ok {
				add(m, "weight", integer(w), c)
			} else {
				t.drop(c, "", "is not 0..65535")
			}
		case "lvs_method", "lb_kind":
			fwd = t.forward(m, c)
		case "notify_up", "notify_down":
			argv, user, ok := t.command(c)
			if !ok {
				continue
			}
			add(m, c.Keyword, flow(argv), c)
			if user != "" {
				t.drop(c, c.Keyword+" "+user, "vigil runs real-server notify commands as the virtual server's notify user")
			}
		case "uthreshold", "lthreshold":
			if v, ok := parseInt(first(c), 0, 0xffffffff); ok {
				add(m, map[string]string{"uthreshold": "upper_threshold", "lthreshold": "lower_threshold"}[c.Keyword], integer(v), c)
			} else {
				t.drop(c, "", "is not a number")
			}
		case "inhibit_on_failure", "alpha":
			v, ok := parseBool(c.Args)
			if !ok {
				t.drop(c, "", "is not a boolean")
				continue
			}
			add(m, c.Keyword, boolean(v), c)
		case "TCP_CHECK", "HTTP_GET", "SSL_GET", "UDP_CHECK", "DNS_CHECK", "PING_CHECK", "SMTP_CHECK", "MISC_CHECK", "FILE_CHECK":
			checkers = append(checkers, c)
		default:
			if r, ok := rsReasons[c.Keyword]; ok {
				t.drop(c, "", "%s", r)
			} else {
				t.drop(c, "", "no vigil equivalent in a real_server")
			}
		}
	}
	var checkPort string
	// Direct routing cannot change the port: the kernel sends to the
	// VIP's; keepalived's real-server port then only serves its checks.
	if fwd == "dr" && key.fwmark == "" && key.port != 0 && len(n.Args) == 2 && n.Args[1] != strconv.Itoa(key.port) {
		a, _ := netip.ParseAddr(n.Args[0])
		checkPort = n.Args[1]
		addr = hostPort(a, key.port)
		t.note(n, "direct routing keeps the service's port %d: the real server is %s and its checks go to port %s", key.port, addr, checkPort)
	}
	set(m, "address", str(addr))
	m.Content[len(m.Content)-1].LineComment = at(n)
	var checks []*yaml.Node
	for _, c := range checkers {
		if cm := t.check(c, tm, notes, n); cm != nil {
			if checkPort != "" && get(cm, "port") == nil && get(cm, "type").Value != "ping" && get(cm, "type").Value != "exec" && get(cm, "type").Value != "file" {
				add(cm, "port", integer(mustInt(checkPort)), nil)
			}
			checks = append(checks, cm)
		}
	}
	order(m, []string{"address", "weight", "forward", "tunnel", "inhibit_on_failure", "alpha", "upper_threshold", "lower_threshold", "notify_up", "notify_down"})
	return m, checks
}

func mustInt(s string) int64 {
	v, _ := strconv.ParseInt(s, 10, 64)
	return v
}

var checkTypes = map[string]string{
	"TCP_CHECK": "tcp", "HTTP_GET": "http", "SSL_GET": "https", "UDP_CHECK": "udp", "DNS_CHECK": "dns",
	"PING_CHECK": "ping", "SMTP_CHECK": "smtp", "MISC_CHECK": "exec", "FILE_CHECK": "file",
}

// Defaults keepalived uses and vigil does not share: they are written out.
const (
	kaDelayLoop      = 60 * time.Second
	kaConnectTimeout = 5 * time.Second
)

// check translates one checker block.
func (t *translator) check(n *kaconf.Node, tm timing, notes *vsNotes, rs *kaconf.Node) *yaml.Node {
	typ := checkTypes[n.Keyword]
	m := mapping()
	add(m, "type", str(typ), n)
	var urls []*kaconf.Node
	var sni *kaconf.Node
	proto := ""
	for _, c := range n.Children {
		if next, ok := t.inherit(tm, c); ok {
			tm = next
			continue
		}
		switch c.Keyword {
		case "connect_ip":
			if a, err := netip.ParseAddr(first(c)); err == nil {
				add(m, "address", str(a.String()), c)
			} else {
				t.drop(c, "", "is not an IP address")
			}
		case "connect_port":
			if p, ok := parseInt(first(c), 1, 65535); ok {
				add(m, "port", integer(p), c)
			} else {
				t.drop(c, "", "is not 1..65535")
			}
		case "bindto":
			if a, err := netip.ParseAddr(first(c)); err == nil && typ != "exec" && typ != "file" {
				add(m, "source", str(a.String()), c)
			} else {
				t.drop(c, "", "is not an IP address for a network check")
			}
		case "fwmark":
			if v, ok := parseInt(first(c), 1, 0xffffffff); ok && typ != "ping" && typ != "exec" && typ != "file" {
				add(m, "fwmark", integer(v), c)
			} else {
				t.drop(c, "", "vigil marks the probes of tcp, http, https, udp, dns and smtp checks only, with 1..4294967295")
			}
		case "url":
			urls = append(urls, c)
		case "http_protocol":
			proto = first(c)
			switch proto {
			case "1.0", "1.0C", "1.1":
				add(m, "http_protocol", str(proto), c)
			default:
				t.drop(c, "", "is not 1.0, 1.0C or 1.1")
			}
		case "enable_sni":
			sni = c
		case "sni_name":
			add(m, "sni", str(first(c)), c)
		case "helo_name":
			add(m, "helo_name", str(first(c)), c)
		case "type":
			add(m, "query_type", str(strings.ToUpper(first(c))), c)
		case "name":
			add(m, "query_name", str(first(c)), c)
		case "payload":
			if h, ok := hexPayload(c.Args, false); ok {
				add(m, "payload", str(h), c)
			} else {
				t.drop(c, "", "is not hex digits")
			}
		case "require_reply":
			if len(c.Args) == 0 {
				add(m, "require_reply", boolean(true), c)
			} else if h, ok := hexPayload(c.Args, true); ok {
				add(m, "reply", str(h), c)
			} else {
				t.drop(c, "", "is not hex digits or X")
			}
		case "min_reply_length", "max_reply_length":
			if v, ok := parseInt(first(c), 0, 65535); ok {
				add(m, strings.TrimSuffix(c.Keyword, "_length"), integer(v), c)
			} else {
				t.drop(c, "", "is not 0..65535")
			}
		case "misc_path":
			if argv, ok := t.scriptLine(c); ok {
				add(m, "command", flow(argv), c)
			}
		case "misc_timeout":
			if d, ok := parseTimer(first(c)); ok && d > 0 {
				add(m, "timeout", str(duration(d)), c)
			} else {
				t.drop(c, "", "is not a time in seconds")
			}
		case "misc_dynamic", "dynamic":
			add(m, "dynamic", boolean(true), c)
		case "user":
			add(m, "user", str(userGroup(c.Args)), c)
		case "track_file":
			t.fileCheck(m, c)
		case "weight":
			w, ok := parseInt(first(c), -253, 253)
			if !ok {
				t.drop(c, "", "is outside vigil's -253..253")
				continue
			}
			if len(c.Args) > 1 && c.Args[1] == "reverse" {
				w = -w
				t.note(c, "weight %s reverse is weight %d (vigil's file check has no reverse)", first(c), w)
			}
			add(m, "weight", integer(w), c)
		case "regex_options", "regex_stack", "regex_min_offset", "regex_max_offset":
			t.drop(c, "", "vigil's regexes are Go's RE2, searched in the first MiB of the body (flags inline, e.g. (?i))")
		case "fast_recovery":
			t.drop(c, "", "vigil fetches every url of a check in each run")
		case "tls_compliant":
			t.drop(c, "", "vigil's TLS client closes connections properly")
		case "bind_if", "bind_port":
			t.drop(c, "", "vigil sets a probe's source address only (source)")
		case "alpha":
			t.drop(c, "", "vigil's alpha is per real server or virtual server")
		case "log_all_failures":
			t.drop(c, "", "vigil logs every check state change")
		default:
			t.drop(c, "", "no vigil equivalent in %s", n.Keyword)
		}
	}
	if sni != nil && get(m, "sni") == nil && tm.virtualhost != nil {
		add(m, "sni", str(first(tm.virtualhost)), sni)
	}
	switch typ {
	case "http", "https":
		t.urls(m, urls)
		if tm.virtualhost != nil && get(m, "host") == nil {
			add(m, "host", str(first(tm.virtualhost)), tm.virtualhost)
		}
		if proto == "" {
			add(m, "http_protocol", str("1.0"), nil)
			if !notes.http10 {
				notes.http10 = true
				t.note(n, "no http_protocol: keepalived's checks speak HTTP/1.0, vigil's default is 1.1, so http_protocol: \"1.0\" is written")
			}
		}
	case "exec":
		if get(m, "command") == nil {
			t.drop(n, "", "has no misc_path")
			return nil
		}
	case "file":
		if get(m, "file") == nil {
			t.drop(n, "", "has no track_file vigil can read")
			return nil
		}
	case "udp":
		if (get(m, "require_reply") != nil || get(m, "reply") != nil) && get(m, "max_reply") == nil {
			add(m, "max_reply", integer(255), nil) // keepalived's default max_reply_length
		}
	}
	t.timing(m, typ, tm, notes, rs)
	order(m, []string{"type", "address", "port", "source", "fwmark", "path", "status", "digest", "regex", "regex_no_match", "urls",
		"host", "sni", "http_protocol", "helo_name", "query_type", "query_name", "payload", "require_reply", "reply",
		"min_reply", "max_reply", "command", "user", "dynamic", "file", "weight", "interval", "timeout", "retry_delay", "warmup", "fall"})
	return m
}

// timing writes the inherited checker timing. keepalived's delay_loop
// (60 s) and connect_timeout (5 s) defaults are not vigil's (5 s, 2 s), so
// they are written out; retry N is fall N+1.
func (t *translator) timing(m *yaml.Node, typ string, tm timing, notes *vsNotes, rs *kaconf.Node) {
	if typ == "file" {
		return // keepalived reads the file on change: no timing
	}
	interval := kaDelayLoop
	if tm.delayLoop != nil {
		if d, ok := parseTimer(first(tm.delayLoop)); ok && d >= 10*time.Millisecond && d <= 24*time.Hour {
			interval = d
			add(m, "interval", str(duration(d)), tm.delayLoop)
		} else {
			t.drop(tm.delayLoop, "", "is not 0.01..86400 seconds: keepalived's 60s is written")
			add(m, "interval", str(duration(interval)), nil)
		}
	} else {
		add(m, "interval", str(duration(interval)), nil)
		if !notes.delayLoop {
			notes.delayLoop = true
			t.note(rs, "no delay_loop: keepalived checks every 60s, written as interval: 60s (vigil's default is 5s)")
		}
	}
	if typ != "exec" {
		timeout := kaConnectTimeout
		var from *kaconf.Node
		if tm.connectTimeout != nil {
			if d, ok := parseTimer(first(tm.connectTimeout)); ok && d >= time.Millisecond {
				timeout, from = d, tm.connectTimeout
			} else {
				t.drop(tm.connectTimeout, "", "is not a time in seconds: keepalived's 5s is used")
			}
		} else if !notes.connectTimeout {
			notes.connectTimeout = true
			t.note(rs, "no connect_timeout: keepalived waits 5s, written as timeout: 5s (vigil's default is 2s)")
		}
		if timeout > interval {
			t.note(rs, "connect_timeout %s is longer than delay_loop %s: vigil ends a check before the next is due, so the timeout is %s", duration(timeout), duration(interval), duration(interval))
			timeout = interval
		}
		add(m, "timeout", str(duration(timeout)), from)
	} else if to := get(m, "timeout"); to != nil {
		if d, _ := time.ParseDuration(to.Value); d > interval {
			to.Value = duration(interval)
			t.note(rs, "misc_timeout is longer than delay_loop: vigil ends a check before the next is due, so the timeout is %s", duration(interval))
		}
	}
	if tm.delayBeforeRetry != nil {
		if d, ok := parseTimer(first(tm.delayBeforeRetry)); ok && d <= interval {
			add(m, "retry_delay", str(duration(d)), tm.delayBeforeRetry)
		} else {
			t.drop(tm.delayBeforeRetry, "", "is not 0..delay_loop seconds")
		}
	}
	if tm.warmup != nil {
		if d, ok := parseTimer(first(tm.warmup)); ok && d <= 24*time.Hour {
			add(m, "warmup", str(duration(d)), tm.warmup)
		} else {
			t.drop(tm.warmup, "", "is not 0..86400 seconds")
		}
	}
	if tm.retry != nil {
		if r, ok := parseInt(first(tm.retry), 0, 99); ok {
			add(m, "fall", integer(r+1), tm.retry)
		} else {
			t.drop(tm.retry, "", "is not 0..99 (vigil's fall is retry + 1, at most 100)")
		}
	}
}

// urls writes HTTP_GET/SSL_GET url blocks: one as path, status, digest
// and regex on the check, several as urls:.
func (t *translator) urls(m *yaml.Node, urls []*kaconf.Node) {
	var pages []*yaml.Node
	for _, u := range urls {
		p := mapping()
		for _, c := range u.Children {
			switch c.Keyword {
			case "path":
				add(p, "path", str(first(c)), c)
			case "digest":
				add(p, "digest", str("md5:"+strings.ToLower(first(c))), c)
			case "status_code":
				st := flow(nil)
				for _, a := range c.Args {
					if v, err := strconv.Atoi(a); err == nil {
						st.Content = append(st.Content, integer(int64(v)))
					} else {
						st.Content = append(st.Content, str(a))
					}
				}
				if len(st.Content) == 1 {
					st = st.Content[0]
				}
				add(p, "status", st, c)
			case "virtualhost":
				add(p, "host", str(first(c)), c)
			case "regex":
				if _, err := regexp.Compile(first(c)); err != nil {
					t.drop(c, "", "is not an RE2 regular expression (vigil's): %v", err)
					continue
				}
				add(p, "regex", str(first(c)), c)
			case "regex_no_match":
				add(p, "regex_no_match", boolean(true), c)
			default:
				t.drop(c, "", "vigil's regexes are Go's RE2 with inline flags; no %s", c.Keyword)
			}
		}
		if get(p, "regex_no_match") != nil && get(p, "regex") == nil {
			del(p, "regex_no_match")
		}
		pages = append(pages, p)
	}
	switch {
	case len(pages) == 1 && get(pages[0], "host") == nil:
		m.Content = append(m.Content, pages[0].Content...)
	case len(pages) >= 1:
		l := sequence()
		for _, p := range pages {
			p.Style = yaml.FlowStyle
			l.Content = append(l.Content, p)
		}
		set(m, "urls", l)
	}
}

// fileCheck reads FILE_CHECK's track_file NAME: the file's path and, when
// the checker gives none, its weight.
func (t *translator) fileCheck(m *yaml.Node, c *kaconf.Node) {
	def := t.files[first(c)]
	if def == nil || def.Find("file") == nil {
		t.drop(c, "", "%q is not a defined track_file with a file", first(c))
		return
	}
	if t.fileChecked == nil {
		t.fileChecked = map[string]bool{}
	}
	t.fileChecked[first(c)] = true
	add(m, "file", str(first(def.Find("file"))), c)
	if w := def.Find("weight"); w != nil && get(m, "weight") == nil {
		if v, ok := parseInt(first(w), -253, 253); ok {
			add(m, "weight", integer(v), w)
		}
	}
}
