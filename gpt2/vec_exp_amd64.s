// AVX-512 exponentials for softmax and GELU: expf's range reduction and
// polynomial (forward.go) on 16 lanes, with 2ⁿ applied by VSCALEFPS. The
// Go declarations are in vec_exp_amd64.go.

#include "textflag.h"

// CONST broadcasts the float32 with bits b into z.
#define CONST(b, z) MOVL b, AX; VPBROADCASTD AX, z

// EXPCONSTS loads the constants EXP uses into Z16–Z31.
#define EXPCONSTS \
	CONST($0x3fb8aa3b, Z16); \
	CONST($0x3f318000, Z17); \
	CONST($0xb95e8083, Z18); \
	CONST($0x39506967, Z19); \
	CONST($0x3ab743ce, Z20); \
	CONST($0x3c088908, Z21); \
	CONST($0x3d2aa9c1, Z22); \
	CONST($0x3e2aaaaa, Z23); \
	CONST($0x3f000000, Z24); \
	CONST($0x3f800000, Z25); \
	CONST($0xc2ae999a, Z26); \
	CONST($0x42b0c0a5, Z27); \
	CONST($0x7f800000, Z28)

// EXP sets Z1 = exp(x) for x in z (kept), using Z2–Z4, K2, K3: 0 below
// -87.3 and +Inf above 88.376, as expf.
#define EXP(z) \
	VMAXPS Z26, z, Z2; \
	VMINPS Z27, Z2, Z2; \
	VMOVAPS Z2, Z3; \
	VFMADD213PS Z24, Z16, Z3; \
	VRNDSCALEPS $9, Z3, Z3; \
	VFNMADD231PS Z17, Z3, Z2; \
	VFNMADD231PS Z18, Z3, Z2; \
	VMOVAPS Z19, Z1; \
	VFMADD213PS Z20, Z2, Z1; \
	VFMADD213PS Z21, Z2, Z1; \
	VFMADD213PS Z22, Z2, Z1; \
	VFMADD213PS Z23, Z2, Z1; \
	VFMADD213PS Z24, Z2, Z1; \
	VMULPS Z2, Z2, Z4; \
	VFMADD213PS Z2, Z4, Z1; \
	VADDPS Z25, Z1, Z1; \
	VSCALEFPS Z3, Z1, Z1; \
	VCMPPS $1, Z26, z, K2; \
	VXORPS Z1, Z1, K2, Z1; \
	VCMPPS $0x1e, Z27, z, K3; \
	VMOVAPS Z28, K3, Z1

#define TAIL MOVQ $1, AX; SHLQ CX, AX; DECQ AX; KMOVW AX, K1

