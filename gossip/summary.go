package gossip

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"vigil/lb"
)

// The values of rows. Each is JSON with short keys inside an envelope
// {"v": version, "d": value}. Readers ignore fields they do not know, so a
// newer vigil may add fields without a new version; a change older nodes
// would misread bumps the version, and they refuse it (ErrValueVersion)
// rather than act on a value they do not understand.

// Keys of the rows with one row per node.
const (
	KeySummary = "summary" // KindNode: the NodeSummary
	KeyTable   = "table"   // KindDesired: the DesiredDigest
	KeyConfig  = "config"  // KindConfig: the ConfigAnnouncement
)

// InstanceSummary.State values: what vrrp.State.String prints (gossip
// cannot import vrrp, which sits above it; summary_test.go checks that
// they agree).
const (
	StateInit   = "init"
	StateBackup = "backup"
	StateMaster = "master"
	StateFault  = "fault"
)

// MaxValueSize is the largest value Encode produces for an InstanceSummary
// (by truncating its VIP list): it leaves DefaultMaxRowSize room for the
// row's framing (about 20 bytes) and an origin and a key of up to 140
// bytes each.
const MaxValueSize = DefaultMaxRowSize - 300

// ErrValueVersion is returned (wrapped) when decoding a value written in a
// version this vigil does not understand.
var ErrValueVersion = errors.New("row value of an unknown version")

// The value versions this vigil writes and reads.
const (
	nodeSummaryVersion     = 1
	instanceSummaryVersion = 1
	healthResultVersion    = 1
	desiredDigestVersion   = 1
	configAnnounceVersion  = 1
)

type envelope[T any] struct {
	V int `json:"v"`
	D T   `json:"d"`
}

func encodeValue[T any](what string, version int, d T) ([]byte, error) {
	b, err := json.Marshal(envelope[T]{V: version, D: d})
	if err != nil {
		return nil, fmt.Errorf("gossip: encoding %s: %w", what, err)
	}
	return b, nil
}

func decodeValue[T any](what string, version int, b []byte) (T, error) {
	var e envelope[T]
	if err := json.Unmarshal(b, &e); err != nil {
		var zero T
		return zero, fmt.Errorf("gossip: decoding %s: %w", what, err)
	}
	if e.V < 1 || e.V > version {
		var zero T
		return zero, fmt.Errorf("gossip: decoding %s: version %d, this vigil reads 1..%d: %w", what, e.V, version, ErrValueVersion)
	}
	return e.D, nil
}

// NodeSummary is a node's summary: row KindNode, key KeySummary.
type NodeSummary struct {
	Build         string    `json:"b,omitempty"`  // vigil version
	ConfigVersion uint64    `json:"cv,omitempty"` // fleet config version (0 until config pushes)
	ConfigHash    string    `json:"ch,omitempty"`
	Started       time.Time `json:"st"` // uptime = now - Started
	Drained       bool      `json:"dr,omitempty"`
	// ConfigError is why the fleet version ConfigErrorVersion could not be
	// applied here (the node keeps ConfigVersion, its last good one).
	ConfigError        string `json:"ce,omitempty"`
	ConfigErrorVersion uint64 `json:"cev,omitempty"`
	// Follows is whether the node applies fleet pushes; ConfigFleetHash
	// and ConfigOrigin complete ConfigVersion into the fleet version it
	// runs (two pushes in a partition may share a number).
	Follows         bool   `json:"fo,omitempty"`
	ConfigFleetHash string `json:"fh,omitempty"`
	ConfigOrigin    string `json:"co,omitempty"`
	// QuorumLost counts its virtual servers below their quorum: with an
	// instance in FAULT, what makes a canary unhealthy.
	QuorumLost int `json:"ql,omitempty"`
	// Rollout is why the node holds fleet version RolloutVersion back
	// (its rollout gate); RolloutStopped when the rollout stopped (a
	// failure, an unhealthy canary) rather than waits its turn.
	Rollout        string `json:"ro,omitempty"`
	RolloutVersion uint64 `json:"rov,omitempty"`
	RolloutStopped bool   `json:"ros,omitempty"`
}

