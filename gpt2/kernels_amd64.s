// AVX-512 kernels for linear layers and vector primitives. All functions
// are leaves with no frame; the Go declarations and the contracts are in
// kernels_amd64.go and kernels_generic.go. Row strides arrive in elements
// and are turned into bytes here. K tails use opmask K1 with zeroing loads,
// so nothing reads past a row.

#include "textflag.h"

// zeros stands in for a nil bias: 32 float32 zeros.
DATA zeros<>+0(SB)/8, $0
DATA zeros<>+8(SB)/8, $0
DATA zeros<>+16(SB)/8, $0
DATA zeros<>+24(SB)/8, $0
DATA zeros<>+32(SB)/8, $0
DATA zeros<>+40(SB)/8, $0
DATA zeros<>+48(SB)/8, $0
DATA zeros<>+56(SB)/8, $0
DATA zeros<>+64(SB)/8, $0
DATA zeros<>+72(SB)/8, $0
DATA zeros<>+80(SB)/8, $0
DATA zeros<>+88(SB)/8, $0
DATA zeros<>+96(SB)/8, $0
DATA zeros<>+104(SB)/8, $0
DATA zeros<>+112(SB)/8, $0
DATA zeros<>+120(SB)/8, $0
GLOBL zeros<>(SB), RODATA|NOPTR, $128

// ---------------------------------------------------------------------------
// func dot4AVX512(out *float32, ldo int, x *float32, ldx, m int, w *float32, ldw, k int, bias *float32)
//
// Four weight rows (SI, +DX, +2·DX, +R11) against m ≤ 4 input rows (BX,
// +R8, +2·R8, +R12), 16 columns a step. acc[r][o] lives in Z(16+4r+o),
// the weight vectors in Z4–Z7, the input vector of row r in Z(r).

#define LOADW \
	VMOVUPS (SI), Z4; VMOVUPS (SI)(DX*1), Z5; VMOVUPS (SI)(DX*2), Z6; VMOVUPS (SI)(R11*1), Z7

#define LOADWM \
	VMOVUPS.Z (SI), K1, Z4; VMOVUPS.Z (SI)(DX*1), K1, Z5; VMOVUPS.Z (SI)(DX*2), K1, Z6; VMOVUPS.Z (SI)(R11*1), K1, Z7

#define FMA4(x, a0, a1, a2, a3) \
	VFMADD231PS Z4, x, a0; VFMADD231PS Z5, x, a1; VFMADD231PS Z6, x, a2; VFMADD231PS Z7, x, a3

#define LDX(addr, z) VMOVUPS addr, z
#define LDXM(addr, z) VMOVUPS.Z addr, K1, z

#define STEP0(ldx) ldx((BX), Z0); FMA4(Z0, Z16, Z17, Z18, Z19)
#define STEP1(ldx) ldx((BX)(R8*1), Z1); FMA4(Z1, Z20, Z21, Z22, Z23)
#define STEP2(ldx) ldx((BX)(R8*2), Z2); FMA4(Z2, Z24, Z25, Z26, Z27)
#define STEP3(ldx) ldx((BX)(R12*1), Z3); FMA4(Z3, Z28, Z29, Z30, Z31)

// HSUM4 reduces four accumulators to X0 = [Σa0, Σa1, Σa2, Σa3].
#define HSUM4(z0, z1, z2, z3, y0, y1, y2, y3) \
	VEXTRACTF64X4 $1, z0, Y8; VADDPS Y8, y0, Y0; \
	VEXTRACTF64X4 $1, z1, Y9; VADDPS Y9, y1, Y1; \
	VEXTRACTF64X4 $1, z2, Y10; VADDPS Y10, y2, Y2; \
	VEXTRACTF64X4 $1, z3, Y11; VADDPS Y11, y3, Y3; \
	VHADDPS Y1, Y0, Y0; \
	VHADDPS Y3, Y2, Y2; \
	VHADDPS Y2, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	VADDPS (R10), X0, X0

#define OUT0 HSUM4(Z16, Z17, Z18, Z19, Y16, Y17, Y18, Y19); VMOVUPS X0, (DI)
#define OUT1 HSUM4(Z20, Z21, Z22, Z23, Y20, Y21, Y22, Y23); VMOVUPS X0, (DI)(R13*1)
#define OUT2 HSUM4(Z24, Z25, Z26, Z27, Y24, Y25, Y26, Y27); VMOVUPS X0, (DI)(R13*2)
#define OUT3 HSUM4(Z28, Z29, Z30, Z31, Y28, Y29, Y30, Y31); LEAQ (DI)(R13*2), AX; VMOVUPS X0, (AX)(R13*1)

