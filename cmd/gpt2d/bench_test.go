package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBenchReportsThroughputAndBounds(t *testing.T) {
	var out bytes.Buffer
	err := bench(context.Background(), &out, io.Discard, []string{"--model", "../../testdata/gpt2-tiny", "--prompt-tokens", "8", "--new-tokens", "6",
		"--batch", "1,3", "--reps", "2", "--json"})
	if err != nil {
		t.Fatal(err)
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
