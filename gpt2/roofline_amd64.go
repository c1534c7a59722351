package gpt2

// peakLoops returns the instruction-throughput loops for the peaks this
// CPU has: each runs n iterations doing the given number of operations
// (a multiply-add counts two). Nil where the CPU lacks the instruction.
func peakLoops() (f32, bf16, i8 func(n int), f32Ops, bf16Ops, i8Ops float64) {
	if hasAVX512 {
		f32 = fmaLoopAVX512
	}
	if hasBF16 {
		bf16 = dpbf16LoopAVX512
	}
	if hasVNNI {
		i8 = dpbusdLoopAVX512
	}
	return f32, bf16, i8, 24 * 32, 24 * 64, 24 * 128
}

//go:noescape
func fmaLoopAVX512(n int)

//go:noescape
func dpbf16LoopAVX512(n int)

//go:noescape
func dpbusdLoopAVX512(n int)
