package gpt2

import "math"

// bf16ToF32 widens bfloat16 bits to float32 (exact).
func bf16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// f16ToF32 widens IEEE 754 half-precision bits to float32 (exact).
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f: // inf or NaN
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	default:
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	}
}

// bf16FromF32 narrows f to bfloat16 bits, rounding to nearest even. NaNs
// stay NaNs (quiet); overflow rounds to ±Inf as in IEEE arithmetic.
func bf16FromF32(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep sign and set the quiet bit
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// f16FromF32 narrows f to IEEE half-precision bits, rounding to nearest even,
// with subnormal results, overflow to ±Inf and NaNs kept quiet.
func f16FromF32(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	var h, rem, halfway uint32
	if e <= 0 { // subnormal half (or zero): shift the implicit bit in
		if e < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		h, rem, halfway = m>>shift, m&(1<<shift-1), 1<<(shift-1)
	} else {
		h, rem, halfway = uint32(e)<<10|mant>>13, mant&0x1fff, 0x1000
	}
	if rem > halfway || rem == halfway && h&1 == 1 {
		h++ // a carry into the exponent is the right rounding, up to Inf
	}
	return sign | uint16(h)
}
