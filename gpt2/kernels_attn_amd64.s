// Decode attention's score kernels (kernels_attn.go states the contract):
// a query q (D) against n keys, rows of D contiguous elements.
//
// func attnScores<T>AVX512(s *float32, q *float32, k *<T>, n, d int, scale float32)
//
// Sixteen keys at a time: key 4g+i at R(10+g) + i·stride (R8 = stride,
// R9 = 3·stride, in bytes), one zmm accumulator each (Z16–Z31), the
// query's 16 columns in Z0; every key row is read front to back. The 16
// sums are reduced into one zmm by a transposing add tree (REDUCE16) and
// stored with one write. A d%16 tail uses opmask K1 with zeroing loads so
// nothing reads past a row; the last n%16 keys go one at a time. The Go
// declarations are in kernels_attn_amd64.go.

#include "textflag.h"

// The loads of a key vector, widened to float32: full and masked (K1).
#define LD_F32(a, z) VMOVUPS a, z
#define LDM_F32(a, z) VMOVUPS.Z a, K1, z
#define LD_BF16(a, z) VPMOVZXWD a, z; VPSLLD $16, z, z
#define LDM_BF16(a, z) VPMOVZXWD.Z a, K1, z; VPSLLD $16, z, z
#define LD_F16(a, z) VCVTPH2PS a, z
#define LDM_F16(a, z) VCVTPH2PS.Z a, K1, z

// FMA16 accumulates q's vector (Z0) times the 16 keys' vectors.
#define FMA4(ld, p, a0, a1, a2, a3) \
	ld((p), Z1); VFMADD231PS Z1, Z0, a0; \
	ld((p)(R8*1), Z2); VFMADD231PS Z2, Z0, a1; \
	ld((p)(R8*2), Z3); VFMADD231PS Z3, Z0, a2; \
	ld((p)(R9*1), Z4); VFMADD231PS Z4, Z0, a3

#define FMA16(ld) \
	FMA4(ld, R10, Z16, Z17, Z18, Z19); \
	FMA4(ld, R11, Z20, Z21, Z22, Z23); \
	FMA4(ld, R12, Z24, Z25, Z26, Z27); \
	FMA4(ld, R13, Z28, Z29, Z30, Z31)

// REDUCE16 leaves in Z16 lane j the sum of the lanes of accumulator
// Z(16+j), using Z8 and Z9: pairs interleaved and added within 64-bit, then 128-bit
// groups, then across the four 128-bit lanes in two shuffling steps.
#define PAIR(a, b) VUNPCKLPS b, a, Z8; VUNPCKHPS b, a, Z9; VADDPS Z9, Z8, a
#define QUAD(a, b) VUNPCKLPD b, a, Z8; VUNPCKHPD b, a, Z9; VADDPS Z9, Z8, a
#define HALF(a, b) VSHUFF32X4 $0x88, b, a, Z8; VSHUFF32X4 $0xdd, b, a, Z9; VADDPS Z9, Z8, a
#define REDUCE16 \
	PAIR(Z16, Z17); PAIR(Z18, Z19); PAIR(Z20, Z21); PAIR(Z22, Z23); \
	PAIR(Z24, Z25); PAIR(Z26, Z27); PAIR(Z28, Z29); PAIR(Z30, Z31); \
	QUAD(Z16, Z18); QUAD(Z20, Z22); QUAD(Z24, Z26); QUAD(Z28, Z30); \
	HALF(Z16, Z20); HALF(Z24, Z28); \
	HALF(Z16, Z24)

#define ZERO16 \
	VPXORD Z16, Z16, Z16; VPXORD Z17, Z17, Z17; VPXORD Z18, Z18, Z18; VPXORD Z19, Z19, Z19; \
	VPXORD Z20, Z20, Z20; VPXORD Z21, Z21, Z21; VPXORD Z22, Z22, Z22; VPXORD Z23, Z23, Z23; \
	VPXORD Z24, Z24, Z24; VPXORD Z25, Z25, Z25; VPXORD Z26, Z26, Z26; VPXORD Z27, Z27, Z27; \
	VPXORD Z28, Z28, Z28; VPXORD Z29, Z29, Z29; VPXORD Z30, Z30, Z30; VPXORD Z31, Z31, Z31

