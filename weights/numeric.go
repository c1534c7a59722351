package weights

import (
	"fmt"
	"math"
)

// HalfToFloat32 widens IEEE 754 half-precision bits to float32 (exact).
func HalfToFloat32(h uint16) float32 {
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
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	case exp == 0x1f: // inf or NaN
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// Float32ToHalf narrows f to IEEE 754 half-precision bits, rounding to
// nearest, ties to even. Values beyond the half range become ±Inf, values
// below half the smallest subnormal become ±0, and NaN stays a quiet NaN.
func Float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7e00 | uint16(mant>>13)
	}
	e := exp - 127 + 15 // biased half exponent
	switch {
	case e >= 0x1f:
		return sign | 0x7c00
	case e <= 0:
		// Half subnormal: value = q·2⁻²⁴ with q = m·2^(e-14), m the
		// 24-bit significand. Below 2⁻²⁵ everything rounds to zero.
		if e < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		q := m >> shift
		rem, half := m&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > half || (rem == half && q&1 == 1) {
			q++ // may carry into the smallest normal, which is correct
		}
		return sign | uint16(q)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, up to Inf, which is correct
	}
	return sign | uint16(h)
}

// BF16ToFloat32 widens bfloat16 bits to float32 (exact).
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBF16 narrows f to bfloat16 bits, rounding to nearest, ties to
// even; NaN stays a quiet NaN.
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// QuantizeRowI8 quantizes one output row symmetrically: scale is
// max|w|/127 and dst[i] = round(src[i]/scale) (ties to even), so that
// src[i] ≈ float32(dst[i])·scale within scale/2. An all-zero row has scale
// 0. Non-finite weights are an error.
func QuantizeRowI8(dst []int8, src []float32) (scale float32, err error) {
	var m float32
	for _, v := range src {
		m = max(m, float32(math.Abs(float64(v)))) // max propagates NaN
	}
	if math.IsNaN(float64(m)) || math.IsInf(float64(m), 0) {
		return 0, fmt.Errorf("non-finite weight %v cannot be quantized", m)
	}
	if m == 0 {
		clear(dst)
		return 0, nil
	}
	scale = m / 127
	s := float64(scale)
	for i, v := range src {
		q := math.RoundToEven(float64(v) / s)
		dst[i] = int8(max(-127, min(127, q)))
	}
	return scale, nil
}
