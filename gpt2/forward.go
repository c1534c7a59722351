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
	scores    [][]float32 // per attention part: (P)

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
	wpe := data(m.wpe)
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
		m.pool.For(len(a.scores), a.attnFn)
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
	if len(ids) == 0 {
		return nil, ErrEmptyPrompt
	}
	if len(ids) > m.Config.NPositions {
		return nil, &ContextLengthError{PromptTokens: len(ids), Limit: m.Config.NPositions}
	}
	const chunk = 64
	V := m.Config.VocabSize
	a := m.newActivations(chunk, chunk)
	cache := m.NewKVCache()
	out := make([]float32, 0, len(ids)*V)
	for start := 0; start < len(ids); start += chunk {
		st := []step{{cache: cache, tokens: ids[start:min(start+chunk, len(ids))], allLogits: true}}
		if err := m.forward(a, st); err != nil {
			return nil, err
		}
		out = append(out, st[0].logits...)
	}
	return out, nil
}

// layerNorm writes LayerNorm(in) to out row by row; in is (rows, C).
func (m *Model) layerNorm(a *activations, out, in []float32, ln layerNorm) {
	a.normLN, a.normIn, a.normTo = ln, in, out
	m.pool.For(len(in)/m.Config.NEmbd, a.normFn)
}

func (a *activations) normRows(start, end int) {
	C := a.m.Config.NEmbd
	eps := a.m.Config.LayerNormEpsilon
	w, b := data(a.normLN.w), data(a.normLN.b)
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
	C := a.m.Config.NEmbd
	for r := 0; r < a.rows; r++ {
		k, v := a.rowCache[r].layer(l)
		p := a.rowPos[r]
		q := a.qkv[r*3*C : (r+1)*3*C]
		copy(k[p*C:(p+1)*C], q[C:2*C])
		copy(v[p*C:(p+1)*C], q[2*C:3*C])
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
			k, v := a.rowCache[r].layer(a.layer)
			q := a.qkv[r*3*C+h*D : r*3*C+(h+1)*D]
			out := a.att[r*C+h*D : r*C+(h+1)*D]
			attendHead(out, q, k, v, scores, a.rowPos[r], h*D, C, scale)
		}
	}
}

// attendHead computes one head's attention output for one query at
// position pos: out (D) = softmax(q·K[0..pos]ᵀ·scale) · V[0..pos], where
// K and V are (P, C) planes and the head's slice starts at column off.
func attendHead(out, q, k, v, scores []float32, pos, off, C int, scale float32) {
	D := len(q)
	s := scores[:pos+1]
	for j := range s {
		s[j] = dot(q, k[j*C+off:j*C+off+D]) * scale
	}
	mx := maxf(s)
	var sum float32
	for j, x := range s {
		e := float32(math.Exp(float64(x - mx)))
		s[j] = e
		sum += e
	}
	clear(out)
	inv := 1 / sum
	for j, w := range s {
		axpy(w*inv, v[j*C+off:j*C+off+D], out)
	}
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

// geluTanh is gelu_new: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
func geluTanh(h []float32) {
	const c = 0.7978845608028654 // sqrt(2/pi)
	for i, x := range h {
		xf := float64(x)
		h[i] = float32(0.5 * xf * (1 + math.Tanh(c*(xf+0.044715*xf*xf*xf))))
	}
}

// residualAdd: x += y, both (M, C).
func residualAdd(x, y []float32) {
	for i, v := range y {
		x[i] += v
	}
}
