// Package config is vigil's typed configuration: it reads the YAML file (and
// VIGIL_* environment overrides) through viper, decodes it strictly (unknown
// keys and wrong types are errors with their full key path), fills in the
// defaults and validates every rule, reporting all problems at once. The
// result is a plain *Config that nothing modifies after Load returns it.
//
// This is the only package that imports viper.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"time"

	"vigil/vrrp"
)

// Config is a loaded, validated configuration. Treat it as read-only: it is
// shared by everything that runs from it.
type Config struct {
	Node      Node
	VRRP      VRRP
	Telemetry Telemetry
	Path      string   // the file it came from; "" for Parse
	Hash      string   // sha256 of the file bytes, lower-case hex
	Warnings  []string // problems that do not stop the config, "path: message"
}

// Node identifies this node.
type Node struct {
	Name string // default: the hostname
}

// VRRP holds the virtual routers.
type VRRP struct {
	Instances []Instance
	GARP      GARP // the defaults each instance's GARP started from
}

// Telemetry configures metrics, health endpoints and logging.
type Telemetry struct {
	Listen    string // host:port for /metrics /healthz /readyz; "" disables
	LogLevel  string // debug, info, warn or error
	LogFormat string // text or json
	// Pprof serves Go's /debug/pprof/ on the telemetry listener (off by
	// default: profiles expose internals and cost CPU while taken).
	Pprof bool
}

// Instance is one VRRP virtual router.
type Instance struct {
	Name      string
	Interface string
	VRID      uint8
	Priority  uint8 // 1..255; 255 = address owner
	Version   uint8 // 2 or 3
	// AdvertInterval is whole seconds for v2, a multiple of 10ms for v3.
	AdvertInterval time.Duration
	PreemptDelay   time.Duration
	Preempt        bool
	Accept         bool // VRRPv3 Accept_Mode
	// LowerPrioNoAdvert keeps a master quiet when it hears a lower priority
	// (pre-RFC 9568 behaviour).
	LowerPrioNoAdvert bool
	// Checksum is the transmit form for VRRPv3 over IPv4; the driver passes
	// it to vrrp.Advert.Marshal and vrrp.Decode.
	Checksum     vrrp.ChecksumForm
	Unicast      *Unicast // nil = multicast
	AuthType     uint8    // vrrp.AuthNone or vrrp.AuthPass (v2 only)
	AuthPassword string   // 1..8 bytes with AuthPass
	VIPs         []VIP    // 1..255, one address family
	GARP         GARP
}

// VIP is a virtual address and where it is installed.
type VIP struct {
	Prefix netip.Prefix // the address with its prefix length (/32, /128 when none given)
	Dev    string       // interface it is added to; default the instance interface
	Label  string       // IPv4 address label (dev or dev:suffix); "" for none
}

// Unicast lists the peers of a unicast instance.
type Unicast struct {
	// Source is the address adverts are sent from; invalid (zero) means the
	// interface's primary address.
	Source netip.Addr
	Peers  []netip.Addr
}

// GARP paces gratuitous ARPs / unsolicited neighbour advertisements after
// becoming master (keepalived's garp_master_repeat, garp_master_delay,
// vrrp_garp_interval).
type GARP struct {
	Repeat   int           // messages per VIP in a burst, 1..100
	Delay    time.Duration // second burst after this; 0 = none
	Interval time.Duration // pause between messages, 0..1s
}

// Load reads, decodes, defaults and validates the YAML file at path.
// Configuration problems come back as a *ValidationError; a file that cannot
// be read comes back as the wrapped *fs.PathError.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(data, path)
}

// Parse is Load for YAML already in memory (tests, the embedded demo
// config). Environment overrides apply here too.
func Parse(data []byte) (*Config, error) {
	return parse(data, "")
}

func parse(data []byte, file string) (*Config, error) {
	root, env, errs := read(data)
	if errs != nil {
		return nil, &ValidationError{File: file, Errors: errs}
	}
	d := &decoder{env: env}
	cfg := d.config(root)
	if len(d.errs) > 0 {
		return nil, &ValidationError{File: file, Errors: d.errs, Warnings: d.warns}
	}
	sum := sha256.Sum256(data)
	cfg.Path = file
	cfg.Hash = hex.EncodeToString(sum[:])
	cfg.Warnings = d.warns
	return cfg, nil
}

// Family returns 4 or 6, the address family of the instance's VIPs.
func (in *Instance) Family() int {
	if len(in.VIPs) > 0 && in.VIPs[0].Prefix.Addr().Is6() {
		return 6
	}
	return 4
}

// VRRP compiles the instance to the pure core's configuration. primary is
// the interface's primary address of the instance's family (IPv4 primary or
// IPv6 link-local); a configured unicast source takes its place. The
// password is padded with zero bytes to 8, as keepalived does. Slices are
// fresh copies.
func (in *Instance) VRRP(primary netip.Addr) vrrp.Config {
	c := vrrp.Config{
		Name:              in.Name,
		VRID:              in.VRID,
		Version:           in.Version,
		Priority:          in.Priority,
		AdvertInterval:    in.AdvertInterval,
		Preempt:           in.Preempt,
		PreemptDelay:      in.PreemptDelay,
		Accept:            in.Accept,
		VIPs:              make([]netip.Addr, len(in.VIPs)),
		Primary:           primary,
		AuthType:          in.AuthType,
		LowerPrioNoAdvert: in.LowerPrioNoAdvert,
	}
	for i, v := range in.VIPs {
		c.VIPs[i] = v.Prefix.Addr()
	}
	if in.Unicast != nil {
		c.Unicast = true
		c.Peers = slices.Clone(in.Unicast.Peers)
		if in.Unicast.Source.IsValid() {
			c.Primary = in.Unicast.Source
		}
	}
	if in.AuthType == vrrp.AuthPass {
		copy(c.AuthData[:], in.AuthPassword)
	}
	return c
}
