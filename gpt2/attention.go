package gpt2

import (
	"math"

	"gorgonia.org/tensor"
)

// blockAttnMin is the fewest tokens a sequence adds in one step for its
// attention to run as two matrix products instead of row by row.
const blockAttnMin = 16

// attnRowBlock is how many query rows of a blocked span share one pair of
// products in attendBlock: smaller blocks skip more of the causal mask's
// zeros, at a pool call each.
const attnRowBlock = 128

// attention: att (n, C) = causal self-attention of each row's query (from
// qkv (n, 3C)) over the keys and values of its sequence up to its
// position, at layer l. It first stores the rows' own keys and values in
// their caches. Rows of blocked spans (long prompt chunks) run as matrix
// products per (sequence, head); the rest (decode tokens, short chunks)
// in the work items planAttention listed, across the pool.
func (a *activations) attention(att, qkv *tensor.Dense, n, l int) {
	a.args.qkv, a.args.att, a.args.layer, a.args.n = qkv.Float32s(), att.Float32s(), l, n
	a.args.qscale = float32(1 / math.Sqrt(float64(a.qp.Shape()[1])))
	a.storeKV()
	a.pool.Each(len(a.items), a.attnFn)
	a.mergeParts()
	for _, sp := range a.spans {
		for h := 0; h < a.heads; h++ {
			a.attendBlock(sp, h)
		}
	}
}

// storeKV copies the keys and values of the rows in flight (from qkv)
// into each row's cache at the row's position, for the layer in args:
// position p goes to block blocks[p/B] at offset p%B, its keys as row p%B
// of each head's (B, D) run and its values as column p%B of the (D, B).
func (a *activations) storeKV() {
	qkv, l := a.args.qkv, a.args.layer
	H, D := a.heads, a.qp.Shape()[1]
	C := H * D
	for r := 0; r < a.args.n; r++ {
		pool, p := a.cache[r].pool, a.pos[r]
		B := pool.bs
		blk := int(a.cache[r].blocks[p/B]) * pool.stride
		off := p % B
		kv := pool.layer(l)
		q := qkv[r*3*C : (r+1)*3*C]
		for h := 0; h < H; h++ {
			head := blk + h*B*D
			dst := head + off*D
			keys, vals := q[C+h*D:C+(h+1)*D], q[2*C+h*D:2*C+(h+1)*D]
			switch kv.kind {
			case kvF32:
				copy(kv.k[dst:dst+D], keys)
				vh := kv.v[head+off:]
				for d, x := range vals {
					vh[d*B] = x
				}
			case kvBF16:
				storeNarrow(kv.kh[dst:dst+D], kv.vh[head+off:], keys, vals, B, bf16FromF32)
			case kvF16:
				storeNarrow(kv.kh[dst:dst+D], kv.vh[head+off:], keys, vals, B, f16FromF32)
			}
		}
	}
}

// storeNarrow stores one position's keys (D) as the row k and its values
// as the column of stride B starting at v, each rounded by narrow.
func storeNarrow(k, v []uint16, keys, vals []float32, B int, narrow func(float32) uint16) {
	for d, x := range keys {
		k[d] = narrow(x)
	}
	for d, x := range vals {
		v[d*B] = narrow(x)
	}
}

