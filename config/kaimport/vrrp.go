package kaimport

import (
	"net/netip"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"vigil/config"
	"vigil/internal/kaconf"
)

// instance is a translated vrrp_instance before its trackers are written:
// sync groups and the address owner rule change their weights.
type instance struct {
	name     string
	n        *kaconf.Node
	m        *yaml.Node
	priority int
	refs     []*trackRef
	group    string // sync group
	groupTW  bool   // the group has sync_group_tracking_weight
	iface    string
	notifyU  *kaconf.Node // the first notify line that gave a user
}

// trackRef is one tracked object of an instance.
type trackRef struct {
	kind    string // interfaces, scripts, files, processes
	name    string
	weight  *int64
	reverse *bool
	n       *kaconf.Node
}

// instanceReasons are vrrp_instance keywords vigil has no equivalent for.
var instanceReasons = map[string]string{
	"vrf":                        "vigil runs an instance on its interface; a VRF is the interface's",
	"use_vmac_addr":              "vigil creates one virtual MAC per instance (vmac:), on the instance interface",
	"vmac_xmit_base":             "vigil sends and receives adverts on the virtual MAC interface",
	"use_ipvlan":                 "vigil's virtual MAC is a macvlan (vmac:); it has no ipvlan mode",
	"mcast_dst_ip":               "vigil sends to the RFC 5798 groups (224.0.0.18, ff02::12); use unicast for another path",
	"old_unicast_checksum":       "vigil computes the RFC 5798 checksum (and accepts both forms for v3 over IPv4)",
	"down_timer_adverts":         "vigil keeps RFC 5798's Master_Down_Interval (3 adverts and the skew)",
	"higher_prio_send_advert":    "vigil has no such option: a master hearing a higher priority goes backup at once",
	"skip_check_adv_addr":        "vigil never drops an advert for its address list (it counts and logs a mismatch)",
	"notify_master_rx_lower_pri": "vigil re-announces by itself when a master hears a lower priority (RFC 9568); no script",
	"notify_priority_changes":    "vigil's FIFO carries state changes only",
	"smtp_alert":                 "vigil sends no email",
	"kernel_rx_buf_size":         "vigil sizes its socket buffers itself",
	"promote_secondaries":        "vigil adds and removes only the VIPs; set net.ipv4.conf.IF.promote_secondaries=1 with sysctl",
	"garp_extra_if":              "vigil sends GARP/NA on the VIPs' interfaces only when it takes them over (use garp refresh)",
	"garp_extra_if_vmac":         "vigil sends GARP/NA on the VIPs' interfaces only when it takes them over (use garp refresh)",
	"timer_expired_backup":       "vigil's timers are not run by a single-threaded scheduler that can stall",
	"owner_ignore_adverts":       "vigil's address owner follows RFC 5798",
	"unicast_fault_no_peer":      "",
	"virtual_routes":             "vigil manages no routes: add them from notify master/backup scripts",
	"virtual_rules":              "vigil manages no rules: add them from notify master/backup scripts",
	"track_bfd":                  "vigil has no BFD",
	"no_virtual_ipaddress":       "vigil needs at least one VIP per instance",
	"sync_group_tracking_weight": "belongs to vrrp_sync_group",
}

// instances translates every vrrp_instance.
func (t *translator) instances_() {
	for _, n := range t.instances {
		name, ok := t.blockName(n, "instance")
		if !ok {
			continue
		}
		if _, dup := t.byName[name]; dup {
			t.drop(n, "", "instance %q is defined twice: the first definition is kept", name)
			continue
		}
		in := t.instance(n, name)
		if in == nil {
			continue
		}
		t.inst = append(t.inst, in)
		t.byName[name] = in
	}
}

// blockName is the vigil name of a named block (vrrp_instance NAME { }):
// other characters than vigil's become '_', with a note.
func (t *translator) blockName(n *kaconf.Node, what string) (string, bool) {
	if len(n.Args) != 1 || !n.Block {
		t.drop(n, "", "needs one name and a { } block")
		return "", false
	}
	name := n.Args[0]
	if !config.IsInstanceName(name) {
		clean := sanitize(name, 64)
		t.note(n, "%s name %q is %q (vigil names: 1..64 of A-Z a-z 0-9 _ . -)", what, name, clean)
		name = clean
	}
	return name, true
}

// sanitize makes s a vigil name: other characters become '_'.
func sanitize(s string, max int) string {
	b := []byte(s)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) > max {
		b = b[:max]
	}
	if len(b) == 0 {
		return "unnamed"
	}
	return string(b)
}

