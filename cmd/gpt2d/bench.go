package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
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
}

// runBench implements `gpt2d bench`: llama-bench-like prefill and decode
// throughput through the real Engine (continuous batching included).
func runBench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	model := fs.String("model", "models/gpt2.gpt2d", "converted weights file or Hugging Face checkpoint directory")
	promptTokens := fs.Int("prompt-tokens", 512, "prompt length in tokens")
	newTokens := fs.Int("new-tokens", 128, "tokens to generate per sequence")
	batches := fs.String("batch", "1,8", "comma-separated numbers of concurrent sequences")
	threads := fs.Int("threads", runtime.GOMAXPROCS(0), "kernel worker threads")
	reps := fs.Int("reps", 1, "repetitions per configuration (best is reported)")
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	if err := fs.Parse(args); err != nil {
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
	if !*asJSON {
		fmt.Printf("%-14s %-5s %3s %5s %6s %5s %12s %12s %9s %9s\n", "model", "dtype", "thr", "batch", "prompt", "new", "prefill t/s", "decode t/s", "ttft ms", "rss MB")
	}
	for _, b := range sizes {
		best := benchResult{}
		for r := 0; r < max(*reps, 1); r++ {
			res, err := benchOnce(eng, b, *promptTokens, *newTokens, m.Config.VocabSize)
			if err != nil {
				return err
			}
			if res.DecodeTokS > best.DecodeTokS {
				best = res
			}
		}
		best.Model, best.DType, best.Threads, best.LoadSeconds = m.Name, m.DType, *threads, load
		best.PeakRSSMB = peakRSSMB()
		if *asJSON {
			json.NewEncoder(os.Stdout).Encode(best)
		} else {
			fmt.Printf("%-14s %-5s %3d %5d %6d %5d %12.1f %12.1f %9.1f %9.0f\n", best.Model, best.DType, best.Threads, best.Batch,
				best.PromptTokens, best.NewTokens, best.PrefillTokS, best.DecodeTokS, best.TTFTms, best.PeakRSSMB)
		}
	}
	return nil
}

// benchOnce runs batch concurrent greedy generations and derives prefill
// and decode rates from their timings.
func benchOnce(eng *gpt2.Engine, batch, promptTokens, newTokens, vocab int) (benchResult, error) {
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
			results[i], errs[i] = eng.Generate(context.Background(), gpt2.Request{PromptIDs: ids, MaxNewTokens: newTokens, IgnoreEOS: true}, nil)
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
