package vmac

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"vigil/internal/nsdo"
)

// procNet is where the network sysctls live. What it shows depends on the
// network namespace of the thread opening a file under it (see inNS).
const procNet = "/proc/sys/net/"

// inNS runs fn on an OS thread switched into the Manager's namespace, so that
// the /proc/sys/net files fn opens are that namespace's.
func (m *Manager) inNS(fn func() error) error { return nsdo.Do(m.ns, fn) }

// readSysctl reads an integer sysctl; key is relative to /proc/sys/net.
func readSysctl(key string) (int, error) {
	b, err := os.ReadFile(procNet + key)
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read %s%s: %w", procNet, key, err)
	}
	return v, nil
}

// writeSysctl writes an integer sysctl; key is relative to /proc/sys/net.
func writeSysctl(key string, v int) error {
	f, err := os.OpenFile(procNet+key, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.Itoa(v))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %d to %s%s: %w", v, procNet, key, err)
	}
	return nil
}

// sysctlName formats key the way sysctl(8) prints it (interface names may
// contain dots, so this is for messages only).
func sysctlName(key string) string {
	return "net." + strings.ReplaceAll(key, "/", ".")
}

// setting is one sysctl Ensure wants.
type setting struct {
	key  string // relative to /proc/sys/net
	want int
	// parent: the setting is on the vmac's parent, which is not ours: only
	// a lower value is raised (a higher one is the administrator's
	// stricter choice and stays), the change is reported, and journaled to
	// be given back once no vmac on the parent needs it.
	parent bool
}

// applySysctls sets what the package doc lists, in the Manager's namespace.
// fam is macFamily of the vmac's MAC; ipv6 tells whether the interface has
// IPv6; skipRP names the interfaces the rp_filter adjustment leaves alone.
func (m *Manager) applySysctls(name, parent string, fam int, ipv6 bool, skipRP map[string]bool) error {
	v4 := "ipv4/conf/" + name + "/"
	list := []setting{
		{key: v4 + "arp_ignore", want: 1},
		{key: v4 + "arp_announce", want: 2},
		{key: v4 + "accept_local", want: 1},
		{key: v4 + "rp_filter", want: 0},
		{key: v4 + "promote_secondaries", want: 1},
	}
	if fam != 6 {
		p := "ipv4/conf/" + parent + "/"
		list = append(list,
			setting{key: p + "arp_ignore", want: 1, parent: true},
			setting{key: p + "arp_announce", want: 2, parent: true},
		)
	}
	if ipv6 {
		v6 := "ipv6/conf/" + name + "/"
		switch fam {
		case 4:
			list = append(list, setting{key: v6 + "disable_ipv6", want: 1})
		case 6:
			list = append(list, setting{key: v6 + "disable_ipv6", want: 0})
			fallthrough
		default:
			list = append(list,
				setting{key: v6 + "accept_dad", want: 0},
				setting{key: v6 + "accept_ra", want: 0},
			)
		}
	}
	return m.inNS(func() error {
		for _, s := range list {
			if err := m.apply(s, name, parent); err != nil {
				return err
			}
		}
		if fam == 6 {
			return nil
		}
		if v, err := readSysctl("ipv4/conf/all/arp_ignore"); err == nil && v > 1 {
			m.log.Warn("vmac: net.ipv4.conf.all.arp_ignore overrides the vmac's arp_ignore=1 (the kernel uses the higher value); ARP for VIPs outside a subnet of the vmac, such as /32 VIPs, will go unanswered",
				"vmac", name, "all.arp_ignore", v)
		}
		return m.clearStrictRPFilter(name, skipRP)
	})
}

// apply makes one setting; it runs in the Manager's namespace.
func (m *Manager) apply(s setting, vmac, parent string) error {
	cur, err := readSysctl(s.key)
	if err != nil {
		return fmt.Errorf("read %s: %w", sysctlName(s.key), err)
	}
	if cur == s.want || (s.parent && cur > s.want) {
		return nil
	}
	if err := writeSysctl(s.key, s.want); err != nil {
		return err
	}
	if s.parent {
		m.journal = append(m.journal, change{key: s.key, from: cur, to: s.want, parent: parent})
		m.log.Info("vmac: changed a sysctl of the vmac's parent", "vmac", vmac, "sysctl", sysctlName(s.key), "from", cur, "to", s.want)
	}
	return nil
}

