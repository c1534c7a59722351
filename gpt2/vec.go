package gpt2

import "math"

// Vector primitives for attention and layer norm over float32 slices, each
// with a naive reference beside it that the tests hold it against. On
// amd64 they run in assembly, AVX-512 or AVX2 as the CPU allows
// (kernels_amd64.s, kernels_avx2_amd64.s); elsewhere in unrolled pure Go.

// dot returns Σ a[i]·b[i] over i < len(a); b must be at least as long.
func dot(a, b []float32) float32 {
	if len(a) == 0 {
		return 0
	}
	b = b[:len(a)]
	switch {
	case hasAVX512:
		return dotVecAVX512(a, b)
	case hasAVX2:
		return dotVecAVX2(a, b)
	}
	return dotGeneric(a, b)
}

// scale multiplies every x[i] by s.
func scale(x []float32, s float32) {
	if len(x) == 0 {
		return
	}
	switch {
	case hasAVX512:
		scaleVecAVX512(x, s)
	case hasAVX2:
		scaleVecAVX2(x, s)
	default:
		scaleGeneric(x, s)
	}
}

// maxf returns the largest element of x, or -Inf for an empty x. Which
// element wins when x holds a NaN is unspecified.
func maxf(x []float32) float32 {
	if len(x) == 0 {
		return float32(math.Inf(-1))
	}
	switch {
	case hasAVX512:
		return maxfVecAVX512(x)
	case hasAVX2:
		return maxfVecAVX2(x)
	}
	return maxfGeneric(x)
}

// The pure-Go fallbacks: four independent chains so the adds overlap.

func dotGeneric(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func scaleGeneric(x []float32, s float32) {
	for i := range x {
		x[i] *= s
	}
}

func maxfGeneric(x []float32) float32 {
	m0, m1 := x[0], x[0]
	i := 0
	for ; i+2 <= len(x); i += 2 {
		m0 = max(m0, x[i])
		m1 = max(m1, x[i+1])
	}
	for ; i < len(x); i++ {
		m0 = max(m0, x[i])
	}
	return max(m0, m1)
}

// The references: the obvious loops.

func dotRef(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func scaleRef(x []float32, s float32) {
	for i := range x {
		x[i] *= s
	}
}

func maxfRef(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	return m
}
