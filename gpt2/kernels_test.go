package gpt2

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// randLinear returns an in→out layer of the given weight type with weights
// and bias uniform in [-1, 1), narrowed from float32 the way a converter
// would: bf16/f16 by rounding, int8 by per-row absmax scaling.
func randLinear(rng *rand.Rand, in, out int, typ weightType, withBias bool) *linear {
	w := randVec(rng, in*out)
	var bias []float32
	if withBias {
		bias = randVec(rng, out)
	}
	switch typ {
	case weightBF16, weightF16:
		u := make([]uint16, len(w))
		for i, v := range w {
			if typ == weightBF16 {
				u[i] = bf16FromF32(v)
			} else {
				u[i] = f16FromF32(v)
			}
		}
		return newLinear(in, out, typ, u, nil, bias)
	case weightI8:
		q := make([]int8, len(w))
		sc := make([]float32, out)
		for o := 0; o < out; o++ {
			row := w[o*in : (o+1)*in]
			var amax float32
			for _, v := range row {
				amax = max(amax, float32(math.Abs(float64(v))))
			}
			sc[o] = amax / 127
			for i, v := range row {
				if sc[o] != 0 {
					q[o*in+i] = int8(math.Round(float64(v / sc[o])))
				}
			}
		}
		return newLinear(in, out, typ, q, sc, bias)
	}
	return newLinear(in, out, weightF32, w, nil, bias)
}

func randVec(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = rng.Float32()*2 - 1
	}
	return v
}

var weightTypes = []struct {
	name string
	typ  weightType
}{{"f32", weightF32}, {"bf16", weightBF16}, {"f16", weightF16}, {"int8", weightI8}}

// tolerances returns, for each output (m, l.Out) of x · Wᵀ, how far a
// kernel may be from the reference. Summation order differs between
// kernels, so each output may differ by a few float32 roundings of its
// terms: the bound is relative to Σ|x·w| + |b|.
func tolerances(x []float32, m int, l *linear) []float64 {
	tol := make([]float64, m*l.Out)
	w := make([]float32, l.In)
	for o := 0; o < l.Out; o++ {
		l.row(w, o)
		for r := 0; r < m; r++ {
			var mag float64
			for i, wv := range w {
				mag += math.Abs(float64(x[r*l.In+i] * wv))
			}
			if l.Bias != nil {
				mag += math.Abs(float64(l.Bias[o]))
			}
			tol[r*l.Out+o] = 2e-6*math.Sqrt(float64(l.In+1))*mag + 1e-30
		}
	}
	return tol
}