// SCORES is the body of attnScores<T>AVX512 for element size esz bytes
// (shift sh) and loads ld / ldm. DI s, BX q, SI the next key group, DX
// keys left, CX full 16-column blocks of d, R14 the block counter, AX
// the query pointer.
#define SCORES(sh, esz, ld, ldm) \
	MOVQ s+0(FP), DI; \
	MOVQ q+8(FP), BX; \
	MOVQ k+16(FP), SI; \
	MOVQ n+24(FP), DX; \
	MOVQ d+32(FP), CX; \
	VBROADCASTSS scale+40(FP), Z15; \
	MOVQ CX, R8; \
	SHLQ $sh, R8; \
	LEAQ (R8)(R8*2), R9; \
	MOVQ CX, AX; \
	ANDQ $15, AX; \
	MOVQ CX, R14; \
	MOVQ AX, CX; \
	MOVQ $1, AX; \
	SHLQ CX, AX; \
	DECQ AX; \
	KMOVW AX, K1; \
	MOVQ R14, CX; \
	SHRQ $4, CX; \
group: \
	CMPQ DX, $16; \
	JLT  single; \
	ZERO16; \
	MOVQ SI, R10; \
	LEAQ (SI)(R8*4), R11; \
	LEAQ (R11)(R8*4), R12; \
	LEAQ (R12)(R8*4), R13; \
	MOVQ BX, AX; \
	MOVQ CX, R14; \
	TESTQ R14, R14; \
	JZ   gtail; \
gblock: \
	VMOVUPS (AX), Z0; \
	FMA16(ld); \
	ADDQ $64, AX; \
	ADDQ $(16*esz), R10; \
	ADDQ $(16*esz), R11; \
	ADDQ $(16*esz), R12; \
	ADDQ $(16*esz), R13; \
	DECQ R14; \
	JNZ  gblock; \
gtail: \
	KORTESTW K1, K1; \
	JZ   greduce; \
	VMOVUPS.Z (AX), K1, Z0; \
	FMA16(ldm); \
greduce: \
	REDUCE16; \
	VMULPS Z15, Z16, Z16; \
	VMOVUPS Z16, (DI); \
	ADDQ $64, DI; \
	LEAQ (SI)(R8*8), SI; \
	LEAQ (SI)(R8*8), SI; \
	SUBQ $16, DX; \
	JMP  group; \
single: \
	TESTQ DX, DX; \
	JZ   done; \
	VPXORD Z16, Z16, Z16; \
	MOVQ SI, R10; \
	MOVQ BX, AX; \
	MOVQ CX, R14; \
	TESTQ R14, R14; \
	JZ   stail; \
sblock: \
	VMOVUPS (AX), Z0; \
	ld((R10), Z1); \
	VFMADD231PS Z1, Z0, Z16; \
	ADDQ $64, AX; \
	ADDQ $(16*esz), R10; \
	DECQ R14; \
	JNZ  sblock; \
stail: \
	KORTESTW K1, K1; \
	JZ   sreduce; \
	VMOVUPS.Z (AX), K1, Z0; \
	ldm((R10), Z1); \
	VFMADD231PS Z1, Z0, Z16; \
sreduce: \
	VEXTRACTF64X4 $1, Z16, Y1; \
	VADDPS Y1, Y16, Y1; \
	VEXTRACTF128 $1, Y1, X2; \
	VADDPS X2, X1, X1; \
	VHADDPS X1, X1, X1; \
	VHADDPS X1, X1, X1; \
	VMULSS X15, X1, X1; \
	VMOVSS X1, (DI); \
	ADDQ $4, DI; \
	ADDQ R8, SI; \
	DECQ DX; \
	JMP  single; \
done: \
	VZEROUPPER; \
	RET

// The AVX2 kernels' macros.
#define FMA4Y(p, a0, a1, a2, a3) \
	VFMADD231PS (p), Y0, a0; \
	VFMADD231PS (p)(R8*1), Y0, a1; \
	VFMADD231PS (p)(R8*2), Y0, a2; \
	VFMADD231PS (p)(R9*1), Y0, a3
#define PAIRY(a, b) VUNPCKLPS b, a, Y1; VUNPCKHPS b, a, Y2; VADDPS Y2, Y1, a
#define QUADY(a, b) VUNPCKLPD b, a, Y1; VUNPCKHPD b, a, Y2; VADDPS Y2, Y1, a


