package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"vigil/lb"
)

// The lb: section: virtual servers, their real servers and the IPVS settings.

// The values of lb.on_stop and lb.foreign_services.
const (
	OnStopRemove   = "remove"
	OnStopKeep     = "keep"
	ForeignKeep    = "keep"
	ForeignRemove  = "remove"
	maxIPVSTimeout = 365 * 24 * time.Hour // the kernel keeps seconds in an int; a year is plenty
)

// DefaultScheduler is a virtual server's IPVS scheduler when it names none
// (keepalived's default).
const DefaultScheduler = "wlc"

// Schedulers the kernel's IPVS offers (ip_vs_*.ko).
var schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos"}

var vsHints = map[string]string{
	"lb_algo":                 `keepalived's lb_algo is "scheduler" here`,
	"lvs_sched":               `keepalived's lvs_sched is "scheduler" here`,
	"lb_kind":                 `keepalived's lb_kind is "forward" here (nat, dr or tun)`,
	"lvs_method":              `keepalived's lvs_method is "forward" here (nat, dr or tun)`,
	"persistence_timeout":     `the key is "persistence", with a unit (360s)`,
	"real_server":             `the key is "real_servers", a list`,
	"delay_loop":              `set check: {interval: ...} on the virtual server (the default for its real servers) or on a real server`,
	"ops":                     `the key is "one_packet"`,
	"virtualhost":             `set check: {host: ...}`,
	"inhibit":                 `the key is "inhibit_on_failure"`,
	"sorry":                   `the key is "sorry_server"`,
	"sorry_server_lvs_method": `use sorry_server: {address: ..., forward: ...}`,
	"quorum_up":               `use notify: {quorum_up: COMMAND}`,
	"omega":                   `use notify: {omega: true}`,
	"quorum_down":             `use notify: {quorum_down: COMMAND}`,
}

var rsHints = map[string]string{
	"uthreshold":          `the key is "upper_threshold"`,
	"lthreshold":          `the key is "lower_threshold"`,
	"lb_kind":             `the key is "forward"`,
	"lvs_method":          `the key is "forward"`,
	"tcp_check":           `use check: {type: tcp}`,
	"http_get":            `use check: {type: http, path: ...}`,
	"ssl_get":             `use check: {type: https, path: ...}`,
	"misc_check":          `use check: {type: exec, command: ...}`,
	"connect_timeout":     `set check: {timeout: ...}`,
	"delay_before_retry":  `set check: {retry_delay: ...}`,
	"checks":              `the key is "check": one check, or a list of them`,
	"inhibit":             `the key is "inhibit_on_failure"`,
	"weight_on_failure":   `use inhibit_on_failure: true (weight 0 while down)`,
	"connect_port":        `set check: {port: ...}`,
	"connect_ip":          `set check: {address: ...}`,
	"misc_dynamic":        `set check: {type: exec, dynamic: true}`,
	"misc_path":           `set check: {type: exec, command: ...}`,
	"delay_loop":          `set check: {interval: ...}`,
	"retry":               `set check: {fall: N} (keepalived retry N = fall N+1)`,
	"warmup":              `set check: {warmup: ...}`,
	"status_code":         `set check: {status: ...}`,
	"sorry_server":        "sorry_server belongs to the virtual server",
	"persistence":         "persistence belongs to the virtual server",
	"persistence_timeout": "persistence belongs to the virtual server",
}