// Encode returns the row value.
func (s NodeSummary) Encode() ([]byte, error) {
	return encodeValue("node summary", nodeSummaryVersion, s)
}

// DecodeNodeSummary reads a NodeSummary row value.
func DecodeNodeSummary(b []byte) (NodeSummary, error) {
	return decodeValue[NodeSummary]("node summary", nodeSummaryVersion, b)
}

// InstanceSummary is one VRRP instance of a node: row KindVRRP, key the
// instance name.
type InstanceSummary struct {
	Name      string `json:"n"`
	VRID      uint8  `json:"id"`
	Family    int    `json:"f"` // 4 or 6
	Interface string `json:"if,omitempty"`
	State     string `json:"s"` // StateInit, StateBackup, StateMaster or StateFault
	Base      uint8  `json:"bp"`
	Priority  uint8  `json:"p"`
	// Primary is the address its adverts come from: the RFC tie-break.
	Primary  netip.Addr    `json:"src"`
	Interval time.Duration `json:"iv"` // advert interval
	// VIPs is sorted; Encode truncates it to fit a row, and VIPCount then
	// says how many there are in all.
	VIPs     []netip.Addr `json:"vips,omitempty"`
	VIPCount int          `json:"nv,omitempty"`
	// VIPSet is HashVIPs of the full VIP set: with VRID and Family it
	// identifies the virtual router. Encode fills it in when empty.
	VIPSet string `json:"vs"`
	// Trace is the W3C traceparent of the instance's last transition span
	// (issue 15: the next master's span links to it); empty without
	// tracing.
	Trace string `json:"tr,omitempty"`
}

