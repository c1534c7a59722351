package gpt2

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

// step is one sequence's share of a forward pass: its tokens are appended
// at positions cache.Len(), cache.Len()+1, ... and, if logits is wanted,
// the logits after its last token are written to the activations.
type step struct {
	cache      *KVCache
	tokens     []int
	wantLogits bool
	allLogits  bool      // logits for every token, not just the last
	logits     []float32 // set by forward: (V) or (len(tokens), V) view into the activations
}

// logitRows returns how many rows of logits the step wants.
func (s *step) logitRows() int {
	switch {
	case s.allLogits:
		return len(s.tokens)
	case s.wantLogits:
		return 1
	}
	return 0
}

// activations is every buffer a forward pass needs, as tensors allocated
// once for up to T rows (the tokens of all sequences in one step) of which
// up to B want logits, so the decode loop allocates nothing. The shapes
// are set here from the model's and are the operations' dimensions.
type activations struct {
	x      *tensor.Dense // (T, C) residual stream
	xn     *tensor.Dense // (T, C) layer-norm output
	qkv    *tensor.Dense // (T, 3C) queries, keys, values
	att    *tensor.Dense // (T, C) attention output, heads concatenated
	proj   *tensor.Dense // (T, C) a sub-block's output, before the residual add
	h      *tensor.Dense // (T, F) MLP hidden
	last   *tensor.Dense // (B, C) the rows that want logits
	logits *tensor.Dense // (B, V)

	rows // what each row of the current pass is

	// Blocked attention of prompt chunks (see attendBlock).
	qp, sc *tensor.Dense // (T, D), (T, P)
	kt, vt *tensor.Dense // (P, D), (D, P): one head's keys and values, gathered
	qk, sv linear        // Q·Kᵀ and S·V over views of a cache

	// Decode attention (see planAttention): the work items of the pass
	// and the (row, head)s split over several, each item's partial result
	// ((2·attnTarget, D) rows, and their softmax states), and the (P)
	// score scratch of each pool slot, all viewed once here.
	items  []attnItem
	groups []attnGroup
	parts  [][]float32
	partSt []attnState
	scores [][]float32
	// pieceLen is attnPieceMin; tests shrink it to split a tiny model's
	// contexts.
	pieceLen int

	heads int     // H: attention heads
	eps   float64 // layer norm epsilon
	erf   bool    // exact GELU (activation "gelu") rather than tanh's

	// The pool runs closures made once, here, so that calling them
	// allocates nothing; each operation sets its operands in args first.
	pool           *pool
	args           opArgs
	normFn, geluFn func(start, end int)
	attnFn         func(slot, i int)
}

// rows describes each row of the pass in flight, set by plan.
type rows struct {
	token   []int      // (T)
	pos     []int      // (T) position in its sequence
	cache   []*KVCache // (T) its sequence's cache
	blocked []bool     // (T) its attention runs in a blocked pass
	spans   []span     // the sequences whose attention runs blocked
}

// span is one sequence's consecutive rows [r0, r0+n) of a pass.
type span struct {
	r0, n int
	cache *KVCache
}

// opArgs are the operands of the pool operation in flight.
type opArgs struct {
	in, out, w, b []float32 // layer norm: out = LayerNorm(in; w, b)
	h             []float32 // GELU in place, rows of cols
	cols          int
	qkv, att      []float32 // attention over n rows at layer
	n, layer      int
	qscale        float32 // 1/√D
}

// newActivations allocates buffers for steps of up to maxTokens tokens and
// up to maxSeqs sequences wanting logits.
func (m *Model) newActivations(maxTokens, maxSeqs int) *activations {
	c := m.Config
	T, B := maxTokens, maxSeqs
	C, F, P, D, V := c.NEmbd, c.Inner(), c.NPositions, c.HeadDim(), c.VocabSize
	buf := func(shape ...int) *tensor.Dense {
		return tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(shape...))
	}
	a := &activations{
		x: buf(T, C), xn: buf(T, C), qkv: buf(T, 3*C), att: buf(T, C), proj: buf(T, C), h: buf(T, F),
		last: buf(B, C), logits: buf(B, V),
		rows: rows{
			token: make([]int, T), pos: make([]int, T), cache: make([]*KVCache, T),
			blocked: make([]bool, T), spans: make([]span, 0, T/blockAttnMin+1),
		},
		qp: buf(T, D), sc: buf(T, P), kt: buf(P, D), vt: buf(D, P),
		heads: c.NHead, eps: c.LayerNormEpsilon, erf: c.ActivationFunction == "gelu",
		pool: m.pool,
	}
	target := a.attnTarget()
	a.items = make([]attnItem, 0, T*c.NHead+2*target)
	a.groups = make([]attnGroup, 0, target)
	a.parts = rowViews(buf(2*target, D))
	a.partSt = make([]attnState, 2*target)
	a.scores = rowViews(buf(m.pool.Size(), P))
	a.pieceLen = attnPieceMin
	a.normFn, a.geluFn, a.attnFn = a.normRows, a.geluRows, a.attendItem
	return a
}

