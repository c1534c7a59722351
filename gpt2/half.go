package gpt2

import "gpt2d/weights"

// The kernels' scalar conversions between float32 and the 16-bit weight
// types are the weights package's: one definition of the rounding used
// when converting and when computing.

// bf16ToF32 widens bfloat16 bits to float32 (exact).
func bf16ToF32(h uint16) float32 { return weights.BF16ToFloat32(h) }

// f16ToF32 widens IEEE 754 half-precision bits to float32 (exact).
func f16ToF32(h uint16) float32 { return weights.HalfToFloat32(h) }

// bf16FromF32 narrows f to bfloat16 bits, rounding to nearest even.
func bf16FromF32(f float32) uint16 { return weights.Float32ToBF16(f) }

// f16FromF32 narrows f to IEEE half-precision bits, rounding to nearest
// even.
func f16FromF32(f float32) uint16 { return weights.Float32ToHalf(f) }
