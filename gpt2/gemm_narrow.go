package gpt2

import (
	"math"
	"unsafe"
)

// The narrow GEMM: prefill and other many-row calls on bf16 and int8
// weights multiply in the weights' own width instead of widening them to
// float32, on CPUs with a native dot product for the type (kernels.tileBF16,
// kernels.tileI8). The input rows are narrowed once per call, before the
// panels are handed out:
//
//   - bf16 weights meet the input rounded to bf16 (nearest even); the
//     products of two bf16 are exact in float32 and are summed in float32,
//     so the only loss is the rounding of the input (relative 2⁻⁹).
//   - f16 weights take the same path, each rounded to bf16 as its panel
//     is packed (f16 → f32 exactly, then to nearest even bf16): three
//     mantissa bits of the weights are lost, as a bf16 conversion of the
//     model would lose them, for twice the float32 FMA rate. The stored
//     weights stay f16 and decode (the dot kernels) reads them in full.
//   - int8 weights meet the input quantised to int8 per row and per
//     gemmKC-column block, symmetric, with scale max|x|/127 over the
//     block; the products are summed exactly in int32 and each block's sum
//     is scaled back into the float32 output. One scale per 256 columns
//     rather than per row keeps GPT-2's few large activation columns from
//     flattening the rest of the row.
//
// Packing follows gemmChunk's: gemmKC-deep slabs, nr-column panels. A
// panel step is one 4-byte group of each of nr weight rows: a pair of bf16
// or a quad of int8, which is how the dot-product instructions consume
// them, and W's rows hold those groups contiguously, so packing is a
// transpose of 32-bit words.

// narrowKind is the operand type of a linear call's GEMM.
type narrowKind uint8

const (
	narrowNone narrowKind = iota // float32: weights widened for tile
	narrowBF16                   // bf16 × bf16 with tileBF16
	narrowI8                     // int8 × int8 with tileI8
)

// The most input rows each weight type leaves to the dot kernels before
// the narrow GEMM takes over, measured per CPU-second on one core on the
// 124M layers' shapes (768→2304, 768→3072, 3072→768; weights in L3):
//
//   - int8: at 12 rows the GEMM does 1.3–1.6× the dot kernels' rate (its
//     one 12-row strip full), at 8 rows 0.87–0.96×;
//   - bf16: up to dot2MaxM rows the two-row kernels on bf16-rounded input
//     are faster (the GEMM 0.5–0.85× at 8–16 rows), at 20 rows the GEMM
//     does 1.2–1.4× the four-row kernels' rate;
//   - f16 keeps smallM: rounding each panel to bf16 costs what the GEMM
//     gains below it (0.95–1.13× at 40 rows, 1.2–1.4× at 48).
const (
	narrowMaxDotI8   = 8
	narrowMaxDotBF16 = dot2MaxM
)

// narrowFor returns the narrow GEMM the kernels k run for m input rows of
// l, or narrowNone. Up to the type's threshold above the dot kernels
// serve, reading the weights once with the input rows in float32.
func (k *kernels) narrowFor(m int, l *linear) narrowKind {
	switch {
	case l.Type == weightI8 && k.tileI8 != nil && m > narrowMaxDotI8:
		return narrowI8
	case l.Type == weightBF16 && k.tileBF16 != nil && m > narrowMaxDotBF16:
		return narrowBF16
	case l.Type == weightF16 && k.tileBF16 != nil && m > smallM:
		return narrowBF16
	}
	return narrowNone
}

// dot2Narrow reports whether m input rows of l go to the two-row kernels
// with the input rounded to bf16 (batched decode on bf16 weights).
func (k *kernels) dot2Narrow(m int, l *linear) bool {
	return l.Type == weightBF16 && k.dot2BF16x != nil && k.takesDot2(m, l)
}

// inputBF16 reports whether k rounds the input rows to bf16 for m rows of l.
func (k *kernels) inputBF16(m int, l *linear) bool {
	return k.narrowFor(m, l) == narrowBF16 || k.dot2Narrow(m, l)
}

// narrowA is a linear call's input rows in narrow form, shared read-only
// by the chunks of the call. Rows are padded with zeros to mp (a multiple
// of mr, so every A strip is whole) and columns to kp (a whole group).
type narrowA struct {
	mp, kp int
	bf     []uint16  // (mp, kp) bf16
	q      []int8    // (mp, kp) int8
	sc     []float32 // (blocks, mp): each row's scale in each gemmKC block
	nc     []int32   // (blocks, mp): −128 · Σ q over the row's block

	// The call being prepared, for rows.
	kind   narrowKind
	k      *kernels
	x      []float32
	m, K   int
	rowsFn func(r0, r1 int) // a.rows, made once
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }

