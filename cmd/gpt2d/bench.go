package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gpt2d/gpt2"
	"gpt2d/weights"
)

// benchResult is one row of `gpt2d bench` output.
type benchResult struct {
	Model        string  `json:"model"`
	DType        string  `json:"dtype"`
	KVDType      string  `json:"kv_dtype"` // the KV cache's element type
	Threads      int     `json:"threads"`
	Batch        int     `json:"batch"`
	PromptTokens int     `json:"prompt_tokens"`
	NewTokens    int     `json:"new_tokens"`
	PrefillTokS  float64 `json:"prefill_tok_s"`
	DecodeTokS   float64 `json:"decode_tok_s"`
	TTFTms       float64 `json:"ttft_ms"`
	TotalSeconds float64 `json:"total_s"`
	// EndToEndTokS is the tokens generated over the whole run, prefill
	// and first tokens included (batch × new tokens ÷ total_s, median):
	// the figure `gpt2d bench --url` measures over HTTP, where
	// decode_tok_s counts only the time after the last first token.
	EndToEndTokS float64 `json:"e2e_tok_s"`
	LoadSeconds  float64 `json:"load_s"`
	Params       int64   `json:"params"` // matches llama-bench's model_n_params
	// Memory: the process's peak resident set while this model ran (the
	// kernel's high-water mark, reset before each model is loaded), against
	// the budget of its mapped weights file, the KV its sequences filled
	// (batch × (prompt + new) positions) and 100 MB for everything else.
	PeakRSSMB   float64 `json:"peak_rss_mb"`
	WeightsMB   float64 `json:"weights_mb"`
	KVMB        float64 `json:"kv_mb"`
	RSSBudgetMB float64 `json:"rss_budget_mb"`
	// Spread over --reps runs: decode and prefill rates are medians.
	Reps       int     `json:"reps"`
	DecodeMin  float64 `json:"decode_tok_s_min"`
	DecodeMax  float64 `json:"decode_tok_s_max"`
	PrefillMin float64 `json:"prefill_tok_s_min"`
	PrefillMax float64 `json:"prefill_tok_s_max"`
	// Bounds measured in the same run.
	MemoryGBs       float64 `json:"memory_gb_s"`
	GEMMGFLOPs      float64 `json:"gemm_gflop_s"`       // float32 GEMM (prefill kernel)
	PeakGFLOPs      float64 `json:"peak_gflop_s"`       // float32 FMA peak of the CPU (0: not measured)
	DTypeGEMMGFLOPs float64 `json:"dtype_gemm_gflop_s"` // the GEMM on this model's weight type
	DTypePeakGFLOPs float64 `json:"dtype_peak_gflop_s"` // the peak of the instruction that GEMM runs on
	DecodeBoundTokS float64 `json:"decode_bound_tok_s"` // batch 1: memory rate / weight bytes per token
	PrefillGFLOPs   float64 `json:"prefill_gflop_s"`
	// The rates as percentages of their bounds.
	GEMMPctPeak     float64 `json:"gemm_pct_peak"`     // float32 GEMM of the FMA peak
	PrefillPctGEMM  float64 `json:"prefill_pct_gemm"`  // prefill of the dtype's GEMM rate
	PrefillPctPeak  float64 `json:"prefill_pct_peak"`  // prefill of the dtype's instruction peak
	DecodePctMemory float64 `json:"decode_pct_memory"` // decode of the memory bound (batch 1)
}

// runBench implements `gpt2d bench`: llama-bench-like prefill and decode
// throughput through the real Engine (continuous batching included). It
// stops when ctx ends (Ctrl-C).
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := bench(ctx, stdout, stderr, args)
	if err != nil && ctx.Err() != nil {
		return errInterrupted
	}
	return err
}

