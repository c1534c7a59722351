package gpt2

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"gorgonia.org/tensor"

	"gpt2d/weights"
)

// shape124M is GPT-2 small's shape.
var shape124M = weights.Config{
	NLayer: 12, NHead: 12, NEmbd: 768, NPositions: 1024, VocabSize: 50257,
	LayerNormEpsilon: 1e-5, ActivationFunction: "gelu_new", BOSTokenID: 50256, EOSTokenID: 50256,
}

// RandomCheckpoint builds an in-memory checkpoint of cfg's shape with
// random weights (speed does not depend on the values) and the tiny
// fixture's tokenizer.
func randomCheckpoint(tb testing.TB, cfg weights.Config, dtype weights.DType) *weights.Checkpoint {
	tb.Helper()
	tokJSON, err := os.ReadFile(tinyDir + "/tokenizer.json")
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ck := &weights.Checkpoint{Config: cfg, Name: "random-124M", DType: dtype, TokenizerJSON: tokJSON, Tensors: map[string]weights.Tensor{}, Source: "random"}
	matrices := map[string]bool{}
	for _, n := range weights.MatrixNames(cfg.NLayer) {
		matrices[n] = true
	}
	for name, shape := range weights.CanonicalShapes(cfg) {
		n := tensor.Shape(shape).TotalSize()
		if !matrices[name] || dtype == weights.F32 {
			f := make([]float32, n)
			for i := range f {
				f[i] = float32(rng.NormFloat64() * 0.02)
			}
			if strings.HasSuffix(name, ".weight") && len(shape) == 1 {
				for i := range f {
					f[i] += 1
				}
			}
			ck.Tensors[name] = weights.Tensor{Name: name, DType: weights.F32, Shape: shape, Data: f32bytes(f)}
			continue
		}
		switch dtype {
		case weights.BF16, weights.F16:
			b := make([]byte, 2*n)
			for i := 0; i < n; i++ {
				v := float32(rng.NormFloat64() * 0.02)
				h := bf16FromF32(v)
				if dtype == weights.F16 {
					h = f16FromF32(v)
				}
				b[2*i], b[2*i+1] = byte(h), byte(h>>8)
			}
			ck.Tensors[name] = weights.Tensor{Name: name, DType: dtype, Shape: shape, Data: b}
		case weights.I8:
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(int8(rng.IntN(255) - 127))
			}
			scale := make([]float32, shape[0])
			for i := range scale {
				scale[i] = 0.02 / 127 * 3
			}
			ck.Tensors[name] = weights.Tensor{Name: name, DType: weights.I8, Shape: shape, Data: b}
			ck.Tensors[name+".scale"] = weights.Tensor{Name: name + ".scale", DType: weights.F32, Shape: []int{shape[0]}, Data: f32bytes(scale)}
		}
	}
	return ck
}