// growOf returns s resliced to n elements, reallocating only if too small.
func growOf[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// prepare narrows x (m, K) for the GEMM kind with mr-row strips, the
// rows split across the pool.
func (a *narrowA) prepare(p *pool, kind narrowKind, x []float32, m, K int) {
	a.kind, a.k, a.x, a.m, a.K = kind, p.kern, x, m, K
	a.mp = roundUp(m, p.kern.mr)
	switch kind {
	case narrowBF16:
		a.kp = roundUp(K, 2)
		a.bf = growOf(a.bf, a.mp*a.kp)
		clear(a.bf[m*a.kp:])
	case narrowI8:
		a.kp = roundUp(K, 4)
		blocks := (K + gemmKC - 1) / gemmKC
		a.q = growOf(a.q, a.mp*a.kp)
		a.sc = growOf(a.sc, blocks*a.mp)
		a.nc = growOf(a.nc, blocks*a.mp)
		clear(a.sc)
		clear(a.nc)
		clear(a.q[m*a.kp:])
	}
	if m*K < 1<<14 { // batched decode: less than waking a worker costs
		a.rows(0, m)
		a.x = nil
		return
	}
	if a.rowsFn == nil {
		a.rowsFn = a.rows // once per job: the method value allocates
	}
	p.For(m, a.rowsFn)
	a.x = nil
}

// rows narrows input rows [r0, r1).
func (a *narrowA) rows(r0, r1 int) {
	K, k := a.K, a.k
	for r := r0; r < r1; r++ {
		x := a.x[r*K : (r+1)*K]
		switch a.kind {
		case narrowBF16:
			row := a.bf[r*a.kp : (r+1)*a.kp]
			if k.roundBF16 != nil {
				k.roundBF16(row, x)
			} else {
				roundBF16Generic(row, x)
			}
			clear(row[K:])
		case narrowI8:
			row := a.q[r*a.kp : (r+1)*a.kp]
			for b, k0 := 0, 0; k0 < K; b, k0 = b+1, k0+gemmKC {
				k1 := min(k0+gemmKC, K)
				s, sum := quantizeI8(k, row[k0:k1], x[k0:k1])
				a.sc[b*a.mp+r], a.nc[b*a.mp+r] = s, -128*sum
			}
			clear(row[K:])
		}
	}
}

func roundBF16Generic(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = bf16FromF32(v)
	}
}

// quantizeI8 writes q[i] = round(x[i]/s), ties to even, with s =
// max|x|/127 (so every q is in [-127, 127]) and returns s and Σ q, using
// k's kernels where it has them. An all-zero x has s = 0; a NaN or an
// infinity in x makes s NaN, so the output is NaN as the float32 path
// would make it.
func quantizeI8(k *kernels, q []int8, x []float32) (s float32, sum int32) {
	var bits uint32
	if k.absMaxBits != nil {
		bits = k.absMaxBits(x)
	} else {
		bits = absMaxBitsGeneric(x)
	}
	switch {
	case bits == 0:
		clear(q[:len(x)])
		return 0, 0
	case bits >= 0x7f800000:
		clear(q[:len(x)])
		return float32(math.NaN()), 0
	}
	amax := math.Float32frombits(bits)
	inv := 127 / amax
	if k.quantI8 != nil {
		return amax / 127, k.quantI8(q, x, inv)
	}
	return amax / 127, quantI8Generic(q, x, inv)
}

// absMaxBitsGeneric returns the largest bits of |x[i]|, which order as
// the values for floats ≥ 0, with a NaN above +Inf.
func absMaxBitsGeneric(x []float32) uint32 {
	var m uint32
	for _, v := range x {
		m = max(m, math.Float32bits(v)&0x7fffffff)
	}
	return m
}

// quantI8Generic sets q[i] = x[i]·inv rounded to even and saturated to
// int8, and returns Σ q.
func quantI8Generic(q []int8, x []float32, inv float32) (sum int32) {
	q = q[:len(x)]
	for i, v := range x {
		n := int32(max(-128, min(127, math.RoundToEven(float64(v*inv)))))
		q[i] = int8(n)
		sum += n
	}
	return sum
}

// narrowScratch is one worker's packed panels for the narrow GEMM.
type narrowScratch struct {
	bf  []uint16  // packed bf16 block
	i8  []uint8   // packed int8 block, offset by 128
	wsc []float32 // a ragged weight-scale segment, zero-padded
	f   []float32 // f16 weights widened on their way to bf16
}

