package config

import (
	"fmt"
	"strings"
	"time"

	"vigil/vrrp"
)

var syncGroupHints = map[string]string{
	"group":                      `keepalived's group is "instances" here`,
	"sync_group_tracking_weight": `the key is "tracking_weight"`,
	"notify_master":              "use notify: {master: COMMAND}",
	"notify_backup":              "use notify: {backup: COMMAND}",
	"notify_fault":               "use notify: {fault: COMMAND}",
	"notify_stop":                "use notify: {stop: COMMAND}",
	"track_interface":            "trackers belong to the member instances here (track:)",
	"track_script":               "trackers belong to the member instances here (track:)",
}

// syncGroups decodes vrrp.sync_groups, setting Instance.SyncGroup of the
// members. It returns the path of each group by name, for later messages.
func (d *decoder) syncGroups(o *object, c *vrrpCtx, metas []instMeta) map[string]string {
	v := c.v
	byName := map[string]int{}
	for i := range v.Instances {
		if metas[i].nameOK {
			if _, dup := byName[v.Instances[i].Name]; !dup {
				byName[v.Instances[i].Name] = i
			}
		}
	}
	paths := map[string]string{}
	memberOf := map[string]string{} // instance name -> path of its entry in a group
	seen := map[string]string{}
	list, lp, _ := getList(o, "sync_groups")
	for gi, raw := range list {
		go_, ok := d.object(index(lp, gi), raw)
		if !ok {
			continue
		}
		g := SyncGroup{}
		name, nameOK := d.defName(go_, "sync group", seen)
		g.Name = name
		if nameOK {
			paths[name] = go_.path
		}
		members, mp, st := getList(go_, "instances")
		switch {
		case st == missing:
			d.fail(mp, "required: the names of at least 2 instances")
		case st == good && len(members) < 2:
			d.fail(mp, "has %d instance(s): a sync group needs at least 2", len(members))
		}
		inGroup := map[string]string{}
		for j, mraw := range members {
			p := index(mp, j)
			s, isStr := mraw.(string)
			if !isStr {
				d.bad(p, mraw, "must be an instance name, not %s", kind(mraw))
				continue
			}
			i, known := byName[s]
			switch {
			case !known:
				msg := "is not the name of an instance"
				names := make([]string, 0, len(byName))
				for n := range byName {
					names = append(names, n)
				}
				if sg := suggest(s, names); sg != "" {
					msg += fmt.Sprintf("; did you mean %q?", sg)
				}
				d.bad(p, s, "%s", msg)
			case inGroup[s] != "":
				d.bad(p, s, "repeats %s", inGroup[s])
			case memberOf[s] != "":
				d.bad(p, s, "is already in a sync group (%s): an instance belongs to at most one", memberOf[s])
			default:
				inGroup[s], memberOf[s] = p, p
				g.Instances = append(g.Instances, s)
				if nameOK {
					v.Instances[i].SyncGroup = name
				}
			}
		}
		no, nst := getObject(go_, "notify")
		if nst != good {
			no = nil
		}
		g.Notify = d.notify(no, c)
		g.TrackingWeight = getBool(go_, "tracking_weight").or(false)
		go_.unknown(nil, syncGroupHints)
		v.SyncGroups = append(v.SyncGroups, g)
	}
	return paths
}

// groupWeights enforces keepalived's rule that members of a sync group
// track with weight 0 (a failure puts the whole group in FAULT), unless the
// group sets tracking_weight.
func (d *decoder) groupWeights(v *VRRP, metas []instMeta, groupPaths map[string]string) {
	allowed := map[string]bool{}
	for _, g := range v.SyncGroups {
		if g.TrackingWeight {
			allowed[g.Name] = true
		}
	}
	for i := range v.Instances {
		in := &v.Instances[i]
		if in.SyncGroup == "" || allowed[in.SyncGroup] || in.Priority == vrrp.OwnerPriority {
			continue // the owner's own rule already reported its weights
		}
		for _, r := range metas[i].refs {
			if r.weight != 0 {
				d.bad(r.path, r.name, "is %s tracked with weight %d%s, but instance %q is in sync group %q (%s), whose members change state together: trackers there need weight 0 (a failure then puts the group in FAULT), or set tracking_weight: true on the group",
					r.kind.a(), r.weight, r.from(), in.Name, in.SyncGroup, groupPaths[in.SyncGroup])
			}
		}
	}
}

// strictFields are the instance keys strict mode looks at.
type strictFields struct {
	delay       field[time.Duration]
	accept      field[bool]
	lpna        field[bool]
	auth        field[bool]
	unicast     bool
	unicastPath string
}

const strictConflict = "conflicts with strict: true: "

// strictInstance reports the instance settings that strict mode forbids
// (keepalived vrrp_strict, RFC 5798 / RFC 3768 behaviour only).
func (d *decoder) strictInstance(in *Instance, m *instMeta, f strictFields) {
	if f.unicast {
		d.fail(f.unicastPath, strictConflict+"VRRP sends its adverts by multicast (RFC 5798); remove unicast, or strict")
	}
	if f.auth.ok() && in.AuthType != vrrp.AuthNone && in.Version == 2 {
		d.fail(f.auth.path(), strictConflict+"authentication is not part of RFC 3768 or RFC 5798; remove auth, or strict")
	}
	if f.delay.ok() && f.delay.V != 0 {
		f.delay.reject(d, strictConflict+"preempt_delay is not part of RFC 5798; remove it, or strict")
	}
	if f.accept.ok() && f.accept.V && in.Version == 2 && in.Priority != vrrp.OwnerPriority {
		f.accept.reject(d, strictConflict+"VRRPv2 (RFC 3768) has no Accept_Mode: only the address owner accepts traffic for the VIPs; remove it, or use version 3")
	}
	if f.lpna.ok() && !f.lpna.V {
		f.lpna.reject(d, strictConflict+"a master ignores lower-priority adverts (RFC 5798); remove it, or strict")
	}
	if m.family == 6 && m.firstVIPValid && len(in.VIPs) > 0 && !in.VIPs[0].Prefix.Addr().IsLinkLocalUnicast() {
		d.bad(m.vipPaths[0], m.vipRaw[0], strictConflict+"the first IPv6 VIP must be link-local (RFC 5798 §5.2.9); put a fe80:: address first")
	}
}

// vmac decodes vmac: false, true (the macvlan is named vrrp.<VRID>) or the
// macvlan's name.
func (d *decoder) vmac(o *object, in *Instance, m *instMeta) string {
	raw, present := o.get("vmac")
	p := o.sub("vmac")
	if !present {
		return ""
	}
	switch v := raw.(type) {
	case nil:
		d.fail(p, "has no value; give one or remove the key")
	case bool:
		if v && m.vridOK {
			m.vmacPath, m.vmacDefault = p, true
			return fmt.Sprintf("vrrp.%d", in.VRID)
		}
	case string:
		switch strings.ToLower(v) {
		case "", "yes", "no", "on", "off", "y", "n":
			d.bad(p, v, "is not a macvlan name: use true (named vrrp.<VRID>), false, or the macvlan's name")
			return ""
		}
		if msg := ifnameProblem(v); msg != "" {
			d.bad(p, v, "%s", msg)
			return ""
		}
		m.vmacPath = p
		return v
	default:
		d.bad(p, raw, "must be true, false or the macvlan's name, not %s", kind(raw))
	}
	return ""
}
