package gpt2

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// hasAVX512 reports whether the AVX-512 kernels in kernels_amd64.s can run:
// they use F (zmm arithmetic, opmasks), VL (EVEX on ymm/xmm), BW and DQ.
// x/sys/cpu also checks that the OS saves the zmm state.
var hasAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL &&
	cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ

// bestKernels returns the fastest kernel set this CPU runs.
func bestKernels() *kernels {
	switch {
	case avx512NarrowKernels != nil:
		return avx512NarrowKernels
	case hasAVX512:
		return avx512Kernels
	case hasAVX2:
		return avx2Kernels
	}
	return genericKernels
}

// simdKernels lists every kernel set this CPU runs, fastest first, for the
// tests to hold each against the reference.
func simdKernels() []*kernels {
	var ks []*kernels
	if avx512NarrowKernels != nil {
		ks = append(ks, avx512NarrowKernels)
	}
	if hasAVX512 {
		ks = append(ks, avx512Kernels)
	}
	if hasAVX2 {
		ks = append(ks, avx2Kernels)
	}
	return ks
}

// avx512Kernels is the AVX-512 kernel set: 12×32 register tile (24 zmm
// accumulators), 4-row dot kernels widening narrow weights in registers,
// and 2-row × 8-input-row kernels for batched decode.
var avx512Kernels = &kernels{
	name:     "avx512",
	dot4:     avx512Dot4,
	dot4BF16: avx512Dot4BF16,
	dot4F16:  avx512Dot4F16,
	dot4I8:   avx512Dot4I8,
	dotM:     4,
	dot2:     avx512Dot2,
	dot2BF16: avx512Dot2BF16,
	dot2F16:  avx512Dot2F16,
	dot2I8:   avx512Dot2I8,
	rows1:    avx512Rows1,
	mr:       12,
	nr:       32,
	tile:     avx512Tile,
	panel:    avx512Panel,
	cvtBF16:  avx512CvtBF16,
	cvtF16:   avx512CvtF16,
	cvtI8:    avx512CvtI8,
	attn:     avx512Attn,
	prefetch: prefetchRows,
}

// The wrappers check bounds once, so the assembly cannot run off a slice.
// The per-dtype ones repeat one shape on purpose (and in
// kernels_avx2_amd64.go): each binds one assembly function's element
// types, which a generic Go function cannot call; the checks they share
// are dotCheck, tileCheck and dotRowsKernels.call.

// dotCheck checks the operands of a call computing rows weight rows
// against m input rows (the dot4 and dot2 kernels) and returns the bias
// pointer (nil for no bias).
func dotCheck(rows int, out []float32, ldo int, x []float32, ldx, m, wlen, ldw, k int, bias []float32) *float32 {
	_ = out[(m-1)*ldo+rows-1]
	_ = x[(m-1)*ldx+k-1]
	if (rows-1)*ldw+k > wlen {
		panic("gpt2: dot kernel weights out of range")
	}
	if bias != nil {
		return &bias[:rows][0]
	}
	return nil
}

// dot4Check is dotCheck for the four-row kernels.
func dot4Check(out []float32, ldo int, x []float32, ldx, m, wlen, ldw, k int, bias []float32) *float32 {
	return dotCheck(4, out, ldo, x, ldx, m, wlen, ldw, k, bias)
}

func avx512Dot4(out []float32, ldo int, x []float32, ldx, m int, w []float32, ldw, k int, bias []float32) {
	if m > 0 && k > 0 {
		bp := dot4Check(out, ldo, x, ldx, m, len(w), ldw, k, bias)
		dot4F32AVX512(&out[0], ldo, &x[0], ldx, m, &w[0], ldw, k, bp)
	}
}

func avx512Dot4BF16(out []float32, ldo int, x []float32, ldx, m int, w []uint16, ldw, k int, bias []float32) {
	if m > 0 && k > 0 {
		bp := dot4Check(out, ldo, x, ldx, m, len(w), ldw, k, bias)
		dot4BF16AVX512(&out[0], ldo, &x[0], ldx, m, &w[0], ldw, k, bp)
	}
}

