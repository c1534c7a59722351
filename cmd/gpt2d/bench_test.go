package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gpt2d/gpt2"
)

func TestBenchReportsThroughputAndBounds(t *testing.T) {
	var out bytes.Buffer
	err := bench(context.Background(), &out, io.Discard, []string{"--model", "../../testdata/gpt2-tiny", "--prompt-tokens", "8", "--new-tokens", "6",
		"--batch", "1,3", "--reps", "2", "--json"})
	if err != nil {
		t.Fatal(err)
	}
	// The KV in use is whole blocks of the pool: at least the 8+6
	// positions' keys and values at 2 bytes each.
	st := tinyPoolStats(t)
	if minKV := int64(8+6) * 2 * 2 * 2 * 64; st.KVBlockTokens < 1 || kvBytes(st, 1, 8+6) < minKV {
		t.Fatalf("KV of one 14-token sequence: %d bytes in blocks of %d positions (%d bytes), want ≥ %d", kvBytes(st, 1, 8+6), st.KVBlockTokens, st.KVBlockBytes, minKV)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one JSON line per batch size, got %q", out.String())
	}
	for i, line := range lines {
		var r benchResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		kv := float64(kvBytes(st, r.Batch, 8+6)) / (1 << 20)
		if r.KVMB != kv || !(r.WeightsMB > 0) || r.RSSBudgetMB != r.WeightsMB+r.KVMB+rssSlackMB {
			t.Errorf("batch %d: weights %.2f MB, KV %.4f MB (want %.4f), budget %.2f MB", r.Batch, r.WeightsMB, r.KVMB, kv, r.RSSBudgetMB)
		}
		// bench runs in this process, whose peak RSS is the test binary's
		// (and, under -race, the race detector's): the budget is held on the
		// built binary, in TestBenchPeakRSSWithinBudget.
		if r.Batch != []int{1, 3}[i] || r.Reps != 2 || !(r.DecodeTokS > 0) || !(r.PrefillTokS > 0) ||
			!(r.MemoryGBs > 0) || !(r.GEMMGFLOPs > 0) || !(r.DecodeBoundTokS > 0) || !(r.PeakRSSMB > 0) ||
			!(r.DTypeGEMMGFLOPs > 0) || !(r.PrefillPctGEMM > 0) || !(r.DecodePctMemory > 0) || !(r.EndToEndTokS > 0) ||
			r.DecodeMin > r.DecodeTokS || r.DecodeTokS > r.DecodeMax {
			t.Errorf("implausible result: %+v", r)
		}
	}
	if err := bench(context.Background(), &out, io.Discard, []string{"--model", "../../testdata/gpt2-tiny", "--prompt-tokens", "100", "--new-tokens", "100"}); err == nil {
		t.Error("prompt + new tokens beyond the context was accepted")
	}
}

// TestBenchPeakRSSWithinBudget: the built binary, a fresh process as an
// operator runs it, stays within weights + KV in use + 100 MB of peak RSS.
// The bound is not checked inside the test process: its resident set
// holds whatever the package's other tests left, and the race detector's
// shadow memory on top.
func TestBenchPeakRSSWithinBudget(t *testing.T) {
	cmd := exec.Command(gpt2dBinary(t), "bench", "--model", "../../testdata/gpt2-tiny", "--prompt-tokens", "8", "--new-tokens", "6",
		"--batch", "1,3", "--reps", "1", "--json")
	cmd.Env = cleanEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gpt2d bench: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one JSON line per batch size, got %q", out)
	}
	for _, line := range lines {
		var r benchResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		// The tiny model's budget is nearly all the 100 MB of slack: what
		// it holds is the binary, the runtime and the tokenizer.
		if !(r.PeakRSSMB > 0) || r.RSSBudgetMB != r.WeightsMB+r.KVMB+rssSlackMB {
			t.Errorf("batch %d: peak RSS %.1f MB, budget %.2f MB (weights %.2f, KV %.4f)", r.Batch, r.PeakRSSMB, r.RSSBudgetMB, r.WeightsMB, r.KVMB)
		}
		if r.PeakRSSMB > r.RSSBudgetMB {
			t.Errorf("batch %d: peak RSS %.1f MB over the budget of weights + KV + %d MB = %.1f MB", r.Batch, r.PeakRSSMB, rssSlackMB, r.RSSBudgetMB)
		}
	}
}

