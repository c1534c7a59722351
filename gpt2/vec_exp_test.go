package gpt2

import (
	"math"
	"testing"
)

// TestVectorExpMatchesScalar holds the vector softmax exponentials and
// GELU against expf and the float64 formula, over the whole range and
// past both ends, at ragged lengths.
func TestVectorExpMatchesScalar(t *testing.T) {
	var xs []float32
	for x := float32(-100); x < 100; x += 0.0137 {
		xs = append(xs, x)
	}
	xs = append(xs, 0, float32(math.Copysign(0, -1)), float32(math.Inf(-1)), -87.29, -87.31, 88.37, 88.38)
	for _, n := range []int{1, 15, 16, 17, 33, len(xs)} {
		x := append([]float32(nil), xs[len(xs)-n:]...)
		want := append([]float32(nil), x...)
		wantSum := expShiftSumGeneric(want, 1.5)
		gotSum := expShiftSum(x, 1.5)
		for i := range x {
			if d := math.Abs(float64(x[i] - want[i])); d > 4e-7*math.Abs(float64(want[i])) {
				t.Fatalf("n=%d: exp(%g - 1.5) = %g, want %g", n, xs[len(xs)-n+i], x[i], want[i])
			}
		}
		if d := math.Abs(float64(gotSum - wantSum)); d > 1e-5*math.Abs(float64(wantSum)) {
			t.Errorf("n=%d: sum %g, want %g", n, gotSum, wantSum)
		}
	}
	for _, n := range []int{1, 7, 16, 31, len(xs)} {
		h := append([]float32(nil), xs[:n]...)
		geluTanh(h)
		for i, x := range xs[:n] {
			v := float64(x)
			want := 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v)))
			if d := math.Abs(float64(h[i]) - want); d > 1e-6*math.Max(1, math.Abs(want)) {
				t.Fatalf("n=%d: gelu(%g) = %g, want %g", n, x, h[i], want)
			}
		}
	}
}
