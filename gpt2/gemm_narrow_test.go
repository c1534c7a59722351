package gpt2

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"gpt2d/weights"
)

// narrowGenericKernels runs the narrow GEMM's drivers on the pure-Go
// tiles, so packing, padding and blocking are checked on any machine.
var narrowGenericKernels = func() *kernels {
	k := *genericKernels
	k.name = "generic+narrow"
	k.tileBF16 = tileBF16Generic(k.mr, k.nr)
	k.tileI8 = tileI8Generic(k.mr, k.nr)
	return &k
}()

// withoutNarrow returns k without its narrow GEMM: bf16 and int8 weights
// are widened to float32 for the GEMM as on CPUs without the dot products.
func withoutNarrow(k *kernels) *kernels {
	w := *k
	w.tileBF16, w.tileI8 = nil, nil
	return &w
}

// inputRounding is how ks rounds the input rows of m rows of l: the one
// thing linearWant's reference depends on the kernel set for.
func inputRounding(ks *kernels, m int, l *linear) narrowKind {
	switch {
	case ks.inputBF16(m, l):
		return narrowBF16
	case ks.narrowFor(m, l) == narrowI8:
		return narrowI8
	}
	return narrowNone
}

// linearWant returns what ks computes for x (m, l.In) exactly, up to
// float32 summation order, and the input it effectively multiplies: x
// itself, x rounded to bf16, or x quantised to int8 and scaled back.
func linearWant(ks *kernels, x []float32, m int, l *linear) (want, xin []float32) {
	want = make([]float32, m*l.Out)
	switch inputRounding(ks, m, l) {
	case narrowBF16:
		xin = make([]float32, len(x))
		for i, v := range x {
			xin[i] = bf16ToF32(bf16FromF32(v))
		}
		linearRef(want, xin, m, bf16Weights(l))
	case narrowI8:
		xin = linearI8Ref(want, x, m, l)
	default:
		linearRef(want, x, m, l)
		xin = x
	}
	return want, xin
}

// bf16Weights returns l as the bf16 GEMM multiplies it: l itself, or for
// f16 weights a copy with each weight rounded to bf16.
func bf16Weights(l *linear) *linear {
	if l.Type != weightF16 {
		return l
	}
	r := *l
	r.Type, r.U16 = weightBF16, make([]uint16, len(l.U16))
	for i, h := range l.U16 {
		r.U16[i] = bf16FromF32(f16ToF32(h))
	}
	return &r
}

// linearI8Ref is the naive int8 GEMM: each input row quantised per
// gemmKC block, exact integer dot products with the int8 weights, scaled
// by both scales and summed in float64. It returns the input as the
// quantisation sees it (q times the block's scale).
func linearI8Ref(out, x []float32, m int, l *linear) []float32 {
	K := l.In
	q := make([]int8, m*K)
	xin := make([]float32, m*K)
	blocks := (K + gemmKC - 1) / gemmKC
	sc := make([]float32, m*blocks)
	for r := 0; r < m; r++ {
		for b := 0; b < blocks; b++ {
			k0, k1 := b*gemmKC, min((b+1)*gemmKC, K)
			sc[r*blocks+b], _ = quantizeI8(genericKernels, q[r*K+k0:r*K+k1], x[r*K+k0:r*K+k1])
			for k := k0; k < k1; k++ {
				xin[r*K+k] = float32(q[r*K+k]) * sc[r*blocks+b]
			}
		}
	}
	for r := 0; r < m; r++ {
		for o := 0; o < l.Out; o++ {
			var sum float64
			for b := 0; b < blocks; b++ {
				var dot int64
				for k := b * gemmKC; k < min((b+1)*gemmKC, K); k++ {
					dot += int64(q[r*K+k]) * int64(l.I8[o*K+k])
				}
				sum += float64(dot) * float64(sc[r*blocks+b]) * float64(l.Scale[o])
			}
			if l.Bias != nil {
				sum += float64(l.Bias[o])
			}
			out[r*l.Out+o] = float32(sum)
		}
	}
	return xin
}

