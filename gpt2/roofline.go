package gpt2

import (
	"runtime"
	"sync"
	"sync/atomic"
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
	// GEMMBF16GFLOPs, GEMMF16GFLOPs and GEMMI8GFLOPs are the same product
	// on bf16, f16 and int8 weights: bf16 × bf16 (f16 weights rounded to
	// bf16) and int8 × int8 dot products where the CPU has them, else
	// weights widened to float32.
	GEMMBF16GFLOPs, GEMMF16GFLOPs, GEMMI8GFLOPs float64
	// PeakGFLOPs is the CPU's float32 multiply-add peak over the threads:
	// a loop of independent register-only FMAs, what no GEMM can beat.
	// PeakBF16GFLOPs and PeakI8GOPs are the same for the bf16 and int8
	// dot-product instructions. Zero where not measured.
	PeakGFLOPs, PeakBF16GFLOPs, PeakI8GOPs float64

	// Core holds the GEMM rates and instruction peaks of one thread timed
	// by its own CPU clock: what a core does while it runs, which another
	// process taking the core some of the time does not lower, so their
	// ratio holds on a busy machine where the wall-clock ones above drift.
	// Zero where the thread's clock cannot be read (not Linux).
	Core CoreRates
}

// CoreRates are Roofline's rates on one core, by its CPU time.
type CoreRates struct {
	GEMMGFLOPs, GEMMBF16GFLOPs, GEMMF16GFLOPs, GEMMI8GFLOPs float64
	PeakGFLOPs, PeakBF16GFLOPs, PeakI8GOPs                  float64
}

// GEMMPctPeak returns the GEMM rate on one core for weights of dtype as a
// percentage of the instruction peak it runs on, or 0 where not measured.
func (r Roofline) GEMMPctPeak(dtype string) float64 {
	c := r.Core
	gemm, peak := 0.0, c.PeakGFLOPs
	switch dtype {
	case "F32":
		gemm = c.GEMMGFLOPs
	case "BF16", "F16":
		gemm = c.GEMMBF16GFLOPs
		if dtype == "F16" {
			gemm = c.GEMMF16GFLOPs
		}
		if hasBF16 {
			peak = c.PeakBF16GFLOPs
		}
	case "I8":
		gemm = c.GEMMI8GFLOPs
		if hasVNNI {
			peak = c.PeakI8GOPs
		}
	}
	if gemm <= 0 || peak <= 0 {
		return 0
	}
	return 100 * gemm / peak
}

// GEMMFor returns the GEMM rate for weights of dtype (a Model's DType:
// F32, BF16, F16, I8), or 0 for an unknown one.
func (r Roofline) GEMMFor(dtype string) float64 {
	switch dtype {
	case "F32":
		return r.GEMMGFLOPs
	case "BF16":
		return r.GEMMBF16GFLOPs
	case "F16":
		return r.GEMMF16GFLOPs
	case "I8":
		return r.GEMMI8GFLOPs
	}
	return 0
}

// PeakFor returns the instruction peak the GEMM for weights of dtype runs
// on: the dot-product instruction's where the kernels use it, else the
// float32 FMA's.
func (r Roofline) PeakFor(dtype string) float64 {
	switch {
	case (dtype == "BF16" || dtype == "F16") && hasBF16: // f16 runs the bf16 GEMM
		return r.PeakBF16GFLOPs
	case dtype == "I8" && hasVNNI:
		return r.PeakI8GOPs
	}
	return r.PeakGFLOPs
}

// MeasureRoofline measures memory read bandwidth over a buffer much larger
// than the caches (the better of a plain read and a matrix-vector
// product), the GEMM rate on (512 × 768) · (768 × 3072) for each weight
// type, and the instruction peaks, each the best of a few repetitions. It
// takes a few seconds.
func MeasureRoofline(threads int) Roofline {
	p := newPool(threads)
	defer p.Close()
	var r Roofline
	r.MemoryGBs = measureMemory(p)
	measureGEMM(p, &r)
	measurePeaks(p, &r)
	return r
}

// measureMemory returns the read bandwidth in GB/s that p reaches.
func measureMemory(p *pool) float64 {
	// The better of two ways to stream 512 MB — a plain read (dot of
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
	gemv := &linear{In: cols, Out: n / cols, Type: weightF32, F32: buf}
	vec := make([]float32, cols)
	res := make([]float32, n/cols)
	var best float64
	for range 3 {
		t := time.Now()
		p.For(len(parts), read)
		best = max(best, 4*n/time.Since(t).Seconds()/1e9)
		t = time.Now()
		p.linear(res, vec, 1, gemv)
		best = max(best, 4*n/time.Since(t).Seconds()/1e9)
	}
	return best
}

