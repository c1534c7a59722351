package gpt2

import (
	"gorgonia.org/tensor"
)

// WeightType is the element type of a Linear layer's weight matrix.
type WeightType int

// The weight element types the kernels understand.
const (
	WeightF32  WeightType = iota // float32
	WeightBF16                   // bfloat16 bits in uint16
	WeightF16                    // IEEE half bits in uint16
	WeightI8                     // int8 with one float32 scale per output row
)

// Linear is a dense layer y = x·Wᵀ + b.
//
// W is stored as Out rows of In contiguous elements ([Out, In], the
// transpose of Hugging Face's Conv1D [in, out]) so that a kernel streams
// each output's weights once. Exactly one of F32, U16 and I8 holds W,
// according to Type. For WeightI8, W[o][i] = I8[o*In+i] * Scale[o].
type Linear struct {
	In, Out int
	Type    WeightType
	F32     []float32
	U16     []uint16
	I8      []int8
	Scale   []float32
	Bias    []float32 // [Out], or nil for no bias

	// W is the weight matrix as a tensor view of the backing slice above.
	W *tensor.Dense
}

// newLinear builds a Linear over the given backing slice, wrapping it in a
// tensor without copying.
func newLinear(in, out int, typ WeightType, backing any, scale, bias []float32) *Linear {
	l := &Linear{In: in, Out: out, Type: typ, Scale: scale, Bias: bias}
	switch b := backing.(type) {
	case []float32:
		l.F32 = b
	case []uint16:
		l.U16 = b
	case []int8:
		l.I8 = b
	default:
		panic("gpt2: unsupported linear backing type")
	}
	l.W = tensor.New(tensor.WithShape(out, in), tensor.WithBacking(backing))
	return l
}

// row returns weight row o as float32 values in dst (len In).
func (l *Linear) row(dst []float32, o int) {
	off := o * l.In
	switch l.Type {
	case WeightF32:
		copy(dst, l.F32[off:off+l.In])
	case WeightBF16:
		for i := range dst {
			dst[i] = bf16ToF32(l.U16[off+i])
		}
	case WeightF16:
		for i := range dst {
			dst[i] = f16ToF32(l.U16[off+i])
		}
	case WeightI8:
		s := l.Scale[o]
		for i := range dst {
			dst[i] = float32(l.I8[off+i]) * s
		}
	}
}

// linearRef is the naive, obviously-correct kernel the fast ones are held
// against: out is (M, Out), x is (M, In), both row-major.
func linearRef(out, x []float32, m int, l *Linear) {
	w := make([]float32, l.In)
	for o := 0; o < l.Out; o++ {
		l.row(w, o)
		for r := 0; r < m; r++ {
			xr := x[r*l.In : (r+1)*l.In]
			var sum float32
			for i, wv := range w {
				sum += xr[i] * wv
			}
			if l.Bias != nil {
				sum += l.Bias[o]
			}
			out[r*l.Out+o] = sum
		}
	}
}
