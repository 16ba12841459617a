package config

// The keys of vigil.yaml as a table: what `vigil config schema` emits as a
// JSON Schema and docs/config-reference.md lists. The decoder does not read
// this table (it stays as it is); tests keep the two equal instead: every
// key here is read by the decoder at its path, and every key name the
// decoder's source spells is refused where the table does not have it.

// Kind is the shape of a key's value.
type Kind string

// The kinds. Composite ones (VIP, TrackRef, ...) are the unions vigil
// accepts in one place.
const (
	KString   Kind = "string"
	KInt      Kind = "integer"
	KBool     Kind = "boolean"
	KDuration Kind = "duration" // Go syntax with a unit, or 0
	KCommand  Kind = "command"  // [PROGRAM, ARG...] or a program path
	KObject   Kind = "object"
	KList     Kind = "list"       // of Elem, or of objects with Keys
	KStrMap   Kind = "string-map" // any keys, string values
	KVIP      Kind = "vip"        // ADDRESS[/LEN] or {address, dev, label}
	KTrackRef Kind = "track-ref"  // NAME or {name, weight, reverse}
	KStatus   Kind = "status"     // CODE, "LOW-HIGH", or a list of them
	KHTTPVer  Kind = "http-version"
	KVMAC     Kind = "vmac"   // true, false or a macvlan name
	KChecks   Kind = "checks" // one check, or a list of them
	KSorry    Kind = "sorry"  // ADDRESS[:PORT] or {address, forward, tunnel}
)

// Key is one key of the file.
type Key struct {
	Name     string
	Kind     Kind
	Elem     Kind // the elements of a KList of scalars
	Desc     string
	Default  any      // nil: none, or one that depends on other keys (Desc says)
	Enum     []string // the values a string may take
	Min, Max *int64   // an integer's range
	Required bool
	// Keys are those of a KObject, of a KList's objects, of KChecks'
	// checks, and of the mapping form of KVIP, KTrackRef and KSorry.
	Keys []Key
	// Types are the check types that read the key; nil = every type.
	Types []string
}

func rng(lo, hi int64) (*int64, *int64) { return &lo, &hi }

func ranged(k Key, lo, hi int64) Key {
	k.Min, k.Max = rng(lo, hi)
	return k
}

func req(k Key) Key { k.Required = true; return k }

func str(name, desc string) Key     { return Key{Name: name, Kind: KString, Desc: desc} }
func integer(name, desc string) Key { return Key{Name: name, Kind: KInt, Desc: desc} }
func boolean(name string, def bool, desc string) Key {
	return Key{Name: name, Kind: KBool, Default: def, Desc: desc}
}
func dur(name string, def any, desc string) Key {
	return Key{Name: name, Kind: KDuration, Default: def, Desc: desc}
}
func enum(name, def, desc string, values ...string) Key {
	k := Key{Name: name, Kind: KString, Enum: values, Desc: desc}
	if def != "" {
		k.Default = def
	}
	return k
}
func obj(name, desc string, keys ...Key) Key {
	return Key{Name: name, Kind: KObject, Desc: desc, Keys: keys}
}
func objects(name, desc string, keys ...Key) Key {
	return Key{Name: name, Kind: KList, Desc: desc, Keys: keys}
}
func list(name string, elem Kind, desc string) Key {
	return Key{Name: name, Kind: KList, Elem: elem, Desc: desc}
}
func cmd(name, desc string) Key { return Key{Name: name, Kind: KCommand, Desc: desc} }
func only(k Key, types ...string) Key {
	k.Types = types
	return k
}
func def(k Key, v any) Key { k.Default = v; return k }

var schemaGARP = []Key{
	def(ranged(integer("repeat", "gratuitous ARPs / NAs per VIP in a burst (keepalived garp_master_repeat)"), 1, 100), DefaultGARPRepeat),
	dur("delay", "5s", "second burst after this long, 0s..1000s; 0s = none (garp_master_delay)"),
	dur("interval", "0s", "pause between messages, 0s..1s (vrrp_garp_interval)"),
	dur("refresh", "0s", "re-announce periodically while master: 0s (off) or 1s..1h (garp_master_refresh)"),
	def(ranged(integer("refresh_repeat", "messages per VIP in each refresh"), 1, 100), DefaultRefreshRepeat),
	ranged(integer("lower_prio_repeat", "messages per VIP when a master hears a lower priority, 0 = none; default repeat"), 0, 100),
	dur("lower_prio_delay", nil, "second burst after a lower priority was heard; default delay"),
}

