// AVX-512 kernels for linear layers and vector primitives. All functions
// are leaves with no frame; the Go declarations and the contracts are in
// kernels_amd64.go and kernels_generic.go. Row strides arrive in elements
// and are turned into bytes here. K tails use opmask K1 with zeroing loads,
// so nothing reads past a row.

#include "textflag.h"
#include "dpbf16_amd64.h"

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
// The small-M kernels: four weight rows against m ≤ 4 input rows.
//
// func dot4<T>AVX512(out *float32, ldo int, x *float32, ldx, m int, w *<T>, ldw, k int, [scale *float32,] bias *float32)
//
// Weight rows at SI, +DX, +2·DX, +R11 (strides in bytes), input rows at BX,
// +R8, +2·R8, +R12; 16 columns a step, the weights widened to float32 in
// registers as they are loaded. acc[r][o] lives in Z(16+4r+o), the weight
// vectors in Z4–Z7, the input vector of row r in Z(r). The four variants
// differ only in how a weight vector is loaded (LOADW_<T>) and in the int8
// per-row scale applied to the sums. Rows past m are skipped by branches
// whose flags the vector instructions leave alone.

#define FMA4(x, a0, a1, a2, a3) \
	VFMADD231PS Z4, x, a0; VFMADD231PS Z5, x, a1; VFMADD231PS Z6, x, a2; VFMADD231PS Z7, x, a3

#define LDX(addr, z) VMOVUPS addr, z
#define LDXM(addr, z) VMOVUPS.Z addr, K1, z

// STEPS runs the FMAs of every input row present (R9 = m), loading x with ld.
#define STEPS(ld, label) \
	ld((BX), Z0); FMA4(Z0, Z16, Z17, Z18, Z19); \
	CMPQ R9, $2; JLT label; \
	ld((BX)(R8*1), Z1); FMA4(Z1, Z20, Z21, Z22, Z23); \
	JEQ label; \
	ld((BX)(R8*2), Z2); FMA4(Z2, Z24, Z25, Z26, Z27); \
	CMPQ R9, $4; JLT label; \
	ld((BX)(R12*1), Z3); FMA4(Z3, Z28, Z29, Z30, Z31)

// HSUM4 reduces four accumulators to X0 = [Σa0, Σa1, Σa2, Σa3], times the
// scales at DX (int8 only, see SCALE), plus the bias at R10.
#define HSUM4(z0, z1, z2, z3, y0, y1, y2, y3, scale) \
	VEXTRACTF64X4 $1, z0, Y8; VADDPS Y8, y0, Y0; \
	VEXTRACTF64X4 $1, z1, Y9; VADDPS Y9, y1, Y1; \
	VEXTRACTF64X4 $1, z2, Y10; VADDPS Y10, y2, Y2; \
	VEXTRACTF64X4 $1, z3, Y11; VADDPS Y11, y3, Y3; \
	VHADDPS Y1, Y0, Y0; \
	VHADDPS Y3, Y2, Y2; \
	VHADDPS Y2, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	scale; \
	VADDPS (R10), X0, X0

#define SCALE VMULPS (DX), X0, X0
#define NOSCALE NOP

// OUTS stores the sums of every row present.
#define OUTS(scale, label) \
	HSUM4(Z16, Z17, Z18, Z19, Y16, Y17, Y18, Y19, scale); VMOVUPS X0, (DI); \
	CMPQ R9, $2; JLT label; \
	HSUM4(Z20, Z21, Z22, Z23, Y20, Y21, Y22, Y23, scale); VMOVUPS X0, (DI)(R13*1); \
	CMPQ R9, $2; JEQ label; \
	HSUM4(Z24, Z25, Z26, Z27, Y24, Y25, Y26, Y27, scale); VMOVUPS X0, (DI)(R13*2); \
	CMPQ R9, $4; JLT label; \
	HSUM4(Z28, Z29, Z30, Z31, Y28, Y29, Y30, Y31, scale); LEAQ (DI)(R13*2), SI; VMOVUPS X0, (SI)(R13*1)

#define ZERO4(a0, a1, a2, a3) VPXORD a0, a0, a0; VPXORD a1, a1, a1; VPXORD a2, a2, a2; VPXORD a3, a3, a3

// TAILMASK sets K1 to the low CX bits.
#define TAILMASK MOVQ $1, AX; SHLQ CX, AX; DECQ AX; KMOVW AX, K1

#define LOADW_F32 VMOVUPS (SI), Z4; VMOVUPS (SI)(DX*1), Z5; VMOVUPS (SI)(DX*2), Z6; VMOVUPS (SI)(R11*1), Z7
#define LOADWM_F32 VMOVUPS.Z (SI), K1, Z4; VMOVUPS.Z (SI)(DX*1), K1, Z5; VMOVUPS.Z (SI)(DX*2), K1, Z6; VMOVUPS.Z (SI)(R11*1), K1, Z7
#define LOADW_BF16 VPMOVZXWD (SI), Z4; VPSLLD $16, Z4, Z4; VPMOVZXWD (SI)(DX*1), Z5; VPSLLD $16, Z5, Z5; VPMOVZXWD (SI)(DX*2), Z6; VPSLLD $16, Z6, Z6; VPMOVZXWD (SI)(R11*1), Z7; VPSLLD $16, Z7, Z7
#define LOADWM_BF16 VPMOVZXWD.Z (SI), K1, Z4; VPSLLD $16, Z4, Z4; VPMOVZXWD.Z (SI)(DX*1), K1, Z5; VPSLLD $16, Z5, Z5; VPMOVZXWD.Z (SI)(DX*2), K1, Z6; VPSLLD $16, Z6, Z6; VPMOVZXWD.Z (SI)(R11*1), K1, Z7; VPSLLD $16, Z7, Z7
#define LOADW_F16 VCVTPH2PS (SI), Z4; VCVTPH2PS (SI)(DX*1), Z5; VCVTPH2PS (SI)(DX*2), Z6; VCVTPH2PS (SI)(R11*1), Z7
#define LOADWM_F16 VCVTPH2PS.Z (SI), K1, Z4; VCVTPH2PS.Z (SI)(DX*1), K1, Z5; VCVTPH2PS.Z (SI)(DX*2), K1, Z6; VCVTPH2PS.Z (SI)(R11*1), K1, Z7
#define LOADW_I8 VPMOVSXBD (SI), Z4; VCVTDQ2PS Z4, Z4; VPMOVSXBD (SI)(DX*1), Z5; VCVTDQ2PS Z5, Z5; VPMOVSXBD (SI)(DX*2), Z6; VCVTDQ2PS Z6, Z6; VPMOVSXBD (SI)(R11*1), Z7; VCVTDQ2PS Z7, Z7
#define LOADWM_I8 VPMOVSXBD.Z (SI), K1, Z4; VCVTDQ2PS Z4, Z4; VPMOVSXBD.Z (SI)(DX*1), K1, Z5; VCVTDQ2PS Z5, Z5; VPMOVSXBD.Z (SI)(DX*2), K1, Z6; VCVTDQ2PS Z6, Z6; VPMOVSXBD.Z (SI)(R11*1), K1, Z7; VCVTDQ2PS Z7, Z7

// func dot4F32AVX512(out *float32, ldo int, x *float32, ldx, m int, w *float32, ldw, k int, bias *float32)
TEXT ·dot4F32AVX512(SB), NOSPLIT, $0-72
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
	LEAQ (SI)(DX*4), AX // a block of rows ahead, to prefetch
	MOVQ bias+64(FP), R10
	TESTQ R10, R10
	JNZ  zero
	LEAQ zeros<>(SB), R10
zero:
	ZERO4(Z16, Z17, Z18, Z19)
	ZERO4(Z20, Z21, Z22, Z23)
	ZERO4(Z24, Z25, Z26, Z27)
	ZERO4(Z28, Z29, Z30, Z31)
rows:
	CMPQ CX, $16
	JLT  tail
loop:
	LOADW_F32
	STEPS(LDX, next)
next:
	PREFETCHT0 (AX)
	PREFETCHT0 64(AX)
	PREFETCHT0 128(AX)
	PREFETCHT0 192(AX)
	ADDQ $64, SI
	ADDQ $256, AX
	ADDQ $64, BX
	SUBQ $16, CX
	CMPQ CX, $16
	JGE  loop