// clearStrictRPFilter lets the vmac's rp_filter=0 take effect when
// net.ipv4.conf.all.rp_filter is 1 (strict), which the kernel would apply to
// the vmac anyway (it uses max(all, interface)): like keepalived, it raises
// default and every other interface below 1 to 1, then sets all to 0, so
// that every interface but the VRRP vmacs (skip) filters exactly as before,
// and interfaces created later do too. Loose mode (2) is left alone: it
// checks only that the source is routable at all, which lets the vmac work.
// It runs in the Manager's namespace; the change is logged, and journaled
// to be undone once no vmac is left (restore.go).
func (m *Manager) clearStrictRPFilter(vmac string, skip map[string]bool) error {
	all, err := readSysctl("ipv4/conf/all/rp_filter")
	if err != nil {
		return fmt.Errorf("read net.ipv4.conf.all.rp_filter: %w", err)
	}
	if all != 1 {
		return nil
	}
	entries, err := os.ReadDir(procNet + "ipv4/conf")
	if err != nil {
		return fmt.Errorf("list %sipv4/conf: %w", procNet, err)
	}
	var raised []string
	// default first, so an interface created from now on starts strict.
	names := []string{"default"}
	for _, e := range entries {
		if n := e.Name(); n != "all" && n != "default" && n != vmac && !skip[n] {
			names = append(names, n)
		}
	}
	for _, n := range names {
		key := path.Join("ipv4/conf", n, "rp_filter")
		v, err := readSysctl(key)
		if errors.Is(err, fs.ErrNotExist) {
			continue // the interface went away meanwhile
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", sysctlName(key), err)
		}
		if v >= all {
			continue
		}
		if err := writeSysctl(key, all); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
		m.journal = append(m.journal, change{key: key, from: v, to: all})
		raised = append(raised, n)
	}
	if err := writeSysctl("ipv4/conf/all/rp_filter", 0); err != nil {
		return err
	}
	m.journal = append(m.journal, change{key: "ipv4/conf/all/rp_filter", from: all, to: 0})
	m.log.Warn("vmac: net.ipv4.conf.all.rp_filter was 1 (strict), which drops every packet arriving on a vmac; moved strict mode to the individual interfaces and set all.rp_filter=0, so only VRRP vmacs filter differently",
		"vmac", vmac, "raised_to_strict", raised)
	return nil
}

// DisableLinkLocalIGMPReports sets net.ipv4.igmp_link_local_mcast_reports
// to 0 in the Manager's namespace (keepalived's disable_local_igmp). A VRRP
// receive socket joins 224.0.0.18 on the vmac, and the kernel then sends IGMP
// membership reports from it with the virtual MAC as source, also from the
// backup, which moves the switch's MAC table entry to the backup until the
// master's next advert. With 0, no reports are sent for groups in
// 224.0.0.0/24, which RFC 4541 §2.1.2 has snooping switches flood anyway. It
// applies to every interface of the namespace, so it is the caller's choice.
// IPv6 has no such switch: MLD reports for ff02::12 need a firewall rule.
func (m *Manager) DisableLinkLocalIGMPReports() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h == nil {
		return errClosed
	}
	return m.inNS(func() error {
		const key = "ipv4/igmp_link_local_mcast_reports"
		v, err := readSysctl(key)
		if err != nil {
			return fmt.Errorf("vmac: read %s: %w", sysctlName(key), err)
		}
		if v == 0 {
			return nil
		}
		if err := writeSysctl(key, 0); err != nil {
			return fmt.Errorf("vmac: %w", err)
		}
		m.log.Info("vmac: stopped IGMP reports for 224.0.0.0/24 groups", "sysctl", sysctlName(key), "from", v, "to", 0)
		return nil
	})
}
