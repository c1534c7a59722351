// Package gpt2 runs GPT-2 on the CPU: the model's weights as named views
// into one memory-mapped file, the forward pass, a KV cache per sequence,
// sampling, and an Engine that serves many generation requests at once by
// batching them into shared forward steps.
package gpt2

import (
	"fmt"
	"runtime"
	"slices"

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

	// The weights, as tensors whose shapes were checked against Config
	// when the model was built (C = n_embd, F = MLP width, V = vocab,
	// P = positions).
	wte    *linear       // (V, C): token embedding rows and the tied LM head
	wpe    *tensor.Dense // (P, C)
	layers []block       // transformer blocks
	lnF    layerNorm     // final layer norm
	pool   *pool
	ck     *weights.Checkpoint
}

// block is one transformer layer's weights.
type block struct {
	ln1, ln2 layerNorm
	attn     *linear // c_attn: (3C, C), fused q, k, v
	proj     *linear // attn.c_proj: (C, C)
	fc       *linear // mlp.c_fc: (F, C)
	fcProj   *linear // mlp.c_proj: (C, F)
}

// layerNorm is a LayerNorm's scale and shift, each (C).
type layerNorm struct{ w, b *tensor.Dense }

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
	threads := opt.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	// The weights first: checking their shapes is cheap and needs no
	// parse, so a misshapen checkpoint fails fast.
	m := &Model{Config: cfg, Name: ck.Name, DType: string(ck.DType), ck: ck}
	v := viewer{ck: ck, shapes: weights.CanonicalShapes(cfg)}
	m.wte = v.linear("wte", "")
	m.wpe = v.f32("wpe")
	m.lnF = v.layerNorm("ln_f.")
	for i := 0; i < cfg.NLayer; i++ {
		p := fmt.Sprintf("h.%d.", i)
		m.layers = append(m.layers, block{
			ln1:    v.layerNorm(p + "ln_1."),
			ln2:    v.layerNorm(p + "ln_2."),
			attn:   v.linear(p+"attn.c_attn.weight", p+"attn.c_attn.bias"),
			proj:   v.linear(p+"attn.c_proj.weight", p+"attn.c_proj.bias"),
			fc:     v.linear(p+"mlp.c_fc.weight", p+"mlp.c_fc.bias"),
			fcProj: v.linear(p+"mlp.c_proj.weight", p+"mlp.c_proj.bias"),
		})
	}
	if v.err != nil {
		return nil, v.err
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
	m.Tokenizer = tok
	m.pool = newPool(threads)
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

// WeightBytes returns the bytes of weights one decode step reads: every
// layer's matrices and the LM head (the embedding rows read are few),
// with the int8 matrices' scales.
func (m *Model) WeightBytes() int64 {
	size := func(l *linear) int64 { return int64(l.W.MemSize()) + 4*int64(len(l.Scale)) }
	total := size(m.wte)
	for _, b := range m.layers {
		total += size(b.attn) + size(b.proj) + size(b.fc) + size(b.fcProj)
	}
	return total
}

// viewer wraps checkpoint tensors as *tensor.Dense views of their data
// (no copy), each checked against its canonical shape, remembering the
// first error so building the model reads straight through. Every later
// dimension is read from these shapes.
type viewer struct {
	ck     *weights.Checkpoint
	shapes map[string][]int // canonical shapes; a tensor not listed has no fixed shape
	err    error
}

// dense returns the named tensor as a Dense of its element type with its
// checkpoint shape, after checking that shape against the canonical one
// (exactly: (n) is not (1, n)) and the element type against want.
func (v *viewer) dense(name string, want ...weights.DType) *tensor.Dense {
	if v.err != nil {
		return nil
	}
	t, err := v.ck.Tensor(name)
	if err != nil {
		v.err = err
		return nil
	}
	fail := func(format string, args ...any) *tensor.Dense {
		v.err = fmt.Errorf("%s: tensor %s: %s", v.ck.Source, name, fmt.Sprintf(format, args...))
		return nil
	}
	if !slices.Contains(want, t.DType) {
		return fail("dtype %s, want one of %v", t.DType, want)
	}
	if shape, ok := v.shapes[name]; ok && !slices.Equal(t.Shape, shape) {
		return fail("shape %v, want %v", t.Shape, shape)
	}
	if len(t.Shape) == 0 {
		return fail("a scalar, want an array")
	}
	var backing any
	switch t.DType {
	case weights.F32:
		backing, err = t.F32()
	case weights.BF16, weights.F16:
		backing, err = t.U16()
	case weights.I8:
		backing, err = t.I8s()
	}
	if err != nil {
		return fail("%v", err)
	}
	return tensor.New(tensor.WithShape(t.Shape...), tensor.WithBacking(backing))
}

// f32 returns the named F32 tensor.
func (v *viewer) f32(name string) *tensor.Dense { return v.dense(name, weights.F32) }

// layerNorm returns the scale and shift named prefix+"weight" and
// prefix+"bias".
func (v *viewer) layerNorm(prefix string) layerNorm {
	return layerNorm{w: v.f32(prefix + "weight"), b: v.f32(prefix + "bias")}
}

// linear returns the weight matrix name, with the bias named bias (""
// for none) and, for I8, the per-row scales name+".scale".
func (v *viewer) linear(name, bias string) *linear {
	w := v.dense(name, weights.F32, weights.BF16, weights.F16, weights.I8)
	var b, scale *tensor.Dense
	if bias != "" {
		b = v.f32(bias)
	}
	if v.err != nil {
		return nil
	}
	typ := weightTypeOf(v.ck.Tensors[name].DType)
	if typ == weightI8 {
		if scale = v.f32(name + ".scale"); v.err != nil {
			return nil
		}
	}
	l, err := linearOf(name, typ, w, scale, b)
	if err != nil {
		v.err = fmt.Errorf("%s: %w", v.ck.Source, err)
	}
	return l
}

// weightType maps a checkpoint matrix's element type to the kernels'.
func weightTypeOf(dt weights.DType) weightType {
	switch dt {
	case weights.BF16:
		return weightBF16
	case weights.F16:
		return weightF16
	case weights.I8:
		return weightI8
	}
	return weightF32
}
