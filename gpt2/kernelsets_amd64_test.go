package gpt2

// kernelSetsBuilt lists every SIMD kernel set built for amd64, fastest
// first, with whether this CPU runs it (and so whether the tests can hold
// it against the references) and the CPU features it needs.
func kernelSetsBuilt() []kernelSetInfo {
	narrow := "avx512+bf16+vnni"
	if avx512NarrowKernels != nil {
		narrow = avx512NarrowKernels.name // one of the two may be missing
	}
	return []kernelSetInfo{
		{narrow, avx512NarrowKernels != nil, "AVX-512 with AVX512_BF16 and/or AVX512_VNNI"},
		{"avx512", hasAVX512, "AVX-512 F, VL, BW and DQ"},
		{"avx2", hasAVX2, "AVX2, FMA and F16C"},
	}
}
