package gpt2

import "unsafe"

// kernels is one implementation of the inner loops of a linear layer. The
// drivers in linear.go do the blocking, packing, edges and threading, and
// call these on full, in-bounds blocks only. A pool holds the set chosen
// for the CPU at newPool; tests swap in genericKernels to check the
// pure-Go path on any machine.
type kernels struct {
	name string

	// dot4 is the small-M kernel: four weight rows against m ≤ dotM input
	// rows, each output a dot product over k.
	//   out[r*ldo+o] = bias[o] + Σ_i x[r*ldx+i]·w[o*ldw+i]   (o < 4, r < m)
	// bias is nil or has 4 elements.
	dot4 func(out []float32, ldo int, x []float32, ldx, m int, w []float32, ldw, k int, bias []float32)
	// dot4BF16, dot4F16 and dot4I8 are dot4 reading narrow weights and
	// widening them in registers; for int8 each sum is multiplied by its
	// row's scale[o] before the bias is added. Nil where a kernel set has
	// none: the driver then widens rows into a float32 buffer for dot4.
	dot4BF16 func(out []float32, ldo int, x []float32, ldx, m int, w []uint16, ldw, k int, bias []float32)
	dot4F16  func(out []float32, ldo int, x []float32, ldx, m int, w []uint16, ldw, k int, bias []float32)
	dot4I8   func(out []float32, ldo int, x []float32, ldx, m int, w []int8, ldw, k int, scale, bias []float32)
	// dotM is the largest m the dot4 kernels take, at most 4.
	dotM int

	// dot2 is the batched-decode kernel: dot4's contract for two weight
	// rows and m ≤ 8 input rows (o < 2, bias nil or 2 elements), loading
	// each weight vector once for all m rows. dot2BF16, dot2F16 and dot2I8
	// read narrow weights as dot4BF16 and the rest do. Nil where a kernel
	// set has none (all four are, or none): dot4 then serves every m.
	dot2     func(out []float32, ldo int, x []float32, ldx, m int, w []float32, ldw, k int, bias []float32)
	dot2BF16 func(out []float32, ldo int, x []float32, ldx, m int, w []uint16, ldw, k int, bias []float32)
	dot2F16  func(out []float32, ldo int, x []float32, ldx, m int, w []uint16, ldw, k int, bias []float32)
	dot2I8   func(out []float32, ldo int, x []float32, ldx, m int, w []int8, ldw, k int, scale, bias []float32)

	// rows1 is the decode kernel, for one input row: out[o-o0] = x·W[o] +
	// bias[o] for o in [o0, o1), reading the weight rows front to back as
	// one stream. Nil where a kernel set has none: dot4 serves.
	rows1 func(out, x []float32, l *linear, o0, o1 int)

	// mr×nr is the register tile of the GEMM kernel.
	mr, nr int
	// tile is the GEMM micro-kernel: an mr×nr block of C from mr rows of A
	// (row stride lda) and a packed panel b of kc steps of nr values.
	//   c[i*ldc+j] = (add ? c[i*ldc+j] : 0) + bias[j] + Σ_p a[i*lda+p]·b[p*nr+j]
	// bias is nil or has nr elements.
	tile func(c []float32, ldc int, a []float32, lda int, b []float32, kc int, bias []float32, add bool)

	// panel packs a full GEMM panel: W rows [n0, n0+nr), columns [k0,
	// k0+kc), transposed and widened to float32:
	//   dst[p*nr+j] = W[n0+j][k0+p]
	// row is scratch of at least kc floats.
	panel func(k *kernels, dst []float32, l *linear, n0, k0, kc int, row []float32)

	// tileBF16 and tileI8 are the micro-kernels of the narrow GEMM
	// (gemm_narrow.go), tile's contract on mr×nr blocks for input rows
	// rounded to bf16 or quantised to int8 and panels packed in pairs or
	// quads (packBF16, packI8); kc is a multiple of 2 or 4:
	//   tileBF16: c[i*ldc+j] = (add ? c : 0) + bias[j] + Σ_p a[i*lda+p]·w[j][p]
	//   tileI8:   c[i*ldc+j] = (add ? c : 0) + bias[j] +
	//             asc[i]·wsc[j]·(nc[i] + Σ_p a[i*lda+p]·(w[j][p]+128))
	// Nil where the CPU has no dot product for the type: weights of that
	// type are widened for tile.
	tileBF16 func(c []float32, ldc int, a []uint16, lda int, b []uint16, kc int, bias []float32, add bool)
	tileI8   func(c []float32, ldc int, a []int8, lda int, b []uint8, kc int, asc []float32, nc []int32, wsc, bias []float32, add bool)
	// dot2BF16x is dot2BF16 on input rows already rounded to bf16 (row
	// stride ldx in elements, zero-padded to an even length), summing
	// pairs of products in float32 as tileBF16 does; nil where the CPU
	// has no bf16 dot product: then dot2BF16 widens the weights.
	dot2BF16x func(out []float32, ldo int, x []uint16, ldx, m int, w []uint16, ldw, k int, bias []float32)
	// packPairs transposes 32-bit words for the narrow panels:
	//   dst[p*nr+j] = src[j*ld+p]   (p < n, a multiple of 16; j < nr)
	// Nil: the drivers pack in Go.
	packPairs func(dst, src []uint32, ld, n int)
	// absMaxBits, quantI8 and roundBF16 narrow the input rows; nil: pure
	// Go (absMaxBitsGeneric, quantI8Generic, roundBF16Generic state them).
	absMaxBits func(x []float32) uint32
	quantI8    func(q []int8, x []float32, inv float32) int32
	roundBF16  func(dst []uint16, src []float32)
	// prefetch hints rows of W into L2 ahead of packing: rows segments
	// of bytes bytes, stride bytes apart, from p. Nil: no hint.
	prefetch func(p unsafe.Pointer, stride, rows, bytes int)
	// f16ToBF16 rounds f16 values to bf16 (dst may be src), for f16
	// weights packed for the bf16 GEMM; nil: cvtF16 then roundBF16.
	f16ToBF16 func(dst, src []uint16)

	// Widening conversions, dst[i] = src[i] (times scale for int8);
	// len(dst) == len(src).
	cvtBF16 func(dst []float32, src []uint16)
	cvtF16  func(dst []float32, src []uint16)
	cvtI8   func(dst []float32, src []int8, scale float32)

	// attn is decode attention's chunk kernels (kernels_attn.go).
	attn *attnKernels
}

