package vmac

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/vishvananda/netlink"
)

// ErrNotRestored is wrapped by the error of a Remove that deleted the vmac
// but could not give back a setting it had changed outside it.
var ErrNotRestored = errors.New("vmac: sysctls not restored")

// change is a sysctl outside any vmac (the parent's ARP settings, the
// rp_filter move) that Ensure wrote: the vmacs' own settings go with them,
// these stay until given back. Changes are journaled in the order they
// were made (issue 11 item 6: a start that failed late left them behind).
type change struct {
	key      string // relative to /proc/sys/net
	from, to int    // the value found, the value written
	// parent is the interface whose vmacs need the change; "" for the
	// namespace-wide rp_filter move, which every vmac needs.
	parent string
}

// users says which vmacs are left: on which parents, and whether any at
// all. Only vmacs that need the changes count (not IPv6 ones, see
// applySysctls).
type users struct {
	parents map[string]bool
	any     bool
}

// due splits the journal into the changes no vmac left needs, in the order
// to undo them (the reverse of the order they were made), and those kept.
// keepalived gives the parent's ARP settings back when its last vmac on
// that parent goes, and rp_filter at exit.
func due(journal []change, u users) (undo, keep []change) {
	for _, c := range journal {
		needed := u.any
		if c.parent != "" {
			needed = u.parents[c.parent]
		}
		if needed {
			keep = append(keep, c)
		} else {
			undo = append(undo, c)
		}
	}
	slices.Reverse(undo)
	return undo, keep
}

// restoreAction is what undoing a change does given the value now.
type restoreAction int

const (
	restoreWrite   restoreAction = iota // still what Ensure wrote: write the old value back
	restoreNothing                      // the old value is back already
	restoreLeave                        // someone set another value since: theirs stays
)

// actionFor decides how to undo c when the sysctl reads cur. Like
// keepalived's rp_filter restore, only a value that is still the one
// written is given back: anything else is someone's later choice.
func actionFor(c change, cur int) restoreAction {
	switch cur {
	case c.to:
		return restoreWrite
	case c.from:
		return restoreNothing
	}
	return restoreLeave
}

// vmacUsers lists the vmacs left in the namespace: macvlans with a VRRP
// virtual MAC (whoever made them: another vigil in the namespace needs the
// settings as much) or made by this Manager, but not IPv6 ones.
func (m *Manager) vmacUsers() (users, error) {
	links, err := m.h.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return users{}, fmt.Errorf("list interfaces: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	u := users{parents: map[string]bool{}}
	for _, l := range links {
		mv, ok := l.(*netlink.Macvlan)
		if !ok {
			continue
		}
		a := mv.Attrs()
		fam := macFamily(a.HardwareAddr)
		if fam == 6 || (fam == 0 && !m.made[a.Name]) {
			continue
		}
		u.any = true
		if a.NetNsID < 0 {
			u.parents[names[a.ParentIndex]] = true
		}
	}
	return u, nil
}

// restoreUnneeded gives back, newest first, the changes no vmac left
// needs. What it cannot restore is reported and dropped from the journal
// (a retry would not know better). Called with m.mu held.
func (m *Manager) restoreUnneeded() error {
	if len(m.journal) == 0 {
		return nil
	}
	u, err := m.vmacUsers()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotRestored, err)
	}
	undo, keep := due(m.journal, u)
	m.journal = keep
	if len(undo) == 0 {
		return nil
	}
	var errs []error
	err = m.inNS(func() error {
		for _, c := range undo {
			if err := m.restore(c); err != nil {
				errs = append(errs, err)
			}
		}
		return nil
	})
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrNotRestored, err)
	}
	return nil
}

// restore undoes one change; it runs in the Manager's namespace.
func (m *Manager) restore(c change) error {
	cur, err := readSysctl(c.key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // the interface is gone, and its settings with it
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", sysctlName(c.key), err)
	}
	switch actionFor(c, cur) {
	case restoreWrite:
		if err := writeSysctl(c.key, c.from); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		m.log.Info("vmac: gave back a sysctl no vmac needs any more", "sysctl", sysctlName(c.key), "from", c.to, "to", c.from)
	case restoreLeave:
		m.log.Info("vmac: left a sysctl set since by someone else", "sysctl", sysctlName(c.key), "vigil_set", c.to, "now", cur, "before_vigil", c.from)
	}
	return nil
}
