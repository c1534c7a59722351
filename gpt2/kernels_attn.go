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
	D := len(q)
	scoresCheck(len(s), D, len(k))
	for j := range s {
		row := k[j*D : (j+1)*D]
		var s0, s1 float32
		i := 0
		for ; i+2 <= D; i += 2 {
			s0 += q[i] * bf16ToF32(row[i])
			s1 += q[i+1] * bf16ToF32(row[i+1])
		}
		for ; i < D; i++ {
			s0 += q[i] * bf16ToF32(row[i])
		}
		s[j] = scale * (s0 + s1)
	}
}

func attnScoresF16Generic(s, q []float32, k []uint16, scale float32) {
	D := len(q)
	scoresCheck(len(s), D, len(k))
	for j := range s {
		row := k[j*D : (j+1)*D]
		var s0, s1 float32
		i := 0
		for ; i+2 <= D; i += 2 {
			s0 += q[i] * f16ToF32(row[i])
			s1 += q[i+1] * f16ToF32(row[i+1])
		}
		for ; i < D; i++ {
			s0 += q[i] * f16ToF32(row[i])
		}
		s[j] = scale * (s0 + s1)
	}
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
	n := len(p)
	if n == 0 {
		return
	}
	valuesCheck(n, len(out), ldv, len(vt))
	for d := range out {
		row := vt[d*ldv : d*ldv+n]
		var s float32
		for j, x := range p {
			s += x * bf16ToF32(row[j])
		}
		out[d] += s
	}
}

func attnValuesF16Generic(out, p []float32, vt []uint16, ldv int) {
	n := len(p)
	if n == 0 {
		return
	}
	valuesCheck(n, len(out), ldv, len(vt))
	for d := range out {
		row := vt[d*ldv : d*ldv+n]
		var s float32
		for j, x := range p {
			s += x * f16ToF32(row[j])
		}
		out[d] += s
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
