package balancer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"slices"

	"vigil/internal/statefile"
	"vigil/lb"
)

// managedStateFile is where the balancer records the services it manages.
func managedStateFile() string { return statefile.Path("ipvs-managed") }

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
		return statefile.Write(path, nil)
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
	return statefile.Write(path, append(data, '\n'))
}
