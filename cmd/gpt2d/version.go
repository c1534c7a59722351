package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// runVersion implements `gpt2d version` and `gpt2d --version`.
func runVersion(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "usage: gpt2d version")
		if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
			return nil
		}
		return errUsage
	}
	fmt.Fprintln(stdout, versionString())
	return nil
}

// versionString is "gpt2d VERSION (commit, go version, os/arch)": the
// module version when built from a tagged module, else the VCS revision
// the binary was built from, with "+dirty" for uncommitted changes.
func versionString() string {
	v, rev, dirty := weightsVersion(), "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	detail := ""
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		detail = "commit " + rev
		if dirty {
			detail += "+dirty"
		}
		detail += ", "
	}
	return fmt.Sprintf("gpt2d %s (%s%s, %s/%s)", v, detail, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