// narrowChunk is gemmChunk for the narrow GEMM: output columns [nr·p0,
// nr·p1) for all m input rows, from the rows prepared in lj.na.
func (lj *linearJob) narrowChunk(s *scratch, p0, p1 int) {
	l, k, m, a := lj.l, lj.k, lj.m, lj.na
	K, N := l.In, l.Out
	mr, nr := k.mr, k.nr
	n0, n1 := p0*nr, min(p1*nr, N)
	panels := (n1 - n0 + nr - 1) / nr
	ns := &s.narrow
	group := 2
	if lj.narrow == narrowI8 {
		group = 4
	}
	for kb, k0 := 0, 0; k0 < K; kb, k0 = kb+1, k0+gemmKC {
		kc := min(gemmKC, K-k0)
		kcp := roundUp(kc, group)
		step := kcp * nr // elements of one packed panel
		first := k0 == 0
		if lj.narrow == narrowBF16 {
			ns.bf = growOf(ns.bf, panels*step)
		} else {
			ns.i8 = growOf(ns.i8, panels*step)
		}
		for q := 0; q < panels; q++ {
			n := n0 + q*nr
			rows := min(nr, n1-n)
			if lj.narrow == narrowBF16 {
				packBF16(k, ns.bf[q*step:(q+1)*step], l, n, rows, k0, kc, &ns.f)
			} else {
				packI8(k, ns.i8[q*step:(q+1)*step], l, n, rows, k0, kc)
			}
		}
		pf := nextSlab(n0, n1, k0, K, m, mr)
		for i0 := 0; i0 < m; i0 += mr {
			pf.fetch(k, l, i0/mr)
			rows := min(mr, m-i0)
			for q := 0; q < panels; q++ {
				n := n0 + q*nr
				cols := min(nr, n1-n)
				var bias []float32
				if first {
					bias = s.biasSegment(l.Bias, n, n1, nr)
				}
				c, ldc := lj.out[i0*N+n:], N
				ragged := rows < mr || cols < nr
				if ragged {
					s.tile = grow(s.tile, mr*nr)
					if !first {
						for i := 0; i < rows; i++ {
							copy(s.tile[i*nr:i*nr+cols], c[i*N:i*N+cols])
						}
					}
					c, ldc = s.tile, nr
				}
				if lj.narrow == narrowBF16 {
					k.tileBF16(c, ldc, a.bf[i0*a.kp+k0:], a.kp, ns.bf[q*step:(q+1)*step], kcp, bias, !first)
				} else {
					wsc := l.Scale[n:min(n+nr, N)]
					if cols < nr {
						ns.wsc = growOf(ns.wsc, nr)
						clear(ns.wsc)
						copy(ns.wsc, wsc)
						wsc = ns.wsc
					}
					k.tileI8(c, ldc, a.q[i0*a.kp+k0:], a.kp, ns.i8[q*step:(q+1)*step], kcp,
						a.sc[kb*a.mp+i0:], a.nc[kb*a.mp+i0:], wsc, bias, !first)
				}
				if ragged {
					for i := 0; i < rows; i++ {
						copy(lj.out[(i0+i)*N+n:(i0+i)*N+n+cols], s.tile[i*nr:i*nr+cols])
					}
				}
			}
		}
	}
}

// packBF16 lays out W rows [n0, n0+rows), columns [k0, k0+kc) as one
// panel of k.nr rows in pairs: dst[(p·nr+j)·2+t] = W[n0+j][k0+2p+t], zero
// past kc and past rows. Whole panels go to k.packPairs when it is set.
// f16 weights are packed as they are, then rounded to bf16 in place
// through tmp, a float32 scratch buffer.
func packBF16(k *kernels, dst []uint16, l *linear, n0, rows, k0, kc int, tmp *[]float32) {
	nr := k.nr
	done := 0 // pairs packed by the kernel
	if rows == nr && k.packPairs != nil && l.In%2 == 0 && k0%2 == 0 {
		done = (kc / 2) &^ 15
		if done > 0 {
			src := l.U16[n0*l.In+k0:]
			k.packPairs(u32s(dst[:2*done*nr]), u32s(src[:(nr-1)*l.In+2*done]), l.In/2, done)
		}
	}
	for p := done; p < (kc+1)/2; p++ {
		for j := 0; j < nr; j++ {
			d := dst[(p*nr+j)*2:]
			d[0], d[1] = 0, 0
			if j >= rows {
				continue
			}
			w := l.U16[(n0+j)*l.In+k0:]
			d[0] = w[2*p]
			if 2*p+1 < kc {
				d[1] = w[2*p+1]
			}
		}
	}
	if l.Type == weightF16 {
		f16ToBF16(k, dst[:2*((kc+1)/2)*nr], tmp)
	}
}

