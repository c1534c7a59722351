package gpt2

import (
	"math"
	"testing"

	"gpt2d/weights"
)

func TestExpfAccuracy(t *testing.T) {
	worst := 0.0
	for x := float32(-87); x < 88; x += 0.0007 {
		got, want := float64(expf(x)), math.Exp(float64(x))
		worst = math.Max(worst, math.Abs(got-want)/want)
	}
	if worst > 2e-7 {
		t.Errorf("expf: worst relative error %.3g", worst)
	}
	for _, c := range []struct{ x, want float32 }{{-1000, 0}, {0, 1}, {1000, float32(math.Inf(1))}} {
		if got := expf(c.x); got != c.want {
			t.Errorf("expf(%g) = %g, want %g", c.x, got, c.want)
		}
	}
}

// TestBlockedAttentionMatchesRowByRow holds the blocked prompt attention
// (attendBlock, in row blocks against the keys each can see) against the
// row-by-row path of decode, on a prompt long enough for several row
// blocks, fed after an earlier chunk so the blocks start past position 0.
func TestBlockedAttentionMatchesRowByRow(t *testing.T) {
	cfg := weights.Config{NLayer: 2, NHead: 2, NEmbd: 64, NPositions: 3*attnRowBlock + 64, VocabSize: 50257,
		LayerNormEpsilon: 1e-5, ActivationFunction: "gelu_new", BOSTokenID: 50256, EOSTokenID: 50256}
	m, err := FromCheckpoint(randomCheckpoint(t, cfg, weights.F32), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ids := make([]int, 2*attnRowBlock+41)
	for i := range ids {
		ids[i] = (i*7919 + 13) % cfg.VocabSize
	}
	V := cfg.VocabSize
	const first = blockAttnMin + 21 // a blocked chunk of its own
	blocked := m.NewKVCache()
	a := m.newActivations(len(ids), len(ids))
	var got []float32
	for _, chunk := range [][]int{ids[:first], ids[first:]} {
		st := []step{{cache: blocked, tokens: chunk, allLogits: true}}
		if err := m.forward(a, st); err != nil {
			t.Fatal(err)
		}
		got = append(got, st[0].logits...)
	}
	rowByRow := m.NewKVCache()
	one := m.newActivations(1, 1)
	for pos := range ids {
		st := []step{{cache: rowByRow, tokens: ids[pos : pos+1], wantLogits: true}}
		if err := m.forward(one, st); err != nil {
			t.Fatal(err)
		}
		want := st[0].logits
		for i := range want {
			if d := math.Abs(float64(got[pos*V+i] - want[i])); d > 1e-4 {
				t.Fatalf("pos %d token %d: blocked %g, row by row %g", pos, i, got[pos*V+i], want[i])
			}
		}
	}
}
