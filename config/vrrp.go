package config

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"

	"vigil/vrrp"
)

// IsInstanceName reports whether s is a valid name of an instance, a
// tracker or a virtual server: 1 to 64 of [A-Za-z0-9_.-].
func IsInstanceName(s string) bool { return isName(s, 64) }

// IsNodeName reports whether s is a valid node name: 1 to 253 of
// [A-Za-z0-9_.-].
func IsNodeName(s string) bool { return isName(s, 253) }

// isName is checked by hand: the regexp ^[A-Za-z0-9_.-]{1,253}$ compiles
// to a program of hundreds of instructions, kept on the heap for the
// process's life (about 80 kB here, as much again in kaimport).
func isName(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// keepalived spellings, explained.
var instanceHints = map[string]string{
	"virtual_router_id":          `keepalived's virtual_router_id is "vrid" here`,
	"advert_int":                 `keepalived's advert_int is "advert_interval" here, with a unit (1s)`,
	"nopreempt":                  `keepalived's nopreempt is "preempt: false" here`,
	"state":                      "vigil has no initial state: priority decides, and the address owner (255) starts as master",
	"virtual_ipaddress":          `keepalived's virtual_ipaddress is "vips" here`,
	"unicast_src_ip":             `use unicast: {source: ADDRESS, peers: [...]}`,
	"unicast_peer":               `use unicast: {peers: [ADDRESS, ...]}`,
	"authentication":             `use auth: {type: pass, password: ...}`,
	"auth_type":                  `use auth: {type: pass, password: ...}`,
	"auth_pass":                  `use auth: {type: pass, password: ...}`,
	"garp_master_repeat":         "use garp: {repeat: N}",
	"garp_master_delay":          "use garp: {delay: 5s}",
	"garp_master_refresh":        "use garp: {refresh: 60s}",
	"garp_master_refresh_repeat": "use garp: {refresh_repeat: N}",
	"garp_lower_prio_repeat":     "use garp: {lower_prio_repeat: N}",
	"garp_lower_prio_delay":      "use garp: {lower_prio_delay: 5s}",
	"track_interface":            "use track: {interfaces: [IFNAME, {name: IFNAME, weight: N}]}",
	"track_script":               "use track: {scripts: [NAME, ...]} with the scripts defined under vrrp.scripts",
	"track_file":                 "use track: {files: [NAME, ...]} with the files defined under vrrp.files",
	"track_process":              "use track: {processes: [NAME, ...]} with the processes defined under vrrp.processes",
	"notify_master":              "use notify: {master: COMMAND}",
	"notify_backup":              "use notify: {backup: COMMAND}",
	"notify_fault":               "use notify: {fault: COMMAND}",
	"notify_stop":                "use notify: {stop: COMMAND}",
	"use_vmac":                   "use vmac: true (or the macvlan's name)",
	"strict_mode":                "strict mode is global here: vrrp.strict",
	"sync_group":                 "list the instance under vrrp.sync_groups[].instances",
}

var vrrpHints = map[string]string{
	"vrrp_script":              `keepalived's vrrp_script blocks are the list "scripts" here`,
	"vrrp_sync_group":          `keepalived's vrrp_sync_group blocks are the list "sync_groups" here`,
	"vrrp_track_process":       `keepalived's vrrp_track_process blocks are the list "processes" here`,
	"track_process":            `tracked processes are the list "processes" here`,
	"track_file":               `tracked files are the list "files" here`,
	"vrrp_strict":              `keepalived's vrrp_strict is "strict" here`,
	"vrrp_notify_fifo":         `keepalived's vrrp_notify_fifo is "notify_fifo" here`,
	"vrrp_garp_master_refresh": "use garp: {refresh: 60s}",
}

// defaultGARP is the GARP of a config that sets none. Strict mode sends one
// message on becoming master and nothing else (RFC 5798).
func defaultGARP(strict bool) GARP {
	g := GARP{
		Repeat: DefaultGARPRepeat, Delay: DefaultGARPDelay, Interval: DefaultGARPInterval,
		Refresh: DefaultGARPRefresh, RefreshRepeat: DefaultRefreshRepeat,
	}
	if strict {
		g.Repeat, g.Delay = 1, 0
	}
	g.LowerPrioRepeat, g.LowerPrioDelay = g.Repeat, g.Delay
	if strict {
		g.LowerPrioRepeat, g.LowerPrioDelay = 0, 0
	}
	return g
}

// garpKeys are the keys one garp: mapping gave, for strict mode and for the
// lower_prio_* defaults.
type garpKeys struct {
	repeat, refreshRepeat, lowerRepeat   field[int64]
	delay, interval, refresh, lowerDelay field[time.Duration]
}

// garp decodes a garp: mapping (o may be nil for none), each key defaulting
// from def. lower_prio_repeat and lower_prio_delay follow this level's
// repeat and delay unless this level or parent (the vrrp.garp keys, for an
// instance) gives them.
func (d *decoder) garp(o *object, def GARP, parent garpKeys, strict bool) (GARP, garpKeys) {
	g := def
	var k garpKeys
	if o == nil {
		o, _ = d.object("", nil)
	}
	if k.repeat = getInt(o, "repeat"); k.repeat.ok() {
		if k.repeat.V < 1 || k.repeat.V > 100 {
			k.repeat.reject(d, "is out of range 1..100")
		} else {
			g.Repeat = int(k.repeat.V)
		}
	}
	if k.delay = getDuration(o, "delay"); k.delay.ok() {
		if k.delay.V < 0 || k.delay.V > 1000*time.Second {
			k.delay.reject(d, "is out of range 0s..1000s")
		} else {
			g.Delay = k.delay.V
		}
	}
	if k.interval = getDuration(o, "interval"); k.interval.ok() {
		if k.interval.V < 0 || k.interval.V > time.Second {
			k.interval.reject(d, "is out of range 0s..1s")
		} else {
			g.Interval = k.interval.V
		}
	}
	if k.refresh = getDuration(o, "refresh"); k.refresh.ok() {
		if k.refresh.V != 0 && (k.refresh.V < time.Second || k.refresh.V > time.Hour) {
			k.refresh.reject(d, "is out of range: use 0s (off) or 1s..1h")
		} else {
			g.Refresh = k.refresh.V
		}
	}
	if k.refreshRepeat = getInt(o, "refresh_repeat"); k.refreshRepeat.ok() {
		if k.refreshRepeat.V < 1 || k.refreshRepeat.V > 100 {
			k.refreshRepeat.reject(d, "is out of range 1..100")
		} else {
			g.RefreshRepeat = int(k.refreshRepeat.V)
		}
	}
	if k.lowerRepeat = getInt(o, "lower_prio_repeat"); k.lowerRepeat.ok() {
		if k.lowerRepeat.V < 0 || k.lowerRepeat.V > 100 {
			k.lowerRepeat.reject(d, "is out of range 0..100 (0 = none)")
		} else {
			g.LowerPrioRepeat = int(k.lowerRepeat.V)
		}
	}
	if k.lowerDelay = getDuration(o, "lower_prio_delay"); k.lowerDelay.ok() {
		if k.lowerDelay.V < 0 || k.lowerDelay.V > 1000*time.Second {
			k.lowerDelay.reject(d, "is out of range 0s..1000s")
		} else {
			g.LowerPrioDelay = k.lowerDelay.V
		}
	}
	if !k.lowerRepeat.set() && !parent.lowerRepeat.set() {
		g.LowerPrioRepeat = g.Repeat
		if strict {
			g.LowerPrioRepeat = 0
		}
	}
	if !k.lowerDelay.set() && !parent.lowerDelay.set() {
		g.LowerPrioDelay = g.Delay
		if strict {
			g.LowerPrioDelay = 0
		}
	}
	o.unknown(nil, map[string]string{
		"master_repeat": `the key is "repeat"`, "master_delay": `the key is "delay"`,
		"master_refresh": `the key is "refresh"`,
	})
	if strict {
		const why = "strict mode (RFC 5798) announces once on becoming master, with no repeats"
		if k.repeat.ok() && k.repeat.V != 1 {
			k.repeat.reject(d, "conflicts with strict: true: %s; use 1 or remove it", why)
		}
		if k.delay.ok() && k.delay.V != 0 {
			k.delay.reject(d, "conflicts with strict: true: %s; use 0s or remove it", why)
		}
		if k.refresh.ok() && k.refresh.V != 0 {
			k.refresh.reject(d, "conflicts with strict: true: %s; use 0s or remove it", why)
		}
		if k.lowerRepeat.ok() && k.lowerRepeat.V != 0 {
			k.lowerRepeat.reject(d, "conflicts with strict: true: %s; use 0 or remove it", why)
		}
		if k.lowerDelay.ok() && k.lowerDelay.V != 0 {
			k.lowerDelay.reject(d, "conflicts with strict: true: %s; use 0s or remove it", why)
		}
	}
	return g, k
}

// instMeta is what the cross-instance checks need to know about an
// instance, beyond its values.
type instMeta struct {
	path          string
	nameOK        bool
	ifOK, vridOK  bool
	prioOK        bool
	family        int      // 0 when no VIP was valid
	vipPaths      []string // per Instance.VIPs entry
	vipRaw        []any
	firstVIPValid bool
	refs          []refMeta // the instance's valid track references
	vmacPath      string    // "" when the instance has no virtual MAC
	vmacDefault   bool      // the name was made from the VRID
}

// vrrpCtx is what an instance needs from the vrrp: mapping around it.
type vrrpCtx struct {
	strict     bool
	garp       GARP
	garpKeys   garpKeys
	scriptUser string
	v          *VRRP
	defs       map[trackKind]map[string]trackDef // valid, unique names only
}

func (d *decoder) vrrp(o *object) VRRP {
	v := VRRP{}
	strict := getBool(o, "strict")
	v.Strict = strict.or(false)
	c := &vrrpCtx{strict: v.Strict, v: &v}

	g, st := getObject(o, "garp")
	if st != good {
		g = nil
	}
	v.GARP, c.garpKeys = d.garp(g, defaultGARP(v.Strict), garpKeys{}, v.Strict)
	c.garp = v.GARP

	if f := getString(o, "script_user"); f.ok() && f.V != "" {
		if msg := d.userProblem(f.V); msg != "" {
			f.reject(d, "%s", msg)
		} else {
			v.ScriptUser = f.V
		}
	}
	c.scriptUser = v.ScriptUser

	c.defs = map[trackKind]map[string]trackDef{}
	d.scripts(o, c)
	d.files(o, c)
	d.processes(o, c)
	c.defs[kindVirtualServer] = map[string]trackDef{}
	for _, name := range d.vsNames {
		c.defs[kindVirtualServer][name] = trackDef{}
	}

	list, p, _ := getList(o, "instances")
	metas := make([]instMeta, 0, len(list))
	for i, raw := range list {
		io, ok := d.object(index(p, i), raw)
		if !ok {
			continue
		}
		in, m := d.instance(io, c)
		v.Instances = append(v.Instances, in)
		metas = append(metas, m)
	}
	d.crossCheck(v.Instances, metas)
	groupPaths := d.syncGroups(o, c, metas)
	d.groupWeights(&v, metas, groupPaths)
	d.unusedTrackers(c, metas)

	fifo := getString(o, "notify_fifo")
	if fifo.ok() && fifo.V != "" {
		if msg := d.fifoProblem(fifo.V); msg != "" {
			fifo.reject(d, "%s", msg)
		} else {
			v.NotifyFIFO = fifo.V
		}
	}
	v.NotifyFIFOGroup = d.fifoGroup(o, fifo)
	o.unknown(nil, vrrpHints)
	return v
}

// fifoGroup decodes vrrp.notify_fifo_group: a group name or a numeric gid
// (written as a number or a string). A group that does not exist now is
// a warning, not an error: it may be created later.
func (d *decoder) fifoGroup(o *object, fifo field[string]) string {
	f, ok := start[string](o, "notify_fifo_group")
	if !ok {
		return ""
	}
	switch v := f.Raw.(type) {
	case string:
		f.V = v
	default:
		if n, ok := toInt(v); ok && kind(v) == "an integer" {
			if n < 0 {
				f.reject(d, "is out of range: a gid is 0..%d", maxGID)
				return ""
			}
			f.V = strconv.FormatInt(n, 10)
		} else {
			f.reject(d, "must be a group name or a numeric gid, not %s", kind(v))
			return ""
		}
	}
	if f.V == "" {
		return ""
	}
	if msg := groupProblem(f.V); msg != "" {
		f.reject(d, "%s", msg)
		return ""
	}
	if !fifo.set() || fifo.ok() && fifo.V == "" {
		d.warn(f.path(), "%q has no effect without vrrp.notify_fifo", f.V)
	}
	if msg := groupMissing(f.V); msg != "" {
		d.warn(f.path(), "%s", msg)
	}
	return f.V
}

func (d *decoder) crossCheck(ins []Instance, metas []instMeta) {
	names := map[string]int{}
	type ident struct {
		iface  string
		vrid   uint8
		family int
	}
	idents := map[ident]int{}
	vips := map[netip.Addr]string{} // address -> path of first use
	vipOwner := map[netip.Addr]int{}
	vmacs := map[string]int{}
	ifaces := map[string]int{}
	for i := range ins {
		if metas[i].ifOK {
			if _, dup := ifaces[ins[i].Interface]; !dup {
				ifaces[ins[i].Interface] = i
			}
		}
	}
	for i := range ins {
		in, m := &ins[i], &metas[i]
		if m.nameOK {
			if j, dup := names[in.Name]; dup {
				d.bad(m.path+".name", in.Name, "is already the name of %s", metas[j].path)
			} else {
				names[in.Name] = i
			}
		}
		if m.ifOK && m.vridOK && m.family != 0 {
			id := ident{in.Interface, in.VRID, m.family}
			if j, dup := idents[id]; dup {
				d.bad(m.path+".vrid", in.VRID, "is already used by instance %q (%s) on %s for IPv%d; a VRID must be unique per interface and address family",
					ins[j].Name, metas[j].path, in.Interface, m.family)
			} else {
				idents[id] = i
			}
		}
		for k, vip := range in.VIPs {
			a := vip.Prefix.Addr()
			if first, dup := vips[a]; dup && vipOwner[a] != i {
				d.bad(m.vipPaths[k], m.vipRaw[k], "is also a VIP of instance %q (%s); a VIP belongs to one instance",
					ins[vipOwner[a]].Name, first)
			} else if !dup {
				vips[a] = m.vipPaths[k]
				vipOwner[a] = i
			}
		}
		if m.vmacPath != "" {
			hint := ""
			if m.vmacDefault {
				hint = " (vmac: true names it vrrp.<VRID>; give it a name of its own, vmac: NAME)"
			}
			if j, dup := vmacs[in.VMAC]; dup {
				d.bad(m.vmacPath, in.VMAC, "is already the virtual MAC interface of instance %q (%s); each instance needs its own macvlan%s",
					ins[j].Name, metas[j].path, hint)
			} else if j, clash := ifaces[in.VMAC]; clash {
				d.bad(m.vmacPath, in.VMAC, "is the interface of instance %q (%s): the macvlan needs a name of its own%s",
					ins[j].Name, metas[j].path, hint)
			} else {
				vmacs[in.VMAC] = i
			}
		}
	}
}

func (d *decoder) instance(o *object, c *vrrpCtx) (Instance, instMeta) {
	m := instMeta{path: o.path}
	in := Instance{GARP: c.garp}

	name := getString(o, "name")
	d.required(name.St, name.path(), "")
	if name.ok() && !IsInstanceName(name.V) {
		name.reject(d, "is not a valid instance name: use 1..64 of A-Z a-z 0-9 _ . -")
	}
	in.Name, m.nameOK = name.V, name.ok()

	iface := getString(o, "interface")
	d.required(iface.St, iface.path(), "")
	if iface.ok() {
		if msg := ifnameProblem(iface.V); msg != "" {
			iface.reject(d, "%s", msg)
		}
	}
	in.Interface, m.ifOK = iface.V, iface.ok()

	vrid := getInt(o, "vrid")
	d.required(vrid.St, vrid.path(), "1..255")
	if vrid.ok() && (vrid.V < 1 || vrid.V > 255) {
		vrid.reject(d, "is out of range 1..255")
	}
	in.VRID, m.vridOK = uint8(vrid.or(0)), vrid.ok()

	prio := getInt(o, "priority")
	if prio.ok() {
		switch {
		case prio.V == 0:
			prio.reject(d, "is reserved for a master that resigns: use 1..254, or 255 for the address owner")
		case prio.V < 1 || prio.V > 255:
			prio.reject(d, "is out of range 1..255")
		}
	}
	in.Priority = uint8(prio.or(vrrp.DefaultPriority))
	m.prioOK = prio.ok() || !prio.set()
	owner := in.Priority == vrrp.OwnerPriority

	version := getInt(o, "version")
	if version.ok() && version.V != 2 && version.V != 3 {
		version.reject(d, "is not a VRRP version: use 2 or 3")
	}
	in.Version = uint8(version.or(3))

	interval := getDuration(o, "advert_interval")
	in.AdvertInterval = interval.or(time.Second)

	preempt := getBool(o, "preempt")
	in.Preempt = preempt.or(true)
	delay := getDuration(o, "preempt_delay")
	if delay.ok() && (delay.V < 0 || delay.V > 1000*time.Second) {
		delay.reject(d, "is out of range 0s..1000s")
	}
	in.PreemptDelay = delay.or(0)

	// Strict mode: Accept_Mode only for the owner unless asked for (RFC 5798
	// default False), as keepalived.
	accept := getBool(o, "accept")
	in.Accept = accept.or(!c.strict || owner)

	checksum := getString(o, "checksum")
	if checksum.ok() {
		switch checksum.V {
		case "pseudo_header":
			in.Checksum = vrrp.ChecksumPseudoHeader
		case "message_only":
			in.Checksum = vrrp.ChecksumMessageOnly
		default:
			checksum.reject(d, "is not a checksum form: use pseudo_header (keepalived, FRR) or message_only (RFC 9568, Cisco, Juniper, Arista)")
		}
	}

	lpna := getBool(o, "lower_prio_no_advert")
	in.LowerPrioNoAdvert = lpna.or(c.strict)

	uni := d.unicast(o)
	auth := d.auth(o, &in)

	// VIPs.
	list, vp, st := getList(o, "vips")
	switch {
	case st == missing:
		d.fail(vp, "required: 1..255 addresses")
	case st == good && len(list) == 0:
		d.fail(vp, "is empty: an instance needs 1..255 addresses")
	case len(list) > 255:
		d.fail(vp, "has %d addresses: an instance advertises at most 255", len(list))
	}
	seen := map[netip.Addr]string{}
	for j, raw := range list {
		p := index(vp, j)
		vip, labelPath, ok := d.vip(p, raw, in.Interface)
		if !ok {
			continue
		}
		if _, isStr := raw.(string); !isStr {
			raw = vip.Prefix.String() // show the address of a mapping element
		}
		a := vip.Prefix.Addr()
		fam := 4
		if a.Is6() {
			fam = 6
		}
		if m.family == 0 {
			m.family = fam
			m.firstVIPValid = j == 0
		} else if fam != m.family {
			d.bad(p, raw, "is IPv%d but the instance's first VIP is IPv%d: one family per instance (use a second instance for the other)", fam, m.family)
			continue
		}
		if first, dup := seen[a]; dup {
			d.bad(p, raw, "repeats the address of %s", first)
			continue
		}
		seen[a] = p
		if vip.Label != "" && fam == 6 {
			d.bad(labelPath, vip.Label, "is set, but labels are for IPv4 addresses only")
			continue
		}
		in.VIPs = append(in.VIPs, vip)
		m.vipPaths = append(m.vipPaths, p)
		m.vipRaw = append(m.vipRaw, raw)
	}

	g, gst := getObject(o, "garp")
	if gst != good {
		g = nil
	}
	in.GARP, _ = d.garp(g, c.garp, c.garpKeys, c.strict)

	in.Track = d.track(o, c, &m)
	in.DontTrackPrimary = getBool(o, "dont_track_primary").or(false)
	in.Notify = d.notifyKey(o, c)
	in.VMAC = d.vmac(o, &in, &m)

	// Rules across fields.
	if version.ok() && in.Version == 2 && m.family == 6 {
		version.reject(d, "cannot carry IPv6: IPv6 instances need version 3")
	}
	if version.ok() || !version.set() {
		if interval.ok() {
			if _, err := vrrp.IntervalField(in.Version, interval.V); err != nil {
				if in.Version == 2 {
					interval.reject(d, "is not a whole number of seconds in 1s..255s (VRRPv2 advertises whole seconds)")
				} else {
					interval.reject(d, "is not a multiple of 10ms in 10ms..40.95s")
				}
			}
		}
		if checksum.set() && in.Version == 2 {
			checksum.reject(d, "applies to VRRPv3 over IPv4 only; remove it for version 2")
		}
		if auth.set() && in.Version == 3 && in.AuthType != vrrp.AuthNone {
			d.fail(auth.path(), "authentication is VRRPv2 only (RFC 5798 removed it): remove auth or set version: 2")
		}
	}
	if checksum.ok() && m.family == 6 {
		checksum.reject(d, "applies to VRRPv3 over IPv4 only; IPv6 always includes the pseudo-header")
	}
	if delay.set() && preempt.ok() && !preempt.V {
		d.bad(delay.path(), delay.Raw, "is set but preempt is false: remove one of them")
	}
	if uni.u != nil {
		in.Unicast = uni.u
		if m.family != 0 {
			if uni.src.ok() && in.Unicast.Source.IsValid() && familyOf(in.Unicast.Source) != m.family {
				uni.src.reject(d, "is IPv%d but the instance's VIPs are IPv%d", familyOf(in.Unicast.Source), m.family)
			}
			for k, pa := range in.Unicast.Peers {
				if familyOf(pa) != m.family {
					d.bad(uni.peerPaths[k], pa.String(), "is IPv%d but the instance's VIPs are IPv%d", familyOf(pa), m.family)
				}
			}
		}
	}

	o.unknown(nil, instanceHints)

	if c.strict {
		d.strictInstance(&in, &m, strictFields{
			delay: delay, accept: accept, lpna: lpna, auth: auth,
			unicast: uni.u != nil, unicastPath: o.sub("unicast"),
		})
	}
	if owner && m.prioOK {
		for _, r := range m.refs {
			if r.weight != 0 {
				d.bad(r.path, r.name, "is %s tracked with weight %d%s, but the address owner's priority (255) cannot change: its trackers need weight 0 (a failure then means FAULT)",
					r.kind.a(), r.weight, r.from())
			}
		}
	}

	// keepalived-style warnings.
	if in.Priority == vrrp.OwnerPriority {
		if preempt.ok() && !preempt.V {
			d.warn(preempt.path(), "ignored for the address owner (priority 255), which always preempts")
		}
		if delay.ok() && delay.V > 0 {
			d.warn(delay.path(), "ignored for the address owner (priority 255), which takes over at once")
		}
		if accept.ok() && !accept.V {
			d.warn(accept.path(), "false is ignored for the address owner (priority 255), which always accepts")
		}
	}
	if m.family == 6 && m.firstVIPValid && len(in.VIPs) > 0 && !in.VIPs[0].Prefix.Addr().IsLinkLocalUnicast() && !c.strict {
		d.warn(m.vipPaths[0], "the first IPv6 VIP should be link-local (RFC 5798 §5.2.9); some VRRP implementations log or drop such adverts")
	}
	if in.Unicast != nil && in.Unicast.Source.IsValid() && in.Priority != vrrp.OwnerPriority {
		for k, v := range in.VIPs {
			if v.Prefix.Addr() == in.Unicast.Source {
				d.warn(uni.src.path(), "%s is also %s; a backup does not hold it, so use the node's own address", in.Unicast.Source, m.vipPaths[k])
			}
		}
	}
	return in, m
}

func familyOf(a netip.Addr) int {
	if a.Is6() {
		return 6
	}
	return 4
}

type unicastResult struct {
	u         *Unicast
	src       field[string]
	peerPaths []string
}

func (d *decoder) unicast(o *object) unicastResult {
	var r unicastResult
	uo, st := getObject(o, "unicast")
	if st != good {
		return r
	}
	u := &Unicast{}
	r.u = u
	r.src = getString(uo, "source")
	if r.src.ok() {
		if a, msg := parseHost(r.src.V); msg != "" {
			r.src.reject(d, "%s", msg)
		} else {
			u.Source = a
		}
	}
	if ttl := getInt(uo, "min_ttl"); ttl.ok() {
		if ttl.V < 1 || ttl.V > 255 {
			ttl.reject(d, "is out of range 1..255")
		} else {
			u.MinTTL = uint8(ttl.V)
		}
	}
	list, pp, pst := getList(uo, "peers")
	switch {
	case pst == missing:
		d.fail(pp, "required: unicast needs at least one peer (remove unicast: to use multicast)")
	case pst == good && len(list) == 0:
		d.fail(pp, "is empty: unicast needs at least one peer, and an empty list never falls back to multicast (remove unicast: to use multicast)")
	}
	seen := map[netip.Addr]string{}
	for j, raw := range list {
		p := index(pp, j)
		s, ok := raw.(string)
		if !ok {
			d.bad(p, raw, "must be an IP address, not %s", kind(raw))
			continue
		}
		a, msg := parseHost(s)
		switch {
		case msg != "":
			d.bad(p, raw, "%s", msg)
		case seen[a] != "":
			d.bad(p, raw, "repeats %s", seen[a])
		case u.Source.IsValid() && a == u.Source:
			d.bad(p, raw, "is the unicast source: a node is not its own peer")
		default:
			seen[a] = p
			u.Peers = append(u.Peers, a)
			r.peerPaths = append(r.peerPaths, p)
		}
	}
	uo.unknown(nil, nil)
	return r
}

// auth decodes auth: into in; it returns a field for the mapping itself.
func (d *decoder) auth(o *object, in *Instance) field[bool] {
	f := field[bool]{p: o.sub("auth")}
	ao, st := getObject(o, "auth")
	f.St = st
	if st != good {
		return f
	}
	typ := getString(ao, "type")
	d.required(typ.St, typ.path(), "none or pass")
	pw, pwSet := ao.get("password")
	pwPath := ao.sub("password")
	if typ.ok() {
		switch strings.ToLower(typ.V) {
		case "none":
			in.AuthType = vrrp.AuthNone
			if pwSet {
				d.fail(pwPath, "is set but auth type is none")
			}
		case "pass":
			in.AuthType = vrrp.AuthPass
			// The password is never echoed into messages.
			s, isStr := pw.(string)
			switch {
			case !pwSet:
				d.fail(pwPath, "required with type pass: 1..8 bytes")
			case !isStr:
				d.fail(pwPath, "must be a string (quote it), not %s", kind(pw))
			case len(s) < 1 || len(s) > 8:
				d.fail(pwPath, "is %d bytes long: a VRRPv2 password is 1..8 bytes (keepalived compatible)", len(s))
			default:
				in.AuthPassword = s
			}
		case "ah":
			typ.reject(d, "is not supported: IPsec AH authentication is weak and not interoperable; use none or pass")
		default:
			typ.reject(d, "is not an auth type: use none or pass")
		}
	}
	ao.unknown(nil, nil)
	return f
}

// vip decodes one vips element: "ADDR[/LEN]" or {address, dev, label}. It
// returns the path of the label for later checks.
func (d *decoder) vip(p string, raw any, iface string) (VIP, string, bool) {
	switch v := raw.(type) {
	case string:
		pfx, msg := parsePrefix(v)
		if msg != "" {
			d.bad(p, raw, "%s", msg)
			return VIP{}, "", false
		}
		return VIP{Prefix: pfx, Dev: iface}, "", true
	case map[string]any, map[any]any:
		o, _ := d.object(p, raw)
		vip := VIP{Dev: iface}
		ok := true
		addr := getString(o, "address")
		d.required(addr.St, addr.path(), "ADDRESS[/LENGTH]")
		if addr.ok() {
			pfx, msg := parsePrefix(addr.V)
			if msg != "" {
				addr.reject(d, "%s", msg)
			}
			vip.Prefix = pfx
		}
		ok = ok && addr.ok()
		if dev := getString(o, "dev"); dev.ok() {
			if msg := ifnameProblem(dev.V); msg != "" {
				dev.reject(d, "%s", msg)
				ok = false
			} else {
				vip.Dev = dev.V
			}
		} else if dev.set() {
			ok = false
		}
		label := getString(o, "label")
		if label.ok() && label.V != "" {
			switch {
			case len(label.V) > 15:
				label.reject(d, "is longer than 15 bytes")
			case label.V != vip.Dev && !strings.HasPrefix(label.V, vip.Dev+":"):
				label.reject(d, "must be the interface name %q or start with %q (iproute2 rule)", vip.Dev, vip.Dev+":")
			case strings.ContainsFunc(label.V, unicode.IsSpace):
				label.reject(d, "has white space")
			default:
				vip.Label = label.V
			}
		}
		ok = ok && label.St != invalid
		o.unknown(nil, map[string]string{"addr": `the key is "address"`, "ip": `the key is "address"`})
		return vip, label.path(), ok
	}
	d.bad(p, raw, "must be an address (\"192.0.2.100/24\") or a mapping {address, dev, label}, not %s", kind(raw))
	return VIP{}, "", false
}

// parsePrefix parses "ADDR" (as /32 or /128) or "ADDR/LEN", keeping the
// address bits.
func parsePrefix(s string) (netip.Prefix, string) {
	const notIP = "is not an IP address or prefix"
	var pfx netip.Prefix
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			if strings.Contains(s, "%") {
				return pfx, "has a zone: VIPs take none (dev names the interface)"
			}
			return pfx, notIP
		}
		pfx = p
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return pfx, notIP
		}
		if a.Zone() != "" {
			return pfx, "has a zone: VIPs take none (dev names the interface)"
		}
		pfx = netip.PrefixFrom(a, a.BitLen())
	}
	if msg := unicastProblem(pfx.Addr()); msg != "" {
		return netip.Prefix{}, msg
	}
	return pfx, ""
}