tail:
	TESTQ CX, CX
	JZ   sums
	TAILMASK
	LOADWM_F32
	STEPS(LDXM, sums)
sums:
	OUTS(NOSCALE, done)
done:
	VZEROUPPER
	RET

// func dot4BF16AVX512(out *float32, ldo int, x *float32, ldx, m int, w *uint16, ldw, k int, bias *float32)
TEXT ·dot4BF16AVX512(SB), NOSPLIT, $0-72
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
	SHLQ $1, DX
	LEAQ (DX)(DX*2), R11
	MOVQ k+56(FP), CX
	LEAQ (SI)(DX*4), AX // a block of rows ahead, to prefetch
	MOVQ bias+64(FP), R10
	TESTQ R10, R10
	JNZ  zero
	LEAQ zeros<>(SB), R10
zero:
	ZERO4(Z16, Z17, Z18, Z19)
	ZERO4(Z20, Z21, Z22, Z23)
	ZERO4(Z24, Z25, Z26, Z27)
	ZERO4(Z28, Z29, Z30, Z31)
rows:
	CMPQ CX, $16
	JLT  tail
loop:
	LOADW_BF16
	STEPS(LDX, next)
next:
	PREFETCHT0 (AX)
	PREFETCHT0 64(AX)
	ADDQ $32, SI
	ADDQ $128, AX
	ADDQ $64, BX
	SUBQ $16, CX
	CMPQ CX, $16
	JGE  loop
tail:
	TESTQ CX, CX
	JZ   sums
	TAILMASK
	LOADWM_BF16
	STEPS(LDXM, sums)
sums:
	OUTS(NOSCALE, done)
done:
	VZEROUPPER
	RET

// func dot4F16AVX512(out *float32, ldo int, x *float32, ldx, m int, w *uint16, ldw, k int, bias *float32)
TEXT ·dot4F16AVX512(SB), NOSPLIT, $0-72
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
	SHLQ $1, DX
	LEAQ (DX)(DX*2), R11
	MOVQ k+56(FP), CX
	LEAQ (SI)(DX*4), AX // a block of rows ahead, to prefetch
	MOVQ bias+64(FP), R10
	TESTQ R10, R10
	JNZ  zero
	LEAQ zeros<>(SB), R10
zero:
	ZERO4(Z16, Z17, Z18, Z19)
	ZERO4(Z20, Z21, Z22, Z23)
	ZERO4(Z24, Z25, Z26, Z27)
	ZERO4(Z28, Z29, Z30, Z31)
rows:
	CMPQ CX, $16
	JLT  tail
loop:
	LOADW_F16
	STEPS(LDX, next)
next:
	PREFETCHT0 (AX)
	PREFETCHT0 64(AX)
	ADDQ $32, SI
	ADDQ $128, AX
	ADDQ $64, BX
	SUBQ $16, CX
	CMPQ CX, $16
	JGE  loop
tail:
	TESTQ CX, CX
	JZ   sums
	TAILMASK
	LOADWM_F16
	STEPS(LDXM, sums)
sums:
	OUTS(NOSCALE, done)
done:
	VZEROUPPER
	RET

// func dot4I8AVX512(out *float32, ldo int, x *float32, ldx, m int, w *int8, ldw, k int, scale *float32, bias *float32)
TEXT ·dot4I8AVX512(SB), NOSPLIT, $0-80
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
	LEAQ (DX)(DX*2), R11
	MOVQ k+56(FP), CX
	LEAQ (SI)(DX*4), AX // a block of rows ahead, to prefetch
	MOVQ bias+72(FP), R10
	TESTQ R10, R10
	JNZ  zero
	LEAQ zeros<>(SB), R10
zero:
	ZERO4(Z16, Z17, Z18, Z19)
	ZERO4(Z20, Z21, Z22, Z23)
	ZERO4(Z24, Z25, Z26, Z27)
	ZERO4(Z28, Z29, Z30, Z31)
rows:
	CMPQ CX, $16
	JLT  tail
loop:
	LOADW_I8
	STEPS(LDX, next)
next:
	PREFETCHT0 (AX)
	ADDQ $16, SI
	ADDQ $64, AX
	ADDQ $64, BX
	SUBQ $16, CX
	CMPQ CX, $16
	JGE  loop
tail:
	TESTQ CX, CX
	JZ   sums
	TAILMASK
	LOADWM_I8
	STEPS(LDXM, sums)
sums:
	MOVQ scale+64(FP), DX
	OUTS(SCALE, done)
done:
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// The batched-decode kernels: two weight rows against m ≤ 8 input rows.
//
// func dot2x8<T>AVX512(out *float32, ldo int, x *float32, ldx, m int, w *<T>, ldw, k int, [scale *float32,] bias *float32)
//
// The same contract as dot4 with two weight rows and m ≤ 8: each weight
// vector is loaded (and widened) once and meets every input row, so a
// weight row is read from memory once for up to eight sequences and the
// two rows of a block are adjacent in memory. Weight rows at SI, +DX;
// input rows at BX, +R8, +2·R8, +R12 and R11 (= BX + 4·R8), +R8, +2·R8,
// +R12. acc[r][j] lives in Z(16+2r+j), the weight vectors in Z0, Z1, the
// input vector of row r in Z(2+r). AX runs over the rows 6 KiB ahead at
// In = 768 (the next pair for float32, the second for 16-bit, the fourth
// for int8), prefetching them into L2 only: the eight input rows hold L1,
// and PREFETCHT0 there, evicting them, made m = 8 as slow as dot4's two
// passes.

// FMA2 multiplies input vector x into the accumulator pair a0, a1.
#define FMA2(x, a0, a1) VFMADD231PS Z0, x, a0; VFMADD231PS Z1, x, a1

// STEPS8 runs the FMAs of every input row present (R9 = m), loading x with ld.
#define STEPS8(ld, label) \
	ld((BX), Z2); FMA2(Z2, Z16, Z17); \
	CMPQ R9, $2; JLT label; \
	ld((BX)(R8*1), Z3); FMA2(Z3, Z18, Z19); \
	JEQ label; \
	ld((BX)(R8*2), Z4); FMA2(Z4, Z20, Z21); \
	CMPQ R9, $4; JLT label; \
	ld((BX)(R12*1), Z5); FMA2(Z5, Z22, Z23); \
	JEQ label; \
	ld((R11), Z6); FMA2(Z6, Z24, Z25); \
	CMPQ R9, $6; JLT label; \
	ld((R11)(R8*1), Z7); FMA2(Z7, Z26, Z27); \
	JEQ label; \
	ld((R11)(R8*2), Z8); FMA2(Z8, Z28, Z29); \
	CMPQ R9, $8; JLT label; \
	ld((R11)(R12*1), Z9); FMA2(Z9, Z30, Z31)

#define ZERO16 \
	ZERO4(Z16, Z17, Z18, Z19); ZERO4(Z20, Z21, Z22, Z23); \
	ZERO4(Z24, Z25, Z26, Z27); ZERO4(Z28, Z29, Z30, Z31)

// RED256 adds the 256-bit halves of a and b: t = [a.lo, b.lo] + [a.hi, b.hi].
#define RED256(a, b, t) VSHUFF64X2 $0x44, b, a, Z10; VSHUFF64X2 $0xEE, b, a, Z11; VADDPS Z11, Z10, t
// RED128 adds alternate 128-bit lanes: t = [a0, a2, b0, b2] + [a1, a3, b1, b3].
#define RED128(a, b, t) VSHUFF64X2 $0x88, b, a, Z10; VSHUFF64X2 $0xDD, b, a, Z11; VADDPS Z11, Z10, t