// checkWithin fails t for each output of got (rows of width cols) farther
// from want than its tolerance.
func checkWithin(t *testing.T, got, want []float32, tol []float64, cols int) {
	t.Helper()
	bad := 0
	for i, g := range got {
		if d := math.Abs(float64(g - want[i])); !(d <= tol[i]) {
			if bad++; bad <= 5 {
				t.Errorf("out[%d][%d] = %g, want %g (diff %g > tol %g)", i/cols, i%cols, g, want[i], d, tol[i])
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d outputs off in all", bad)
	}
}

// linearShapes cover every path (M ≤ 4, the two-row kernels' 4 < M ≤
// dot2MaxM up to and past dot2MaxK, M ≤ smallM and above), ragged M
// against the 4-row, 8-row and 12-row blocks, ragged In against the
// 16-wide vectors and the gemmKC slabs, and ragged Out against the 2-row
// and 4-row blocks and the 32-column panels.
var linearShapes = []struct{ m, in, out int }{
	{1, 64, 50257}, {2, 64, 50257}, {3, 100, 3}, {1, 1, 1}, {5, 1, 7},
	{1, 768, 64}, {1, 100, 70}, {4, 17, 9}, {7, 100, 3}, {8, 768, 40},
	{5, 33, 9}, {6, 15, 1}, {8, 771, 13}, {8, 64, 50257}, {dot2MaxM, 31, 3},
	{7, dot2MaxK, 5}, {6, dot2MaxK + 1, 5}, {dot2MaxM + 1, 47, 11},
	{9, 47, 11}, {11, 16, 5}, {12, 100, 2}, {15, 290, 31}, {13, 100, 2*dot2Group + 7},
	{16, 300, 33}, {17, 33, 129}, {13, 513, 65}, {smallM, 100, 37},
	{smallM + 1, 513, 65}, {smallM + 1, 33, 129}, {64, 256, 96},
	{64, 100, 70}, {100, 768, 35}, {511, 100, 70}, {60, 258, 64},
}

func TestLinearMatchesReference(t *testing.T) {
	// Each layer, input and reference is made once and held against every
	// kernel set and pool size: the references cost far more than the
	// kernels (under the race detector, most of the suite's time).
	type run struct {
		ks *kernels
		p  *pool
	}
	var runs []run
	for _, ks := range append(simdKernels(), genericKernels, narrowGenericKernels) {
		for _, n := range []int{1, 3} {
			p := newPool(n)
			p.kern = ks
			defer p.Close()
			runs = append(runs, run{ks, p})
		}
	}
	type reference struct {
		want []float32
		tol  []float64
	}
	for _, sh := range linearShapes {
		for _, wt := range weightTypes {
			for _, withBias := range []bool{false, true} {
				rng := rand.New(rand.NewPCG(uint64(sh.m*7919+sh.in), uint64(sh.out)))
				l := randLinear(rng, sh.in, sh.out, wt.typ, withBias)
				x := randVec(rng, sh.m*sh.in)
				garbage := randVec(rng, sh.m*sh.out) // every output must be written
				refs := map[narrowKind]reference{}   // by the input rounding the kernels apply
				for _, r := range runs {
					name := fmt.Sprintf("%s/n=%d/m=%d,%d→%d/%s/bias=%v", r.ks.name, r.p.Size(), sh.m, sh.in, sh.out, wt.name, withBias)
					t.Run(name, func(t *testing.T) {
						kind := inputRounding(r.ks, sh.m, l)
						ref, ok := refs[kind]
						if !ok {
							want, xin := linearWant(r.ks, x, sh.m, l)
							ref = reference{want, tolerances(xin, sh.m, l)}
							refs[kind] = ref
						}
						got := append([]float32(nil), garbage...)
						r.p.linear(got, x, sh.m, l)
						checkWithin(t, got, ref.want, ref.tol, l.Out)
					})
				}
			}
		}
	}
}

func TestBestKernelsUseTheWidestSIMD(t *testing.T) {
	want := genericKernels
	if ks := simdKernels(); len(ks) > 0 {
		want = ks[0]
	}
	if got := newPool(1).kern; got != want {
		t.Errorf("newPool uses the %s kernels, want %s", got.name, want.name)
	}
	t.Logf("kernels: %s", want.name)
}

func TestLinearEmptyInput(t *testing.T) {
	p := newPool(2)
	defer p.Close()
	l := newLinear(0, 3, weightF32, []float32{}, nil, []float32{1, 2, 3})
	out := []float32{9, 9, 9, 9, 9, 9}
	p.linear(out, nil, 2, l)
	if want := []float32{1, 2, 3, 1, 2, 3}; fmt.Sprint(out) != fmt.Sprint(want) {
		t.Errorf("out = %v, want %v", out, want)
	}
}

func TestLinearConcurrentCallers(t *testing.T) {
	p := newPool(2)
	defer p.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := []struct{ m, in, out int }{{1, 300, 500}, {8, 200, 300}, {40, 130, 100}, {60, 130, 100}}
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		sh := shapes[g%len(shapes)]
		l := randLinear(rng, sh.in, sh.out, weightTypes[g%len(weightTypes)].typ, true)
		x := randVec(rng, sh.m*sh.in)
		want, _ := linearWant(p.kern, x, sh.m, l)
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := make([]float32, len(want))
			for i := 0; i < 20; i++ {
				p.linear(got, x, sh.m, l)
				for j := range got {
					if got[j] != got[j] || math.Abs(float64(got[j]-want[j])) > 1e-3 {
						t.Errorf("caller %d: out[%d] = %g, want %g", g, j, got[j], want[j])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestLinearDoesNotAllocate(t *testing.T) {
	p := newPool(2)
	defer p.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, m := range []int{1, 8, 16, 40, smallM + 16} {
		for _, wt := range weightTypes {
			l := randLinear(rng, 200, 130, wt.typ, true)
			x := randVec(rng, m*l.In)
			out := make([]float32, m*l.Out)
			p.linear(out, x, m, l) // grow the scratch
			if a := testing.AllocsPerRun(50, func() { p.linear(out, x, m, l) }); a != 0 {
				t.Errorf("m=%d %s: %v allocations per call, want 0", m, wt.name, a)
			}
		}
	}
}

func TestConversionsMatchScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, ks := range append(simdKernels(), genericKernels) {
		// every 16-bit pattern, at an odd offset and length
		src := make([]uint16, 1<<16+1)
		for i := range src {
			src[i] = uint16(i - 1)
		}
		dst := make([]float32, len(src))
		ks.cvtBF16(dst[1:], src[1:])
		for i := 1; i < len(src); i++ {
			if w := bf16ToF32(src[i]); math.Float32bits(dst[i]) != math.Float32bits(w) {
				t.Fatalf("%s cvtBF16(%#04x) = %g, want %g", ks.name, src[i], dst[i], w)
			}
		}
		ks.cvtF16(dst[1:], src[1:])
		for i := 1; i < len(src); i++ {
			w := f16ToF32(src[i])
			if w != w { // NaN: hardware may quiet a signalling payload
				if dst[i] == dst[i] {
					t.Fatalf("%s cvtF16(%#04x) = %g, want NaN", ks.name, src[i], dst[i])
				}
				continue
			}
			if math.Float32bits(dst[i]) != math.Float32bits(w) {
				t.Fatalf("%s cvtF16(%#04x) = %g, want %g", ks.name, src[i], dst[i], w)
			}
		}
		for n := 0; n < 70; n++ {
			q := make([]int8, n)
			for i := range q {
				q[i] = int8(rng.IntN(256) - 128)
			}
			d := make([]float32, n+1)
			d[n] = 42
			ks.cvtI8(d[:n], q, 0.37)
			for i, v := range q {
				if d[i] != float32(v)*0.37 {
					t.Fatalf("%s cvtI8 n=%d: [%d] = %g, want %g", ks.name, n, i, d[i], float32(v)*0.37)
				}
			}
			if d[n] != 42 {
				t.Fatalf("%s cvtI8 n=%d wrote past the end", ks.name, n)
			}
		}
	}
}

func TestHalfRoundTrip(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		if f := f16ToF32(uint16(h)); f == f {
			if g := f16FromF32(f); g != uint16(h) {
				t.Fatalf("f16FromF32(f16ToF32(%#04x)) = %#04x", h, g)
			}
		}
		if f := bf16ToF32(uint16(h)); f == f {
			if g := bf16FromF32(f); g != uint16(h) {
				t.Fatalf("bf16FromF32(bf16ToF32(%#04x)) = %#04x", h, g)
			}
		}
	}
	cases := []struct {
		f    float32
		bf16 uint16
		f16  uint16
	}{
		{1 + 1.0/256, 0x3f80, 0x3c04},           // bf16 tie to even (down); exact in f16
		{1 + 3.0/256, 0x3f82, 0x3c0c},           // bf16 tie to even (up)
		{1 + 1.0/2048, 0x3f80, 0x3c00},          // f16 tie to even (down)
		{1 + 3.0/2048, 0x3f80, 0x3c02},          // f16 tie to even (up)
		{65520, 0x4780, 0x7c00},                 // f16 overflow rounds to Inf
		{5.960464477539063e-08, 0x3380, 0x0001}, // smallest f16 subnormal
		{2.9e-08, 0x32f9, 0x0000},               // below half of it: zero
		{float32(math.Inf(-1)), 0xff80, 0xfc00},
	}
	for _, c := range cases {
		if g := bf16FromF32(c.f); g != c.bf16 {
			t.Errorf("bf16FromF32(%g) = %#04x, want %#04x", c.f, g, c.bf16)
		}
		if g := f16FromF32(c.f); g != c.f16 {
			t.Errorf("f16FromF32(%g) = %#04x, want %#04x", c.f, g, c.f16)
		}
	}
}

// Benchmarks. Decode-sized calls (small M) stream their weights from
// memory in a real forward pass, so those benchmarks cycle through enough
// copies of the layer to overflow the last-level cache; prefill-sized ones
// are compute-bound and use one copy. Metrics: GFLOP/s (2·M·In·Out per
// call) and GB/s of weight bytes read, to set against BenchmarkMemBandwidth.

var benchShapes = []struct {
	in, out int
	ms      []int
}{
	{768, 2304, []int{1, 8, 128, 512}}, // attn.c_attn
	{768, 3072, []int{1, 8, 128, 512}}, // mlp.c_fc
	{3072, 768, []int{1, 8, 128, 512}}, // mlp.c_proj
	{768, 50257, []int{1}},             // LM head
}

var benchTypes = []struct {
	name string
	typ  weightType
}{{"f32", weightF32}, {"bf16", weightBF16}, {"int8", weightI8}}

// benchCacheBytes is how much weight memory decode benchmarks cycle through:
// well past this machine's 32 MiB L3.
const benchCacheBytes = 256 << 20

// weightBytes is the size of l's weights and scales as read by a kernel.
func weightBytes(l *linear) int {
	return 4*len(l.F32) + 2*len(l.U16) + len(l.I8) + 4*len(l.Scale)
}

// benchLinears returns copies of one random layer enough to cover
// benchCacheBytes when cold is set, else the layer alone.
func benchLinears(in, out int, typ weightType, cold bool) []*linear {
	rng := rand.New(rand.NewPCG(uint64(in), uint64(out)))
	l := randLinear(rng, in, out, typ, true)
	ls := []*linear{l}
	if !cold {
		return ls
	}
	for len(ls)*weightBytes(l) < benchCacheBytes {
		c := *l
		c.F32 = append([]float32(nil), l.F32...)
		c.U16 = append([]uint16(nil), l.U16...)
		c.I8 = append([]int8(nil), l.I8...)
		ls = append(ls, &c)
	}
	return ls
}

// runLinearBench times f over the layers ls in turn. With more than one
// layer (weights streamed from memory) it also reports %bw: the weight
// read rate as a percentage of the best rate plain reads of the same
// memory reach just before and just after (streamRate), which holds up on
// a shared, noisy machine better than two separate benchmarks do.
func runLinearBench(b *testing.B, ls []*linear, m int, f func(out, x []float32, m int, l *linear)) {
	l := ls[0]
	rng := rand.New(rand.NewPCG(9, 10))
	x := randVec(rng, m*l.In)
	out := make([]float32, m*l.Out)
	f(out, x, m, l)
	var p *pool
	var base float64
	if len(ls) > 1 {
		p = newPool(0)
		defer p.Close()
		base = streamRate(p, ls)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f(out, x, m, ls[i%len(ls)])
	}
	sec := b.Elapsed().Seconds()
	b.StopTimer()
	rate := float64(weightBytes(l)) * float64(b.N) / sec / 1e9
	b.ReportMetric(2*float64(m)*float64(l.In)*float64(l.Out)*float64(b.N)/sec/1e9, "GFLOP/s")
	b.ReportMetric(rate, "GB/s")
	if p != nil {
		base = max(base, streamRate(p, ls))
		b.ReportMetric(100*rate/base, "%bw")
	}
}

// streamRate returns the best of three rates, in GB/s, at which the pool
// reads the weight memory of ls with the vector kernels (dot of each
// 256 KiB with itself), whatever the weight type: the memory-bandwidth
// bound for streaming them.
func streamRate(p *pool, ls []*linear) float64 {
	const chunk = 64 << 10 // floats
	var chunks [][]float32
	for _, l := range ls {
		var mem []byte
		switch {
		case l.F32 != nil:
			mem = unsafe.Slice((*byte)(unsafe.Pointer(&l.F32[0])), 4*len(l.F32))
		case l.U16 != nil:
			mem = unsafe.Slice((*byte)(unsafe.Pointer(&l.U16[0])), 2*len(l.U16))
		default:
			mem = unsafe.Slice((*byte)(unsafe.Pointer(&l.I8[0])), len(l.I8))
		}
		for len(mem) >= 4 {
			n := min(chunk, len(mem)/4)
			chunks = append(chunks, unsafe.Slice((*float32)(unsafe.Pointer(&mem[0])), n))
			mem = mem[4*n:]
		}
	}
	bytes := 0
	for _, c := range chunks {
		bytes += 4 * len(c)
	}
	sums := make([]float32, len(chunks))
	fn := func(start, end int) {
		for c := start; c < end; c++ {
			sums[c] = dot(chunks[c], chunks[c])
		}
	}
	var best float64
	for range 3 {
		start := time.Now()
		p.For(len(chunks), fn)
		best = max(best, float64(bytes)/time.Since(start).Seconds()/1e9)
	}
	return best
}

// BenchmarkLinear measures (*pool).linear with the kernels for this CPU on
// all GOMAXPROCS cores.
func BenchmarkLinear(b *testing.B) {
	benchLinearWith(b, bestKernels(), nil)
}

// BenchmarkLinearAVX2 is BenchmarkLinear on the AVX2 kernels, which serve
// x86-64 CPUs without AVX-512.
func BenchmarkLinearAVX2(b *testing.B) {
	for _, ks := range simdKernels() {
		if ks.name == "avx2" {
			benchLinearWith(b, ks, []int{1, 8, 512})
			return
		}
	}
	b.Skip("no AVX2")
}

// BenchmarkLinearGeneric is BenchmarkLinear on the pure-Go kernels, so
// the gain of the assembly can be quoted.
func BenchmarkLinearGeneric(b *testing.B) {
	benchLinearWith(b, genericKernels, []int{1, 128})
}

func benchLinearWith(b *testing.B, ks *kernels, only []int) {
	p := newPool(0)
	defer p.Close()
	p.kern = ks
	for _, sh := range benchShapes {
		for _, bt := range benchTypes {
			for _, m := range sh.ms {
				if only != nil && !slices.Contains(only, m) {
					continue
				}
				b.Run(fmt.Sprintf("in%d_out%d/%s/m=%d", sh.in, sh.out, bt.name, m), func(b *testing.B) {
					ls := benchLinears(sh.in, sh.out, bt.typ, m <= smallM)
					runLinearBench(b, ls, m, p.linear)
				})
			}
		}
	}
}

// BenchmarkLinearRef measures the naive one-goroutine linearRef that the
// fast kernels replace.
func BenchmarkLinearRef(b *testing.B) {
	for _, sh := range benchShapes[:3] {
		for _, bt := range benchTypes {
			for _, m := range []int{1, 8} {
				b.Run(fmt.Sprintf("in%d_out%d/%s/m=%d", sh.in, sh.out, bt.name, m), func(b *testing.B) {
					runLinearBench(b, benchLinears(sh.in, sh.out, bt.typ, true), m, linearRef)
				})
			}
		}
	}
}

func TestGEMMChunksDivideAmongWorkers(t *testing.T) {
	for _, c := range []struct{ panels, workers, most, want int }{
		{72, 2, 8, 6},  // 768→2304: 12 chunks, not 9
		{96, 2, 8, 8},  // 768→3072: 12 chunks already
		{24, 2, 8, 6},  // 768→768: 4 chunks
		{5, 2, 8, 2},   // no size past half the first divides 5 panels evenly: keep it
		{7, 3, 8, 2},   // the same with three workers
		{100, 1, 8, 8}, // one worker: any size divides
	} {
		if got := gemmChunkPanels(c.panels, c.workers, c.most); got != c.want {
			t.Errorf("gemmChunkPanels(%d, %d, %d) = %d, want %d", c.panels, c.workers, c.most, got, c.want)
		}
	}
}
