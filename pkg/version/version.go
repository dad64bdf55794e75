// Package version holds pgcdc's version, set at build time with
// -ldflags "-X github.com/pgcdc/pgcdc/pkg/version.Version=...".
package version

import "runtime/debug"

// Version is the pgcdc release; "dev" in builds without ldflags.
var Version = "dev"

// String returns Version, or the module version recorded by the Go toolchain when ldflags did not
// set one.
func String() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}