// lbSection decodes the lb: section.
func (d *decoder) lbSection(o *object) LB {
	var out LB
	if so, st := getObject(o, "sync_daemon"); st == good {
		sd := &SyncDaemon{path: so.path}
		iface := getString(so, "interface")
		d.required(iface.St, iface.path(), "the interface the sync messages use")
		if iface.ok() {
			if msg := ifnameProblem(iface.V); msg != "" {
				iface.reject(d, "%s", msg)
			}
			sd.Interface = iface.V
		}
		inst := getString(so, "instance")
		d.required(inst.St, inst.path(), "the VRRP instance whose state the daemon follows")
		sd.Instance = inst.V
		if id := getInt(so, "sync_id"); id.ok() {
			if id.V < 0 || id.V > 255 {
				id.reject(d, "is out of range 0..255 (the sync protocol carries 8 bits)")
			}
			sd.SyncID, sd.syncIDSet = uint8(id.V), true
		}
		so.unknown(nil, map[string]string{"syncid": `the key is "sync_id"`, "lvs_sync_daemon_interface": `the key is "interface"`})
		out.SyncDaemon = sd
	}
	out.OnStop = d.choice(o, "on_stop", OnStopRemove, OnStopRemove, OnStopKeep)
	out.ForeignServices = d.choice(o, "foreign_services", ForeignKeep, ForeignKeep, ForeignRemove)
	out.RSInitNotifies = getBool(o, "rs_init_notifies").or(false)
	if to, st := getObject(o, "timeouts"); st == good {
		for _, k := range []struct {
			key string
			v   *time.Duration
		}{{"tcp", &out.Timeouts.TCP}, {"tcp_fin", &out.Timeouts.TCPFin}, {"udp", &out.Timeouts.UDP}} {
			f := getDuration(to, k.key)
			switch {
			case !f.ok():
			case f.V < 0 || f.V > maxIPVSTimeout:
				f.reject(d, "is out of range 0..%s", maxIPVSTimeout)
			case f.V%time.Second != 0:
				f.reject(d, "must be whole seconds (the kernel counts in seconds)")
			default:
				*k.v = f.V
			}
		}
		to.unknown(nil, map[string]string{"tcpfin": `the key is "tcp_fin"`})
	}
	list, p, st := getList(o, "virtual_servers")
	o.unknown(nil, map[string]string{"virtual_server": `the key is "virtual_servers", a list`,
		"lvs_sync_daemon":   `use sync_daemon: {interface: IFNAME, instance: VRRP_INSTANCE, sync_id: N}`,
		"lvs_flush":         `use foreign_services: remove`,
		"lvs_flush_on_stop": `use foreign_services: remove (with on_stop: remove, the default)`,
		"lvs_timeouts":      `use timeouts: {tcp: 900s, tcp_fin: 120s, udp: 300s}`,
		"dont_release_ipvs": `use on_stop: keep`})
	if st != good {
		return out
	}
	n := len(list) + len(d.reuse) // enough, with placeholders standing for runs
	names := make(map[string]string, n)
	keys := make(map[lb.ServiceKey]string, n)
	if n > 0 {
		out.VirtualServers = make([]VirtualServer, 0, n)
	}
	d.items = make([]int, 0, n)
	// add takes the virtual server of list element i unless its name or
	// an address is taken already.
	add := func(i int, vs VirtualServer, errs, warns int) {
		ep := index(p, i)
		d.healthPolicy(&vs, ep)
		if prev, dup := names[vs.Spec.Name]; dup {
			d.fail(ep+".name", "%q is already the name of %s", vs.Spec.Name, prev)
			return
		}
		names[vs.Spec.Name] = ep
		dup := false
		for _, k := range vs.Spec.Keys() {
			if prev, taken := keys[k]; taken {
				d.fail(ep, "%s is already configured at %s", k, prev)
				dup = true
			}
		}
		if dup {
			return
		}
		for _, k := range vs.Spec.Keys() {
			keys[k] = ep
		}
		if len(d.errs) == errs && len(d.warns) == warns {
			d.items[i] = len(out.VirtualServers)
		}
		out.VirtualServers = append(out.VirtualServers, vs)
	}
	// i counts the file's list elements: a placeholder of a Loader stands
	// for a run of them.
	i := 0
	for _, raw := range list {
		if run, ok := d.reused(raw); ok {
			for _, vs := range run {
				d.items = append(d.items, -1)
				add(i, vs, len(d.errs), len(d.warns))
				i++
			}
			continue
		}
		errs, warns := len(d.errs), len(d.warns)
		d.items = append(d.items, -1)
		if vo, ok := d.object(index(p, i), raw); ok {
			if vs, ok := d.virtualServer(vo); ok {
				add(i, vs, errs, warns)
			}
		}
		i++
	}
	return out
}