func TestQuantizeI8RoundsToTheNearestStep(t *testing.T) {
	for _, ks := range append(simdKernels(), genericKernels) {
		rng := rand.New(rand.NewPCG(5, 6))
		for _, n := range []int{1, 7, 16, 31, 33, 256} {
			x := randVec(rng, n)
			x[n/2] *= 40 // an outlier sets the scale
			q := make([]int8, n)
			s, sum := quantizeI8(ks, q, x)
			want := make([]int8, n)
			ws, wsum := quantizeI8(genericKernels, want, x)
			if s != ws || sum != wsum || string(u8s(q)) != string(u8s(want)) {
				t.Errorf("%s n=%d: scale %g, sum %d, q %v; pure Go: %g, %d, %v", ks.name, n, s, sum, q, ws, wsum, want)
			}
			var total int32
			for i, v := range x {
				if d := math.Abs(float64(v - float32(q[i])*s)); d > float64(s)/2*1.0001 {
					t.Errorf("%s n=%d: x[%d] = %g quantised to %d·%g, off by %g > step/2", ks.name, n, i, v, q[i], s, d)
				}
				if q[i] < -127 {
					t.Errorf("%s n=%d: q[%d] = %d, below -127", ks.name, n, i, q[i])
				}
				total += int32(q[i])
			}
			if sum != total {
				t.Errorf("%s n=%d: sum = %d, want %d", ks.name, n, sum, total)
			}
		}
		q := []int8{9, 9}
		if s, sum := quantizeI8(ks, q, []float32{0, 0}); s != 0 || sum != 0 || q[0] != 0 || q[1] != 0 {
			t.Errorf("%s zeros: scale %g, sum %d, q %v; want all zero", ks.name, s, sum, q)
		}
		for _, bad := range []float32{float32(math.Inf(-1)), float32(math.NaN())} {
			if s, _ := quantizeI8(ks, q, []float32{1, bad}); !math.IsNaN(float64(s)) {
				t.Errorf("%s %g in the block: scale %g, want NaN", ks.name, bad, s)
			}
		}
	}
}

func u8s(q []int8) []byte {
	b := make([]byte, len(q))
	for i, v := range q {
		b[i] = byte(v)
	}
	return b
}

func TestRoundBF16MatchesScalar(t *testing.T) {
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1.00390625, 1.0078125 + 1.0/512,
		float32(math.Inf(1)), float32(math.NaN()), math.MaxFloat32, math.SmallestNonzeroFloat32}
	for _, ks := range simdKernels() {
		if ks.roundBF16 == nil {
			continue
		}
		rng := rand.New(rand.NewPCG(11, 12))
		for _, n := range []int{1, 9, 16, 17, 40} {
			x := randVec(rng, n)
			copy(x, special)
			got := make([]uint16, n+1)
			ks.roundBF16(got[:n], x)
			for i, v := range x {
				if want := bf16FromF32(v); got[i] != want {
					t.Errorf("%s: bf16(%g) = %#04x, want %#04x", ks.name, v, got[i], want)
				}
			}
			if got[n] != 0 {
				t.Errorf("%s n=%d: wrote past the end", ks.name, n)
			}
		}
	}
}

// TestNarrowGEMMStaysCloseToFloat32 bounds what narrowing the input costs
// against the float32 product, on inputs with a few large columns as
// GPT-2's activations have: bf16 rounding loses about 2⁻⁹ of each term,
// int8 up to half a step, 1/254 of the block's largest value.
func TestNarrowGEMMStaysCloseToFloat32(t *testing.T) {
	ks := bestKernels()
	for _, c := range []struct {
		typ weightType
		tol float64 // RMS error over RMS output
	}{{weightBF16, 0.005}, {weightF16, 0.008}, {weightI8, 0.03}} {
		if ks.narrowFor(smallM+1, &linear{Type: c.typ}) == narrowNone {
			ks = narrowGenericKernels
		}
		rng := rand.New(rand.NewPCG(7, 8))
		const m, in, out = 64, 768, 96
		l := randLinear(rng, in, out, c.typ, true)
		x := randVec(rng, m*in)
		for r := 0; r < m; r++ {
			x[r*in+5] *= 6
			x[r*in+300] *= -8
		}
		want := make([]float32, m*out)
		linearRef(want, x, m, l)
		p := newPool(2)
		p.kern = ks
		got := make([]float32, m*out)
		p.linear(got, x, m, l)
		p.Close()
		var rms, rmsErr float64
		for i := range want {
			d := float64(got[i] - want[i])
			rms += float64(want[i]) * float64(want[i])
			rmsErr += d * d
		}
		rel := math.Sqrt(rmsErr / rms)
		if rel > c.tol {
			t.Errorf("%s: RMS error %.4f of the RMS output, want ≤ %g", ks.name, rel, c.tol)
		}
		t.Logf("%s, weight type %d: RMS error %.4f of the RMS output", ks.name, c.typ, rel)
	}
}