func avx512Dot4F16(out []float32, ldo int, x []float32, ldx, m int, w []uint16, ldw, k int, bias []float32) {
	if m > 0 && k > 0 {
		bp := dot4Check(out, ldo, x, ldx, m, len(w), ldw, k, bias)
		dot4F16AVX512(&out[0], ldo, &x[0], ldx, m, &w[0], ldw, k, bp)
	}
}

func avx512Dot4I8(out []float32, ldo int, x []float32, ldx, m int, w []int8, ldw, k int, scale, bias []float32) {
	if m > 0 && k > 0 {
		bp := dot4Check(out, ldo, x, ldx, m, len(w), ldw, k, bias)
		dot4I8AVX512(&out[0], ldo, &x[0], ldx, m, &w[0], ldw, k, &scale[:4][0], bp)
	}
}

// dot2Check is dotCheck for the two-row kernels, which take at most 8
// input rows.
func dot2Check(out []float32, ldo int, x []float32, ldx, m, wlen, ldw, k int, bias []float32) *float32 {
	if m > 8 {
		panic("gpt2: dot2 takes at most 8 input rows")
	}
	return dotCheck(2, out, ldo, x, ldx, m, wlen, ldw, k, bias)
}

func avx512Dot2(out []float32, ldo int, x []float32, ldx, m int, w []float32, ldw, k int, bias []float32) {
	if m > 0 && k > 0 {
		bp := dot2Check(out, ldo, x, ldx, m, len(w), ldw, k, bias)
		dot2x8F32AVX512(&out[0], ldo, &x[0], ldx, m, &w[0], ldw, k, bp)
	}
}

func avx512Dot2BF16(out []float32, ldo int, x []float32, ldx, m int, w []uint16, ldw, k int, bias []float32) {
	if m > 0 && k > 0 {
		bp := dot2Check(out, ldo, x, ldx, m, len(w), ldw, k, bias)
		dot2x8BF16AVX512(&out[0], ldo, &x[0], ldx, m, &w[0], ldw, k, bp)
	}
}

func avx512Dot2F16(out []float32, ldo int, x []float32, ldx, m int, w []uint16, ldw, k int, bias []float32) {
	if m > 0 && k > 0 {
		bp := dot2Check(out, ldo, x, ldx, m, len(w), ldw, k, bias)
		dot2x8F16AVX512(&out[0], ldo, &x[0], ldx, m, &w[0], ldw, k, bp)
	}
}

func avx512Dot2I8(out []float32, ldo int, x []float32, ldx, m int, w []int8, ldw, k int, scale, bias []float32) {
	if m > 0 && k > 0 {
		bp := dot2Check(out, ldo, x, ldx, m, len(w), ldw, k, bias)
		dot2x8I8AVX512(&out[0], ldo, &x[0], ldx, m, &w[0], ldw, k, &scale[:2][0], bp)
	}
}

func avx512Tile(c []float32, ldc int, a []float32, lda int, b []float32, kc int, bias []float32, add bool) {
	bp, ad := tileCheck(12, 32, c, ldc, a, lda, b, kc, bias, add)
	tile12x32AVX512(&c[0], ldc, &a[0], lda, &b[0], kc, bp, ad)
}

// tileCheck checks the operands of an mr×nr GEMM micro-kernel call (the
// kernels.tile contract) and returns the bias pointer (nil for no bias)
// and add as the assembly takes it.
func tileCheck(mr, nr int, c []float32, ldc int, a []float32, lda int, b []float32, kc int, bias []float32, add bool) (*float32, int) {
	_ = c[(mr-1)*ldc+nr-1]
	_ = a[(mr-1)*lda+kc-1]
	_ = b[kc*nr-1]
	var bp *float32
	if bias != nil {
		bp = &bias[:nr][0]
	}
	if add {
		return bp, 1
	}
	return bp, 0
}

