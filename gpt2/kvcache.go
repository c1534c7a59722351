package gpt2

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"

	"gorgonia.org/tensor"

	"gpt2d/weights"
)

// kvBlockSize is the positions one KV block holds. 64 is GPT-2's head
// dimension at every size, so a block's values of one head, (D, B), are
// square: each of the D value rows the decode attention takes a dot
// product over is 64 floats (256 bytes: four AVX-512 vectors, whole cache
// lines), and the per-block call overhead of the decode loop stays a few
// percent of a 16-token block's. Smaller blocks share prompt prefixes at a
// finer grain and waste less of a sequence's last block (at most B-1
// positions: 4.6 MB at 124M, 38 MB at gpt2-xl in f32), but halve the
// vector length of those dot products; larger ones the reverse.
const kvBlockSize = 64

// kvPool is the KV memory of an Engine: one (L, N, H, B, D) tensor of keys
// and one (L, N, H, D, B) of values, allocated once and handed out as
// blocks of B positions to the sequences as they grow (PagedAttention's
// layout). For layer l, block b and head h the keys of the block's
// positions are one contiguous (B, D) run and the values one (D, B) run,
// transposed, so attention over a block is dot products over contiguous
// rows, as over a whole context before.
//
// A block whose B positions hold a known token sequence can be cached:
// it is identified by a chain hash of its tokens and of every token before
// it, and sequences whose prompts begin with the same tokens share it read
// only (refcounted). When its last user leaves, a cached block goes to an
// LRU list and stays findable until the pool needs the memory. Only the
// scheduler's goroutine touches a pool; the counts Stats reads are copied
// out by the scheduler.
type kvPool struct {
	k, v   *tensor.Dense // (L, N, H, B, D) keys and (L, N, H, D, B) values
	kind   kvKind        // their element type: float32, or bf16 or f16 bits
	kl, vl [][]float32   // layer l's (N, H, B, D) keys and (N, H, D, B) values (float32)
	kh, vh [][]uint16    // the same of a 16-bit pool
	layers int           // L
	bs     int           // B: positions per block
	stride int           // H·B·D: one block's elements in a layer
	n      int           // N: blocks

	ref  []int32  // users of each block
	free []int32  // blocks holding nothing cached, a stack
	lru  lruList  // cached blocks without users, least recently used first
	hash []uint64 // the chain hash of a cached block, valid if cached
	// cached marks blocks registered in byHash; toks holds their tokens,
	// (N, B), checked on every match so a hash collision cannot hand out
	// another prefix's keys.
	cached []bool
	toks   []int32
	byHash map[uint64]int32
	// scope holds the cache scope (Request.CacheScope) of each cached
	// block, also checked on every match: a block is shared only within
	// its scope even if the chain hashes of two scopes collided.
	scope []string

	reserved int // blocks promised to running sequences, not yet taken
	seed     maphash.Seed
	hbuf     []byte // scratch for hashing one block: parent hash, then B tokens
}

// lruList is a doubly linked list over block ids, kept in arrays so that
// moving a block allocates nothing.
type lruList struct {
	prev, next []int32
	head, tail int32 // -1 when empty
	len        int
}

func (q *lruList) init(n int) {
	q.prev, q.next = make([]int32, n), make([]int32, n)
	q.head, q.tail = -1, -1
}

func (q *lruList) pushBack(b int32) {
	q.prev[b], q.next[b] = q.tail, -1
	if q.tail >= 0 {
		q.next[q.tail] = b
	} else {
		q.head = b
	}
	q.tail = b
	q.len++
}

func (q *lruList) remove(b int32) {
	if p := q.prev[b]; p >= 0 {
		q.next[p] = q.next[b]
	} else {
		q.head = q.next[b]
	}
	if n := q.next[b]; n >= 0 {
		q.prev[n] = q.prev[b]
	} else {
		q.tail = q.prev[b]
	}
	q.len--
}

// kvBlockBytes is the memory of one block of c's model: keys and values
// of B positions in every layer, float32.
func kvBlockBytes(c weights.Config, bs int) int64 { return kvBlockBytesOf(c, bs, kvF32) }

// kvBlockBytesOf is kvBlockBytes for a pool of kind's elements.
func kvBlockBytesOf(c weights.Config, bs int, kind kvKind) int64 {
	return 2 * int64(kind.size()) * int64(c.NLayer) * int64(c.NHead) * int64(bs) * int64(c.HeadDim())
}