// instance translates one vrrp_instance; nil when it cannot be.
func (t *translator) instance(n *kaconf.Node, name string) *instance {
	in := &instance{name: name, n: n, m: mapping(), priority: -1}
	m := in.m
	add(m, "name", str(name), n)
	var (
		state, prio, version, advert, nopreempt, pdelay *kaconf.Node
		auth                                            *kaconf.Node
		vips                                            []*kaconf.Node
		uniSrc, mcastSrc, uniTTL                        *kaconf.Node
		peers                                           []*kaconf.Node
		family                                          int
		strictMode                                      *kaconf.Node
	)
	garp := mapping()
	notify := mapping()
	for _, c := range n.Children {
		if garpKeyword(t, garp, c, false) {
			continue
		}
		switch c.Keyword {
		case "state":
			state = c
		case "interface":
			if v, ok := one(c); ok {
				in.iface = v
				add(m, "interface", str(v), c)
			} else {
				t.drop(c, "", "needs one interface name")
			}
		case "virtual_router_id":
			if v, ok := one(c); ok {
				if id, ok := parseInt(v, 1, 255); ok {
					add(m, "vrid", integer(id), c)
					continue
				}
			}
			t.drop(c, "", "is not 1..255")
		case "priority":
			prio = c
		case "advert_int":
			advert = c
		case "version":
			version = c
		case "nopreempt", "no_preempt":
			nopreempt = c
		case "preempt":
			// keepalived's default, kept for old files.
		case "preempt_delay":
			pdelay = c
		case "accept":
			add(m, "accept", boolean(true), c)
		case "no_accept":
			add(m, "accept", boolean(false), c)
		case "lower_prio_no_advert":
			if v, ok := parseBool(c.Args); ok {
				add(m, "lower_prio_no_advert", boolean(v), c)
			} else {
				t.drop(c, "", "is not a boolean")
			}
		case "dont_track_primary":
			add(m, "dont_track_primary", boolean(true), c)
		case "unicast_src_ip":
			uniSrc = c
		case "mcast_src_ip":
			mcastSrc = c
		case "unicast_peer":
			peers = append(peers, c)
		case "unicast_ttl":
			uniTTL = c
		case "authentication":
			auth = c
		case "virtual_ipaddress":
			vips = append(vips, c)
		case "virtual_ipaddress_excluded":
			t.drop(c, "", "vigil advertises every VIP; listing these under vips changes the adverts' address list, "+
				"which keepalived before 2.3.3 rejects (two masters while the pair is mixed): add them to vips once every node runs vigil")
		case "track_interface", "track_script", "track_file", "track_process":
			in.refs = append(in.refs, t.trackBlock(c, in)...)
		case "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify":
			t.notifyLine(in, notify, c)
		case "use_vmac":
			t.vmac(m, c)
		case "strict_mode":
			strictMode = c
		default:
			if t.keptBuiltIn(c) {
				break
			}
			if reason, ok := instanceReasons[c.Keyword]; ok {
				if reason != "" {
					t.drop(c, "", "%s", reason)
				} else if c.Keyword == "unicast_fault_no_peer" {
					t.note(c, "unicast_fault_no_peer: vigil always refuses unicast without peers (never multicast)")
				}
			} else {
				t.drop(c, "", "no vigil equivalent in an instance")
			}
		}
	}
	if in.iface == "" {
		t.drop(n, "", "has no interface: vigil runs an instance on one (keepalived's unicast without interface is not supported)")
		return nil
	}
	if get(m, "vrid") == nil {
		t.drop(n, "", "has no valid virtual_router_id")
		return nil
	}

	// VIPs: their family decides the version.
	list := &yaml.Node{Kind: yaml.SequenceNode}
	for _, block := range vips {
		for _, v := range block.Children {
			if fam := t.vip(list, v, in.iface); fam != 0 && family == 0 {
				family = fam
			} else if fam != 0 && fam != family {
				t.drop(v, "virtual_ipaddress", "is IPv%d but the first VIP is IPv%d: keepalived ignores it (one family per instance)", fam, family)
				list.Content = list.Content[:len(list.Content)-1]
			}
		}
	}
	if len(list.Content) == 0 {
		t.drop(n, "", "has no VIP vigil can carry: vigil needs 1..255")
		return nil
	}
	if allScalar(list) {
		list.Style = yaml.FlowStyle
	}

	// state and priority (keepalived.conf(5) vrrp_instance: "state MASTER"
	// is the initial state; without priority MASTER means 255).
	switch {
	case prio != nil:
		p, ok := parseInt(first(prio), 1, 255)
		if !ok {
			t.drop(prio, "", "is not 1..255")
		} else {
			in.priority = int(p)
			add(m, "priority", integer(p), prio)
		}
	case state != nil && strings.EqualFold(first(state), "MASTER"):
		in.priority = 255
		add(m, "priority", integer(255), state)
		t.note(state, "state MASTER without priority: keepalived makes the instance the address owner (priority 255)")
	}
	if in.priority < 0 {
		in.priority = 100
	}
	if state != nil {
		switch strings.ToUpper(first(state)) {
		case "MASTER":
			t.note(state, "state MASTER is only keepalived's initial state, not an election result: vigil has none, priority decides (the owner, 255, becomes master at once; others wait Master_Down_Interval as keepalived does)")
		case "BACKUP":
			t.note(state, "state BACKUP is keepalived's initial state: every vigil instance starts as backup (but the owner, 255)")
		default:
			t.drop(state, "", "is not MASTER or BACKUP")
		}
	}

	// version: keepalived's default is vrrp_version, 2 unless set; IPv6
	// always 3. vigil's default is 3, so 2 is written.
	ver := 2
	verFrom := n
	if t.g.version != 0 {
		ver, verFrom = t.g.version, t.g.versionNode
	}
	if version != nil {
		if v, ok := one(version); ok && (v == "2" || v == "3") {
			ver, verFrom = int(v[0]-'0'), version
		} else {
			t.drop(version, "", "is not 2 or 3")
		}
	}
	if family == 6 {
		if ver == 2 && version != nil {
			t.note(version, "version 2 with IPv6 VIPs: keepalived (and vigil) use version 3 for IPv6")
		}
		ver = 3
	} else if ver == 2 {
		add(m, "version", integer(2), verFrom)
		if version == nil && t.g.versionNode == nil {
			t.note(n, "no version: keepalived's default is VRRPv2 (vrrp_version), vigil's is 3, so version: 2 is written to keep the peers talking")
		}
	} else if version != nil || t.g.versionNode != nil {
		add(m, "version", integer(3), verFrom)
	}

	if advert != nil {
		t.advert(m, advert, ver)
	}

	// Preemption (keepalived clears nopreempt and preempt_delay with state
	// MASTER, and nopreempt for the owner).
	isMaster := state != nil && strings.EqualFold(first(state), "MASTER")
	if nopreempt != nil {
		switch {
		case isMaster:
			t.drop(nopreempt, "", "keepalived clears nopreempt with state MASTER (\"nopreempt will not work with initial state MASTER\"): the instance preempts")
			nopreempt = nil
		case in.priority == 255:
			t.drop(nopreempt, "", "keepalived clears nopreempt for the address owner (priority 255), which always preempts")
			nopreempt = nil
		default:
			add(m, "preempt", boolean(false), nopreempt)
		}
	}
	if pdelay != nil {
		d, ok := parseTimer(first(pdelay))
		switch {
		case !ok || d > 1000*time.Second:
			t.drop(pdelay, "", "is not 0..1000 seconds")
		case isMaster:
			t.drop(pdelay, "", "keepalived clears preempt_delay with state MASTER")
		case nopreempt != nil:
			t.drop(pdelay, "", "keepalived clears preempt_delay with nopreempt")
		case t.g.strict != nil:
			t.drop(pdelay, "", "keepalived clears preempt_delay in strict mode")
		default:
			add(m, "preempt_delay", str(duration(d)), pdelay)
		}
	}

	t.unicast(m, uniSrc, mcastSrc, uniTTL, peers, family)
	if auth != nil {
		t.auth(m, auth, ver)
	}
	add(m, "vips", list, nil)
	if len(garp.Content) > 0 {
		addMap(m, "garp", garp, nil)
	}
	if len(notify.Content) > 0 {
		addMap(m, "notify", notify, nil)
	}
	if strictMode != nil {
		v, ok := parseBool(strictMode.Args)
		switch {
		case !ok:
			t.drop(strictMode, "", "is not a boolean")
		case v != (t.g.strict != nil):
			t.drop(strictMode, "", "vigil's strict mode is global (vrrp.strict, from vrrp_strict): it cannot differ per instance")
		}
	}
	return in
}

