package events

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Event kinds.
const (
	KindInstance = "instance" // a VRRP instance changed state
	KindGroup    = "group"    // a sync group changed state
	// KindVirtualServer: a virtual server gained (To "up") or lost (To
	// "down") quorum; Name is the virtual server.
	KindVirtualServer = "virtual_server"
	// KindRealServer: a real server's checks all passed again (To "up")
	// or one failed (To "down"); Name is its virtual server.
	KindRealServer = "real_server"
	// KindDropped marks a gap in one subscriber's stream: Dropped events
	// were discarded because it fell behind. Only the Time and Dropped
	// fields are set; it never goes through Publish.
	KindDropped = "dropped"
)

// States, as vrrp.State.String() spells them. StateStop is keepalived's STOP:
// publishers may use it, but a change to "init" (the engine's Stop) means
// the same thing here.
const (
	StateInit   = "init"
	StateBackup = "backup"
	StateMaster = "master"
	StateFault  = "fault"
	StateStop   = "stop"
	// StateUp and StateDown are the states of virtual and real servers.
	StateUp   = "up"
	StateDown = "down"
)

// ReasonConfigReload is the reason for changes made by a configuration
// reload (an instance removed, or changed enough to be restarted). The
// other reasons are the vrrp.Cause values.
const ReasonConfigReload = "config_reload"

// Event is one state change of an instance or a sync group.
type Event struct {
	Seq      uint64    `json:"seq,omitzero"` // assigned by the Bus: strictly increasing per node
	Time     time.Time `json:"time"`         // when it happened; Publish fills it in when zero
	Kind     string    `json:"kind"`         // KindInstance or KindGroup (KindDropped for markers)
	Name     string    `json:"name,omitzero"`
	From     string    `json:"from,omitzero"` // init, backup, master, fault (stop)
	To       string    `json:"to,omitzero"`
	Reason   string    `json:"reason,omitzero"`
	Priority int       `json:"priority"` // instance: effective priority at the time

	// Optional details, for instances.
	VRID      int        `json:"vrid,omitzero"`
	Interface string     `json:"interface,omitzero"`
	Master    netip.Addr `json:"master,omitzero"` // the master we follow, when known

	// For virtual and real servers: the service and the real server in
	// keepalived's notation ("[192.0.2.100]:tcp:80", "FWM 7";
	// "[198.51.100.11]:tcp:8080").
	Service    string `json:"service,omitzero"`
	RealServer string `json:"real_server,omitzero"`

	// Dropped is set on KindDropped markers only.
	Dropped uint64 `json:"dropped,omitzero"`
}

// KeepalivedState is the state name keepalived gives the event's target
// state in notify arguments and FIFO lines: MASTER, BACKUP, FAULT or STOP
// (a change to init or stop: the instance stopped running). It is "" for
// anything else, and such events run no script and write no keepalived line.
func KeepalivedState(e Event) string {
	switch e.To {
	case StateMaster:
		return "MASTER"
	case StateBackup:
		return "BACKUP"
	case StateFault:
		return "FAULT"
	case StateInit, StateStop:
		return "STOP"
	case StateUp:
		return "UP"
	case StateDown:
		return "DOWN"
	}
	return ""
}

// keepalivedType is keepalived's INSTANCE/GROUP word.
func keepalivedType(e Event) string {
	if e.Kind == KindGroup {
		return "GROUP"
	}
	return "INSTANCE"
}

// keepalivedPriority is the priority keepalived reports: the instance's
// effective priority, always 0 for a group.
func keepalivedPriority(e Event) int {
	if e.Kind == KindGroup {
		return 0
	}
	return e.Priority
}

// KeepalivedArgs are the four arguments keepalived appends to the generic
// notify script: INSTANCE|GROUP, the name, MASTER|BACKUP|FAULT|STOP and the
// priority (0 for a group). The name is passed as it is: keepalived runs
// the script with execve, no shell, so no quotes reach the script.
func KeepalivedArgs(e Event) []string {
	return []string{keepalivedType(e), e.Name, KeepalivedState(e), strconv.Itoa(keepalivedPriority(e))}
}

// KeepalivedLine formats the event as keepalived writes it to a notify FIFO,
// newline included:
//
//	INSTANCE "VI_1" MASTER 100
//	GROUP "edge" BACKUP 0
//	VS [192.0.2.100]:tcp:80 DOWN
//	RS [198.51.100.11]:tcp:8080 [192.0.2.100]:tcp:80 UP
//
// (the last two are keepalived's lvs_notify_fifo lines).
// ok is false for events keepalived has no line for (markers, unknown
// states). Control characters in the name are replaced by '?' so that one
// event is always one line.
func KeepalivedLine(e Event) (line string, ok bool) {
	st := KeepalivedState(e)
	if st == "" {
		return "", false
	}
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return '?'
			}
			return r
		}, s)
	}
	switch e.Kind {
	case KindInstance, KindGroup:
	case KindVirtualServer:
		return "VS " + clean(e.Service) + " " + st + "\n", true
	case KindRealServer:
		return "RS " + clean(e.RealServer) + " " + clean(e.Service) + " " + st + "\n", true
	default:
		return "", false
	}
	name := clean(e.Name)
	return keepalivedType(e) + ` "` + name + `" ` + st + " " + strconv.Itoa(keepalivedPriority(e)) + "\n", true
}

// JSONLine formats the event as one JSON object and a newline. Markers come
// out as {"time":...,"kind":"dropped","dropped":N}.
func JSONLine(e Event) []byte {
	var b []byte
	var err error
	if e.Kind == KindDropped {
		b, err = json.Marshal(struct {
			Time    time.Time `json:"time"`
			Kind    string    `json:"kind"`
			Dropped uint64    `json:"dropped"`
		}{e.Time, e.Kind, e.Dropped})
	} else {
		b, err = json.Marshal(e)
	}
	if err != nil { // cannot happen with these field types
		b = []byte(`{"kind":"error"}`)
	}
	return append(b, '\n')
}
