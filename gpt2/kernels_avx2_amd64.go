package gpt2

import "golang.org/x/sys/cpu"

// hasAVX2 reports whether the AVX2 kernels in kernels_avx2_amd64.s can run:
// AVX2 and FMA for the arithmetic, F16C for half-precision weights.
var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C

// avx2Kernels is the AVX2+FMA kernel set for x86-64 CPUs without AVX-512:
// 6×16 register tile (12 ymm accumulators), 4-row dot kernels against two
// input rows at a time. Panels are packed in Go. The assembly handles
// multiples of 8 columns and these wrappers the ragged ends.
var avx2Kernels = &kernels{
	name:     "avx2",
	rows1:    avx2Rows1,
	dot4:     avx2Dot4,
	dot4BF16: avx2Dot4BF16,
	dot4F16:  avx2Dot4F16,
	dot4I8:   avx2Dot4I8,
	dotM:     2,
	mr:       6,
	nr:       16,
	tile:     avx2Tile,
	panel:    panelGeneric,
	cvtBF16:  avx2CvtBF16,
	cvtF16:   avx2CvtF16,
	cvtI8:    avx2CvtI8,
	attn:     avx2Attn,
	prefetch: prefetchRows,
}

func avx2Rows1(out, x []float32, l *linear, o0, o1 int) {
	k := l.In
	if o1 <= o0 || k <= 0 {
		return
	}
	k8 := k &^ 7
	avx2DotRows.call(out, x, l, o0, o1, k8)
	if k8 == k {
		return
	}
	var w [8]float32
	for o := o0; o < o1; o++ {
		t := w[:k-k8]
		widen(genericKernels, t, l, o, k8)
		var s float32
		for i, v := range t {
			s += x[k8+i] * v
		}
		out[o-o0] += s
	}
}

var avx2DotRows = &dotRowsKernels{dotRowsF32AVX2, dotRowsBF16AVX2, dotRowsF16AVX2, dotRowsI8AVX2}

// dot4Tail adds to out the columns [k8, k) that the assembly left, for four
// weight rows given by at(o, i) and m input rows.
func dot4Tail(out []float32, ldo int, x []float32, ldx, m, k8, k int, at func(o, i int) float32) {
	for r := 0; r < m; r++ {
		for o := 0; o < 4; o++ {
			var s float32
			for i := k8; i < k; i++ {
				s += x[r*ldx+i] * at(o, i)
			}
			out[r*ldo+o] += s
		}
	}
}

func avx2Dot4(out []float32, ldo int, x []float32, ldx, m int, w []float32, ldw, k int, bias []float32) {
	if m <= 0 || k <= 0 {
		return
	}
	bp := dot4Check(out, ldo, x, ldx, m, len(w), ldw, k, bias)
	k8 := k &^ 7
	dot4F32AVX2(&out[0], ldo, &x[0], ldx, m, &w[0], ldw, k8, bp)
	if k8 < k {
		dot4Tail(out, ldo, x, ldx, m, k8, k, func(o, i int) float32 { return w[o*ldw+i] })
	}
}

func avx2Dot4BF16(out []float32, ldo int, x []float32, ldx, m int, w []uint16, ldw, k int, bias []float32) {
	if m <= 0 || k <= 0 {
		return
	}
	bp := dot4Check(out, ldo, x, ldx, m, len(w), ldw, k, bias)
	k8 := k &^ 7
	dot4BF16AVX2(&out[0], ldo, &x[0], ldx, m, &w[0], ldw, k8, bp)
	if k8 < k {
		dot4Tail(out, ldo, x, ldx, m, k8, k, func(o, i int) float32 { return bf16ToF32(w[o*ldw+i]) })
	}
}

func avx2Dot4F16(out []float32, ldo int, x []float32, ldx, m int, w []uint16, ldw, k int, bias []float32) {
	if m <= 0 || k <= 0 {
		return
	}
	bp := dot4Check(out, ldo, x, ldx, m, len(w), ldw, k, bias)
	k8 := k &^ 7
	dot4F16AVX2(&out[0], ldo, &x[0], ldx, m, &w[0], ldw, k8, bp)
	if k8 < k {
		dot4Tail(out, ldo, x, ldx, m, k8, k, func(o, i int) float32 { return f16ToF32(w[o*ldw+i]) })
	}
}

