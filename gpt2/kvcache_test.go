package gpt2

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// testPool is a pool of n blocks of bs positions for the tiny model.
func testPool(t *testing.T, n, bs int) *kvPool {
	t.Helper()
	return newKVPool(loadTiny(t).Config, n, bs)
}

func seqTokens(start, n int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = start + i
	}
	return ids
}

func TestKVPoolAllocRefcountAndLRU(t *testing.T) {
	p := testPool(t, 4, 4)
	var got []int32
	for range 4 {
		b, ok := p.alloc()
		if !ok {
			t.Fatal("alloc failed with free blocks left")
		}
		got = append(got, b)
	}
	if want := []int32{0, 1, 2, 3}; !equalInt32s(got, want) {
		t.Errorf("blocks %v, want %v (the pool fills from its start)", got, want)
	}
	if _, ok := p.alloc(); ok || p.available() != 0 || p.used() != 4 {
		t.Fatalf("full pool: alloc %v, available %d, used %d", ok, p.available(), p.used())
	}
	// Blocks 0 and 1 hold a cached prefix; 2 and 3 nothing cached.
	h0 := p.blockHash(0, seqTokens(10, 4))
	h1 := p.blockHash(h0, seqTokens(14, 4))
	p.register(0, "", h0, seqTokens(10, 4))
	p.register(1, "", h1, seqTokens(14, 4))
	p.retain(1) // a second user of block 1
	for _, b := range []int32{1, 0, 2} {
		p.releaseBlock(b)
	}
	// 1 still has a user; 0 is idle on the LRU list; 2 is free.
	if p.used() != 2 || p.lru.len != 1 || len(p.free) != 1 || p.available() != 2 {
		t.Fatalf("used %d, lru %d, free %d, available %d", p.used(), p.lru.len, len(p.free), p.available())
	}
	p.releaseBlock(1) // now idle, more recently than 0
	if p.lru.len != 2 || p.lru.head != 0 || p.lru.tail != 1 {
		t.Fatalf("LRU head %d tail %d len %d, want 0 … 1", p.lru.head, p.lru.tail, p.lru.len)
	}
	// A free block goes before any cached one.
	if b, _ := p.alloc(); b != 2 {
		t.Fatalf("alloc took %d, want the free block 2", b)
	}
	// Then the least recently used cached block, which is forgotten.
	if b, _ := p.alloc(); b != 0 {
		t.Fatalf("alloc took %d, want block 0 (least recently used)", b)
	}
	if _, ok := p.lookup("", h0, seqTokens(10, 4)); ok {
		t.Error("evicted block 0 is still found")
	}
	if b, ok := p.lookup("", h1, seqTokens(14, 4)); !ok || b != 1 {
		t.Errorf("block 1 lost: %d %v", b, ok)
	}
	// A user taking an idle cached block takes it off the LRU list.
	p.retain(1)
	if p.lru.len != 0 || p.available() != 0 {
		t.Fatalf("after retain: lru %d, available %d", p.lru.len, p.available())
	}
	if _, ok := p.alloc(); ok {
		t.Fatal("alloc succeeded on a pool with every block in use")
	}
	// Reservations come off what is available.
	p.releaseBlock(3)
	p.reserved = 1
	if p.available() != 0 {
		t.Errorf("available %d with the only free block reserved", p.available())
	}
}

