// Package buildinfo reads what the Go toolchain stamped into the running
// binary: the module version, the VCS revision and the Go version. `weft
// version`, the admin API's /version and the start-up log line all show it.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"sync"

	"weft.dev/weft/internal/apitype"
)

// Get describes the running binary. A binary built without module support
// (never the case for weft) reports only its Go version.
var Get = sync.OnceValue(func() apitype.Version {
	v := apitype.Version{Module: "(unknown)", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Module = bi.Main.Version
	if v.Module == "" {
		// A test binary has no main module version.
		v.Module = "(devel)"
	}
	v.Go = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.RevisionTime = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
})

// LogAttrs are the version's fields for a start-up log line.
func LogAttrs() []any {
	v := Get()
	return []any{"version", v.Module, "revision", v.Revision, "modified", v.Modified, "go", v.Go}
}