// blockBytes returns the memory of one of p's blocks.
func (p *kvPool) blockBytes() int64 { return int64(2 * p.kind.size() * p.layers * p.stride) }

// newKVPool allocates a pool of n blocks of bs positions for c's model,
// in float32.
func newKVPool(c weights.Config, n, bs int) *kvPool { return newKVPoolOf(c, n, bs, kvF32) }

// newKVPoolOf allocates a pool of n blocks of bs positions for c's model,
// holding kind's elements. The memory is zeroed pages the OS maps on
// first touch, so a pool costs resident memory only for the blocks
// sequences have used.
func newKVPoolOf(c weights.Config, n, bs int, kind kvKind) *kvPool {
	L, H, D := c.NLayer, c.NHead, c.HeadDim()
	et := tensor.Float32
	if kind != kvF32 {
		et = tensor.Uint16
	}
	k := tensor.New(tensor.Of(et), tensor.WithShape(L, n, H, bs, D))
	v := tensor.New(tensor.Of(et), tensor.WithShape(L, n, H, D, bs))
	p := &kvPool{
		k: k, v: v, kind: kind, layers: L, bs: bs, stride: H * bs * D, n: n,
		ref: make([]int32, n), free: make([]int32, n), hash: make([]uint64, n),
		cached: make([]bool, n), toks: make([]int32, n*bs), byHash: make(map[uint64]int32, n), scope: make([]string, n),
		seed: maphash.MakeSeed(), hbuf: make([]byte, 8+4*bs),
	}
	if kind == kvF32 {
		p.kl, p.vl = rowViews(k), rowViews(v)
	} else {
		p.kh, p.vh = rowViewsU16(k), rowViewsU16(v)
	}
	p.lru.init(n)
	for i := range p.free {
		p.free[i] = int32(n - 1 - i) // block 0 on top: the pool fills from its start
	}
	return p
}

// rowViews returns the backing slices of t[i], the views along its first
// axis (a pool's layers, a scratch tensor's rows), made once.
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

// rowViewsU16 is rowViews for a tensor of uint16 (16-bit floats' bits).
func rowViewsU16(t *tensor.Dense) [][]uint16 {
	views := make([][]uint16, t.Shape()[0])
	for l := range views {
		view, err := t.Slice(tensor.S(l))
		if err != nil {
			panic(err) // l is within the shape
		}
		views[l] = view.(*tensor.Dense).Uint16s()
	}
	return views
}

// kvLayer is one layer of a pool's keys and values as attention reads
// them: float32 in k and v, or 16-bit bits in kh and vh, as kind says.
type kvLayer struct {
	kind   kvKind
	k, v   []float32
	kh, vh []uint16
}

// layer returns p's layer l.
func (p *kvPool) layer(l int) kvLayer {
	if p.kind == kvF32 {
		return kvLayer{kind: kvF32, k: p.kl[l], v: p.vl[l]}
	}
	return kvLayer{kind: p.kind, kh: p.kh[l], vh: p.vh[l]}
}

// available returns the blocks that can still be handed out: free ones and
// cached ones without users, less those promised to running sequences.
func (p *kvPool) available() int { return len(p.free) + p.lru.len - p.reserved }

// used returns the blocks some sequence holds.
func (p *kvPool) used() int { return p.n - len(p.free) - p.lru.len }

// alloc takes a block for one user: a free one if any, else the least
// recently used cached one, which is forgotten. It reports false when
// every block is in use.
func (p *kvPool) alloc() (int32, bool) {
	var b int32
	switch {
	case len(p.free) > 0:
		b = p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
	case p.lru.len > 0:
		b = p.lru.head
		p.lru.remove(b)
		p.forget(b)
	default:
		return -1, false
	}
	p.ref[b] = 1
	return b, true
}

// forget drops b from the cache index.
func (p *kvPool) forget(b int32) {
	if p.cached[b] {
		if p.byHash[p.hash[b]] == b {
			delete(p.byHash, p.hash[b])
		}
		p.cached[b], p.scope[b] = false, ""
	}
}

// retain adds a user to block b, taking it off the LRU list if it was
// idle there.
func (p *kvPool) retain(b int32) {
	if p.ref[b] == 0 {
		p.lru.remove(b)
	}
	p.ref[b]++
}

