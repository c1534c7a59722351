// VDPBF16PS is not known to the Go assembler, so DPBF16 writes its EVEX
// encoding (EVEX.512.F3.0F38.W0 52 /r) for register operands given by
// number: Z(d) += Σ pairs Z(s1)·Z(s2) in each float32 lane. P0 holds the
// inverted high bits of d (R, R') and s2 (B, X) over map 0F38; P1 the
// inverted low four bits of s1 (vvvv) with W0 and prefix F3; P2 the
// 512-bit length and the inverted fifth bit of s1 (V'); ModRM d and s2.
// It is the assembler's encoding of VPDPBUSD (66 50) on the same
// registers with the prefix and opcode changed.
#define DPBF16(s2, s1, d) \
	BYTE $0x62; \
	BYTE $(0xF2 ^ (((d>>3)&1)<<7) ^ (((s2>>4)&1)<<6) ^ (((s2>>3)&1)<<5) ^ (((d>>4)&1)<<4)); \
	BYTE $(0x7E ^ ((s1&15)<<3)); \
	BYTE $(0x48 ^ (((s1>>4)&1)<<3)); \
	BYTE $0x52; \
	BYTE $(0xC0 | ((d&7)<<3) | (s2&7))