// forward runs the transformer over every step's new tokens at once and
// leaves, for each step with wantLogits, the next-token logits in
// step.logits. All tokens go through each weight matrix together, so the
// weights are read once per step however many sequences share it.
//
// Every operation reads and writes the first n rows of its operands.
func (m *Model) forward(a *activations, steps []step) error {
	n, nLogits, err := a.plan(steps, m.wte.Out) // wte is (V, C)
	if err != nil {
		return err
	}
	x, xn, qkv, att, proj, h := a.x, a.xn, a.qkv, a.att, a.proj, a.h

	m.embed(x, a.token[:n], a.pos[:n]) // x = wte[token] + wpe[pos]
	for l, b := range m.layers {
		a.layerNorm(xn, x, n, b.ln1) // attention: x += proj(attention(ln_1(x)))
		a.matmul(qkv, xn, n, b.attn)
		a.attention(att, qkv, n, l)
		a.matmul(proj, att, n, b.proj)
		residual(x, proj, n)
		a.layerNorm(xn, x, n, b.ln2) // MLP: x += c_proj(gelu(c_fc(ln_2(x))))
		a.matmul(h, xn, n, b.fc)
		a.gelu(h, n)
		a.matmul(proj, h, n, b.fcProj)
		residual(x, proj, n)
	}
	gatherLogitRows(a.last, x, steps) // only the rows whose logits are wanted
	a.layerNorm(a.last, a.last, nLogits, m.lnF)
	a.matmul(a.logits, a.last, nLogits, m.wte) // the LM head is the embedding
	scatterLogits(steps, a.logits)

	for i := range steps {
		steps[i].cache.n += len(steps[i].tokens)
	}
	return nil
}

// plan checks the steps against the vocabulary and the activations'
// capacity, grows their caches by the blocks their tokens need, then records what each row of the pass is
// and which sequences' attention runs blocked (blockAttnMin tokens or
// more). It returns the number of rows and of rows wanting logits.
func (a *activations) plan(steps []step, vocab int) (n, nLogits int, err error) {
	for i := range steps {
		s := &steps[i]
		for _, t := range s.tokens {
			if t < 0 || t >= vocab {
				return 0, 0, &ParamError{Param: "token", Msg: fmt.Sprintf("id %d outside the vocabulary", t)}
			}
		}
		n += len(s.tokens)
		nLogits += s.logitRows()
	}
	if n > a.x.Shape()[0] || nLogits > a.last.Shape()[0] {
		return 0, 0, fmt.Errorf("gpt2: step of %d tokens / %d logit rows exceeds the activations' capacity", n, nLogits)
	}
	for i := range steps {
		if err := steps[i].cache.grow(steps[i].cache.n + len(steps[i].tokens)); err != nil {
			return 0, 0, err
		}
	}
	r := 0
	a.spans = a.spans[:0]
	for i := range steps {
		s := &steps[i]
		blocked := len(s.tokens) >= blockAttnMin
		if blocked {
			a.spans = append(a.spans, span{r0: r, n: len(s.tokens), cache: s.cache})
		}
		for j, t := range s.tokens {
			a.token[r], a.pos[r], a.cache[r], a.blocked[r] = t, s.cache.n+j, s.cache, blocked
			r++
		}
	}
	a.planAttention(n)
	return n, nLogits, nil
}

// gatherLogitRows copies into last (B, C) the rows of x (T, C) whose
// logits the steps want, in step order: every row of an allLogits step,
// the last row of a wantLogits one.
func gatherLogitRows(last, x *tensor.Dense, steps []step) {
	C := x.Shape()[1]
	dst, src := last.Float32s(), x.Float32s()
	b, r := 0, 0
	for i := range steps {
		r += len(steps[i].tokens)
		k := steps[i].logitRows()
		copy(dst[b*C:(b+k)*C], src[(r-k)*C:r*C])
		b += k
	}
}

// scatterLogits points each step's logits at its rows of logits (B, V),
// in the order gatherLogitRows laid them out.
func scatterLogits(steps []step, logits *tensor.Dense) {
	V := logits.Shape()[1]
	all := logits.Float32s()
	b := 0
	for i := range steps {
		k := steps[i].logitRows()
		steps[i].logits = all[b*V : (b+k)*V]
		b += k
	}
}

// PromptLogits returns the next-token logits after every prefix of ids,
// as a (len(ids), V) row-major slice, computed with a fresh KV cache in
// chunks of up to 64 tokens. It is the slow path for scoring (tests,
// echo with logprobs); generation goes through an Engine.
func (m *Model) PromptLogits(ids []int) ([]float32, error) {
	out := make([]float32, 0, len(ids)*m.Config.VocabSize)
	err := m.scorePrompt(ids, func(_ int, logits []float32) { out = append(out, logits...) })
	return out, err
}