// ---------------------------------------------------------------------------
// The D = 64 kernels (every GPT-2 size has 64-wide heads). The general
// kernels above step through sixteen key rows a 16-column block at a
// time, an order the hardware prefetcher does not follow out of cache:
// these read the keys strictly front to back, one whole key (four
// vectors) after the other, with the query held in Z0–Z3 (Y0–Y7 for
// AVX2) and every key at a constant displacement from SI.
//
// func attnScores64<T>AVX512(s *float32, q *float32, k *<T>, n int, scale float32)

#define K64_F32(off, acc) \
	VFMADD231PS (off)(SI), Z0, acc; \
	VFMADD231PS (off+64)(SI), Z1, acc; \
	VFMADD231PS (off+128)(SI), Z2, acc; \
	VFMADD231PS (off+192)(SI), Z3, acc
#define K64_BF16(off, acc) \
	VPMOVZXWD (off)(SI), Z4; VPSLLD $16, Z4, Z4; VFMADD231PS Z4, Z0, acc; \
	VPMOVZXWD (off+32)(SI), Z5; VPSLLD $16, Z5, Z5; VFMADD231PS Z5, Z1, acc; \
	VPMOVZXWD (off+64)(SI), Z6; VPSLLD $16, Z6, Z6; VFMADD231PS Z6, Z2, acc; \
	VPMOVZXWD (off+96)(SI), Z7; VPSLLD $16, Z7, Z7; VFMADD231PS Z7, Z3, acc
#define K64_F16(off, acc) \
	VCVTPH2PS (off)(SI), Z4; VFMADD231PS Z4, Z0, acc; \
	VCVTPH2PS (off+32)(SI), Z5; VFMADD231PS Z5, Z1, acc; \
	VCVTPH2PS (off+64)(SI), Z6; VFMADD231PS Z6, Z2, acc; \
	VCVTPH2PS (off+96)(SI), Z7; VFMADD231PS Z7, Z3, acc

// SCORES64 is the body for key size ks bytes (256 or 128) and key macro
// kk; fin16 and fin1 finish sixteen sums in Z16 and one in X8 before they
// are stored: scaled (the score kernels) or added to what s holds (the
// value kernels, which run the same loop over the rows of a block's Vᵀ).
#define SCALE16 VMULPS Z15, Z16, Z16
#define SCALE1 VMULSS X15, X8, X8
#define ADD16 VADDPS (DI), Z16, Z16
#define ADD1 VADDSS (DI), X8, X8
#define SCORES64(ks, kk, fin16, fin1) \
	MOVQ s+0(FP), DI; \
	MOVQ q+8(FP), BX; \
	MOVQ k+16(FP), SI; \
	MOVQ n+24(FP), DX; \
	VBROADCASTSS scale+32(FP), Z15; \
	VMOVUPS (BX), Z0; \
	VMOVUPS 64(BX), Z1; \
	VMOVUPS 128(BX), Z2; \
	VMOVUPS 192(BX), Z3; \
group64: \
	CMPQ DX, $16; \
	JLT  single64; \
	ZERO16; \
	kk(0*ks, Z16); kk(1*ks, Z17); kk(2*ks, Z18); kk(3*ks, Z19); \
	kk(4*ks, Z20); kk(5*ks, Z21); kk(6*ks, Z22); kk(7*ks, Z23); \
	kk(8*ks, Z24); kk(9*ks, Z25); kk(10*ks, Z26); kk(11*ks, Z27); \
	kk(12*ks, Z28); kk(13*ks, Z29); kk(14*ks, Z30); kk(15*ks, Z31); \
	REDUCE16; \
	fin16; \
	VMOVUPS Z16, (DI); \
	ADDQ $64, DI; \
	ADDQ $(16*ks), SI; \
	SUBQ $16, DX; \
	JMP  group64; \
single64: \
	TESTQ DX, DX; \
	JZ   done64; \
	VPXORD Z16, Z16, Z16; \
	kk(0, Z16); \
	VEXTRACTF64X4 $1, Z16, Y8; \
	VADDPS Y8, Y16, Y8; \
	VEXTRACTF128 $1, Y8, X9; \
	VADDPS X9, X8, X8; \
	VHADDPS X8, X8, X8; \
	VHADDPS X8, X8, X8; \
	fin1; \
	VMOVSS X8, (DI); \
	ADDQ $4, DI; \
	ADDQ $ks, SI; \
	DECQ DX; \
	JMP  single64; \
done64: \
	VZEROUPPER; \
	RET

