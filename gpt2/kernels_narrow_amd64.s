// GEMM micro-kernels on narrow operands: bf16 × bf16 with VDPBF16PS
// (AVX512_BF16) and int8 × int8 with VPDPBUSD (AVX512_VNNI), each with a
// 12×32 register tile accumulating in 32-bit lanes. The Go declarations
// and contracts are in kernels_narrow_amd64.go; the drivers in
// gemm_narrow.go pack the panels and prepare the input rows.
//
// Both have the shape of tile12x32AVX512: A rows at R8, +R12, +2·R12 and
// R9, R10, R11 (each three rows on), one step of the panel is 128 bytes
// at SI (32 columns × one 4-byte group) and 4 bytes of each A row: a pair
// of bf16 values or a quad of int8. acc[i] lives in Z(8+2i), Z(9+2i).

#include "textflag.h"
#include "dpbf16_amd64.h"


// BFROW broadcasts the pair of A row i at src into Z(t) and adds its
// products with the panel step Z0, Z1 to Z(c0), Z(c1).
#define BFROW(src, zt, t, c0, c1) VPBROADCASTD src, zt; DPBF16(0, t, c0); DPBF16(1, t, c1)

// IROW does the same for a quad of int8: the panel holds unsigned bytes
// (weights + 128) and the broadcast A quad is signed.
#define IROW(src, zt, c0, c1) VPBROADCASTD src, zt; VPDPBUSD zt, Z0, c0; VPDPBUSD zt, Z1, c1

#define BFSTEP(b0, b1, ao) \
	VMOVDQU32 b0(SI), Z0; VMOVDQU32 b1(SI), Z1; \
	BFROW(ao(R8), Z2, 2, 8, 9); \
	BFROW(ao(R8)(R12*1), Z3, 3, 10, 11); \
	BFROW(ao(R8)(R12*2), Z4, 4, 12, 13); \
	BFROW(ao(R9), Z5, 5, 14, 15); \
	BFROW(ao(R9)(R12*1), Z6, 6, 16, 17); \
	BFROW(ao(R9)(R12*2), Z7, 7, 18, 19); \
	BFROW(ao(R10), Z2, 2, 20, 21); \
	BFROW(ao(R10)(R12*1), Z3, 3, 22, 23); \
	BFROW(ao(R10)(R12*2), Z4, 4, 24, 25); \
	BFROW(ao(R11), Z5, 5, 26, 27); \
	BFROW(ao(R11)(R12*1), Z6, 6, 28, 29); \
	BFROW(ao(R11)(R12*2), Z7, 7, 30, 31)

#define ISTEP(b0, b1, ao) \
	VMOVDQU32 b0(SI), Z0; VMOVDQU32 b1(SI), Z1; \
	IROW(ao(R8), Z2, Z8, Z9); \
	IROW(ao(R8)(R12*1), Z3, Z10, Z11); \
	IROW(ao(R8)(R12*2), Z4, Z12, Z13); \
	IROW(ao(R9), Z5, Z14, Z15); \
	IROW(ao(R9)(R12*1), Z6, Z16, Z17); \
	IROW(ao(R9)(R12*2), Z7, Z18, Z19); \
	IROW(ao(R10), Z2, Z20, Z21); \
	IROW(ao(R10)(R12*1), Z3, Z22, Z23); \
	IROW(ao(R10)(R12*2), Z4, Z24, Z25); \
	IROW(ao(R11), Z5, Z26, Z27); \
	IROW(ao(R11)(R12*1), Z6, Z28, Z29); \
	IROW(ao(R11)(R12*2), Z7, Z30, Z31)

// AROWS points R9–R11 three, six and nine rows past R8 (stride R12 bytes).
#define AROWS \
	LEAQ (R12)(R12*2), AX; \
	LEAQ (R8)(AX*1), R9; \
	LEAQ (R9)(AX*1), R10; \
	LEAQ (R10)(AX*1), R11