// healthPolicy sets the health policy of the virtual server at path from
// what it says and whether the file has a gossip: section (issue 13). A
// fleet policy without a fleet is an error: a warning would hide that the
// fleet is not there.
func (d *decoder) healthPolicy(vs *VirtualServer, path string) {
	vs.HealthPolicy = vs.healthPolicy
	switch {
	case vs.healthPolicy == "" && d.gossipOn:
		vs.HealthPolicy = HealthQuorum
	case vs.healthPolicy == "":
		vs.HealthPolicy = HealthLocal
	case vs.healthPolicy != HealthLocal && !d.gossipOn:
		d.bad(path+".health_policy", string(vs.healthPolicy),
			"needs a gossip: section: it weighs the results of the fleet's directors; use local, or configure gossip:")
	}
}

// addresses reads a virtual server's addresses: (keepalived's
// virtual_server_group): ADDR:PORT entries, an IPv4 entry may be a range
// of its last byte ("192.0.2.100-103:80"). They share one family and one
// port, which the real servers inherit; nil when the key is absent or
// invalid (reported).
func (d *decoder) addresses(o *object) []lb.ServiceKey {
	list, lp, st := getList(o, "addresses")
	if st != good {
		return nil
	}
	if len(list) == 0 {
		d.fail(lp, "is empty: list the ADDRESS:PORT services of the group")
		return nil
	}
	var out []lb.ServiceKey
	seen := map[netip.AddrPort]bool{}
	ok := true
	for i, raw := range list {
		p := index(lp, i)
		str, isStr := raw.(string)
		if !isStr {
			d.bad(p, raw, "must be a string ADDRESS:PORT")
			ok = false
			continue
		}
		aps, msg := expandRange(str)
		if msg != "" {
			d.bad(p, raw, "%s", msg)
			ok = false
			continue
		}
		for _, ap := range aps {
			k := lb.ServiceKey{Family: familyOfAddr(ap.Addr()), Addr: ap.Addr(), Port: ap.Port()}
			switch {
			case seen[ap]:
				d.bad(p, raw, "lists %s again", ap)
				ok = false
			case len(out) > 0 && (k.Family != out[0].Family || k.Port != out[0].Port):
				d.bad(p, raw, "must have the family and port of %s: the real servers inherit one port (use another virtual server for another port)",
					netip.AddrPortFrom(out[0].Addr, out[0].Port))
				ok = false
			default:
				seen[ap] = true
				out = append(out, k)
			}
		}
	}
	if !ok {
		return nil
	}
	if len(out) > 256 {
		d.fail(lp, "has %d services; at most 256 per virtual server", len(out))
		return nil
	}
	return out
}

// expandRange parses ADDR:PORT, or A.B.C.X-Y:PORT (keepalived's range of
// the last byte).
func expandRange(s string) ([]netip.AddrPort, string) {
	s = strings.TrimSpace(s)
	host, port, found := strings.Cut(s, "-")
	if !found || strings.Contains(s, "[") {
		ap, msg := parseAddrPort(s, true)
		if msg != "" {
			return nil, msg
		}
		return []netip.AddrPort{ap}, ""
	}
	first, err := netip.ParseAddr(host)
	hi, p, hasPort := strings.Cut(port, ":")
	last, err2 := strconv.Atoi(hi)
	pn, err3 := strconv.Atoi(p)
	if err != nil || !first.Is4() || !hasPort || err2 != nil || err3 != nil || pn < 1 || pn > 65535 {
		return nil, "is not ADDRESS:PORT or an IPv4 range A.B.C.X-Y:PORT"
	}
	lo := int(first.As4()[3])
	if last < lo || last > 255 {
		return nil, fmt.Sprintf("range ends at %d, not in %d..255", last, lo)
	}
	var out []netip.AddrPort
	for a, i := first, lo; i <= last; a, i = a.Next(), i+1 {
		out = append(out, netip.AddrPortFrom(a, uint16(pn)))
	}
	return out, ""
}

// vsDefaults are a virtual server's settings its real servers inherit.
type vsDefaults struct {
	family  lb.Family
	port    uint16
	fwmark  bool
	forward lb.Forward
	tunnel  tunnel // with forward tun
	inhibit bool
	alpha   bool
	check   *Check // template check for real servers without their own
	checkAt string // its path
	proto   lb.Protocol
}

