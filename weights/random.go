package weights

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
)

// RandomShapes are the shapes of the released GPT-2 checkpoints, by the
// names `gpt2d weights fetch --model` takes. Each has GPT-2's vocabulary
// and a 1024-token context.
var RandomShapes = map[string]Config{
	"distilgpt2":  gpt2Shape(6, 768, 12),
	"gpt2":        gpt2Shape(12, 768, 12),
	"gpt2-medium": gpt2Shape(24, 1024, 16),
	"gpt2-large":  gpt2Shape(36, 1280, 20),
	"gpt2-xl":     gpt2Shape(48, 1600, 25),
}

func gpt2Shape(layers, embd, heads int) Config {
	return Config{NLayer: layers, NEmbd: embd, NHead: heads, NPositions: 1024, VocabSize: 50257,
		LayerNormEpsilon: 1e-5, ActivationFunction: "gelu_new", BOSTokenID: 50256, EOSTokenID: 50256}
}

// HFConfigJSON returns the config.json Hugging Face's transformers writes
// for a GPT2LMHeadModel of shape cfg saved in dtype (the fields of
// openai-community/gpt2's config.json).
func HFConfigJSON(cfg Config, dt DType) map[string]any {
	torch := map[DType]string{F32: "float32", F16: "float16", BF16: "bfloat16"}[dt]
	var inner any
	if cfg.NInner > 0 {
		inner = cfg.NInner
	}
	return map[string]any{
		"activation_function": cfg.ActivationFunction, "architectures": []string{"GPT2LMHeadModel"},
		"attn_pdrop": 0.1, "bos_token_id": cfg.BOSTokenID, "embd_pdrop": 0.1, "eos_token_id": cfg.EOSTokenID,
		"initializer_range": 0.02, "layer_norm_epsilon": cfg.LayerNormEpsilon, "model_type": "gpt2",
		"n_ctx": cfg.NPositions, "n_embd": cfg.NEmbd, "n_head": cfg.NHead, "n_inner": inner,
		"n_layer": cfg.NLayer, "n_positions": cfg.NPositions, "reorder_and_upcast_attn": false,
		"resid_pdrop": 0.1, "scale_attn_by_inverse_layer_idx": false, "scale_attn_weights": true,
		"summary_activation": nil, "summary_first_dropout": 0.1, "summary_proj_to_labels": true,
		"summary_type": "cls_index", "summary_use_proj": true,
		"task_specific_params": map[string]any{"text-generation": map[string]any{"do_sample": true, "max_length": 50}},
		"torch_dtype":          torch, "use_cache": true, "vocab_size": cfg.VocabSize,
	}
}

// WriteRandomSafetensors writes path as the model.safetensors of a
// GPT2LMHeadModel of shape cfg with random weights in dt (F32, F16 or
// BF16): the tensor names, shapes and Conv1D [in, out] layout of
// openai-community/gpt2's file, the h.N.attn.bias causal-mask buffers
// included, and its {"format": "pt"} metadata.
//
// Weights are N(0, 0.02), layer-norm gains N(1, 0.05): the scale of a
// trained GPT-2, so kernels see realistic magnitudes. Each tensor's values
// depend only on seed and its name. The file is generated while it is
// written, one tensor at a time (memory stays near one row), and replaces
// path atomically; when ctx ends the write stops and nothing is left.
func WriteRandomSafetensors(ctx context.Context, path string, cfg Config, dt DType, seed uint64) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if dt != F32 && dt != F16 && dt != BF16 {
		return fmt.Errorf("random checkpoint: dtype %q: want F32, F16 or BF16", dt)
	}
	canon := CanonicalShapes(cfg)
	var specs []tensorSpec
	for name, shape := range canon {
		hf := name
		if name == "wte" || name == "wpe" {
			hf += ".weight"
		}
		if isConv1D(name) {
			shape = []int{shape[1], shape[0]}
		}
		mean, std := 0.0, 0.02
		if strings.Contains(name, "ln_") && strings.HasSuffix(name, ".weight") {
			mean, std = 1, 0.05
		}
		specs = append(specs, tensorSpec{hf, dt, shape, randomWriter(ctx, hf, shape, dt, seed, mean, std)})
	}
	p := cfg.NPositions
	for i := 0; i < cfg.NLayer; i++ {
		specs = append(specs, tensorSpec{fmt.Sprintf("h.%d.attn.bias", i), dt, []int{1, 1, p, p}, maskWriter(ctx, p, dt)})
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
	return atomicWrite(path, func(f *os.File) error {
		return writeTensors(f, map[string]string{"format": "pt"}, specs, 8, nil)
	})
}

// randomWriter writes a tensor of N(mean, std) values, row by row.
func randomWriter(ctx context.Context, name string, shape []int, dt DType, seed uint64, mean, std float64) func(io.Writer) error {
	return func(w io.Writer) error {
		h := fnv.New64a()
		h.Write([]byte(name))
		r := rand.New(rand.NewPCG(seed, h.Sum64()))
		cols := shape[len(shape)-1]
		rows := 1
		for _, d := range shape[:len(shape)-1] {
			rows *= d
		}
		row := make([]float32, cols)
		buf := make([]byte, cols*dt.Size())
		for range rows {
			for i := range row {
				row[i] = float32(mean + std*r.NormFloat64())
			}
			if err := writeRow(ctx, w, buf, row, dt); err != nil {
				return err
			}
		}
		return nil
	}
}

// maskWriter writes the [1, 1, p, p] lower-triangular causal mask.
func maskWriter(ctx context.Context, p int, dt DType) func(io.Writer) error {
	return func(w io.Writer) error {
		row := make([]float32, p)
		buf := make([]byte, p*dt.Size())
		for r := range p {
			row[r] = 1
			if err := writeRow(ctx, w, buf, row, dt); err != nil {
				return err
			}
		}
		return nil
	}
}

func writeRow(ctx context.Context, w io.Writer, buf []byte, row []float32, dt DType) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, v := range row {
		switch dt {
		case F32:
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		case F16:
			binary.LittleEndian.PutUint16(buf[2*i:], Float32ToHalf(v))
		default:
			binary.LittleEndian.PutUint16(buf[2*i:], Float32ToBF16(v))
		}
	}
	_, err := w.Write(buf)
	return err
}