#define NADD(addr, c0, c1) VADDPS addr, c0, c0; VADDPS 64 addr, c1, c1
#define NST(addr, c0, c1) VMOVUPS c0, addr; VMOVUPS c1, 64 addr

// NADDALL adds C at R8… (stride R12) to the accumulators; NSTALL stores
// them there.
#define NADDALL \
	NADD((R8), Z8, Z9); \
	NADD((R8)(R12*1), Z10, Z11); \
	NADD((R8)(R12*2), Z12, Z13); \
	NADD((R9), Z14, Z15); \
	NADD((R9)(R12*1), Z16, Z17); \
	NADD((R9)(R12*2), Z18, Z19); \
	NADD((R10), Z20, Z21); \
	NADD((R10)(R12*1), Z22, Z23); \
	NADD((R10)(R12*2), Z24, Z25); \
	NADD((R11), Z26, Z27); \
	NADD((R11)(R12*1), Z28, Z29); \
	NADD((R11)(R12*2), Z30, Z31)

#define NSTALL \
	NST((R8), Z8, Z9); \
	NST((R8)(R12*1), Z10, Z11); \
	NST((R8)(R12*2), Z12, Z13); \
	NST((R9), Z14, Z15); \
	NST((R9)(R12*1), Z16, Z17); \
	NST((R9)(R12*2), Z18, Z19); \
	NST((R10), Z20, Z21); \
	NST((R10)(R12*1), Z22, Z23); \
	NST((R10)(R12*2), Z24, Z25); \
	NST((R11), Z26, Z27); \
	NST((R11)(R12*1), Z28, Z29); \
	NST((R11)(R12*2), Z30, Z31)

// func tile12x32BF16AVX512(c *float32, ldc int, a *uint16, lda int, b *uint16, kc int, bias *float32, add int)
//
// c[i][j] = (add ? c[i][j] : 0) + bias[j] + Σ_p a[i][p]·w[j][p] over kc
// (even) bf16 columns, the panel b holding kc/2 steps of 32 pairs.
TEXT ·tile12x32BF16AVX512(SB), NOSPLIT, $0-64
	MOVQ a+16(FP), R8
	MOVQ lda+24(FP), R12
	SHLQ $1, R12
	AROWS
	MOVQ b+32(FP), SI
	MOVQ kc+40(FP), CX
	SHRQ $1, CX
	MOVQ bias+48(FP), BX
	TESTQ BX, BX
	JZ   bf_zero
	VMOVUPS (BX), Z8
	VMOVUPS 64(BX), Z9
	JMP  bf_init
bf_zero:
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
bf_init:
	VMOVAPS Z8, Z10
	VMOVAPS Z9, Z11
	VMOVAPS Z8, Z12
	VMOVAPS Z9, Z13
	VMOVAPS Z8, Z14
	VMOVAPS Z9, Z15
	VMOVAPS Z8, Z16
	VMOVAPS Z9, Z17
	VMOVAPS Z8, Z18
	VMOVAPS Z9, Z19
	VMOVAPS Z8, Z20
	VMOVAPS Z9, Z21
	VMOVAPS Z8, Z22
	VMOVAPS Z9, Z23
	VMOVAPS Z8, Z24
	VMOVAPS Z9, Z25
	VMOVAPS Z8, Z26
	VMOVAPS Z9, Z27
	VMOVAPS Z8, Z28
	VMOVAPS Z9, Z29
	VMOVAPS Z8, Z30
	VMOVAPS Z9, Z31

	CMPQ CX, $4
	JLT  bf_one
bf_four:
	BFSTEP(0, 64, 0)
	BFSTEP(128, 192, 4)
	BFSTEP(256, 320, 8)
	BFSTEP(384, 448, 12)
	ADDQ $512, SI
	ADDQ $16, R8
	ADDQ $16, R9
	ADDQ $16, R10
	ADDQ $16, R11
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  bf_four
bf_one:
	TESTQ CX, CX
	JZ   bf_store
	BFSTEP(0, 64, 0)
	ADDQ $128, SI
	ADDQ $4, R8
	ADDQ $4, R9
	ADDQ $4, R10
	ADDQ $4, R11
	DECQ CX
	JMP  bf_one

