//go:build !amd64

package gpt2

// hasAVX512 is false off amd64: the vector primitives use pure Go.
const hasAVX512 = false

// bestKernels returns the pure-Go kernels: there is no assembly for this
// architecture.
func bestKernels() *kernels { return genericKernels }

// No assembly off amd64.
const hasAVX2 = false

// simdKernels lists no kernel sets: there is no assembly here.
func simdKernels() []*kernels { return nil }

// The vector entry points vec.go names; never called off amd64.

func dotVecAVX512(a, b []float32) float32   { panic("gpt2: no assembly") }
func scaleVecAVX512(x []float32, s float32) { panic("gpt2: no assembly") }
func maxfVecAVX512(x []float32) float32     { panic("gpt2: no assembly") }
func dotVecAVX2(a, b []float32) float32     { panic("gpt2: no assembly") }
func scaleVecAVX2(x []float32, s float32)   { panic("gpt2: no assembly") }
func maxfVecAVX2(x []float32) float32       { panic("gpt2: no assembly") }

// No bf16 or int8 dot-product instructions off amd64: the roofline
// measures the float32 peak only.
const hasBF16, hasVNNI = false, false