func (d *decoder) virtualServer(o *object) (VirtualServer, bool) {
	var vs VirtualServer
	errs := len(d.errs)
	spec := &vs.Spec

	name := getString(o, "name")
	d.required(name.St, name.path(), "")
	if name.ok() && !IsInstanceName(name.V) {
		name.reject(d, "is not a valid name: use 1..64 of A-Z a-z 0-9 _ . -")
	}
	spec.Name = name.V
	if name.ok() {
		d.vsNames = append(d.vsNames, name.V)
	}

	var def vsDefaults
	key := &spec.Service.Key
	addr := getString(o, "address")
	mark := getInt(o, "fwmark")
	group := d.addresses(o)
	switch {
	case addr.set() && mark.set(), addr.set() && group != nil, mark.set() && group != nil:
		d.fail(o.path, "give one of address, addresses or fwmark")
	case !addr.set() && !mark.set() && group == nil:
		d.fail(o.sub("address"), "required: ADDRESS:PORT (or addresses: [...], or fwmark: N)")
	case len(group) > 0:
		*key = group[0]
		spec.Group = group[1:]
		addr.St = good // the group's addresses stand for it below
	case addr.ok():
		ap, msg := parseAddrPort(addr.V, true)
		if msg != "" {
			addr.reject(d, "%s", msg)
			break
		}
		key.Addr, key.Port = ap.Addr(), ap.Port()
		key.Family = familyOfAddr(ap.Addr())
	case mark.ok():
		if mark.V < 1 || mark.V > 0xffffffff {
			mark.reject(d, "is out of range 1..4294967295")
			break
		}
		key.FWMark = uint32(mark.V)
		def.fwmark = true
		key.Family = lb.IPv4
		if fam := getString(o, "family"); fam.ok() {
			switch fam.V {
			case "ipv4", "inet":
			case "ipv6", "inet6":
				key.Family = lb.IPv6
			default:
				fam.reject(d, "is not a family: use ipv4 or ipv6")
			}
		}
	}
	if !def.fwmark {
		if fam := getString(o, "family"); fam.set() {
			d.fail(fam.path(), "is only for fwmark services (the address gives the family)")
		}
	}
	def.family, def.port = key.Family, key.Port

	proto := getString(o, "protocol")
	switch {
	case def.fwmark && proto.set():
		d.fail(proto.path(), "is not used by a fwmark service (the mark selects the packets)")
	case !def.fwmark && !proto.set() && addr.ok():
		d.fail(proto.path(), "required: tcp, udp or sctp (vigil has no silent UDP default, unlike keepalived)")
	case proto.ok():
		switch strings.ToLower(proto.V) {
		case "tcp":
			key.Protocol = lb.TCP
		case "udp":
			key.Protocol = lb.UDP
		case "sctp":
			key.Protocol = lb.SCTP
		default:
			proto.reject(d, "is not a protocol: use tcp, udp or sctp")
		}
	}
	def.proto = key.Protocol
	for i := range spec.Group {
		spec.Group[i].Protocol = key.Protocol
	}

	sched := getString(o, "scheduler")
	spec.Service.Scheduler = DefaultScheduler
	if sched.ok() {
		if slices.Contains(schedulers, sched.V) {
			spec.Service.Scheduler = sched.V
		} else {
			sched.reject(d, "is not an IPVS scheduler: use one of %s", strings.Join(schedulers, ", "))
		}
	}
	spec.Service.SchedFlags = d.schedFlags(o, spec.Service.Scheduler)

	if op := getBool(o, "one_packet"); op.ok() && op.V {
		if key.Protocol != lb.UDP && !def.fwmark {
			op.reject(d, "needs protocol udp (one-packet scheduling is for datagrams)")
		}
		spec.Service.OnePacket = true
	}

	if per := getDuration(o, "persistence"); per.ok() {
		switch {
		case per.V < 0 || per.V > 0xffffffff*time.Second:
			per.reject(d, "is out of range 0..4294967295s")
		case per.V%time.Second != 0:
			per.reject(d, "is not a whole number of seconds (IPVS counts seconds)")
		default:
			spec.Service.Persistence = per.V
		}
	}
	if g := getInt(o, "persistence_granularity"); g.ok() {
		bits := 32
		if key.Family == lb.IPv6 {
			bits = 128
		}
		switch {
		case spec.Service.Persistence == 0:
			g.reject(d, "needs persistence (a timeout) to mean anything")
		case g.V < 1 || g.V > int64(bits):
			g.reject(d, "is out of range 1..%d (a prefix length)", bits)
		default:
			spec.Service.PersistenceMask = int(g.V)
		}
	}
	if key.Port == 0 && key.Addr.IsValid() && spec.Service.Persistence == 0 {
		addr.reject(d, "has port 0, which IPVS allows only for persistent services: give a port or set persistence")
	}

	if hs := getBool(o, "ha_suspend"); hs.ok() && hs.V {
		if def.fwmark {
			hs.reject(d, "needs an address to watch (a fwmark service has none)")
		}
		vs.HASuspend = true
	}
	def.forward = d.forward(o, lb.NAT)
	def.tunnel = d.tunnel(o, def.forward, tunnel{})
	if pe := getString(o, "persistence_engine"); pe.ok() {
		switch {
		case pe.V != "sip":
			pe.reject(d, "is not a persistence engine: the kernel has sip")
		case spec.Service.Persistence == 0:
			pe.reject(d, "needs persistence (a timeout)")
		default:
			spec.Service.PE = pe.V
		}
	}
	def.inhibit = getBool(o, "inhibit_on_failure").or(false)
	def.alpha = getBool(o, "alpha").or(false)
	if co, st := getObject(o, "check"); st == good {
		if c, ok := d.check(co); ok {
			def.check, def.checkAt = &c, co.path
		}
		co.unknown(nil, checkHints)
	}

	spec.Quorum = 1
	if q := getInt(o, "quorum"); q.ok() {
		if q.V < 1 || q.V > 1<<24 {
			q.reject(d, "is out of range 1..16777216")
		} else {
			spec.Quorum = int(q.V)
		}
	}
	if h := getInt(o, "hysteresis"); h.ok() {
		if h.V < 0 || h.V >= int64(spec.Quorum) {
			h.reject(d, "is out of range 0..%d (less than quorum)", spec.Quorum-1)
		} else {
			spec.Hysteresis = int(h.V)
		}
	}

	if raw, ok := o.get("sorry_server"); ok {
		if dst, ok := d.sorry(o.sub("sorry_server"), raw, def); ok {
			spec.Sorry = &dst
		}
	}
	if si := getBool(o, "sorry_server_inhibit"); si.ok() {
		if si.V && !o.has("sorry_server") {
			si.reject(d, "needs sorry_server")
		}
		spec.SorryInhibit = si.V
	}

	list, lp, st := getList(o, "real_servers")
	if st == missing && spec.Sorry == nil {
		d.fail(lp, "required: at least one real server (or a sorry_server)")
	}
	// A real server given twice: found by a scan of those taken so far,
	// or by a map in a long list (a map per virtual server was a quarter
	// of what decoding 1,000 × 10 allocated).
	var at []int // the list index of each real server taken
	var byKey map[lb.DestKey]int
	if len(list) > 32 {
		byKey = make(map[lb.DestKey]int, len(list))
	}
	if len(list) > 0 {
		spec.Reals = make([]lb.RealServer, 0, len(list))
		vs.Reals = make([]RealServer, 0, len(list))
		at = make([]int, 0, len(list))
	}
	for i, raw := range list {
		rp := index(lp, i)
		ro, ok := d.object(rp, raw)
		if !ok {
			continue
		}
		rs, conf, ok := d.realServer(ro, def)
		if !ok {
			continue
		}
		j, dup := -1, false
		if byKey != nil {
			j, dup = byKey[rs.Key()]
		} else {
			for k := range spec.Reals {
				if spec.Reals[k].Key() == rs.Key() {
					j, dup = k, true
					break
				}
			}
		}
		if dup {
			d.fail(rp+".address", "%s is already a real server at %s", netip.AddrPortFrom(rs.Addr, rs.Port), index(lp, at[j]))
			continue
		}
		if byKey != nil {
			byKey[rs.Key()] = len(spec.Reals)
		}
		spec.Reals = append(spec.Reals, rs)
		vs.Reals = append(vs.Reals, conf)
		at = append(at, i)
	}
	if hp := getString(o, "health_policy"); hp.ok() {
		switch p := HealthPolicy(hp.V); p {
		case HealthLocal, HealthAny, HealthQuorum:
			vs.healthPolicy = p
		default:
			hp.reject(d, "is not a health policy: use local, any or quorum")
		}
	}
	vs.Notify = LBNotify{Timeout: DefaultNotifyTimeout}
	if no, st := getObject(o, "notify"); st == good {
		vs.Notify.QuorumUp, _ = d.command(no, "quorum_up", false, false)
		vs.Notify.QuorumDown, _ = d.command(no, "quorum_down", false, false)
		vs.Notify.Omega = getBool(no, "omega").or(false)
		if u := getString(no, "user"); u.ok() && u.V != "" {
			if msg := d.userProblem(u.V); msg != "" {
				u.reject(d, "%s", msg)
			} else {
				vs.Notify.User = u.V
			}
		}
		if t := getDuration(no, "timeout"); t.ok() {
			if t.V < 10*time.Millisecond || t.V > time.Hour {
				t.reject(d, "is out of range 10ms..1h")
			} else {
				vs.Notify.Timeout = t.V
			}
		}
		no.unknown(nil, map[string]string{"up": `the key is "quorum_up"`, "down": `the key is "quorum_down"`,
			"notify_up": "notify_up belongs to a real server", "notify_down": "notify_down belongs to a real server"})
	}
	o.unknown(nil, vsHints)
	return vs, len(d.errs) == errs
}