// attendBlock computes head h's attention for the span's rows, the
// consecutive new tokens of one sequence at positions p0 … p0+n-1:
//
//	S (n, p0+n) = (Q·scale) · Kᵀ      keys of every visible position
//	S           = softmax(causal mask(S)) row by row
//	O (n, D)    = S · V
//
// both products through the pool's GEMM kernels, over the head's keys
// (p0+n, D) and values (D, p0+n) gathered from the cache's blocks.
func (a *activations) attendBlock(sp span, h int) {
	qkv, att, l := a.args.qkv, a.args.att, a.args.layer
	D := a.qp.Shape()[1]
	C := D * a.heads
	c, n := sp.cache, sp.n
	pool := c.pool
	B := pool.bs
	p0 := a.pos[sp.r0]
	keys := p0 + n
	scale := float32(1 / math.Sqrt(float64(D)))
	qp := a.qp.Float32s()[:n*D]
	for i := 0; i < n; i++ {
		q := qkv[(sp.r0+i)*3*C+h*D : (sp.r0+i)*3*C+(h+1)*D]
		for d, x := range q {
			qp[i*D+d] = x * scale
		}
	}
	// Gather the head's keys into rows of D, block by block: the kernels
	// want each operand contiguous.
	kt := a.kt.Float32s()[:keys*D]
	kv := pool.layer(l)
	for j0 := 0; j0 < keys; j0 += B {
		nb := min(B, keys-j0)
		head := int(c.blocks[j0/B])*pool.stride + h*B*D
		a.widenKV(kt[j0*D:(j0+nb)*D], kv, head)
	}
	// Causal: rows [i0, i0+rows) see no key past p0+i0+rows, so the
	// products run over row blocks, each against the keys it can see,
	// which skips most of the masked upper triangle.
	out := qp // each block's Q rows are no longer needed once its scores are
	for i0 := 0; i0 < n; i0 += attnRowBlock {
		rows := min(attnRowBlock, n-i0)
		seen := p0 + i0 + rows
		a.qk = linear{In: D, Out: seen, Type: weightF32, F32: kt[:seen*D]}
		sc := a.sc.Float32s()[:rows*seen]
		a.pool.linear(sc, qp[i0*D:], rows, &a.qk)
		for i := 0; i < rows; i++ {
			row := sc[i*seen : (i+1)*seen]
			softmaxInPlace(row[:p0+i0+i+1])
			clear(row[p0+i0+i+1:])
		}
		// The values of the keys seen, as D rows of seen.
		vt := a.vt.Float32s()[:D*seen]
		for j0 := 0; j0 < seen; j0 += B {
			nb := min(B, seen-j0)
			head := int(c.blocks[j0/B])*pool.stride + h*B*D
			for d := 0; d < D; d++ {
				a.widenKV(vt[d*seen+j0:d*seen+j0+nb], kvLayer{kind: kv.kind, k: kv.v, kh: kv.vh}, head+d*B)
			}
		}
		a.sv = linear{In: seen, Out: D, Type: weightF32, F32: vt}
		a.pool.linear(out[i0*D:], sc, rows, &a.sv)
	}
	for i := 0; i < n; i++ {
		copy(att[(sp.r0+i)*C+h*D:(sp.r0+i)*C+(h+1)*D], out[i*D:(i+1)*D])
	}
}

// widenKV copies len(dst) keys of layer kv from offset off into dst,
// widening 16-bit ones to float32.
func (a *activations) widenKV(dst []float32, kv kvLayer, off int) {
	switch kv.kind {
	case kvF32:
		copy(dst, kv.k[off:off+len(dst)])
	case kvBF16:
		a.pool.kern.cvtBF16(dst, kv.kh[off:off+len(dst)])
	case kvF16:
		a.pool.kern.cvtF16(dst, kv.kh[off:off+len(dst)])
	}
}

// Decode attention (flash-decoding): the rows not blocked — decode tokens
// and short prompt chunks — attend over their context in work items of
// (row, head, positions [p0, p1)). The items run across the pool, handed
// out one at a time, so one sequence with a long context keeps every
// worker busy and a worker slowed by another process takes fewer. An item
// walks its positions block by block — each block of the paged cache is
// one chunk for the kernels: keys (nb, D) contiguous, values D rows of nb
// at stride B — computing every score, then its local softmax (max and
// sum of exponentials), then the weighted sum of values; when a
// (row, head) is split over several items, their partial results are
// merged by the online-softmax rule (mergeParts).
const (
	attnPieceMin       = 4 * kvBlockSize // fewest positions worth an item of their own
	attnItemsPerWorker = 8               // items a pass aims for per worker, splitting contexts to reach it
)

// attnItem is one work item of decode attention: row r's query of head h
// over the positions [p0, p1) of its cache. part is the slot of its
// partial result when the (row, head) is split over several items, or -1
// when the item covers the whole context and writes the output itself.
type attnItem struct {
	r, h, p0, p1, part int32
}

// attnGroup is a (row, head) split over the partial results [part0,
// part0+n).
type attnGroup struct {
	r, h, part0, n int32
}

// attnState is the softmax state of a partial result over some positions:
// m is their largest score and l = Σ exp(s_j - m); the partial result
// itself is Σ exp(s_j - m)·v_j.
type attnState struct {
	m, l float32
}

// attnTarget is the number of items decode attention aims for.
func (a *activations) attnTarget() int { return attnItemsPerWorker * a.pool.Size() }

// planAttention lists the work items of decode attention for the first n
// rows of the pass (plan has set pos and blocked). A (row, head) is split
// only while the pass has fewer (row, head) pairs than attnTarget, into
// at most as many pieces as bring it there, each of pieceLen
// (attnPieceMin) or more positions, whole blocks of the row's cache: so
// the partial results number fewer than 2·attnTarget, the size of their
// scratch.
func (a *activations) planAttention(n int) {
	a.items, a.groups = a.items[:0], a.groups[:0]
	H := a.heads
	pairs := 0
	for r := 0; r < n; r++ {
		if !a.blocked[r] {
			pairs += H
		}
	}
	target := a.attnTarget()
	split := 1
	if pairs > 0 && pairs < target {
		split = (target + pairs - 1) / pairs
	}
	var parts int32
	for r := 0; r < n; r++ {
		if a.blocked[r] {
			continue
		}
		ctx := a.pos[r] + 1
		pieces := min(split, (ctx+a.pieceLen-1)/a.pieceLen)
		if pieces <= 1 {
			for h := 0; h < H; h++ {
				a.items = append(a.items, attnItem{r: int32(r), h: int32(h), p1: int32(ctx), part: -1})
			}
			continue
		}
		B := a.cache[r].pool.bs
		step := ((ctx+pieces-1)/pieces + B - 1) / B * B
		for h := 0; h < H; h++ {
			g := attnGroup{r: int32(r), h: int32(h), part0: parts}
			for p0 := 0; p0 < ctx; p0 += step {
				a.items = append(a.items, attnItem{r: int32(r), h: int32(h), p0: int32(p0), p1: int32(min(p0+step, ctx)), part: parts})
				parts++
				g.n++
			}
			a.groups = append(a.groups, g)
		}
	}
}