func f32bytes(f []float32) []byte {
	b := make([]byte, 4*len(f))
	for i, v := range f {
		u := math.Float32bits(v)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return b
}

func benchModel(b *testing.B, dtype weights.DType) *Model {
	m, err := FromCheckpoint(randomCheckpoint(b, shape124M, dtype), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

func peakRSSMB() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}

// BenchmarkPrefill measures prompt processing of a 124M-shape model.
func BenchmarkPrefill(b *testing.B) {
	for _, dt := range []weights.DType{weights.F32, weights.BF16, weights.F16, weights.I8} {
		m := benchModel(b, dt)
		for _, n := range []int{128, 512} {
			b.Run(fmt.Sprintf("%s/tokens=%d", dt, n), func(b *testing.B) {
				a := m.newActivations(n, 1)
				cache := m.NewKVCache()
				ids := make([]int, n)
				for i := range ids {
					ids[i] = (i * 7919) % m.Config.VocabSize
				}
				b.ResetTimer()
				for range b.N {
					cache.Reset()
					if err := m.forward(a, []step{{cache: cache, tokens: ids, wantLogits: true}}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
				b.ReportMetric(peakRSSMB(), "peakRSS-MB")
			})
		}
	}
}

// BenchmarkDecode measures generating 128 tokens after a 16-token prompt
// at batch 1 and 8 (continuous batching: one shared step per token).
func BenchmarkDecode(b *testing.B) {
	for _, dt := range []weights.DType{weights.F32, weights.BF16, weights.I8} {
		m := benchModel(b, dt)
		for _, batch := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/batch=%d", dt, batch), func(b *testing.B) {
				a := m.newActivations(16*batch, batch)
				caches := make([]*KVCache, batch)
				for i := range caches {
					caches[i] = m.NewKVCache()
				}
				steps := make([]step, batch)
				prompt := make([]int, 16)
				for i := range prompt {
					prompt[i] = 464 + i
				}
				toks := make([]int, batch)
				const newTokens = 128
				b.ResetTimer()
				for range b.N {
					for i := range steps {
						caches[i].Reset()
						steps[i] = step{cache: caches[i], tokens: prompt, wantLogits: true}
					}
					if err := m.forward(a, steps); err != nil {
						b.Fatal(err)
					}
					for range newTokens {
						for i := range steps {
							toks[i] = argmax(steps[i].logits)
							steps[i] = step{cache: caches[i], tokens: toks[i : i+1], wantLogits: true}
						}
						if err := m.forward(a, steps); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(newTokens*batch*b.N)/b.Elapsed().Seconds(), "tok/s")
				b.ReportMetric(peakRSSMB(), "peakRSS-MB")
				_ = runtime.GOMAXPROCS(0)
			})
		}
	}
}

func TestDecodeStepDoesNotAllocate(t *testing.T) {
	m := loadTiny(t)
	a := m.newActivations(4, 2)
	c1, c2 := m.NewKVCache(), m.NewKVCache()
	steps := []step{{cache: c1, tokens: []int{1, 2}, wantLogits: true}, {cache: c2, tokens: []int{3}, wantLogits: true}}
	if err := m.forward(a, steps); err != nil {
		t.Fatal(err)
	}
	tok := []int{5, 6}
	s := newSampler(m.Config.VocabSize)
	s.reset(0.8, 40, 0.9, 1)
	allocs := testing.AllocsPerRun(20, func() {
		steps[0] = step{cache: c1, tokens: tok[:1], wantLogits: true}
		steps[1] = step{cache: c2, tokens: tok[1:], wantLogits: true}
		if err := m.forward(a, steps); err != nil {
			t.Fatal(err)
		}
		tok[0] = s.next(steps[0].logits)
		tok[1] = s.next(steps[1].logits)
	})
	if allocs != 0 {
		t.Errorf("decode step allocates %.1f times", allocs)
	}
}

// BenchmarkDecodeContext times one batch-1 decode step at a given context
// length (the cache filled with random keys and values and rewound to the
// same position each step), per weight type and KV cache element type,
// interleaving the lengths so the ratios decode@1000 / decode@16 come from
// one run. cpu-ns/op is the process's CPU time per step, which time spent
// descheduled on a shared machine does not inflate.
func BenchmarkDecodeContext(b *testing.B) {
	for _, dt := range []weights.DType{weights.F32, weights.BF16, weights.I8} {
		m := benchModel(b, dt)
		for _, kv := range []weights.DType{weights.F32, weights.F16} {
			kind, err := kvKindOf(kv)
			if err != nil {
				b.Fatal(err)
			}
			for _, ctx := range []int{16, 512, 1000} {
				b.Run(fmt.Sprintf("%s/kv=%s/ctx=%d", dt, kv, ctx), func(b *testing.B) {
					a := m.newActivations(1, 1)
					c := m.Config
					cache := newKVPoolOf(c, (c.NPositions+kvBlockSize-1)/kvBlockSize, kvBlockSize, kind).newCache(c.NPositions)
					fillKVCache(cache, 3)
					tok := []int{464}
					st := make([]step, 1)
					b.ResetTimer()
					cpu0 := cpuTime()
					for range b.N {
						cache.n = ctx
						st[0] = step{cache: cache, tokens: tok, wantLogits: true}
						if err := m.forward(a, st); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
					b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op") // time descheduled left out
				})
			}
		}
	}
}

// fillKVCache fills every block of c's pool with random keys and values.
func fillKVCache(c *KVCache, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	for _, t := range []*tensor.Dense{c.pool.k, c.pool.v} {
		switch c.pool.kind {
		case kvF32:
			for i, f := 0, t.Float32s(); i < len(f); i++ {
				f[i] = float32(rng.NormFloat64())
			}
		default:
			for i, h := 0, t.Uint16s(); i < len(h); i++ {
				h[i] = f16FromF32(float32(rng.NormFloat64()))
			}
		}
	}
}

// BenchmarkDecodeAttention times the attention of one batch-1 decode step
// (every layer, keys and values stored included) at a given context
// length, apart from the weights: its cost per context position.
func BenchmarkDecodeAttention(b *testing.B) {
	m := benchModel(b, weights.F32)
	for _, ctx := range []int{16, 512, 1000} {
		b.Run(fmt.Sprintf("ctx=%d", ctx), func(b *testing.B) {
			a := m.newActivations(1, 1)
			cache := m.NewKVCache()
			fillKVCache(cache, 3)
			cache.n = ctx
			rng := rand.New(rand.NewPCG(5, 6))
			for i, q := 0, a.qkv.Float32s(); i < len(q); i++ {
				q[i] = float32(rng.NormFloat64())
			}
			st := []step{{cache: cache, tokens: []int{464}, wantLogits: true}}
			if _, _, err := a.plan(st, m.Config.VocabSize); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			cpu0 := cpuTime()
			for range b.N {
				for l := range m.layers {
					a.attention(a.att, a.qkv, 1, l)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op") // time descheduled left out
		})
	}
}
