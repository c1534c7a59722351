// Command randomgpt2 is the older spelling of `gpt2d random-checkpoint`,
// kept for scripts that use it: it writes a Hugging Face-layout GPT-2
// directory with random weights (weights.WriteRandomSafetensors).
//
//	go run ./weights/internal/randomgpt2 -out /tmp/gpt2-random            # 124M shape, F32
//	go run ./weights/internal/randomgpt2 -out /tmp/x -size medium -dtype bf16
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"gpt2d/weights"
)

func main() {
	out := flag.String("out", "", "directory to write")
	size := flag.String("size", "small", "model shape: small (124M), medium, large, xl, or tiny")
	dtypeName := flag.String("dtype", "f32", "element type: f32, f16 or bf16")
	tokDir := flag.String("tokenizer", "testdata/gpt2-tiny", "directory holding tokenizer.json")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*out, *size, *dtypeName, *tokDir, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "randomgpt2:", err)
		os.Exit(1)
	}
}

func run(out, size, dtypeName, tokDir string, seed uint64) error {
	names := map[string]string{"small": "gpt2", "medium": "gpt2-medium", "large": "gpt2-large", "xl": "gpt2-xl"}
	cfg, ok := weights.RandomShapes[names[size]]
	if size == "tiny" {
		cfg, ok = weights.RandomShapes["gpt2"], true
		cfg.NLayer, cfg.NEmbd, cfg.NHead = 2, 64, 2
	}
	if !ok {
		return fmt.Errorf("unknown size %q", size)
	}
	dt, err := weights.ParseDType(dtypeName)
	if err != nil || dt == weights.I8 {
		return fmt.Errorf("dtype %q: want f32, f16 or bf16", dtypeName)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	cfgJSON, _ := json.MarshalIndent(weights.HFConfigJSON(cfg, dt), "", "  ")
	if err := os.WriteFile(filepath.Join(out, "config.json"), cfgJSON, 0o644); err != nil {
		return err
	}
	for _, name := range []string{"tokenizer.json", "generation_config.json"} {
		data, err := os.ReadFile(filepath.Join(tokDir, name))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, name), data, 0o644); err != nil {
			return err
		}
	}
	return weights.WriteRandomSafetensors(context.Background(), filepath.Join(out, "model.safetensors"), cfg, dt, seed)
}
