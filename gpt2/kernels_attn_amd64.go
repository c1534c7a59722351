package gpt2

// avx512Attn is the AVX-512 chunk kernel set: scores sixteen keys at a
// time in assembly (kernels_attn_amd64.s); values of a full 64-position
// block (Vᵀ rows of 64, contiguous) by the same sixteen-row kernel, the
// rest through the decode kernels' dotRows, which add to out when given
// it as the bias.
var avx512Attn = &attnKernels{
	scores:     avx512AttnScores,
	scoresBF16: avx512AttnScoresBF16,
	scoresF16:  avx512AttnScoresF16,
	values:     avx512AttnValues,
	valuesBF16: avx512AttnValuesBF16,
	valuesF16:  avx512AttnValuesF16,
}

// avx2Attn is the AVX2 chunk kernel set: float32 scores eight keys at a
// time where D is a multiple of 8, values through dotRows on multiples of
// 8 positions; the rest in pure Go.
var avx2Attn = &attnKernels{
	scores:     avx2AttnScores,
	scoresBF16: attnScoresBF16Generic,
	scoresF16:  attnScoresF16Generic,
	values:     avx2AttnValues,
	valuesBF16: avx2AttnValuesBF16,
	valuesF16:  avx2AttnValuesF16,
}

func avx512AttnScores(s, q, k []float32, scale float32) {
	n, d := len(s), len(q)
	if n == 0 || d == 0 {
		clear(s)
		return
	}
	scoresCheck(n, d, len(k))
	if d == 64 {
		attnScores64F32AVX512(&s[0], &q[0], &k[0], n, scale)
		return
	}
	attnScoresF32AVX512(&s[0], &q[0], &k[0], n, d, scale)
}

func avx512AttnScoresBF16(s, q []float32, k []uint16, scale float32) {
	n, d := len(s), len(q)
	if n == 0 || d == 0 {
		clear(s)
		return
	}
	scoresCheck(n, d, len(k))
	if d == 64 {
		attnScores64BF16AVX512(&s[0], &q[0], &k[0], n, scale)
		return
	}
	attnScoresBF16AVX512(&s[0], &q[0], &k[0], n, d, scale)
}

func avx512AttnScoresF16(s, q []float32, k []uint16, scale float32) {
	n, d := len(s), len(q)
	if n == 0 || d == 0 {
		clear(s)
		return
	}
	scoresCheck(n, d, len(k))
	if d == 64 {
		attnScores64F16AVX512(&s[0], &q[0], &k[0], n, scale)
		return
	}
	attnScoresF16AVX512(&s[0], &q[0], &k[0], n, d, scale)
}

func avx2AttnScores(s, q, k []float32, scale float32) {
	n, d := len(s), len(q)
	if n == 0 || d == 0 || d%8 != 0 {
		attnScoresGeneric(s, q, k, scale)
		return
	}
	scoresCheck(n, d, len(k))
	if d == 64 {
		attnScores64F32AVX2(&s[0], &q[0], &k[0], n, scale)
		return
	}
	attnScoresF32AVX2(&s[0], &q[0], &k[0], n, d, scale)
}

// The value kernels: dotRows over the D value rows with out as the bias,
// which each row reads before it writes its own sum.

func avx512AttnValues(out, p, vt []float32, ldv int) {
	n, d := len(p), len(out)
	if n == 0 || d == 0 {
		return
	}
	valuesCheck(n, d, ldv, len(vt))
	if n == 64 && ldv == 64 {
		attnValues64F32AVX512(&out[0], &p[0], &vt[0], d, 0)
		return
	}
	dotRowsF32AVX512(&out[0], &p[0], &vt[0], ldv, n, d, &out[0])
}

func avx512AttnValuesBF16(out, p []float32, vt []uint16, ldv int) {
	n, d := len(p), len(out)
	if n == 0 || d == 0 {
		return
	}
	valuesCheck(n, d, ldv, len(vt))
	if n == 64 && ldv == 64 {
		attnValues64BF16AVX512(&out[0], &p[0], &vt[0], d, 0)
		return
	}
	dotRowsBF16AVX512(&out[0], &p[0], &vt[0], ldv, n, d, &out[0])
}

func avx512AttnValuesF16(out, p []float32, vt []uint16, ldv int) {
	n, d := len(p), len(out)
	if n == 0 || d == 0 {
		return
	}
	valuesCheck(n, d, ldv, len(vt))
	if n == 64 && ldv == 64 {
		attnValues64F16AVX512(&out[0], &p[0], &vt[0], d, 0)
		return
	}
	dotRowsF16AVX512(&out[0], &p[0], &vt[0], ldv, n, d, &out[0])
}

// The AVX2 dotRows take multiples of 8 columns: the positions past n&^7
// are added in Go.

func avx2AttnValues(out, p, vt []float32, ldv int) {
	n, d := len(p), len(out)
	if n == 0 || d == 0 {
		return
	}
	valuesCheck(n, d, ldv, len(vt))
	n8 := n &^ 7
	if n8 > 0 {
		dotRowsF32AVX2(&out[0], &p[0], &vt[0], ldv, n8, d, &out[0])
	}
	if n8 < n {
		attnValuesGeneric(out, p[n8:], vt[n8:], ldv)
	}
}

func avx2AttnValuesBF16(out, p []float32, vt []uint16, ldv int) {
	n, d := len(p), len(out)
	if n == 0 || d == 0 {
		return
	}
	valuesCheck(n, d, ldv, len(vt))
	n8 := n &^ 7
	if n8 > 0 {
		dotRowsBF16AVX2(&out[0], &p[0], &vt[0], ldv, n8, d, &out[0])
	}
	if n8 < n {
		attnValuesBF16Generic(out, p[n8:], vt[n8:], ldv)
	}
}

func avx2AttnValuesF16(out, p []float32, vt []uint16, ldv int) {
	n, d := len(p), len(out)
	if n == 0 || d == 0 {
		return
	}
	valuesCheck(n, d, ldv, len(vt))
	n8 := n &^ 7
	if n8 > 0 {
		dotRowsF16AVX2(&out[0], &p[0], &vt[0], ldv, n8, d, &out[0])
	}
	if n8 < n {
		attnValuesF16Generic(out, p[n8:], vt[n8:], ldv)
	}
}

//go:noescape
func attnScoresF32AVX512(s *float32, q *float32, k *float32, n, d int, scale float32)

//go:noescape
func attnScoresBF16AVX512(s *float32, q *float32, k *uint16, n, d int, scale float32)

//go:noescape
func attnScoresF16AVX512(s *float32, q *float32, k *uint16, n, d int, scale float32)

//go:noescape
func attnScoresF32AVX2(s *float32, q *float32, k *float32, n, d int, scale float32)

//go:noescape
func attnScores64F32AVX512(s *float32, q *float32, k *float32, n int, scale float32)

//go:noescape
func attnScores64BF16AVX512(s *float32, q *float32, k *uint16, n int, scale float32)

//go:noescape
func attnScores64F16AVX512(s *float32, q *float32, k *uint16, n int, scale float32)

//go:noescape
func attnScores64F32AVX2(s *float32, q *float32, k *float32, n int, scale float32)

//go:noescape
func attnValues64F32AVX512(out *float32, p *float32, vt *float32, rows int, scale float32)

//go:noescape
func attnValues64BF16AVX512(out *float32, p *float32, vt *uint16, rows int, scale float32)

//go:noescape
func attnValues64F16AVX512(out *float32, p *float32, vt *uint16, rows int, scale float32)
