package gpt2

func expShiftSumVec(x []float32, shift float32) float32 {
	if len(x) == 0 {
		return 0
	}
	return expShiftSumAVX512(&x[0], len(x), shift)
}

func geluVec(h []float32) {
	if len(h) > 0 {
		geluAVX512(&h[0], len(h))
	}
}

func layerNormVec(out, x, w, b []float32, eps float32) {
	n := len(x)
	_, _, _ = out[n-1], w[n-1], b[n-1]
	layerNormAVX512(&out[0], &x[0], &w[0], &b[0], n, eps)
}

//go:noescape
func layerNormAVX512(out, x, w, b *float32, n int, eps float32)

//go:noescape
func expShiftSumAVX512(x *float32, n int, shift float32) float32

//go:noescape
func geluAVX512(h *float32, n int)
