// AVX2+FMA kernels, for x86-64 CPUs without AVX-512: the same contracts
// as the AVX-512 ones in kernels_amd64.s over 8-wide ymm vectors and 16
// registers. There are no opmasks, so lengths here are multiples of 8 and
// the Go wrappers in kernels_amd64.go finish ragged ends.

#include "textflag.h"

// zeros stands in for a nil bias: 16 float32 zeros.
DATA zeros<>+0(SB)/8, $0
DATA zeros<>+8(SB)/8, $0
DATA zeros<>+16(SB)/8, $0
DATA zeros<>+24(SB)/8, $0
DATA zeros<>+32(SB)/8, $0
DATA zeros<>+40(SB)/8, $0
DATA zeros<>+48(SB)/8, $0
DATA zeros<>+56(SB)/8, $0
GLOBL zeros<>(SB), RODATA|NOPTR, $64

// ---------------------------------------------------------------------------
// func dotRows<T>AVX2(out *float32, x *float32, w *<T>, ldw, k, rows int, [scale *float32,] bias *float32)
//
// One input row against rows consecutive weight rows read front to back;
// k is a multiple of 8. Row pointer SI (next row R8), x AX; four
// accumulators Y0–Y3 over 32 columns an iteration.

// func dotRowsF32AVX2(out *float32, x *float32, w *float32, ldw, k, rows int, bias *float32)
TEXT ·dotRowsF32AVX2(SB), NOSPLIT, $0-56
	MOVQ out+0(FP), DI
	MOVQ x+8(FP), BX
	MOVQ w+16(FP), R8
	MOVQ ldw+24(FP), DX
	SHLQ $2, DX
	MOVQ rows+40(FP), R9
	MOVQ bias+48(FP), R10
	MOVQ $4, R12 // bias step
	TESTQ R10, R10
	JNZ  row
	LEAQ zeros<>(SB), R10
	XORQ R12, R12