bf_store:
	MOVQ c+0(FP), R8
	MOVQ ldc+8(FP), R12
	SHLQ $2, R12
	AROWS
	MOVQ add+56(FP), AX
	TESTQ AX, AX
	JZ   bf_put
	NADDALL
bf_put:
	NSTALL
	VZEROUPPER
	RET

// IINIT sets both accumulators of a row to the broadcast int32 at src.
#define IINIT(src, c0, c1) VPBROADCASTD src, c0; VMOVDQA32 c0, c1

// ISCALE turns the int32 sums of a row into float32 times the weight
// scales Z0, Z1 and the row's scale at src, plus the bias Z2, Z3.
#define ISCALE(src, c0, c1) \
	VCVTDQ2PS c0, c0; VCVTDQ2PS c1, c1; \
	VMULPS Z0, c0, c0; VMULPS Z1, c1, c1; \
	VBROADCASTSS src, Z4; \
	VFMADD213PS Z2, Z4, c0; VFMADD213PS Z3, Z4, c1

// func tile12x32I8AVX512(c *float32, ldc int, a *int8, lda int, b *uint8, kc int, asc *float32, nc *int32, wsc, bias *float32, add int)
//
// c[i][j] = (add ? c[i][j] : 0) + bias[j] + asc[i]·wsc[j]·(nc[i] +
// Σ_p a[i][p]·(w[j][p]+128)) over kc (a multiple of 4) columns, the panel
// b holding kc/4 steps of 32 quads of unsigned bytes w+128. With nc[i] =
// −128·Σ_p a[i][p] the sum is Σ_p a[i][p]·w[j][p]: VPDPBUSD multiplies
// unsigned by signed bytes, so the weights are offset into range and the
// offset taken back out once per row.
TEXT ·tile12x32I8AVX512(SB), NOSPLIT, $0-88
	MOVQ a+16(FP), R8
	MOVQ lda+24(FP), R12
	AROWS
	MOVQ b+32(FP), SI
	MOVQ kc+40(FP), CX
	SHRQ $2, CX
	MOVQ nc+56(FP), BX
	IINIT(0(BX), Z8, Z9)
	IINIT(4(BX), Z10, Z11)
	IINIT(8(BX), Z12, Z13)
	IINIT(12(BX), Z14, Z15)
	IINIT(16(BX), Z16, Z17)
	IINIT(20(BX), Z18, Z19)
	IINIT(24(BX), Z20, Z21)
	IINIT(28(BX), Z22, Z23)
	IINIT(32(BX), Z24, Z25)
	IINIT(36(BX), Z26, Z27)
	IINIT(40(BX), Z28, Z29)
	IINIT(44(BX), Z30, Z31)

	CMPQ CX, $4
	JLT  i_one
i_four:
	ISTEP(0, 64, 0)
	ISTEP(128, 192, 4)
	ISTEP(256, 320, 8)
	ISTEP(384, 448, 12)
	ADDQ $512, SI
	ADDQ $16, R8
	ADDQ $16, R9
	ADDQ $16, R10
	ADDQ $16, R11
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  i_four
i_one:
	TESTQ CX, CX
	JZ   i_scale
	ISTEP(0, 64, 0)
	ADDQ $128, SI
	ADDQ $4, R8
	ADDQ $4, R9
	ADDQ $4, R10
	ADDQ $4, R11
	DECQ CX
	JMP  i_one

i_scale:
	MOVQ wsc+64(FP), BX
	VMOVUPS (BX), Z0
	VMOVUPS 64(BX), Z1
	MOVQ bias+72(FP), BX
	TESTQ BX, BX
	JZ   i_zero
	VMOVUPS (BX), Z2
	VMOVUPS 64(BX), Z3
	JMP  i_rows