func first(n *kaconf.Node) string {
	if len(n.Args) == 0 {
		return ""
	}
	return n.Args[0]
}

func allScalar(s *yaml.Node) bool {
	for _, c := range s.Content {
		if c.Kind != yaml.ScalarNode {
			return false
		}
	}
	return true
}

// advert translates advert_int: VRRPv2 carries whole seconds, v3
// centiseconds; keepalived rounds to those, and so does the importer.
func (t *translator) advert(m *yaml.Node, n *kaconf.Node, ver int) {
	d, ok := parseTimer(first(n))
	if !ok || d == 0 {
		t.drop(n, "", "is not a positive time in seconds")
		return
	}
	unit, lo, hi := 10*time.Millisecond, 10*time.Millisecond, 40950*time.Millisecond
	if ver == 2 {
		unit, lo, hi = time.Second, time.Second, 255*time.Second
	}
	r := (d + unit/2) / unit * unit
	r = max(lo, min(hi, r))
	if r != d {
		t.note(n, "advert_int %s is %s: VRRPv%d advertises multiples of %s (keepalived rounds the same way)", first(n), duration(r), ver, duration(unit))
	}
	add(m, "advert_interval", str(duration(r)), n)
}

// unicast writes unicast: from unicast_src_ip, unicast_peer and
// unicast_ttl. keepalived checks no TTL on unicast adverts unless min_ttl;
// vigil wants 255 unless min_ttl.
func (t *translator) unicast(m *yaml.Node, src, msrc, ttl *kaconf.Node, blocks []*kaconf.Node, family int) {
	if len(blocks) == 0 {
		if src != nil {
			t.drop(src, "", "vigil uses a source address for unicast only, and there is no unicast_peer")
		}
		if msrc != nil {
			t.drop(msrc, "", "vigil sends multicast adverts from the interface's primary address")
		}
		if ttl != nil {
			t.drop(ttl, "", "there is no unicast_peer")
		}
		return
	}
	u := mapping()
	if src == nil && msrc != nil {
		src = msrc
		t.note(msrc, "mcast_src_ip with unicast peers is the unicast source, as keepalived uses it")
	} else if msrc != nil {
		t.drop(msrc, "", "unicast_src_ip is the source")
	}
	if src != nil {
		if a, err := netip.ParseAddr(first(src)); err == nil && len(src.Args) == 1 {
			add(u, "source", str(a.String()), src)
		} else {
			t.drop(src, "", "is not an IP address")
		}
	}
	var addrs []string
	minTTL := -1
	var ttlFrom *kaconf.Node
	for _, b := range blocks {
		for _, p := range b.Children {
			a, err := netip.ParseAddr(p.Keyword)
			if err != nil || a.Zone() != "" {
				t.drop(p, "unicast_peer", "%q is not an IP address (without zone)", p.Keyword)
				continue
			}
			addrs = append(addrs, a.String())
			for i := 0; i+1 < len(p.Args); i += 2 {
				v, ok := parseInt(p.Args[i+1], 0, 255)
				switch {
				case p.Args[i] == "min_ttl" && ok:
					if minTTL < 0 || int(v) < minTTL {
						minTTL, ttlFrom = int(v), p
					}
				case p.Args[i] == "max_ttl":
					t.drop(p, "unicast_peer max_ttl", "vigil checks a lowest TTL only (min_ttl)")
				default:
					t.drop(p, "unicast_peer "+p.Args[i], "is not min_ttl or max_ttl with 0..255")
				}
			}
		}
	}
	if len(addrs) == 0 {
		t.drop(blocks[0], "", "has no peer vigil can use: the instance stays multicast")
		return
	}
	f := flow(addrs)
	f.LineComment = at(blocks[0])
	set(u, "peers", f)
	switch {
	case minTTL >= 0:
		if minTTL == 0 {
			minTTL = 1
		}
		add(u, "min_ttl", integer(int64(minTTL)), ttlFrom)
		t.note(ttlFrom, "min_ttl: vigil has one lowest TTL for all peers, %d", minTTL)
	case ttl != nil:
		v, ok := parseInt(first(ttl), 1, 255)
		if !ok {
			t.drop(ttl, "", "is not 1..255")
			break
		}
		if v < 255 {
			add(u, "min_ttl", integer(v), ttl)
			t.note(ttl, "unicast_ttl %d: the peers send with it, so vigil accepts adverts from TTL %d up (vigil wants 255 unless told)", v, v)
		}
	case family == 6:
		add(u, "min_ttl", integer(64), blocks[0])
		t.note(blocks[0], "IPv6 unicast: keepalived 2.2 sends its IPv6 unicast adverts with hop limit 64 and checks none, so min_ttl: 64 keeps a keepalived peer heard (vigil wants 255 unless told)")
	default:
		t.note(blocks[0], "unicast: vigil accepts adverts with TTL 255 only (on-link peers, RFC 9568); keepalived checks none without min_ttl: add min_ttl if the peers are behind routers")
	}
	addMap(m, "unicast", u, nil)
}

