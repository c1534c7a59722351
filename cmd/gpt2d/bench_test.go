package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
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
			r.DecodeMin > r.DecodeTokS || r.DecodeTokS > r.DecodeMax {
			t.Errorf("implausible result: %+v", r)
		}
	}
	if err := bench(context.Background(), &out, io.Discard, []string{"--model", "../../testdata/gpt2-tiny", "--prompt-tokens", "100", "--new-tokens", "100"}); err == nil {
		t.Error("prompt + new tokens beyond the context was accepted")
	}
}
