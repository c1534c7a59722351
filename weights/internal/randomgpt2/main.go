// Command randomgpt2 writes a Hugging Face-layout GPT-2 directory with
// random weights, for measuring conversion and loading at real model
// sizes without downloading one:
//
//	go run ./weights/internal/randomgpt2 -out /tmp/gpt2-random            # 124M shape, F32
//	go run ./weights/internal/randomgpt2 -out /tmp/x -size medium -dtype bf16
//
// The tensors, names and shapes are those of openai-community/gpt2's
// model.safetensors, causal-mask buffers included; the tokenizer is the
// test fixture's (the real GPT-2 vocabulary).
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

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
	shapes := map[string][3]int{ // n_layer, n_embd, n_head
		"tiny": {2, 64, 2}, "small": {12, 768, 12}, "medium": {24, 1024, 16},
		"large": {36, 1280, 20}, "xl": {48, 1600, 25},
	}
	s, ok := shapes[size]
	if !ok {
		return fmt.Errorf("unknown size %q", size)
	}
	dt, err := weights.ParseDType(dtypeName)
	if err != nil || dt == weights.I8 {
		return fmt.Errorf("dtype %q: want f32, f16 or bf16", dtypeName)
	}
	cfg := weights.Config{NLayer: s[0], NEmbd: s[1], NHead: s[2], NPositions: 1024, VocabSize: 50257,
		LayerNormEpsilon: 1e-5, ActivationFunction: "gelu_new", BOSTokenID: 50256, EOSTokenID: 50256}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	hfCfg := map[string]any{
		"architectures": []string{"GPT2LMHeadModel"}, "model_type": "gpt2",
		"n_layer": cfg.NLayer, "n_embd": cfg.NEmbd, "n_head": cfg.NHead, "n_positions": cfg.NPositions,
		"n_ctx": cfg.NPositions, "vocab_size": cfg.VocabSize, "layer_norm_epsilon": cfg.LayerNormEpsilon,
		"activation_function": cfg.ActivationFunction, "bos_token_id": cfg.BOSTokenID, "eos_token_id": cfg.EOSTokenID,
		"n_inner": nil, "torch_dtype": "float32",
	}
	cfgJSON, _ := json.MarshalIndent(hfCfg, "", "  ")
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

	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var tensors []weights.Tensor
	canon := weights.CanonicalShapes(cfg)
	names := make([]string, 0, len(canon))
	for n := range canon {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		shape := canon[name]
		hfName := name
		if name == "wte" || name == "wpe" {
			hfName += ".weight"
		}
		if strings.HasPrefix(name, "h.") && strings.HasSuffix(name, ".weight") && len(shape) == 2 {
			shape = []int{shape[1], shape[0]} // Conv1D stores [in, out]
		}
		n := 1
		for _, d := range shape {
			n *= d
		}
		vals := make([]float32, n)
		mean, std := 0.0, 0.02
		if strings.Contains(name, "ln_") && strings.HasSuffix(name, ".weight") {
			mean, std = 1, 0.05
		}
		for i := range vals {
			vals[i] = float32(mean + std*r.NormFloat64())
		}
		tensors = append(tensors, encode(hfName, shape, vals, dt))
	}
	for i := 0; i < cfg.NLayer; i++ { // the causal-mask buffers gpt2d skips
		p := cfg.NPositions
		mask := make([]float32, p*p)
		for row := 0; row < p; row++ {
			for col := 0; col <= row; col++ {
				mask[row*p+col] = 1
			}
		}
		tensors = append(tensors, encode(fmt.Sprintf("h.%d.attn.bias", i), []int{1, 1, p, p}, mask, dt))
	}
	return weights.WriteSafetensors(filepath.Join(out, "model.safetensors"), tensors, map[string]string{"format": "pt"})
}

func encode(name string, shape []int, vals []float32, dt weights.DType) weights.Tensor {
	t := weights.Tensor{Name: name, DType: dt, Shape: shape}
	switch dt {
	case weights.F32:
		t.Data = make([]byte, 4*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(v))
		}
	default:
		t.Data = make([]byte, 2*len(vals))
		for i, v := range vals {
			h := weights.Float32ToBF16(v)
			if dt == weights.F16 {
				h = weights.Float32ToHalf(v)
			}
			binary.LittleEndian.PutUint16(t.Data[2*i:], h)
		}
	}
	return t
}
