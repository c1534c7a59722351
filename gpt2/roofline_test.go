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
	if _, ok := threadCPUTime(); ok {
		c := r.Core
		for name, v := range map[string]float64{
			"core gemm f32": c.GEMMGFLOPs, "core gemm bf16": c.GEMMBF16GFLOPs, "core gemm f16": c.GEMMF16GFLOPs,
			"core gemm int8": c.GEMMI8GFLOPs, "core f32 peak": c.PeakGFLOPs,
		} {
			if !(v > 0) {
				t.Errorf("%s %g, want > 0 (the thread clock reads)", name, v)
			}
		}
		if (c.PeakBF16GFLOPs > 0) != (bf16 != nil) || (c.PeakI8GOPs > 0) != (i8 != nil) {
			t.Errorf("core peaks bf16 %g, int8 %g; CPU has them: %v, %v", c.PeakBF16GFLOPs, c.PeakI8GOPs, bf16 != nil, i8 != nil)
		}
		t.Logf("one core, by its CPU time: GEMM %% of peak f32 %.0f%%, bf16 %.0f%%, f16 %.0f%%, int8 %.0f%%",
			r.GEMMPctPeak("F32"), r.GEMMPctPeak("BF16"), r.GEMMPctPeak("F16"), r.GEMMPctPeak("I8"))
	}
	t.Logf("%+v", r)
	t.Logf("GEMM / peak: f32 %.0f%%, bf16 %.0f%%, int8 %.0f%%", 100*r.GEMMGFLOPs/r.PeakFor("F32"),
		100*r.GEMMBF16GFLOPs/r.PeakFor("BF16"), 100*r.GEMMI8GFLOPs/r.PeakFor("I8"))
}