// K64Y is K64_F32 for AVX2, the query in Y0–Y7.
#define K64Y(off, acc) \
	VFMADD231PS (off)(SI), Y0, acc; \
	VFMADD231PS (off+32)(SI), Y1, acc; \
	VFMADD231PS (off+64)(SI), Y2, acc; \
	VFMADD231PS (off+96)(SI), Y3, acc; \
	VFMADD231PS (off+128)(SI), Y4, acc; \
	VFMADD231PS (off+160)(SI), Y5, acc; \
	VFMADD231PS (off+192)(SI), Y6, acc; \
	VFMADD231PS (off+224)(SI), Y7, acc


// func attnScoresF32AVX512(s *float32, q *float32, k *float32, n, d int, scale float32)
TEXT ·attnScoresF32AVX512(SB), NOSPLIT, $0-44
	SCORES(2, 4, LD_F32, LDM_F32)

// func attnScoresBF16AVX512(s *float32, q *float32, k *uint16, n, d int, scale float32)
TEXT ·attnScoresBF16AVX512(SB), NOSPLIT, $0-44
	SCORES(1, 2, LD_BF16, LDM_BF16)

// func attnScoresF16AVX512(s *float32, q *float32, k *uint16, n, d int, scale float32)
TEXT ·attnScoresF16AVX512(SB), NOSPLIT, $0-44
	SCORES(1, 2, LD_F16, LDM_F16)

// func attnScoresF32AVX2(s *float32, q *float32, k *float32, n, d int, scale float32)
//
// The AVX2 kernel: eight keys at a time (accumulators Y8–Y15), d a
// multiple of 8 (the wrapper leaves other d to the generic kernel), the
// eight sums reduced into one ymm as in REDUCE16.
TEXT ·attnScoresF32AVX2(SB), NOSPLIT, $0-44
	MOVQ s+0(FP), DI
	MOVQ q+8(FP), BX
	MOVQ k+16(FP), SI
	MOVQ n+24(FP), DX
	MOVQ d+32(FP), CX
	VBROADCASTSS scale+40(FP), Y7
	MOVQ CX, R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R9
	SHRQ $3, CX
y_group:
	CMPQ DX, $8
	JLT  y_single
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15
	MOVQ SI, R10
	LEAQ (SI)(R8*4), R11
	MOVQ BX, AX
	MOVQ CX, R14
y_block:
	VMOVUPS (AX), Y0
	FMA4Y(R10, Y8, Y9, Y10, Y11)
	FMA4Y(R11, Y12, Y13, Y14, Y15)
	ADDQ $32, AX
	ADDQ $32, R10
	ADDQ $32, R11
	DECQ R14
	JNZ  y_block
	PAIRY(Y8, Y9)
	PAIRY(Y10, Y11)
	PAIRY(Y12, Y13)
	PAIRY(Y14, Y15)
	QUADY(Y8, Y10)
	QUADY(Y12, Y14)
	VPERM2F128 $0x20, Y12, Y8, Y1
	VPERM2F128 $0x31, Y12, Y8, Y2
	VADDPS Y2, Y1, Y1
	VMULPS Y7, Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, DI
	LEAQ (SI)(R8*8), SI
	SUBQ $8, DX
	JMP  y_group
y_single:
	TESTQ DX, DX
	JZ   y_done
	VXORPS Y8, Y8, Y8
	MOVQ SI, R10
	MOVQ BX, AX
	MOVQ CX, R14
y_sblock:
	VMOVUPS (AX), Y0
	VFMADD231PS (R10), Y0, Y8
	ADDQ $32, AX
	ADDQ $32, R10
	DECQ R14
	JNZ  y_sblock
	VEXTRACTF128 $1, Y8, X1
	VADDPS X1, X8, X1
	VHADDPS X1, X1, X1
	VHADDPS X1, X1, X1
	VMULSS X7, X1, X1
	VMOVSS X1, (DI)
	ADDQ $4, DI
	ADDQ R8, SI
	DECQ DX
	JMP  y_single
y_done:
	VZEROUPPER
	RET

// func attnScores64F32AVX512(s *float32, q *float32, k *float32, n int, scale float32)
TEXT ·attnScores64F32AVX512(SB), NOSPLIT, $0-36
	SCORES64(256, K64_F32, SCALE16, SCALE1)

// func attnScores64BF16AVX512(s *float32, q *float32, k *uint16, n int, scale float32)
TEXT ·attnScores64BF16AVX512(SB), NOSPLIT, $0-36
	SCORES64(128, K64_BF16, SCALE16, SCALE1)