// HashVIPs returns the hash of a VIP set: the same for any order or
// repetition of the same addresses (IPv4-mapped IPv6 as IPv4).
func HashVIPs(vips []netip.Addr) string {
	s := sortedVIPs(vips)
	h := sha256.New()
	for _, a := range s {
		b, _ := a.MarshalBinary() // 4 or 16 bytes: never ambiguous, never fails for a valid Addr
		h.Write([]byte{byte(len(b))})
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func sortedVIPs(vips []netip.Addr) []netip.Addr {
	s := make([]netip.Addr, 0, len(vips))
	for _, a := range vips {
		s = append(s, a.Unmap())
	}
	slices.SortFunc(s, netip.Addr.Compare)
	return slices.Compact(s)
}

// Encode returns the row value: VIPs sorted, VIPSet and VIPCount filled in
// when unset, and the VIP list truncated until the value fits in
// MaxValueSize (VIPSet still covers all of them).
func (s InstanceSummary) Encode() ([]byte, error) {
	if s.VIPSet == "" {
		s.VIPSet = HashVIPs(s.VIPs)
	}
	s.VIPs = sortedVIPs(s.VIPs)
	if s.VIPCount < len(s.VIPs) {
		s.VIPCount = len(s.VIPs)
	}
	for {
		b, err := encodeValue("instance summary", instanceSummaryVersion, s)
		if err != nil || len(b) <= MaxValueSize {
			return b, err
		}
		if len(s.VIPs) == 0 {
			return nil, fmt.Errorf("gossip: instance summary %q is %d bytes without VIPs, over %d: %w", s.Name, len(b), MaxValueSize, ErrTooLarge)
		}
		s.VIPs = s.VIPs[:len(s.VIPs)-1]
	}
}

// DecodeInstanceSummary reads an InstanceSummary row value.
func DecodeInstanceSummary(b []byte) (InstanceSummary, error) {
	return decodeValue[InstanceSummary]("instance summary", instanceSummaryVersion, b)
}

// Key returns the virtual router the instance belongs to.
func (s InstanceSummary) Key() VRKey {
	set := s.VIPSet
	if set == "" {
		set = HashVIPs(s.VIPs)
	}
	return VRKey{VRID: s.VRID, Family: s.Family, VIPSet: set}
}

// HealthResult is a real server's health as one node's checks see it: row
// KindHealth, key HealthKey(VS, RS).
type HealthResult struct {
	VS    string
	RS    lb.DestKey
	Up    bool
	Since time.Time // when this observer's verdict last changed (its clock)
	// Probing is false when this observer's checks are suspended
	// (ha_suspend) or stalled: its verdict then counts for nobody.
	Probing  bool
	Interval time.Duration // the check interval (informational)
}

// healthWire is HealthResult on the wire: the real server as one
// address:port string.
type healthWire struct {
	VS       string         `json:"vs"`
	RS       netip.AddrPort `json:"rs"`
	Up       bool           `json:"up,omitempty"`
	Since    time.Time      `json:"t"`
	Probing  bool           `json:"p,omitempty"`
	Interval time.Duration  `json:"iv,omitempty"`
}

// Encode returns the row value.
func (r HealthResult) Encode() ([]byte, error) {
	return encodeValue("health result", healthResultVersion, healthWire{
		VS: r.VS, RS: netip.AddrPortFrom(r.RS.Addr, r.RS.Port), Up: r.Up, Since: r.Since, Probing: r.Probing, Interval: r.Interval})
}

// DecodeHealthResult reads a HealthResult row value.
func DecodeHealthResult(b []byte) (HealthResult, error) {
	w, err := decodeValue[healthWire]("health result", healthResultVersion, b)
	if err != nil {
		return HealthResult{}, err
	}
	return HealthResult{VS: w.VS, RS: lb.DestKey{Addr: w.RS.Addr(), Port: w.RS.Port()}, Up: w.Up, Since: w.Since,
		Probing: w.Probing, Interval: w.Interval}, nil
}

// HealthKey is the row key of a real server's HealthResult. The virtual
// server's name is length-prefixed, so no name can make two real servers
// share a key.
func HealthKey(vs string, rs lb.DestKey) string {
	return strconv.Itoa(len(vs)) + ":" + vs + "|" + netip.AddrPortFrom(rs.Addr, rs.Port).String()
}

// DesiredDigest is the digest of the IPVS table a node wants: row
// KindDesired, key KeyTable.
type DesiredDigest struct {
	ConfigVersion uint64 `json:"cv,omitempty"`
	ConfigHash    string `json:"ch,omitempty"`
	Digest        string `json:"d"` // lb.TableDigest of the desired table
}

// Encode returns the row value.
func (d DesiredDigest) Encode() ([]byte, error) {
	return encodeValue("desired digest", desiredDigestVersion, d)
}

// DecodeDesiredDigest reads a DesiredDigest row value.
func DecodeDesiredDigest(b []byte) (DesiredDigest, error) {
	return decodeValue[DesiredDigest]("desired digest", desiredDigestVersion, b)
}

// ConfigAnnouncement announces a fleet document pushed through this node
// (issue 14): row KindConfig, key KeyConfig, one per origin (its latest
// push). It is small; the document itself is fetched from a member that
// has it (Cluster.Fetch, by FetchKey), so a document of any size travels
// and a node that missed the announcement learns it by push/pull.
type ConfigAnnouncement struct {
	Version  uint64 `json:"n"`
	Hash     string `json:"h"` // sha256 of the document, hex
	Origin   string `json:"o"` // the node that took the push
	Size     int    `json:"sz"`
	PushedBy string `json:"by,omitempty"`
	// Signature is the document's ed25519 signature (config.SignDocument)
	// when it is signed, KeyID its key's id (for logs; the signature names
	// the key); Trace the push's trace context (W3C traceparent).
	Signature string `json:"sig,omitempty"`
	KeyID     string `json:"kid,omitempty"`
	Trace     string `json:"tr,omitempty"`
	// Plan is how the version rolls out (canaries, order).
	Plan RolloutPlan `json:"pl,omitzero"`
}

// FetchKey is the Fetch key of a fleet document with this hash.
func (a ConfigAnnouncement) FetchKey() string { return "fleet/" + a.Hash }

// Encode returns the row value.
func (a ConfigAnnouncement) Encode() ([]byte, error) {
	return encodeValue("config announcement", configAnnounceVersion, a)
}

// DecodeConfigAnnouncement reads a ConfigAnnouncement row value.
func DecodeConfigAnnouncement(b []byte) (ConfigAnnouncement, error) {
	return decodeValue[ConfigAnnouncement]("config announcement", configAnnounceVersion, b)
}
