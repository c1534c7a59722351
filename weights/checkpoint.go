package weights

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Checkpoint is a GPT-2 model ready for the engine: its config, its
// tokenizer files and its tensors in gpt2d's canonical layout.
//
// Canonical tensors (C = n_embd, F = MLP width, V = vocab, P = positions):
//
//	wte                          [V, C]   token embedding, also the LM head
//	wpe                          [P, C]   position embedding (F32)
//	h.N.ln_1.weight, .bias       [C]      F32
//	h.N.attn.c_attn.weight       [3C, C]  [out, in]: Conv1D transposed
//	h.N.attn.c_attn.bias         [3C]     F32
//	h.N.attn.c_proj.weight       [C, C]
//	h.N.attn.c_proj.bias         [C]
//	h.N.ln_2.weight, .bias       [C]
//	h.N.mlp.c_fc.weight          [F, C]
//	h.N.mlp.c_fc.bias            [F]
//	h.N.mlp.c_proj.weight        [C, F]
//	h.N.mlp.c_proj.bias          [C]
//	ln_f.weight, ln_f.bias       [C]
//
// Matrices (wte and the .weight of c_attn, c_proj, c_fc) are F32, BF16,
// F16, or I8 with a per-row F32 scale tensor named "<name>.scale" [rows];
// everything else is F32.
//
// Tensors are read-only views, mostly of a memory map: any number of
// goroutines may read them, until Close, after which none may.
type Checkpoint struct {
	Config Config
	// Name identifies the model (e.g. "gpt2", or the directory name).
	Name string
	// DType is the element type of the matrices.
	DType DType
	// TokenizerJSON is the Hugging Face tokenizer.json, if present.
	TokenizerJSON []byte
	// VocabJSON and Merges are GPT-2's vocab.json and merges.txt, used when
	// TokenizerJSON is absent.
	VocabJSON, Merges []byte
	// Metadata is a converted file's header metadata (format, config,
	// provenance: see FORMAT.md and the Meta* keys) less the tokenizer,
	// which is in the fields above; nil for a Hugging Face directory.
	Metadata map[string]string
	Tensors  map[string]Tensor
	// Source is the path the checkpoint was loaded from.
	Source string

	closer func() error
}

// Tensor returns the canonical tensor name, or an error naming it and the
// checkpoint's source when it is missing.
func (c *Checkpoint) Tensor(name string) (Tensor, error) {
	t, ok := c.Tensors[name]
	if !ok {
		return Tensor{}, fmt.Errorf("%s: missing tensor %s", c.Source, name)
	}
	return t, nil
}

// Close releases the checkpoint's memory map. Tensors must not be used
// afterwards.
func (c *Checkpoint) Close() error {
	if c.closer == nil {
		return nil
	}
	err := c.closer()
	c.closer = nil
	return err
}

// Load opens a checkpoint: a Hugging Face model directory (config.json,
// model.safetensors, tokenizer files), read with LoadDir, or a gpt2d
// weights file (see FORMAT.md), which is memory-mapped and checked but not
// read: its tensors are views of the map, 64-byte aligned, and the first
// use of each page faults it in from the page cache. A file that is not a
// usable gpt2d weights file is refused with an error naming it that wraps
// ErrNotConverted, ErrFormatVersion or ErrCorrupt.
func Load(path string) (*Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	if st.IsDir() {
		return LoadDir(path)
	}
	return openConverted(path)
}

// MatrixNames lists the canonical names of the weight matrices of a model
// with nLayer blocks, wte first.
func MatrixNames(nLayer int) []string {
	names := []string{"wte"}
	for i := 0; i < nLayer; i++ {
		for _, m := range []string{"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"} {
			names = append(names, fmt.Sprintf("h.%d.%s.weight", i, m))
		}
	}
	return names
}

// CanonicalShapes returns every canonical tensor name (without I8 scales)
// with its shape for cfg.
func CanonicalShapes(cfg Config) map[string][]int {
	C, F := cfg.NEmbd, cfg.Inner()
	s := map[string][]int{
		"wte":         {cfg.VocabSize, C},
		"wpe":         {cfg.NPositions, C},
		"ln_f.weight": {C},
		"ln_f.bias":   {C},
	}
	for i := 0; i < cfg.NLayer; i++ {
		p := fmt.Sprintf("h.%d.", i)
		s[p+"ln_1.weight"] = []int{C}
		s[p+"ln_1.bias"] = []int{C}
		s[p+"ln_2.weight"] = []int{C}
		s[p+"ln_2.bias"] = []int{C}
		s[p+"attn.c_attn.weight"] = []int{3 * C, C}
		s[p+"attn.c_attn.bias"] = []int{3 * C}
		s[p+"attn.c_proj.weight"] = []int{C, C}
		s[p+"attn.c_proj.bias"] = []int{C}
		s[p+"mlp.c_fc.weight"] = []int{F, C}
		s[p+"mlp.c_fc.bias"] = []int{F}
		s[p+"mlp.c_proj.weight"] = []int{C, F}
		s[p+"mlp.c_proj.bias"] = []int{C}
	}
	return s
}