row:
	MOVQ R8, SI
	ADDQ DX, R8
	MOVQ BX, AX
	MOVQ k+32(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	CMPQ CX, $32
	JLT  step8
step32:
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS (AX), Y4, Y0
	VFMADD231PS 32(AX), Y5, Y1
	VFMADD231PS 64(AX), Y6, Y2
	VFMADD231PS 96(AX), Y7, Y3
	ADDQ $128, SI
	ADDQ $128, AX
	SUBQ $32, CX
	CMPQ CX, $32
	JGE  step32
step8:
	CMPQ CX, $8
	JLT  sum
	VMOVUPS (SI), Y4
	VFMADD231PS (AX), Y4, Y0
	ADDQ $32, SI
	ADDQ $32, AX
	SUBQ $8, CX
	JMP  step8
sum:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
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

// func dotRowsBF16AVX2(out *float32, x *float32, w *uint16, ldw, k, rows int, bias *float32)
TEXT ·dotRowsBF16AVX2(SB), NOSPLIT, $0-56
	MOVQ out+0(FP), DI
	MOVQ x+8(FP), BX
	MOVQ w+16(FP), R8
	MOVQ ldw+24(FP), DX
	SHLQ $1, DX
	MOVQ rows+40(FP), R9
	MOVQ bias+48(FP), R10
	MOVQ $4, R12 // bias step
	TESTQ R10, R10
	JNZ  row
	LEAQ zeros<>(SB), R10
	XORQ R12, R12
row:
	MOVQ R8, SI
	ADDQ DX, R8
	MOVQ BX, AX
	MOVQ k+32(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	CMPQ CX, $32
	JLT  step8
step32:
	VPMOVZXWD (SI), Y4
	VPSLLD $16, Y4, Y4
	VPMOVZXWD 16(SI), Y5
	VPSLLD $16, Y5, Y5
	VPMOVZXWD 32(SI), Y6
	VPSLLD $16, Y6, Y6
	VPMOVZXWD 48(SI), Y7
	VPSLLD $16, Y7, Y7
	VFMADD231PS (AX), Y4, Y0
	VFMADD231PS 32(AX), Y5, Y1
	VFMADD231PS 64(AX), Y6, Y2
	VFMADD231PS 96(AX), Y7, Y3
	ADDQ $64, SI
	ADDQ $128, AX
	SUBQ $32, CX
	CMPQ CX, $32
	JGE  step32
step8:
	CMPQ CX, $8
	JLT  sum
	VPMOVZXWD (SI), Y4
	VPSLLD $16, Y4, Y4
	VFMADD231PS (AX), Y4, Y0
	ADDQ $16, SI
	ADDQ $32, AX
	SUBQ $8, CX
	JMP  step8
sum:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
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

// func dotRowsF16AVX2(out *float32, x *float32, w *uint16, ldw, k, rows int, bias *float32)
TEXT ·dotRowsF16AVX2(SB), NOSPLIT, $0-56
	MOVQ out+0(FP), DI
	MOVQ x+8(FP), BX
	MOVQ w+16(FP), R8
	MOVQ ldw+24(FP), DX
	SHLQ $1, DX
	MOVQ rows+40(FP), R9
	MOVQ bias+48(FP), R10
	MOVQ $4, R12 // bias step
	TESTQ R10, R10
	JNZ  row
	LEAQ zeros<>(SB), R10
	XORQ R12, R12
row:
	MOVQ R8, SI
	ADDQ DX, R8
	MOVQ BX, AX
	MOVQ k+32(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	CMPQ CX, $32
	JLT  step8
step32:
	VCVTPH2PS (SI), Y4
	VCVTPH2PS 16(SI), Y5
	VCVTPH2PS 32(SI), Y6
	VCVTPH2PS 48(SI), Y7
	VFMADD231PS (AX), Y4, Y0
	VFMADD231PS 32(AX), Y5, Y1
	VFMADD231PS 64(AX), Y6, Y2
	VFMADD231PS 96(AX), Y7, Y3
	ADDQ $64, SI
	ADDQ $128, AX
	SUBQ $32, CX
	CMPQ CX, $32
	JGE  step32
step8:
	CMPQ CX, $8
	JLT  sum
	VCVTPH2PS (SI), Y4
	VFMADD231PS (AX), Y4, Y0
	ADDQ $16, SI
	ADDQ $32, AX
	SUBQ $8, CX
	JMP  step8
sum:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
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

// func dotRowsI8AVX2(out *float32, x *float32, w *int8, ldw, k, rows int, scale *float32, bias *float32)
TEXT ·dotRowsI8AVX2(SB), NOSPLIT, $0-64
	MOVQ out+0(FP), DI
	MOVQ x+8(FP), BX
	MOVQ w+16(FP), R8
	MOVQ ldw+24(FP), DX
	MOVQ rows+40(FP), R9
	MOVQ scale+48(FP), R11
	MOVQ bias+56(FP), R10
	MOVQ $4, R12 // bias step
	TESTQ R10, R10
	JNZ  row
	LEAQ zeros<>(SB), R10
	XORQ R12, R12
row:
	MOVQ R8, SI
	ADDQ DX, R8
	MOVQ BX, AX
	MOVQ k+32(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	CMPQ CX, $32
	JLT  step8
step32:
	VPMOVSXBD (SI), Y4
	VCVTDQ2PS Y4, Y4
	VPMOVSXBD 8(SI), Y5
	VCVTDQ2PS Y5, Y5
	VPMOVSXBD 16(SI), Y6
	VCVTDQ2PS Y6, Y6
	VPMOVSXBD 24(SI), Y7
	VCVTDQ2PS Y7, Y7
	VFMADD231PS (AX), Y4, Y0
	VFMADD231PS 32(AX), Y5, Y1
	VFMADD231PS 64(AX), Y6, Y2
	VFMADD231PS 96(AX), Y7, Y3
	ADDQ $32, SI
	ADDQ $128, AX
	SUBQ $32, CX
	CMPQ CX, $32
	JGE  step32
step8:
	CMPQ CX, $8
	JLT  sum
	VPMOVSXBD (SI), Y4
	VCVTDQ2PS Y4, Y4
	VFMADD231PS (AX), Y4, Y0
	ADDQ $8, SI
	ADDQ $32, AX
	SUBQ $8, CX
	JMP  step8
sum:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
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
// func dot4<T>AVX2(out *float32, ldo int, x *float32, ldx, m int, w *<T>, ldw, k int, [scale *float32,] bias *float32)
//
// Four weight rows (SI, +DX, +2·DX, +R11) against m ≤ 2 input rows (BX,
// +R8); k is a multiple of 8. acc[r][o] in Y(8+4r+o), weights Y4–Y7,
// inputs Y0, Y1. AX runs through the next block of four rows, front to
// back, to prefetch it.

// HSUM4 reduces four accumulators to X0 = [Σa0, Σa1, Σa2, Σa3].
#define HSUM4(a0, a1, a2, a3) \
	VHADDPS a1, a0, Y0; VHADDPS a3, a2, Y1; VHADDPS Y1, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; VADDPS X1, X0, X0

// func dot4F32AVX2(out *float32, ldo int, x *float32, ldx, m int, w *float32, ldw, k int, bias *float32)
TEXT ·dot4F32AVX2(SB), NOSPLIT, $0-72
	MOVQ out+0(FP), DI
	MOVQ ldo+8(FP), R13
	SHLQ $2, R13
	MOVQ x+16(FP), BX
	MOVQ ldx+24(FP), R8
	SHLQ $2, R8
	MOVQ m+32(FP), R9
	MOVQ w+40(FP), SI
	MOVQ ldw+48(FP), DX
	SHLQ $2, DX
	LEAQ (DX)(DX*2), R11
	MOVQ k+56(FP), CX
	LEAQ (SI)(DX*4), AX
	MOVQ bias+64(FP), R10
	TESTQ R10, R10
	JNZ  zero
	LEAQ zeros<>(SB), R10
zero:
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15
	CMPQ CX, $8
	JLT  sums
loop:
	VMOVUPS (SI), Y4
	VMOVUPS (SI)(DX*1), Y5
	VMOVUPS (SI)(DX*2), Y6
	VMOVUPS (SI)(R11*1), Y7
	VMOVUPS (BX), Y0
	VFMADD231PS Y4, Y0, Y8
	VFMADD231PS Y5, Y0, Y9
	VFMADD231PS Y6, Y0, Y10
	VFMADD231PS Y7, Y0, Y11
	CMPQ R9, $2
	JLT  next
	VMOVUPS (BX)(R8*1), Y1
	VFMADD231PS Y4, Y1, Y12
	VFMADD231PS Y5, Y1, Y13
	VFMADD231PS Y6, Y1, Y14
	VFMADD231PS Y7, Y1, Y15
next:
	PREFETCHT0 (AX)
	PREFETCHT0 64(AX)
	ADDQ $32, SI
	ADDQ $128, AX
	ADDQ $32, BX
	SUBQ $8, CX
	CMPQ CX, $8
	JGE  loop
sums:
	HSUM4(Y8, Y9, Y10, Y11)
	VADDPS (R10), X0, X0
	VMOVUPS X0, (DI)
	CMPQ R9, $2
	JLT  done
	HSUM4(Y12, Y13, Y14, Y15)
	VADDPS (R10), X0, X0
	VMOVUPS X0, (DI)(R13*1)
done:
	VZEROUPPER
	RET

// func dot4BF16AVX2(out *float32, ldo int, x *float32, ldx, m int, w *uint16, ldw, k int, bias *float32)
TEXT ·dot4BF16AVX2(SB), NOSPLIT, $0-72
	MOVQ out+0(FP), DI
	MOVQ ldo+8(FP), R13
	SHLQ $2, R13
	MOVQ x+16(FP), BX
	MOVQ ldx+24(FP), R8
	SHLQ $2, R8
	MOVQ m+32(FP), R9
	MOVQ w+40(FP), SI
	MOVQ ldw+48(FP), DX
	SHLQ $1, DX
	LEAQ (DX)(DX*2), R11
	MOVQ k+56(FP), CX
	LEAQ (SI)(DX*4), AX
	MOVQ bias+64(FP), R10
	TESTQ R10, R10
	JNZ  zero
	LEAQ zeros<>(SB), R10
zero:
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15
	CMPQ CX, $8
	JLT  sums
loop:
	VPMOVZXWD (SI), Y4
	VPSLLD $16, Y4, Y4
	VPMOVZXWD (SI)(DX*1), Y5
	VPSLLD $16, Y5, Y5
	VPMOVZXWD (SI)(DX*2), Y6
	VPSLLD $16, Y6, Y6
	VPMOVZXWD (SI)(R11*1), Y7
	VPSLLD $16, Y7, Y7
	VMOVUPS (BX), Y0
	VFMADD231PS Y4, Y0, Y8
	VFMADD231PS Y5, Y0, Y9
	VFMADD231PS Y6, Y0, Y10
	VFMADD231PS Y7, Y0, Y11
	CMPQ R9, $2
	JLT  next
	VMOVUPS (BX)(R8*1), Y1
	VFMADD231PS Y4, Y1, Y12
	VFMADD231PS Y5, Y1, Y13
	VFMADD231PS Y6, Y1, Y14
	VFMADD231PS Y7, Y1, Y15
next:
	PREFETCHT0 (AX)
	ADDQ $16, SI
	ADDQ $64, AX
	ADDQ $32, BX
	SUBQ $8, CX
	CMPQ CX, $8
	JGE  loop
sums:
	HSUM4(Y8, Y9, Y10, Y11)
	VADDPS (R10), X0, X0
	VMOVUPS X0, (DI)
	CMPQ R9, $2
	JLT  done
	HSUM4(Y12, Y13, Y14, Y15)
	VADDPS (R10), X0, X0
	VMOVUPS X0, (DI)(R13*1)
done:
	VZEROUPPER
	RET

// func dot4F16AVX2(out *float32, ldo int, x *float32, ldx, m int, w *uint16, ldw, k int, bias *float32)
TEXT ·dot4F16AVX2(SB), NOSPLIT, $0-72
	MOVQ out+0(FP), DI
	MOVQ ldo+8(FP), R13
	SHLQ $2, R13
	MOVQ x+16(FP), BX
	MOVQ ldx+24(FP), R8
	SHLQ $2, R8
	MOVQ m+32(FP), R9
	MOVQ w+40(FP), SI
	MOVQ ldw+48(FP), DX
	SHLQ $1, DX
	LEAQ (DX)(DX*2), R11
	MOVQ k+56(FP), CX
	LEAQ (SI)(DX*4), AX
	MOVQ bias+64(FP), R10
	TESTQ R10, R10
	JNZ  zero
	LEAQ zeros<>(SB), R10
zero:
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15
	CMPQ CX, $8
	JLT  sums
loop:
	VCVTPH2PS (SI), Y4
	VCVTPH2PS (SI)(DX*1), Y5
	VCVTPH2PS (SI)(DX*2), Y6
	VCVTPH2PS (SI)(R11*1), Y7
	VMOVUPS (BX), Y0
	VFMADD231PS Y4, Y0, Y8
	VFMADD231PS Y5, Y0, Y9
	VFMADD231PS Y6, Y0, Y10
	VFMADD231PS Y7, Y0, Y11
	CMPQ R9, $2
	JLT  next
	VMOVUPS (BX)(R8*1), Y1
	VFMADD231PS Y4, Y1, Y12
	VFMADD231PS Y5, Y1, Y13
	VFMADD231PS Y6, Y1, Y14
	VFMADD231PS Y7, Y1, Y15
next:
	PREFETCHT0 (AX)
	ADDQ $16, SI
	ADDQ $64, AX
	ADDQ $32, BX
	SUBQ $8, CX
	CMPQ CX, $8
	JGE  loop
sums:
	HSUM4(Y8, Y9, Y10, Y11)
	VADDPS (R10), X0, X0
	VMOVUPS X0, (DI)
	CMPQ R9, $2
	JLT  done
	HSUM4(Y12, Y13, Y14, Y15)
	VADDPS (R10), X0, X0
	VMOVUPS X0, (DI)(R13*1)
done:
	VZEROUPPER
	RET

// func dot4I8AVX2(out *float32, ldo int, x *float32, ldx, m int, w *int8, ldw, k int, scale *float32, bias *float32)
TEXT ·dot4I8AVX2(SB), NOSPLIT, $0-80
	MOVQ out+0(FP), DI
	MOVQ ldo+8(FP), R13
	SHLQ $2, R13
	MOVQ x+16(FP), BX
	MOVQ ldx+24(FP), R8
	SHLQ $2, R8
	MOVQ m+32(FP), R9
	MOVQ w+40(FP), SI
	MOVQ ldw+48(FP), DX
	LEAQ (DX)(DX*2), R11
	MOVQ k+56(FP), CX
	LEAQ (SI)(DX*4), AX
	MOVQ bias+72(FP), R10
	TESTQ R10, R10
	JNZ  zero
	LEAQ zeros<>(SB), R10
zero:
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15
	CMPQ CX, $8
	JLT  sums
loop:
	VPMOVSXBD (SI), Y4
	VCVTDQ2PS Y4, Y4
	VPMOVSXBD (SI)(DX*1), Y5
	VCVTDQ2PS Y5, Y5
	VPMOVSXBD (SI)(DX*2), Y6
	VCVTDQ2PS Y6, Y6
	VPMOVSXBD (SI)(R11*1), Y7
	VCVTDQ2PS Y7, Y7
	VMOVUPS (BX), Y0
	VFMADD231PS Y4, Y0, Y8
	VFMADD231PS Y5, Y0, Y9
	VFMADD231PS Y6, Y0, Y10
	VFMADD231PS Y7, Y0, Y11
	CMPQ R9, $2
	JLT  next
	VMOVUPS (BX)(R8*1), Y1
	VFMADD231PS Y4, Y1, Y12
	VFMADD231PS Y5, Y1, Y13
	VFMADD231PS Y6, Y1, Y14
	VFMADD231PS Y7, Y1, Y15
next:
	PREFETCHT0 (AX)
	ADDQ $8, SI
	ADDQ $32, AX
	ADDQ $32, BX
	SUBQ $8, CX
	CMPQ CX, $8
	JGE  loop
sums:
	MOVQ scale+64(FP), DX
	HSUM4(Y8, Y9, Y10, Y11)
	VMULPS (DX), X0, X0
	VADDPS (R10), X0, X0
	VMOVUPS X0, (DI)
	CMPQ R9, $2
	JLT  done
	HSUM4(Y12, Y13, Y14, Y15)
	VMULPS (DX), X0, X0
	VADDPS (R10), X0, X0
	VMOVUPS X0, (DI)(R13*1)
done:
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// func tile6x16AVX2(c *float32, ldc int, a *float32, lda int, b *float32, kc int, bias *float32, add int)
//
// C[6×16] (+)= bias + A[6×kc]·B[kc×16]: A rows at R8 (rows 0–2) and R9
// (rows 3–5) plus 0, 1 or 2 strides R12; B a packed panel of 16 floats a
// step. acc row i in Y(4+2i), Y(5+2i); B in Y0, Y1; A broadcasts in Y2, Y3.

#define BC(src, t, c0, c1) VBROADCASTSS src, t; VFMADD231PS Y0, t, c0; VFMADD231PS Y1, t, c1

#define KSTEP(b0, b1, ao) \
	VMOVUPS b0(SI), Y0; VMOVUPS b1(SI), Y1; \
	BC(ao(R8), Y2, Y4, Y5); \
	BC(ao(R8)(R12*1), Y3, Y6, Y7); \
	BC(ao(R8)(R12*2), Y2, Y8, Y9); \
	BC(ao(R9), Y3, Y10, Y11); \
	BC(ao(R9)(R12*1), Y2, Y12, Y13); \
	BC(ao(R9)(R12*2), Y3, Y14, Y15)

#define CADD(addr, c0, c1) VADDPS addr, c0, c0; VADDPS 32 addr, c1, c1
#define CST(addr, c0, c1) VMOVUPS c0, addr; VMOVUPS c1, 32 addr

TEXT ·tile6x16AVX2(SB), NOSPLIT, $0-64
	MOVQ a+16(FP), R8
	MOVQ lda+24(FP), R12
	SHLQ $2, R12
	LEAQ (R12)(R12*2), AX
	LEAQ (R8)(AX*1), R9
	MOVQ b+32(FP), SI
	MOVQ kc+40(FP), CX
	MOVQ bias+48(FP), BX
	TESTQ BX, BX
	JNZ  init
	LEAQ zeros<>(SB), BX
init:
	VMOVUPS (BX), Y0
	VMOVUPS 32(BX), Y1
	VMOVAPS Y0, Y4
	VMOVAPS Y1, Y5
	VMOVAPS Y0, Y6
	VMOVAPS Y1, Y7
	VMOVAPS Y0, Y8
	VMOVAPS Y1, Y9
	VMOVAPS Y0, Y10
	VMOVAPS Y1, Y11
	VMOVAPS Y0, Y12
	VMOVAPS Y1, Y13
	VMOVAPS Y0, Y14
	VMOVAPS Y1, Y15
	CMPQ CX, $4
	JLT  one
four:
	KSTEP(0, 32, 0)
	KSTEP(64, 96, 4)
	KSTEP(128, 160, 8)
	KSTEP(192, 224, 12)
	ADDQ $256, SI
	ADDQ $16, R8
	ADDQ $16, R9
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  four
one:
	TESTQ CX, CX
	JZ   store
	KSTEP(0, 32, 0)
	ADDQ $64, SI
	ADDQ $4, R8
	ADDQ $4, R9
	DECQ CX
	JMP  one
store:
	MOVQ c+0(FP), R8
	MOVQ ldc+8(FP), R12
	SHLQ $2, R12
	LEAQ (R12)(R12*2), AX
	LEAQ (R8)(AX*1), R9
	MOVQ add+56(FP), AX
	TESTQ AX, AX
	JZ   put
	CADD((R8), Y4, Y5)
	CADD((R8)(R12*1), Y6, Y7)
	CADD((R8)(R12*2), Y8, Y9)
	CADD((R9), Y10, Y11)
	CADD((R9)(R12*1), Y12, Y13)
	CADD((R9)(R12*2), Y14, Y15)
put:
	CST((R8), Y4, Y5)
	CST((R8)(R12*1), Y6, Y7)
	CST((R8)(R12*2), Y8, Y9)
	CST((R9), Y10, Y11)
	CST((R9)(R12*1), Y12, Y13)
	CST((R9)(R12*2), Y14, Y15)
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// Widening conversions, 8 elements a step; n is a multiple of 8.

// func cvtBF16AVX2(dst *float32, src *uint16, n int)
TEXT ·cvtBF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   done
loop:
	VPMOVZXWD (SI), Y0
	VPSLLD $16, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  loop
done:
	VZEROUPPER
	RET

// func cvtF16AVX2(dst *float32, src *uint16, n int)
TEXT ·cvtF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   done
loop:
	VCVTPH2PS (SI), Y0
	VMOVUPS Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  loop
done:
	VZEROUPPER
	RET

// func cvtI8AVX2(dst *float32, src *int8, n int, scale float32)
TEXT ·cvtI8AVX2(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS scale+24(FP), Y1
	SHRQ $3, CX
	JZ   done
loop:
	VPMOVSXBD (SI), Y0
	VCVTDQ2PS Y0, Y0
	VMULPS Y1, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $8, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  loop
done:
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// Vector primitives; n is a multiple of 8 (and at least 8 for maxf).

// func dotAVX2(a, b *float32, n int) float32
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	CMPQ CX, $32
	JLT  step8
step32:
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	CMPQ CX, $32
	JGE  step32
step8:
	CMPQ CX, $8
	JLT  sum
	VMOVUPS (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  step8
sum:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func scaleAVX2(x *float32, n int, s float32)
TEXT ·scaleAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	VBROADCASTSS s+16(FP), Y0
	SHRQ $3, CX
	JZ   done
loop:
	VMULPS (DI), Y0, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, DI
	DECQ CX
	JNZ  loop
done:
	VZEROUPPER
	RET

// func maxfAVX2(x *float32, n int) float32
TEXT ·maxfAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS (SI), Y0
	ADDQ $32, SI
	SHRQ $3, CX
	DECQ CX
	JZ   reduce
loop:
	VMAXPS (SI), Y0, Y0
	ADDQ $32, SI
	DECQ CX
	JNZ  loop
reduce:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VSHUFPS $0x4e, X0, X0, X1
	VMAXPS X1, X0, X0
	VSHUFPS $0xb1, X0, X0, X1
	VMAXPS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+16(FP)
	RET