// auth translates authentication { auth_type PASS; auth_pass ... }.
func (t *translator) auth(m *yaml.Node, n *kaconf.Node, ver int) {
	typ := n.Find("auth_type")
	pass := n.Find("auth_pass")
	if ver == 3 {
		t.drop(n, "", "VRRPv3 has no authentication (RFC 5798); keepalived ignores it with version 3")
		return
	}
	if typ == nil || !strings.EqualFold(first(typ), "PASS") {
		t.drop(n, "", "vigil supports auth_type PASS only (IPsec AH is weak and not interoperable)")
		return
	}
	if pass == nil || first(pass) == "" {
		t.drop(n, "", "auth_type PASS without auth_pass")
		return
	}
	pw := first(pass)
	if len(pw) > 8 {
		t.note(pass, "auth_pass is %d bytes: keepalived uses the first 8, and so does the translation", len(pw))
		pw = pw[:8]
	}
	a := mapping()
	add(a, "type", str("pass"), typ)
	add(a, "password", str(pw), pass)
	a.Style = yaml.FlowStyle
	addMap(m, "auth", a, nil)
	for _, c := range n.Children {
		if c.Keyword != "auth_type" && c.Keyword != "auth_pass" {
			t.drop(c, "", "no vigil equivalent in authentication")
		}
	}
}

