package gpt2

import (
	"math"
	"testing"
)

func TestSamplerFollowsTheDistribution(t *testing.T) {
	logits := []float32{2, 1, 0, -1, -30}
	cases := []struct {
		name        string
		temperature float64
		topK        int
		topP        float64
		want        []float64 // expected frequencies
	}{
		{"plain", 1, 0, 0, softmax64(logits, 1, 5)},
		{"temperature 0.5", 0.5, 0, 0, softmax64(logits, 0.5, 5)},
		{"top-k 2", 1, 2, 0, softmax64(logits, 1, 2)},
		// p(0)=0.644, p(1)=0.237: 0.644 < 0.8 <= 0.881, so two tokens stay.
		{"top-p 0.8", 1, 0, 0.8, softmax64(logits, 1, 2)},
		{"top-p 0.5 keeps the first token only", 1, 0, 0.5, []float64{1, 0, 0, 0, 0}},
	}
	const n = 40000
	for _, c := range cases {
		s := newSampler(len(logits))
		s.reset(c.temperature, c.topK, c.topP, 12345)
		counts := make([]float64, len(logits))
		for range n {
			counts[s.next(logits)]++
		}
		for i, w := range c.want {
			got := counts[i] / n
			// 5 standard deviations of a binomial proportion.
			if tol := 5*math.Sqrt(w*(1-w)/n) + 1e-9; math.Abs(got-w) > tol {
				t.Errorf("%s: token %d drawn %.4f of the time, want %.4f", c.name, i, got, w)
			}
		}
	}
}

// softmax64 returns softmax(logits/T) over the k largest logits (logits
// sorted descending), zero elsewhere.
func softmax64(logits []float32, temp float64, k int) []float64 {
	p := make([]float64, len(logits))
	var sum float64
	for i := 0; i < k; i++ {
		p[i] = math.Exp(float64(logits[i]) / temp)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p
}

func TestSamplerEdgeCases(t *testing.T) {
	nan := float32(math.NaN())
	cases := []struct {
		name   string
		logits []float32
		topK   int
		topP   float64
	}{
		{"all equal with top-p", []float32{1, 1, 1, 1}, 0, 0.3},
		{"NaN logits", []float32{nan, nan, nan}, 0, 0.9},
		{"NaN with top-k", []float32{1, nan, 2}, 2, 0.9},
		{"infinite logit", []float32{float32(math.Inf(1)), 0, 1}, 0, 0.9},
		{"one token", []float32{3}, 5, 0.5},
		{"top-k above vocabulary", []float32{1, 2, 3}, 10, 0},
	}
	for _, c := range cases {
		s := newSampler(len(c.logits))
		s.reset(1, c.topK, c.topP, 1)
		for range 100 {
			if id := s.next(c.logits); id < 0 || id >= len(c.logits) {
				t.Fatalf("%s: drew %d", c.name, id)
			}
		}
	}
	// Greedy ties go to the lowest id.
	if got := argmax([]float32{1, 3, 3, 2}); got != 1 {
		t.Errorf("argmax tie: %d", got)
	}
	// Top-k keeps the k largest, ties broken by id.
	idx := make([]int32, 6)
	if n := topK([]float32{0, 5, 5, 1, 5, 2}, idx, 3); n != 3 || idx[0] != 1 || idx[1] != 2 || idx[2] != 4 {
		t.Errorf("topK: %v", idx[:3])
	}
}
