package gpt2

import (
	"fmt"
	"unsafe"

	"gorgonia.org/tensor"
)

// weightType is the element type of a linear layer's weight matrix.
type weightType int

// The weight element types the kernels understand.
const (
	weightF32  weightType = iota // float32
	weightBF16                   // bfloat16 bits in uint16
	weightF16                    // IEEE half bits in uint16
	weightI8                     // int8 with one float32 scale per output row
)

// linear is a dense layer y = x·Wᵀ + b.
//
// W is the weight matrix, (Out, In): Out rows of In contiguous elements
// (the transpose of Hugging Face's Conv1D [in, out]) so that a kernel
// streams each output's weights once. Its shape is the source of In and
// Out, copied here by linearOf for the kernels. Exactly one of F32, U16
// and I8 is W's backing slice, according to Type. For weightI8, W[o][i] =
// I8[o*In+i] * Scale[o].
type linear struct {
	In, Out int
	Type    weightType
	F32     []float32
	U16     []uint16
	I8      []int8
	Scale   []float32 // (Out) for weightI8, else nil
	Bias    []float32 // (Out), or nil for no bias

	W *tensor.Dense
}

// linearOf builds a linear over the tensors w (Out, In), scale (Out; I8
// only) and bias (Out, or nil), checking their shapes and element types
// once so that the kernels can take the backing slices as they are. Errors
// name the tensor.
func linearOf(name string, typ weightType, w, scale, bias *tensor.Dense) (*linear, error) {
	if w.Dims() != 2 {
		return nil, fmt.Errorf("tensor %s: shape %v is not a matrix", name, w.Shape())
	}
	l := &linear{Out: w.Shape()[0], In: w.Shape()[1], Type: typ, W: w}
	want := tensor.Float32
	switch typ {
	case weightBF16, weightF16:
		want = tensor.Uint16
	case weightI8:
		want = tensor.Int8
	}
	if w.Dtype() != want {
		return nil, fmt.Errorf("tensor %s: element type %v, want %v", name, w.Dtype(), want)
	}
	vector := func(t *tensor.Dense, what string) ([]float32, error) {
		if t.Dtype() != tensor.Float32 || t.Dims() != 1 || t.Shape()[0] != l.Out {
			return nil, fmt.Errorf("tensor %s %s: %v of shape %v, want float32 of (%d)", name, what, t.Dtype(), t.Shape(), l.Out)
		}
		return t.Float32s(), nil
	}
	var err error
	switch typ {
	case weightF32:
		l.F32 = w.Float32s()
	case weightBF16, weightF16:
		l.U16 = w.Uint16s()
	case weightI8:
		l.I8 = w.Int8s()
		if scale == nil {
			return nil, fmt.Errorf("tensor %s: int8 weights without a scale", name)
		}
		if l.Scale, err = vector(scale, "scale"); err != nil {
			return nil, err
		}
	}
	if bias != nil {
		if l.Bias, err = vector(bias, "bias"); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// newLinear is linearOf over plain slices: an in→out layer whose weights
// are backing ([]float32, []uint16 or []int8 by typ). It panics on
// operands that do not fit.
func newLinear(in, out int, typ weightType, backing any, scale, bias []float32) *linear {
	vector := func(v []float32) *tensor.Dense {
		if v == nil {
			return nil
		}
		return tensor.New(tensor.WithShape(len(v)), tensor.WithBacking(v))
	}
	w := tensor.New(tensor.WithShape(out, in), tensor.WithBacking(backing))
	l, err := linearOf("linear", typ, w, vector(scale), vector(bias))
	if err != nil {
		panic("gpt2: " + err.Error())
	}
	return l
}

// row returns weight row o as float32 values in dst (len In).
func (l *linear) row(dst []float32, o int) {
	off := o * l.In
	switch l.Type {
	case weightF32:
		copy(dst, l.F32[off:off+l.In])
	case weightBF16:
		for i := range dst {
			dst[i] = bf16ToF32(l.U16[off+i])
		}
	case weightF16:
		for i := range dst {
			dst[i] = f16ToF32(l.U16[off+i])
		}
	case weightI8:
		s := l.Scale[o]
		for i := range dst {
			dst[i] = float32(l.I8[off+i]) * s
		}
	}
}

// linearRef is the naive, obviously-correct kernel the fast ones are held
// against: out is (M, Out), x is (M, In), both row-major.
func linearRef(out, x []float32, m int, l *linear) {
	w := make([]float32, l.In)
	for o := 0; o < l.Out; o++ {
		l.row(w, o)
		for r := 0; r < m; r++ {
			xr := x[r*l.In : (r+1)*l.In]
			var sum float32
			for i, wv := range w {
				sum += xr[i] * wv
			}
			if l.Bias != nil {
				sum += l.Bias[o]
			}
			out[r*l.Out+o] = sum
		}
	}
}

// Blocking of the fast linear kernels. The small-M path streams each weight
// row once for all M input rows and suits decode; the GEMM path packs
// weight panels and reuses them across M and suits prefill.
const (
	// smallM is the largest M that takes the small-M (dot product) path
	// on float32 and f16 weights (bf16 and int8 leave it sooner where the
	// CPU has their dot products: narrowFor). Up to here it beats packing
	// panels, whose transposing reads of 32 weight rows at once stream
	// poorly from memory; measured per CPU-second on one core, the float32
	// GEMM does 0.84–1.19× the dot kernels' rate at 48 rows on the 124M
	// shapes, 0.86–1.13× at 64 and 0.95–1.33× at 128.
	smallM = 48
	// gemmKC is the depth of one packed panel: kc·nr floats of B stay in
	// L2 while an mr×kc strip of A stays in L1.
	gemmKC = 256
	// gemmNC is the number of output columns one GEMM chunk owns: its
	// packed B block (gemmKC × gemmNC floats) fits L2 beside A.
	gemmNC = 256
	// dot2MaxM and dot2MaxK bound the calls the two-row kernels
	// (kernels.dot2) serve: up to sixteen input rows, in passes of eight,
	// short enough that eight of them (8·dot2MaxK float32s) stay in a
	// 32 KiB L1 beside the weight stream. Past either bound dot4 is as
	// fast or faster (input rows from L2, or a third pass).
	dot2MaxM = 16
	dot2MaxK = 1024
	// dot2Group is how many weight rows a second pass of eight input rows
	// follows the first over: their weights stay in L2 (96 KiB of f32 at
	// In = 768) and each pass's input rows stay in L1 throughout.
	dot2Group = 32
	// dotMinElems is the least number of weights one small-M chunk reads,
	// so that a chunk outweighs the cost of handing it out.
	dotMinElems = 1 << 15
)

// linear computes out (m, l.Out) = x (m, l.In) · Wᵀ + bias, splitting the
// output columns across the pool. out must not overlap x. It panics if x
// or out is too short. It is safe for concurrent use and does not allocate
// in steady state.
func (p *pool) linear(out, x []float32, m int, l *linear) {
	if m <= 0 || l.Out <= 0 {
		return
	}
	if len(x) < m*l.In || len(out) < m*l.Out {
		panic(fmt.Sprintf("gpt2: linear %dx%d: x has %d of %d, out %d of %d",
			l.Out, l.In, len(x), m*l.In, len(out), m*l.Out))
	}
	if l.In == 0 {
		for r := 0; r < m; r++ {
			o := out[r*l.Out : (r+1)*l.Out]
			if l.Bias != nil {
				copy(o, l.Bias)
			} else {
				clear(o)
			}
		}
		return
	}
	j := p.job()
	nk := p.kern.narrowFor(m, l)
	j.lin = linearJob{out: out, x: x, m: m, l: l, k: p.kern, gemm: m > smallM || nk != narrowNone}
	if nk != narrowNone {
		j.act.prepare(p, nk, x, m, l.In)
		j.lin.narrow, j.lin.na = nk, &j.act
	} else if p.kern.dot2Narrow(m, l) {
		j.act.prepare(p, narrowBF16, x, m, l.In)
		j.lin.na = &j.act
	}
	if j.lin.gemm {
		panels := (l.Out + p.kern.nr - 1) / p.kern.nr
		p.run(j, panels, gemmChunkPanels(panels, p.n, gemmNC/p.kern.nr))
		return
	}
	blocks := (l.Out + 3) / 4
	chunk := max((blocks+4*p.n-1)/(4*p.n), dotMinElems/(4*l.In), 1)
	p.run(j, blocks, chunk)
}

// gemmChunkPanels returns how many of a GEMM's panels one chunk takes:
// at most most, about a half of each worker's share, and, where a size
// that small allows it, such that the chunks divide evenly among the
// workers (72 panels in chunks of 8 would leave one worker a fifth chunk
// while the other waits; chunks of 6 give each six).
func gemmChunkPanels(panels, workers, most int) int {
	chunk := max(1, min((panels+2*workers-1)/(2*workers), most))
	for c := chunk; c > chunk/2; c-- {
		if ((panels+c-1)/c)%workers == 0 {
			return c
		}
	}
	return chunk
}

// linearJob is one linear call in flight: chunks are blocks of four output
// rows on the small-M path and nr-column panels on the GEMM path.
type linearJob struct {
	out, x []float32
	m      int
	l      *linear
	k      *kernels
	gemm   bool
	narrow narrowKind // the GEMM's operands (gemm_narrow.go)
	na     *narrowA   // the input rows narrowed, for narrow ≠ narrowNone
}

// scratch is one worker's buffers for a linear chunk, grown on first use
// and kept with the job so later calls don't allocate.
type scratch struct {
	w    []float32 // four weight rows widened to float32 (small-M)
	bp   []float32 // packed B block, gemmKC × gemmNC (GEMM)
	a    []float32 // a ragged last strip of A, zero-padded to mr rows
	row  []float32 // one weight row segment widened to float32
	tile []float32 // a ragged output tile
	bias []float32 // a ragged bias segment, zero-padded

	narrow narrowScratch // packed panels of the narrow GEMM
}

// biasSegment returns the w biases b[o:o+w] a kernel adds to w outputs
// starting at o, where only those before end are real: b's own elements
// when all w are, else a copy zero-padded to w in s.bias; nil without a
// bias.
func (s *scratch) biasSegment(b []float32, o, end, w int) []float32 {
	switch {
	case b == nil:
		return nil
	case end-o >= w:
		return b[o : o+w]
	}
	s.bias = grow(s.bias, w)
	clear(s.bias)
	copy(s.bias, b[o:end])
	return s.bias
}

// grow returns s resliced to n elements, reallocating only if too small.
func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

func (lj *linearJob) run(s *scratch, start, end int) {
	switch {
	case lj.narrow != narrowNone:
		lj.narrowChunk(s, start, end)
	case lj.gemm:
		lj.gemmChunk(s, start, end)
	case lj.k.takesDot2(lj.m, lj.l):
		lj.dot2Chunk(s, start, end)
	default:
		lj.dotChunk(s, start, end)
	}
}

// takesDot2 reports whether m input rows of l go to the two-row kernels.
func (k *kernels) takesDot2(m int, l *linear) bool {
	return m > 4 && m <= dot2MaxM && l.In <= dot2MaxK && k.dot2 != nil
}

// widen writes weight row o, columns [k0, k0+len(dst)), to dst as float32.
func widen(k *kernels, dst []float32, l *linear, o, k0 int) {
	off := o*l.In + k0
	switch l.Type {
	case weightF32:
		copy(dst, l.F32[off:off+len(dst)])
	case weightBF16:
		k.cvtBF16(dst, l.U16[off:off+len(dst)])
	case weightF16:
		k.cvtF16(dst, l.U16[off:off+len(dst)])
	case weightI8:
		k.cvtI8(dst, l.I8[off:off+len(dst)], l.Scale[o])
	}
}

// fused reports whether the kernels read this layer's narrow weights
// directly, widening them in registers.
func (lj *linearJob) fused() bool {
	switch lj.l.Type {
	case weightBF16:
		return lj.k.dot4BF16 != nil
	case weightF16:
		return lj.k.dot4F16 != nil
	case weightI8:
		return lj.k.dot4I8 != nil
	}
	return false
}

// dotChunk computes output rows [4·b0, 4·b1) for all m input rows, reading
// each weight row from memory once. One input row (decode) takes the rows
// front to back as a single stream. Otherwise four weight rows at a time
// meet the input rows four at a time; narrow weights are widened in
// registers where the kernels can, else once into a float32 buffer in L1,
// and passes after the first over the same four rows hit the cache.
func (lj *linearJob) dotChunk(s *scratch, b0, b1 int) {
	l, k, m := lj.l, lj.k, lj.m
	K, N := l.In, l.Out
	if m == 1 && k.rows1 != nil {
		o0, o1 := 4*b0, min(4*b1, N)
		k.rows1(lj.out[o0:o1], lj.x[:K], l, o0, o1)
		return
	}
	for b := b0; b < b1; b++ {
		o := 4 * b
		rows := min(4, N-o)
		fused := rows == 4 && lj.fused()
		var w []float32
		switch {
		case fused:
		case l.Type == weightF32 && rows == 4:
			w = l.F32[o*K : (o+4)*K]
		default:
			s.w = grow(s.w, 4*K)
			w = s.w
			for r := 0; r < rows; r++ {
				widen(k, w[r*K:(r+1)*K], l, o+r, 0)
			}
			clear(w[rows*K:])
		}
		bias := s.biasSegment(l.Bias, o, N, 4)
		for r := 0; r < m; r += k.dotM {
			mm := min(k.dotM, m-r)
			switch {
			case fused && l.Type == weightBF16:
				k.dot4BF16(lj.out[r*N+o:], N, lj.x[r*K:], K, mm, l.U16[o*K:(o+4)*K], K, K, bias)
				continue
			case fused && l.Type == weightF16:
				k.dot4F16(lj.out[r*N+o:], N, lj.x[r*K:], K, mm, l.U16[o*K:(o+4)*K], K, K, bias)
				continue
			case fused && l.Type == weightI8:
				k.dot4I8(lj.out[r*N+o:], N, lj.x[r*K:], K, mm, l.I8[o*K:(o+4)*K], K, K, l.Scale[o:o+4], bias)
				continue
			case rows == 4:
				k.dot4(lj.out[r*N+o:], N, lj.x[r*K:], K, mm, w, K, K, bias)
				continue
			}
			s.tile = grow(s.tile, 16)
			k.dot4(s.tile, 4, lj.x[r*K:], K, mm, w, K, K, bias)
			for i := 0; i < mm; i++ {
				copy(lj.out[(r+i)*N+o:(r+i)*N+N], s.tile[i*4:i*4+rows])
			}
		}
	}
}

// dot2Chunk computes output rows [4·b0, 4·b1) for 4 < m ≤ dot2MaxM input
// rows (batched decode) with the two-row kernels: each weight vector is
// loaded once for up to eight input rows, so at m ≤ 8 every weight is read
// once, in one front-to-back stream of row pairs, and the kernel stays
// near the memory bound where dot4 would repeat its loads and FMAs per
// four input rows. The kernels prefetch the rows ahead into L2, not L1,
// which is left to the input rows; past eight rows, the second pass runs
// over dot2Group weight rows at a time, from L2. A ragged last row is
// widened into a zero-padded float32 pair.
func (lj *linearJob) dot2Chunk(s *scratch, b0, b1 int) {
	l, k, m := lj.l, lj.k, lj.m
	K, N := l.In, l.Out
	o1 := min(4*b1, N)
	for g := 4 * b0; g < o1; g += dot2Group {
		for r := 0; r < m; r += 8 {
			mm := min(8, m-r)
			x, out := lj.x[r*K:], lj.out[r*N:]
			for o := g; o < min(g+dot2Group, o1); o += 2 {
				bias := s.biasSegment(l.Bias, o, N, 2)
				if N-o >= 2 {
					lj.dot2(out[o:], N, x, r, mm, o, bias)
					continue
				}
				s.tile = grow(s.tile, 16)
				if lj.na != nil { // bf16 input rows: a bf16 pair
					ns := &s.narrow
					ns.bf = growOf(ns.bf, 2*K)
					copy(ns.bf, l.U16[o*K:(o+1)*K])
					clear(ns.bf[K:])
					k.dot2BF16x(s.tile, 2, lj.na.bf[r*lj.na.kp:], lj.na.kp, mm, ns.bf, K, K, bias)
				} else {
					s.w = grow(s.w, 2*K)
					widen(k, s.w[:K], l, o, 0)
					clear(s.w[K:])
					k.dot2(s.tile, 2, x, K, mm, s.w, K, K, bias)
				}
				for i := 0; i < mm; i++ {
					out[i*N+o] = s.tile[2*i]
				}
			}
		}
	}
}

// dot2 runs the two-row kernel for weight rows o and o+1 against m input
// rows x (from row r), reading the weights in their own type.
func (lj *linearJob) dot2(out []float32, ldo int, x []float32, r, m, o int, bias []float32) {
	l, k := lj.l, lj.k
	K, w := l.In, o*l.In
	switch l.Type {
	case weightF32:
		k.dot2(out, ldo, x, K, m, l.F32[w:w+2*K], K, K, bias)
	case weightBF16:
		if na := lj.na; na != nil {
			k.dot2BF16x(out, ldo, na.bf[r*na.kp:], na.kp, m, l.U16[w:w+2*K], K, K, bias)
			return
		}
		k.dot2BF16(out, ldo, x, K, m, l.U16[w:w+2*K], K, K, bias)
	case weightF16:
		k.dot2F16(out, ldo, x, K, m, l.U16[w:w+2*K], K, K, bias)
	case weightI8:
		k.dot2I8(out, ldo, x, K, m, l.I8[w:w+2*K], K, K, l.Scale[o:o+2], bias)
	}
}

// gemmChunk computes output columns [nr·p0, nr·p1) for all m input rows:
// for each gemmKC-deep slab of K it packs those columns of W into nr-wide
// panels (transposed, widened to float32, zero-padded), then runs the
// mr×nr micro-kernel over every mr-row strip of x against every panel.
func (lj *linearJob) gemmChunk(s *scratch, p0, p1 int) {
	l, k, m := lj.l, lj.k, lj.m
	K, N := l.In, l.Out
	mr, nr := k.mr, k.nr
	n0, n1 := p0*nr, min(p1*nr, N)
	for k0 := 0; k0 < K; k0 += gemmKC {
		kc := min(gemmKC, K-k0)
		first := k0 == 0
		bp := packB(k, s, l, n0, n1, k0, kc)
		pf := nextSlab(n0, n1, k0, K, m, mr)
		for i0 := 0; i0 < m; i0 += mr {
			pf.fetch(k, l, i0/mr)
			rows := min(mr, m-i0)
			a, lda := lj.x[i0*K+k0:], K
			if rows < mr {
				s.a = grow(s.a, mr*kc)
				for i := 0; i < mr; i++ {
					if i < rows {
						copy(s.a[i*kc:(i+1)*kc], lj.x[(i0+i)*K+k0:])
					} else {
						clear(s.a[i*kc : (i+1)*kc])
					}
				}
				a, lda = s.a, kc
			}
			for n := n0; n < n1; n += nr {
				cols := min(nr, n1-n)
				panel := bp[(n-n0)*kc : (n-n0)*kc+kc*nr]
				var bias []float32
				if first {
					bias = s.biasSegment(l.Bias, n, n1, nr)
				}
				c := lj.out[i0*N+n:]
				if rows == mr && cols == nr {
					k.tile(c, N, a, lda, panel, kc, bias, !first)
					continue
				}
				s.tile = grow(s.tile, mr*nr)
				if !first {
					for i := 0; i < rows; i++ {
						copy(s.tile[i*nr:i*nr+cols], c[i*N:i*N+cols])
					}
				}
				k.tile(s.tile, nr, a, lda, panel, kc, bias, !first)
				for i := 0; i < rows; i++ {
					copy(c[i*N:i*N+cols], s.tile[i*nr:i*nr+cols])
				}
			}
		}
	}
}

// slabFetch is the share of the next slab's weights each A strip asks
// into L2 while the current slab computes, so that packing it reads from
// L2 rather than memory: rows [n0+i·per, n0+(i+1)·per) at strip i.
type slabFetch struct {
	n0, n1, per, k0, kc int
}

// nextSlab returns the fetch plan for the slab after the one at k0 of a
// chunk of W rows [n0, n1) over m input rows in strips of mr; none after
// the last slab.
func nextSlab(n0, n1, k0, K, m, mr int) slabFetch {
	next := k0 + gemmKC
	if next >= K {
		return slabFetch{}
	}
	strips := (m + mr - 1) / mr
	return slabFetch{n0: n0, n1: n1, per: (n1 - n0 + strips - 1) / strips, k0: next, kc: min(gemmKC, K-next)}
}

// fetch hints strip i's share of the slab into L2.
func (f slabFetch) fetch(k *kernels, l *linear, i int) {
	r0 := f.n0 + i*f.per
	r1 := min(r0+f.per, f.n1)
	if k.prefetch == nil || f.per == 0 || r0 >= r1 {
		return
	}
	off := r0*l.In + f.k0
	switch l.Type {
	case weightF32:
		k.prefetch(unsafe.Pointer(&l.F32[off]), 4*l.In, r1-r0, 4*f.kc)
	case weightBF16, weightF16:
		k.prefetch(unsafe.Pointer(&l.U16[off]), 2*l.In, r1-r0, 2*f.kc)
	case weightI8:
		k.prefetch(unsafe.Pointer(&l.I8[off]), l.In, r1-r0, f.kc)
	}
}

// packB lays out W rows [n0, n1), columns [k0, k0+kc) as panels of nr
// rows: panel q holds kc steps of nr values, bp[q·kc·nr + p·nr + j] =
// W[n0+q·nr+j][k0+p], with rows past n1 zero. It returns the block.
func packB(k *kernels, s *scratch, l *linear, n0, n1, k0, kc int) []float32 {
	nr := k.nr
	panels := (n1 - n0 + nr - 1) / nr
	s.bp = grow(s.bp, panels*kc*nr)
	s.row = grow(s.row, kc)
	for q := 0; q < panels; q++ {
		n := n0 + q*nr
		dst := s.bp[q*kc*nr : (q+1)*kc*nr]
		if n+nr <= n1 {
			k.panel(k, dst, l, n, k0, kc, s.row)
			continue
		}
		for j := 0; j < nr; j++ { // the ragged last panel
			if n+j >= n1 {
				for p := 0; p < kc; p++ {
					dst[p*nr+j] = 0
				}
				continue
			}
			seg := s.row
			widen(k, seg, l, n+j, k0)
			for p, v := range seg {
				dst[p*nr+j] = v
			}
		}
	}
	return s.bp
}