// BenchmarkTile measures the GEMM micro-kernels alone on one packed panel
// in L1/L2 (kc = gemmKC), one goroutine: the compute ceiling of each type.
func BenchmarkTile(b *testing.B) {
	ks := bestKernels()
	mr, nr, kc := ks.mr, ks.nr, gemmKC
	c := make([]float32, mr*nr)
	flops := func(b *testing.B) {
		b.ReportMetric(2*float64(mr*nr*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	}
	b.Run("f32", func(b *testing.B) {
		a, p := make([]float32, mr*kc), make([]float32, kc*nr)
		for range b.N {
			ks.tile(c, nr, a, kc, p, kc, nil, true)
		}
		flops(b)
	})
	if ks.tileBF16 != nil {
		b.Run("bf16", func(b *testing.B) {
			a, p := make([]uint16, mr*kc), make([]uint16, kc*nr)
			for range b.N {
				ks.tileBF16(c, nr, a, kc, p, kc, nil, true)
			}
			flops(b)
		})
	}
	if ks.tileI8 != nil {
		b.Run("int8", func(b *testing.B) {
			a, p := make([]int8, mr*kc), make([]uint8, kc*nr)
			sc, nc, w := make([]float32, mr), make([]int32, mr), make([]float32, nr)
			for range b.N {
				ks.tileI8(c, nr, a, kc, p, kc, sc, nc, w, nil, true)
			}
			flops(b)
		})
	}
}

// TestNarrowPrefillAccuracyOnFixture measures what the narrow GEMM costs
// a whole model: the fixture's longest prompt scored (in chunks of 64
// tokens, so through the GEMM) from bf16 and int8 conversions of it, with
// the narrow GEMM and with the weights widened, each against the float32
// fixture: top-1 agreement per position and the largest logit error.
func TestNarrowPrefillAccuracyOnFixture(t *testing.T) {
	ref := loadReference(t)
	ids := ref.Prompts[6].IDs
	if len(ids) <= smallM {
		t.Fatalf("prompt of %d tokens does not reach the GEMM (> %d rows)", len(ids), smallM)
	}
	f32 := promptLogits(t, tinyDir, ids)
	dir := writeSourceDir(t, weights.F32)
	for _, c := range []struct {
		dt       weights.DType
		minAgree float64
		maxDiff  float64
	}{
		// Measured: bf16 narrow 97.2% agreement, max error 0.11
		// (widened: 99.1%, 0.12); int8 narrow 94.4%, 0.62 (widened:
		// 95.4%, 0.45). The random tiny model's top-1 margins are as
		// small as 0.0065, so a few argmaxes flip at any precision.
		{weights.BF16, 0.95, 0.3},
		{weights.F16, 0.95, 0.3},
		{weights.I8, 0.9, 0.8},
	} {
		path := filepath.Join(t.TempDir(), "model.gpt2d")
		if err := weights.Convert(dir, path, weights.ConvertOptions{DType: c.dt}); err != nil {
			t.Fatal(err)
		}
		wide := promptLogits(t, path, ids)
		m, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if m.pool.kern.narrowFor(len(ids), m.wte) == narrowNone {
			m.pool.kern = narrowGenericKernels
		}
		narrow, err := m.PromptLogits(ids)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		V := m.Config.VocabSize
		agree, diff := top1Agreement(narrow, f32, V), maxDiff(narrow, f32)
		t.Logf("%s narrow GEMM vs f32: top-1 agreement %.1f%%, max logit error %.4f (widened: %.1f%%, %.4f)",
			c.dt, 100*agree, diff, 100*top1Agreement(wide, f32, V), maxDiff(wide, f32))
		if agree < c.minAgree || diff > c.maxDiff {
			t.Errorf("%s narrow GEMM: agreement %.1f%% (want ≥ %.0f%%), max logit error %.4f (want ≤ %g)",
				c.dt, 100*agree, 100*c.minAgree, diff, c.maxDiff)
		}
	}
}

// TestF16ToBF16MatchesReference holds the kernels' f16 → bf16 rounding
// (in place, as packing uses it) against bf16FromF32(f16ToF32(h)) on every
// f16 value, in ragged lengths past the 16-lane vectors.
func TestF16ToBF16MatchesReference(t *testing.T) {
	all := make([]uint16, 1<<16)
	for i := range all {
		all[i] = uint16(i)
	}
	for _, ks := range append(simdKernels(), genericKernels) {
		for _, n := range []int{1, 15, 16, 17, 33, len(all)} {
			h := append([]uint16(nil), all[:n]...)
			h = append(h, 0xabcd) // past the end: must stay
			var tmp []float32
			f16ToBF16(ks, h[:n], &tmp)
			for i, src := range all[:n] {
				want := bf16FromF32(f16ToF32(src))
				if f16ToF32(src) != f16ToF32(src) { // NaN: any quiet NaN
					if bf16ToF32(h[i]) == bf16ToF32(h[i]) {
						t.Errorf("%s: f16 %#04x (NaN) → bf16 %#04x, not a NaN", ks.name, src, h[i])
					}
					continue
				}
				if h[i] != want {
					t.Errorf("%s n=%d: f16 %#04x → bf16 %#04x, want %#04x", ks.name, n, src, h[i], want)
					break
				}
			}
			if h[n] != 0xabcd {
				t.Errorf("%s n=%d: wrote past the end", ks.name, n)
			}
		}
		t.Logf("%s: f16ToBF16 kernel %v", ks.name, ks.f16ToBF16 != nil)
	}
}
