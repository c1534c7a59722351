package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

// llamaRun is one llama-bench test as its JSON output (-o json or -o
// jsonl) gives it: pp<n_prompt> when n_gen is 0, tg<n_gen> when n_prompt
// is 0.
type llamaRun struct {
	ModelType string    `json:"model_type"` // "gpt2 0.1B F32": the last word is the file type
	NParams   int64     `json:"model_n_params"`
	NPrompt   int       `json:"n_prompt"`
	NGen      int       `json:"n_gen"`
	Threads   int       `json:"n_threads"`
	AvgTS     float64   `json:"avg_ts"`
	SamplesTS []float64 `json:"samples_ts"`
}

// readLlamaBench reads llama-bench's JSON array or JSON lines from path.
func readLlamaBench(path string) ([]llamaRun, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: llama-bench results: %w", err)
	}
	var runs []llamaRun
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '[' {
		if err := json.Unmarshal(t, &runs); err != nil {
			return nil, fmt.Errorf("bench: llama-bench results %s: %w", path, err)
		}
		return runs, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r llamaRun
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("bench: llama-bench results %s: %w", path, err)
		}
		runs = append(runs, r)
	}
	return runs, sc.Err()
}

// llamaType is the llama.cpp file type compared with a gpt2d weight type:
// int8 with one scale per row against Q8_0 (int8, one scale per 32).
func llamaType(dtype string) string {
	if dtype == "I8" {
		return "Q8_0"
	}
	return dtype
}

// llamaStats returns the median, min and max tokens/s of the llama-bench
// tests of the given file type, model size, prompt and generation lengths,
// and whether there was one. The samples of every matching test are pooled
// (a file of `llama-bench -r 1` runs interleaved with gpt2d's is one
// series). Of a file holding several model sizes, only the tests of the
// model whose parameter count is within 5% of params count (llama.cpp
// and gpt2d count the same tensors); params 0, or a file without counts,
// matches any size.
func llamaStats(runs []llamaRun, ftype string, params int64, nPrompt, nGen int) (med, lo, hi float64, ok bool) {
	var v []float64
	for _, r := range runs {
		f := strings.Fields(r.ModelType)
		if len(f) == 0 || !strings.EqualFold(f[len(f)-1], ftype) || r.NPrompt != nPrompt || r.NGen != nGen {
			continue
		}
		if params > 0 && r.NParams > 0 && math.Abs(float64(r.NParams-params)) > 0.05*float64(params) {
			continue
		}
		if len(r.SamplesTS) > 0 {
			v = append(v, r.SamplesTS...)
		} else {
			v = append(v, r.AvgTS)
		}
	}
	if len(v) == 0 {
		return 0, 0, 0, false
	}
	sort.Float64s(v)
	return median(v), v[0], v[len(v)-1], true
}

// median returns the middle of sorted v, the mean of the two middle values
// when len(v) is even.
func median(v []float64) float64 {
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// writeRatioTable prints, for each weight type and prompt length, prefill
// and batch-1 decode as fractions of the bounds measured in this run and,
// given llama-bench results, as ratios to llama.cpp's pp<prompt> and
// tg<new tokens> (medians, min–max beside them).
func writeRatioTable(w io.Writer, results []benchResult, llama []llamaRun) {
	fmt.Fprintln(w, "\nratios (bounds from this run):")
	fmt.Fprintf(w, "%-5s %6s %20s %6s %6s %6s", "dtype", "prompt", "prefill t/s (min-max)", "%gemm", "%peak", "")
	if llama != nil {
		fmt.Fprintf(w, " %20s %6s", "llama pp (min-max)", "×")
	}
	fmt.Fprintf(w, " %18s %5s", "decode t/s (b=1)", "%mem")
	if llama != nil {
		fmt.Fprintf(w, " %18s %6s", "llama tg (min-max)", "×")
	}
	fmt.Fprintln(w)
	for _, r := range results {
		if r.Batch != 1 {
			continue
		}
		name := r.DType
		if r.KVDType != "" && r.KVDType != "f32" {
			name += "/kv-" + r.KVDType // the KV cache's element type when narrow
		}
		fmt.Fprintf(w, "%-5s %6d %8.1f (%5.0f-%5.0f) %5.0f%% %5.0f%% %6s", name, r.PromptTokens,
			r.PrefillTokS, r.PrefillMin, r.PrefillMax, r.PrefillPctGEMM, r.PrefillPctPeak, "")
		if llama != nil {
			if med, lo, hi, ok := llamaStats(llama, llamaType(r.DType), r.Params, r.PromptTokens, 0); ok {
				fmt.Fprintf(w, " %8.1f (%5.0f-%5.0f) %5.2f×", med, lo, hi, r.PrefillTokS/med)
			} else {
				fmt.Fprintf(w, " %20s %6s", "-", "")
			}
		}
		fmt.Fprintf(w, " %6.1f (%4.0f-%4.0f) %4.0f%%", r.DecodeTokS, r.DecodeMin, r.DecodeMax, 100*r.DecodeTokS/r.DecodeBoundTokS)
		if llama != nil {
			if med, lo, hi, ok := llamaStats(llama, llamaType(r.DType), r.Params, 0, r.NewTokens); ok {
				fmt.Fprintf(w, " %6.1f (%4.0f-%4.0f) %5.2f×", med, lo, hi, r.DecodeTokS/med)
			} else {
				fmt.Fprintf(w, " %18s %6s", "-", "")
			}
		}
		fmt.Fprintln(w)
	}
}