// bench is runBench writing results to w.
func bench(ctx context.Context, w, stderr io.Writer, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "models/gpt2.gpt2d", "converted weights files or Hugging Face checkpoint directories, comma-separated, benchmarked in turn")
	promptList := fs.String("prompt-tokens", "512", "comma-separated prompt lengths in tokens")
	newTokens := fs.Int("new-tokens", 128, "tokens to generate per sequence")
	batches := fs.String("batch", "1,8", "comma-separated numbers of concurrent sequences")
	threads := fs.Int("threads", runtime.GOMAXPROCS(0), "kernel worker threads")
	reps := fs.Int("reps", 5, "repetitions per configuration (medians are reported, with min and max)")
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	llamaJSON := fs.String("llama-bench", "", "llama-bench JSON results (-o json or jsonl) to print ratios against")
	urls := fs.String("url", "", "load running servers instead (comma-separated base URLs, e.g. http://127.0.0.1:8000, gpt2d or any OpenAI-compatible /v1/completions such as llama-server), interleaved, with ratios of the first to the others")
	clients := fs.String("clients", "8", "with --url: comma-separated numbers of concurrent clients")
	requests := fs.Int("requests", 4, "with --url: requests each client sends back-to-back per repetition")
	stream := fs.Bool("stream", true, "with --url: stream the completions (time to first token is measured only then)")
	temperature := fs.Float64("temperature", 0, "with --url: sampling temperature (0: greedy)")
	keyFile := fs.String("api-key-file", "", "with --url: file holding the API key (else GPT2D_API_KEY, else OPENAI_API_KEY)")
	kvList := fs.String("kv-dtype", "f32", "comma-separated KV cache element types (f32, bf16, f16), benchmarked interleaved per repetition")
	prefixTokens := fs.Int("prefix-tokens", 0, "also measure the time to first token of a prompt whose first N tokens an earlier request sent (prefix cache), against the same prompt cold, interleaved")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *urls != "" {
		return benchURLs(ctx, w, stderr, fs, *urls, *clients, *promptList, *newTokens, *requests, *reps, *stream, *temperature, *keyFile, *asJSON)
	}
	sizes, err := positiveInts("--batch", *batches)
	if err != nil {
		return err
	}
	prompts, err := positiveInts("--prompt-tokens", *promptList)
	if err != nil {
		return err
	}
	var kvdts []weights.DType
	for _, s := range strings.Split(*kvList, ",") {
		d, err := kvDType(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		kvdts = append(kvdts, d)
	}
	var llama []llamaRun
	if *llamaJSON != "" {
		if llama, err = readLlamaBench(*llamaJSON); err != nil {
			return err
		}
	}
	var results []benchResult
	var shapes []modelShape // per result
	var prefixes []prefixResult
	for _, path := range strings.Split(*model, ",") {
		res, shape, err := benchModel(ctx, strings.TrimSpace(path), sizes, prompts, kvdts, *newTokens, *threads, *reps)
		if err != nil {
			return err
		}
		if *prefixTokens > 0 {
			pr, err := benchPrefix(ctx, strings.TrimSpace(path), *prefixTokens, *threads, *reps)
			if err != nil {
				return err
			}
			prefixes = append(prefixes, pr)
		}
		results = append(results, res...)
		for range res {
			shapes = append(shapes, shape)
		}
	}
	// The bounds are measured after the runs (their buffers would count
	// in the peak RSS) but in the same process, minutes apart at most.
	if err := ctx.Err(); err != nil {
		return err
	}
	roof := gpt2.MeasureRoofline(*threads)
	addBounds(results, shapes, roof)
	if *asJSON {
		return writeBenchJSON(w, results, prefixes)
	}
	writeBenchTable(w, roof, results, prefixes)
	writeRatioTable(w, results, llama)
	return nil
}

// addBounds fills in each result's bounds from roof and its model's shape:
// the decode bound of reading every weight once per token, the GEMM rate
// and instruction peak of its weight type, and each as a percentage.
func addBounds(results []benchResult, shapes []modelShape, roof gpt2.Roofline) {
	for i := range results {
		res, sh := &results[i], shapes[i]
		res.MemoryGBs, res.GEMMGFLOPs, res.PeakGFLOPs = roof.MemoryGBs, roof.GEMMGFLOPs, roof.PeakGFLOPs
		res.DTypeGEMMGFLOPs, res.DTypePeakGFLOPs = roof.GEMMFor(res.DType), roof.PeakFor(res.DType)
		res.DecodeBoundTokS = roof.MemoryGBs * 1e9 / float64(sh.weightBytes)
		res.PrefillGFLOPs = res.PrefillTokS * sh.prefillFLOPs / 1e9
		res.GEMMPctPeak = pct(roof.GEMMGFLOPs, roof.PeakGFLOPs)
		res.PrefillPctGEMM = pct(res.PrefillGFLOPs, res.DTypeGEMMGFLOPs)
		res.PrefillPctPeak = pct(res.PrefillGFLOPs, res.DTypePeakGFLOPs)
		res.DecodePctMemory = pct(res.DecodeTokS, res.DecodeBoundTokS)
	}
}

// writeBenchJSON writes one JSON line per result, then per prefix result.
func writeBenchJSON(w io.Writer, results []benchResult, prefixes []prefixResult) error {
	enc := json.NewEncoder(w)
	for _, res := range results {
		if err := enc.Encode(res); err != nil {
			return err
		}
	}
	for _, pr := range prefixes {
		if err := enc.Encode(pr); err != nil {
			return err
		}
	}
	return nil
}