#define ZERO4(a0, a1, a2, a3) VPXORD a0, a0, a0; VPXORD a1, a1, a1; VPXORD a2, a2, a2; VPXORD a3, a3, a3

#define NEXT16 ADDQ $64, SI; ADDQ $64, BX; SUBQ $16, CX

// TAILMASK sets K1 to the low CX bits.
#define TAILMASK MOVQ $1, AX; SHLQ CX, AX; DECQ AX; KMOVW AX, K1

TEXT ·dot4AVX512(SB), NOSPLIT, $0-72
	MOVQ out+0(FP), DI
	MOVQ ldo+8(FP), R13
	SHLQ $2, R13
	MOVQ x+16(FP), BX
	MOVQ ldx+24(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R12
	MOVQ m+32(FP), R9
	MOVQ w+40(FP), SI
	MOVQ ldw+48(FP), DX
	SHLQ $2, DX
	LEAQ (DX)(DX*2), R11
	MOVQ k+56(FP), CX
	MOVQ bias+64(FP), R10
	TESTQ R10, R10
	JNZ  dot4_m
	LEAQ zeros<>(SB), R10

dot4_m:
	ZERO4(Z16, Z17, Z18, Z19)
	CMPQ R9, $2
	JLT  dot4_m1
	ZERO4(Z20, Z21, Z22, Z23)
	JEQ  dot4_m2
	ZERO4(Z24, Z25, Z26, Z27)
	CMPQ R9, $3
	JEQ  dot4_m3
	ZERO4(Z28, Z29, Z30, Z31)
	JMP  dot4_m4

dot4_m1:
	CMPQ CX, $16
	JLT  dot4_m1_tail
dot4_m1_loop:
	LOADW
	STEP0(LDX)
	NEXT16
	CMPQ CX, $16
	JGE  dot4_m1_loop
dot4_m1_tail:
	TESTQ CX, CX
	JZ   dot4_m1_out
	TAILMASK
	LOADWM
	STEP0(LDXM)
dot4_m1_out:
	OUT0
	VZEROUPPER
	RET

dot4_m2:
	CMPQ CX, $16
	JLT  dot4_m2_tail
dot4_m2_loop:
	LOADW
	STEP0(LDX)
	STEP1(LDX)
	NEXT16
	CMPQ CX, $16
	JGE  dot4_m2_loop
dot4_m2_tail:
	TESTQ CX, CX
	JZ   dot4_m2_out
	TAILMASK
	LOADWM
	STEP0(LDXM)
	STEP1(LDXM)
dot4_m2_out:
	OUT0
	OUT1
	VZEROUPPER
	RET

dot4_m3:
	CMPQ CX, $16
	JLT  dot4_m3_tail
dot4_m3_loop:
	LOADW
	STEP0(LDX)
	STEP1(LDX)
	STEP2(LDX)
	NEXT16
	CMPQ CX, $16
	JGE  dot4_m3_loop
dot4_m3_tail:
	TESTQ CX, CX
	JZ   dot4_m3_out
	TAILMASK
	LOADWM
	STEP0(LDXM)
	STEP1(LDXM)
	STEP2(LDXM)
dot4_m3_out:
	OUT0
	OUT1
	OUT2
	VZEROUPPER
	RET

dot4_m4:
	CMPQ CX, $16
	JLT  dot4_m4_tail
dot4_m4_loop:
	LOADW
	STEP0(LDX)
	STEP1(LDX)
	STEP2(LDX)
	STEP3(LDX)
	NEXT16
	CMPQ CX, $16
	JGE  dot4_m4_loop
dot4_m4_tail:
	TESTQ CX, CX
	JZ   dot4_m4_out
	TAILMASK
	LOADWM
	STEP0(LDXM)
	STEP1(LDXM)
	STEP2(LDXM)
	STEP3(LDXM)
dot4_m4_out:
	OUT0
	OUT1
	OUT2
	OUT3
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// func tile12x32AVX512(c *float32, ldc int, a *float32, lda int, b *float32, kc int, bias *float32, add int)
//
// C[12×32] (+)= bias + A[12×kc]·B[kc×32]. A rows are read in place through
// four base pointers R8, R9, R10, R11 (rows 0, 3, 6, 9) plus 0, 1 or 2
// strides R12; B is a packed panel of 32 floats a step. acc row i lives in
// Z(8+2i), Z(9+2i); Z0, Z1 hold B; Z2–Z7 the broadcast A values.

#define BC(src, t, c0, c1) VBROADCASTSS src, t; VFMADD231PS Z0, t, c0; VFMADD231PS Z1, t, c1

#define KSTEP(b0, b1, ao) \
	VMOVUPS b0(SI), Z0; VMOVUPS b1(SI), Z1; \
	BC(ao(R8), Z2, Z8, Z9); \
	BC(ao(R8)(R12*1), Z3, Z10, Z11); \
	BC(ao(R8)(R12*2), Z4, Z12, Z13); \
	BC(ao(R9), Z5, Z14, Z15); \
	BC(ao(R9)(R12*1), Z6, Z16, Z17); \
	BC(ao(R9)(R12*2), Z7, Z18, Z19); \
	BC(ao(R10), Z2, Z20, Z21); \
	BC(ao(R10)(R12*1), Z3, Z22, Z23); \
	BC(ao(R10)(R12*2), Z4, Z24, Z25); \
	BC(ao(R11), Z5, Z26, Z27); \
	BC(ao(R11)(R12*1), Z6, Z28, Z29); \
	BC(ao(R11)(R12*2), Z7, Z30, Z31)

// CADD adds the C row at addr into an accumulator pair; CST stores it.
#define CADD(addr, c0, c1) VADDPS addr, c0, c0; VADDPS 64 addr, c1, c1
#define CST(addr, c0, c1) VMOVUPS c0, addr; VMOVUPS c1, 64 addr

TEXT ·tile12x32AVX512(SB), NOSPLIT, $0-64
	MOVQ a+16(FP), R8
	MOVQ lda+24(FP), R12
	SHLQ $2, R12
	LEAQ (R12)(R12*2), AX
	LEAQ (R8)(AX*1), R9
	LEAQ (R9)(AX*1), R10
	LEAQ (R10)(AX*1), R11
	MOVQ b+32(FP), SI
	MOVQ kc+40(FP), CX
	MOVQ bias+48(FP), BX
	TESTQ BX, BX
	JNZ  tile_init
	LEAQ zeros<>(SB), BX

tile_init:
	VMOVUPS (BX), Z0
	VMOVUPS 64(BX), Z1
	VMOVAPS Z0, Z8
	VMOVAPS Z1, Z9
	VMOVAPS Z0, Z10
	VMOVAPS Z1, Z11
	VMOVAPS Z0, Z12
	VMOVAPS Z1, Z13
	VMOVAPS Z0, Z14
	VMOVAPS Z1, Z15
	VMOVAPS Z0, Z16
	VMOVAPS Z1, Z17
	VMOVAPS Z0, Z18
	VMOVAPS Z1, Z19
	VMOVAPS Z0, Z20
	VMOVAPS Z1, Z21
	VMOVAPS Z0, Z22
	VMOVAPS Z1, Z23
	VMOVAPS Z0, Z24
	VMOVAPS Z1, Z25
	VMOVAPS Z0, Z26
	VMOVAPS Z1, Z27
	VMOVAPS Z0, Z28
	VMOVAPS Z1, Z29
	VMOVAPS Z0, Z30
	VMOVAPS Z1, Z31

	CMPQ CX, $4
	JLT  tile_one
tile_four:
	KSTEP(0, 64, 0)
	KSTEP(128, 192, 4)
	KSTEP(256, 320, 8)
	KSTEP(384, 448, 12)
	ADDQ $512, SI
	ADDQ $16, R8
	ADDQ $16, R9
	ADDQ $16, R10
	ADDQ $16, R11
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  tile_four
tile_one:
	TESTQ CX, CX
	JZ   tile_store
	KSTEP(0, 64, 0)
	ADDQ $128, SI
	ADDQ $4, R8
	ADDQ $4, R9
	ADDQ $4, R10
	ADDQ $4, R11
	DECQ CX
	JMP  tile_one

tile_store:
	MOVQ c+0(FP), R8
	MOVQ ldc+8(FP), R12
	SHLQ $2, R12
	LEAQ (R12)(R12*2), AX
	LEAQ (R8)(AX*1), R9
	LEAQ (R9)(AX*1), R10
	LEAQ (R10)(AX*1), R11
	MOVQ add+56(FP), AX
	TESTQ AX, AX
	JZ   tile_put
	CADD((R8), Z8, Z9)
	CADD((R8)(R12*1), Z10, Z11)
	CADD((R8)(R12*2), Z12, Z13)
	CADD((R9), Z14, Z15)
	CADD((R9)(R12*1), Z16, Z17)
	CADD((R9)(R12*2), Z18, Z19)
	CADD((R10), Z20, Z21)
	CADD((R10)(R12*1), Z22, Z23)
	CADD((R10)(R12*2), Z24, Z25)
	CADD((R11), Z26, Z27)
	CADD((R11)(R12*1), Z28, Z29)
	CADD((R11)(R12*2), Z30, Z31)
tile_put:
	CST((R8), Z8, Z9)
	CST((R8)(R12*1), Z10, Z11)
	CST((R8)(R12*2), Z12, Z13)
	CST((R9), Z14, Z15)
	CST((R9)(R12*1), Z16, Z17)
	CST((R9)(R12*2), Z18, Z19)
	CST((R10), Z20, Z21)
	CST((R10)(R12*1), Z22, Z23)
	CST((R10)(R12*2), Z24, Z25)
	CST((R11), Z26, Z27)
	CST((R11)(R12*1), Z28, Z29)
	CST((R11)(R12*2), Z30, Z31)
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// Widening conversions, 16 elements a step, masked tail.

// func cvtBF16AVX512(dst *float32, src *uint16, n int)
TEXT ·cvtBF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	CMPQ CX, $16
	JLT  bf16_tail
bf16_loop:
	VPMOVZXWD (SI), Z0
	VPSLLD    $16, Z0, Z0
	VMOVUPS   Z0, (DI)
	ADDQ $32, SI
	ADDQ $64, DI
	SUBQ $16, CX
	CMPQ CX, $16
	JGE  bf16_loop
bf16_tail:
	TESTQ CX, CX
	JZ   bf16_done
	TAILMASK
	VPMOVZXWD.Z (SI), K1, Z0
	VPSLLD      $16, Z0, Z0
	VMOVUPS     Z0, K1, (DI)
bf16_done:
	VZEROUPPER
	RET

// func cvtF16AVX512(dst *float32, src *uint16, n int)
TEXT ·cvtF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	CMPQ CX, $16
	JLT  f16_tail
f16_loop:
	VCVTPH2PS (SI), Z0
	VMOVUPS   Z0, (DI)
	ADDQ $32, SI
	ADDQ $64, DI
	SUBQ $16, CX
	CMPQ CX, $16
	JGE  f16_loop
f16_tail:
	TESTQ CX, CX
	JZ   f16_done
	TAILMASK
	VCVTPH2PS.Z (SI), K1, Z0
	VMOVUPS     Z0, K1, (DI)
f16_done:
	VZEROUPPER
	RET

// func cvtI8AVX512(dst *float32, src *int8, n int, scale float32)
TEXT ·cvtI8AVX512(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS scale+24(FP), Z1
	CMPQ CX, $16
	JLT  i8_tail
i8_loop:
	VPMOVSXBD (SI), Z0
	VCVTDQ2PS Z0, Z0
	VMULPS    Z1, Z0, Z0
	VMOVUPS   Z0, (DI)
	ADDQ $16, SI
	ADDQ $64, DI
	SUBQ $16, CX
	CMPQ CX, $16
	JGE  i8_loop
i8_tail:
	TESTQ CX, CX
	JZ   i8_done
	TAILMASK
	VPMOVSXBD.Z (SI), K1, Z0
	VCVTDQ2PS   Z0, Z0
	VMULPS      Z1, Z0, Z0
	VMOVUPS     Z0, K1, (DI)
i8_done:
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// Vector primitives for attention and layer norm.

// HSUMZ0 reduces Z0 to its lane sum in X0.
#define HSUMZ0 \
	VEXTRACTF64X4 $1, Z0, Y1; VADDPS Y1, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; VADDPS X1, X0, X0; \
	VHADDPS X0, X0, X0; VHADDPS X0, X0, X0

// func dotAVX512(a, b *float32, n int) float32
TEXT ·dotAVX512(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	CMPQ CX, $64
	JLT  dot_16
dot_64:
	VMOVUPS (SI), Z4
	VMOVUPS 64(SI), Z5
	VMOVUPS 128(SI), Z6
	VMOVUPS 192(SI), Z7
	VFMADD231PS (DI), Z4, Z0
	VFMADD231PS 64(DI), Z5, Z1
	VFMADD231PS 128(DI), Z6, Z2
	VFMADD231PS 192(DI), Z7, Z3
	ADDQ $256, SI
	ADDQ $256, DI
	SUBQ $64, CX
	CMPQ CX, $64
	JGE  dot_64
dot_16:
	CMPQ CX, $16
	JLT  dot_tail
	VMOVUPS (SI), Z4
	VFMADD231PS (DI), Z4, Z0
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  dot_16
dot_tail:
	TESTQ CX, CX
	JZ   dot_sum
	TAILMASK
	VMOVUPS.Z (SI), K1, Z4
	VMOVUPS.Z (DI), K1, Z5
	VFMADD231PS Z5, Z4, Z1
dot_sum:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	HSUMZ0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func axpyAVX512(alpha float32, x, y *float32, n int)
TEXT ·axpyAVX512(SB), NOSPLIT, $0-32
	VBROADCASTSS alpha+0(FP), Z0
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX
	CMPQ CX, $32
	JLT  axpy_16
axpy_32:
	VMOVUPS (DI), Z1
	VMOVUPS 64(DI), Z2
	VFMADD231PS (SI), Z0, Z1
	VFMADD231PS 64(SI), Z0, Z2
	VMOVUPS Z1, (DI)
	VMOVUPS Z2, 64(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	CMPQ CX, $32
	JGE  axpy_32
axpy_16:
	CMPQ CX, $16
	JLT  axpy_tail
	VMOVUPS (DI), Z1
	VFMADD231PS (SI), Z0, Z1
	VMOVUPS Z1, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
axpy_tail:
	TESTQ CX, CX
	JZ   axpy_done
	TAILMASK
	VMOVUPS.Z (DI), K1, Z1
	VMOVUPS.Z (SI), K1, Z2
	VFMADD231PS Z2, Z0, Z1
	VMOVUPS Z1, K1, (DI)
axpy_done:
	VZEROUPPER
	RET

// func scaleAVX512(x *float32, n int, s float32)
TEXT ·scaleAVX512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	VBROADCASTSS s+16(FP), Z0
	CMPQ CX, $32
	JLT  scale_16
scale_32:
	VMULPS (DI), Z0, Z1
	VMULPS 64(DI), Z0, Z2
	VMOVUPS Z1, (DI)
	VMOVUPS Z2, 64(DI)
	ADDQ $128, DI
	SUBQ $32, CX
	CMPQ CX, $32
	JGE  scale_32
scale_16:
	CMPQ CX, $16
	JLT  scale_tail
	VMULPS (DI), Z0, Z1
	VMOVUPS Z1, (DI)
	ADDQ $64, DI
	SUBQ $16, CX
scale_tail:
	TESTQ CX, CX
	JZ   scale_done
	TAILMASK
	VMOVUPS.Z (DI), K1, Z1
	VMULPS Z1, Z0, Z1
	VMOVUPS Z1, K1, (DI)
scale_done:
	VZEROUPPER
	RET

// func maxfAVX512(x *float32, n int) float32
// n ≥ 1. Lanes outside the tail mask keep the running maximum.
TEXT ·maxfAVX512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS (SI), Z0
	VMOVAPS Z0, Z1
	CMPQ CX, $32
	JLT  maxf_16
maxf_32:
	VMAXPS (SI), Z0, Z0
	VMAXPS 64(SI), Z1, Z1
	ADDQ $128, SI
	SUBQ $32, CX
	CMPQ CX, $32
	JGE  maxf_32
maxf_16:
	CMPQ CX, $16
	JLT  maxf_tail
	VMAXPS (SI), Z0, Z0
	ADDQ $64, SI
	SUBQ $16, CX
maxf_tail:
	TESTQ CX, CX
	JZ   maxf_reduce
	TAILMASK
	VMOVAPS Z0, Z2
	VMOVUPS (SI), K1, Z2
	VMAXPS Z2, Z0, Z0
maxf_reduce:
	VMAXPS Z1, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VSHUFPS $0x4e, X0, X0, X1
	VMAXPS X1, X0, X0
	VSHUFPS $0xb1, X0, X0, X1
	VMAXPS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+16(FP)
	RET
