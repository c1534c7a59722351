package gpt2

import (
	"math"
	"math/rand/v2"
	"slices"
)

// sampler picks the next token from logits. It owns scratch buffers sized
// to the vocabulary so sampling allocates nothing per token.
type sampler struct {
	temperature float64
	topK        int
	topP        float64
	rng         *rand.Rand
	idx         []int32   // candidate token ids
	prob        []float64 // candidate probabilities, parallel to idx
}

func newSampler(vocab int) *sampler {
	return &sampler{idx: make([]int32, vocab), prob: make([]float64, vocab)}
}

// reset configures the sampler for a request.
func (s *sampler) reset(temperature float64, topK int, topP float64, seed uint64) {
	s.temperature, s.topK, s.topP = temperature, topK, topP
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// argmax returns the index of the largest logit, the lowest on ties.
func argmax(logits []float32) int {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return best
}

// next returns the chosen token: argmax at temperature 0, otherwise a draw
// from softmax(logits / temperature) restricted by top-k then top-p, in the
// order Hugging Face applies them.
func (s *sampler) next(logits []float32) int {
	if s.temperature == 0 {
		return argmax(logits)
	}
	n := len(logits)
	idx, prob := s.idx[:n], s.prob[:n]
	for i := range idx {
		idx[i] = int32(i)
	}
	// Top-k: keep the k largest logits (ties at the boundary broken by id).
	if s.topK > 0 && s.topK < n {
		n = topK(logits, idx, s.topK)
		idx = idx[:n]
	}
	mx := float64(logits[idx[0]])
	for _, i := range idx {
		mx = math.Max(mx, float64(logits[i]))
	}
	var sum float64
	for j, i := range idx {
		p := math.Exp((float64(logits[i]) - mx) / s.temperature)
		prob[j] = p
		sum += p
	}
	// Top-p: the smallest set of most likely tokens whose mass reaches p.
	if s.topP > 0 && s.topP < 1 {
		n = s.nucleus(idx, prob[:len(idx)], sum)
		idx, sum = idx[:n], 0
		for _, p := range prob[:n] {
			sum += p
		}
	}
	if !(sum > 0) || math.IsInf(sum, 0) {
		return argmax(logits) // non-finite logits cannot be sampled
	}
	u := s.rng.Float64() * sum
	for j := range idx {
		u -= prob[j]
		if u < 0 {
			return int(idx[j])
		}
	}
	return int(idx[len(idx)-1])
}

// nucleus reorders idx/prob so the most likely tokens come first and
// returns how many of them make up the top-p mass. Rather than sorting the
// whole vocabulary it keeps only tokens above a threshold that is lowered
// until they hold at least p of the mass: the nucleus is a prefix of them.
func (s *sampler) nucleus(idx []int32, prob []float64, sum float64) int {
	mx := 0.0
	for _, p := range prob {
		mx = math.Max(mx, p)
	}
	need := s.topP * sum
	n := len(idx)
	if !(need > 0) || math.IsInf(need, 0) || !(mx > 0) {
		return n // non-finite logits: keep every candidate
	}
	// Each round lowers the threshold a hundredfold; after 8 rounds
	// (1e-16 of the top probability) every candidate is taken.
	t := mx * 1e-2
	for round := 0; ; round++ {
		k, mass := 0, 0.0
		for j := 0; j < len(idx); j++ {
			if prob[j] >= t || round == 8 {
				idx[k], idx[j] = idx[j], idx[k]
				prob[k], prob[j] = prob[j], prob[k]
				mass += prob[k]
				k++
			}
		}
		if mass >= need || k == len(idx) || round == 8 {
			n = k
			break
		}
		t *= 1e-2
	}
	sortByProb(idx[:n], prob[:n])
	var cum float64
	for j := 0; j < n; j++ {
		cum += prob[j]
		if cum >= need {
			return j + 1
		}
	}
	return n
}

// sortByProb sorts candidates by descending probability, then by id
// (insertion sort is fine: the candidate set is small in practice, and
// for larger sets it falls back to a heap-free shell sort).
func sortByProb(idx []int32, prob []float64) {
	less := func(a, b int) bool {
		if prob[a] != prob[b] {
			return prob[a] > prob[b]
		}
		return idx[a] < idx[b]
	}
	for gap := len(idx) / 2; gap > 0; gap /= 2 {
		for i := gap; i < len(idx); i++ {
			for j := i; j >= gap && less(j, j-gap); j -= gap {
				idx[j], idx[j-gap] = idx[j-gap], idx[j]
				prob[j], prob[j-gap] = prob[j-gap], prob[j]
			}
		}
	}
}

// topK moves the ids of the k largest logits (ties broken by lower id) to
// idx[:k] in descending order and returns k. It keeps a min-heap of the
// best k seen, so most of the vocabulary costs one comparison.
func topK(logits []float32, idx []int32, k int) int {
	heap := idx[:0:k]
	worse := func(a, b int32) bool { return cmpLogit(logits, a, b) > 0 } // a ranks below b
	down := func(i int) {
		for {
			l, smallest := 2*i+1, i
			if l < len(heap) && worse(heap[l], heap[smallest]) {
				smallest = l
			}
			if r := l + 1; r < len(heap) && worse(heap[r], heap[smallest]) {
				smallest = r
			}
			if smallest == i {
				return
			}
			heap[i], heap[smallest] = heap[smallest], heap[i]
			i = smallest
		}
	}
	for i := range logits {
		id := int32(i)
		if len(heap) < k {
			heap = append(heap, id)
			for j := len(heap) - 1; j > 0 && worse(heap[j], heap[(j-1)/2]); j = (j - 1) / 2 {
				heap[j], heap[(j-1)/2] = heap[(j-1)/2], heap[j]
			}
			continue
		}
		if worse(id, heap[0]) || id == heap[0] {
			continue
		}
		heap[0] = id
		down(0)
	}
	slices.SortFunc(heap, func(a, b int32) int { return cmpLogit(logits, a, b) })
	return len(heap)
}

func cmpLogit(logits []float32, a, b int32) int {
	switch {
	case logits[a] > logits[b]:
		return -1
	case logits[a] < logits[b]:
		return 1
	}
	return int(a - b)
}

// logSoftmax returns log p(id) under softmax(logits) and fills top with
// the len(top) most likely tokens.
func logSoftmax(logits []float32, id int, top []TopLogprob) float64 {
	mx := float64(logits[argmax(logits)])
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - mx)
	}
	lse := mx + math.Log(sum)
	for k := range top {
		top[k] = TopLogprob{ID: -1, Logprob: math.Inf(-1)}
	}
	for i, v := range logits {
		lp := float64(v) - lse
		if len(top) == 0 || lp <= top[len(top)-1].Logprob {
			continue
		}
		j := len(top) - 1
		for j > 0 && top[j-1].Logprob < lp {
			top[j] = top[j-1]
			j--
		}
		top[j] = TopLogprob{ID: i, Logprob: lp}
	}
	return float64(logits[id]) - lse
}