// writeBenchTable writes the bounds, one row per result and a line per
// prefix result.
func writeBenchTable(w io.Writer, roof gpt2.Roofline, results []benchResult, prefixes []prefixResult) {
	fmt.Fprintf(w, "bounds: memory read %.1f GB/s; GEMM f32 %.1f, bf16 %.1f, f16 %.1f, int8 %.1f GFLOP/s; peaks: f32 FMA %.1f, bf16 dot %.1f GFLOP/s, int8 dot %.1f GOP/s (f32 GEMM = %.0f%% of its peak)\n",
		roof.MemoryGBs, roof.GEMMGFLOPs, roof.GEMMBF16GFLOPs, roof.GEMMF16GFLOPs, roof.GEMMI8GFLOPs,
		roof.PeakGFLOPs, roof.PeakBF16GFLOPs, roof.PeakI8GOPs, pct(roof.GEMMGFLOPs, roof.PeakGFLOPs))
	fmt.Fprintf(w, "%-14s %-5s %-4s %3s %5s %6s %5s %22s %22s %9s %9s %9s\n", "model", "dtype", "kv", "thr", "batch", "prompt", "new",
		"prefill t/s (min-max)", "decode t/s (min-max)", "ttft ms", "rss MB", "budget")
	for _, res := range results {
		fmt.Fprintf(w, "%-14s %-5s %-4s %3d %5d %6d %5d %8.1f (%5.0f-%5.0f) %8.1f (%5.1f-%5.1f) %9.1f %9.0f %9.0f\n", res.Model, res.DType, res.KVDType, res.Threads, res.Batch,
			res.PromptTokens, res.NewTokens, res.PrefillTokS, res.PrefillMin, res.PrefillMax,
			res.DecodeTokS, res.DecodeMin, res.DecodeMax, res.TTFTms, res.PeakRSSMB, res.RSSBudgetMB)
		if res.Batch == 1 {
			fmt.Fprintf(w, "    decode = %.0f%% of the memory bound (%.1f tok/s); prefill = %.1f GFLOP/s = %.0f%% of the %s GEMM rate\n",
				res.DecodePctMemory, res.DecodeBoundTokS, res.PrefillGFLOPs, res.PrefillPctGEMM, res.DType)
		}
	}
	for _, pr := range prefixes {
		fmt.Fprintf(w, "prefix cache: %s %s, %d-token prefix + %d new prompt tokens: time to first token cold %.1f ms (%.1f-%.1f), prefix cached %.1f ms (%.1f-%.1f): %.1fx faster\n",
			pr.Model, pr.DType, pr.PrefixTokens, pr.SuffixTokens, pr.ColdTTFTms, pr.ColdMin, pr.ColdMax, pr.WarmTTFTms, pr.WarmMin, pr.WarmMax, pr.Speedup)
	}
}

// prefixResult is `gpt2d bench --prefix-tokens`: time to first token of a
// prompt with a cached prefix against a cold one.
type prefixResult struct {
	Model        string  `json:"model"`
	DType        string  `json:"dtype"`
	PrefixTokens int     `json:"prefix_tokens"`
	SuffixTokens int     `json:"suffix_tokens"`
	Reps         int     `json:"reps"`
	ColdTTFTms   float64 `json:"cold_ttft_ms"` // medians, then min and max
	ColdMin      float64 `json:"cold_ttft_ms_min"`
	ColdMax      float64 `json:"cold_ttft_ms_max"`
	WarmTTFTms   float64 `json:"warm_ttft_ms"`
	WarmMin      float64 `json:"warm_ttft_ms_min"`
	WarmMax      float64 `json:"warm_ttft_ms_max"`
	Speedup      float64 `json:"speedup"` // cold ÷ warm medians
	HitTokens    int64   `json:"prefix_hit_tokens"`
}

