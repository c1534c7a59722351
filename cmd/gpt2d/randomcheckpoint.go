package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gpt2d/weights"
)

const randomCheckpointUsage = `usage: gpt2d random-checkpoint [--config NAME|FILE.json] [--dtype f32|f16|bf16] [--seed S] [--tokenizer DIR] OUT_DIR

Writes a GPT-2 checkpoint with random weights to OUT_DIR in the exact
Hugging Face layout (config.json, generation_config.json,
model.safetensors with Conv1D weights and causal-mask buffers, and the
tokenizer files), for benchmarks and tests at real model sizes without a
download. Speed does not depend on the weights' values; the text does.

--config is a model name (distilgpt2, gpt2, gpt2-medium, gpt2-large,
gpt2-xl) or a Hugging Face config.json, copied as is. The tokenizer files
(tokenizer.json, vocab.json, merges.txt, tokenizer_config.json) are copied
from --tokenizer: by default testdata/gpt2-tiny (in the source tree) or
models/gpt2, whichever exists.

flags:
`

// tokenizerFiles are the files of a Hugging Face GPT-2 tokenizer.
var tokenizerFiles = []string{"tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"}

func runRandomCheckpoint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	b := newBinder("random-checkpoint", os.Getenv, stderr)
	b.fs.Usage = func() { fmt.Fprint(b.fs.Output(), randomCheckpointUsage); b.fs.PrintDefaults() }
	config := b.fs.String("config", "gpt2", "model shape: distilgpt2, gpt2, gpt2-medium, gpt2-large, gpt2-xl, or a config.json file")
	dtypeName := b.fs.String("dtype", "f32", "element type of the tensors: f32, f16 or bf16")
	seed := b.fs.Uint64("seed", 1, "random seed: the same seed gives the same weights")
	tokDir := b.fs.String("tokenizer", "", "directory with GPT-2's tokenizer files (default testdata/gpt2-tiny or models/gpt2)")
	if err := b.parse(args); err != nil {
		return err
	}
	if b.fs.NArg() != 1 {
		b.fs.Usage()
		return fmt.Errorf("%w: random-checkpoint: want one OUT_DIR", errUsage)
	}
	out := b.fs.Arg(0)
	dt, err := weights.ParseDType(*dtypeName)
	if err != nil || dt == weights.I8 {
		return fmt.Errorf("%w: random-checkpoint: --dtype %q: want f32, f16 or bf16", errUsage, *dtypeName)
	}
	cfgJSON, cfg, err := randomConfig(*config, dt)
	if err != nil {
		return fmt.Errorf("random-checkpoint: %w", err)
	}
	if *tokDir == "" {
		*tokDir = defaultTokenizerDir()
	}
	if *tokDir == "" {
		return errors.New("random-checkpoint: no tokenizer: pass --tokenizer DIR, a directory with GPT-2's tokenizer.json or vocab.json and merges.txt (testdata/gpt2-tiny in the source tree, or a fetched models/gpt2)")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("random-checkpoint: %w", err)
	}
	copied := 0
	for _, name := range tokenizerFiles {
		data, err := os.ReadFile(filepath.Join(*tokDir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("random-checkpoint: tokenizer: %w", err)
		}
		if err := os.WriteFile(filepath.Join(out, name), data, 0o644); err != nil {
			return fmt.Errorf("random-checkpoint: %w", err)
		}
		copied++
	}
	if copied == 0 {
		return fmt.Errorf("random-checkpoint: --tokenizer %s has none of %s", *tokDir, strings.Join(tokenizerFiles, ", "))
	}
	gen := map[string]any{"_from_model_config": true, "bos_token_id": cfg.BOSTokenID, "eos_token_id": cfg.EOSTokenID}
	for name, v := range map[string]any{"config.json": cfgJSON, "generation_config.json": gen} {
		if raw, ok := v.([]byte); ok {
			err = os.WriteFile(filepath.Join(out, name), raw, 0o644)
		} else {
			err = writeJSON(filepath.Join(out, name), v)
		}
		if err != nil {
			return fmt.Errorf("random-checkpoint: %w", err)
		}
	}
	fmt.Fprintf(stderr, "writing %s: %d layers, %d wide, %d heads, %s\n", out, cfg.NLayer, cfg.NEmbd, cfg.NHead, dt)
	if err := weights.WriteRandomSafetensors(ctx, filepath.Join(out, "model.safetensors"), cfg, dt, *seed); err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return fmt.Errorf("random-checkpoint: %w", err)
	}
	fmt.Fprintf(stdout, "%s is ready: gpt2d serve --model %s, or convert it with gpt2d weights convert --from %s\n", out, out, out)
	return nil
}

// randomConfig returns the config.json to write (bytes for a file given,
// else a value to encode) and the shape it describes.
func randomConfig(spec string, dt weights.DType) (any, weights.Config, error) {
	if cfg, ok := weights.RandomShapes[spec]; ok {
		return weights.HFConfigJSON(cfg, dt), cfg, nil
	}
	if !strings.HasSuffix(spec, ".json") {
		names := make([]string, 0, len(weights.RandomShapes))
		for n := range weights.RandomShapes {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, weights.Config{}, fmt.Errorf("%w: --config %q: want %s or a config.json file", errUsage, spec, strings.Join(names, ", "))
	}
	data, err := os.ReadFile(spec)
	if err != nil {
		return nil, weights.Config{}, err
	}
	cfg, err := weights.ParseConfig(data)
	if err != nil {
		return nil, weights.Config{}, fmt.Errorf("%s: %w", spec, err)
	}
	return data, cfg, nil
}

// defaultTokenizerDir returns the first of testdata/gpt2-tiny and
// models/gpt2 that holds a tokenizer, or "".
func defaultTokenizerDir() string {
	for _, dir := range []string{filepath.Join("testdata", "gpt2-tiny"), filepath.Join("models", "gpt2")} {
		for _, name := range []string{"tokenizer.json", "vocab.json"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return dir
			}
		}
	}
	return ""
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
