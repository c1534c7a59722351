package gpt2

import "testing"

// TestMeasureRooflineMeasuresEveryBound checks that every bound comes out
// positive and that the instruction peaks this CPU has are measured (no
// speed is asserted: the machine may be busy).
func TestMeasureRooflineMeasuresEveryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 512 MB")
	}
	r := MeasureRoofline(2)
	for name, v := range map[string]float64{
		"memory": r.MemoryGBs, "gemm f32": r.GEMMGFLOPs, "gemm bf16": r.GEMMBF16GFLOPs,
		"gemm f16": r.GEMMF16GFLOPs, "gemm int8": r.GEMMI8GFLOPs,
	} {
		if !(v > 0) {
			t.Errorf("%s bound %g, want > 0", name, v)
		}
	}
	f32, bf16, i8, _, _, _ := peakLoops()
	for _, c := range []struct {
		name string
		has  bool
		v    float64
	}{{"f32 FMA", f32 != nil, r.PeakGFLOPs}, {"VDPBF16PS", bf16 != nil, r.PeakBF16GFLOPs}, {"VPDPBUSD", i8 != nil, r.PeakI8GOPs}} {
		if c.has != (c.v > 0) {
			t.Errorf("%s peak %g; CPU has it: %v", c.name, c.v, c.has)
		}
	}
	t.Logf("%+v", r)
	t.Logf("GEMM / peak: f32 %.0f%%, bf16 %.0f%%, int8 %.0f%%", 100*r.GEMMGFLOPs/r.PeakFor("F32"),
		100*r.GEMMBF16GFLOPs/r.PeakFor("BF16"), 100*r.GEMMI8GFLOPs/r.PeakFor("I8"))
}