// releaseBlock drops a user of block b; without users it goes to the LRU
// list if cached, else back to the free stack.
func (p *kvPool) releaseBlock(b int32) {
	if p.ref[b]--; p.ref[b] > 0 {
		return
	}
	if p.cached[b] {
		p.lru.pushBack(b)
		return
	}
	p.free = append(p.free, b) // cap n: never grows
}

// scopeRoot returns the root of the hash chain of scope's blocks: the
// parent hash of a sequence's first block. The empty scope's is 0; every
// other is a keyed hash of the scope, so the same tokens in two scopes
// hash to unrelated chains.
func (p *kvPool) scopeRoot(scope string) uint64 {
	if scope == "" {
		return 0
	}
	return maphash.String(p.seed, scope)
}

// blockHash returns the chain hash of a block holding tokens after a
// prefix whose last block hashed to parent (the scope's root for the
// first block). It is keyed by the pool's random seed, so clients cannot
// craft collisions.
func (p *kvPool) blockHash(parent uint64, tokens []int) uint64 {
	binary.LittleEndian.PutUint64(p.hbuf, parent)
	for i, t := range tokens {
		binary.LittleEndian.PutUint32(p.hbuf[8+4*i:], uint32(t))
	}
	return maphash.Bytes(p.seed, p.hbuf[:8+4*len(tokens)])
}

// lookup returns the cached block of scope with chain hash h holding
// tokens.
func (p *kvPool) lookup(scope string, h uint64, tokens []int) (int32, bool) {
	b, ok := p.byHash[h]
	if !ok || p.scope[b] != scope {
		return -1, false
	}
	for i, t := range p.toks[int(b)*p.bs : int(b+1)*p.bs] {
		if int(t) != tokens[i] {
			return -1, false
		}
	}
	return b, true
}

// register makes block b, full of tokens, findable in scope under chain
// hash h, unless another block already is.
func (p *kvPool) register(b int32, scope string, h uint64, tokens []int) {
	if _, dup := p.byHash[h]; dup || p.cached[b] {
		return
	}
	for i, t := range tokens {
		p.toks[int(b)*p.bs+i] = int32(t)
	}
	p.hash[b], p.cached[b], p.scope[b] = h, true, scope
	p.byHash[h] = b
}

// KVCache is one sequence's attention keys and values: a block table
// into a pool, grown a block at a time as the sequence advances, with
// room in the table for the model's whole context so that growing never
// allocates. Position p lives in block blocks[p/B] at offset p%B.
type KVCache struct {
	pool   *kvPool
	blocks []int32 // the block table
	ctx    int     // P: positions the sequence may reach
	n      int     // positions filled
	// res is the blocks promised to this sequence (counted in the pool's
	// reserved) that it has not taken yet.
	res int
	// hashes[i] is the chain hash of block i, for the leading blocks
	// attached from the cache or registered in it.
	hashes []uint64
	// scope is the cache scope of the sequence (Request.CacheScope) and
	// root its hash chain's root, set by attachPrefix.
	scope string
	root  uint64
}

// NewKVCache returns a cache for sequences of up to the model's
// n_positions tokens, on a pool of its own with room for all of them.
func (m *Model) NewKVCache() *KVCache {
	c := m.Config
	bs := kvBlockSize
	return newKVPool(c, (c.NPositions+bs-1)/bs, bs).newCache(c.NPositions)
}

// newCache returns an empty cache on p for sequences of up to ctx
// positions.
func (p *kvPool) newCache(ctx int) *KVCache {
	nb := (ctx + p.bs - 1) / p.bs
	return &KVCache{pool: p, ctx: ctx, blocks: make([]int32, 0, nb), hashes: make([]uint64, 0, nb)}
}

// Len returns the number of positions whose keys and values are cached.
func (c *KVCache) Len() int { return c.n }

// Reset empties the cache for reuse by another sequence: its blocks go
// back to the pool (cached ones stay findable) and its reservation ends.
func (c *KVCache) Reset() {
	for _, b := range c.blocks {
		c.pool.releaseBlock(b)
	}
	c.pool.reserved -= c.res
	c.blocks, c.hashes, c.n, c.res = c.blocks[:0], c.hashes[:0], 0, 0
	c.scope, c.root = "", 0
}

// Bytes returns the memory of the blocks the cache holds.
func (c *KVCache) Bytes() int { return len(c.blocks) * int(c.pool.blockBytes()) }

// reserve promises the cache n more blocks: the pool keeps them for it.
func (c *KVCache) reserve(n int) {
	c.res += n
	c.pool.reserved += n
}