// f16ToBF16 rounds the f16 values in h to bf16 in place (nearest even,
// through float32, which holds every f16 exactly), widening them a
// stretch at a time into tmp.
func f16ToBF16(k *kernels, h []uint16, tmp *[]float32) {
	if k.f16ToBF16 != nil {
		k.f16ToBF16(h, h)
		return
	}
	const stretch = 1024
	*tmp = grow(*tmp, stretch)
	for i := 0; i < len(h); i += stretch {
		seg := h[i:min(i+stretch, len(h))]
		f := (*tmp)[:len(seg)]
		k.cvtF16(f, seg)
		if k.roundBF16 != nil {
			k.roundBF16(seg, f)
		} else {
			roundBF16Generic(seg, f)
		}
	}
}

// packI8 lays out W rows [n0, n0+rows), columns [k0, k0+kc) as one panel
// of k.nr rows in quads of unsigned bytes: dst[(g·nr+j)·4+t] =
// W[n0+j][k0+4g+t] + 128, and 128 (a zero weight) past kc and past rows.
// Whole panels go to k.packPairs (a 32-bit transpose) when it is set.
func packI8(k *kernels, dst []uint8, l *linear, n0, rows, k0, kc int) {
	nr := k.nr
	done := 0 // quads packed by the kernel
	if rows == nr && k.packPairs != nil && l.In%4 == 0 && k0%4 == 0 {
		done = (kc / 4) &^ 15
		if done > 0 {
			src := l.I8[n0*l.In+k0:]
			d := dst[:4*done*nr]
			k.packPairs(u32s(d), u32s(src[:(nr-1)*l.In+4*done]), l.In/4, done)
			w := unsafe.Slice((*uint64)(unsafe.Pointer(&d[0])), len(d)/8)
			for i := range w {
				w[i] ^= 0x8080808080808080
			}
		}
	}
	for g := done; g < (kc+3)/4; g++ {
		for j := 0; j < nr; j++ {
			d := dst[(g*nr+j)*4 : (g*nr+j)*4+4]
			for t := range d {
				d[t] = 128
				if j < rows && 4*g+t < kc {
					d[t] = uint8(l.I8[(n0+j)*l.In+k0+4*g+t]) ^ 0x80
				}
			}
		}
	}
}

// u32s views a slice of 16- or 8-bit elements, whose byte length is a
// multiple of 4, as 32-bit words.
func u32s[T uint16 | int8 | uint8](s []T) []uint32 {
	n := len(s) * int(unsafe.Sizeof(s[0])) / 4
	return unsafe.Slice((*uint32)(unsafe.Pointer(&s[0])), n)
}

// The pure-Go narrow tiles state the kernels' contracts (kernels_generic.go)
// in code; the tests hold the drivers and the assembly against them.

// tileBF16Generic: c[i][j] = (add ? c[i][j] : 0) + bias[j] + Σ_p
// a[i][p]·b[p][j] over kc columns, summing each pair in float32 as
// VDPBF16PS does.
func tileBF16Generic(mr, nr int) func(c []float32, ldc int, a []uint16, lda int, b []uint16, kc int, bias []float32, add bool) {
	return func(c []float32, ldc int, a []uint16, lda int, b []uint16, kc int, bias []float32, add bool) {
		for i := 0; i < mr; i++ {
			for j := 0; j < nr; j++ {
				var sum float32
				for p := 0; p < kc; p += 2 {
					d := b[(p/2*nr+j)*2:]
					sum += bf16ToF32(a[i*lda+p])*bf16ToF32(d[0]) + bf16ToF32(a[i*lda+p+1])*bf16ToF32(d[1])
				}
				if bias != nil {
					sum += bias[j]
				}
				if add {
					sum += c[i*ldc+j]
				}
				c[i*ldc+j] = sum
			}
		}
	}
}

// tileI8Generic: c[i][j] = (add ? c[i][j] : 0) + bias[j] +
// asc[i]·wsc[j]·(nc[i] + Σ_p a[i][p]·b[p][j]) over kc columns, b being
// unsigned (w + 128).
func tileI8Generic(mr, nr int) func(c []float32, ldc int, a []int8, lda int, b []uint8, kc int, asc []float32, nc []int32, wsc, bias []float32, add bool) {
	return func(c []float32, ldc int, a []int8, lda int, b []uint8, kc int, asc []float32, nc []int32, wsc, bias []float32, add bool) {
		for i := 0; i < mr; i++ {
			for j := 0; j < nr; j++ {
				sum := nc[i]
				for p := 0; p < kc; p++ {
					sum += int32(a[i*lda+p]) * int32(b[(p/4*nr+j)*4+p%4])
				}
				v := float32(sum) * wsc[j] * asc[i]
				if bias != nil {
					v += bias[j]
				}
				if add {
					v += c[i*ldc+j]
				}
				c[i*ldc+j] = v
			}
		}
	}
}
