// Package gpt2 runs GPT-2 on the CPU: the model's weights as named views
// into one memory-mapped file, the forward pass, a KV cache per sequence,
// sampling, and an Engine that serves many generation requests at once by
// batching them into shared forward steps.
package gpt2

import (
	"fmt"
	"runtime"

	"gorgonia.org/tensor"

	"gpt2d/gpt2/tokenizer"
	"gpt2d/weights"
)

// Model is a loaded GPT-2: read-only weights shared by every sequence, its
// tokenizer, and the worker pool its kernels run on. A Model is safe for
// concurrent use.
type Model struct {
	Config weights.Config
	// Name identifies the model (checkpoint name or directory name).
	Name string
	// DType names the weight type of the matrices (F32, BF16, F16, I8).
	DType string

	Tokenizer *tokenizer.Tokenizer

	wte    *Linear       // [V, C]: token embedding rows and the tied LM head
	wpe    *tensor.Dense // [P, C]
	wpeF   []float32     // wpe's backing slice
	layers []block       // transformer blocks
	lnF    layerNorm     // final layer norm
	pool   *Pool
	ck     *weights.Checkpoint
}

// block is one transformer layer's weights.
type block struct {
	ln1, ln2 layerNorm
	attn     *Linear // c_attn: [3C, C], fused q, k, v
	proj     *Linear // attn.c_proj: [C, C]
	fc       *Linear // mlp.c_fc: [F, C]
	fcProj   *Linear // mlp.c_proj: [C, F]
}

// layerNorm is a LayerNorm's scale and shift, each [C], as tensors and
// as their backing slices (Dense.Data allocates, so the hot loop keeps the
// slices).
type layerNorm struct {
	W, B *tensor.Dense
	w, b []float32
}

func newLayerNorm(w, b *tensor.Dense) layerNorm {
	ln := layerNorm{W: w, B: b}
	if w != nil && b != nil {
		ln.w, ln.b = data(w), data(b)
	}
	return ln
}

// Options tunes how a model runs.
type Options struct {
	// Threads is the number of worker goroutines for the kernels; 0 means
	// GOMAXPROCS.
	Threads int
}

// Load opens a model from a gpt2d converted weights file or a Hugging Face
// checkpoint directory.
func Load(path string) (*Model, error) { return LoadWithOptions(path, Options{}) }

// LoadWithOptions is Load with explicit options.
func LoadWithOptions(path string, opt Options) (*Model, error) {
	ck, err := weights.Load(path)
	if err != nil {
		return nil, err
	}
	m, err := FromCheckpoint(ck, opt)
	if err != nil {
		ck.Close()
		return nil, err
	}
	return m, nil
}

// FromCheckpoint builds a Model over the checkpoint's tensors without
// copying them. The Model owns the checkpoint and closes it in Close.
func FromCheckpoint(ck *weights.Checkpoint, opt Options) (*Model, error) {
	cfg := ck.Config
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("model %s: %w", ck.Source, err)
	}
	var tok *tokenizer.Tokenizer
	var err error
	if ck.TokenizerJSON != nil {
		tok, err = tokenizer.FromJSON(ck.TokenizerJSON)
	} else {
		tok, err = tokenizer.FromVocabMerges(ck.VocabJSON, ck.Merges)
	}
	if err != nil {
		return nil, fmt.Errorf("model %s: tokenizer: %w", ck.Source, err)
	}
	if tok.VocabSize() > cfg.VocabSize {
		return nil, fmt.Errorf("model %s: tokenizer has %d tokens, model vocab_size is %d", ck.Source, tok.VocabSize(), cfg.VocabSize)
	}
	threads := opt.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	m := &Model{Config: cfg, Name: ck.Name, DType: string(ck.DType), Tokenizer: tok, ck: ck}
	shapes := weights.CanonicalShapes(cfg)
	v := viewer{ck: ck, shapes: shapes}
	m.wte = v.linear("wte", nil)
	m.wpe = v.vector("wpe")
	if m.wpe != nil {
		m.wpeF = data(m.wpe)
	}
	m.lnF = newLayerNorm(v.vector("ln_f.weight"), v.vector("ln_f.bias"))
	for i := 0; i < cfg.NLayer; i++ {
		p := fmt.Sprintf("h.%d.", i)
		m.layers = append(m.layers, block{
			ln1:    newLayerNorm(v.vector(p+"ln_1.weight"), v.vector(p+"ln_1.bias")),
			ln2:    newLayerNorm(v.vector(p+"ln_2.weight"), v.vector(p+"ln_2.bias")),
			attn:   v.linear(p+"attn.c_attn.weight", v.bias(p+"attn.c_attn.bias")),
			proj:   v.linear(p+"attn.c_proj.weight", v.bias(p+"attn.c_proj.bias")),
			fc:     v.linear(p+"mlp.c_fc.weight", v.bias(p+"mlp.c_fc.bias")),
			fcProj: v.linear(p+"mlp.c_proj.weight", v.bias(p+"mlp.c_proj.bias")),
		})
	}
	if v.err != nil {
		return nil, v.err
	}
	m.pool = NewPool(threads)
	return m, nil
}