var schemaNotify = []Key{
	cmd("master", "run on becoming master"),
	cmd("backup", "run on becoming backup"),
	cmd("fault", "run on entering FAULT"),
	cmd("stop", "run when the instance stops"),
	cmd("all", "run on every change with INSTANCE NAME STATE PRIORITY appended (keepalived notify)"),
	str("user", "user[:group] the commands run as; default vrrp.script_user"),
	dur("timeout", "10s", "a command still running then is killed, 10ms..1h"),
}

func trackRefs(name, desc string) Key {
	return Key{Name: name, Kind: KList, Elem: KTrackRef, Desc: desc, Keys: trackRefKeys}
}

// The keys of the mapping form of a track reference, a VIP, a sorry server.
var (
	trackRefKeys = []Key{
		req(str("name", "the tracked object's name")),
		ranged(integer("weight", "overrides the object's weight; 0 = FAULT while down"), -253, 253),
		boolean("reverse", false, "overrides the object's reverse"),
	}
	vipKeys = []Key{
		req(str("address", "ADDRESS[/LEN]; no length = /32 (/128)")),
		str("dev", "the interface; default the instance's"),
		str("label", "IPv4 only: the dev name, or dev name + \":\" + suffix"),
	}
)

var schemaTunnel = obj("tunnel", "with forward: tun: the tunnel's encapsulation",
	enum("type", "ipip", "encapsulation; gue needs port", "ipip", "gue", "gre"),
	ranged(integer("port", "GUE destination port"), 1, 65535),
	enum("checksum", "none", "tunnel checksum (remcsum: gue only)", "none", "csum", "remcsum"),
)

var schemaForward = enum("forward", "nat", "packet forwarding method (keepalived lvs_method)", "nat", "dr", "tun")