// genericKernels is the pure-Go implementation, used where no SIMD one
// fits the CPU and held against linearRef in the tests on every machine.
var genericKernels = &kernels{
	name:    "generic",
	dot4:    dot4Generic,
	dotM:    4,
	mr:      4,
	nr:      4,
	tile:    tile4x4Generic,
	panel:   panelGeneric,
	cvtBF16: cvtBF16Generic,
	cvtF16:  cvtF16Generic,
	cvtI8:   cvtI8Generic,
	attn:    genericAttn,
}

func dot4Generic(out []float32, ldo int, x []float32, ldx, m int, w []float32, ldw, k int, bias []float32) {
	w0 := w[0*ldw : 0*ldw+k]
	w1 := w[1*ldw : 1*ldw+k]
	w2 := w[2*ldw : 2*ldw+k]
	w3 := w[3*ldw : 3*ldw+k]
	for r := 0; r < m; r++ {
		xr := x[r*ldx : r*ldx+k]
		var s0, s1, s2, s3 float32
		for i, xv := range xr {
			s0 += xv * w0[i]
			s1 += xv * w1[i]
			s2 += xv * w2[i]
			s3 += xv * w3[i]
		}
		if bias != nil {
			s0 += bias[0]
			s1 += bias[1]
			s2 += bias[2]
			s3 += bias[3]
		}
		o := out[r*ldo : r*ldo+4]
		o[0], o[1], o[2], o[3] = s0, s1, s2, s3
	}
}

// tile4x4Generic keeps the 16 sums of a 4×4 tile in locals, which the
// compiler holds in registers.
func tile4x4Generic(c []float32, ldc int, a []float32, lda int, b []float32, kc int, bias []float32, add bool) {
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	var c20, c21, c22, c23, c30, c31, c32, c33 float32
	a0 := a[0*lda : 0*lda+kc]
	a1 := a[1*lda : 1*lda+kc]
	a2 := a[2*lda : 2*lda+kc]
	a3 := a[3*lda : 3*lda+kc]
	b = b[:kc*4]
	for p := range a0 {
		bp := b[p*4 : p*4+4]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		v := a0[p]
		c00 += v * b0
		c01 += v * b1
		c02 += v * b2
		c03 += v * b3
		v = a1[p]
		c10 += v * b0
		c11 += v * b1
		c12 += v * b2
		c13 += v * b3
		v = a2[p]
		c20 += v * b0
		c21 += v * b1
		c22 += v * b2
		c23 += v * b3
		v = a3[p]
		c30 += v * b0
		c31 += v * b1
		c32 += v * b2
		c33 += v * b3
	}
	acc := [4][4]float32{
		{c00, c01, c02, c03},
		{c10, c11, c12, c13},
		{c20, c21, c22, c23},
		{c30, c31, c32, c33},
	}
	for i := range acc {
		ci := c[i*ldc : i*ldc+4]
		for j := range ci {
			v := acc[i][j]
			if bias != nil {
				v += bias[j]
			}
			if add {
				v += ci[j]
			}
			ci[j] = v
		}
	}
}

// panelGeneric widens each weight row segment into row and scatters it
// down its column of the panel.
func panelGeneric(k *kernels, dst []float32, l *linear, n0, k0, kc int, row []float32) {
	nr := k.nr
	dst = dst[:kc*nr]
	row = row[:kc]
	for j := 0; j < nr; j++ {
		seg := row
		if l.Type == weightF32 {
			seg = l.F32[(n0+j)*l.In+k0 : (n0+j)*l.In+k0+kc]
		} else {
			widen(k, seg, l, n0+j, k0)
		}
		for p, v := range seg {
			dst[p*nr+j] = v
		}
	}
}

func cvtBF16Generic(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = bf16ToF32(h)
	}
}

func cvtF16Generic(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = f16ToF32(h)
	}
}

func cvtI8Generic(dst []float32, src []int8, scale float32) {
	dst = dst[:len(src)]
	for i, q := range src {
		dst[i] = float32(q) * scale
	}
}
