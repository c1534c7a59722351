package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gpt2d/gpt2"
)

// benchResult is one row of `gpt2d bench` output.
type benchResult struct {
	Model        string  `json:"model"`
	DType        string  `json:"dtype"`
	Threads      int     `json:"threads"`
	Batch        int     `json:"batch"`
	PromptTokens int     `json:"prompt_tokens"`
	NewTokens    int     `json:"new_tokens"`
	PrefillTokS  float64 `json:"prefill_tok_s"`
	DecodeTokS   float64 `json:"decode_tok_s"`
	TTFTms       float64 `json:"ttft_ms"`
	TotalSeconds float64 `json:"total_s"`
	PeakRSSMB    float64 `json:"peak_rss_mb"`
	LoadSeconds  float64 `json:"load_s"`
	// Spread over --reps runs: decode and prefill rates are medians.
	Reps       int     `json:"reps"`
	DecodeMin  float64 `json:"decode_tok_s_min"`
	DecodeMax  float64 `json:"decode_tok_s_max"`
	PrefillMin float64 `json:"prefill_tok_s_min"`
	PrefillMax float64 `json:"prefill_tok_s_max"`
	// Bounds measured in the same run.
	MemoryGBs       float64 `json:"memory_gb_s"`
	GEMMGFLOPs      float64 `json:"gemm_gflop_s"`
	DecodeBoundTokS float64 `json:"decode_bound_tok_s"` // batch 1: memory rate / weight bytes per token
	PrefillGFLOPs   float64 `json:"prefill_gflop_s"`
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
	model := fs.String("model", "models/gpt2.gpt2d", "converted weights file or Hugging Face checkpoint directory")
	promptTokens := fs.Int("prompt-tokens", 512, "prompt length in tokens")
	newTokens := fs.Int("new-tokens", 128, "tokens to generate per sequence")
	batches := fs.String("batch", "1,8", "comma-separated numbers of concurrent sequences")
	threads := fs.Int("threads", runtime.GOMAXPROCS(0), "kernel worker threads")
	reps := fs.Int("reps", 5, "repetitions per configuration (medians are reported, with min and max)")
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var sizes []int
	for _, s := range strings.Split(*batches, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("bench: --batch %q: want positive integers", *batches)
		}
		sizes = append(sizes, n)
	}
	t0 := time.Now()
	m, err := gpt2.LoadWithOptions(*model, gpt2.Options{Threads: *threads})
	if err != nil {
		return err
	}
	defer m.Close()
	load := time.Since(t0).Seconds()
	if *promptTokens+*newTokens > m.Config.NPositions {
		return fmt.Errorf("bench: %d prompt + %d new tokens exceed the context of %d", *promptTokens, *newTokens, m.Config.NPositions)
	}
	maxB := 0
	for _, b := range sizes {
		maxB = max(maxB, b)
	}
	eng := gpt2.NewEngine(m, gpt2.EngineConfig{Slots: maxB, QueueSize: maxB})
	defer eng.Close()
	var results []benchResult
	for _, b := range sizes {
		var runs []benchResult
		for r := 0; r < max(*reps, 1); r++ {
			res, err := benchOnce(ctx, eng, b, *promptTokens, *newTokens, m.Config.VocabSize)
			if err != nil {
				return err
			}
			runs = append(runs, res)
		}
		res := summarize(runs)
		res.Model, res.DType, res.Threads, res.LoadSeconds = m.Name, m.DType, *threads, load
		res.PeakRSSMB = peakRSSMB() // before the roofline's own buffers
		results = append(results, res)
	}
	// The bounds are measured after the runs (their buffers would count
	// in the peak RSS) but in the same process, minutes apart at most.
	roof := gpt2.MeasureRoofline(*threads)
	wbytes := m.WeightBytes()
	bound := roof.MemoryGBs * 1e9 / float64(wbytes)
	flopsPerToken := 2 * float64(m.Params()-int64(m.Config.NPositions*m.Config.NEmbd))
	if !*asJSON {
		fmt.Fprintf(w, "bounds: memory read %.1f GB/s → batch-1 decode ≤ %.1f tok/s (%.0f MB of weights per token); GEMM %.1f GFLOP/s\n",
			roof.MemoryGBs, bound, float64(wbytes)/1e6, roof.GEMMGFLOPs)
		fmt.Fprintf(w, "%-14s %-5s %3s %5s %6s %5s %22s %22s %9s %9s\n", "model", "dtype", "thr", "batch", "prompt", "new",
			"prefill t/s (min-max)", "decode t/s (min-max)", "ttft ms", "rss MB")
	}
	for _, res := range results {
		res.MemoryGBs, res.GEMMGFLOPs, res.DecodeBoundTokS = roof.MemoryGBs, roof.GEMMGFLOPs, bound
		// Attention adds a little on top of the weights' FLOPs; counting
		// only the weights makes this a lower bound of the work done.
		res.PrefillGFLOPs = res.PrefillTokS * flopsPerToken / 1e9
		if *asJSON {
			json.NewEncoder(w).Encode(res)
			continue
		}
		fmt.Fprintf(w, "%-14s %-5s %3d %5d %6d %5d %8.1f (%5.0f-%5.0f) %8.1f (%5.1f-%5.1f) %9.1f %9.0f\n", res.Model, res.DType, res.Threads, res.Batch,
			res.PromptTokens, res.NewTokens, res.PrefillTokS, res.PrefillMin, res.PrefillMax,
			res.DecodeTokS, res.DecodeMin, res.DecodeMax, res.TTFTms, res.PeakRSSMB)
		if res.Batch == 1 {
			fmt.Fprintf(w, "    decode = %.0f%% of the memory bound; prefill = %.1f GFLOP/s = %.0f%% of the GEMM rate\n",
				100*res.DecodeTokS/bound, res.PrefillGFLOPs, 100*res.PrefillGFLOPs/roof.GEMMGFLOPs)
		}
	}
	return nil
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

func peakRSSMB() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}