// tinyPoolStats returns the KV pool's description of an engine on the
// tiny fixture (2 layers, 64 wide).
func tinyPoolStats(t *testing.T) gpt2.Stats {
	t.Helper()
	m, err := gpt2.Load("../../testdata/gpt2-tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	eng := gpt2.NewEngine(m, gpt2.EngineConfig{Slots: 1})
	defer eng.Close()
	return eng.Stats()
}

// TestLlamaStatsPoolsRunsOfOneModel: llama-bench lines of several runs
// (compare scripts append one `-r 1` run per interleaved repetition) are
// one series, and in a file holding several model sizes only the size
// with gpt2d's parameter count (within 5%) counts.
func TestLlamaStatsPoolsRunsOfOneModel(t *testing.T) {
	runs := []llamaRun{
		{ModelType: "gpt2 0.1B F32", NParams: 124_439_808, NPrompt: 512, SamplesTS: []float64{100}},
		{ModelType: "gpt2 0.1B F32", NParams: 124_439_808, NPrompt: 512, SamplesTS: []float64{300, 200}},
		{ModelType: "gpt2 0.1B F32", NParams: 124_439_808, NPrompt: 512, AvgTS: 400},
		{ModelType: "gpt2 0.1B F32", NParams: 124_439_808, NGen: 128, SamplesTS: []float64{50}},
		{ModelType: "gpt2 0.1B Q8_0", NParams: 124_439_808, NPrompt: 512, SamplesTS: []float64{900}},
		{ModelType: "gpt2 1.5B F32", NParams: 1_557_611_200, NPrompt: 512, SamplesTS: []float64{10, 12, 11}},
		{ModelType: "gpt2 ? F16", NPrompt: 512, SamplesTS: []float64{7}}, // an old file: no parameter count
	}
	tests := []struct {
		name          string
		ftype         string
		params        int64
		nPrompt, nGen int
		med, lo, hi   float64
		ok            bool
	}{
		{"pooled, even count", "F32", 124_439_808, 512, 0, 250, 100, 400, true},
		{"another size in the file", "F32", 1_557_611_200, 512, 0, 11, 10, 12, true},
		{"size within 5%", "F32", 120_000_000, 512, 0, 250, 100, 400, true},
		{"no such size", "F32", 355_000_000, 512, 0, 0, 0, 0, false},
		{"decode", "F32", 124_439_808, 0, 128, 50, 50, 50, true},
		{"file type", "q8_0", 124_439_808, 512, 0, 900, 900, 900, true},
		{"no count in the file matches any size", "F16", 355_000_000, 512, 0, 7, 7, 7, true},
		{"no such test", "F32", 124_439_808, 128, 0, 0, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			med, lo, hi, ok := llamaStats(runs, tt.ftype, tt.params, tt.nPrompt, tt.nGen)
			if med != tt.med || lo != tt.lo || hi != tt.hi || ok != tt.ok {
				t.Errorf("got %v (%v-%v) %v, want %v (%v-%v) %v", med, lo, hi, ok, tt.med, tt.lo, tt.hi, tt.ok)
			}
		})
	}
}

