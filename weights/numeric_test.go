package weights

import (
	"math"
	"math/rand/v2"
	"testing"
)

// nearestCheck asserts that narrow(f), widened, is a representable value
// nearest to f, ties going to the even bit pattern: neither neighbour of
// the result is strictly closer, and on a tie the result is even.
func nearestCheck(t *testing.T, what string, f float32, narrow func(float32) uint16, widen func(uint16) float32) {
	t.Helper()
	h := narrow(f)
	got := widen(h)
	if math.IsInf(float64(got), 0) {
		return // overflow: checked separately
	}
	d := math.Abs(float64(got) - float64(f))
	for _, n := range []uint16{h - 1, h + 1} {
		if n&0x7fff == 0x7fff || (n^h)&0x8000 != 0 {
			continue // wrapped past NaN or across the sign
		}
		nv := widen(n)
		if math.IsInf(float64(nv), 0) || math.IsNaN(float64(nv)) {
			continue
		}
		dn := math.Abs(float64(nv) - float64(f))
		if dn < d || (dn == d && h&1 == 1) {
			t.Fatalf("%s(%g) = %#04x (%g), but %#04x (%g) is nearer or an even tie", what, f, h, got, n, nv)
		}
	}
}

func TestFloat32ToHalfRoundsToNearestEven(t *testing.T) {
	// Every half value round-trips, and the midpoints between neighbours
	// (exact in float32) go to the even one, values just off them to the
	// nearer one.
	for h := 0; h < 0x7c00; h++ {
		for _, sign := range []uint16{0, 0x8000} {
			a := uint16(h) | sign
			if got := Float32ToHalf(HalfToFloat32(a)); got != a {
				t.Fatalf("round trip of %#04x gave %#04x", a, got)
			}
			lo, hi := HalfToFloat32(a), HalfToFloat32(a+1)
			mid := float32((float64(lo) + float64(hi)) / 2)
			if float64(mid) != (float64(lo)+float64(hi))/2 {
				t.Fatalf("midpoint of %#04x not exact", a)
			}
			nearestCheck(t, "Float32ToHalf", mid, Float32ToHalf, HalfToFloat32)
			nearestCheck(t, "Float32ToHalf", math.Nextafter32(mid, 0), Float32ToHalf, HalfToFloat32)
			nearestCheck(t, "Float32ToHalf", math.Nextafter32(mid, float32(math.Inf(1))), Float32ToHalf, HalfToFloat32)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		f := float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(40)-30)))
		nearestCheck(t, "Float32ToHalf", f, Float32ToHalf, HalfToFloat32)
	}
	for _, c := range []struct {
		f    float32
		want uint16
	}{
		{65504, 0x7bff},   // largest half
		{65519, 0x7bff},   // just under the rounding boundary
		{65520, 0x7c00},   // the tie rounds to even, which is Inf
		{1e10, 0x7c00},    // overflow
		{-1e10, 0xfc00},   // negative overflow
		{0x1p-25, 0x0000}, // exact tie with zero: even
		{0x1.000002p-25, 0x0001},
		{0x1p-26, 0},
		{float32(math.Inf(1)), 0x7c00},
		{float32(math.Copysign(0, -1)), 0x8000},
	} {
		if got := Float32ToHalf(c.f); got != c.want {
			t.Errorf("Float32ToHalf(%g) = %#04x, want %#04x", c.f, got, c.want)
		}
	}
	if h := Float32ToHalf(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("NaN narrowed to %#04x, not a NaN", h)
	}
}

func TestFloat32ToBF16RoundsToNearestEven(t *testing.T) {
	for h := 0; h < 0x7f80; h += 7 {
		for _, sign := range []uint16{0, 0x8000} {
			a := uint16(h) | sign
			if got := Float32ToBF16(BF16ToFloat32(a)); got != a {
				t.Fatalf("round trip of %#04x gave %#04x", a, got)
			}
			mid := math.Float32frombits(uint32(a)<<16 | 0x8000) // exact midpoint to a+1
			nearestCheck(t, "Float32ToBF16", mid, Float32ToBF16, BF16ToFloat32)
			nearestCheck(t, "Float32ToBF16", math.Nextafter32(mid, 0), Float32ToBF16, BF16ToFloat32)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		nearestCheck(t, "Float32ToBF16", float32(r.NormFloat64()), Float32ToBF16, BF16ToFloat32)
	}
	if h := Float32ToBF16(float32(math.NaN())); h&0x7f80 != 0x7f80 || h&0x7f == 0 {
		t.Errorf("NaN narrowed to %#04x, not a NaN", h)
	}
	if got := Float32ToBF16(math.MaxFloat32); got != 0x7f80 {
		t.Errorf("MaxFloat32 narrowed to %#04x, want Inf (it is past the last bf16 midpoint)", got)
	}
}

func TestQuantizeRowI8(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	src := make([]float32, 1000)
	for i := range src {
		src[i] = float32(r.NormFloat64() * 0.02)
	}
	src[17] = -0.5 // the largest magnitude, negative
	q := make([]int8, len(src))
	scale, err := QuantizeRowI8(q, src)
	if err != nil {
		t.Fatal(err)
	}
	if want := float32(0.5) / 127; scale != want {
		t.Errorf("scale %g, want %g", scale, want)
	}
	if q[17] != -127 {
		t.Errorf("the extreme quantized to %d, want -127", q[17])
	}
	for i, v := range src {
		if e := math.Abs(float64(v) - float64(q[i])*float64(scale)); e > float64(scale)/2*(1+1e-6) {
			t.Fatalf("element %d: %g quantized to %d·%g, error %g > scale/2", i, v, q[i], scale, e)
		}
	}
	if s, err := QuantizeRowI8(q[:3], []float32{0, 0, 0}); err != nil || s != 0 || q[0] != 0 {
		t.Errorf("zero row: scale %g err %v", s, err)
	}
	if _, err := QuantizeRowI8(q[:2], []float32{1, float32(math.NaN())}); err == nil {
		t.Error("NaN quantized without error")
	}
	if _, err := QuantizeRowI8(q[:2], []float32{float32(math.Inf(-1)), 1}); err == nil {
		t.Error("Inf quantized without error")
	}
}