i_zero:
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
i_rows:
	MOVQ asc+48(FP), BX
	ISCALE(0(BX), Z8, Z9)
	ISCALE(4(BX), Z10, Z11)
	ISCALE(8(BX), Z12, Z13)
	ISCALE(12(BX), Z14, Z15)
	ISCALE(16(BX), Z16, Z17)
	ISCALE(20(BX), Z18, Z19)
	ISCALE(24(BX), Z20, Z21)
	ISCALE(28(BX), Z22, Z23)
	ISCALE(32(BX), Z24, Z25)
	ISCALE(36(BX), Z26, Z27)
	ISCALE(40(BX), Z28, Z29)
	ISCALE(44(BX), Z30, Z31)

	MOVQ c+0(FP), R8
	MOVQ ldc+8(FP), R12
	SHLQ $2, R12
	AROWS
	MOVQ add+80(FP), AX
	TESTQ AX, AX
	JZ   i_put
	NADDALL
i_put:
	NSTALL
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// Narrowing the input rows, 16 floats a step with a masked tail (K1 from
// TAILMASK), nothing read or written past n.

#define NTAILMASK MOVQ $1, AX; SHLQ CX, AX; DECQ AX; KMOVW AX, K1

// func absMaxBitsAVX512(x *float32, n int) uint32
//
// Returns max over i < n of the bits of |x[i]|: for floats ≥ 0 the bits
// order as the values do, and a NaN's bits exceed +Inf's, so the caller
// sees NaN and Inf without a compare that would drop them.
TEXT ·absMaxBitsAVX512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z7
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	CMPQ CX, $32
	JLT  am_16
am_32:
	VPANDD (SI), Z7, Z2
	VPANDD 64(SI), Z7, Z3
	VPMAXUD Z2, Z0, Z0
	VPMAXUD Z3, Z1, Z1
	ADDQ $128, SI
	SUBQ $32, CX
	CMPQ CX, $32
	JGE  am_32
am_16:
	CMPQ CX, $16
	JLT  am_tail
	VPANDD (SI), Z7, Z2
	VPMAXUD Z2, Z0, Z0
	ADDQ $64, SI
	SUBQ $16, CX
am_tail:
	TESTQ CX, CX
	JZ   am_reduce
	NTAILMASK
	VMOVDQU32.Z (SI), K1, Z2
	VPANDD Z2, Z7, Z2
	VPMAXUD Z2, Z0, Z0
am_reduce:
	VPMAXUD Z1, Z0, Z0
	VEXTRACTI64X4 $1, Z0, Y1
	VPMAXUD Y1, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPMAXUD X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPMAXUD X1, X0, X0
	VPSHUFD $0xb1, X0, X1
	VPMAXUD X1, X0, X0
	VMOVD X0, AX
	MOVL AX, ret+16(FP)
	VZEROUPPER
	RET

// func quantI8AVX512(q *int8, x *float32, n int, inv float32) int32
//
// q[i] = x[i]·inv rounded to the nearest integer (ties to even, the
// default rounding), saturated to int8; returns Σ q[i].
TEXT ·quantI8AVX512(SB), NOSPLIT, $0-36
	MOVQ q+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS inv+24(FP), Z7
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	CMPQ CX, $32
	JLT  q_16
q_32:
	VMULPS (SI), Z7, Z2
	VMULPS 64(SI), Z7, Z3
	VCVTPS2DQ Z2, Z2
	VCVTPS2DQ Z3, Z3
	VPMOVSDB Z2, (DI)
	VPMOVSDB Z3, 16(DI)
	VPADDD Z2, Z0, Z0
	VPADDD Z3, Z1, Z1
	ADDQ $128, SI
	ADDQ $32, DI
	SUBQ $32, CX
	CMPQ CX, $32
	JGE  q_32