// HSUM16 reduces the sixteen accumulators to Z0, whose lane 2r+j holds
// Σ acc[r][j]: a transposing tree (256-bit halves, 128-bit lanes, 64-bit
// pairs, then single floats), with the accumulators paired so the sums
// land in order.
#define HSUM16 \
	RED256(Z16, Z20, Z0); RED256(Z24, Z28, Z1); \
	RED256(Z17, Z21, Z2); RED256(Z25, Z29, Z3); \
	RED256(Z18, Z22, Z4); RED256(Z26, Z30, Z5); \
	RED256(Z19, Z23, Z6); RED256(Z27, Z31, Z7); \
	RED128(Z0, Z1, Z12); RED128(Z2, Z3, Z13); \
	RED128(Z4, Z5, Z14); RED128(Z6, Z7, Z15); \
	VUNPCKLPD Z13, Z12, Z10; VUNPCKHPD Z13, Z12, Z11; VADDPS Z11, Z10, Z8; \
	VUNPCKLPD Z15, Z14, Z10; VUNPCKHPD Z15, Z14, Z11; VADDPS Z11, Z10, Z9; \
	VSHUFPS $0x88, Z9, Z8, Z10; VSHUFPS $0xDD, Z9, Z8, Z11; VADDPS Z11, Z10, Z0

// OUTS8 adds the bias pair at R10 to every row's sums (after scale) and
// stores the pair of each row present at DI, DI+R13, ….
#define OUTS8(scale, label) \
	HSUM16; \
	scale; \
	VBROADCASTSD (R10), Z1; VADDPS Z1, Z0, Z0; \
	VEXTRACTF32X4 $1, Z0, X1; VEXTRACTF32X4 $2, Z0, X2; VEXTRACTF32X4 $3, Z0, X3; \
	VMOVQ X0, (DI); \
	CMPQ R9, $2; JLT label; ADDQ R13, DI; VMOVHPS X0, (DI); \
	CMPQ R9, $3; JLT label; ADDQ R13, DI; VMOVQ X1, (DI); \
	CMPQ R9, $4; JLT label; ADDQ R13, DI; VMOVHPS X1, (DI); \
	CMPQ R9, $5; JLT label; ADDQ R13, DI; VMOVQ X2, (DI); \
	CMPQ R9, $6; JLT label; ADDQ R13, DI; VMOVHPS X2, (DI); \
	CMPQ R9, $7; JLT label; ADDQ R13, DI; VMOVQ X3, (DI); \
	CMPQ R9, $8; JLT label; ADDQ R13, DI; VMOVHPS X3, (DI)

#define SCALE2 VBROADCASTSD (DX), Z1; VMULPS Z1, Z0, Z0

#define LOAD2W_F32 VMOVUPS (SI), Z0; VMOVUPS (SI)(DX*1), Z1
#define LOAD2WM_F32 VMOVUPS.Z (SI), K1, Z0; VMOVUPS.Z (SI)(DX*1), K1, Z1
#define LOAD2W_BF16 VPMOVZXWD (SI), Z0; VPSLLD $16, Z0, Z0; VPMOVZXWD (SI)(DX*1), Z1; VPSLLD $16, Z1, Z1
#define LOAD2WM_BF16 VPMOVZXWD.Z (SI), K1, Z0; VPSLLD $16, Z0, Z0; VPMOVZXWD.Z (SI)(DX*1), K1, Z1; VPSLLD $16, Z1, Z1
#define LOAD2W_F16 VCVTPH2PS (SI), Z0; VCVTPH2PS (SI)(DX*1), Z1
#define LOAD2WM_F16 VCVTPH2PS.Z (SI), K1, Z0; VCVTPH2PS.Z (SI)(DX*1), K1, Z1
#define LOAD2W_I8 VPMOVSXBD (SI), Z0; VCVTDQ2PS Z0, Z0; VPMOVSXBD (SI)(DX*1), Z1; VCVTDQ2PS Z1, Z1
#define LOAD2WM_I8 VPMOVSXBD.Z (SI), K1, Z0; VCVTDQ2PS Z0, Z0; VPMOVSXBD.Z (SI)(DX*1), K1, Z1; VCVTDQ2PS Z1, Z1

// ARGS8 loads the arguments common to the four variants; WSTRIDE(shift)
// then turns the weight stride into bytes and points AX a block ahead.
#define ARGS8 \
	MOVQ out+0(FP), DI; \
	MOVQ ldo+8(FP), R13; SHLQ $2, R13; \
	MOVQ x+16(FP), BX; \
	MOVQ ldx+24(FP), R8; SHLQ $2, R8; \
	LEAQ (R8)(R8*2), R12; \
	LEAQ (BX)(R8*4), R11; \
	MOVQ m+32(FP), R9; \
	MOVQ w+40(FP), SI; \
	MOVQ ldw+48(FP), DX; \
	MOVQ k+56(FP), CX

#define WSTRIDE(shift) SHLQ $shift, DX; LEAQ (SI)(DX*2), AX

// func dot2x8F32AVX512(out *float32, ldo int, x *float32, ldx, m int, w *float32, ldw, k int, bias *float32)
TEXT ·dot2x8F32AVX512(SB), NOSPLIT, $0-72
	ARGS8
	WSTRIDE(2)
	MOVQ bias+64(FP), R10
	TESTQ R10, R10
	JNZ  zero
	LEAQ zeros<>(SB), R10
zero:
	ZERO16
	CMPQ CX, $16
	JLT  tail
loop:
	LOAD2W_F32
	STEPS8(LDX, next)
next:
	PREFETCHT1 (AX)
	PREFETCHT1 64(AX)
	ADDQ $64, SI
	ADDQ $128, AX
	ADDQ $64, BX
	ADDQ $64, R11
	SUBQ $16, CX
	CMPQ CX, $16
	JGE  loop
tail:
	TESTQ CX, CX
	JZ   sums
	TAILMASK
	LOAD2WM_F32
	STEPS8(LDXM, sums)
sums:
	OUTS8(NOP, done)
done:
	VZEROUPPER
	RET

// func dot2x8BF16AVX512(out *float32, ldo int, x *float32, ldx, m int, w *uint16, ldw, k int, bias *float32)
TEXT ·dot2x8BF16AVX512(SB), NOSPLIT, $0-72
	ARGS8
	WSTRIDE(1)
	LEAQ (SI)(DX*4), AX // prefetch two pairs ahead
	MOVQ bias+64(FP), R10
	TESTQ R10, R10
	JNZ  zero
	LEAQ zeros<>(SB), R10
zero:
	ZERO16
	CMPQ CX, $16
	JLT  tail
loop:
	LOAD2W_BF16
	STEPS8(LDX, next)
next:
	PREFETCHT1 (AX)
	ADDQ $32, SI
	ADDQ $64, AX
	ADDQ $64, BX
	ADDQ $64, R11
	SUBQ $16, CX
	CMPQ CX, $16
	JGE  loop
tail:
	TESTQ CX, CX
	JZ   sums
	TAILMASK
	LOAD2WM_BF16
	STEPS8(LDXM, sums)
sums:
	OUTS8(NOP, done)
done:
	VZEROUPPER
	RET

// The bf16 × bf16 variant: input rows already rounded to bf16, 32
// columns a step, each weight vector of 32 bf16 meeting every input row
// in one VDPBF16PS per row (pairs summed in float32): half the
// instructions of widening the weights, none spent on widening.
#define DP2(x, a0, a1) DPBF16(0, x, a0); DPBF16(1, x, a1)
#define LDX16(src, z) VMOVDQU16 src, z
#define LDX16M(src, z) VMOVDQU16.Z src, K1, z

// STEPS8BF is STEPS8 for bf16 input rows.
#define STEPS8BF(ld, label) \
	ld((BX), Z2); DP2(2, 16, 17); \
	CMPQ R9, $2; JLT label; \
	ld((BX)(R8*1), Z3); DP2(3, 18, 19); \
	JEQ label; \
	ld((BX)(R8*2), Z4); DP2(4, 20, 21); \
	CMPQ R9, $4; JLT label; \
	ld((BX)(R12*1), Z5); DP2(5, 22, 23); \
	JEQ label; \
	ld((R11), Z6); DP2(6, 24, 25); \
	CMPQ R9, $6; JLT label; \
	ld((R11)(R8*1), Z7); DP2(7, 26, 27); \
	JEQ label; \
	ld((R11)(R8*2), Z8); DP2(8, 28, 29); \
	CMPQ R9, $8; JLT label; \
	ld((R11)(R12*1), Z9); DP2(9, 30, 31)