// avx512Rows1 streams float32 and bf16 rows with the AVX2 kernel: on Zen 4
// its 32-byte loads keep a single memory stream 7–10% closer to the
// bandwidth bound than 64-byte ones (interleaved A/B, 768×3072 layers);
// the widening work of int8 favours 16 lanes, and f16 is even.
func avx512Rows1(out, x []float32, l *linear, o0, o1 int) {
	if hasAVX2 && (l.Type == weightF32 || l.Type == weightBF16) {
		avx2Rows1(out, x, l, o0, o1)
		return
	}
	if o1 > o0 && l.In > 0 {
		avx512DotRows.call(out, x, l, o0, o1, l.In)
	}
}

// dotRowsKernels are one SIMD width's decode kernels, one per weight
// type: for rows r < rows of W (row stride ldw),
//
//	out[r] = bias[r] + Σ_{i<k} x[i]·W[r][i]    (int8: the sum times scale[r])
type dotRowsKernels struct {
	f32  func(out, x, w *float32, ldw, k, rows int, bias *float32)
	bf16 func(out, x *float32, w *uint16, ldw, k, rows int, bias *float32)
	f16  func(out, x *float32, w *uint16, ldw, k, rows int, bias *float32)
	i8   func(out, x *float32, w *int8, ldw, k, rows int, scale, bias *float32)
}

var avx512DotRows = &dotRowsKernels{dotRowsF32AVX512, dotRowsBF16AVX512, dotRowsF16AVX512, dotRowsI8AVX512}

// call runs the kernel for l's weight type over weight rows [o0, o1) and
// their first k columns (k ≤ l.In), after checking the operands once so
// the assembly cannot run off a slice. o1 > o0 and l.In > 0.
func (d *dotRowsKernels) call(out, x []float32, l *linear, o0, o1, k int) {
	rows := o1 - o0
	_ = out[rows-1]
	_ = x[l.In-1]
	var bp *float32
	if l.Bias != nil {
		bp = &l.Bias[o0:o1][0]
	}
	off, end := o0*l.In, o1*l.In
	switch l.Type {
	case weightF32:
		d.f32(&out[0], &x[0], &l.F32[off:end][0], l.In, k, rows, bp)
	case weightBF16:
		d.bf16(&out[0], &x[0], &l.U16[off:end][0], l.In, k, rows, bp)
	case weightF16:
		d.f16(&out[0], &x[0], &l.U16[off:end][0], l.In, k, rows, bp)
	case weightI8:
		d.i8(&out[0], &x[0], &l.I8[off:end][0], l.In, k, rows, &l.Scale[o0:o1][0], bp)
	}
}

// avx512Panel transposes 16-column blocks in registers and leaves a
// ragged end of kc to panelGeneric.
func avx512Panel(k *kernels, dst []float32, l *linear, n0, k0, kc int, row []float32) {
	kc16 := kc &^ 15
	if kc16 > 0 {
		_ = dst[kc16*32-1]
		off := n0*l.In + k0
		end := off + 31*l.In + kc16 // one past the last element read
		switch l.Type {
		case weightF32:
			_ = l.F32[end-1]
			pack32F32AVX512(&dst[0], &l.F32[off], l.In, kc16)
		case weightBF16:
			_ = l.U16[end-1]
			pack32BF16AVX512(&dst[0], &l.U16[off], l.In, kc16)
		case weightF16:
			_ = l.U16[end-1]
			pack32F16AVX512(&dst[0], &l.U16[off], l.In, kc16)
		case weightI8:
			_ = l.I8[end-1]
			pack32I8AVX512(&dst[0], &l.I8[off], l.In, kc16, &l.Scale[n0 : n0+32][0])
		}
	}
	if kc16 < kc {
		panelGeneric(k, dst[kc16*32:], l, n0, k0+kc16, kc-kc16, row)
	}
}

func avx512CvtBF16(dst []float32, src []uint16) {
	if len(src) > 0 {
		_ = dst[len(src)-1]
		cvtBF16AVX512(&dst[0], &src[0], len(src))
	}
}