q_16:
	CMPQ CX, $16
	JLT  q_tail
	VMULPS (SI), Z7, Z2
	VCVTPS2DQ Z2, Z2
	VPMOVSDB Z2, (DI)
	VPADDD Z2, Z0, Z0
	ADDQ $64, SI
	ADDQ $16, DI
	SUBQ $16, CX
q_tail:
	TESTQ CX, CX
	JZ   q_reduce
	NTAILMASK
	VMOVUPS.Z (SI), K1, Z2
	VMULPS Z2, Z7, Z2
	VCVTPS2DQ Z2, Z2
	VPMOVSDB Z2, K1, (DI)
	VPADDD Z2, Z0, Z0
q_reduce:
	VPADDD Z1, Z0, Z0
	VEXTRACTI64X4 $1, Z0, Y1
	VPADDD Y1, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0xb1, X0, X1
	VPADDD X1, X0, X0
	VMOVD X0, AX
	MOVL AX, ret+32(FP)
	VZEROUPPER
	RET

// BF16RNE rounds the floats in z to bf16 in its low halves (nearest even;
// a NaN keeps its top bits, made quiet), using Z4 = 1, Z5 = 0x7fff, Z6 =
// 0x7f800000, Z7 = 0x7fffffff, Z8 = 0x40 and t as scratch.
#define BF16RNE(z, t) \
	VPANDD z, Z7, t; \
	VPCMPUD $6, Z6, t, K2; \
	VPSRLD $16, z, t; \
	VPANDD Z4, t, t; \
	VPADDD t, z, t; \
	VPADDD Z5, t, t; \
	VPSRLD $16, z, z; \
	VPORD Z8, z, z; \
	VPSRLD $16, t, t; \
	VMOVDQA32 z, K2, t; \
	VMOVDQA32 t, z

// func roundBF16AVX512(dst *uint16, src *float32, n int)
//
// dst[i] = src[i] rounded to bf16 as bf16FromF32 does.
TEXT ·roundBF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL $1, AX
	VPBROADCASTD AX, Z4
	MOVL $0x7fff, AX
	VPBROADCASTD AX, Z5
	MOVL $0x7f800000, AX
	VPBROADCASTD AX, Z6
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z7
	MOVL $0x40, AX
	VPBROADCASTD AX, Z8
	CMPQ CX, $16
	JLT  r_tail
r_16:
	VMOVDQU32 (SI), Z0
	BF16RNE(Z0, Z1)
	VPMOVDW Z0, (DI)
	ADDQ $64, SI
	ADDQ $32, DI
	SUBQ $16, CX
	CMPQ CX, $16
	JGE  r_16
r_tail:
	TESTQ CX, CX
	JZ   r_done
	NTAILMASK
	VMOVDQU32.Z (SI), K1, Z0
	BF16RNE(Z0, Z1)
	VPMOVDW Z0, K1, (DI)
r_done:
	VZEROUPPER
	RET

// func f16ToBF16AVX512(dst, src *uint16, n int)
//
// dst[i] = the f16 src[i] rounded to bf16 as bf16FromF32(f16ToF32(src[i]))
// does (the f16 widens to float32 exactly). dst may be src.
TEXT ·f16ToBF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL $1, AX
	VPBROADCASTD AX, Z4
	MOVL $0x7fff, AX
	VPBROADCASTD AX, Z5
	MOVL $0x7f800000, AX
	VPBROADCASTD AX, Z6
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z7
	MOVL $0x40, AX
	VPBROADCASTD AX, Z8
	CMPQ CX, $16
	JLT  h_tail
h_16:
	VCVTPH2PS (SI), Z0
	BF16RNE(Z0, Z1)
	VPMOVDW Z0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $16, CX
	CMPQ CX, $16
	JGE  h_16
h_tail:
	TESTQ CX, CX
	JZ   h_done
	NTAILMASK
	VCVTPH2PS.Z (SI), K1, Z0
	BF16RNE(Z0, Z1)
	VPMOVDW Z0, K1, (DI)
h_done:
	VZEROUPPER
	RET