// func dot2x8BF16DotAVX512(out *float32, ldo int, x *uint16, ldx, m int, w *uint16, ldw, k int, bias *float32)
TEXT ·dot2x8BF16DotAVX512(SB), NOSPLIT, $0-72
	MOVQ out+0(FP), DI
	MOVQ ldo+8(FP), R13
	SHLQ $2, R13
	MOVQ x+16(FP), BX
	MOVQ ldx+24(FP), R8
	SHLQ $1, R8
	LEAQ (R8)(R8*2), R12
	LEAQ (BX)(R8*4), R11
	MOVQ m+32(FP), R9
	MOVQ w+40(FP), SI
	MOVQ ldw+48(FP), DX
	MOVQ k+56(FP), CX
	WSTRIDE(1)
	LEAQ (SI)(DX*4), AX // prefetch two pairs ahead
	MOVQ bias+64(FP), R10
	TESTQ R10, R10
	JNZ  zero
	LEAQ zeros<>(SB), R10
zero:
	ZERO16
	CMPQ CX, $32
	JLT  tail
loop:
	VMOVDQU16 (SI), Z0
	VMOVDQU16 (SI)(DX*1), Z1
	STEPS8BF(LDX16, next)
next:
	PREFETCHT1 (AX)
	PREFETCHT1 64(AX)
	ADDQ $64, SI
	ADDQ $128, AX
	ADDQ $64, BX
	ADDQ $64, R11
	SUBQ $32, CX
	CMPQ CX, $32
	JGE  loop
tail:
	TESTQ CX, CX
	JZ   sums
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
	KMOVD AX, K1
	VMOVDQU16.Z (SI), K1, Z0
	VMOVDQU16.Z (SI)(DX*1), K1, Z1
	STEPS8BF(LDX16M, sums)
sums:
	OUTS8(NOP, done)
done:
	VZEROUPPER
	RET

// func dot2x8F16AVX512(out *float32, ldo int, x *float32, ldx, m int, w *uint16, ldw, k int, bias *float32)
TEXT ·dot2x8F16AVX512(SB), NOSPLIT, $0-72
	ARGS8
	WSTRIDE(1)
	LEAQ (SI)(DX*4), AX // prefetch two pairs ahead
	MOVQ bias+64(FP), R10
	TESTQ R10, R10
	JNZ  zero
	LEAQ zeros<>(SB), R10
zero:
	ZERO16
	CMPQ CX, $16
	JLT  tail
loop:
	LOAD2W_F16
	STEPS8(LDX, next)
next:
	PREFETCHT1 (AX)
	ADDQ $32, SI
	ADDQ $64, AX
	ADDQ $64, BX
	ADDQ $64, R11
	SUBQ $16, CX
	CMPQ CX, $16
	JGE  loop
tail:
	TESTQ CX, CX
	JZ   sums
	TAILMASK
	LOAD2WM_F16
	STEPS8(LDXM, sums)
sums:
	OUTS8(NOP, done)
done:
	VZEROUPPER
	RET

// func dot2x8I8AVX512(out *float32, ldo int, x *float32, ldx, m int, w *int8, ldw, k int, scale *float32, bias *float32)
TEXT ·dot2x8I8AVX512(SB), NOSPLIT, $0-80
	ARGS8
	WSTRIDE(0)
	LEAQ (SI)(DX*8), AX // prefetch four pairs ahead
	MOVQ bias+72(FP), R10
	TESTQ R10, R10
	JNZ  zero
	LEAQ zeros<>(SB), R10
zero:
	ZERO16
	CMPQ CX, $16
	JLT  tail
loop:
	LOAD2W_I8
	STEPS8(LDX, next)
next:
	PREFETCHT1 (AX)
	ADDQ $16, SI
	ADDQ $32, AX
	ADDQ $64, BX
	ADDQ $64, R11
	SUBQ $16, CX
	CMPQ CX, $16
	JGE  loop
tail:
	TESTQ CX, CX
	JZ   sums
	TAILMASK
	LOAD2WM_I8
	STEPS8(LDXM, sums)
sums:
	MOVQ scale+64(FP), DX
	OUTS8(SCALE2, done)
done:
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// The one-input-row kernels (decode): out[o] = x·W[o] (·scale[o]) + bias[o]
// for rows consecutive weight rows, each read front to back, so the whole
// call is one sequential stream the hardware prefetcher follows.
//
// func dotRows<T>AVX512(out *float32, x *float32, w *<T>, ldw, k, rows int, [scale *float32,] bias *float32)
//
// Row pointer SI, next row R8 (+ldw bytes), x BX, k CX; four accumulators
// Z0–Z3 over 64 columns an iteration, weights widened into Z4–Z7.

// func dotRowsF32AVX512(out *float32, x *float32, w *float32, ldw, k, rows int, bias *float32)
TEXT ·dotRowsF32AVX512(SB), NOSPLIT, $0-56
	MOVQ out+0(FP), DI
	MOVQ x+8(FP), BX
	MOVQ w+16(FP), R8
	MOVQ ldw+24(FP), DX
	SHLQ $2, DX
	MOVQ rows+40(FP), R9
	MOVQ bias+48(FP), R10
	MOVQ $4, R12 // bias step
	TESTQ R10, R10
	JNZ  mask
	LEAQ zeros<>(SB), R10
	XORQ R12, R12
mask:
	MOVQ k+32(FP), CX
	ANDQ $15, CX
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
	KMOVW AX, K1 // the k%16 tail
