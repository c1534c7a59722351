package gpt2

import (
	"math"
	"math/rand/v2"
	"testing"
)

// vecLengths cover empty, below one vector, around the 16- and 64-wide
// steps, and long.
var vecLengths = []int{0, 1, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 1000, 4099}

func TestVecMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	type impl struct {
		name  string
		dot   func(a, b []float32) float32
		scale func(x []float32, s float32)
		maxf  func(x []float32) float32
	}
	nonEmpty := func(f func([]float32) float32) func([]float32) float32 {
		return func(x []float32) float32 {
			if len(x) == 0 {
				return float32(math.Inf(-1))
			}
			return f(x)
		}
	}
	impls := []impl{
		{"dispatch", dot, scale, maxf},
		{"generic", dotGeneric, scaleGeneric, nonEmpty(maxfGeneric)},
	}
	if hasAVX512 {
		impls = append(impls, impl{"avx512", dotVecAVX512, scaleVecAVX512, nonEmpty(maxfVecAVX512)})
	}
	if hasAVX2 {
		impls = append(impls, impl{"avx2", dotVecAVX2, scaleVecAVX2, nonEmpty(maxfVecAVX2)})
	}
	for _, im := range impls {
		for _, n := range vecLengths {
			a, b := randVec(rng, n+1), randVec(rng, n+1)
			a, b = a[1:], b[1:] // unaligned
			var mag float64
			for i := range a {
				mag += math.Abs(float64(a[i] * b[i]))
			}
			if got, want := im.dot(a, b), dotRef(a, b); math.Abs(float64(got-want)) > 2e-6*math.Sqrt(float64(n+1))*mag {
				t.Errorf("%s dot n=%d = %g, want %g", im.name, n, got, want)
			}

			s1, s2 := append([]float32(nil), a...), append([]float32(nil), a...)
			im.scale(s1, -1.5)
			scaleRef(s2, -1.5)
			for i := range s1 {
				if s1[i] != s2[i] {
					t.Fatalf("%s scale n=%d: x[%d] = %g, want %g", im.name, n, i, s1[i], s2[i])
				}
			}

			neg := make([]float32, n) // all negative: padding lanes must not win
			for i := range neg {
				neg[i] = -1 - a[i]*a[i]
			}
			for _, x := range [][]float32{a, neg} {
				if got, want := im.maxf(x), maxfRef(x); got != want {
					t.Errorf("%s maxf n=%d = %g, want %g", im.name, n, got, want)
				}
			}
		}
	}
}

// TestLayerNormRowMatchesReference holds the vector layer norm against the
// float64 reference on widths around the 16 and 64 lanes of its loops,
// with a few large columns as GPT-2's residual stream has, and in place.
func TestLayerNormRowMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, n := range []int{16, 32, 48, 64, 80, 768, 1600, 17, 100} {
		x, w, b := randVec(rng, n), randVec(rng, n), randVec(rng, n)
		x[n/3] *= 300
		x[n-1] += 40
		want := make([]float32, n)
		layerNormRowGeneric(want, x, w, b, 1e-5)
		got := make([]float32, n)
		layerNormRow(got, x, w, b, 1e-5)
		inPlace := append([]float32(nil), x...)
		layerNormRow(inPlace, inPlace, w, b, 1e-5)
		for i := range want {
			tol := 1e-5 * (1 + math.Abs(float64(want[i])))
			if d := math.Abs(float64(got[i] - want[i])); !(d <= tol) {
				t.Errorf("n=%d: out[%d] = %g, want %g", n, i, got[i], want[i])
			}
			if inPlace[i] != got[i] {
				t.Errorf("n=%d: in place out[%d] = %g, not %g", n, i, inPlace[i], got[i])
			}
		}
	}
	t.Logf("vector layer norm: %v", hasAVX512)
}