// func expShiftSumAVX512(x *float32, n int, shift float32) float32
//
// x[i] = exp(x[i] - shift) for i < n; returns their sum.
TEXT ·expShiftSumAVX512(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS shift+16(FP), Z15
	EXPCONSTS
	VPXORD Z14, Z14, Z14
	CMPQ CX, $16
	JLT  es_tail
es_loop:
	VMOVUPS (SI), Z0
	VSUBPS Z15, Z0, Z0
	EXP(Z0)
	VMOVUPS Z1, (SI)
	VADDPS Z1, Z14, Z14
	ADDQ $64, SI
	SUBQ $16, CX
	CMPQ CX, $16
	JGE  es_loop
es_tail:
	TESTQ CX, CX
	JZ   es_sum
	TAIL
	VMOVUPS.Z (SI), K1, Z0
	VSUBPS Z15, Z0, Z0
	EXP(Z0)
	VMOVUPS Z1, K1, (SI)
	VADDPS Z1, Z14, K1, Z14
es_sum:
	VEXTRACTF64X4 $1, Z14, Y1
	VADDPS Y1, Y14, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VSHUFPS $0x4e, X0, X0, X1
	VADDPS X1, X0, X0
	VSHUFPS $0xb1, X0, X0, X1
	VADDPS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// GELU replaces x in Z0 by x - x/(exp(2c·(x + 0.044715·x³)) + 1), with
// Z13 = 2c and Z12 = 0.044715, using Z1–Z6.
#define GELU \
	VMULPS Z0, Z0, Z5; \
	VFMADD213PS Z25, Z12, Z5; \
	VMULPS Z0, Z5, Z5; \
	VMULPS Z13, Z5, Z5; \
	EXP(Z5); \
	VADDPS Z25, Z1, Z1; \
	VDIVPS Z1, Z0, Z6; \
	VSUBPS Z6, Z0, Z0

// func geluAVX512(h *float32, n int)
TEXT ·geluAVX512(SB), NOSPLIT, $0-16
	MOVQ h+0(FP), SI
	MOVQ n+8(FP), CX
	EXPCONSTS
	CONST($0x3fcc422a, Z13)
	CONST($0x3d372713, Z12)
	CMPQ CX, $16
	JLT  g_tail
g_loop:
	VMOVUPS (SI), Z0
	GELU
	VMOVUPS Z0, (SI)
	ADDQ $64, SI
	SUBQ $16, CX
	CMPQ CX, $16
	JGE  g_loop
g_tail:
	TESTQ CX, CX
	JZ   g_done
	TAIL
	VMOVUPS.Z (SI), K1, Z0
	GELU
	VMOVUPS Z0, K1, (SI)
g_done:
	VZEROUPPER
	RET

// HSUM sets X(z) to the sum of the 16 lanes of z, using Z15.
#define HSUMZ(z, y, x) \
	VEXTRACTF64X4 $1, z, Y15; VADDPS Y15, y, y; \
	VEXTRACTF128 $1, y, X15; VADDPS X15, x, x; \
	VHADDPS x, x, x; VHADDPS x, x, x

// func layerNormAVX512(out, x, w, b *float32, n int, eps float32)
//
// out = (x - mean) / sqrt(var + eps) · w + b over n (a multiple of 16)
// elements: the sum, then the squared deviations from the mean, each in
// four 16-lane float32 chains, then one pass writing out (which may be x).
TEXT ·layerNormAVX512(SB), NOSPLIT, $0-44
	MOVQ x+8(FP), SI
	MOVQ n+32(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ SI, R8
	MOVQ CX, DX
ln_sum64:
	CMPQ DX, $64
	JLT  ln_sum16
	VADDPS (R8), Z0, Z0
	VADDPS 64(R8), Z1, Z1
	VADDPS 128(R8), Z2, Z2
	VADDPS 192(R8), Z3, Z3
	ADDQ $256, R8
	SUBQ $64, DX
	JMP  ln_sum64
ln_sum16:
	TESTQ DX, DX
	JZ   ln_mean
	VADDPS (R8), Z0, Z0
	ADDQ $64, R8
	SUBQ $16, DX
	JMP  ln_sum16
ln_mean:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	HSUMZ(Z0, Y0, X0)
	CVTSQ2SS CX, X1
	VDIVSS X1, X0, X0
	VBROADCASTSS X0, Z10 // mean
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ SI, R8
	MOVQ CX, DX
ln_var64:
	CMPQ DX, $64
	JLT  ln_var16
	VSUBPS (R8), Z10, Z4
	VSUBPS 64(R8), Z10, Z5
	VSUBPS 128(R8), Z10, Z6
	VSUBPS 192(R8), Z10, Z7
	VFMADD231PS Z4, Z4, Z0
	VFMADD231PS Z5, Z5, Z1
	VFMADD231PS Z6, Z6, Z2
	VFMADD231PS Z7, Z7, Z3
	ADDQ $256, R8
	SUBQ $64, DX
	JMP  ln_var64
ln_var16:
	TESTQ DX, DX
	JZ   ln_inv
	VSUBPS (R8), Z10, Z4
	VFMADD231PS Z4, Z4, Z0
	ADDQ $64, R8
	SUBQ $16, DX
	JMP  ln_var16
ln_inv:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	HSUMZ(Z0, Y0, X0)
	CVTSQ2SS CX, X1
	VDIVSS X1, X0, X0
	VADDSS eps+40(FP), X0, X0
	VSQRTSS X0, X0, X0
	MOVL $0x3f800000, AX
	VMOVD AX, X1
	VDIVSS X0, X1, X1
	VBROADCASTSS X1, Z11 // 1/sqrt(var + eps)
	MOVQ out+0(FP), DI
	MOVQ w+16(FP), R9
	MOVQ b+24(FP), R10
ln_out:
	VMOVUPS (SI), Z4
	VSUBPS Z10, Z4, Z4
	VMULPS Z11, Z4, Z4
	VMOVUPS (R10), Z5
	VFMADD231PS (R9), Z4, Z5
	VMOVUPS Z5, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, R9
	ADDQ $64, R10
	SUBQ $16, CX
	JNZ  ln_out
	VZEROUPPER
	RET