var schemaCheck = []Key{
	req(enum("type", "", "the kind of probe", checkTypes...)),
	str("address", "address probed (keepalived connect_ip); default the real server's"),
	ranged(integer("port", "port probed (keepalived connect_port); default the real server's (smtp 25, dns 53)"), 1, 65535),
	dur("interval", "5s", "time between checks, 10ms..24h (keepalived delay_loop)"),
	dur("timeout", "2s", "a probe fails after this long; at most the interval (exec: the interval)"),
	dur("retry_delay", nil, "after a failure, before the retry: default 1s (http, https 3s; dns the interval); 0 = the default"),
	dur("warmup", nil, "random delay before the first check, 0..24h; default the interval, 0s none"),
	def(ranged(integer("rise", "successes to come up"), 1, 100), 1),
	ranged(integer("fall", "failures to go down: default 2 (keepalived retry 1; dns 4, exec 1)"), 1, 100),
	only(str("source", "probes' source address (keepalived bindto)"), network...),
	only(ranged(integer("fwmark", "SO_MARK on probe packets"), 1, 4294967295), "tcp", "http", "https", "udp", "dns", "smtp"),
	only(objects("urls", "several pages instead of path/status/digest/regex: all must pass",
		str("path", "the page's path"),
		Key{Name: "status", Kind: KStatus, Desc: "accepted status codes: a code, \"LOW-HIGH\" or a list; default 200-299"},
		str("digest", "md5:HEX or sha256:HEX of the body (keepalived genhash)"),
		str("regex", "RE2 searched in the first MiB of the body"),
		boolean("regex_no_match", false, "the body must not match regex"),
		str("host", "this page's Host header"),
	), "http", "https"),
	only(def(str("path", "the page's path"), "/"), "http", "https"),
	only(Key{Name: "status", Kind: KStatus, Desc: "accepted status codes: a code, \"LOW-HIGH\" or a list; default 200-299"}, "http", "https"),
	only(str("digest", "md5:HEX or sha256:HEX of the body (keepalived genhash)"), "http", "https"),
	only(str("regex", "RE2 searched in the first MiB of the body"), "http", "https"),
	only(boolean("regex_no_match", false, "the body must not match regex"), "http", "https"),
	only(str("host", "Host header (keepalived virtualhost); default the target"), "http", "https"),
	only(str("sni", "TLS server name; default host when it is a name"), "https"),
	only(boolean("tls_verify", false, "verify the certificate chain and name"), "https"),
	only(str("ca", "absolute path of PEM roots for tls_verify; default the system's"), "https"),
	only(Key{Name: "http_protocol", Kind: KHTTPVer, Default: "1.1", Desc: "1.1, 1.0 (keepalived's default) or 1.0C (1.0 with Connection: close)"}, "http", "https"),
	only(str("helo_name", "HELO name; default this host's name"), "smtp"),
	only(str("payload", "what is sent, in hex (1..1400 bytes); default one zero byte"), "udp"),
	only(boolean("require_reply", false, "up only on a reply (otherwise unless an ICMP error comes back)"), "udp"),
	only(str("reply", "the reply must start so: hex pairs, X any digit"), "udp"),
	only(def(ranged(integer("min_reply", "shortest reply in bytes, 0 = none"), 0, 65535), 0), "udp"),
	only(def(ranged(integer("max_reply", "longest reply in bytes, 0 = none"), 0, 65535), 0), "udp"),
	only(Key{Name: "query_type", Kind: KString, Default: "SOA", Desc: "DNS query type (A AAAA NS CNAME SOA MX TXT PTR SRV)"}, "dns"),
	only(def(str("query_name", "DNS query name"), "."), "dns"),
	only(cmd("command", "the program and its arguments; a string run by /bin/sh -c with shell: true"), "exec"),
	only(boolean("shell", false, "command is one string run by /bin/sh -c"), "exec"),
	only(str("user", "user[:group] the command runs as; default vrrp.script_user"), "exec"),
	only(boolean("dynamic", false, "exec: exit 2..255 is up with weight exit-2 (misc_dynamic); file: the product is the weight"), "exec", "file"),
	only(str("file", "absolute path whose integer value decides (keepalived FILE_CHECK)"), "file"),
	only(def(ranged(integer("weight", "0: the value 0 is up, anything else down; else value x weight < 0 is down"), -253, 253), 0), "file"),
}

