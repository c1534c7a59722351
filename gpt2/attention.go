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
// row by row, (row, head) pairs split across the pool.
func (a *activations) attention(att, qkv *tensor.Dense, n, l int) {
	a.args.qkv, a.args.att, a.args.layer, a.args.n = qkv.Float32s(), att.Float32s(), l, n
	a.storeKV()
	a.pool.For(len(a.scores), a.attnFn)
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
		k, vt := pool.kl[l], pool.vl[l]
		q := qkv[r*3*C : (r+1)*3*C]
		for h := 0; h < H; h++ {
			head := blk + h*B*D
			dst := head + off*D
			copy(k[dst:dst+D], q[C+h*D:C+(h+1)*D])
			vh := vt[head+off:]
			for d, x := range q[2*C+h*D : 2*C+(h+1)*D] {
				vh[d*B] = x
			}
		}
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
	k, v := pool.kl[l], pool.vl[l]
	for j0 := 0; j0 < keys; j0 += B {
		nb := min(B, keys-j0)
		head := int(c.blocks[j0/B])*pool.stride + h*B*D
		copy(kt[j0*D:(j0+nb)*D], k[head:head+nb*D])
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
				copy(vt[d*seen+j0:d*seen+j0+nb], v[head+d*B:head+d*B+nb])
			}
		}
		a.sv = linear{In: seen, Out: D, Type: weightF32, F32: vt}
		a.pool.linear(out[i0*D:], sc, rows, &a.sv)
	}
	for i := 0; i < n; i++ {
		copy(att[(sp.r0+i)*C+h*D:(sp.r0+i)*C+(h+1)*D], out[i*D:(i+1)*D])
	}
}

// attentionParts runs causal self-attention for a share of the (row, head)
// pairs of the rows not blocked. Part i of len(a.scores) takes a
// contiguous range of pairs and uses a.scores[i] as its scratch.
func (a *activations) attentionParts(start, end int) {
	qkv, att, l := a.args.qkv, a.args.att, a.args.layer
	H, D := a.heads, a.qp.Shape()[1]
	C := H * D
	total := a.args.n * H
	parts := len(a.scores)
	scale := float32(1 / math.Sqrt(float64(D)))
	for part := start; part < end; part++ {
		lo, hi := part*total/parts, (part+1)*total/parts
		scores := a.scores[part]
		for pair := lo; pair < hi; pair++ {
			r, h := pair/H, pair%H
			if a.blocked[r] {
				continue
			}
			c := a.cache[r]
			q := qkv[r*3*C+h*D : r*3*C+(h+1)*D]
			out := att[r*C+h*D : r*C+(h+1)*D]
			attendPaged(out, q, c.pool.kl[l], c.pool.vl[l], c.blocks, c.pool.stride, h*c.pool.bs*D, c.pool.bs,
				scores[:a.pos[r]+1], scale)
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

// attendPaged is attendHead over a paged cache: the n = len(scores)
// positions the query may see are in blocks of B, position j in block
// blocks[j/B], whose head's keys are the (B, D) run at
// k[blocks[j/B]·stride + head …] and values the (D, B) run at the same
// offset of v. It computes every score, the softmax over all of them,
// then the weighted sum of values block by block.
func attendPaged(out, q, k, v []float32, blocks []int32, stride, head, B int, scores []float32, scale float32) {
	D, n := len(q), len(scores)
	for j0 := 0; j0 < n; j0 += B {
		kb := k[int(blocks[j0/B])*stride+head:]
		for j := j0; j < min(j0+B, n); j++ {
			scores[j] = dot(q, kb[(j-j0)*D:(j-j0+1)*D]) * scale
		}
	}
	softmaxInPlace(scores)
	clear(out)
	for j0 := 0; j0 < n; j0 += B {
		nb := min(B, n-j0)
		vb := v[int(blocks[j0/B])*stride+head:]
		s := scores[j0 : j0+nb]
		for d := range out {
			out[d] += dot(s, vb[d*B:d*B+nb])
		}
	}
}

// softmaxInPlace replaces x with softmax(x).
func softmaxInPlace(x []float32) {
	mx := maxf(x)
	sum := expShiftSum(x, mx)
	scale(x, 1/sum)
}
