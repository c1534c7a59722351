package gpt2

import "golang.org/x/sys/cpu"

// hasAVX512 reports whether the AVX-512 kernels in kernels_amd64.s can run:
// they use F (zmm arithmetic, opmasks), VL (EVEX on ymm/xmm), BW and DQ.
// x/sys/cpu also checks that the OS saves the zmm state.
var hasAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL &&
	cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ

// bestKernels returns the fastest kernel set this CPU runs.
func bestKernels() *kernels {
	if hasAVX512 {
		return avx512Kernels
	}
	return genericKernels
}

// avx512Kernels is the AVX-512 kernel set: 12×32 register tile (24 zmm
// accumulators), 4-row dot kernel.
var avx512Kernels = &kernels{
	name:    "avx512",
	dot4:    avx512Dot4,
	mr:      12,
	nr:      32,
	tile:    avx512Tile,
	cvtBF16: avx512CvtBF16,
	cvtF16:  avx512CvtF16,
	cvtI8:   avx512CvtI8,
}

// The wrappers check bounds once, so the assembly cannot run off a slice.

func avx512Dot4(out []float32, ldo int, x []float32, ldx, m int, w []float32, ldw, k int, bias []float32) {
	if m <= 0 {
		return
	}
	_ = out[(m-1)*ldo+3]
	_ = x[(m-1)*ldx+k-1]
	_ = w[3*ldw+k-1]
	var bp *float32
	if bias != nil {
		bp = &bias[:4][0]
	}
	dot4AVX512(&out[0], ldo, &x[0], ldx, m, &w[0], ldw, k, bp)
}

func avx512Tile(c []float32, ldc int, a []float32, lda int, b []float32, kc int, bias []float32, add bool) {
	_ = c[11*ldc+31]
	_ = a[11*lda+kc-1]
	_ = b[kc*32-1]
	var bp *float32
	if bias != nil {
		bp = &bias[:32][0]
	}
	var ad int
	if add {
		ad = 1
	}
	tile12x32AVX512(&c[0], ldc, &a[0], lda, &b[0], kc, bp, ad)
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
func dot4AVX512(out *float32, ldo int, x *float32, ldx, m int, w *float32, ldw, k int, bias *float32)

//go:noescape
func tile12x32AVX512(c *float32, ldc int, a *float32, lda int, b *float32, kc int, bias *float32, add int)

//go:noescape
func cvtBF16AVX512(dst *float32, src *uint16, n int)

//go:noescape
func cvtF16AVX512(dst *float32, src *uint16, n int)

//go:noescape
func cvtI8AVX512(dst *float32, src *int8, n int, scale float32)

//go:noescape
func dotAVX512(a, b *float32, n int) float32

//go:noescape
func axpyAVX512(alpha float32, x, y *float32, n int)

//go:noescape
func scaleAVX512(x *float32, n int, s float32)

//go:noescape
func maxfAVX512(x *float32, n int) float32
