package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"vigil/lb"
)

// StateDir holds what vigil must remember across a restart but not a
// reboot (the kernel's IPVS table does not survive one either).
const StateDir = "/run/vigil"

// managedStateFile is where the balancer records the services it manages.
func managedStateFile() string { return stateFile("ipvs-managed") }

// stateFile names a record in StateDir. What vigil records (IPVS services,
// addresses, interfaces) is per network namespace, so the file is too:
// named by the namespace's inode.
func stateFile(kind string) string {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &st); err != nil {
		return filepath.Join(StateDir, kind+".json")
	}
	return filepath.Join(StateDir, fmt.Sprintf("%s-netns%d.json", kind, st.Ino))
}

// writeStateFile writes data to path atomically (a crash leaves the old
// file or the new one); nil data removes the file.
func writeStateFile(path string, data []byte) error {
	if data == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", path, err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

// managedRecord is the file's format.
type managedRecord struct {
	Version  int          `json:"version"`
	Services []managedKey `json:"services"`
}

type managedKey struct {
	Service  string     `json:"service"` // for people reading the file; ignored on load
	Family   lb.Family  `json:"family"`
	Protocol uint16     `json:"protocol,omitempty"`
	Addr     netip.Addr `json:"address,omitzero"`
	Port     uint16     `json:"port,omitempty"`
	FWMark   uint32     `json:"fwmark,omitempty"`
}

// loadManaged reads the services an earlier run managed; a missing file is
// an empty set.
func loadManaged(path string) (map[lb.ServiceKey]bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[lb.ServiceKey]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var rec managedRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if rec.Version != 1 {
		return nil, fmt.Errorf("%s: unknown version %d", path, rec.Version)
	}
	out := make(map[lb.ServiceKey]bool, len(rec.Services))
	for _, k := range rec.Services {
		key := lb.ServiceKey{Family: k.Family, Protocol: lb.Protocol(k.Protocol), Addr: k.Addr, Port: k.Port, FWMark: k.FWMark}
		out[key.Normal()] = true
	}
	return out, nil
}

// saveManaged writes the set atomically; an empty set removes the file.
func saveManaged(path string, set map[lb.ServiceKey]bool) error {
	if len(set) == 0 {
		return writeStateFile(path, nil)
	}
	keys := slices.SortedFunc(maps.Keys(set), lb.CompareServiceKeys)
	rec := managedRecord{Version: 1, Services: make([]managedKey, 0, len(keys))}
	for _, k := range keys {
		rec.Services = append(rec.Services, managedKey{Service: k.String(), Family: k.Family, Protocol: uint16(k.Protocol), Addr: k.Addr, Port: k.Port, FWMark: k.FWMark})
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode managed services: %w", err)
	}
	return writeStateFile(path, append(data, '\n'))
}