func avx2Dot4I8(out []float32, ldo int, x []float32, ldx, m int, w []int8, ldw, k int, scale, bias []float32) {
	if m <= 0 || k <= 0 {
		return
	}
	bp := dot4Check(out, ldo, x, ldx, m, len(w), ldw, k, bias)
	k8 := k &^ 7
	dot4I8AVX2(&out[0], ldo, &x[0], ldx, m, &w[0], ldw, k8, &scale[:4][0], bp)
	if k8 < k {
		dot4Tail(out, ldo, x, ldx, m, k8, k, func(o, i int) float32 { return float32(w[o*ldw+i]) * scale[o] })
	}
}

func avx2Tile(c []float32, ldc int, a []float32, lda int, b []float32, kc int, bias []float32, add bool) {
	bp, ad := tileCheck(6, 16, c, ldc, a, lda, b, kc, bias, add)
	tile6x16AVX2(&c[0], ldc, &a[0], lda, &b[0], kc, bp, ad)
}

func avx2CvtBF16(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	n8 := len(src) &^ 7
	if n8 > 0 {
		cvtBF16AVX2(&dst[0], &src[0], n8)
	}
	cvtBF16Generic(dst[n8:], src[n8:])
}

func avx2CvtF16(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	n8 := len(src) &^ 7
	if n8 > 0 {
		cvtF16AVX2(&dst[0], &src[0], n8)
	}
	cvtF16Generic(dst[n8:], src[n8:])
}

func avx2CvtI8(dst []float32, src []int8, scale float32) {
	dst = dst[:len(src)]
	n8 := len(src) &^ 7
	if n8 > 0 {
		cvtI8AVX2(&dst[0], &src[0], n8, scale)
	}
	cvtI8Generic(dst[n8:], src[n8:], scale)
}

// The vector primitives on AVX2; vec.go dispatches here.

func dotVecAVX2(a, b []float32) float32 {
	b = b[:len(a)]
	n8 := len(a) &^ 7
	var s float32
	if n8 > 0 {
		s = dotAVX2(&a[0], &b[0], n8)
	}
	for i := n8; i < len(a); i++ {
		s += a[i] * b[i]
	}
	return s
}

func scaleVecAVX2(x []float32, s float32) {
	n8 := len(x) &^ 7
	if n8 > 0 {
		scaleAVX2(&x[0], n8, s)
	}
	for i := n8; i < len(x); i++ {
		x[i] *= s
	}
}

// maxfVecAVX2 needs len(x) ≥ 1.
func maxfVecAVX2(x []float32) float32 {
	n8 := len(x) &^ 7
	m := x[0]
	if n8 > 0 {
		m = maxfAVX2(&x[0], n8)
	}
	for _, v := range x[n8:] {
		m = max(m, v)
	}
	return m
}

//go:noescape
func dotRowsF32AVX2(out *float32, x *float32, w *float32, ldw, k, rows int, bias *float32)

//go:noescape
func dotRowsBF16AVX2(out *float32, x *float32, w *uint16, ldw, k, rows int, bias *float32)

//go:noescape
func dotRowsF16AVX2(out *float32, x *float32, w *uint16, ldw, k, rows int, bias *float32)

//go:noescape
func dotRowsI8AVX2(out *float32, x *float32, w *int8, ldw, k, rows int, scale, bias *float32)

//go:noescape
func dot4F32AVX2(out *float32, ldo int, x *float32, ldx, m int, w *float32, ldw, k int, bias *float32)

//go:noescape
func dot4BF16AVX2(out *float32, ldo int, x *float32, ldx, m int, w *uint16, ldw, k int, bias *float32)

//go:noescape
func dot4F16AVX2(out *float32, ldo int, x *float32, ldx, m int, w *uint16, ldw, k int, bias *float32)

//go:noescape
func dot4I8AVX2(out *float32, ldo int, x *float32, ldx, m int, w *int8, ldw, k int, scale, bias *float32)

//go:noescape
func tile6x16AVX2(c *float32, ldc int, a *float32, lda int, b *float32, kc int, bias *float32, add int)

//go:noescape
func cvtBF16AVX2(dst *float32, src *uint16, n int)

//go:noescape
func cvtF16AVX2(dst *float32, src *uint16, n int)

//go:noescape
func cvtI8AVX2(dst *float32, src *int8, n int, scale float32)

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func scaleAVX2(x *float32, n int, s float32)

//go:noescape
func maxfAVX2(x *float32, n int) float32
