package gpt2

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"gpt2d/weights"
)

// loadSlackBytes bounds what loading a converted weights file may add to
// the live heap, and to the resident set: the tokenizer, the model's views
// and the parsed header (measured: 6 MB of heap, 7–16 MB resident). It is
// below the weights of the model the test loads in either dtype, so a copy
// of the weights (or int8 widened to float32 at load) cannot fit under it.
const loadSlackBytes = 32 << 20

// TestLoadMapsWeightsWithoutCopying: the server's peak RSS is to stay
// within weights + KV in use + 100 MB (issue 13), so loading must map the
// weights file and neither copy, widen nor read its matrices: the live heap
// and the resident set grow by less than loadSlackBytes, measured in bytes
// (runtime.MemStats after a collection, VmRSS) on a checkpoint of GPT-2's
// vocabulary and width whose weights are larger than that in f32 and int8.
func TestLoadMapsWeightsWithoutCopying(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 210 MB checkpoint")
	}
	src := writeRandomCheckpoint(t, weights.Config{NLayer: 2, NEmbd: 768, NHead: 12, NPositions: 1024, VocabSize: 50257,
		LayerNormEpsilon: 1e-5, ActivationFunction: "gelu_new", BOSTokenID: 50256, EOSTokenID: 50256})
	for _, dt := range []weights.DType{weights.F32, weights.I8} {
		t.Run(string(dt), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.gpt2d")
			if err := weights.Convert(src, path, weights.ConvertOptions{DType: dt}); err != nil {
				t.Fatal(err)
			}
			heap0, rss0 := liveHeap(), residentSet(t)
			m, err := LoadWithOptions(path, Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			heap, rss := liveHeap()-heap0, residentSet(t)-rss0
			if m.WeightBytes() <= loadSlackBytes {
				t.Fatalf("the test's weights (%d bytes) do not exceed the bound they test", m.WeightBytes())
			}
			t.Logf("%s: weights %d bytes; load added %d bytes of live heap, %d of resident set", dt, m.WeightBytes(), heap, rss)
			if heap > loadSlackBytes {
				t.Errorf("loading added %d bytes of live heap (bound %d, weights %d): weights copied?", heap, loadSlackBytes, m.WeightBytes())
			}
			if rss > loadSlackBytes {
				t.Errorf("loading added %d bytes of resident set (bound %d, weights %d): weights copied or read?", rss, loadSlackBytes, m.WeightBytes())
			}
			runtime.KeepAlive(m)
		})
	}
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// residentSet returns the process's resident set in bytes (VmRSS); it
// skips the test where /proc does not give it.
func residentSet(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmRSS in /proc/self/status")
	return 0
}

// writeRandomCheckpoint writes a Hugging Face directory of shape cfg with
// random float32 weights and the tiny fixture's (GPT-2's) tokenizer.
func writeRandomCheckpoint(t *testing.T, cfg weights.Config) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(tinyDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	js, err := json.Marshal(weights.HFConfigJSON(cfg, weights.F32))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := weights.WriteRandomSafetensors(context.Background(), filepath.Join(dir, "model.safetensors"), cfg, weights.F32, 1); err != nil {
		t.Fatal(err)
	}
	return dir
}
