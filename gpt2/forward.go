package gpt2

import (
	"fmt"
	"math"
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

// activations is every buffer a forward pass needs, allocated once for up
// to maxTokens rows (tokens of all sequences in one step) so the decode
// loop allocates nothing.
type activations struct {
	maxTokens int
	x         []float32 // (M, C) residual stream
	xn        []float32 // (M, C) layer-norm output
	qkv       []float32 // (M, 3C)
	att       []float32 // (M, C) attention output, heads concatenated
	tmp       []float32 // (M, C) projection output
	h         []float32 // (M, F) MLP hidden
	last      []float32 // (B, C) final-norm rows that need logits
	logits    []float32 // (B, V)
	rowCache  []*KVCache
	rowPos    []int
	rowBlock  []bool      // row's attention runs in a blocked (GEMM) pass
	scores    [][]float32 // per attention part: (P)

	// Blocked attention for prompt chunks (see attendBlock).
	qp, sc, vt []float32 // (M, D), (M, P), (D, P)
	qk, sv     Linear    // Q·Kᵀ and S·V as Linear layers over the cache

	// Work for the pool's closures, set before each parallel call; the
	// closures are built once so calling them allocates nothing.
	layer  int
	rows   int
	attnFn func(start, end int)
	geluFn func(start, end int)
	normFn func(start, end int)
	normLN layerNorm
	normIn []float32
	normTo []float32
	m      *Model
}

// newActivations allocates buffers for steps of up to maxTokens tokens and
// up to maxSeqs sequences wanting logits.
func (m *Model) newActivations(maxTokens, maxSeqs int) *activations {
	c := m.Config
	C, F, P := c.NEmbd, c.Inner(), c.NPositions
	parts := m.pool.Size() * 4
	a := &activations{
		maxTokens: maxTokens,
		x:         make([]float32, maxTokens*C),
		xn:        make([]float32, maxTokens*C),
		qkv:       make([]float32, maxTokens*3*C),
		att:       make([]float32, maxTokens*C),
		tmp:       make([]float32, maxTokens*C),
		h:         make([]float32, maxTokens*F),
		last:      make([]float32, maxSeqs*C),
		logits:    make([]float32, maxSeqs*c.VocabSize), // (B, V)
		rowCache:  make([]*KVCache, maxTokens),
		rowPos:    make([]int, maxTokens),
		rowBlock:  make([]bool, maxTokens),
		qp:        make([]float32, maxTokens*c.HeadDim()),
		sc:        make([]float32, maxTokens*P),
		vt:        make([]float32, c.HeadDim()*P),
		scores:    make([][]float32, parts),
		m:         m,
	}
	for i := range a.scores {
		a.scores[i] = make([]float32, P)
	}
	a.attnFn = a.attentionParts
	a.geluFn = a.geluRows
	a.normFn = a.normRows
	return a
}

// forward runs the transformer over every step's new tokens at once and
// leaves, for each step with wantLogits, the next-token logits in
// step.logits. All tokens go through each weight matrix together, so the
// weights are read once per step however many sequences share it.
func (m *Model) forward(a *activations, steps []step) error {
	cfg := m.Config
	C := cfg.NEmbd
	M, B := 0, 0
	for i := range steps {
		s := &steps[i]
		if s.cache.n+len(s.tokens) > s.cache.ctx {
			return &ContextLengthError{PromptTokens: s.cache.n, NewTokens: len(s.tokens), Limit: s.cache.ctx}
		}
		for j, t := range s.tokens {
			a.rowBlock[M+j] = len(s.tokens) >= blockAttnMin
			if t < 0 || t >= cfg.VocabSize {
				return &ParamError{Param: "token", Msg: fmt.Sprintf("id %d outside the vocabulary", t)}
			}
			a.rowCache[M+j] = s.cache
			a.rowPos[M+j] = s.cache.n + j
		}
		M += len(s.tokens)
		switch {
		case s.allLogits:
			B += len(s.tokens)
		case s.wantLogits:
			B++
		}
	}
	if M > a.maxTokens || B*C > len(a.last) {
		return fmt.Errorf("gpt2: step of %d tokens / %d sequences exceeds the activations' capacity", M, B)
	}
	a.rows = M

	// x = wte[token] + wpe[position]
	wpe := m.wpeF
	r := 0
	for i := range steps {
		for _, t := range steps[i].tokens {
			x := a.x[r*C : (r+1)*C]
			m.wte.row(x, t)
			pos := a.rowPos[r]
			for k, p := range wpe[pos*C : (pos+1)*C] {
				x[k] += p
			}
			r++
		}
	}

	x, xn := a.x[:M*C], a.xn[:M*C]
	for l := range m.layers {
		blk := &m.layers[l]
		a.layer = l
		// Attention sub-block: x += proj(attention(ln_1(x)))
		m.layerNorm(a, xn, x, blk.ln1)
		m.pool.linear(a.qkv, xn, M, blk.attn)
		a.storeKV(l)
		m.attention(a, steps)
		m.pool.linear(a.tmp, a.att, M, blk.proj)
		residualAdd(x, a.tmp[:M*C])
		// MLP sub-block: x += c_proj(gelu(c_fc(ln_2(x))))
		m.layerNorm(a, xn, x, blk.ln2)
		m.pool.linear(a.h, xn, M, blk.fc)
		m.pool.For(M, a.geluFn)
		m.pool.linear(a.tmp, a.h, M, blk.fcProj)
		residualAdd(x, a.tmp[:M*C])
	}

	// Logits only for the last token of the steps that want them.
	b := 0
	r = 0
	for i := range steps {
		n := len(steps[i].tokens)
		r += n
		switch {
		case steps[i].allLogits:
			copy(a.last[b*C:(b+n)*C], x[(r-n)*C:r*C])
			b += n
		case steps[i].wantLogits:
			copy(a.last[b*C:(b+1)*C], x[(r-1)*C:r*C])
			b++
		}
	}
	for i := range steps {
		steps[i].cache.n += len(steps[i].tokens)
	}
	if B == 0 {
		return nil
	}
	m.layerNorm(a, a.last[:B*C], a.last[:B*C], m.lnF)
	m.pool.linear(a.logits, a.last[:B*C], B, m.wte)
	V := cfg.VocabSize
	b = 0
	for i := range steps {
		n := 0
		switch {
		case steps[i].allLogits:
			n = len(steps[i].tokens)
		case steps[i].wantLogits:
			n = 1
		}
		steps[i].logits = a.logits[b*V : (b+n)*V]
		b += n
	}
	return nil
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

// layerNorm writes LayerNorm(in) to out row by row; in is (rows, C).
func (m *Model) layerNorm(a *activations, out, in []float32, ln layerNorm) {
	a.normLN, a.normIn, a.normTo = ln, in, out
	m.pool.For(len(in)/m.Config.NEmbd, a.normFn)
}

func (a *activations) normRows(start, end int) {
	C := a.m.Config.NEmbd
	eps := a.m.Config.LayerNormEpsilon
	w, b := a.normLN.w, a.normLN.b
	for r := start; r < end; r++ {
		layerNormRow(a.normTo[r*C:(r+1)*C], a.normIn[r*C:(r+1)*C], w, b, eps)
	}
}

// layerNormRow: out = (x - mean) / sqrt(var + eps) * w + b, all (C).
// Statistics accumulate in float64.
func layerNormRow(out, x, w, b []float32, eps float64) {
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

// storeKV copies the keys and values of every row (from qkv) into the
// row's sequence cache at the row's position, for layer l.
func (a *activations) storeKV(l int) {
	cfg := a.m.Config
	C, H, D := cfg.NEmbd, cfg.NHead, cfg.HeadDim()
	for r := 0; r < a.rows; r++ {
		cache := a.rowCache[r]
		k, v := cache.layer(l)
		p := a.rowPos[r]
		q := a.qkv[r*3*C : (r+1)*3*C]
		for h := 0; h < H; h++ {
			dst := (h*cache.ctx + p) * D
			copy(k[dst:dst+D], q[C+h*D:C+(h+1)*D])
			// Values are stored transposed: column p of head h's (D, P).
			vt := v[h*cache.ctx*D:]
			for d, x := range q[2*C+h*D : 2*C+(h+1)*D] {
				vt[d*cache.ctx+p] = x
			}
		}
	}
}

// blockAttnMin is the fewest tokens a sequence adds in one step for its
// attention to run as two matrix products instead of row by row.
const blockAttnMin = 16

// attention computes causal self-attention for every row of the step into
// a.att: rows of long prompt chunks as matrix products per (sequence,
// head), the rest (decode tokens, short chunks) row by row in parallel.
func (m *Model) attention(a *activations, steps []step) {
	m.pool.For(len(a.scores), a.attnFn)
	r := 0
	for i := range steps {
		n := len(steps[i].tokens)
		if n >= blockAttnMin {
			for h := 0; h < m.Config.NHead; h++ {
				m.attendBlock(a, steps[i].cache, r, n, h)
			}
		}
		r += n
	}
}

// attendBlock computes head h's attention for rows [r0, r0+n), the
// consecutive new tokens of one sequence at positions p0 … p0+n-1:
//
//	S (n, p0+n) = (Q·scale) · Kᵀ      keys of every visible position
//	S           = softmax(causal mask(S)) row by row
//	O (n, D)    = S · V
//
// both products through the pool's GEMM kernels.
func (m *Model) attendBlock(a *activations, cache *KVCache, r0, n, h int) {
	cfg := m.Config
	C, D := cfg.NEmbd, cfg.HeadDim()
	p0 := a.rowPos[r0]
	keys := p0 + n
	k, v := cache.layer(a.layer)
	head := h * cache.ctx * D
	scale := float32(1 / math.Sqrt(float64(D)))
	qp := a.qp[:n*D]
	for i := 0; i < n; i++ {
		q := a.qkv[(r0+i)*3*C+h*D : (r0+i)*3*C+(h+1)*D]
		for d, x := range q {
			qp[i*D+d] = x * scale
		}
	}
	a.qk = Linear{In: D, Out: keys, Type: WeightF32, F32: k[head : head+keys*D]}
	sc := a.sc[:n*keys]
	m.pool.linear(sc, qp, n, &a.qk)
	for i := 0; i < n; i++ {
		row := sc[i*keys : (i+1)*keys]
		softmaxInPlace(row[:p0+i+1])
		clear(row[p0+i+1:])
	}
	// The cache holds Vᵀ with rows of P; the kernel wants rows of keys.
	vt := a.vt[:D*keys]
	for d := 0; d < D; d++ {
		copy(vt[d*keys:(d+1)*keys], v[head+d*cache.ctx:head+d*cache.ctx+keys])
	}
	a.sv = Linear{In: keys, Out: D, Type: WeightF32, F32: vt}
	out := a.qp[:n*D] // Q is no longer needed
	m.pool.linear(out, sc, n, &a.sv)
	for i := 0; i < n; i++ {
		copy(a.att[(r0+i)*C+h*D:(r0+i)*C+(h+1)*D], out[i*D:(i+1)*D])
	}
}

// attentionParts runs causal self-attention for a share of the (row, head)
// pairs. Part i of len(a.scores) takes a contiguous range of pairs and
// uses a.scores[i] as its scratch.
func (a *activations) attentionParts(start, end int) {
	cfg := a.m.Config
	H, D, C := cfg.NHead, cfg.HeadDim(), cfg.NEmbd
	total := a.rows * H
	parts := len(a.scores)
	scale := float32(1 / math.Sqrt(float64(D)))
	for part := start; part < end; part++ {
		lo, hi := part*total/parts, (part+1)*total/parts
		scores := a.scores[part]
		for pair := lo; pair < hi; pair++ {
			r, h := pair/H, pair%H
			if a.rowBlock[r] {
				continue
			}
			cache := a.rowCache[r]
			k, v := cache.layer(a.layer)
			n := a.rowPos[r] + 1
			head := h * cache.ctx * D
			q := a.qkv[r*3*C+h*D : r*3*C+(h+1)*D]
			out := a.att[r*C+h*D : r*C+(h+1)*D]
			attendHead(out, q, k[head:head+n*D], v[head:head+D*cache.ctx], cache.ctx, scores[:n], scale)
		}
	}
}

// attendHead computes one head's attention output for one query:
// out (D) = softmax(q·Kᵀ·scale) · V, where K is the (n, D) keys of the
// positions the query may see, vt holds Vᵀ as D rows of stride ldv (the
// first n of each are those positions' values), and scores is (n)
// scratch. Both products are dot products over long contiguous rows.
func attendHead(out, q, k, vt []float32, ldv int, scores []float32, scale float32) {
	D, n := len(q), len(scores)
	for j := range scores {
		scores[j] = dot(q, k[j*D:(j+1)*D]) * scale
	}
	softmaxInPlace(scores)
	for d := range out {
		out[d] = dot(scores, vt[d*ldv:d*ldv+n])
	}
}

// softmaxInPlace replaces x with softmax(x).
func softmaxInPlace(x []float32) {
	mx := maxf(x)
	var sum float32
	for j, v := range x {
		e := expf(v - mx)
		x[j] = e
		sum += e
	}
	scale(x, 1/sum)
}

// geluRows applies GPT-2's activation in place to MLP rows [start, end).
func (a *activations) geluRows(start, end int) {
	F := a.m.Config.Inner()
	h := a.h[start*F : end*F]
	if a.m.Config.ActivationFunction == "gelu" {
		for i, x := range h {
			h[i] = float32(0.5 * float64(x) * (1 + math.Erf(float64(x)/math.Sqrt2)))
		}
		return
	}
	geluTanh(h)
}

// geluTanh is gelu_new: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))),
// with tanh(y) = 1 - 2/(exp(2y) + 1).
func geluTanh(h []float32) {
	const c = 0.7978845608028654 // sqrt(2/pi)
	for i, x := range h {
		y := 2 * c * (x + 0.044715*x*x*x)
		h[i] = x - x/(expf(y)+1)
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

// residualAdd: x += y, both (M, C).
func residualAdd(x, y []float32) {
	for i, v := range y {
		x[i] += v
	}
}

// PromptLogprobs scores a prompt: entry i is the log-probability of ids[i]
// given ids[:i] with the top most likely alternatives at that position;
// entry 0 has none (Logprob NaN, no Top), as nothing precedes it. It runs
// its own forward passes beside the engine's steps, sharing the worker
// pool.
func (m *Model) PromptLogprobs(ids []int, top int) ([]TokenLogprob, error) {
	for _, id := range ids {
		if id < 0 || id >= m.Config.VocabSize {
			return nil, &ParamError{Param: "prompt", Msg: fmt.Sprintf("token id %d outside the vocabulary", id)}
		}
	}
	V := m.Config.VocabSize
	out := make([]TokenLogprob, len(ids))
	err := m.scorePrompt(ids, func(start int, logits []float32) {
		for r := 0; r < len(logits)/V; r++ {
			pos := start + r + 1 // row r predicts the token after it
			if pos == len(ids) {
				break
			}
			alts := make([]TopLogprob, top)
			lp := logSoftmax(logits[r*V:(r+1)*V], ids[pos], alts)
			for k := range alts {
				if alts[k].ID >= 0 {
					alts[k].Text = m.Tokenizer.TokenText(alts[k].ID)
				}
			}
			out[pos] = TokenLogprob{ID: ids[pos], Text: m.Tokenizer.TokenText(ids[pos]), Logprob: lp, Top: alts}
		}
	})
	if err != nil {
		return nil, err
	}
	out[0] = TokenLogprob{ID: ids[0], Text: m.Tokenizer.TokenText(ids[0]), Logprob: math.NaN()}
	return out, nil
}