// func attnScores64F16AVX512(s *float32, q *float32, k *uint16, n int, scale float32)
TEXT ·attnScores64F16AVX512(SB), NOSPLIT, $0-36
	SCORES64(128, K64_F16, SCALE16, SCALE1)

// The value kernels of a full block whose Vᵀ rows are 64 long (ldv = n =
// 64): each of the rows value rows is a "key" and the weights p the
// "query", the sums added to out.
//
// func attnValues64<T>AVX512(out *float32, p *float32, vt *<T>, rows int, scale float32)
// (scale unused: the frame matches the score kernels')

// func attnValues64F32AVX512(out *float32, p *float32, vt *float32, rows int, scale float32)
TEXT ·attnValues64F32AVX512(SB), NOSPLIT, $0-36
	SCORES64(256, K64_F32, ADD16, ADD1)

// func attnValues64BF16AVX512(out *float32, p *float32, vt *uint16, rows int, scale float32)
TEXT ·attnValues64BF16AVX512(SB), NOSPLIT, $0-36
	SCORES64(128, K64_BF16, ADD16, ADD1)

// func attnValues64F16AVX512(out *float32, p *float32, vt *uint16, rows int, scale float32)
TEXT ·attnValues64F16AVX512(SB), NOSPLIT, $0-36
	SCORES64(128, K64_F16, ADD16, ADD1)

// func attnScores64F32AVX2(s *float32, q *float32, k *float32, n int, scale float32)
TEXT ·attnScores64F32AVX2(SB), NOSPLIT, $0-36
	MOVQ s+0(FP), DI
	MOVQ q+8(FP), BX
	MOVQ k+16(FP), SI
	MOVQ n+24(FP), DX
	VMOVUPS (BX), Y0
	VMOVUPS 32(BX), Y1
	VMOVUPS 64(BX), Y2
	VMOVUPS 96(BX), Y3
	VMOVUPS 128(BX), Y4
	VMOVUPS 160(BX), Y5
	VMOVUPS 192(BX), Y6
	VMOVUPS 224(BX), Y7
y64_group:
	CMPQ DX, $8
	JLT  y64_single
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15
	K64Y(0, Y8)
	K64Y(256, Y9)
	K64Y(512, Y10)
	K64Y(768, Y11)
	K64Y(1024, Y12)
	K64Y(1280, Y13)
	K64Y(1536, Y14)
	K64Y(1792, Y15)
	// The eight sums into one ymm, as attnScoresF32AVX2 does, with the
	// query's registers kept: temporaries only from the accumulators.
	VUNPCKLPS Y9, Y8, Y0
	VUNPCKHPS Y9, Y8, Y9
	VADDPS Y9, Y0, Y8
	VUNPCKLPS Y11, Y10, Y0
	VUNPCKHPS Y11, Y10, Y11
	VADDPS Y11, Y0, Y10
	VUNPCKLPS Y13, Y12, Y0
	VUNPCKHPS Y13, Y12, Y13
	VADDPS Y13, Y0, Y12
	VUNPCKLPS Y15, Y14, Y0
	VUNPCKHPS Y15, Y14, Y15
	VADDPS Y15, Y0, Y14
	VUNPCKLPD Y10, Y8, Y0
	VUNPCKHPD Y10, Y8, Y10
	VADDPS Y10, Y0, Y8
	VUNPCKLPD Y14, Y12, Y0
	VUNPCKHPD Y14, Y12, Y14
	VADDPS Y14, Y0, Y12
	VPERM2F128 $0x20, Y12, Y8, Y0
	VPERM2F128 $0x31, Y12, Y8, Y9
	VADDPS Y9, Y0, Y9
	VBROADCASTSS scale+32(FP), Y10
	VMULPS Y10, Y9, Y9
	VMOVUPS Y9, (DI)
	VMOVUPS (BX), Y0 // the query's first vector again
	ADDQ $32, DI
	ADDQ $2048, SI
	SUBQ $8, DX
	JMP  y64_group
y64_single:
	TESTQ DX, DX
	JZ   y64_done
	VXORPS Y8, Y8, Y8
	K64Y(0, Y8)
	VEXTRACTF128 $1, Y8, X9
	VADDPS X9, X8, X9
	VHADDPS X9, X9, X9
	VHADDPS X9, X9, X9
	VMULSS scale+32(FP), X9, X9
	VMOVSS X9, (DI)
	ADDQ $4, DI
	ADDQ $256, SI
	DECQ DX
	JMP  y64_single
y64_done:
	VZEROUPPER
	RET
