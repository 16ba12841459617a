// Package statefile keeps vigil's records that must survive a restart but
// not a reboot, one file per kind and network namespace.
package statefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Dir holds what vigil must remember across a restart but not a reboot
// (the kernel's IPVS table does not survive one either).
const Dir = "/run/vigil"

// Path names a record in Dir. What vigil records (IPVS services,
// addresses, interfaces) is per network namespace, so the file is too:
// named by the namespace's inode.
func Path(kind string) string {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &st); err != nil {
		return filepath.Join(Dir, kind+".json")
	}
	return filepath.Join(Dir, fmt.Sprintf("%s-netns%d.json", kind, st.Ino))
}

// Write writes data to path atomically (a crash leaves the old file or the
// new one); nil data removes the file.
func Write(path string, data []byte) error {
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
