package netlab

import (
	"time"

	"vigil/internal/nslab"
)

// The lab itself lives in internal/nslab, so that `vigil demo` can build one without linking the
// test harness; these names keep the tests written against netlab unchanged.

// Names and defaults of a lab.
const (
	Bridge             = nslab.Bridge
	Dev                = nslab.Dev
	DefaultStopTimeout = nslab.DefaultStopTimeout
	FilterVRRP         = nslab.FilterVRRP
	ProtoVRRP          = nslab.ProtoVRRP
	EnvLabTag          = nslab.EnvLabTag
)

// Errors of a lab, the same values as nslab's so errors.Is matches either.
var (
	ErrClosed = nslab.ErrClosed
	ErrKilled = nslab.ErrKilled
)

type (
	Lab          = nslab.Lab
	NodeConfig   = nslab.NodeConfig
	Node         = nslab.Node
	AddrInfo     = nslab.AddrInfo
	Process      = nslab.Process
	StartOptions = nslab.StartOptions
	Privileges   = nslab.Privileges
	Capture      = nslab.Capture
	Frame        = nslab.Frame
	PcapParser   = nslab.PcapParser
	VRRPFrame    = nslab.VRRPFrame
	CmdError     = nslab.CmdError
)

// New is nslab.New: a lab without the test harness's privileges (see NewForTest).
func New(prefix string) (*Lab, error) { return nslab.New(prefix) }

// Cleanup is nslab.Cleanup: it removes what a crashed run with this prefix left behind.
func Cleanup(prefix string) error { return nslab.Cleanup(prefix) }

// Namespaces is nslab.Namespaces: the named network namespaces whose name starts with prefix.
func Namespaces(prefix string) ([]string, error) { return nslab.Namespaces(prefix) }

// Tagged is nslab.Tagged: prefix with the letter of VIGIL_LAB_TAG in front.
func Tagged(prefix string) (string, error) { return nslab.Tagged(prefix) }

// IPPath is nslab.IPPath: the path of iproute2's `ip`.
func IPPath() (string, error) { return nslab.IPPath() }

// ReadPcap is nslab.ReadPcap: a classic pcap file of Ethernet frames, in file order.
func ReadPcap(path string) ([]Frame, error) { return nslab.ReadPcap(path) }

// VRRPFrames is nslab.VRRPFrames: the VRRP packets among frames, in order.
func VRRPFrames(frames []Frame) []VRRPFrame { return nslab.VRRPFrames(frames) }

// Poll is nslab.Poll: cond every interval until it holds or timeout passes.
func Poll(timeout, interval time.Duration, cond func() (bool, error)) error {
	return nslab.Poll(timeout, interval, cond)
}
