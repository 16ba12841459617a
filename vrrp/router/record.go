package router

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"vigil/internal/statefile"

	"vigil/vrrp/vip"
)

// hostRecord is what vigil may have put on the host's interfaces and not
// yet taken away: the VIPs of every configuration it ran since it last
// stopped gracefully, and the virtual MAC interfaces it created, kept in a
// state file (statefile.Path("vrrp"), in /run: none of it survives a reboot
// either). After a crash (SIGKILL, the OOM killer) the next start removes
// what it lists that the configuration no longer has; before, it cleaned
// only the VIPs of the current configuration, so a VIP removed from the
// file while vigil was down stayed on the interface for good, a duplicate
// of the real owner (issue 11 item 5). VIPs are recorded when a
// configuration is started or reloaded, before any of them can be added,
// not at every transition: a failover writes nothing. A graceful stop
// forgets them; virtual MAC interfaces are recorded before they are
// created and forgotten once removed.
type hostRecord struct {
	path string
	log  *slog.Logger

	mu    sync.Mutex
	vips  map[vip.VIP]bool
	vmacs map[string]bool
	saved string // what the file holds
}

// recordFile is the file's format.
type recordFile struct {
	Version int         `json:"version"`
	VIPs    []recordVIP `json:"vips,omitempty"`
	VMACs   []string    `json:"vmacs,omitempty"`
}

type recordVIP struct {
	Address netip.Prefix `json:"address"`
	Dev     string       `json:"dev"`
	Label   string       `json:"label,omitempty"`
}

// openRecord reads the record at path ("" keeps nothing); an unreadable
// file is logged and taken as empty.
func openRecord(path string, log *slog.Logger) *hostRecord {
	r := &hostRecord{path: path, log: log, vips: map[vip.VIP]bool{}, vmacs: map[string]bool{}}
	if path == "" {
		return r
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r
	}
	var rec recordFile
	if err == nil {
		err = json.Unmarshal(data, &rec)
		if err == nil && rec.Version != 1 {
			err = fmt.Errorf("unknown version %d", rec.Version)
		}
	}
	if err != nil {
		log.Warn("ignoring the record of addresses and interfaces of an earlier run", "file", path, "err", err)
		return r
	}
	for _, v := range rec.VIPs {
		r.vips[vip.VIP{Prefix: v.Address, Dev: v.Dev, Label: v.Label}] = true
	}
	for _, name := range rec.VMACs {
		r.vmacs[name] = true
	}
	r.saved = strings.TrimSpace(string(data))
	return r
}

// VIPs and VMACs return what the record lists.
func (r *hostRecord) VIPs() []vip.VIP {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.SortedFunc(maps.Keys(r.vips), compareVIP)
}

func (r *hostRecord) VMACs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.vmacs))
}

func compareVIP(a, b vip.VIP) int {
	if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
		return c
	}
	return strings.Compare(a.Dev, b.Dev)
}

// addVIPs records vs and saves the file if it changed.
func (r *hostRecord) addVIPs(vs []vip.VIP) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range vs {
		r.vips[v] = true
	}
	r.saveLocked()
}

// setVIPs makes the recorded VIPs vs exactly.
func (r *hostRecord) setVIPs(vs []vip.VIP) {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.vips)
	for _, v := range vs {
		r.vips[v] = true
	}
	r.saveLocked()
}

// setVMAC records (add) or forgets a virtual MAC interface.
func (r *hostRecord) setVMAC(name string, add bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if add {
		r.vmacs[name] = true
	} else {
		delete(r.vmacs, name)
	}
	r.saveLocked()
}

// saveLocked writes the record when it changed; a failure is logged (the
// running node is not affected; only a crash's cleanup would miss it).
func (r *hostRecord) saveLocked() {
	if r.path == "" {
		return
	}
	var data []byte
	if len(r.vips) > 0 || len(r.vmacs) > 0 {
		rec := recordFile{Version: 1, VMACs: slices.Sorted(maps.Keys(r.vmacs))}
		for _, v := range slices.SortedFunc(maps.Keys(r.vips), compareVIP) {
			rec.VIPs = append(rec.VIPs, recordVIP{Address: v.Prefix, Dev: v.Dev, Label: v.Label})
		}
		var err error
		if data, err = json.MarshalIndent(rec, "", "  "); err != nil {
			r.log.Error("encoding the record of added addresses", "err", err)
			return
		}
	}
	if strings.TrimSpace(string(data)) == r.saved {
		return
	}
	if data != nil {
		data = append(data, '\n')
	}
	if err := statefile.Write(r.path, data); err != nil {
		r.log.Warn("recording the addresses and interfaces vigil added", "err", err)
		return
	}
	r.saved = strings.TrimSpace(string(data))
}

// runningVIPs are the VIPs of every running instance, for the record.
func (n *Router) runningVIPs() []vip.VIP {
	var out []vip.VIP
	for _, in := range n.insts {
		out = append(out, in.vips...)
	}
	return out
}

// addVIPList adds VIPs for an instance.
func (n *Router) addVIPList(name string, vs []vip.VIP) error {
	if len(vs) == 0 {
		return nil
	}
	if err := n.vips.Add(vs); err != nil {
		n.log.Error("adding virtual addresses failed", "vrrp_instance", name, "err", err)
		return err
	}
	return nil
}

// removeVIPList removes VIPs of an instance.
func (n *Router) removeVIPList(name string, vs []vip.VIP) error {
	if len(vs) == 0 {
		return nil
	}
	if err := n.vips.Remove(vs); err != nil {
		n.log.Error("removing virtual addresses failed", "vrrp_instance", name, "err", err)
		return err
	}
	return nil
}
