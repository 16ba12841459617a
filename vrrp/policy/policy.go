// Package policy turns tracker states into a VRRP instance's effective
// priority or a FAULT, with keepalived's weight semantics. It is pure: no
// I/O, no clock; the node feeds it states and applies the result through
// vrrp.Instance.SetPriority or the FAULT path.
package policy

import "fmt"

// Kind is the kind of tracked object.
type Kind string

const (
	KindInterface Kind = "interface"
	KindScript    Kind = "script"
	KindFile      Kind = "file"
	KindProcess   Kind = "process"
	// KindVirtualServer is an lb virtual server: up while it has quorum.
	KindVirtualServer Kind = "virtual_server"
)

// Tracker is the current state of one tracked object as seen by one
// instance.
type Tracker struct {
	Name string
	Kind Kind
	// Weight follows keepalived (-253..253): a positive weight is added
	// while the object is up, a negative one is added (subtracted) while it
	// is down, and 0 puts the instance in FAULT while it is down.
	Weight int
	// Reverse swaps up and down (keepalived's "reverse").
	Reverse bool
	Up      bool
	// Value is a tracked file's number; its contribution is Value × Weight
	// (keepalived track_file), or with Weight 0 a non-zero Value faults; Up is
	// ignored for files.
	Value int
}

// Result is the effective priority, or a fault with its cause.
type Result struct {
	Priority uint8
	Fault    bool
	Reason   string // the tracker that caused the fault: "<kind> <name>"
}

// Effective computes the priority an instance advertises from its base
// priority and its trackers (keepalived vrrp_track semantics):
//   - the sum of contributions is added to base and clamped to 1..254: no
//     tracker can make a router the address owner or resign it;
//   - a down tracker of weight 0, or a file whose contribution is below
//     -253, means FAULT;
//   - the owner (255) cannot be lowered: any tracker that would lower it
//     faults it instead, and raising it is meaningless.
func Effective(base uint8, trackers []Tracker) Result {
	owner := base == 255
	sum := 0
	for _, t := range trackers {
		c, fault := contribution(t)
		if fault || (owner && c < 0) {
			return Result{Priority: base, Fault: true, Reason: fmt.Sprintf("%s %s", t.Kind, t.Name)}
		}
		sum += c
	}
	if owner {
		return Result{Priority: 255}
	}
	p := int(base) + sum
	p = max(1, min(254, p))
	return Result{Priority: uint8(p)}
}

func contribution(t Tracker) (int, bool) {
	if t.Kind == KindFile {
		if t.Weight == 0 {
			// keepalived track_file: with weight 0 a non-zero value is a
			// failure (FAULT); reverse makes zero the failure.
			return 0, (t.Value != 0) != t.Reverse
		}
		v := t.Value * t.Weight
		if t.Reverse {
			v = -v
		}
		return v, v < -253
	}
	up := t.Up != t.Reverse
	switch {
	case t.Weight == 0:
		return 0, !up
	case t.Weight > 0 && up:
		return t.Weight, false
	case t.Weight < 0 && !up:
		return t.Weight, false
	}
	return 0, false
}