// Schema is vigil.yaml's top level.
var Schema = []Key{
	obj("node", "this node",
		str("name", "node name (and memberlist name with gossip); default the hostname"),
		boolean("allow_empty", false, "the node runs no VRRP instance and no virtual server on purpose (file only)"),
	),
	obj("vrrp", "virtual routers and what they track",
		boolean("strict", false, "RFC-only behaviour (keepalived vrrp_strict): conflicting settings are errors"),
		obj("garp", "gratuitous ARP / unsolicited NA defaults of every instance", schemaGARP...),
		str("script_user", "default user[:group] of scripts and notify commands; \"\" = vigil's own"),
		str("notify_fifo", "FIFO receiving one line per event (keepalived notify_fifo); \"\" = none"),
		str("notify_fifo_group", "group (name or gid) that may read the FIFO; \"\" = none (mode 0600)"),
		objects("scripts", "tracked scripts (keepalived vrrp_script)",
			req(str("name", "unique: 1..64 of A-Z a-z 0-9 _ . -")),
			req(cmd("command", "the program and its arguments; a string run by /bin/sh -c with shell: true")),
			boolean("shell", false, "command is one string run by /bin/sh -c"),
			dur("interval", "1s", "time between runs, 10ms..24h"),
			dur("timeout", nil, "a run fails after this long; default and at most the interval"),
			def(ranged(integer("rise", "successes to go up"), 1, 100), 1),
			def(ranged(integer("fall", "failures to go down"), 1, 100), 1),
			def(ranged(integer("weight", "0: FAULT while down; > 0 added while up, < 0 added while down"), -253, 253), 0),
			boolean("reverse", false, "up counts as down and down as up"),
			str("user", "user[:group]; default script_user"),
			boolean("init_fail", false, "start as down until the first success"),
		),
		objects("files", "tracked files (keepalived track_file): the integer inside times weight",
			req(str("name", "unique: 1..64 of A-Z a-z 0-9 _ . -")),
			req(str("path", "absolute path, watched with inotify")),
			def(ranged(integer("weight", "multiplies the file's value; 0: non-zero means FAULT"), -253, 253), 1),
			boolean("reverse", false, "negate the value"),
			def(ranged(integer("init", "the value while the file is missing"), -254, 254), 0),
		),
		objects("processes", "tracked processes (keepalived vrrp_track_process)",
			req(str("name", "unique: 1..64 of A-Z a-z 0-9 _ . -")),
			req(str("process", "the exact process name (/proc/PID/comm, 15 bytes at most)")),
			str("args", "if set, the arguments after the name must equal it"),
			def(ranged(integer("quorum", "processes needed for up"), 1, 65535), 1),
			dur("delay", "0s", "a change counts once it lasted this long, 0s..1h"),
			def(ranged(integer("weight", "0: FAULT while down"), -253, 253), 0),
			boolean("reverse", false, "up counts as down and down as up"),
		),
		objects("sync_groups", "instances that change state together (keepalived vrrp_sync_group)",
			req(str("name", "unique: 1..64 of A-Z a-z 0-9 _ . -")),
			req(list("instances", KString, "at least 2 instance names; an instance is in at most one group")),
			boolean("tracking_weight", false, "members' trackers may have weights"),
			obj("notify", "commands run on the group's state changes", schemaNotify...),
		),
		objects("instances", "virtual routers",
			req(str("name", "unique: 1..64 of A-Z a-z 0-9 _ . -")),
			req(str("interface", "the interface adverts are sent on")),
			req(ranged(integer("vrid", "virtual router ID, unique per interface and address family"), 1, 255)),
			def(ranged(integer("priority", "255 = address owner (master at once)"), 1, 255), 100),
			def(ranged(integer("version", "VRRP version; IPv6 needs 3"), 2, 3), 3),
			dur("advert_interval", "1s", "v3: a multiple of 10ms in 10ms..40.95s; v2: whole seconds 1s..255s"),
			boolean("preempt", true, "a higher priority takes over from a live master"),
			dur("preempt_delay", "0s", "0s..1000s; not with preempt: false"),
			boolean("accept", true, "v3 Accept_Mode: the master accepts traffic to the VIPs (IPVS needs it)"),
			enum("checksum", "pseudo_header", "v3 over IPv4: pseudo_header (keepalived, FRR) or message_only (RFC 9568)", "pseudo_header", "message_only"),
			boolean("lower_prio_no_advert", false, "a master ignores lower-priority adverts (pre-RFC 9568)"),
			req(Key{Name: "vips", Kind: KList, Elem: KVIP, Keys: vipKeys, Desc: "1..255 addresses of one family: ADDRESS[/LEN] or {address, dev, label}"}),
			obj("garp", "this instance's GARP settings; unset keys come from vrrp.garp", schemaGARP...),
			obj("track", "what changes the priority or means FAULT",
				trackRefs("interfaces", "interfaces whose link state is tracked"),
				trackRefs("scripts", "names from vrrp.scripts"),
				trackRefs("files", "names from vrrp.files"),
				trackRefs("processes", "names from vrrp.processes"),
				trackRefs("virtual_servers", "names from lb.virtual_servers: FAULT while below quorum"),
			),
			boolean("dont_track_primary", false, "the interface going down does not mean FAULT"),
			obj("notify", "commands run on state changes", schemaNotify...),
			Key{Name: "vmac", Kind: KVMAC, Default: false, Desc: "true: a macvlan vrrp.VRID with the virtual MAC (use_vmac); or the macvlan's name"},
			obj("auth", "VRRPv2 only: keepalived-compatible authentication",
				enum("type", "none", "authentication type", "none", "pass"),
				str("password", "1..8 bytes"),
			),
			obj("unicast", "adverts to these peers instead of multicast",
				str("source", "source address; default the interface's primary address"),
				req(list("peers", KString, "peer addresses, not empty")),
				def(ranged(integer("min_ttl", "lowest TTL accepted from a peer; 255 means on-link"), 1, 255), 255),
			),
		),
	),
	obj("lb", "IPVS virtual servers",
		enum("on_stop", "remove", "remove vigil's services at stop, or keep them (keepalived -I)", "remove", "keep"),
		enum("foreign_services", "keep", "keep services vigil did not create, or remove them (keepalived lvs_flush)", "keep", "remove"),
		boolean("rs_init_notifies", false, "real servers that start up run notify_up too (keepalived rs_init_notifies)"),
		obj("timeouts", "kernel connection timeouts (keepalived lvs_timeouts); unset = the kernel's",
			dur("tcp", nil, "established TCP"),
			dur("tcp_fin", nil, "TCP after FIN"),
			dur("udp", nil, "UDP"),
		),
		obj("sync_daemon", "IPVS connection synchronisation (keepalived lvs_sync_daemon)",
			req(str("interface", "interface of the sync multicast")),
			req(str("instance", "VRRP instance whose master runs the master daemon")),
			ranged(integer("sync_id", "default the instance's VRID"), 0, 255),
		),
		objects("virtual_servers", "IPVS services",
			req(str("name", "unique name")),
			str("address", "ADDRESS:PORT of the service; or fwmark, or addresses"),
			list("addresses", KString, "several ADDRESS:PORT (ranges of the last byte: 192.0.2.110-119:80), one service each (virtual_server_group)"),
			ranged(integer("fwmark", "firewall-mark service instead of an address"), 1, 4294967295),
			enum("family", "ipv4", "with fwmark: the address family", "ipv4", "ipv6"),
			enum("protocol", "", "required for an address service", "tcp", "udp", "sctp"),
			enum("scheduler", "wlc", "IPVS scheduler", schedulers...),
			list("scheduler_flags", KString, "flag-1..3, sh-fallback, sh-port, mh-fallback, mh-port"),
			schemaForward,
			schemaTunnel,
			dur("persistence", "0s", "persistence timeout in whole seconds; 0 = none"),
			ranged(integer("persistence_granularity", "with persistence: the prefix length clients are grouped by"), 1, 128),
			enum("persistence_engine", "", "with persistence (kernel module ip_vs_pe_sip)", "sip"),
			boolean("one_packet", false, "UDP only: schedule each packet"),
			def(integer("quorum", "live real-server weight needed"), 1),
			def(integer("hysteresis", "gained at quorum+hysteresis, lost below quorum-hysteresis"), 0),
			Key{Name: "sorry_server", Kind: KSorry, Desc: "ADDRESS[:PORT] (or {address, forward, tunnel}) serving alone while quorum is lost",
				Keys: []Key{req(str("address", "ADDRESS[:PORT]")), schemaForward, schemaTunnel}},
			boolean("sorry_server_inhibit", false, "with quorum back, the sorry server stays at weight 0"),
			boolean("inhibit_on_failure", false, "a failed real server stays with weight 0 (drains)"),
			boolean("alpha", false, "real servers start down until their first good check"),
			boolean("ha_suspend", false, "check only while one of its addresses is on this host"),
			enum("health_policy", "", "with gossip (default quorum): how directors' results combine; local without gossip", "local", "quorum", "any"),
			obj("notify", "commands run on quorum changes (no arguments; VIGIL_* in the environment)",
				cmd("quorum_up", "run when quorum is gained"),
				cmd("quorum_down", "run when quorum is lost"),
				str("user", "user[:group]; default vrrp.script_user"),
				dur("timeout", "10s", "also for its real servers' notify_up/notify_down"),
				boolean("omega", false, "at stop, report live real servers and quorum down (keepalived omega)"),
			),
			Key{Name: "check", Kind: KObject, Desc: "the default check of real servers without their own", Keys: schemaCheck},
			req(objects("real_servers", "the servers behind the service",
				req(str("address", "ADDRESS[:PORT]; the port defaults to the service's")),
				def(ranged(integer("weight", "scheduler weight"), 0, 65535), 1),
				ranged(integer("upper_threshold", "connection limit (ipvsadm -x)"), 0, 4294967295),
				ranged(integer("lower_threshold", "connections to accept again (ipvsadm -y)"), 0, 4294967295),
				boolean("inhibit_on_failure", false, "default the virtual server's"),
				boolean("alpha", false, "default the virtual server's"),
				schemaForward,
				schemaTunnel,
				cmd("notify_up", "run when it comes up"),
				cmd("notify_down", "run when it goes down"),
				Key{Name: "check", Kind: KChecks, Desc: "its own checks (one, or a list: all must pass); replace the default", Keys: schemaCheck},
			)),
		),
	),
	obj("gossip", "the fleet over memberlist; absent = no fleet",
		str("bind", "HOST:PORT memberlist listens on (UDP and TCP); default 0.0.0.0:7946"),
		str("advertise", "HOST:PORT others reach this node at; default memberlist picks"),
		list("join", KString, "HOST:PORT of members, retried every rejoin_interval"),
		def(str("cluster", "memberlist label: two fleets never merge"), "vigil"),
		str("keyring", "file of base64 AES-256 keys, one a line, the first primary; required unless insecure"),
		boolean("insecure", false, "run gossip unencrypted (not with keyring)"),
		enum("profile", DefaultGossipProfile, "memberlist's timings (lan-fast: recommended on one LAN); wan also compresses gossip", "lan", "lan-fast", "wan", "local"),
		obj("timing", "overrides of the profile's timings",
			dur("probe_interval", nil, "time between failure probes"),
			dur("probe_timeout", nil, "a probe's timeout; shorter than probe_interval"),
			dur("gossip_interval", nil, "time between gossip rounds"),
			integer("gossip_nodes", "members gossiped to per round, 1 or more"),
			dur("push_pull_interval", nil, "time between full state exchanges"),
			integer("suspicion_mult", "suspicion timeout multiplier, 1 or more"),
			integer("retransmit_mult", "retransmissions multiplier, 1 or more"),
			dur("dead_node_reclaim", nil, "after this a dead member's name may come back at a new address (default 2s)"),
			dur("gossip_to_the_dead", nil, "how long dead members are still gossiped to"),
		),
		boolean("arbitrate", true, "split-brain arbitration"),
		dur("rejoin_interval", "30s", "the join list is retried this often, 1s or more"),
		def(integer("direct_fanout", "members a new row is sent to straight from its origin besides its gossip, 0 (gossip only) to 1024"), DefaultDirectFanout),
	),
	obj("fleet", "fleet pushes: a node's own setting",
		enum("config", "ignore", "follow: apply configurations pushed to the fleet (needs gossip)", "ignore", "follow"),
		def(str("state_dir", "absolute path of the applied fleet version and its history"), DefaultStateDir),
		list("trusted_keys", KString, "public keys (vigil-ed25519-pub:BASE64) whose signatures pushes must carry"),
		str("trusted_keys_file", "absolute path of a file of such lines; the union is trusted"),
	),
	obj("telemetry", "metrics, health endpoints, logs and traces",
		def(str("listen", "host:port of /metrics /healthz /readyz; \"\" disables"), DefaultListen),
		enum("log_level", DefaultLogLevel, "log level", "debug", "info", "warn", "error"),
		enum("log_format", DefaultLogFormat, "log format", "text", "json"),
		boolean("pprof", false, "serve Go's /debug/pprof/ on the listener (diagnostics only)"),
		obj("tracing", "OpenTelemetry traces of failovers; unset keys follow OTEL_* variables",
			enum("exporter", "", "where spans go", TracingExporters...),
			str("endpoint", "the OTLP collector's address"),
			enum("protocol", "", "OTLP protocol", TracingProtocols...),
			boolean("insecure", false, "OTLP without TLS"),
			Key{Name: "headers", Kind: KStrMap, Desc: "headers sent to the collector"},
			enum("sampler", "", "sampler (default parentbased_always_on)", TracingSamplers...),
			str("sampler_arg", "the sampler's ratio, 0..1"),
		),
	),
}