var schedFlagNames = map[string]uint32{
	"flag-1": lb.SchedFlag1, "flag-2": lb.SchedFlag2, "flag-3": lb.SchedFlag3,
	"sh-fallback": lb.SchedFlag1, "sh-port": lb.SchedFlag2,
	"mh-fallback": lb.SchedFlag1, "mh-port": lb.SchedFlag2,
}

func (d *decoder) schedFlags(o *object, sched string) uint32 {
	list, p, st := getList(o, "scheduler_flags")
	if st != good {
		return 0
	}
	var flags uint32
	for i, raw := range list {
		ep := index(p, i)
		s, ok := raw.(string)
		f, known := schedFlagNames[s]
		switch {
		case !ok || !known:
			d.bad(ep, raw, "is not a scheduler flag: use flag-1, flag-2, flag-3, sh-fallback, sh-port, mh-fallback or mh-port")
		case strings.HasPrefix(s, "sh-") && sched != "sh", strings.HasPrefix(s, "mh-") && sched != "mh":
			d.bad(ep, raw, "is for the %s scheduler, and this service uses %s", s[:2], sched)
		default:
			flags |= f
		}
	}
	return flags
}

func (d *decoder) forward(o *object, def lb.Forward) lb.Forward {
	f := getString(o, "forward")
	if !f.ok() {
		return def
	}
	switch strings.ToLower(f.V) {
	case "nat", "masq":
		return lb.NAT
	case "dr", "direct", "route":
		return lb.DR
	case "tun", "tunnel", "ipip":
		return lb.Tunnel
	}
	f.reject(d, "is not a forwarding method: use nat, dr or tun")
	return def
}

