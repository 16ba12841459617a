// Package buildinfo holds the version stamped in at build time.
package buildinfo

import "runtime/debug"

// Set by the linker: -X vigil/internal/buildinfo.Version=... -X ...Revision=...
var (
	Version  = "dev"
	Revision = ""
)

// Info is the build identity shown by `vigil version` and vigil_build_info.
type Info struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	GoVersion string `json:"go_version"`
}

// Get returns the build identity, falling back to the VCS stamp Go records.
func Get() Info {
	in := Info{Version: Version, Revision: Revision}
	if bi, ok := debug.ReadBuildInfo(); ok {
		in.GoVersion = bi.GoVersion
		if in.Revision == "" {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					in.Revision = s.Value
				}
			}
		}
	}
	return in
}
