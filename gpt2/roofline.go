package gpt2

import (
	"time"
)

// Roofline is what this machine can do at best, measured with the engine's
// own worker pool and kernels, so throughput can be stated as a fraction
// of it from the same run.
type Roofline struct {
	// MemoryGBs is the rate at which the workers stream memory (GB/s).
	MemoryGBs float64
	// GEMMGFLOPs is the float32 matrix-multiply rate of the prefill kernel
	// on a large, well-shaped problem (GFLOP/s).
	GEMMGFLOPs float64
}

// MeasureRoofline measures memory read bandwidth over a buffer much larger
// than the caches (the better of a plain read and a matrix-vector
// product), and the GEMM rate on (512 × 768) · (768 × 3072), each
// the best of a few repetitions. It takes about a second.
func MeasureRoofline(threads int) Roofline {
	p := NewPool(threads)
	defer p.Close()
	var r Roofline

	// Memory: the best of two ways to stream 512 MB — a plain read (dot of
	// each 4 MB chunk with itself) and a matrix-vector product over it as
	// a (N, 4096) weight matrix, the access pattern of batch-1 decoding.
	const n = 128 << 20 // 512 MB of float32
	buf := make([]float32, n)
	for i := range buf {
		buf[i] = float32(i&7) * 0.125
	}
	const chunk = 1 << 20
	parts := make([]float32, n/chunk)
	read := func(start, end int) {
		for c := start; c < end; c++ {
			s := buf[c*chunk : (c+1)*chunk]
			parts[c] = dot(s, s)
		}
	}
	const cols = 4096
	gemv := &Linear{In: cols, Out: n / cols, Type: WeightF32, F32: buf}
	vec := make([]float32, cols)
	res := make([]float32, n/cols)
	for range 3 {
		t := time.Now()
		p.For(len(parts), read)
		r.MemoryGBs = max(r.MemoryGBs, 4*n/time.Since(t).Seconds()/1e9)
		t = time.Now()
		p.linear(res, vec, 1, gemv)
		r.MemoryGBs = max(r.MemoryGBs, 4*n/time.Since(t).Seconds()/1e9)
	}

	const M, K, N = 512, 768, 3072
	x := make([]float32, M*K)
	w := make([]float32, N*K)
	out := make([]float32, M*N)
	for i := range x {
		x[i] = float32(i%13) * 0.01
	}
	for i := range w {
		w[i] = float32(i%7) * 0.01
	}
	l := &Linear{In: K, Out: N, Type: WeightF32, F32: w}
	p.linear(out, x, M, l) // warm up: scratch buffers, page faults
	for range 3 {
		t := time.Now()
		p.linear(out, x, M, l)
		r.GEMMGFLOPs = max(r.GEMMGFLOPs, 2*M*K*N/time.Since(t).Seconds()/1e9)
	}
	return r
}