// vip appends one virtual_ipaddress line to list; it returns the
// address's family, 0 when it was dropped.
func (t *translator) vip(list *yaml.Node, n *kaconf.Node, iface string) int {
	addr := n.Keyword
	var pfx netip.Prefix
	var err error
	if strings.Contains(addr, "/") {
		pfx, err = netip.ParsePrefix(addr)
	} else {
		var a netip.Addr
		a, err = netip.ParseAddr(addr)
		if err == nil {
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
	}
	if err != nil {
		t.drop(n, "virtual_ipaddress", "%q is not an address or prefix", addr)
		return 0
	}
	dev, label := "", ""
	for i := 0; i < len(n.Args); i++ {
		opt := n.Args[i]
		val := ""
		takes := map[string]bool{"dev": true, "label": true, "brd": true, "scope": true, "peer": true, "preferred_lft": true, "track_group": true}
		if takes[opt] {
			if i+1 >= len(n.Args) {
				t.drop(n, "virtual_ipaddress "+opt, "has no value")
				break
			}
			i++
			val = n.Args[i]
		}
		switch opt {
		case "dev":
			dev = val
		case "label":
			label = val
		case "no_track":
			t.drop(n, "virtual_ipaddress no_track", "vigil does not watch its VIPs for removal by others")
		case "use_vmac":
			t.drop(n, "virtual_ipaddress use_vmac", "vigil has one virtual MAC per instance (vmac:)")
		default:
			t.drop(n, "virtual_ipaddress "+opt, "vigil adds VIPs with the kernel's defaults for %s", opt)
		}
	}
	s := pfx.String()
	if pfx.IsSingleIP() {
		s = pfx.Addr().String() // keepalived's and vigil's default length
	}
	if (dev == "" || dev == iface) && label == "" {
		list.Content = append(list.Content, withComment(str(s), n))
	} else {
		v := mapping()
		v.Style = yaml.FlowStyle
		add(v, "address", str(s), nil)
		if dev != "" && dev != iface {
			add(v, "dev", str(dev), nil)
		}
		if label != "" {
			add(v, "label", str(label), nil)
		}
		list.Content = append(list.Content, withComment(v, n))
	}
	if pfx.Addr().Is4() {
		return 4
	}
	return 6
}

func withComment(v *yaml.Node, n *kaconf.Node) *yaml.Node {
	v.LineComment = at(n)
	return v
}

// trackBlock reads an instance's (or a sync group's) track_* block:
// NAME [weight N] [reverse|noreverse|no_reverse].
func (t *translator) trackBlock(b *kaconf.Node, in *instance) []*trackRef {
	kind := map[string]string{"track_interface": "interfaces", "track_script": "scripts", "track_file": "files", "track_process": "processes"}[b.Keyword]
	var refs []*trackRef
	for _, c := range b.Children {
		r := &trackRef{kind: kind, name: c.Keyword, n: c}
		ok := true
		for i := 0; i < len(c.Args); i++ {
			switch c.Args[i] {
			case "weight":
				if i+1 < len(c.Args) {
					if w, good := parseInt(c.Args[i+1], -254, 254); good {
						r.weight = &w
						i++
						continue
					}
				}
				t.drop(c, b.Keyword+" "+c.Keyword, "has a weight that is not -254..254")
				ok = false
			case "reverse":
				v := true
				r.reverse = &v
			case "noreverse", "no_reverse":
				v := false
				r.reverse = &v
			default:
				t.drop(c, b.Keyword+" "+c.Keyword, "%q is not weight N or reverse", c.Args[i])
				ok = false
			}
		}
		if !ok {
			continue
		}
		if r.weight != nil && (*r.weight < -253 || *r.weight > 253) {
			t.drop(c, b.Keyword+" "+c.Keyword, "weight %d is outside vigil's -253..253", *r.weight)
			continue
		}
		if kind == "interfaces" && in != nil && c.Keyword == in.iface {
			t.drop(c, b.Keyword+" "+c.Keyword, "keepalived ignores tracking the instance's own interface (tracked already unless dont_track_primary)")
			continue
		}
		refs = append(refs, r)
	}
	return refs
}

// notifyLine translates notify_* "COMMAND" [USER [GROUP]].
func (t *translator) notifyLine(in *instance, notify *yaml.Node, n *kaconf.Node) {
	key := strings.TrimPrefix(n.Keyword, "notify_")
	if n.Keyword == "notify" {
		key = "all"
	}
	argv, user, ok := t.command(n)
	if !ok {
		return
	}
	add(notify, key, flow(argv), n)
	if user == "" {
		return
	}
	switch prev := get(notify, "user"); {
	case prev == nil:
		add(notify, "user", str(user), n)
		in.notifyU = n
	case prev.Value != user:
		t.drop(n, n.Keyword+" "+user, "vigil runs an instance's notify commands as one user, %s (from %s)", prev.Value, in.notifyU.Pos)
	}
}

// command splits a script keyword's first argument into argv and joins
// the optional USER [GROUP] after it.
func (t *translator) command(n *kaconf.Node) ([]string, string, bool) {
	if len(n.Args) < 1 || len(n.Args) > 3 {
		t.drop(n, "", "needs \"COMMAND\" [USER [GROUP]]")
		return nil, "", false
	}
	argv, err := kaconf.SplitScript(n.Args[0])
	if err != nil {
		t.drop(n, "", "cannot be split into a command: %v", err)
		return nil, "", false
	}
	return argv, userGroup(n.Args[1:]), true
}

// scriptLine splits a script or misc_path line: its words, joined, are
// the command line (keepalived takes the whole line).
func (t *translator) scriptLine(n *kaconf.Node) ([]string, bool) {
	argv, err := kaconf.SplitScript(strings.Join(n.Args, " "))
	if err != nil || len(argv) == 0 {
		t.drop(n, "", "cannot be split into a command: %v", err)
		return nil, false
	}
	return argv, true
}

// vmac translates use_vmac [NAME] [MAC].
func (t *translator) vmac(m *yaml.Node, n *kaconf.Node) {
	switch {
	case len(n.Args) == 0:
		add(m, "vmac", boolean(true), n)
	case len(n.Args) >= 1 && strings.Count(n.Args[0], ":") >= 4:
		t.drop(n, "use_vmac "+n.Args[0], "vigil's virtual MAC is 00:00:5e:00:01:VRID (RFC 5798)")
		add(m, "vmac", boolean(true), n)
	default:
		add(m, "vmac", str(n.Args[0]), n)
		if len(n.Args) > 1 {
			t.drop(n, "use_vmac "+n.Args[1], "vigil's virtual MAC is 00:00:5e:00:01:VRID (RFC 5798)")
		}
	}
}

// syncGroups translates vrrp_sync_group blocks; the group's trackers go
// to its members, as keepalived applies them.
func (t *translator) syncGroups() *yaml.Node {
	list := sequence()
	seen := map[string]string{}
	for _, n := range t.groups {
		name, ok := t.blockName(n, "sync group")
		if !ok {
			continue
		}
		g := mapping()
		add(g, "name", str(name), n)
		var members []string
		var refs []*trackRef
		notify := mapping()
		tw := n.Find("sync_group_tracking_weight") != nil
		for _, c := range n.Children {
			switch c.Keyword {
			case "group":
				for _, mem := range c.Children {
					mn := mem.Keyword
					in := t.byName[mn]
					switch {
					case in == nil:
						t.drop(mem, "group "+mn, "is not a translated vrrp_instance")
					case seen[mn] != "":
						t.drop(mem, "group "+mn, "is already in sync group %s: an instance belongs to one", seen[mn])
					default:
						seen[mn] = name
						members = append(members, mn)
						in.group, in.groupTW = name, tw
					}
				}
			case "track_interface", "track_script", "track_file", "track_process":
				refs = append(refs, t.trackBlock(c, nil)...)
			case "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify":
				t.notifyLine(&instance{}, notify, c)
			case "sync_group_tracking_weight":
				add(g, "tracking_weight", boolean(true), c)
			case "global_tracking":
				t.note(c, "global_tracking (deprecated in keepalived): the members keep their own weights (tracking_weight: true)")
				add(g, "tracking_weight", boolean(true), c)
				tw = true
			default:
				if r := instanceReasons[c.Keyword]; r != "" {
					t.drop(c, "", "%s", r)
				} else {
					t.drop(c, "", "no vigil equivalent in a sync group")
				}
			}
		}
		for _, mn := range members {
			t.byName[mn].groupTW = tw
		}
		if len(members) < 2 {
			t.drop(n, "", "has %d translated instance(s): vigil's sync groups need 2 or more", len(members))
			for _, mn := range members {
				t.byName[mn].group = ""
			}
			continue
		}
		// Trackers of the group apply to every member (keepalived.conf(5)
		// vrrp_sync_group: they "update the status/priority of all VRRP
		// instances which are members").
		for _, r := range refs {
			t.note(r.n, "%s %s of sync group %s is tracked by each member (%s): vigil's trackers belong to instances", strings.TrimSuffix(r.kind, "s"), r.name, name, strings.Join(members, ", "))
			for _, mn := range members {
				cp := *r
				t.byName[mn].refs = append(t.byName[mn].refs, &cp)
			}
		}
		add(g, "instances", flow(members), n.Find("group"))
		if len(notify.Content) > 0 {
			addMap(g, "notify", notify, nil)
		}
		item(list, g, n)
	}
	return list
}

// track writes each instance's track: after the keepalived weight rules:
// members of a sync group (without sync_group_tracking_weight) and the
// address owner track with weight 0, which keepalived sets itself.
func (t *translator) track() {
	for _, in := range t.inst {
		tr := mapping()
		seen := map[string]bool{}
		for _, r := range in.refs {
			if seen[r.kind+" "+r.name] {
				t.drop(r.n, "track "+r.name, "%s is tracked twice by %s: the first is kept", r.name, in.name)
				continue
			}
			if r.kind != "interfaces" && t.defNode(r.kind, r.name) == nil {
				t.drop(r.n, "track "+r.name, "is not a defined %s", map[string]string{"scripts": "vrrp_script", "files": "track_file", "processes": "vrrp_track_process"}[r.kind])
				continue
			}
			seen[r.kind+" "+r.name] = true
			w := t.resolvedWeight(r)
			switch {
			case w != 0 && in.priority == 255:
				t.note(r.n, "%s is tracked with weight 0 by %s: the address owner's priority cannot change (keepalived requires weight 0; a failure means FAULT)", r.name, in.name)
				zero := int64(0)
				r.weight = &zero
			case w != 0 && in.group != "" && !in.groupTW:
				t.note(r.n, "%s is tracked with weight 0 by %s: keepalived sets the weights of sync group members to 0 (a failure puts group %s in FAULT)", r.name, in.name, in.group)
				zero := int64(0)
				r.weight = &zero
			}
			if t.tracked[r.kind] == nil {
				t.tracked[r.kind] = map[string]bool{}
			}
			t.tracked[r.kind][r.name] = true
			list := get(tr, r.kind)
			if list == nil {
				list = &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
				set(tr, r.kind, list)
			}
			if r.weight == nil && r.reverse == nil {
				list.Content = append(list.Content, str(r.name))
				continue
			}
			e := mapping()
			e.Style = yaml.FlowStyle
			add(e, "name", str(r.name), nil)
			if r.weight != nil {
				add(e, "weight", integer(*r.weight), nil)
			}
			if r.reverse != nil && *r.reverse {
				add(e, "reverse", boolean(true), nil)
			}
			list.Content = append(list.Content, e)
		}
		if len(tr.Content) > 0 {
			addMap(in.m, "track", tr, nil)
		}
	}
}

// defNode is the definition of a tracked script, file or process.
func (t *translator) defNode(kind, name string) *kaconf.Node {
	switch kind {
	case "scripts":
		return t.scripts[name]
	case "files":
		return t.files[name]
	case "processes":
		return t.procs[name]
	}
	return nil
}

// resolvedWeight is a reference's weight: its own, else its definition's
// (keepalived's defaults: script 0, file 1, process 1; interface 0).
func (t *translator) resolvedWeight(r *trackRef) int64 {
	if r.weight != nil {
		return *r.weight
	}
	def := t.defNode(r.kind, r.name)
	switch r.kind {
	case "interfaces":
		return 0
	case "files", "processes":
		if w := def.Find("weight"); w != nil {
			if v, ok := parseInt(first(w), -254, 254); ok {
				return v
			}
		}
		return 1
	}
	if w := def.Find("weight"); w != nil {
		if v, ok := parseInt(first(w), -254, 254); ok {
			return v
		}
	}
	return 0
}

// vrrp assembles the vrrp: section.
func (t *translator) vrrp() *yaml.Node {
	t.instances_()
	groups := t.syncGroups()
	t.track()
	v := mapping()
	g := t.g
	if g.strict != nil {
		add(v, "strict", boolean(true), g.strict)
	}
	if len(g.garp.Content) > 0 {
		addMap(v, "garp", g.garp, nil)
	}
	if g.scriptUser != nil {
		add(v, "script_user", str(userGroup(g.scriptUser.Args)), g.scriptUser)
	} else if t.usesScripts() {
		t.res.Translated = append(t.res.Translated, Note{What: "no script_user: keepalived runs scripts as keepalived_script if that user exists, else root; vigil runs them as its own user (root under the unit) unless script_user or user: says"})
	}
	if g.fifo != nil {
		add(v, "notify_fifo", str(g.fifo.Args[0]), g.fifo)
		if g.fifoGroup != "" {
			add(v, "notify_fifo_group", str(g.fifoGroup), g.fifo)
		}
	}
	if s := t.scriptDefs(); len(s.Content) > 0 {
		addMap(v, "scripts", s, nil)
	}
	if f := t.fileDefs(); len(f.Content) > 0 {
		addMap(v, "files", f, nil)
	}
	if p := t.processDefs(); len(p.Content) > 0 {
		addMap(v, "processes", p, nil)
	}
	if len(t.inst) > 0 {
		list := sequence()
		for _, in := range t.inst {
			if t.g.lowerPrio != nil && get(in.m, "lower_prio_no_advert") == nil {
				add(in.m, "lower_prio_no_advert", boolean(t.g.lowerPrioV), t.g.lowerPrio)
			}
			order(in.m, instanceKeys)
			item(list, in.m, in.n)
		}
		addMap(v, "instances", list, nil)
	}
	if len(groups.Content) > 0 {
		addMap(v, "sync_groups", groups, nil)
	}
	return v
}

var instanceKeys = []string{"name", "interface", "vrid", "priority", "version", "advert_interval", "preempt", "preempt_delay",
	"accept", "lower_prio_no_advert", "unicast", "auth", "vips", "garp", "track", "dont_track_primary", "notify", "vmac"}

// order sorts m's keys as keys lists them (others after, as they were).
func order(m *yaml.Node, keys []string) {
	rank := map[string]int{}
	for i, k := range keys {
		rank[k] = i
	}
	type pair struct{ k, v *yaml.Node }
	var pairs []pair
	for i := 0; i+1 < len(m.Content); i += 2 {
		pairs = append(pairs, pair{m.Content[i], m.Content[i+1]})
	}
	r := func(p pair) int {
		if v, ok := rank[p.k.Value]; ok {
			return v
		}
		return len(keys)
	}
	for i := 1; i < len(pairs); i++ { // insertion sort: stable, lists are short
		for j := i; j > 0 && r(pairs[j]) < r(pairs[j-1]); j-- {
			pairs[j], pairs[j-1] = pairs[j-1], pairs[j]
		}
	}
	m.Content = m.Content[:0]
	for _, p := range pairs {
		m.Content = append(m.Content, p.k, p.v)
	}
}

func (t *translator) usesScripts() bool {
	return len(t.tracked["scripts"]) > 0
}

// defWeight reads a definition's weight N [reverse].
func (t *translator) defWeight(m *yaml.Node, c *kaconf.Node) {
	w, ok := parseInt(first(c), -253, 253)
	if !ok {
		t.drop(c, "", "is not -253..253 (vigil's range)")
		return
	}
	add(m, "weight", integer(w), c)
	if len(c.Args) > 1 && c.Args[1] == "reverse" {
		add(m, "reverse", boolean(true), c)
	}
}

// trackedDefs are the definitions of a kind (scripts, files, processes)
// that an instance tracks, in file order; the others are dropped, as
// keepalived does not verb them either (a file a FILE_CHECK reads is not
// dropped: it is the check's).
func (t *translator) trackedDefs(kind, verb string) []*kaconf.Node {
	keyword := map[string]string{"scripts": "vrrp_script", "files": "track_file", "processes": "vrrp_track_process"}[kind]
	var out []*kaconf.Node
	for _, n := range t.defOrder {
		if n.Keyword != keyword && !(kind == "files" && n.Keyword == "vrrp_track_file") {
			continue
		}
		name := n.Args[0]
		switch {
		case t.tracked[kind][name]:
			out = append(out, n)
		case kind == "files" && t.fileChecked[name]:
		default:
			t.drop(n, "", "%q is tracked by no instance: keepalived does not %s it either", name, verb)
		}
	}
	return out
}

// scriptDefs writes the tracked vrrp_script blocks; an untracked one is
// dropped (keepalived does not run it either).
func (t *translator) scriptDefs() *yaml.Node {
	list := sequence()
	for _, n := range t.trackedDefs("scripts", "run") {
		name := n.Args[0]
		s := mapping()
		add(s, "name", str(name), n)
		for _, c := range n.Children {
			switch c.Keyword {
			case "script":
				if argv, ok := t.scriptLine(c); ok {
					add(s, "command", flow(argv), c)
				}
			case "interval", "timeout":
				if d, ok := parseTimer(first(c)); ok && d >= 10*time.Millisecond && d <= 24*time.Hour {
					add(s, c.Keyword, str(duration(d)), c)
				} else {
					t.drop(c, "", "is not 0.01..86400 seconds")
				}
			case "weight":
				t.defWeight(s, c)
			case "rise", "fall":
				if v, ok := parseInt(first(c), 1, 100); ok {
					add(s, c.Keyword, integer(v), c)
				} else {
					t.drop(c, "", "is not 1..100 (vigil's range)")
				}
			case "user":
				if len(c.Args) >= 1 && len(c.Args) <= 2 {
					add(s, "user", str(userGroup(c.Args)), c)
				} else {
					t.drop(c, "", "needs USER [GROUP]")
				}
			case "init_fail":
				add(s, "init_fail", boolean(true), c)
			default:
				t.drop(c, "", "no vigil equivalent in a vrrp_script")
			}
		}
		if get(s, "command") == nil {
			t.drop(n, "", "has no script: vigil cannot track it")
			continue
		}
		// vigil ends a run before the next is due: the timeout is at most the interval (1s by default).
		if iv, to := get(s, "interval"), get(s, "timeout"); to != nil {
			limit, msg := time.Second, "timeout is longer than the default interval (1s): vigil ends a run before the next is due, so the timeout is 1s"
			if iv != nil {
				limit, _ = time.ParseDuration(iv.Value)
				msg = "timeout is longer than the interval: vigil ends a run before the next is due, so the timeout is the interval, " + iv.Value
			}
			if d, _ := time.ParseDuration(to.Value); d > limit {
				to.Value = duration(limit)
				t.note(n.Find("timeout"), "%s", msg)
			}
		}
		item(list, s, n)
	}
	return list
}

// fileDefs writes the track_file blocks instances track.
func (t *translator) fileDefs() *yaml.Node {
	list := sequence()
	for _, n := range t.trackedDefs("files", "read") {
		name := n.Args[0]
		f := mapping()
		add(f, "name", str(name), n)
		for _, c := range n.Children {
			switch c.Keyword {
			case "file":
				add(f, "path", str(first(c)), c)
			case "weight":
				t.defWeight(f, c)
			case "init_file":
				v := int64(0)
				if len(c.Args) > 0 && c.Args[0] != "overwrite" {
					var ok bool
					if v, ok = parseInt(c.Args[0], -254, 254); !ok {
						t.drop(c, "", "is not -254..254")
						continue
					}
				}
				add(f, "init", integer(v), c)
				t.note(c, "init_file: keepalived writes the value to the file at start; vigil uses it while the file is missing and writes nothing")
				if c.Args[len(c.Args)-1] == "overwrite" {
					t.drop(c, "init_file overwrite", "vigil never writes the tracked file")
				}
			default:
				t.drop(c, "", "no vigil equivalent in a track_file")
			}
		}
		if get(f, "path") == nil {
			t.drop(n, "", "has no file")
			continue
		}
		item(list, f, n)
	}
	return list
}

var processReasons = map[string]string{
	"param_match":  "vigil matches the arguments exactly (args)",
	"quorum_max":   "vigil has a lowest number of processes only (quorum)",
	"full_command": "vigil matches the process name and its arguments (args)",
}

// processDefs writes the vrrp_track_process blocks instances track.
func (t *translator) processDefs() *yaml.Node {
	list := sequence()
	for _, n := range t.trackedDefs("processes", "watch") {
		name := n.Args[0]
		p := mapping()
		add(p, "name", str(name), n)
		var delay, forkDelay, termDelay *kaconf.Node
		for _, c := range n.Children {
			switch c.Keyword {
			case "process":
				if len(c.Args) == 0 {
					t.drop(c, "", "needs the process name")
					continue
				}
				proc := c.Args[0]
				if strings.Contains(proc, "/") {
					base := proc[strings.LastIndex(proc, "/")+1:]
					t.note(c, "process %s is matched by its name %s (/proc/PID/comm), as keepalived does without full_command", proc, base)
					proc = base
				}
				if len(proc) > 15 {
					t.note(c, "process %s: the kernel keeps the first 15 bytes of a process name, %s", proc, proc[:15])
					proc = proc[:15]
				}
				add(p, "process", str(proc), c)
				if len(c.Args) > 1 {
					add(p, "args", str(strings.Join(c.Args[1:], " ")), c)
				}
			case "weight":
				t.defWeight(p, c)
			case "quorum":
				if q, ok := parseInt(first(c), 1, 65535); ok {
					add(p, "quorum", integer(q), c)
				} else {
					t.drop(c, "", "is not 1..65535")
				}
			case "delay":
				delay = c
			case "fork_delay":
				forkDelay = c
			case "terminate_delay":
				termDelay = c
			default:
				if r := processReasons[c.Keyword]; r != "" {
					t.drop(c, "", "%s", r)
				} else {
					t.drop(c, "", "no vigil equivalent in a vrrp_track_process")
				}
			}
		}
		if get(p, "process") == nil {
			t.drop(n, "", "has no process")
			continue
		}
		if get(p, "weight") == nil {
			// keepalived.conf(5): "default weight (default is 1)"; vigil's
			// is 0 (FAULT while down).
			add(p, "weight", integer(1), n)
			t.note(n, "no weight: keepalived's default for a tracked process is 1, vigil's 0 (FAULT), so weight: 1 is written")
		}
		d := delay
		for _, x := range []*kaconf.Node{forkDelay, termDelay} {
			if x == nil {
				continue
			}
			if d == nil {
				d = x
				t.note(x, "%s is vigil's one delay, for losing and regaining the quorum alike", x.Keyword)
			} else if first(x) != first(d) {
				t.drop(x, "", "vigil has one delay for both directions, %s (from %s)", first(d), d.Keyword)
			}
		}
		if d != nil {
			if v, ok := parseTimer(first(d)); ok && v <= time.Hour {
				add(p, "delay", str(duration(v)), d)
			} else {
				t.drop(d, "", "is not 0..3600 seconds")
			}
		}
		item(list, p, n)
	}
	return list
}