func equalInt32s(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestKVCacheGrowsWithinItsReservation(t *testing.T) {
	p := testPool(t, 4, 4)
	a, b := p.newCache(16), p.newCache(16)
	a.reserve(3)
	if err := b.grow(5); err == nil || !errors.Is(err, ErrKVCacheFull) {
		t.Fatalf("b took 2 blocks of a pool with 1 unreserved: %v", err)
	}
	if err := b.grow(4); err != nil {
		t.Fatalf("b's one unreserved block: %v", err)
	}
	if err := a.grow(12); err != nil || len(a.blocks) != 3 || a.res != 0 || p.reserved != 0 {
		t.Fatalf("a: %v, blocks %v, res %d, pool reserved %d", err, a.blocks, a.res, p.reserved)
	}
	if err := a.grow(17); err == nil {
		t.Error("a grew past its context")
	}
	a.Reset()
	b.Reset()
	if p.used() != 0 || p.available() != 4 {
		t.Errorf("after Reset: used %d, available %d", p.used(), p.available())
	}
}

func TestPrefixMatching(t *testing.T) {
	p := testPool(t, 8, 4)
	prompt := seqTokens(100, 10) // blocks [100..103] [104..107], partial [108 109]
	c := p.newCache(32)
	if err := c.grow(10); err != nil {
		t.Fatal(err)
	}
	c.n = 10
	c.publish(prompt, nil, make([]int, 4))
	if len(c.hashes) != 2 || !p.cached[c.blocks[0]] || !p.cached[c.blocks[1]] || p.cached[c.blocks[2]] {
		t.Fatalf("published %d blocks, cached %v (the partial last block must not be)", len(c.hashes), p.cached[:3])
	}
	other := func(i int, v int) []int {
		q := append([]int(nil), prompt...)
		q[i] = v
		return q
	}
	for _, tt := range []struct {
		name   string
		prompt []int
		want   int
	}{
		{"same prompt: both full blocks", prompt, 2},
		{"longer prompt", append(append([]int(nil), prompt...), 1, 2, 3), 2},
		{"prompt of exactly two blocks leaves its last block to compute", prompt[:8], 1},
		{"nine tokens", prompt[:9], 2},
		{"diverges in block 1", other(6, 7), 1},
		{"diverges in block 0", other(0, 7), 0},
		{"partial block is never shared", other(9, 7), 2},
		{"block 1's tokens after another block 0", append(seqTokens(0, 4), prompt[4:]...), 0},
		{"shorter than a block", prompt[:3], 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, idle := p.matchPrefix("", tt.prompt)
			if got != tt.want || idle != 0 {
				t.Errorf("match %d blocks (%d idle), want %d (0 idle)", got, idle, tt.want)
			}
		})
	}
	// After the sequence leaves, its blocks are idle but still found;
	// a new sequence attaching them takes them back from the LRU list.
	c.Reset()
	if got, idle := p.matchPrefix("", prompt); got != 2 || idle != 2 {
		t.Fatalf("after release: %d blocks, %d idle", got, idle)
	}
	d := p.newCache(32)
	d.attachPrefix("", prompt, 2)
	if d.Len() != 8 || p.lru.len != 0 || p.used() != 2 {
		t.Errorf("attached: len %d, lru %d, used %d", d.Len(), p.lru.len, p.used())
	}
}

// TestAttendPagedMatchesAttendHead holds the paged decode attention
// (attendSpan) against the same keys and values contiguous (one block of
// all n positions), on block sizes and lengths that leave ragged last
// blocks and on blocks scattered through the pool.
func TestAttendPagedMatchesAttendHead(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const D, H = 64, 3
	for _, B := range []int{1, 4, 16, 64} {
		for _, n := range []int{1, 3, 16, 17, 64, 65, 200} {
			nb := (n + B - 1) / B
			N := nb + 5
			stride := H * B * D
			k, v := make([]float32, N*stride), make([]float32, N*stride)
			for i := range k {
				k[i], v[i] = rng.Float32()*2-1, rng.Float32()*2-1
			}
			blocks := make([]int32, nb)
			for i, b := range rng.Perm(N)[:nb] {
				blocks[i] = int32(b)
			}
			h := rng.IntN(H)
			// The same keys and values, contiguous: (n, D) and (D, n).
			kc, vc := make([]float32, n*D), make([]float32, D*n)
			for j := 0; j < n; j++ {
				base := int(blocks[j/B])*stride + h*B*D
				copy(kc[j*D:(j+1)*D], k[base+(j%B)*D:])
				for d := 0; d < D; d++ {
					vc[d*n+j] = v[base+d*B+j%B]
				}
			}
			q := make([]float32, D)
			for i := range q {
				q[i] = rng.Float32()*2 - 1
			}
			want, got := make([]float32, D), make([]float32, D)
			stw := attendSpan(genericAttn, want, q, kvLayer{k: kc, v: vc}, []int32{0}, n*D, 0, n, 0, make([]float32, n), 0.125)
			scale(want, 1/stw.l)
			st := attendSpan(bestKernels().attn, got, q, kvLayer{k: k, v: v}, blocks, stride, h*B*D, B, 0, make([]float32, n), 0.125)
			scale(got, 1/st.l)
			for d := range want {
				if math.Abs(float64(got[d]-want[d])) > 1e-5 {
					t.Fatalf("B=%d n=%d: out[%d] = %g, want %g", B, n, d, got[d], want[d])
				}
			}
		}
	}
}

