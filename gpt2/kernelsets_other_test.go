//go:build !amd64

package gpt2

// kernelSetsBuilt lists no SIMD kernel sets: there is no assembly here.
func kernelSetsBuilt() []kernelSetInfo { return nil }