// Close stops the model's workers and releases its weights. No generation
// may be running.
func (m *Model) Close() error {
	if m.pool != nil {
		m.pool.Close()
		m.pool = nil
	}
	return m.ck.Close()
}

// viewer wraps checkpoint tensors as typed views, remembering the first
// error so building the model reads straight through.
type viewer struct {
	ck     *weights.Checkpoint
	shapes map[string][]int
	err    error
}

func (v *viewer) tensor(name string) (weights.Tensor, bool) {
	if v.err != nil {
		return weights.Tensor{}, false
	}
	t, err := v.ck.Tensor(name)
	if err != nil {
		v.err = err
		return t, false
	}
	want, known := v.shapes[name]
	if known && (len(t.Shape) != len(want) || t.Len() != product(want)) {
		v.err = fmt.Errorf("%s: tensor %s has shape %v, want %v", v.ck.Source, name, t.Shape, want)
		return t, false
	}
	return t, true
}

func (v *viewer) f32(name string) []float32 {
	t, ok := v.tensor(name)
	if !ok {
		return nil
	}
	if t.DType != weights.F32 {
		v.err = fmt.Errorf("%s: tensor %s is %s, want F32", v.ck.Source, name, t.DType)
		return nil
	}
	f, err := t.F32()
	if err != nil {
		v.err = fmt.Errorf("%s: %w", v.ck.Source, err)
	}
	return f
}

func (v *viewer) bias(name string) []float32 { return v.f32(name) }

func (v *viewer) vector(name string) *tensor.Dense {
	f := v.f32(name)
	if f == nil {
		return nil
	}
	return tensor.New(tensor.WithShape(v.shapes[name]...), tensor.WithBacking(f))
}

func (v *viewer) linear(name string, bias []float32) *Linear {
	t, ok := v.tensor(name)
	if !ok {
		return nil
	}
	out, in := v.shapes[name][0], v.shapes[name][1]
	fail := func(err error) *Linear {
		v.err = fmt.Errorf("%s: %w", v.ck.Source, err)
		return nil
	}
	switch t.DType {
	case weights.F32:
		f, err := t.F32()
		if err != nil {
			return fail(err)
		}
		return newLinear(in, out, WeightF32, f, nil, bias)
	case weights.BF16, weights.F16:
		u, err := t.U16()
		if err != nil {
			return fail(err)
		}
		typ := WeightBF16
		if t.DType == weights.F16 {
			typ = WeightF16
		}
		return newLinear(in, out, typ, u, nil, bias)
	case weights.I8:
		q, err := t.I8s()
		if err != nil {
			return fail(err)
		}
		scale := v.f32(name + ".scale")
		if v.err == nil && len(scale) != out {
			return fail(fmt.Errorf("tensor %s.scale has %d values, want %d", name, len(scale), out))
		}
		return newLinear(in, out, WeightI8, q, scale, bias)
	}
	return fail(fmt.Errorf("tensor %s: unsupported dtype %s", name, t.DType))
}

func product(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// data returns the float32 backing slice of a tensor view.
func data(t *tensor.Dense) []float32 { return t.Data().([]float32) }
