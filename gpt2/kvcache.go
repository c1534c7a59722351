package gpt2

import "gorgonia.org/tensor"

// KVCache holds one sequence's attention keys and values for every layer
// and position, preallocated to the model's context window so decoding
// never allocates.
//
// k is (L, H, P, D) and v is (L, H, D, P): for layer l and head h the keys
// of all positions are one contiguous (P, D) block and the values one
// (D, P) block (transposed), so both attention products — scores over
// keys, then the score-weighted sum of values — are dot products over
// contiguous rows. The per-layer views are made once, in NewKVCache.
type KVCache struct {
	k, v   *tensor.Dense // (L, H, P, D) and (L, H, D, P)
	kl, vl [][]float32   // layer l's (H, P, D) keys and (H, D, P) values
	ctx    int           // P: positions the cache can hold, from k's shape
	n      int           // positions filled
}

// NewKVCache allocates a cache for sequences of up to the model's
// n_positions tokens.
func (m *Model) NewKVCache() *KVCache {
	c := m.Config
	L, H, P, D := c.NLayer, c.NHead, c.NPositions, c.HeadDim()
	k := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(L, H, P, D))
	v := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(L, H, D, P))
	return &KVCache{k: k, v: v, kl: rowViews(k), vl: rowViews(v), ctx: k.Shape()[2]}
}

// rowViews returns the backing slices of t[i], the views along its first
// axis (a KV cache's layers, a scratch tensor's rows), made once.
func rowViews(t *tensor.Dense) [][]float32 {
	views := make([][]float32, t.Shape()[0])
	for l := range views {
		view, err := t.Slice(tensor.S(l))
		if err != nil {
			panic(err) // l is within the shape
		}
		views[l] = view.(*tensor.Dense).Float32s()
	}
	return views
}

// Len returns the number of positions whose keys and values are cached.
func (c *KVCache) Len() int { return c.n }

// Reset empties the cache for reuse by another sequence.
func (c *KVCache) Reset() { c.n = 0 }

// Bytes returns the memory the cache holds.
func (c *KVCache) Bytes() int { return 4 * (c.k.Shape().TotalSize() + c.v.Shape().TotalSize()) }