// measureGEMM sets r's GEMM rates, on p's threads (by wall time) and on
// one thread (by its CPU time), for each weight type.
func measureGEMM(p *pool, r *Roofline) {
	const M, K, N = 512, 768, 3072
	x := make([]float32, M*K)
	w := make([]float32, N*K)
	out := make([]float32, M*N)
	for i := range x {
		x[i] = float32(i%13)*0.01 - 0.06
	}
	for i := range w {
		w[i] = float32(i%7)*0.01 - 0.03
	}
	rate := func(l *linear) float64 {
		p.linear(out, x, M, l) // warm up: scratch buffers, page faults
		var best float64
		for range 4 {
			t := time.Now()
			p.linear(out, x, M, l)
			best = max(best, 2*M*K*N/time.Since(t).Seconds()/1e9)
		}
		return best
	}
	// coreRate is rate on one thread by its CPU time, the best of three.
	p1 := newPool(1) // the caller only: every chunk runs on this thread
	defer p1.Close()
	coreRate := func(l *linear) float64 {
		return onThreadClock(func(cpu func() time.Duration) float64 {
			p1.linear(out, x, M, l)
			var best float64
			for range 3 {
				c := cpu()
				p1.linear(out, x, M, l)
				if d := cpu() - c; d > 0 {
					best = max(best, 2*M*K*N/d.Seconds()/1e9)
				}
			}
			return best
		})
	}
	lf := &linear{In: K, Out: N, Type: weightF32, F32: w}
	r.GEMMGFLOPs, r.Core.GEMMGFLOPs = rate(lf), coreRate(lf)
	u16 := make([]uint16, len(w))
	for i, v := range w {
		u16[i] = bf16FromF32(v)
	}
	lb := &linear{In: K, Out: N, Type: weightBF16, U16: u16}
	r.GEMMBF16GFLOPs, r.Core.GEMMBF16GFLOPs = rate(lb), coreRate(lb)
	for i, v := range w {
		u16[i] = f16FromF32(v)
	}
	lh := &linear{In: K, Out: N, Type: weightF16, U16: u16}
	r.GEMMF16GFLOPs, r.Core.GEMMF16GFLOPs = rate(lh), coreRate(lh)
	i8 := make([]int8, len(w))
	sc := make([]float32, N)
	for i, v := range w {
		i8[i] = int8(v * 100)
	}
	for i := range sc {
		sc[i] = 0.01
	}
	li := &linear{In: K, Out: N, Type: weightI8, I8: i8, Scale: sc}
	r.GEMMI8GFLOPs, r.Core.GEMMI8GFLOPs = rate(li), coreRate(li)
}

// measurePeaks sets r's instruction peaks, on every thread of p at once
// and on one thread by its CPU time.
func measurePeaks(p *pool, r *Roofline) {
	f32, bf16, i8Loop, f32Ops, bf16Ops, i8Ops := peakLoops()
	peak := func(loop func(int), ops float64) float64 {
		if loop == nil {
			return 0
		}
		return measurePeak(p.Size(), loop, ops)
	}
	r.PeakGFLOPs = peak(f32, f32Ops)
	r.PeakBF16GFLOPs = peak(bf16, bf16Ops)
	r.PeakI8GOPs = peak(i8Loop, i8Ops)
	corePeak := func(loop func(int), ops float64) float64 {
		if loop == nil {
			return 0
		}
		return onThreadClock(func(cpu func() time.Duration) float64 {
			var best float64
			for range 3 {
				c := cpu()
				loop(peakIters)
				if d := cpu() - c; d > 0 {
					best = max(best, peakIters*ops/d.Seconds()/1e9)
				}
			}
			return best
		})
	}
	r.Core.PeakGFLOPs = corePeak(f32, f32Ops)
	r.Core.PeakBF16GFLOPs = corePeak(bf16, bf16Ops)
	r.Core.PeakI8GOPs = corePeak(i8Loop, i8Ops)
}

// peakIters is how many iterations of a peak loop one thread runs per
// repetition: 24 independent instructions each, so about 50 M cycles
// (15 ms at 3.5 GHz at one instruction per cycle) — long enough that the
// threads' start-up is lost in it.
const peakIters = 1 << 21

// measurePeak returns the best rate (G ops/s) of threads goroutines each
// running loop(peakIters) at the same time, over a few repetitions. Each
// thread times its own run once all are running (they meet at a spinning
// barrier, not a wake-up, so none starts before the others are up), and
// the rate is the operations done over the span from the first start to
// the last end: a thread that lost its core to another process lengthens
// the span, so only repetitions where every thread had a core count as
// the best.
func measurePeak(threads int, loop func(int), ops float64) float64 {
	var best float64
	for range 12 {
		var ready atomic.Int32
		var wg sync.WaitGroup
		starts, ends := make([]time.Time, threads), make([]time.Time, threads)
		for i := range threads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ready.Add(1)
				for ready.Load() < int32(threads) {
					runtime.Gosched()
				}
				starts[i] = time.Now()
				loop(peakIters)
				ends[i] = time.Now()
			}()
		}
		wg.Wait()
		first, last := starts[0], ends[0]
		for i := range threads {
			if starts[i].Before(first) {
				first = starts[i]
			}
			if ends[i].After(last) {
				last = ends[i]
			}
		}
		best = max(best, float64(threads)*peakIters*ops/last.Sub(first).Seconds()/1e9)
	}
	return best
}

// onThreadClock runs measure locked to one OS thread, giving it that
// thread's CPU clock, and returns what it returns; 0 where the clock
// cannot be read.
func onThreadClock(measure func(cpu func() time.Duration) float64) float64 {
	if _, ok := threadCPUTime(); !ok {
		return 0
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return measure(func() time.Duration {
		d, _ := threadCPUTime()
		return d
	})
}