// benchPrefix measures, reps times, a prompt of prefix tokens no request
// sent before plus 16 more (cold), then the same prefix with 16 other
// tokens (its prefix cached), one token generated each, through an
// Engine with prefix caching on.
func benchPrefix(ctx context.Context, path string, prefix, threads, reps int) (prefixResult, error) {
	const suffix = 16
	m, err := gpt2.LoadWithOptions(path, gpt2.Options{Threads: threads})
	if err != nil {
		return prefixResult{}, err
	}
	defer m.Close()
	if prefix+suffix+1 > m.Config.NPositions {
		return prefixResult{}, fmt.Errorf("bench: %d prefix + %d tokens exceed the context of %d", prefix, suffix, m.Config.NPositions)
	}
	eng := gpt2.NewEngine(m, gpt2.EngineConfig{Slots: 1, QueueSize: 1})
	defer eng.Close()
	var cold, warm []float64
	for r := 0; r < max(reps, 1); r++ {
		ids := make([]int, prefix+suffix)
		for k := range ids {
			ids[k] = (k*7919 + r*104729 + 7) % min(m.Config.VocabSize, 50000)
		}
		for pass, out := range []*[]float64{&cold, &warm} {
			for k := prefix; k < len(ids); k++ {
				ids[k] = (k*31 + pass*977 + 3) % min(m.Config.VocabSize, 50000)
			}
			res, err := eng.Generate(ctx, gpt2.Request{PromptIDs: ids, MaxNewTokens: 1, IgnoreEOS: true}, nil)
			if err != nil {
				return prefixResult{}, err
			}
			*out = append(*out, float64(res.TimeToFirstToken.Microseconds())/1000)
		}
	}
	pr := prefixResult{Model: m.Name, DType: m.DType, PrefixTokens: prefix, SuffixTokens: suffix, Reps: len(cold),
		HitTokens: eng.Stats().PrefixHitTokens}
	pr.ColdTTFTms, pr.ColdMin, pr.ColdMax = medianMinMax(cold)
	pr.WarmTTFTms, pr.WarmMin, pr.WarmMax = medianMinMax(warm)
	if pr.WarmTTFTms > 0 {
		pr.Speedup = pr.ColdTTFTms / pr.WarmTTFTms
	}
	return pr, nil
}

// medianMinMax returns the median, least and greatest of xs (not empty).
func medianMinMax(xs []float64) (med, lo, hi float64) {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2], s[0], s[len(s)-1]
}

// modelShape is what the bounds need to know of a benchmarked model.
type modelShape struct {
	weightBytes  int64   // read per decode step
	prefillFLOPs float64 // per prompt token: the layers' matrices (attention and the one LM-head row left out)
}

// benchModel loads the model at path and runs every batch size and prompt
// length on it, reps times each. Peak RSS is this model's own where the
// kernel can reset the high-water mark (Linux), else the process's so far.
func benchModel(ctx context.Context, path string, sizes, prompts []int, kvdts []weights.DType, newTokens, threads, reps int) ([]benchResult, modelShape, error) {
	// The previous model's memory goes back to the OS first, so that the
	// reset high-water mark starts from what this process holds without it.
	debug.FreeOSMemory()
	resetPeakRSS()
	t0 := time.Now()
	m, err := gpt2.LoadWithOptions(path, gpt2.Options{Threads: threads})
	if err != nil {
		return nil, modelShape{}, err
	}
	defer m.Close()
	load := time.Since(t0).Seconds()
	cfg := m.Config
	for _, p := range prompts {
		if p+newTokens > cfg.NPositions {
			return nil, modelShape{}, fmt.Errorf("bench: %d prompt + %d new tokens exceed the context of %d", p, newTokens, cfg.NPositions)
		}
	}
	shape := modelShape{
		weightBytes:  m.WeightBytes(),
		prefillFLOPs: 2 * float64(m.Params()-int64((cfg.NPositions+cfg.VocabSize)*cfg.NEmbd)),
	}
	weightBytes := m.WeightBytes()
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
		weightBytes = st.Size() // the whole mapped file: embeddings, norms and header too
	}
	maxB := slices.Max(sizes)
	// Without the prefix cache: every repetition sends the same prompts,
	// and prefill is to be measured, not skipped.
	// One engine per KV element type, their runs interleaved.
	engs := make([]*gpt2.Engine, len(kvdts))
	for i, d := range kvdts {
		engs[i] = gpt2.NewEngine(m, gpt2.EngineConfig{Slots: maxB, QueueSize: maxB, NoPrefixCache: true, KVDType: d})
		defer engs[i].Close()
	}
	var results []benchResult
	var kvPeak int64
	for _, prompt := range prompts {
		for _, b := range sizes {
			runs := make([][]benchResult, len(engs))
			for r := 0; r < max(reps, 1); r++ {
				for i, eng := range engs {
					res, err := benchOnce(ctx, eng, b, prompt, newTokens, cfg.VocabSize)
					if err != nil {
						return nil, modelShape{}, err
					}
					runs[i] = append(runs[i], res)
				}
			}
			// KV in use: every engine's blocks for this batch; the most
			// so far, since blocks once written stay resident in the pool.
			var kv int64
			for _, eng := range engs {
				kv += kvBytes(eng.Stats(), b, prompt+newTokens)
			}
			kvPeak = max(kvPeak, kv)
			for i := range engs {
				res := summarize(runs[i])
				res.Model, res.DType, res.Threads, res.LoadSeconds, res.Params = m.Name, m.DType, threads, load, m.Params()
				res.KVDType = strings.ToLower(string(kvdts[i]))
				res.PeakRSSMB = peakRSSMB() // before the roofline's own buffers
				res.WeightsMB = float64(weightBytes) / (1 << 20)
				res.KVMB = float64(kvPeak) / (1 << 20)
				res.RSSBudgetMB = res.WeightsMB + res.KVMB + rssSlackMB
				results = append(results, res)
			}
		}
	}
	return results, shape, nil
}

