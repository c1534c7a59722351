//go:build !amd64

package gpt2

// hasAVX512 is false off amd64: the vector primitives use pure Go.
const hasAVX512 = false

// bestKernels returns the pure-Go kernels: there is no assembly for this
// architecture.
func bestKernels() *kernels { return genericKernels }

// The assembly entry points vec.go names; never called off amd64.

func dotAVX512(a, b *float32, n int) float32         { panic("gpt2: no assembly") }
func axpyAVX512(alpha float32, x, y *float32, n int) { panic("gpt2: no assembly") }
func scaleAVX512(x *float32, n int, s float32)       { panic("gpt2: no assembly") }
func maxfAVX512(x *float32, n int) float32           { panic("gpt2: no assembly") }
