//go:build !linux

package gpt2

import "time"

// threadCPUTime reports no thread clock off Linux: the per-core rates are
// not measured there.
func threadCPUTime() (time.Duration, bool) { return 0, false }
