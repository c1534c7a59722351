package gpt2

import (
	"math"
	"testing"

	"gpt2d/weights"
)

// TestNarrowKVCache measures on the fixture's prompts what storing the KV
// cache in bf16 or f16 costs against float32: every prompt is fed as one
// blocked chunk of its first blockAttnMin tokens, then token by token (so
// both attention paths read the narrow cache), and each position's
// logits are held against PromptLogits on a float32 cache (max |Δlogit|,
// top-1 agreement); then the greedy continuations through an Engine with
// KVDType set are compared with the reference's. The figures are logged;
// the bounds are about twice the errors measured when this was written:
// f16 0.0095 with every top-1 and every greedy continuation the
// reference's; bf16 0.076, 151 of 153 top-1 and one of the seven greedy
// continuations ("code") leaving the reference after 13 tokens — which is
// why bf16 is not asked to match it and float32 stays the default.
func TestNarrowKVCache(t *testing.T) {
	m := loadTiny(t)
	ref := loadReference(t)
	V := m.Config.VocabSize
	for _, c := range []struct {
		dt         weights.DType
		tol        float64
		sameGreedy bool // every greedy continuation must be the reference's
	}{{weights.BF16, 0.15, false}, {weights.F16, 0.02, true}} {
		kind, err := kvKindOf(c.dt)
		if err != nil {
			t.Fatal(err)
		}
		a := m.newActivations(blockAttnMin, 1)
		cache := newKVPoolOf(m.Config, (m.Config.NPositions+kvBlockSize-1)/kvBlockSize, kvBlockSize, kind).newCache(m.Config.NPositions)
		worst, agree, total := 0.0, 0, 0
		for _, p := range ref.Prompts {
			full, err := m.PromptLogits(p.IDs)
			if err != nil {
				t.Fatal(err)
			}
			cache.Reset()
			for pos := 0; pos < len(p.IDs); {
				n := 1
				if pos == 0 && len(p.IDs) >= blockAttnMin {
					n = blockAttnMin
				}
				st := []step{{cache: cache, tokens: p.IDs[pos : pos+n], wantLogits: true}}
				if err := m.forward(a, st); err != nil {
					t.Fatal(err)
				}
				pos += n
				want := full[(pos-1)*V : pos*V]
				for i, w := range want {
					worst = math.Max(worst, math.Abs(float64(st[0].logits[i]-w)))
				}
				total++
				if argmax(st[0].logits) == argmax(want) {
					agree++
				}
			}
		}
		t.Logf("KV %s: max |logit - float32 KV| = %.3g, top-1 agreement %d/%d", c.dt, worst, agree, total)
		if worst > c.tol {
			t.Errorf("KV %s: max |logit - float32 KV| = %.3g > %.3g", c.dt, worst, c.tol)
		}

		e := NewEngine(m, EngineConfig{KVDType: c.dt})
		same := 0
		for _, p := range ref.Prompts {
			res, err := e.Generate(t.Context(), Request{PromptIDs: p.IDs, MaxNewTokens: p.Greedy.MaxNewTokens, IgnoreEOS: true}, nil)
			if err != nil {
				t.Fatalf("%s: %v", p.Name, err)
			}
			switch {
			case equalInts(res.Tokens, p.Greedy.IDs):
				same++
			case c.sameGreedy:
				t.Errorf("KV %s, %s: greedy ids\n got %v\nwant %v", c.dt, p.Name, res.Tokens, p.Greedy.IDs)
			}
		}
		t.Logf("KV %s: %d of %d greedy continuations are the reference's", c.dt, same, len(ref.Prompts))
		if got, want := e.Stats().KVBlockBytes, kvBlockBytes(m.Config, kvBlockSize)/2; got != want {
			t.Errorf("KV %s: block bytes %d, want half of float32's, %d", c.dt, got, want)
		}
		e.Close()
	}
	if err := CheckKVDType(weights.I8); err == nil {
		t.Error("CheckKVDType accepts I8")
	}
}