// tunnel is a tunnelled destination's encapsulation.
type tunnel struct {
	typ  lb.TunnelType
	port uint16
	csum lb.TunnelCsum
}

func (t tunnel) apply(d *lb.Dest) { d.TunType, d.TunPort, d.TunCsum = t.typ, t.port, t.csum }

// tunnel reads tunnel: {type: ipip|gue|gre, port: N, checksum:
// none|csum|remcsum} (keepalived's "lvs_method TUN type gue port N csum")
// for a destination forwarded by fwd; def when absent.
func (d *decoder) tunnel(o *object, fwd lb.Forward, def tunnel) tunnel {
	to, st := getObject(o, "tunnel")
	if st != good {
		if fwd != lb.Tunnel {
			return tunnel{}
		}
		return def
	}
	if fwd != lb.Tunnel {
		d.fail(to.path, "needs forward: tun")
		return tunnel{}
	}
	var t tunnel
	switch typ := d.choice(to, "type", "ipip", "ipip", "gue", "gre"); typ {
	case "gue":
		t.typ = lb.GUE
	case "gre":
		t.typ = lb.GRE
	}
	port := getInt(to, "port")
	switch {
	case !port.set():
		if t.typ == lb.GUE {
			d.fail(to.sub("port"), "required for gue: the UDP port the real server decapsulates on")
		}
	case t.typ != lb.GUE:
		port.reject(d, "is for gue tunnels only")
	case port.ok() && (port.V < 1 || port.V > 65535):
		port.reject(d, "is out of range 1..65535")
	case port.ok():
		t.port = uint16(port.V)
	}
	switch cs := d.choice(to, "checksum", "none", "none", "csum", "remcsum"); {
	case cs == "none":
	case t.typ == lb.IPIP:
		d.fail(to.sub("checksum"), "is for gue and gre tunnels (ipip has none)")
	case cs == "remcsum" && t.typ != lb.GUE:
		d.fail(to.sub("checksum"), "remcsum is for gue tunnels only")
	case cs == "csum":
		t.csum = lb.Csum
	default:
		t.csum = lb.RemCsum
	}
	to.unknown(nil, map[string]string{"tun_type": `the key is "type"`, "tun_port": `the key is "port"`,
		"csum": `use checksum: csum`, "nocsum": `use checksum: none`, "remcsum": `use checksum: remcsum`})
	return t
}

