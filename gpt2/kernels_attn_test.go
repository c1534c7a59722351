package gpt2

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// attnKernelSets are the chunk kernel sets this CPU runs, with the
// pure-Go one.
func attnKernelSets() []*kernels {
	return append(simdKernels(), genericKernels)
}

// kvKinds are the cache element types, with the rounding a narrow cache
// applies when it stores a float32 and the widening it reads back with.
var kvKinds = []struct {
	name   string
	kind   kvKind
	narrow func(float32) uint16
	widen  func(uint16) float32
}{
	{"f32", kvF32, nil, nil},
	{"bf16", kvBF16, bf16FromF32, bf16ToF32},
	{"f16", kvF16, f16FromF32, f16ToF32},
}

// randKV returns n random values as float32 and, for a narrow kind,
// their 16-bit encodings (the float32 then holds the widened values).
func randKV(rng *rand.Rand, n int, narrow func(float32) uint16, widen func(uint16) float32) ([]float32, []uint16) {
	f := randVec(rng, n)
	if narrow == nil {
		return f, nil
	}
	h := make([]uint16, n)
	for i, v := range f {
		h[i] = narrow(v)
		f[i] = widen(h[i])
	}
	return f, h
}

// TestAttnKernelsMatchReference holds every kernel set's score and value
// kernels, for every cache element type, against the references on ragged
// numbers of keys (around the 8- and 16-key groups) and head sizes (around
// the 8- and 16-wide vectors), on unaligned slices, values with a stride.
func TestAttnKernelsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, ks := range attnKernelSets() {
		for _, kk := range kvKinds {
			for _, n := range []int{0, 1, 5, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 256} {
				for _, D := range []int{1, 7, 8, 15, 16, 17, 24, 63, 64, 65, 128} {
					name := fmt.Sprintf("%s/%s/n=%d/D=%d", ks.name, kk.name, n, D)
					q := randVec(rng, D+1)[1:]
					k32, k16 := randKV(rng, n*D+1, kk.narrow, kk.widen)
					k32 = k32[1:]
					if k16 != nil {
						k16 = k16[1:]
					}
					const extra = 3
					s := randVec(rng, n+1)[:n] // garbage in, every score written
					ak := ks.attn
					switch kk.kind {
					case kvBF16:
						ak.scoresBF16(s, q, k16, 0.125)
					case kvF16:
						ak.scoresF16(s, q, k16, 0.125)
					default:
						ak.scores(s, q, k32, 0.125)
					}
					want := make([]float32, n)
					attnScoresRef(want, q, func(i int) float32 { return k32[i] }, 0.125)
					for j := range want {
						var mag float64
						for i := 0; i < D; i++ {
							mag += math.Abs(float64(q[i] * k32[j*D+i]))
						}
						if d := math.Abs(float64(s[j] - want[j])); d > 1e-6*(1+0.125*mag) {
							t.Fatalf("%s: score %d = %g, want %g", name, j, s[j], want[j])
						}
					}

					ldv := n + extra
					if n%2 == 0 {
						ldv = n // rows back to back, as in a full paged block
					}
					p := randVec(rng, n+1)[1:]
					v32, v16 := randKV(rng, D*ldv+1, kk.narrow, kk.widen)
					v32 = v32[1:]
					if v16 != nil {
						v16 = v16[1:]
					}
					v32, v16 = v32[:(D-1)*ldv+n], v16[:min(len(v16), (D-1)*ldv+n)] // the last row ends at n
					out := randVec(rng, D)
					wantOut := append([]float32(nil), out...)
					switch kk.kind {
					case kvBF16:
						ak.valuesBF16(out, p, v16, ldv)
					case kvF16:
						ak.valuesF16(out, p, v16, ldv)
					default:
						ak.values(out, p, v32, ldv)
					}
					attnValuesRef(wantOut, p, func(i int) float32 { return v32[i] }, ldv)
					for d := range out {
						var mag float64
						for j := range p {
							mag += math.Abs(float64(p[j] * v32[d*ldv+j]))
						}
						if diff := math.Abs(float64(out[d] - wantOut[d])); diff > 1e-6*(1+math.Abs(float64(wantOut[d]))+mag) {
							t.Fatalf("%s: value %d = %g, want %g", name, d, out[d], wantOut[d])
						}
					}
				}
			}
		}
	}
}

// TestAttendSpanMatchesNaive runs attendSpan over a paged cache whose
// blocks are out of order, with every kernel set and cache element type
// (the reference reading the same rounded values), on spans starting at
// block boundaries and ending anywhere (a ragged last block), and holds
// acc / l against a float64 softmax attention over the same keys and
// values.
func TestAttendSpanMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const D, B, H, N = 64, 16, 2, 70 // N blocks of H heads
	stride := H * B * D
	blocks := make([]int32, N)
	for i, b := range rng.Perm(N) {
		blocks[i] = int32(b)
	}
	for _, ks := range attnKernelSets() {
		for _, kk := range kvKinds {
			k, kh := randKV(rng, N*stride, kk.narrow, kk.widen)
			v, vh := randKV(rng, N*stride, kk.narrow, kk.widen)
			kv := kvLayer{kind: kk.kind, k: k, v: v}
			if kk.kind != kvF32 {
				kv = kvLayer{kind: kk.kind, kh: kh, vh: vh}
			}
			for _, span := range []struct{ p0, n int }{{0, 1}, {0, 2}, {0, 16}, {0, 17}, {16, 7}, {32, 301}, {0, 1000}, {48, 1072}} {
				for h := 0; h < H; h++ {
					q := randVec(rng, D)
					for i := range q {
						q[i] *= 2 // scores spread enough for the softmax to be far from uniform
					}
					key := func(j, d int) float64 { return float64(k[int(blocks[j/B])*stride+h*B*D+(j%B)*D+d]) }
					val := func(j, d int) float64 { return float64(v[int(blocks[j/B])*stride+h*B*D+d*B+j%B]) }
					scale := 1 / math.Sqrt(D)
					w := make([]float64, span.n)
					mx := math.Inf(-1)
					for j := range w {
						for d := 0; d < D; d++ {
							w[j] += float64(q[d]) * key(span.p0+j, d)
						}
						w[j] *= scale
						mx = math.Max(mx, w[j])
					}
					sum := 0.0
					for j := range w {
						w[j] = math.Exp(w[j] - mx)
						sum += w[j]
					}
					acc := randVec(rng, D) // garbage: attendSpan sets it
					st := attendSpan(ks.attn, acc, q, kv, blocks, stride, h*B*D, B, span.p0, make([]float32, span.n), float32(scale))
					if math.Abs(float64(st.m)-mx) > 1e-5*(1+math.Abs(mx)) {
						t.Fatalf("%s/%s span %v head %d: max %g, want %g", ks.name, kk.name, span, h, st.m, mx)
					}
					for d := 0; d < D; d++ {
						want := 0.0
						for j := range w {
							want += w[j] / sum * val(span.p0+j, d)
						}
						if got := float64(acc[d] / st.l); math.Abs(got-want) > 1e-5 {
							t.Fatalf("%s/%s span %v head %d d=%d: %g, want %g", ks.name, kk.name, span, h, d, got, want)
						}
					}
				}
			}
		}
	}
}