// isConv1D reports whether a Hugging Face tensor is a Conv1D weight stored
// [in, out], which the canonical layout transposes.
func isConv1D(name string) bool {
	return strings.HasPrefix(name, "h.") && strings.HasSuffix(name, ".weight") &&
		(strings.Contains(name, ".attn.c_") || strings.Contains(name, ".mlp.c_"))
}

// LoadDir loads a Hugging Face GPT-2 directory. Tensors are presented in
// the canonical layout in F32: Conv1D weights are transposed and F16/BF16
// are widened exactly (on the heap), F32 tensors that need no transpose are
// views of the memory-mapped model.safetensors, and the "transformer."
// prefix and the attn.bias / attn.masked_bias buffers are dropped.
func LoadDir(dir string) (*Checkpoint, error) {
	cfgData, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	cfg, err := ParseConfig(cfgData)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	ck := &Checkpoint{Config: cfg, Name: filepath.Base(filepath.Clean(dir)), DType: F32, Source: dir, Tensors: map[string]Tensor{}}
	if err := readTokenizerFiles(dir, ck); err != nil {
		return nil, err
	}
	f, err := OpenSafetensors(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	if err := canonicalize(f, cfg, ck); err != nil {
		f.Close()
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	ck.closer = f.Close
	return ck, nil
}

func readTokenizerFiles(dir string, ck *Checkpoint) error {
	var err error
	ck.TokenizerJSON, err = os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err == nil {
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("load model %s: %w", dir, err)
	}
	ck.TokenizerJSON = nil
	if ck.VocabJSON, err = os.ReadFile(filepath.Join(dir, "vocab.json")); err != nil {
		return fmt.Errorf("load model %s: no tokenizer.json and %w", dir, err)
	}
	if ck.Merges, err = os.ReadFile(filepath.Join(dir, "merges.txt")); err != nil {
		return fmt.Errorf("load model %s: no tokenizer.json and %w", dir, err)
	}
	return nil
}

// canonicalize puts f's GPT-2 tensors into ck in canonical F32 layout.
func canonicalize(f *File, cfg Config, ck *Checkpoint) error {
	src, err := hfTensors(f, cfg)
	if err != nil {
		return err
	}
	for name, want := range CanonicalShapes(cfg) {
		t := src[name]
		vals, err := t.F32()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		if isConv1D(name) {
			vals = transpose(vals, want[1], want[0])
		}
		ck.Tensors[name] = Tensor{Name: name, DType: F32, Shape: want, Data: f32Bytes(vals)}
	}
	return nil
}

// hfName returns the Hugging Face name of a canonical tensor.
func hfName(name string) string {
	if name == "wte" || name == "wpe" {
		return name + ".weight"
	}
	return name
}

// hfTensors finds in f, a Hugging Face GPT-2 model.safetensors, the
// tensor for every canonical name, checking that it has the shape cfg
// implies (Conv1D weights are stored [in, out]) and a floating-point
// dtype. The tensors returned are still in Hugging Face layout. Errors name
// the file and the first offending tensor in sorted order.
func hfTensors(f *File, cfg Config) (map[string]Tensor, error) {
	byName := map[string]Tensor{}
	for name, t := range f.Tensors {
		n := strings.TrimPrefix(name, "transformer.")
		if strings.HasSuffix(n, ".attn.bias") || strings.HasSuffix(n, ".attn.masked_bias") || n == "lm_head.weight" {
			continue // causal-mask buffers; the LM head is tied to wte
		}
		if n == "wte.weight" || n == "wpe.weight" {
			n = strings.TrimSuffix(n, ".weight")
		}
		byName[n] = t
	}
	shapes := CanonicalShapes(cfg)
	names := make([]string, 0, len(shapes))
	for name := range shapes {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make(map[string]Tensor, len(shapes))
	for _, name := range names {
		want := shapes[name]
		t, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("%s: missing tensor %s", f.Path, hfName(name))
		}
		if isConv1D(name) {
			want = []int{want[1], want[0]}
		}
		if !equalShape(t.Shape, want) {
			return nil, fmt.Errorf("%s: tensor %s has shape %v, want %v for this config", f.Path, t.Name, t.Shape, want)
		}
		switch t.DType {
		case F32, F16, BF16:
		default:
			return nil, fmt.Errorf("%s: tensor %s has dtype %s; gpt2d reads F32, F16 and BF16 checkpoints", f.Path, t.Name, t.DType)
		}
		out[name] = t
	}
	return out, nil
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// transpose returns the (cols, rows) transpose of a (rows, cols) matrix.
func transpose(m []float32, rows, cols int) []float32 {
	out := make([]float32, len(m))
	const blk = 32
	for r0 := 0; r0 < rows; r0 += blk {
		for c0 := 0; c0 < cols; c0 += blk {
			for r := r0; r < min(r0+blk, rows); r++ {
				for c := c0; c < min(c0+blk, cols); c++ {
					out[c*rows+r] = m[r*cols+c]
				}
			}
		}
	}
	return out
}
