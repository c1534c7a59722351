package gpt2

// The exponentials of attention's softmax and the MLP's GELU, on 16 lanes
// where the CPU has AVX-512 (vec_exp_amd64.s) and with expf elsewhere.
// After the GEMM runs on bf16 and int8 dot products these are a fifth of
// a prompt's time in scalar code.

// expShiftSum sets x[i] = exp(x[i] - shift) and returns Σ x[i].
func expShiftSum(x []float32, shift float32) float32 {
	if hasAVX512 {
		return expShiftSumVec(x, shift)
	}
	return expShiftSumGeneric(x, shift)
}

func expShiftSumGeneric(x []float32, shift float32) float32 {
	var sum float32
	for j, v := range x {
		e := expf(v - shift)
		x[j] = e
		sum += e
	}
	return sum
}

// geluTanh applies gelu_new, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))),
// to h in place, with tanh(y) = 1 - 2/(exp(2y) + 1).
func geluTanh(h []float32) {
	if hasAVX512 {
		geluVec(h)
		return
	}
	geluGeneric(h)
}

// geluGeneric is geluTanh with expf.
func geluGeneric(h []float32) {
	const c = 0.7978845608028654 // sqrt(2/pi)
	for i, x := range h {
		y := 2 * c * (x + 0.044715*x*x*x)
		h[i] = x - x/(expf(y)+1)
	}
}
