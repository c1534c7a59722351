package gpt2

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// hasBF16 and hasVNNI report whether the narrow GEMM kernels in
// kernels_narrow_amd64.s can run beside the AVX-512 ones: VDPBF16PS needs
// AVX512_BF16, VPDPBUSD on zmm needs AVX512_VNNI.
var (
	hasBF16 = hasAVX512 && cpu.X86.HasAVX512BF16
	hasVNNI = hasAVX512 && cpu.X86.HasAVX512VNNI
)

// avx512NarrowKernels is avx512Kernels with the native bf16 and int8 dot
// products for the GEMM where the CPU has them, or nil where it has
// neither.
var avx512NarrowKernels = narrowKernels(hasBF16, hasVNNI)

// narrowKernels returns avx512Kernels with the bf16 tile if bf16 is set
// and the int8 tile if vnni is, or nil if neither is.
func narrowKernels(bf16, vnni bool) *kernels {
	if !bf16 && !vnni {
		return nil
	}
	k := *avx512Kernels
	k.packPairs = avx512PackPairs
	k.absMaxBits = avx512AbsMaxBits
	k.quantI8 = avx512QuantI8
	k.roundBF16 = avx512RoundBF16
	k.f16ToBF16 = avx512F16ToBF16
	if bf16 {
		k.name += "+bf16"
		k.tileBF16 = avx512TileBF16
		k.dot2BF16x = avx512Dot2BF16x
	}
	if vnni {
		k.name += "+vnni"
		k.tileI8 = avx512TileI8
	}
	return &k
}

func avx512TileBF16(c []float32, ldc int, a []uint16, lda int, b []uint16, kc int, bias []float32, add bool) {
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
	tile12x32BF16AVX512(&c[0], ldc, &a[0], lda, &b[0], kc, bp, ad)
}

func avx512TileI8(c []float32, ldc int, a []int8, lda int, b []uint8, kc int, asc []float32, nc []int32, wsc, bias []float32, add bool) {
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
	tile12x32I8AVX512(&c[0], ldc, &a[0], lda, &b[0], kc, &asc[:12][0], &nc[:12][0], &wsc[:32][0], bp, ad)
}

// avx512PackPairs is pack32F32AVX512 on 32-bit words of any type.
func avx512PackPairs(dst, src []uint32, ld, n int) {
	_ = dst[n*32-1]
	_ = src[31*ld+n-1]
	pack32F32AVX512((*float32)(unsafe.Pointer(&dst[0])), (*float32)(unsafe.Pointer(&src[0])), ld, n)
}

func avx512AbsMaxBits(x []float32) uint32 {
	if len(x) == 0 {
		return 0
	}
	return absMaxBitsAVX512(&x[0], len(x))
}

func avx512QuantI8(q []int8, x []float32, inv float32) int32 {
	if len(x) == 0 {
		return 0
	}
	_ = q[len(x)-1]
	return quantI8AVX512(&q[0], &x[0], len(x), inv)
}

func avx512RoundBF16(dst []uint16, src []float32) {
	if len(src) > 0 {
		_ = dst[len(src)-1]
		roundBF16AVX512(&dst[0], &src[0], len(src))
	}
}

func avx512F16ToBF16(dst, src []uint16) {
	if len(src) > 0 {
		_ = dst[len(src)-1]
		f16ToBF16AVX512(&dst[0], &src[0], len(src))
	}
}

func avx512Dot2BF16x(out []float32, ldo int, x []uint16, ldx, m int, w []uint16, ldw, k int, bias []float32) {
	if m <= 0 || k <= 0 {
		return
	}
	if m > 8 {
		panic("gpt2: dot2 takes at most 8 input rows")
	}
	_ = out[(m-1)*ldo+1]
	_ = x[(m-1)*ldx+k-1]
	_ = w[ldw+k-1]
	var bp *float32
	if bias != nil {
		bp = &bias[:2][0]
	}
	dot2x8BF16DotAVX512(&out[0], ldo, &x[0], ldx, m, &w[0], ldw, k, bp)
}

//go:noescape
func dot2x8BF16DotAVX512(out *float32, ldo int, x *uint16, ldx, m int, w *uint16, ldw, k int, bias *float32)

//go:noescape
func absMaxBitsAVX512(x *float32, n int) uint32

//go:noescape
func quantI8AVX512(q *int8, x *float32, n int, inv float32) int32

//go:noescape
func f16ToBF16AVX512(dst, src *uint16, n int)

//go:noescape
func roundBF16AVX512(dst *uint16, src *float32, n int)

//go:noescape
func tile12x32BF16AVX512(c *float32, ldc int, a *uint16, lda int, b *uint16, kc int, bias *float32, add int)

//go:noescape
func tile12x32I8AVX512(c *float32, ldc int, a *int8, lda int, b *uint8, kc int, asc *float32, nc *int32, wsc, bias *float32, add int)