// attendItem runs decode attention's work item i with slot's scratch.
func (a *activations) attendItem(slot, i int) {
	it := a.items[i]
	qkv, att, l := a.args.qkv, a.args.att, a.args.layer
	H, D := a.heads, a.qp.Shape()[1]
	C := H * D
	r, h := int(it.r), int(it.h)
	c := a.cache[r]
	q := qkv[r*3*C+h*D : r*3*C+(h+1)*D]
	acc := att[r*C+h*D : r*C+(h+1)*D]
	if it.part >= 0 {
		acc = a.parts[it.part]
	}
	p0, p1 := int(it.p0), int(it.p1)
	st := attendSpan(a.pool.kern.attn, acc, q, c.pool.layer(l), c.blocks, c.pool.stride, h*c.pool.bs*D, c.pool.bs,
		p0, a.scores[slot][:p1-p0], a.args.qscale)
	if it.part < 0 {
		scale(acc, 1/st.l)
		return
	}
	a.partSt[it.part] = st
}

// attendSpan computes one head's attention of query q (D) over the
// positions [p0, p0+len(s)) of a paged cache, p0 a multiple of B: position
// j is in block blocks[j/B], whose head's keys are the (B, D) run at
// blocks[j/B]·stride + head of kv's keys and values the (D, B) run at the
// same offset of its values (float32 or 16-bit, as kv.kind). It sets acc (D) to Σ exp(s_j - m)·v_j with s (scratch) the
// scaled scores, and returns m = max s_j and l = Σ exp(s_j - m): acc / l
// is the attention output over those positions.
func attendSpan(ak *attnKernels, acc, q []float32, kv kvLayer, blocks []int32, stride, head, B, p0 int, s []float32, qscale float32) attnState {
	D, n := len(q), len(s)
	for j := 0; j < n; j += B {
		nb := min(B, n-j)
		blk := int(blocks[(p0+j)/B])*stride + head
		switch kv.kind {
		case kvF32:
			ak.scores(s[j:j+nb], q, kv.k[blk:blk+nb*D], qscale)
		case kvBF16:
			ak.scoresBF16(s[j:j+nb], q, kv.kh[blk:blk+nb*D], qscale)
		case kvF16:
			ak.scoresF16(s[j:j+nb], q, kv.kh[blk:blk+nb*D], qscale)
		}
	}
	st := attnState{m: maxf(s)}
	st.l = expShiftSum(s, st.m)
	clear(acc)
	for j := 0; j < n; j += B {
		nb := min(B, n-j)
		blk, end := int(blocks[(p0+j)/B])*stride+head, (D-1)*B+nb
		switch kv.kind {
		case kvF32:
			ak.values(acc, s[j:j+nb], kv.v[blk:blk+end], B)
		case kvBF16:
			ak.valuesBF16(acc, s[j:j+nb], kv.vh[blk:blk+end], B)
		case kvF16:
			ak.valuesF16(acc, s[j:j+nb], kv.vh[blk:blk+end], B)
		}
	}
	return st
}

// mergeParts combines the partial results of every split (row, head) into
// its attention output: with M the largest of the parts' maxima, out =
// Σ accᵢ·exp(mᵢ-M) / Σ lᵢ·exp(mᵢ-M).
func (a *activations) mergeParts() {
	att := a.args.att
	D := a.qp.Shape()[1]
	C := a.heads * D
	for _, g := range a.groups {
		sts := a.partSt[g.part0 : g.part0+g.n]
		mx := float32(math.Inf(-1))
		for _, st := range sts {
			mx = max(mx, st.m)
		}
		out := att[int(g.r)*C+int(g.h)*D : int(g.r)*C+int(g.h+1)*D]
		clear(out)
		var sum float32
		for i, st := range sts {
			f := expf(st.m - mx)
			sum += st.l * f
			for d, v := range a.parts[int(g.part0)+i] {
				out[d] += f * v
			}
		}
		scale(out, 1/sum)
	}
}

// softmaxInPlace replaces x with softmax(x).
func softmaxInPlace(x []float32) {
	mx := maxf(x)
	sum := expShiftSum(x, mx)
	scale(x, 1/sum)
}
