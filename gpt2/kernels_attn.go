package gpt2

// Decode attention's chunk kernels (flash-decoding): a query against a
// chunk of n consecutive positions of one head's cache. The keys of a
// chunk are n contiguous rows of D; its values are D rows of n with a row
// stride ldv (the cache stores Vᵀ), so a chunk is a view of a contiguous
// cache and equally one block of a paged one. Each kernel set has an
// attnKernels; the pure-Go one is also every set's fallback for what its
// assembly does not cover, and the references below state the contracts.

// attnKernels is one implementation of the chunk kernels, for each
// element type the cache may hold (float32, bfloat16 and IEEE half bits).
type attnKernels struct {
	// scores computes a chunk's attention scores:
	//   s[j] = scale · Σ_{i<D} q[i]·k[j*D+i]     (j < n = len(s), D = len(q))
	scores     func(s, q, k []float32, scale float32)
	scoresBF16 func(s, q []float32, k []uint16, scale float32)
	scoresF16  func(s, q []float32, k []uint16, scale float32)
	// values adds a chunk's score-weighted values to out:
	//   out[d] += Σ_{j<n} p[j]·vt[d*ldv+j]       (d < D = len(out), n = len(p))
	values     func(out, p, vt []float32, ldv int)
	valuesBF16 func(out, p []float32, vt []uint16, ldv int)
	valuesF16  func(out, p []float32, vt []uint16, ldv int)
}

// genericAttn is the pure-Go chunk kernel set.
var genericAttn = &attnKernels{
	scores:     attnScoresGeneric,
	scoresBF16: attnScoresBF16Generic,
	scoresF16:  attnScoresF16Generic,
	values:     attnValuesGeneric,
	valuesBF16: attnValuesBF16Generic,
	valuesF16:  attnValuesF16Generic,
}

// scoresCheck and valuesCheck check a chunk's operands once (k holds n
// rows of D; vt holds D rows of n at stride ldv) so the kernels may index
// them without bounds checks.
func scoresCheck(n, d, klen int) {
	if n*d > klen {
		panic("gpt2: attention keys out of range")
	}
}

func valuesCheck(n, d, ldv, vlen int) {
	if n > ldv || (d-1)*ldv+n > vlen {
		panic("gpt2: attention values out of range")
	}
}

func attnScoresGeneric(s, q, k []float32, scale float32) {
	D := len(q)
	scoresCheck(len(s), D, len(k))
	for j := range s {
		s[j] = scale * dotGeneric(q, k[j*D:(j+1)*D])
	}
}

func attnScoresBF16Generic(s, q []float32, k []uint16, scale float32) {
	attnScoresWidened(kvBF16, s, q, k, scale)
}

func attnScoresF16Generic(s, q []float32, k []uint16, scale float32) {
	attnScoresWidened(kvF16, s, q, k, scale)
}

func attnValuesGeneric(out, p, vt []float32, ldv int) {
	n := len(p)
	if n == 0 {
		return
	}
	valuesCheck(n, len(out), ldv, len(vt))
	for d := range out {
		out[d] += dotGeneric(p, vt[d*ldv:d*ldv+n])
	}
}

func attnValuesBF16Generic(out, p []float32, vt []uint16, ldv int) {
	attnValuesWidened(kvBF16, out, p, vt, ldv)
}

func attnValuesF16Generic(out, p []float32, vt []uint16, ldv int) {
	attnValuesWidened(kvF16, out, p, vt, ldv)
}

// widenSpan is how many 16-bit cache elements the pure-Go kernels widen
// at a time, into a buffer on the stack, before a float32 dot product.
const widenSpan = 64

// widenKV widens 16-bit cache elements of kind kind into dst.
func widenKV(kind kvKind, dst []float32, src []uint16) {
	if kind == kvBF16 {
		cvtBF16Generic(dst, src)
	} else {
		cvtF16Generic(dst, src)
	}
}

// dotWidened returns Σ a[i]·widen(b[i]), widening b a span at a time.
func dotWidened(kind kvKind, a []float32, b []uint16) float32 {
	var buf [widenSpan]float32
	var sum float32
	for i := 0; i < len(a); i += widenSpan {
		n := min(widenSpan, len(a)-i)
		widenKV(kind, buf[:n], b[i:i+n])
		sum += dotGeneric(a[i:i+n], buf[:n])
	}
	return sum
}

// attnScoresWidened and attnValuesWidened are the pure-Go scores and
// values kernels for 16-bit caches (bfloat16 or half bits).
func attnScoresWidened(kind kvKind, s, q []float32, k []uint16, scale float32) {
	D := len(q)
	scoresCheck(len(s), D, len(k))
	for j := range s {
		s[j] = scale * dotWidened(kind, q, k[j*D:(j+1)*D])
	}
}

func attnValuesWidened(kind kvKind, out, p []float32, vt []uint16, ldv int) {
	n := len(p)
	if n == 0 {
		return
	}
	valuesCheck(n, len(out), ldv, len(vt))
	for d := range out {
		out[d] += dotWidened(kind, p, vt[d*ldv:d*ldv+n])
	}
}

// The references: the obvious loops, over keys and values widened by at.

func attnScoresRef(s, q []float32, at func(i int) float32, scale float32) {
	D := len(q)
	for j := range s {
		var sum float32
		for i := range q {
			sum += q[i] * at(j*D+i)
		}
		s[j] = scale * sum
	}
}

func attnValuesRef(out, p []float32, at func(i int) float32, ldv int) {
	for d := range out {
		var sum float32
		for j := range p {
			sum += p[j] * at(d*ldv+j)
		}
		out[d] += sum
	}
}