// TestBenchPrintsRatiosAgainstLlamaBench: several models and prompt
// lengths in one run, and a ratio table against llama-bench's JSON lines
// (medians of its samples) for the matching file type.
func TestBenchPrintsRatiosAgainstLlamaBench(t *testing.T) {
	llama := filepath.Join(t.TempDir(), "llama.jsonl")
	lines := `{"model_type": "gpt2 0.1B F32", "n_prompt": 8, "n_gen": 0, "n_threads": 2, "avg_ts": 100, "samples_ts": [90, 100, 1000]}
{"model_type": "gpt2 0.1B F32", "n_prompt": 0, "n_gen": 6, "n_threads": 2, "avg_ts": 50, "samples_ts": [50, 40, 60]}
{"model_type": "gpt2 0.1B Q8_0", "n_prompt": 8, "n_gen": 0, "n_threads": 2, "avg_ts": 7, "samples_ts": [7]}
`
	if err := os.WriteFile(llama, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	tiny := "../../testdata/gpt2-tiny"
	err := bench(context.Background(), &out, io.Discard, []string{"--model", tiny + "," + tiny, "--prompt-tokens", "8,4", "--new-tokens", "6",
		"--batch", "1", "--reps", "1", "--llama-bench", llama})
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	_, table, ok := strings.Cut(text, "ratios")
	if !ok {
		t.Fatalf("no ratio table in:\n%s", text)
	}
	rows := strings.Split(strings.TrimSpace(table), "\n")[2:]
	if len(rows) != 4 {
		t.Fatalf("want a row per model and prompt length, got:\n%s", table)
	}
	// pp8 median 100 (min 90, max 1000), tg6 median 50 (40-60); no pp4.
	for _, want := range []string{"100.0 (   90- 1000)", "50.0 (  40-  60)"} {
		if !strings.Contains(rows[0], want) {
			t.Errorf("row %q lacks llama.cpp's %q", rows[0], want)
		}
	}
	if strings.Count(rows[0], "×") != 2 || strings.Count(rows[1], "×") != 1 {
		t.Errorf("ratios missing or invented:\n%s", table)
	}
}

// TestBenchPrefixCache: --prefix-tokens adds a line timing a prompt whose
// prefix an earlier request sent against a cold one; every warm request
// took its prefix's whole blocks from the cache, no cold one did.
func TestBenchPrefixCache(t *testing.T) {
	var out bytes.Buffer
	err := bench(context.Background(), &out, io.Discard, []string{"--model", "../../testdata/gpt2-tiny", "--prompt-tokens", "8", "--new-tokens", "2",
		"--batch", "1", "--reps", "3", "--prefix-tokens", "100", "--json"})
	if err != nil {
		t.Fatal(err)
	}
	// The KV in use is whole blocks of the pool: at least the 8+6
	// positions' keys and values at 2 bytes each.
	st := tinyPoolStats(t)
	if minKV := int64(8+6) * 2 * 2 * 2 * 64; st.KVBlockTokens < 1 || kvBytes(st, 1, 8+6) < minKV {
		t.Fatalf("KV of one 14-token sequence: %d bytes in blocks of %d positions (%d bytes), want ≥ %d", kvBytes(st, 1, 8+6), st.KVBlockTokens, st.KVBlockBytes, minKV)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a throughput line and a prefix line, got %q", out.String())
	}
	var pr prefixResult
	if err := json.Unmarshal([]byte(lines[1]), &pr); err != nil {
		t.Fatal(err)
	}
	// The tiny model's 100-token prefix fills one 64-position block.
	if pr.PrefixTokens != 100 || pr.Reps != 3 || pr.HitTokens != 3*64 || !(pr.ColdTTFTms > 0) || !(pr.WarmTTFTms > 0) ||
		pr.ColdMin > pr.ColdTTFTms || pr.WarmTTFTms > pr.WarmMax || !(pr.Speedup > 0) {
		t.Errorf("implausible result: %+v", pr)
	}
	if err := bench(context.Background(), &out, io.Discard, []string{"--model", "../../testdata/gpt2-tiny", "--prompt-tokens", "8", "--new-tokens", "2",
		"--batch", "1", "--reps", "1", "--prefix-tokens", "120"}); err == nil {
		t.Error("a prefix beyond the context was accepted")
	}
}