// TestPrefixCacheMatchesColdRun generates from prompts that share
// prefixes on an engine with prefix caching and on one without, and
// wants the same tokens and log-probabilities, and the reference's greedy
// tokens where the fixture has them.
func TestPrefixCacheMatchesColdRun(t *testing.T) {
	for _, bs := range []int{8, 64} {
		m, warm := newTinyEngine(t, EngineConfig{Slots: 4, PrefillChunk: 8, blockSize: bs})
		cold := NewEngine(m, EngineConfig{Slots: 4, PrefillChunk: 8, blockSize: bs, NoPrefixCache: true})
		t.Cleanup(cold.Close)
		ref := loadReference(t)
		long := ref.Prompts[6].IDs // 108 tokens
		type job struct {
			ids []int
			new int
		}
		jobs := []job{
			{long, 20}, {long, 20}, // the same prompt twice
			{append(append([]int(nil), long[:70]...), 11, 12, 13), 10}, // its prefix, another suffix
			{append(append([]int(nil), long[:70]...), 21, 22), 10},
			{long[:64], 10}, // exactly one block of 64: the last one is computed
			{long[:70], 30},
		}
		for _, p := range ref.Prompts[3:6] {
			jobs = append(jobs, job{p.IDs, p.Greedy.MaxNewTokens}, job{p.IDs, p.Greedy.MaxNewTokens})
		}
		worst := 0.0
		for i, jb := range jobs {
			req := Request{PromptIDs: jb.ids, MaxNewTokens: jb.new, IgnoreEOS: true, Logprobs: 2}
			w, err := warm.Generate(t.Context(), req, nil)
			if err != nil {
				t.Fatal(err)
			}
			c, err := cold.Generate(t.Context(), req, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !equalInts(w.Tokens, c.Tokens) {
				t.Fatalf("B=%d job %d: prefix-cached %v, cold %v", bs, i, w.Tokens, c.Tokens)
			}
			// Not bit for bit: the tokens after a cached prefix run in
			// a smaller step than in the cold run, through other kernel
			// paths (as a sequence batched with others does).
			for k := range w.Logprobs {
				d := math.Abs(w.Logprobs[k].Logprob - c.Logprobs[k].Logprob)
				worst = max(worst, d)
				if d > 1e-4 {
					t.Errorf("B=%d job %d token %d: logprob %g cached, %g cold", bs, i, k, w.Logprobs[k].Logprob, c.Logprobs[k].Logprob)
				}
			}
		}
		t.Logf("B=%d: max |logprob cached - cold| = %.3g", bs, worst)
		for _, p := range ref.Prompts {
			res, err := warm.Generate(t.Context(), Request{PromptIDs: p.IDs, MaxNewTokens: p.Greedy.MaxNewTokens, IgnoreEOS: true}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !equalInts(res.Tokens, p.Greedy.IDs) {
				t.Errorf("B=%d %s: %v, reference %v", bs, p.Name, res.Tokens, p.Greedy.IDs)
			}
		}
		st, cst := warm.Stats(), cold.Stats()
		if st.PrefixHitTokens == 0 || cst.PrefixHitTokens != 0 {
			t.Errorf("B=%d prefix hit tokens: %d with the cache, %d without", bs, st.PrefixHitTokens, cst.PrefixHitTokens)
		}
	}
}

// TestPrefixCacheScopes: cached prefixes are shared only within a cache
// scope. The same prompt sent in another scope computes its whole prompt
// (no hit tokens), sent again in a scope that cached it takes its full
// blocks from the cache, and every run gives the same tokens.
func TestPrefixCacheScopes(t *testing.T) {
	const bs = 8
	_, e := newTinyEngine(t, EngineConfig{Slots: 2, blockSize: bs})
	ids := loadReference(t).Prompts[6].IDs // 108 tokens
	full := (len(ids) - 1) / bs * bs       // whole blocks, the last token left to compute
	var want []int
	for i, tt := range []struct {
		scope string
		hit   int // prompt tokens expected from the cache
	}{
		{"user:1", 0},
		{"user:2", 0},    // the same prompt, another user: computed
		{"user:1", full}, // the first user again: cached
		{"user:2", full},
		{"", 0}, // the unscoped requests share among themselves only
		{"", full},
		{"user:10", 0}, // not a prefix or suffix match of another scope
	} {
		before := e.Stats().PrefixHitTokens
		res, err := e.Generate(t.Context(), Request{PromptIDs: ids, MaxNewTokens: 6, IgnoreEOS: true, CacheScope: tt.scope}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := int(e.Stats().PrefixHitTokens - before); got != tt.hit {
			t.Errorf("request %d in scope %q: %d prefix hit tokens, want %d", i, tt.scope, got, tt.hit)
		}
		if want == nil {
			want = res.Tokens
		} else if !equalInts(res.Tokens, want) {
			t.Errorf("request %d in scope %q: %v, first run %v", i, tt.scope, res.Tokens, want)
		}
	}
}

// TestLookupChecksTheScope: a block is found only in the scope it was
// registered in, even under the same chain hash (a collision between
// two scopes' chains hands out nothing).
func TestLookupChecksTheScope(t *testing.T) {
	p := testPool(t, 4, 4)
	toks := seqTokens(10, 4)
	if p.scopeRoot("") != 0 || p.scopeRoot("a") == p.scopeRoot("b") || p.scopeRoot("a") == 0 {
		t.Fatalf("roots: %x %x %x", p.scopeRoot(""), p.scopeRoot("a"), p.scopeRoot("b"))
	}
	h := p.blockHash(p.scopeRoot("a"), toks)
	if h == p.blockHash(p.scopeRoot("b"), toks) || h == p.blockHash(0, toks) {
		t.Fatal("the same tokens hash alike in two scopes")
	}
	b, _ := p.alloc()
	p.register(b, "a", h, toks)
	for _, tt := range []struct {
		scope string
		found bool
	}{{"a", true}, {"b", false}, {"", false}} {
		if _, ok := p.lookup(tt.scope, h, toks); ok != tt.found {
			t.Errorf("lookup in scope %q: found %v, want %v", tt.scope, ok, tt.found)
		}
	}
	p.releaseBlock(b)
	p.alloc() // the free blocks first
	p.alloc()
	p.alloc()
	if c, _ := p.alloc(); c != b || p.scope[b] != "" { // evicted: forgotten with its scope
		t.Errorf("evicted block %d (want %d), scope %q", c, b, p.scope[b])
	}
}

// TestScoringIgnoresThePrefixCache: scoring needs every prompt
// position's logits, so a scored prompt is computed in full even when
// its prefix is cached, and scores as on a cold engine.
func TestScoringIgnoresThePrefixCache(t *testing.T) {
	_, e := newTinyEngine(t, EngineConfig{blockSize: 8})
	ids := loadReference(t).Prompts[6].IDs
	if _, err := e.Generate(t.Context(), Request{PromptIDs: ids, MaxNewTokens: 2}, nil); err != nil {
		t.Fatal(err)
	}
	hits := e.Stats().PrefixHitTokens
	p, err := e.Prepare(Request{PromptIDs: ids, ScoreOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Score(t.Context(), p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if e.Stats().PrefixHitTokens != hits {
		t.Error("scoring took KV from the prefix cache")
	}
	want, err := e.m.PromptLogits(ids)
	if err != nil {
		t.Fatal(err)
	}
	V := e.m.Config.VocabSize
	for i := 1; i < len(ids); i++ {
		lp := logSoftmax(want[(i-1)*V:i*V], ids[i], nil)
		if math.Abs(got[i].Logprob-lp) > 1e-4 {
			t.Fatalf("position %d: %g, want %g", i, got[i].Logprob, lp)
		}
	}
}

// idleEngine is an Engine whose scheduler the test drives by hand.
func idleEngine(t *testing.T, cfg EngineConfig) (*Engine, *scheduler) {
	t.Helper()
	e := newEngine(loadTiny(t), cfg)
	return e, e.newScheduler()
}

// queue submits a job as Run does, without waiting for it.
func (e *Engine) queueJob(t *testing.T, ids []int, maxNew int) (*genJob, error) {
	t.Helper()
	p, err := e.Prepare(Request{PromptIDs: ids, MaxNewTokens: maxNew, IgnoreEOS: true})
	if err != nil {
		return nil, err
	}
	j := e.newJob(context.Background(), p, -1)
	return j, e.submit(j)
}

func TestAdmissionWithinTheKVBudget(t *testing.T) {
	// 10 blocks of 8 positions; each job reaches 5 + 11 = 16 positions:
	// two blocks, so five run at once however many slots there are.
	e, sc := idleEngine(t, EngineConfig{Slots: 16, QueueSize: 16, blockSize: 8, kvBlocks: 10, NoPrefixCache: true})
	var jobs []*genJob
	for i := range 8 {
		j, err := e.queueJob(t, seqTokens(100+10*i, 5), 11)
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	if !sc.admit() {
		t.Fatal("admit: engine closing")
	}
	if sc.active != 5 || sc.waiting != jobs[5] || e.Stats().Queued != 3 {
		t.Fatalf("admitted %d (want 5), waiting %v, queued %d", sc.active, sc.waiting != nil, e.Stats().Queued)
	}
	if st := e.Stats(); st.KVBlocks != 10 || st.KVBlocksUsed != 0 || e.pool.reserved != 10 {
		t.Fatalf("stats %+v, reserved %d", st, e.pool.reserved)
	}
	// Run to completion: never more than five at once, all finish.
	peak := 0
	for sc.active > 0 || sc.waiting != nil {
		if !sc.admit() {
			t.Fatal("engine closing")
		}
		peak = max(peak, sc.active)
		if e.pool.used() > e.pool.n || e.pool.reserved < 0 {
			t.Fatalf("pool overcommitted: used %d, reserved %d", e.pool.used(), e.pool.reserved)
		}
		if sc.build() {
			sc.step()
		}
	}
	if peak != 5 {
		t.Errorf("peak %d sequences at once, want 5", peak)
	}
	for i, j := range jobs {
		if _, done, res, err := j.take(); !done || err != nil || res.CompletionTokens != 11 {
			t.Errorf("job %d: done %v, %v, %+v", i, done, err, res)
		}
	}
	if e.pool.used() != 0 || e.pool.reserved != 0 {
		t.Errorf("after: used %d, reserved %d", e.pool.used(), e.pool.reserved)
	}
}

func TestAdmissionQueueFullAndTooLarge(t *testing.T) {
	e, sc := idleEngine(t, EngineConfig{Slots: 4, QueueSize: 1, blockSize: 8, kvBlocks: 3})
	// The pool holds 24 positions: a request reaching further is refused
	// at once, naming the pool's size.
	_, err := e.queueJob(t, seqTokens(1, 10), 15)
	var ce *ContextLengthError
	if !errors.As(err, &ce) || ce.Limit != 24 {
		t.Fatalf("too large for the pool: %v", err)
	}
	a, err := e.queueJob(t, seqTokens(1, 10), 10) // 3 blocks: all of them
	if err != nil {
		t.Fatal(err)
	}
	sc.admit()
	b, err := e.queueJob(t, seqTokens(1, 3), 3)
	if err != nil {
		t.Fatal(err)
	}
	sc.admit() // b waits for memory…
	if sc.waiting != b || sc.active != 1 {
		t.Fatalf("waiting %v, active %d", sc.waiting == b, sc.active)
	}
	// …outside the queue, which takes one more, then is full.
	if _, err := e.queueJob(t, seqTokens(1, 3), 3); err != nil {
		t.Fatal(err)
	}
	if _, err := e.queueJob(t, seqTokens(1, 3), 3); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("full queue: %v", err)
	}
	// A job that bypassed Prepare and can never fit fails, not hangs.
	huge := e.newJob(context.Background(), &Prepared{IDs: seqTokens(1, 30), MaxNewTokens: 5}, -1)
	s := &seq{cache: e.pool.newCache(e.m.Config.NPositions)}
	if ok, err := sc.reserve(s, huge); ok || !errors.As(err, &ce) || s.cache.Len() != 0 || s.cache.res != 0 {
		t.Fatalf("reserve of a job larger than the pool: %v %v", ok, err)
	}
	for sc.active > 0 || sc.waiting != nil || e.Stats().Queued > 0 {
		sc.admit()
		if sc.build() {
			sc.step()
		}
	}
	for _, j := range []*genJob{a, b} {
		if _, done, _, err := j.take(); !done || err != nil {
			t.Errorf("done %v, %v", done, err)
		}
	}
}

// TestStreamsThatFit admits as many sequences as the pool's accounting
// says fit, through a running engine: 124M's and gpt2-xl's figures in
// the report come from the same arithmetic (kvBlockBytes).
func TestStreamsThatFit(t *testing.T) {
	m := loadTiny(t)
	const budgetMB, reach = 1, 48 // 16 prompt + 32 new tokens
	blocks := int((budgetMB << 20) / kvBlockBytes(m.Config, kvBlockSize))
	want := blocks / ((reach + kvBlockSize - 1) / kvBlockSize)
	e := newEngine(m, EngineConfig{Slots: 64, QueueSize: 64, KVCacheMB: budgetMB})
	sc := e.newScheduler()
	for i := range want + 3 {
		if _, err := e.queueJob(t, seqTokens(1000+i*16, 16), reach-16); err != nil {
			t.Fatal(err)
		}
	}
	sc.admit()
	if sc.active != want || e.Stats().Queued != 3 {
		t.Errorf("%d sequences admitted in %d MiB (%d blocks), want %d; %d queued", sc.active, budgetMB, blocks, want, e.Stats().Queued)
	}
}