// scorePrompt runs ids through the model with a fresh KV cache, 64 tokens
// at a time, and hands each chunk's logits ((n, V), the rows after ids
// start … start+n-1) to visit before the next chunk overwrites them.
func (m *Model) scorePrompt(ids []int, visit func(start int, logits []float32)) error {
	if len(ids) == 0 {
		return ErrEmptyPrompt
	}
	if len(ids) > m.Config.NPositions {
		return &ContextLengthError{PromptTokens: len(ids), Limit: m.Config.NPositions}
	}
	const chunk = 64
	a := m.newActivations(chunk, chunk)
	cache := m.NewKVCache()
	for start := 0; start < len(ids); start += chunk {
		st := []step{{cache: cache, tokens: ids[start:min(start+chunk, len(ids))], allLogits: true}}
		if err := m.forward(a, st); err != nil {
			return err
		}
		visit(start, st[0].logits)
	}
	return nil
}

// The operations of the forward pass, in the order it calls them. Each
// takes its operands as tensors whose shapes newActivations and the
// model's loading fixed, and works on their first n rows.

// embed: x (n, C) = wte[tokens] + wpe[pos], row by row.
func (m *Model) embed(x *tensor.Dense, tokens, pos []int) {
	C := x.Shape()[1]
	xs, wpe := x.Float32s(), m.wpe.Float32s()
	for r, t := range tokens {
		row := xs[r*C : (r+1)*C]
		m.wte.row(row, t)
		for k, p := range wpe[pos[r]*C : (pos[r]+1)*C] {
			row[k] += p
		}
	}
}

// layerNorm: out (n, C) = LayerNorm(in (n, C)) with ln's scale and shift
// (C), row by row across the pool. out may be in.
func (a *activations) layerNorm(out, in *tensor.Dense, n int, ln layerNorm) {
	C := in.Shape()[1]
	a.args.in, a.args.out = in.Float32s()[:n*C], out.Float32s()[:n*C]
	a.args.w, a.args.b = ln.w.Float32s(), ln.b.Float32s()
	a.pool.For(n, a.normFn)
}

func (a *activations) normRows(start, end int) {
	w, b := a.args.w, a.args.b
	C := len(w)
	for r := start; r < end; r++ {
		layerNormRow(a.args.out[r*C:(r+1)*C], a.args.in[r*C:(r+1)*C], w, b, a.eps)
	}
}

// layerNormRow: out = (x - mean) / sqrt(var + eps) * w + b, all (C), on
// 16 lanes where the CPU has AVX-512 and C is a multiple of 16 (every
// GPT-2 width), else as layerNormRowGeneric.
func layerNormRow(out, x, w, b []float32, eps float64) {
	if hasAVX512 && len(x) > 0 && len(x)%16 == 0 {
		layerNormVec(out, x, w, b, float32(eps))
		return
	}
	layerNormRowGeneric(out, x, w, b, eps)
}

// layerNormRowGeneric is layerNormRow with statistics accumulated in
// float64, the reference the vector kernel is held against.
func layerNormRowGeneric(out, x, w, b []float32, eps float64) {
	var sum float64
	for _, v := range x {
		sum += float64(v)
	}
	mean := sum / float64(len(x))
	var ss float64
	for _, v := range x {
		d := float64(v) - mean
		ss += d * d
	}
	inv := 1 / math.Sqrt(ss/float64(len(x))+eps)
	for i, v := range x {
		out[i] = float32((float64(v)-mean)*inv)*w[i] + b[i]
	}
}

// matmul: out (n, Out) = x (n, In) · Wᵀ + bias, across the pool.
func (a *activations) matmul(out, x *tensor.Dense, n int, l *linear) {
	a.pool.linear(out.Float32s(), x.Float32s(), n, l)
}

// gelu applies GPT-2's activation in place to h (n, F), across the pool.
func (a *activations) gelu(h *tensor.Dense, n int) {
	a.args.h, a.args.cols = h.Float32s(), h.Shape()[1]
	a.pool.For(n, a.geluFn)
}

// geluRows applies GPT-2's activation in place to MLP rows [start, end).
func (a *activations) geluRows(start, end int) {
	h := a.args.h[start*a.args.cols : end*a.args.cols]
	if a.erf {
		for i, x := range h {
			h[i] = float32(0.5 * float64(x) * (1 + math.Erf(float64(x)/math.Sqrt2)))
		}
		return
	}
	geluTanh(h)
}

// residual: x (n, C) += y (n, C).
func residual(x, y *tensor.Dense, n int) {
	C := x.Shape()[1]
	ys := y.Float32s()[:n*C]
	xs := x.Float32s()[:len(ys)]
	for i, v := range ys {
		xs[i] += v
	}
}

// expf is exp for float32 with relative error below 2e-7 (Cephes'
// expf: range reduction by ln 2, degree-5 polynomial, scaling by 2^n).
func expf(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		c1    = 0.693359375
		c2    = -2.12194440e-4
	)
	switch {
	case x > 88.3762626647949:
		return float32(math.Inf(1))
	case x < -87.3:
		return 0
	}
	// n = floor(x·log2e + 0.5), without a call: truncate, then fix up
	// negatives.
	t := x*log2e + 0.5
	ni := int32(t)
	if float32(ni) > t {
		ni--
	}
	n := float32(ni)
	r := x - n*c1 - n*c2
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	p = p*r*r + r + 1
	return p * math.Float32frombits(uint32(ni+127)<<23)
}