row:
	MOVQ R8, SI
	ADDQ DX, R8
	MOVQ BX, AX
	MOVQ k+32(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	CMPQ CX, $64
	JLT  step16
step64:
	VMOVUPS (SI), Z4
	VMOVUPS 64(SI), Z5
	VMOVUPS 128(SI), Z6
	VMOVUPS 192(SI), Z7
	VFMADD231PS (AX), Z4, Z0
	VFMADD231PS 64(AX), Z5, Z1
	VFMADD231PS 128(AX), Z6, Z2
	VFMADD231PS 192(AX), Z7, Z3
	ADDQ $256, SI
	ADDQ $256, AX
	SUBQ $64, CX
	CMPQ CX, $64
	JGE  step64
step16:
	CMPQ CX, $16
	JLT  tail
	VMOVUPS (SI), Z4
	VFMADD231PS (AX), Z4, Z0
	ADDQ $64, SI
	ADDQ $64, AX
	SUBQ $16, CX
	JMP  step16
tail:
	TESTQ CX, CX
	JZ   sum
	VMOVUPS.Z (SI), K1, Z4
	VMOVUPS.Z (AX), K1, Z5
	VFMADD231PS Z5, Z4, Z1
sum:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VADDSS (R10), X0, X0
	ADDQ R12, R10
	VMOVSS X0, (DI)
	ADDQ $4, DI
	DECQ R9
	JNZ  row
	VZEROUPPER
	RET

// func dotRowsBF16AVX512(out *float32, x *float32, w *uint16, ldw, k, rows int, bias *float32)
TEXT ·dotRowsBF16AVX512(SB), NOSPLIT, $0-56
	MOVQ out+0(FP), DI
	MOVQ x+8(FP), BX
	MOVQ w+16(FP), R8
	MOVQ ldw+24(FP), DX
	SHLQ $1, DX
	MOVQ rows+40(FP), R9
	MOVQ bias+48(FP), R10
	MOVQ $4, R12 // bias step
	TESTQ R10, R10
	JNZ  mask
	LEAQ zeros<>(SB), R10
	XORQ R12, R12
mask:
	MOVQ k+32(FP), CX
	ANDQ $15, CX
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
	KMOVW AX, K1 // the k%16 tail
row:
	MOVQ R8, SI
	ADDQ DX, R8
	MOVQ BX, AX
	MOVQ k+32(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	CMPQ CX, $64
	JLT  step16
step64:
	VPMOVZXWD (SI), Z4
	VPSLLD $16, Z4, Z4
	VPMOVZXWD 32(SI), Z5
	VPSLLD $16, Z5, Z5
	VPMOVZXWD 64(SI), Z6
	VPSLLD $16, Z6, Z6
	VPMOVZXWD 96(SI), Z7
	VPSLLD $16, Z7, Z7
	VFMADD231PS (AX), Z4, Z0
	VFMADD231PS 64(AX), Z5, Z1
	VFMADD231PS 128(AX), Z6, Z2
	VFMADD231PS 192(AX), Z7, Z3
	ADDQ $128, SI
	ADDQ $256, AX
	SUBQ $64, CX
	CMPQ CX, $64
	JGE  step64
step16:
	CMPQ CX, $16
	JLT  tail
	VPMOVZXWD (SI), Z4
	VPSLLD $16, Z4, Z4
	VFMADD231PS (AX), Z4, Z0
	ADDQ $32, SI
	ADDQ $64, AX
	SUBQ $16, CX
	JMP  step16
tail:
	TESTQ CX, CX
	JZ   sum
	VPMOVZXWD.Z (SI), K1, Z4
	VPSLLD $16, Z4, Z4
	VMOVUPS.Z (AX), K1, Z5
	VFMADD231PS Z5, Z4, Z1
sum:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VADDSS (R10), X0, X0
	ADDQ R12, R10
	VMOVSS X0, (DI)
	ADDQ $4, DI
	DECQ R9
	JNZ  row
	VZEROUPPER
	RET

// func dotRowsF16AVX512(out *float32, x *float32, w *uint16, ldw, k, rows int, bias *float32)
TEXT ·dotRowsF16AVX512(SB), NOSPLIT, $0-56
	MOVQ out+0(FP), DI
	MOVQ x+8(FP), BX
	MOVQ w+16(FP), R8
	MOVQ ldw+24(FP), DX
	SHLQ $1, DX
	MOVQ rows+40(FP), R9
	MOVQ bias+48(FP), R10
	MOVQ $4, R12 // bias step
	TESTQ R10, R10
	JNZ  mask
	LEAQ zeros<>(SB), R10
	XORQ R12, R12
mask:
	MOVQ k+32(FP), CX
	ANDQ $15, CX
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
	KMOVW AX, K1 // the k%16 tail
row:
	MOVQ R8, SI
	ADDQ DX, R8
	MOVQ BX, AX
	MOVQ k+32(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	CMPQ CX, $64
	JLT  step16
step64:
	VCVTPH2PS (SI), Z4
	VCVTPH2PS 32(SI), Z5
	VCVTPH2PS 64(SI), Z6
	VCVTPH2PS 96(SI), Z7
	VFMADD231PS (AX), Z4, Z0
	VFMADD231PS 64(AX), Z5, Z1
	VFMADD231PS 128(AX), Z6, Z2
	VFMADD231PS 192(AX), Z7, Z3
	ADDQ $128, SI
	ADDQ $256, AX
	SUBQ $64, CX
	CMPQ CX, $64
	JGE  step64
step16:
	CMPQ CX, $16
	JLT  tail
	VCVTPH2PS (SI), Z4
	VFMADD231PS (AX), Z4, Z0
	ADDQ $32, SI
	ADDQ $64, AX
	SUBQ $16, CX
	JMP  step16
tail:
	TESTQ CX, CX
	JZ   sum
	VCVTPH2PS.Z (SI), K1, Z4
	VMOVUPS.Z (AX), K1, Z5
	VFMADD231PS Z5, Z4, Z1
sum:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VADDSS (R10), X0, X0
	ADDQ R12, R10
	VMOVSS X0, (DI)
	ADDQ $4, DI
	DECQ R9
	JNZ  row
	VZEROUPPER
	RET

// func dotRowsI8AVX512(out *float32, x *float32, w *int8, ldw, k, rows int, scale *float32, bias *float32)
TEXT ·dotRowsI8AVX512(SB), NOSPLIT, $0-64
	MOVQ out+0(FP), DI
	MOVQ x+8(FP), BX
	MOVQ w+16(FP), R8
	MOVQ ldw+24(FP), DX
	MOVQ rows+40(FP), R9
	MOVQ scale+48(FP), R11
	MOVQ bias+56(FP), R10
	MOVQ $4, R12 // bias step
	TESTQ R10, R10
	JNZ  mask
	LEAQ zeros<>(SB), R10
	XORQ R12, R12
mask:
	MOVQ k+32(FP), CX
	ANDQ $15, CX
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
	KMOVW AX, K1 // the k%16 tail
row:
	MOVQ R8, SI
	ADDQ DX, R8
	MOVQ BX, AX
	MOVQ k+32(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	CMPQ CX, $64
	JLT  step16
step64:
	VPMOVSXBD (SI), Z4
	VCVTDQ2PS Z4, Z4
	VPMOVSXBD 16(SI), Z5
	VCVTDQ2PS Z5, Z5
	VPMOVSXBD 32(SI), Z6
	VCVTDQ2PS Z6, Z6
	VPMOVSXBD 48(SI), Z7
	VCVTDQ2PS Z7, Z7
	VFMADD231PS (AX), Z4, Z0
	VFMADD231PS 64(AX), Z5, Z1
	VFMADD231PS 128(AX), Z6, Z2
	VFMADD231PS 192(AX), Z7, Z3
	ADDQ $64, SI
	ADDQ $256, AX
	SUBQ $64, CX
	CMPQ CX, $64
	JGE  step64
step16:
	CMPQ CX, $16
	JLT  tail
	VPMOVSXBD (SI), Z4
	VCVTDQ2PS Z4, Z4
	VFMADD231PS (AX), Z4, Z0
	ADDQ $16, SI
	ADDQ $64, AX
	SUBQ $16, CX
	JMP  step16
tail:
	TESTQ CX, CX
	JZ   sum
	VPMOVSXBD.Z (SI), K1, Z4
	VCVTDQ2PS Z4, Z4
	VMOVUPS.Z (AX), K1, Z5
	VFMADD231PS Z5, Z4, Z1
sum:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMULSS (R11), X0, X0
	ADDQ $4, R11
	VADDSS (R10), X0, X0
	ADDQ R12, R10
	VMOVSS X0, (DI)
	ADDQ $4, DI
	DECQ R9
	JNZ  row
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
// Packing a GEMM panel: 32 weight rows × kc columns (kc a multiple of 16)
// transposed to kc steps of 32 floats, dst[p·32 + j] = W[j][p].
//
// func pack32<T>AVX512(dst *float32, src *<T>, ld, kc int[, scale *float32])
//
// Each 16×16 block is loaded row by row into Z0–Z15 (widened, and for int8
// scaled by its row's scale), transposed in registers and stored as 16
// half-steps, 128 bytes apart. TRANSPOSE16 leaves column c of Z0–Z15 (rows) in Z(c).

// Stage 1: interleave 32-bit elements of row pairs into Z16–Z31.
#define T16_S1(a, b, lo, hi) VUNPCKLPS b, a, lo; VUNPCKHPS b, a, hi
// Stage 2: interleave 64-bit pairs of two stage-1 results back into Z0–Z15.
#define T16_S2(a, b, lo, hi) VUNPCKLPD b, a, lo; VUNPCKHPD b, a, hi
// Stage 3: gather 128-bit lanes.
#define T16_S3(a, b, lo, hi) VSHUFF32X4 $0x44, b, a, lo; VSHUFF32X4 $0xee, b, a, hi
#define T16_S4(a, b, lo, hi) VSHUFF32X4 $0x88, b, a, lo; VSHUFF32X4 $0xdd, b, a, hi

#define TRANSPOSE16 \
	T16_S1(Z0, Z1, Z16, Z17); T16_S1(Z2, Z3, Z18, Z19); \
	T16_S1(Z4, Z5, Z20, Z21); T16_S1(Z6, Z7, Z22, Z23); \
	T16_S1(Z8, Z9, Z24, Z25); T16_S1(Z10, Z11, Z26, Z27); \
	T16_S1(Z12, Z13, Z28, Z29); T16_S1(Z14, Z15, Z30, Z31); \
	T16_S2(Z16, Z18, Z0, Z1); T16_S2(Z17, Z19, Z2, Z3); \
	T16_S2(Z20, Z22, Z4, Z5); T16_S2(Z21, Z23, Z6, Z7); \
	T16_S2(Z24, Z26, Z8, Z9); T16_S2(Z25, Z27, Z10, Z11); \
	T16_S2(Z28, Z30, Z12, Z13); T16_S2(Z29, Z31, Z14, Z15); \
	T16_S3(Z0, Z4, Z16, Z17); T16_S3(Z8, Z12, Z18, Z19); \
	T16_S3(Z1, Z5, Z20, Z21); T16_S3(Z9, Z13, Z22, Z23); \
	T16_S3(Z2, Z6, Z24, Z25); T16_S3(Z10, Z14, Z26, Z27); \
	T16_S3(Z3, Z7, Z28, Z29); T16_S3(Z11, Z15, Z30, Z31); \
	T16_S4(Z16, Z18, Z0, Z4); T16_S4(Z17, Z19, Z8, Z12); \
	T16_S4(Z20, Z22, Z1, Z5); T16_S4(Z21, Z23, Z9, Z13); \
	T16_S4(Z24, Z26, Z2, Z6); T16_S4(Z25, Z27, Z10, Z14); \
	T16_S4(Z28, Z30, Z3, Z7); T16_S4(Z29, Z31, Z11, Z15)


// func pack32F32AVX512(dst *float32, src *float32, ld, kc int)
TEXT ·pack32F32AVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), DX
	SHLQ $2, DX
	MOVQ kc+24(FP), CX
	MOVQ DX, BX
	SHLQ $4, BX // 16 rows
	SHRQ $4, CX
	JZ   done
loop:
	// rows 0–15
	MOVQ SI, AX
	VMOVUPS (AX), Z0
	ADDQ DX, AX
	VMOVUPS (AX), Z1
	ADDQ DX, AX
	VMOVUPS (AX), Z2
	ADDQ DX, AX
	VMOVUPS (AX), Z3
	ADDQ DX, AX
	VMOVUPS (AX), Z4
	ADDQ DX, AX
	VMOVUPS (AX), Z5
	ADDQ DX, AX
	VMOVUPS (AX), Z6
	ADDQ DX, AX
	VMOVUPS (AX), Z7
	ADDQ DX, AX
	VMOVUPS (AX), Z8
	ADDQ DX, AX
	VMOVUPS (AX), Z9
	ADDQ DX, AX
	VMOVUPS (AX), Z10
	ADDQ DX, AX
	VMOVUPS (AX), Z11
	ADDQ DX, AX
	VMOVUPS (AX), Z12
	ADDQ DX, AX
	VMOVUPS (AX), Z13
	ADDQ DX, AX
	VMOVUPS (AX), Z14
	ADDQ DX, AX
	VMOVUPS (AX), Z15
	TRANSPOSE16
	VMOVUPS Z0, 0(DI)
	VMOVUPS Z1, 128(DI)
	VMOVUPS Z2, 256(DI)
	VMOVUPS Z3, 384(DI)
	VMOVUPS Z4, 512(DI)
	VMOVUPS Z5, 640(DI)
	VMOVUPS Z6, 768(DI)
	VMOVUPS Z7, 896(DI)
	VMOVUPS Z8, 1024(DI)
	VMOVUPS Z9, 1152(DI)
	VMOVUPS Z10, 1280(DI)
	VMOVUPS Z11, 1408(DI)
	VMOVUPS Z12, 1536(DI)
	VMOVUPS Z13, 1664(DI)
	VMOVUPS Z14, 1792(DI)
	VMOVUPS Z15, 1920(DI)
	// rows 16–31
	LEAQ (SI)(BX*1), AX
	VMOVUPS (AX), Z0
	ADDQ DX, AX
	VMOVUPS (AX), Z1
	ADDQ DX, AX
	VMOVUPS (AX), Z2
	ADDQ DX, AX
	VMOVUPS (AX), Z3
	ADDQ DX, AX
	VMOVUPS (AX), Z4
	ADDQ DX, AX
	VMOVUPS (AX), Z5
	ADDQ DX, AX
	VMOVUPS (AX), Z6
	ADDQ DX, AX
	VMOVUPS (AX), Z7
	ADDQ DX, AX
	VMOVUPS (AX), Z8
	ADDQ DX, AX
	VMOVUPS (AX), Z9
	ADDQ DX, AX
	VMOVUPS (AX), Z10
	ADDQ DX, AX
	VMOVUPS (AX), Z11
	ADDQ DX, AX
	VMOVUPS (AX), Z12
	ADDQ DX, AX
	VMOVUPS (AX), Z13
	ADDQ DX, AX
	VMOVUPS (AX), Z14
	ADDQ DX, AX
	VMOVUPS (AX), Z15
	TRANSPOSE16
	VMOVUPS Z0, 64(DI)
	VMOVUPS Z1, 192(DI)
	VMOVUPS Z2, 320(DI)
	VMOVUPS Z3, 448(DI)
	VMOVUPS Z4, 576(DI)
	VMOVUPS Z5, 704(DI)
	VMOVUPS Z6, 832(DI)
	VMOVUPS Z7, 960(DI)
	VMOVUPS Z8, 1088(DI)
	VMOVUPS Z9, 1216(DI)
	VMOVUPS Z10, 1344(DI)
	VMOVUPS Z11, 1472(DI)
	VMOVUPS Z12, 1600(DI)
	VMOVUPS Z13, 1728(DI)
	VMOVUPS Z14, 1856(DI)
	VMOVUPS Z15, 1984(DI)
	ADDQ $64, SI
	ADDQ $2048, DI
	DECQ CX
	JNZ  loop
done:
	VZEROUPPER
	RET

// func pack32BF16AVX512(dst *float32, src *uint16, ld, kc int)
TEXT ·pack32BF16AVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), DX
	SHLQ $1, DX
	MOVQ kc+24(FP), CX
	MOVQ DX, BX
	SHLQ $4, BX // 16 rows
	SHRQ $4, CX
	JZ   done
loop:
	// rows 0–15
	MOVQ SI, AX
	VPMOVZXWD (AX), Z0
	VPSLLD $16, Z0, Z0
	ADDQ DX, AX
	VPMOVZXWD (AX), Z1
	VPSLLD $16, Z1, Z1
	ADDQ DX, AX
	VPMOVZXWD (AX), Z2
	VPSLLD $16, Z2, Z2
	ADDQ DX, AX
	VPMOVZXWD (AX), Z3
	VPSLLD $16, Z3, Z3
	ADDQ DX, AX
	VPMOVZXWD (AX), Z4
	VPSLLD $16, Z4, Z4
	ADDQ DX, AX
	VPMOVZXWD (AX), Z5
	VPSLLD $16, Z5, Z5
	ADDQ DX, AX
	VPMOVZXWD (AX), Z6
	VPSLLD $16, Z6, Z6
	ADDQ DX, AX
	VPMOVZXWD (AX), Z7
	VPSLLD $16, Z7, Z7
	ADDQ DX, AX
	VPMOVZXWD (AX), Z8
	VPSLLD $16, Z8, Z8
	ADDQ DX, AX
	VPMOVZXWD (AX), Z9
	VPSLLD $16, Z9, Z9
	ADDQ DX, AX
	VPMOVZXWD (AX), Z10
	VPSLLD $16, Z10, Z10
	ADDQ DX, AX
	VPMOVZXWD (AX), Z11
	VPSLLD $16, Z11, Z11
	ADDQ DX, AX
	VPMOVZXWD (AX), Z12
	VPSLLD $16, Z12, Z12
	ADDQ DX, AX
	VPMOVZXWD (AX), Z13
	VPSLLD $16, Z13, Z13
	ADDQ DX, AX
	VPMOVZXWD (AX), Z14
	VPSLLD $16, Z14, Z14
	ADDQ DX, AX
	VPMOVZXWD (AX), Z15
	VPSLLD $16, Z15, Z15
	TRANSPOSE16
	VMOVUPS Z0, 0(DI)
	VMOVUPS Z1, 128(DI)
	VMOVUPS Z2, 256(DI)
	VMOVUPS Z3, 384(DI)
	VMOVUPS Z4, 512(DI)
	VMOVUPS Z5, 640(DI)
	VMOVUPS Z6, 768(DI)
	VMOVUPS Z7, 896(DI)
	VMOVUPS Z8, 1024(DI)
	VMOVUPS Z9, 1152(DI)
	VMOVUPS Z10, 1280(DI)
	VMOVUPS Z11, 1408(DI)
	VMOVUPS Z12, 1536(DI)
	VMOVUPS Z13, 1664(DI)
	VMOVUPS Z14, 1792(DI)
	VMOVUPS Z15, 1920(DI)
	// rows 16–31
	LEAQ (SI)(BX*1), AX
	VPMOVZXWD (AX), Z0
	VPSLLD $16, Z0, Z0
	ADDQ DX, AX
	VPMOVZXWD (AX), Z1
	VPSLLD $16, Z1, Z1
	ADDQ DX, AX
	VPMOVZXWD (AX), Z2
	VPSLLD $16, Z2, Z2
	ADDQ DX, AX
	VPMOVZXWD (AX), Z3
	VPSLLD $16, Z3, Z3
	ADDQ DX, AX
	VPMOVZXWD (AX), Z4
	VPSLLD $16, Z4, Z4
	ADDQ DX, AX
	VPMOVZXWD (AX), Z5
	VPSLLD $16, Z5, Z5
	ADDQ DX, AX
	VPMOVZXWD (AX), Z6
	VPSLLD $16, Z6, Z6
	ADDQ DX, AX
	VPMOVZXWD (AX), Z7
	VPSLLD $16, Z7, Z7
	ADDQ DX, AX
	VPMOVZXWD (AX), Z8
	VPSLLD $16, Z8, Z8
	ADDQ DX, AX
	VPMOVZXWD (AX), Z9
	VPSLLD $16, Z9, Z9
	ADDQ DX, AX
	VPMOVZXWD (AX), Z10
	VPSLLD $16, Z10, Z10
	ADDQ DX, AX
	VPMOVZXWD (AX), Z11
	VPSLLD $16, Z11, Z11
	ADDQ DX, AX
	VPMOVZXWD (AX), Z12
	VPSLLD $16, Z12, Z12
	ADDQ DX, AX
	VPMOVZXWD (AX), Z13
	VPSLLD $16, Z13, Z13
	ADDQ DX, AX
	VPMOVZXWD (AX), Z14
	VPSLLD $16, Z14, Z14
	ADDQ DX, AX
	VPMOVZXWD (AX), Z15
	VPSLLD $16, Z15, Z15
	TRANSPOSE16
	VMOVUPS Z0, 64(DI)
	VMOVUPS Z1, 192(DI)
	VMOVUPS Z2, 320(DI)
	VMOVUPS Z3, 448(DI)
	VMOVUPS Z4, 576(DI)
	VMOVUPS Z5, 704(DI)
	VMOVUPS Z6, 832(DI)
	VMOVUPS Z7, 960(DI)
	VMOVUPS Z8, 1088(DI)
	VMOVUPS Z9, 1216(DI)
	VMOVUPS Z10, 1344(DI)
	VMOVUPS Z11, 1472(DI)
	VMOVUPS Z12, 1600(DI)
	VMOVUPS Z13, 1728(DI)
	VMOVUPS Z14, 1856(DI)
	VMOVUPS Z15, 1984(DI)
	ADDQ $32, SI
	ADDQ $2048, DI
	DECQ CX
	JNZ  loop
done:
	VZEROUPPER
	RET

// func pack32F16AVX512(dst *float32, src *uint16, ld, kc int)
TEXT ·pack32F16AVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), DX
	SHLQ $1, DX
	MOVQ kc+24(FP), CX
	MOVQ DX, BX
	SHLQ $4, BX // 16 rows
	SHRQ $4, CX
	JZ   done
loop:
	// rows 0–15
	MOVQ SI, AX
	VCVTPH2PS (AX), Z0
	ADDQ DX, AX
	VCVTPH2PS (AX), Z1
	ADDQ DX, AX
	VCVTPH2PS (AX), Z2
	ADDQ DX, AX
	VCVTPH2PS (AX), Z3
	ADDQ DX, AX
	VCVTPH2PS (AX), Z4
	ADDQ DX, AX
	VCVTPH2PS (AX), Z5
	ADDQ DX, AX
	VCVTPH2PS (AX), Z6
	ADDQ DX, AX
	VCVTPH2PS (AX), Z7
	ADDQ DX, AX
	VCVTPH2PS (AX), Z8
	ADDQ DX, AX
	VCVTPH2PS (AX), Z9
	ADDQ DX, AX
	VCVTPH2PS (AX), Z10
	ADDQ DX, AX
	VCVTPH2PS (AX), Z11
	ADDQ DX, AX
	VCVTPH2PS (AX), Z12
	ADDQ DX, AX
	VCVTPH2PS (AX), Z13
	ADDQ DX, AX
	VCVTPH2PS (AX), Z14
	ADDQ DX, AX
	VCVTPH2PS (AX), Z15
	TRANSPOSE16
	VMOVUPS Z0, 0(DI)
	VMOVUPS Z1, 128(DI)
	VMOVUPS Z2, 256(DI)
	VMOVUPS Z3, 384(DI)
	VMOVUPS Z4, 512(DI)
	VMOVUPS Z5, 640(DI)
	VMOVUPS Z6, 768(DI)
	VMOVUPS Z7, 896(DI)
	VMOVUPS Z8, 1024(DI)
	VMOVUPS Z9, 1152(DI)
	VMOVUPS Z10, 1280(DI)
	VMOVUPS Z11, 1408(DI)
	VMOVUPS Z12, 1536(DI)
	VMOVUPS Z13, 1664(DI)
	VMOVUPS Z14, 1792(DI)
	VMOVUPS Z15, 1920(DI)
	// rows 16–31
	LEAQ (SI)(BX*1), AX
	VCVTPH2PS (AX), Z0
	ADDQ DX, AX
	VCVTPH2PS (AX), Z1
	ADDQ DX, AX
	VCVTPH2PS (AX), Z2
	ADDQ DX, AX
	VCVTPH2PS (AX), Z3
	ADDQ DX, AX
	VCVTPH2PS (AX), Z4
	ADDQ DX, AX
	VCVTPH2PS (AX), Z5
	ADDQ DX, AX
	VCVTPH2PS (AX), Z6
	ADDQ DX, AX
	VCVTPH2PS (AX), Z7
	ADDQ DX, AX
	VCVTPH2PS (AX), Z8
	ADDQ DX, AX
	VCVTPH2PS (AX), Z9
	ADDQ DX, AX
	VCVTPH2PS (AX), Z10
	ADDQ DX, AX
	VCVTPH2PS (AX), Z11
	ADDQ DX, AX
	VCVTPH2PS (AX), Z12
	ADDQ DX, AX
	VCVTPH2PS (AX), Z13
	ADDQ DX, AX
	VCVTPH2PS (AX), Z14
	ADDQ DX, AX
	VCVTPH2PS (AX), Z15
	TRANSPOSE16
	VMOVUPS Z0, 64(DI)
	VMOVUPS Z1, 192(DI)
	VMOVUPS Z2, 320(DI)
	VMOVUPS Z3, 448(DI)
	VMOVUPS Z4, 576(DI)
	VMOVUPS Z5, 704(DI)
	VMOVUPS Z6, 832(DI)
	VMOVUPS Z7, 960(DI)
	VMOVUPS Z8, 1088(DI)
	VMOVUPS Z9, 1216(DI)
	VMOVUPS Z10, 1344(DI)
	VMOVUPS Z11, 1472(DI)
	VMOVUPS Z12, 1600(DI)
	VMOVUPS Z13, 1728(DI)
	VMOVUPS Z14, 1856(DI)
	VMOVUPS Z15, 1984(DI)
	ADDQ $32, SI
	ADDQ $2048, DI
	DECQ CX
	JNZ  loop
done:
	VZEROUPPER
	RET

// func pack32I8AVX512(dst *float32, src *int8, ld, kc int, scale *float32)
TEXT ·pack32I8AVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), DX
	MOVQ kc+24(FP), CX
	MOVQ DX, BX
	SHLQ $4, BX // 16 rows
	MOVQ scale+32(FP), R10
	SHRQ $4, CX
	JZ   done
