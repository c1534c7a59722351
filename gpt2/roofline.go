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
// than the caches, and the GEMM rate on (512 × 768) · (768 × 3072), each
// the best of a few repetitions. It takes about a second.
func MeasureRoofline(threads int) Roofline {
	p := NewPool(threads)
	defer p.Close()
	var r Roofline

	const n = 128 << 20 // 512 MB of float32
	buf := make([]float32, n)
	for i := range buf {
		buf[i] = float32(i & 7)
	}
	parts := make([]float32, 64)
	sum := func(start, end int) {
		for c := start; c < end; c++ {
			lo, hi := c*n/len(parts), (c+1)*n/len(parts)
			parts[c] = maxf(buf[lo:hi])
		}
	}
	for range 3 {
		t := time.Now()
		p.For(len(parts), sum)
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

// WeightBytes returns the bytes of weights one decode step reads: every
// layer's matrices and the LM head (the embedding rows read are few).
func (m *Model) WeightBytes() int64 {
	size := func(l *Linear) int64 {
		switch l.Type {
		case WeightF32:
			return 4 * int64(len(l.F32))
		case WeightBF16, WeightF16:
			return 2 * int64(len(l.U16))
		}
		return int64(len(l.I8)) + 4*int64(len(l.Scale))
	}
	total := size(m.wte)
	for _, b := range m.layers {
		total += size(b.attn) + size(b.proj) + size(b.fc) + size(b.fcProj)
	}
	return total
}
