package gpt2

// KVCache holds one sequence's attention keys and values for every layer
// and position, preallocated to the model's context window so decoding
// never allocates.
//
// k is (L, H, P, D) and v is (L, H, D, P): for layer l and head h the keys
// of all positions are one contiguous (P, D) block and the values one
// (D, P) block (transposed), so both attention products — scores over
// keys, then the score-weighted sum of values — are dot products over
// contiguous rows.
type KVCache struct {
	k, v   []float32
	layers int
	ctx    int // P: positions the cache can hold
	width  int // C
	n      int // positions filled
}

// NewKVCache allocates a cache for sequences of up to the model's
// n_positions tokens.
func (m *Model) NewKVCache() *KVCache {
	c := m.Config
	size := c.NLayer * c.NPositions * c.NEmbd
	return &KVCache{
		k: make([]float32, size), v: make([]float32, size),
		layers: c.NLayer, ctx: c.NPositions, width: c.NEmbd,
	}
}

// Len returns the number of positions whose keys and values are cached.
func (c *KVCache) Len() int { return c.n }

// Reset empties the cache for reuse by another sequence.
func (c *KVCache) Reset() { c.n = 0 }

// Bytes returns the memory the cache holds.
func (c *KVCache) Bytes() int { return 4 * (len(c.k) + len(c.v)) }

// layer returns layer l's key and value planes, each (P, C).
func (c *KVCache) layer(l int) (k, v []float32) {
	size := c.ctx * c.width
	return c.k[l*size : (l+1)*size], c.v[l*size : (l+1)*size]
}