// parseHost parses a unicast source or peer address.
func parseHost(s string) (netip.Addr, string) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		if strings.Contains(s, "/") {
			return a, "is not an IP address (no prefix length here)"
		}
		return a, "is not an IP address"
	}
	if a.Zone() != "" {
		return netip.Addr{}, "has a zone: link-local peers are reached through the instance interface"
	}
	if msg := unicastProblem(a); msg != "" {
		return netip.Addr{}, msg
	}
	return a, ""
}

var broadcast4 = netip.AddrFrom4([4]byte{255, 255, 255, 255})

func unicastProblem(a netip.Addr) string {
	switch {
	case a.Is4In6():
		return "is an IPv4-mapped IPv6 address: write it as IPv4"
	case a.IsUnspecified():
		return "is the unspecified address"
	case a.IsMulticast():
		return "is a multicast address"
	case a.IsLoopback():
		return "is a loopback address"
	case a == broadcast4:
		return "is the broadcast address"
	}
	return ""
}

// ifnameProblem applies the kernel's dev_valid_name rules.
func ifnameProblem(s string) string {
	switch {
	case s == "":
		return "is not a valid interface name: it is empty"
	case len(s) > 15:
		return "is not a valid interface name: longer than 15 bytes"
	case s == "." || s == "..":
		return "is not a valid interface name"
	case strings.ContainsRune(s, '/'):
		return "is not a valid interface name: it contains '/'"
	case strings.ContainsRune(s, ':'):
		return "is not a valid interface name: it contains ':' (eth0:1 is an address label; give it as a VIP label)"
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == 0 }):
		return "is not a valid interface name: it contains white space"
	}
	return ""
}

// haSuspendTracked warns about an instance tracking a virtual server with
// ha_suspend: once the instance gives up its VIP because the service
// failed, the checks stop and the service never comes back up there.
func (d *decoder) haSuspendTracked(cfg *Config) {
	suspends := map[string]bool{}
	for _, vs := range cfg.LB.VirtualServers {
		suspends[vs.Spec.Name] = vs.HASuspend
	}
	for i, in := range cfg.VRRP.Instances {
		for _, ref := range in.Track.VirtualServers {
			if suspends[ref.Name] {
				d.warn(index("vrrp.instances", i)+".track.virtual_servers", "%q has ha_suspend: after %s gives up its VIP because the service failed, the service is no longer checked here and %s will not take the VIP back; drop one of them",
					ref.Name, in.Name, in.Name)
			}
		}
	}
}