func avx512CvtF16(dst []float32, src []uint16) {
	if len(src) > 0 {
		_ = dst[len(src)-1]
		cvtF16AVX512(&dst[0], &src[0], len(src))
	}
}

func avx512CvtI8(dst []float32, src []int8, scale float32) {
	if len(src) > 0 {
		_ = dst[len(src)-1]
		cvtI8AVX512(&dst[0], &src[0], len(src), scale)
	}
}

//go:noescape
func dot4F32AVX512(out *float32, ldo int, x *float32, ldx, m int, w *float32, ldw, k int, bias *float32)

//go:noescape
func dot4BF16AVX512(out *float32, ldo int, x *float32, ldx, m int, w *uint16, ldw, k int, bias *float32)

//go:noescape
func dot4F16AVX512(out *float32, ldo int, x *float32, ldx, m int, w *uint16, ldw, k int, bias *float32)

//go:noescape
func dot4I8AVX512(out *float32, ldo int, x *float32, ldx, m int, w *int8, ldw, k int, scale, bias *float32)

//go:noescape
func dot2x8F32AVX512(out *float32, ldo int, x *float32, ldx, m int, w *float32, ldw, k int, bias *float32)

//go:noescape
func dot2x8BF16AVX512(out *float32, ldo int, x *float32, ldx, m int, w *uint16, ldw, k int, bias *float32)

//go:noescape
func dot2x8F16AVX512(out *float32, ldo int, x *float32, ldx, m int, w *uint16, ldw, k int, bias *float32)

//go:noescape
func dot2x8I8AVX512(out *float32, ldo int, x *float32, ldx, m int, w *int8, ldw, k int, scale, bias *float32)

//go:noescape
func dotRowsF32AVX512(out *float32, x *float32, w *float32, ldw, k, rows int, bias *float32)

//go:noescape
func dotRowsBF16AVX512(out *float32, x *float32, w *uint16, ldw, k, rows int, bias *float32)

//go:noescape
func dotRowsF16AVX512(out *float32, x *float32, w *uint16, ldw, k, rows int, bias *float32)

//go:noescape
func dotRowsI8AVX512(out *float32, x *float32, w *int8, ldw, k, rows int, scale, bias *float32)

//go:noescape
func tile12x32AVX512(c *float32, ldc int, a *float32, lda int, b *float32, kc int, bias *float32, add int)

//go:noescape
func pack32F32AVX512(dst *float32, src *float32, ld, kc int)

//go:noescape
func pack32BF16AVX512(dst *float32, src *uint16, ld, kc int)

//go:noescape
func pack32F16AVX512(dst *float32, src *uint16, ld, kc int)

//go:noescape
func pack32I8AVX512(dst *float32, src *int8, ld, kc int, scale *float32)

//go:noescape
func cvtBF16AVX512(dst *float32, src *uint16, n int)

//go:noescape
func cvtF16AVX512(dst *float32, src *uint16, n int)

//go:noescape
func cvtI8AVX512(dst *float32, src *int8, n int, scale float32)

// The vector primitives on AVX-512; vec.go dispatches here.

func dotVecAVX512(a, b []float32) float32 {
	if len(a) == 0 {
		return 0
	}
	return dotAVX512(&a[0], &b[:len(a)][0], len(a))
}

func scaleVecAVX512(x []float32, s float32) {
	if len(x) > 0 {
		scaleAVX512(&x[0], len(x), s)
	}
}

// maxfVecAVX512 needs len(x) ≥ 1.
func maxfVecAVX512(x []float32) float32 { return maxfAVX512(&x[0], len(x)) }

//go:noescape
func dotAVX512(a, b *float32, n int) float32

//go:noescape
func scaleAVX512(x *float32, n int, s float32)

//go:noescape
func maxfAVX512(x *float32, n int) float32

// prefetchRows issues PREFETCHT1 for each 64-byte line of rows segments
// of bytes bytes, stride bytes apart, from p: a hint, which never faults.
//
//go:noescape
func prefetchRows(p unsafe.Pointer, stride, rows, bytes int)