// grow makes room for positions up to n, taking blocks from the pool:
// first from the cache's reservation, else from what no reservation
// holds. It fails, changing nothing, when the pool cannot give them.
func (c *KVCache) grow(n int) error {
	p := c.pool
	need := (n+p.bs-1)/p.bs - len(c.blocks)
	if need <= 0 {
		return nil
	}
	if n > c.ctx {
		return &ContextLengthError{PromptTokens: c.n, NewTokens: n - c.n, Limit: c.ctx}
	}
	if extra := need - c.res; extra > 0 && extra > p.available() {
		return fmt.Errorf("gpt2: KV cache full: %d more blocks wanted, %d available: %w", need, p.available()+c.res, ErrKVCacheFull)
	}
	for range need {
		b, _ := p.alloc() // available() counted it
		if c.res > 0 {
			c.res--
			p.reserved--
		}
		c.blocks = append(c.blocks, b)
	}
	return nil
}

// tokenAt returns the token a sequence fed at position i: prompt's, then
// gen's.
func tokenAt(prompt, gen []int, i int) int {
	if i < len(prompt) {
		return prompt[i]
	}
	return gen[i-len(prompt)]
}

// matchPrefix returns how many leading full blocks of prompt the pool has
// cached in scope, leaving at least one token to compute (its logits are the first
// prediction), and how many of those have no user now (taking them ends
// their idle time on the LRU list). It changes nothing.
func (p *kvPool) matchPrefix(scope string, prompt []int) (blocks, idle int) {
	h := p.scopeRoot(scope)
	for i := 0; (i+1)*p.bs < len(prompt); i++ {
		toks := prompt[i*p.bs : (i+1)*p.bs]
		h = p.blockHash(h, toks)
		b, ok := p.lookup(scope, h, toks)
		if !ok {
			break
		}
		blocks++
		if p.ref[b] == 0 {
			idle++
		}
	}
	return blocks, idle
}

// attachPrefix puts the empty cache c in scope and gives it the first n
// cached blocks of prompt there (as matchPrefix found them), filling its
// first n·B positions. The blocks it fills later are published in scope.
func (c *KVCache) attachPrefix(scope string, prompt []int, n int) {
	p := c.pool
	c.scope, c.root = scope, p.scopeRoot(scope)
	h := c.root
	for i := range n {
		toks := prompt[i*p.bs : (i+1)*p.bs]
		h = p.blockHash(h, toks)
		b, _ := p.lookup(scope, h, toks)
		p.retain(b)
		c.blocks = append(c.blocks, b)
		c.hashes = append(c.hashes, h)
	}
	c.n = n * p.bs
}

// publish registers the cache's full blocks not yet in the pool's index,
// their tokens being prompt then gen.
func (c *KVCache) publish(prompt, gen []int, buf []int) {
	p := c.pool
	for i := len(c.hashes); (i+1)*p.bs <= c.n; i++ {
		toks := buf[:p.bs]
		for j := range toks {
			toks[j] = tokenAt(prompt, gen, i*p.bs+j)
		}
		parent := c.root
		if i > 0 {
			parent = c.hashes[i-1]
		}
		h := p.blockHash(parent, toks)
		p.register(c.blocks[i], c.scope, h, toks)
		c.hashes = append(c.hashes, h)
	}
}

// kvKind is the element type a KV cache stores its keys and values in.
type kvKind uint8

const (
	kvF32  kvKind = iota // float32
	kvBF16               // bfloat16 bits
	kvF16                // IEEE 754 half-precision bits
)

// size returns the bytes of one element.
func (k kvKind) size() int {
	if k == kvF32 {
		return 4
	}
	return 2
}

// kvKindOf returns the cache element type for a KV dtype (EngineConfig's
// KVDType): "" or F32, BF16 or F16.
func kvKindOf(d weights.DType) (kvKind, error) {
	switch d {
	case "", weights.F32:
		return kvF32, nil
	case weights.BF16:
		return kvBF16, nil
	case weights.F16:
		return kvF16, nil
	}
	return 0, fmt.Errorf("gpt2: KV cache dtype %q: want F32, BF16 or F16", d)
}

// CheckKVDType reports whether d is a KV cache element type an Engine
// takes (EngineConfig.KVDType).
func CheckKVDType(d weights.DType) error {
	_, err := kvKindOf(d)
	return err
}
