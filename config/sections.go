package config

// The document's top level, and the small node and telemetry sections.

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
)

func (d *decoder) config(root map[string]any) *Config {
	cfg := &Config{}
	top, _ := d.object("", root)

	switch node, st := getObject(top, "node"); st {
	case good:
		cfg.Node = d.node(node)
	case missing:
		d.fail("node.name", "required: set it, or give the host a hostname")
	}

	// gossip before lb: the virtual servers' health_policy default and
	// rules depend on it.
	switch o, st := getObject(top, "gossip"); st {
	case good:
		cfg.Gossip = d.gossip(o, cfg.Node)
		d.gossipOn = true
	case missing:
		// "gossip:" with no value reads as absent; written, it means a
		// fleet that running alone would silently not be.
		if d.facts != nil {
			if _, null := d.facts.nulls["gossip"]; null {
				d.fail("gossip", "has no value: give at least keyring: FILE (or insecure: true), or remove the key to run without a fleet")
			}
		}
	}
	cfg.Fleet = Fleet{Config: FleetIgnore, StateDir: DefaultStateDir}
	if o, st := getObject(top, "fleet"); st == good {
		cfg.Fleet = d.fleet(o, cfg.Gossip != nil)
	}
	cfg.VRRP.GARP = defaultGARP(false)
	// lb first: instances may track its virtual servers.
	cfg.LB = LB{OnStop: OnStopRemove, ForeignServices: ForeignKeep}
	if o, st := getObject(top, "lb"); st == good {
		cfg.LB = d.lbSection(o)
	}
	if o, st := getObject(top, "vrrp"); st == good {
		cfg.VRRP = d.vrrp(o)
	}
	d.syncDaemonInstance(cfg)
	d.syncDaemonMixedFamily(cfg)
	d.haSuspendTracked(cfg)
	switch {
	case cfg.Empty() && !cfg.Node.AllowEmpty:
		// What an empty or truncated file gives: applied, it would
		// remove every instance and VIP.
		d.warn("", "the configuration has no VRRP instances and no virtual servers: "+
			"a reload to it is refused (it would remove every instance and VIP this node holds); "+
			"if this node is meant to run none, say so with node.allow_empty: true")
	case len(cfg.VRRP.Instances) == 0 && !cfg.Empty():
		d.warn("vrrp.instances", "no VRRP instances are configured")
	}

	cfg.Telemetry = Telemetry{Listen: DefaultListen, LogLevel: DefaultLogLevel, LogFormat: DefaultLogFormat}
	if o, st := getObject(top, "telemetry"); st == good {
		cfg.Telemetry = d.telemetry(o)
	}
	top.unknown(nil, nil)
	return cfg
}

func (d *decoder) required(f got, path, msg string) {
	if f == missing {
		if msg == "" {
			d.fail(path, "required")
		} else {
			d.fail(path, "required: %s", msg)
		}
	}
}

func (d *decoder) node(o *object) Node {
	name := getString(o, "name")
	d.required(name.St, name.path(), "set it, or give the host a hostname")
	if name.ok() && !IsNodeName(name.V) {
		name.reject(d, "is not a valid node name: use 1..253 of A-Z a-z 0-9 _ . -")
	}
	// Not from the environment: only the file can say that it is meant
	// to be empty.
	allowEmpty := getBool(o, "allow_empty")
	o.unknown(nil, nil)
	return Node{Name: name.V, AllowEmpty: allowEmpty.or(false)}
}

func (d *decoder) telemetry(o *object) Telemetry {
	t := Telemetry{Listen: DefaultListen, LogLevel: DefaultLogLevel, LogFormat: DefaultLogFormat}
	if f := getString(o, "listen"); f.ok() {
		if f.V != "" {
			if msg := hostPortProblem(f.V); msg != "" {
				f.reject(d, "%s", msg)
			}
		}
		t.Listen = f.V
	}
	if f := getString(o, "log_level"); f.ok() {
		switch f.V {
		case "debug", "info", "warn", "error":
			t.LogLevel = f.V
		default:
			f.reject(d, "is not a log level: use debug, info, warn or error")
		}
	}
	if f := getString(o, "log_format"); f.ok() {
		switch f.V {
		case "text", "json":
			t.LogFormat = f.V
		default:
			f.reject(d, "is not a log format: use text or json")
		}
	}
	if to, st := getObject(o, "tracing"); st == good {
		t.Tracing = d.tracing(to)
	}
	pprof := getBool(o, "pprof")
	if pprof.ok() {
		t.Pprof = pprof.V
	}
	if where := exposure(t.Listen); t.Pprof && where != "" {
		var from []string
		for _, k := range []string{"telemetry.listen", "telemetry.pprof"} {
			if ev, ok := d.env[k]; ok {
				from = append(from, "$"+ev)
			}
		}
		by := ""
		if len(from) > 0 {
			by = " (set by " + strings.Join(from, " and ") + ")"
		}
		d.warn(pprof.path(), "true serves Go's /debug/pprof/ on %s, %s%s: anybody who can reach the port can take CPU and heap profiles and goroutine dumps, which reveal internals and cost CPU while taken; listen on 127.0.0.1 or [::1], or set pprof: false",
			t.Listen, where, by)
	}
	o.unknown(nil, nil)
	return t
}

// exposure says from where beyond this host a listener on listen (a valid
// host:port) can be reached; "" when only from this host (loopback).
func exposure(listen string) string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil || listen == "" {
		return ""
	}
	if host == "" {
		return "which is every interface"
	}
	if h := strings.ToLower(host); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return "" // RFC 6761: always loopback
	}
	a, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return "a host name, not a loopback address"
	case a.Unmap().IsLoopback():
		return ""
	case a.IsUnspecified():
		return "which is every interface"
	}
	return "not a loopback address"
}

func hostPortProblem(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return `is not host:port (e.g. 127.0.0.1:9730, [::1]:9730 or :9730; "" disables)`
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "has no valid port: use 1..65535"
	}
	if strings.ContainsFunc(host, unicode.IsSpace) {
		return "has white space in the host"
	}
	return ""
}