// positiveInts parses a comma-separated list of positive integers.
func positiveInts(flag, list string) ([]int, error) {
	var ns []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bench: %s %q: want positive integers", flag, list)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

// pct returns 100·a/b, or 0 when b is 0 (a bound not measured).
func pct(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return 100 * a / b
}

// summarize returns the run with median fields and the min/max spread.
func summarize(runs []benchResult) benchResult {
	med := func(get func(benchResult) float64) (float64, float64, float64) {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = get(r)
		}
		sort.Float64s(v)
		return v[len(v)/2], v[0], v[len(v)-1]
	}
	res := runs[0]
	res.Reps = len(runs)
	res.DecodeTokS, res.DecodeMin, res.DecodeMax = med(func(r benchResult) float64 { return r.DecodeTokS })
	res.PrefillTokS, res.PrefillMin, res.PrefillMax = med(func(r benchResult) float64 { return r.PrefillTokS })
	res.TTFTms, _, _ = med(func(r benchResult) float64 { return r.TTFTms })
	res.TotalSeconds, _, _ = med(func(r benchResult) float64 { return r.TotalSeconds })
	res.EndToEndTokS, _, _ = med(func(r benchResult) float64 { return float64(r.Batch*r.NewTokens) / r.TotalSeconds })
	return res
}

// benchOnce runs batch concurrent greedy generations and derives prefill
// and decode rates from their timings.
func benchOnce(ctx context.Context, eng *gpt2.Engine, batch, promptTokens, newTokens, vocab int) (benchResult, error) {
	var wg sync.WaitGroup
	results := make([]*gpt2.Result, batch)
	errs := make([]error, batch)
	start := time.Now()
	for i := 0; i < batch; i++ {
		ids := make([]int, promptTokens)
		for k := range ids {
			ids[k] = (k*7919 + i*104729) % min(vocab, 50000)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = eng.Generate(ctx, gpt2.Request{PromptIDs: ids, MaxNewTokens: newTokens, IgnoreEOS: true}, nil)
		}()
	}
	wg.Wait()
	total := time.Since(start)
	var lastFirst time.Duration
	for i, r := range results {
		if errs[i] != nil {
			return benchResult{}, errs[i]
		}
		lastFirst = max(lastFirst, r.TimeToFirstToken)
	}
	decode := total - lastFirst
	res := benchResult{
		Batch: batch, PromptTokens: promptTokens, NewTokens: newTokens,
		PrefillTokS:  float64(batch*promptTokens) / lastFirst.Seconds(),
		TTFTms:       float64(results[0].TimeToFirstToken.Microseconds()) / 1000,
		TotalSeconds: total.Seconds(),
	}
	if decode > 0 && newTokens > 1 {
		res.DecodeTokS = float64(batch*(newTokens-1)) / decode.Seconds()
	}
	return res, nil
}

// rssSlackMB is what peak RSS may exceed weights + KV in use by (issue
// 13): code, the Go runtime, activations and scratch buffers.
const rssSlackMB = 100

// kvBytes is the KV memory batch sequences of positions tokens each hold:
// whole blocks of the engine's pool (as st describes them) per sequence.
func kvBytes(st gpt2.Stats, batch, positions int) int64 {
	blocks := (positions + st.KVBlockTokens - 1) / st.KVBlockTokens
	return int64(batch) * int64(blocks) * st.KVBlockBytes
}

// resetPeakRSS makes the kernel's high-water mark of this process's
// resident set (VmHWM) start again from its current RSS (Linux's
// /proc/PID/clear_refs, value 5). Elsewhere it does nothing and the peak
// stays the process's.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSSMB returns the process's peak resident set in MiB: VmHWM from
// /proc/self/status (which resetPeakRSS resets), else getrusage's maxrss.
func peakRSSMB() float64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				if kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64); err == nil {
					return kb / 1024
				}
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}