func (d *decoder) sorry(p string, raw any, def vsDefaults) (lb.Dest, bool) {
	dst := lb.Dest{Forward: def.forward, Weight: 1}
	if def.forward == lb.Tunnel {
		def.tunnel.apply(&dst)
	}
	var addr field[string]
	switch raw.(type) {
	case string:
		addr = field[string]{V: raw.(string), Raw: raw, p: p, St: good}
	default:
		o, ok := d.object(p, raw)
		if !ok {
			return dst, false
		}
		addr = getString(o, "address")
		d.required(addr.St, addr.path(), "ADDRESS[:PORT]")
		dst.Forward = d.forward(o, def.forward)
		d.tunnel(o, dst.Forward, def.tunnel).apply(&dst)
		o.unknown(nil, nil)
	}
	if !addr.ok() {
		return dst, false
	}
	ap, ok := d.destAddr(addr, def, dst.Forward)
	dst.Addr, dst.Port = ap.Addr(), ap.Port()
	return dst, ok
}

// destAddr parses a real or sorry server address: "ADDR:PORT", or "ADDR"
// (the virtual server's port), checking the family against the service.
func (d *decoder) destAddr(f field[string], def vsDefaults, fwd lb.Forward) (netip.AddrPort, bool) {
	ap, msg := parseAddrPort(f.V, false)
	if msg != "" {
		f.reject(d, "%s", msg)
		return ap, false
	}
	if ap.Port() == 0 {
		ap = netip.AddrPortFrom(ap.Addr(), def.port)
	}
	if def.family != 0 && familyOfAddr(ap.Addr()) != def.family && fwd != lb.Tunnel {
		f.reject(d, "is IPv%d and the service IPv%d: only tunnelled real servers may differ", familyOfAddr(ap.Addr()), def.family)
		return ap, false
	}
	if fwd == lb.DR && ap.Port() != def.port && !def.fwmark && def.port != 0 {
		f.reject(d, "has port %d but direct routing cannot change the port (the service's is %d)", ap.Port(), def.port)
		return ap, false
	}
	return ap, true
}

func (d *decoder) realServer(o *object, def vsDefaults) (lb.RealServer, RealServer, bool) {
	errs := len(d.errs)
	var rs lb.RealServer
	var conf RealServer
	rs.Forward = d.forward(o, def.forward)
	d.tunnel(o, rs.Forward, def.tunnel).apply(&rs.Dest)
	addr := getString(o, "address")
	d.required(addr.St, addr.path(), "ADDRESS[:PORT]")
	if addr.ok() {
		ap, ok := d.destAddr(addr, def, rs.Forward)
		if ok {
			rs.Addr, rs.Port = ap.Addr(), ap.Port()
		}
	}
	rs.Weight = 1
	if w := getInt(o, "weight"); w.ok() {
		if w.V < 0 || w.V > 65535 {
			w.reject(d, "is out of range 0..65535")
		} else {
			rs.Weight = int(w.V)
		}
	}
	for _, k := range [...]struct {
		key string
		dst *uint32
	}{{"upper_threshold", &rs.Upper}, {"lower_threshold", &rs.Lower}} {
		key, dst := k.key, k.dst
		if t := getInt(o, key); t.ok() {
			if t.V < 0 || t.V > 0xffffffff {
				t.reject(d, "is out of range 0..4294967295")
			} else {
				*dst = uint32(t.V)
			}
		}
	}
	if rs.Upper != 0 && rs.Lower > rs.Upper {
		d.fail(o.sub("lower_threshold"), "is above upper_threshold (%d)", rs.Upper)
	}
	rs.Inhibit = getBool(o, "inhibit_on_failure").or(def.inhibit)
	conf.Alpha = getBool(o, "alpha").or(def.alpha)
	conf.NotifyUp, _ = d.command(o, "notify_up", false, false)
	conf.NotifyDown, _ = d.command(o, "notify_down", false, false)

	ok := len(d.errs) == errs
	raw, has := o.get("check")
	switch {
	case has:
		p := o.sub("check")
		items, isList := raw.([]any)
		if !isList {
			items = []any{raw}
		}
		for i, it := range items {
			ip := p
			if isList {
				ip = index(p, i)
			}
			co, ok := d.object(ip, it)
			if !ok {
				continue
			}
			if c, cok := d.check(co); cok && ok {
				if d.finish(&c, rs, conf.Alpha, func() string { return ip }) {
					conf.Checks = append(conf.Checks, c)
				}
			}
			co.unknown(nil, checkHints)
		}
	case def.check != nil && ok:
		c := *def.check
		if d.finish(&c, rs, conf.Alpha, func() string { return def.checkAt + " (for " + o.path + ")" }) {
			conf.Checks = append(conf.Checks, c)
		}
	}
	o.unknown(nil, rsHints)
	return rs, conf, len(d.errs) == errs
}

