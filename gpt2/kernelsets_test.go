package gpt2

import (
	"strings"
	"testing"
)

// kernelSetInfo is one SIMD kernel set built for this architecture.
type kernelSetInfo struct {
	name  string
	runs  bool   // this CPU runs it: the kernel tests exercise it
	needs string // the CPU features it needs
}

// TestKernelSetsRunOnThisCPU logs which kernel sets the kernel tests
// (TestLinearMatchesReference, TestVecMatchesReference,
// TestConversionsMatchScalar) ran on this CPU and which they could not:
// a machine without AVX-512 passes without ever executing the AVX-512
// kernels, and this says so. It fails if the list disagrees with the sets
// the tests iterate (simdKernels), so the log cannot go stale. To see the
// suite as such a machine runs it: GODEBUG=cpu.avx512f=off go test ./gpt2
// (x/sys/cpu honours it).
func TestKernelSetsRunOnThisCPU(t *testing.T) {
	tested := map[string]bool{}
	for _, ks := range simdKernels() {
		tested[ks.name] = true
	}
	ran := []string{genericKernels.name}
	var untestable []string
	for _, ks := range kernelSetsBuilt() {
		switch {
		case ks.runs && !tested[ks.name]:
			t.Errorf("kernel set %s runs on this CPU but simdKernels does not list it for the tests", ks.name)
		case !ks.runs && tested[ks.name]:
			t.Errorf("kernel set %s is tested but listed as not running on this CPU", ks.name)
		case ks.runs:
			ran = append(ran, ks.name)
		default:
			untestable = append(untestable, ks.name+" (needs "+ks.needs+")")
		}
		delete(tested, ks.name)
	}
	for name := range tested {
		t.Errorf("simdKernels lists %s, which kernelSetsBuilt does not know", name)
	}
	t.Logf("kernel sets tested on this CPU: %s", strings.Join(ran, ", "))
	if len(untestable) == 0 {
		t.Logf("every kernel set built for this architecture was tested")
		return
	}
	t.Logf("NOT TESTED, this CPU cannot run them: %s", strings.Join(untestable, "; "))
}