loop:
	// rows 0–15
	MOVQ SI, AX
	VPMOVSXBD (AX), Z0
	VCVTDQ2PS Z0, Z0
	VMULPS.BCST 0(R10), Z0, Z0
	ADDQ DX, AX
	VPMOVSXBD (AX), Z1
	VCVTDQ2PS Z1, Z1
	VMULPS.BCST 4(R10), Z1, Z1
	ADDQ DX, AX
	VPMOVSXBD (AX), Z2
	VCVTDQ2PS Z2, Z2
	VMULPS.BCST 8(R10), Z2, Z2
	ADDQ DX, AX
	VPMOVSXBD (AX), Z3
	VCVTDQ2PS Z3, Z3
	VMULPS.BCST 12(R10), Z3, Z3
	ADDQ DX, AX
	VPMOVSXBD (AX), Z4
	VCVTDQ2PS Z4, Z4
	VMULPS.BCST 16(R10), Z4, Z4
	ADDQ DX, AX
	VPMOVSXBD (AX), Z5
	VCVTDQ2PS Z5, Z5
	VMULPS.BCST 20(R10), Z5, Z5
	ADDQ DX, AX
	VPMOVSXBD (AX), Z6
	VCVTDQ2PS Z6, Z6
	VMULPS.BCST 24(R10), Z6, Z6
	ADDQ DX, AX
	VPMOVSXBD (AX), Z7
	VCVTDQ2PS Z7, Z7
	VMULPS.BCST 28(R10), Z7, Z7
	ADDQ DX, AX
	VPMOVSXBD (AX), Z8
	VCVTDQ2PS Z8, Z8
	VMULPS.BCST 32(R10), Z8, Z8
	ADDQ DX, AX
	VPMOVSXBD (AX), Z9
	VCVTDQ2PS Z9, Z9
	VMULPS.BCST 36(R10), Z9, Z9
	ADDQ DX, AX
	VPMOVSXBD (AX), Z10
	VCVTDQ2PS Z10, Z10
	VMULPS.BCST 40(R10), Z10, Z10
	ADDQ DX, AX
	VPMOVSXBD (AX), Z11
	VCVTDQ2PS Z11, Z11
	VMULPS.BCST 44(R10), Z11, Z11
	ADDQ DX, AX
	VPMOVSXBD (AX), Z12
	VCVTDQ2PS Z12, Z12
	VMULPS.BCST 48(R10), Z12, Z12
	ADDQ DX, AX
	VPMOVSXBD (AX), Z13
	VCVTDQ2PS Z13, Z13
	VMULPS.BCST 52(R10), Z13, Z13
	ADDQ DX, AX
	VPMOVSXBD (AX), Z14
	VCVTDQ2PS Z14, Z14
	VMULPS.BCST 56(R10), Z14, Z14
	ADDQ DX, AX
	VPMOVSXBD (AX), Z15
	VCVTDQ2PS Z15, Z15
	VMULPS.BCST 60(R10), Z15, Z15
	TRANSPOSE16
	VMOVUPS Z0, 0(DI)
	VMOVUPS Z1, 128(DI)
	VMOVUPS Z2, 256(DI)
	VMOVUPS Z3, 384(DI)
	VMOVUPS Z4, 512(DI)
	VMOVUPS Z5, 640(DI)
	VMOVUPS Z6, 768(DI)
	VMOVUPS Z7, 896(DI)
	VMOVUPS Z8, 1024(DI)
	VMOVUPS Z9, 1152(DI)
	VMOVUPS Z10, 1280(DI)
	VMOVUPS Z11, 1408(DI)
	VMOVUPS Z12, 1536(DI)
	VMOVUPS Z13, 1664(DI)
	VMOVUPS Z14, 1792(DI)
	VMOVUPS Z15, 1920(DI)
	// rows 16–31
	LEAQ (SI)(BX*1), AX
	VPMOVSXBD (AX), Z0
	VCVTDQ2PS Z0, Z0
	VMULPS.BCST 64(R10), Z0, Z0
	ADDQ DX, AX
	VPMOVSXBD (AX), Z1
	VCVTDQ2PS Z1, Z1
	VMULPS.BCST 68(R10), Z1, Z1
	ADDQ DX, AX
	VPMOVSXBD (AX), Z2
	VCVTDQ2PS Z2, Z2
	VMULPS.BCST 72(R10), Z2, Z2
	ADDQ DX, AX
	VPMOVSXBD (AX), Z3
	VCVTDQ2PS Z3, Z3
	VMULPS.BCST 76(R10), Z3, Z3
	ADDQ DX, AX
	VPMOVSXBD (AX), Z4
	VCVTDQ2PS Z4, Z4
	VMULPS.BCST 80(R10), Z4, Z4
	ADDQ DX, AX
	VPMOVSXBD (AX), Z5
	VCVTDQ2PS Z5, Z5
	VMULPS.BCST 84(R10), Z5, Z5
	ADDQ DX, AX
	VPMOVSXBD (AX), Z6
	VCVTDQ2PS Z6, Z6
	VMULPS.BCST 88(R10), Z6, Z6
	ADDQ DX, AX
	VPMOVSXBD (AX), Z7
	VCVTDQ2PS Z7, Z7
	VMULPS.BCST 92(R10), Z7, Z7
	ADDQ DX, AX
	VPMOVSXBD (AX), Z8
	VCVTDQ2PS Z8, Z8
	VMULPS.BCST 96(R10), Z8, Z8
	ADDQ DX, AX
	VPMOVSXBD (AX), Z9
	VCVTDQ2PS Z9, Z9
	VMULPS.BCST 100(R10), Z9, Z9
	ADDQ DX, AX
	VPMOVSXBD (AX), Z10
	VCVTDQ2PS Z10, Z10
	VMULPS.BCST 104(R10), Z10, Z10
	ADDQ DX, AX
	VPMOVSXBD (AX), Z11
	VCVTDQ2PS Z11, Z11
	VMULPS.BCST 108(R10), Z11, Z11
	ADDQ DX, AX
	VPMOVSXBD (AX), Z12
	VCVTDQ2PS Z12, Z12
	VMULPS.BCST 112(R10), Z12, Z12
	ADDQ DX, AX
	VPMOVSXBD (AX), Z13
	VCVTDQ2PS Z13, Z13
	VMULPS.BCST 116(R10), Z13, Z13
	ADDQ DX, AX
	VPMOVSXBD (AX), Z14
	VCVTDQ2PS Z14, Z14
	VMULPS.BCST 120(R10), Z14, Z14
	ADDQ DX, AX
	VPMOVSXBD (AX), Z15
	VCVTDQ2PS Z15, Z15
	VMULPS.BCST 124(R10), Z15, Z15
	TRANSPOSE16
	VMOVUPS Z0, 64(DI)
	VMOVUPS Z1, 192(DI)
	VMOVUPS Z2, 320(DI)
	VMOVUPS Z3, 448(DI)
	VMOVUPS Z4, 576(DI)
	VMOVUPS Z5, 704(DI)
	VMOVUPS Z6, 832(DI)
	VMOVUPS Z7, 960(DI)
	VMOVUPS Z8, 1088(DI)
	VMOVUPS Z9, 1216(DI)
	VMOVUPS Z10, 1344(DI)
	VMOVUPS Z11, 1472(DI)
	VMOVUPS Z12, 1600(DI)
	VMOVUPS Z13, 1728(DI)
	VMOVUPS Z14, 1856(DI)
	VMOVUPS Z15, 1984(DI)
	ADDQ $16, SI
	ADDQ $2048, DI
	DECQ CX
	JNZ  loop
done:
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

// func prefetchRows(p unsafe.Pointer, stride, rows, bytes int)
TEXT ·prefetchRows(SB), NOSPLIT, $0-32
	MOVQ p+0(FP), SI
	MOVQ stride+8(FP), BX
	MOVQ rows+16(FP), CX
	MOVQ bytes+24(FP), DX
	TESTQ CX, CX
	JLE  pf_done
pf_row:
	MOVQ SI, DI
	MOVQ DX, AX
pf_line:
	PREFETCHT1 (DI)
	ADDQ $64, DI
	SUBQ $64, AX
	JG   pf_line
	ADDQ BX, SI
	DECQ CX
	JNZ  pf_row
pf_done:
	RET