// parseAddrPort parses "ADDR:PORT", "[V6]:PORT" or (when the port is
// optional) a bare address; the port may be 0 only where noted by the caller.
func parseAddrPort(s string, needPort bool) (netip.AddrPort, string) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if msg := unicastProblem(ap.Addr()); msg != "" {
			return ap, msg
		}
		if ap.Addr().Zone() != "" {
			return ap, "has a zone: not allowed here"
		}
		return ap, ""
	}
	a, msg := parseHost(strings.Trim(s, "[]"))
	if msg != "" {
		return netip.AddrPort{}, "is not ADDRESS:PORT (IPv6: [ADDRESS]:PORT)"
	}
	if needPort {
		return netip.AddrPort{}, "has no port: use ADDRESS:PORT (IPv6: [ADDRESS]:PORT)"
	}
	return netip.AddrPortFrom(a, 0), ""
}

func familyOfAddr(a netip.Addr) lb.Family { return lb.Family(familyOf(a.Unmap())) }

// syncDaemonInstance resolves the sync daemon's instance once the VRRP
// section is decoded.
func (d *decoder) syncDaemonInstance(cfg *Config) {
	sd := cfg.LB.SyncDaemon
	if sd == nil || sd.Instance == "" {
		return
	}
	for _, in := range cfg.VRRP.Instances {
		if in.Name == sd.Instance {
			if !sd.syncIDSet {
				sd.SyncID = in.VRID
			}
			return
		}
	}
	d.bad(sd.path+".instance", sd.Instance, "is not a VRRP instance: name one of vrrp.instances")
}

// syncDaemonMixedFamily refuses a sync daemon together with a real server
// (or sorry server) of the other address family than its virtual server:
// the kernel refuses to add such a destination while a sync daemon runs
// (its protocol cannot carry the connections; ip_vs_ctl.c answers
// EINVAL), so the table would never be complete.
func (d *decoder) syncDaemonMixedFamily(cfg *Config) {
	sd := cfg.LB.SyncDaemon
	if sd == nil {
		return
	}
	for _, vs := range cfg.LB.VirtualServers {
		spec := vs.Spec
		if spec.Service.Key.FWMark != 0 {
			continue // a mark's family is the destinations' (checked elsewhere)
		}
		dests := make([]lb.Dest, 0, len(spec.Reals)+1)
		for _, rs := range spec.Reals {
			dests = append(dests, rs.Dest)
		}
		if spec.Sorry != nil {
			dests = append(dests, *spec.Sorry)
		}
		for _, dst := range dests {
			if familyOfAddr(dst.Addr) != spec.Service.Key.Family {
				d.fail(sd.path, "cannot run with virtual server %q: its real server %s is not of the service's address family, and the kernel refuses such a destination while a sync daemon runs (its protocol does not carry them)",
					spec.Name, netip.AddrPortFrom(dst.Addr, dst.Port))
				break
			}
		}
	}
}
