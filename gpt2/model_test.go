package gpt2

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"gpt2d/weights"
)

const tinyDir = "../testdata/gpt2-tiny"

// reference is the fixture computed in float64 by an independent
// PyTorch implementation.
type reference struct {
	Prompts []struct {
		Name       string      `json:"name"`
		Text       *string     `json:"text"`
		IDs        []int       `json:"ids"`
		Top5IDs    [][]int     `json:"top5_ids"`
		Top5Logits [][]float64 `json:"top5_logits"`
		Logsumexp  []float64   `json:"logsumexp"`
		Greedy     struct {
			MaxNewTokens int    `json:"max_new_tokens"`
			IDs          []int  `json:"ids"`
			TextBytesHex string `json:"text_bytes_hex"`
		} `json:"greedy"`
	} `json:"prompts"`
}

func loadReference(t testing.TB) reference {
	t.Helper()
	b, err := os.ReadFile(tinyDir + "/reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var r reference
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func loadTiny(t testing.TB) *Model {
	t.Helper()
	m, err := Load(tinyDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// checkAgainstReference compares per-position top-5 logits and logsumexp.
func checkAgainstReference(t *testing.T, m *Model, tol float64) {
	ref := loadReference(t)
	V := m.Config.VocabSize
	for _, p := range ref.Prompts {
		logits, err := m.PromptLogits(p.IDs)
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		worst := 0.0
		for pos := range p.IDs {
			row := logits[pos*V : (pos+1)*V]
			for k, id := range p.Top5IDs[pos] {
				worst = math.Max(worst, math.Abs(float64(row[id])-p.Top5Logits[pos][k]))
			}
			worst = math.Max(worst, math.Abs(logsumexp(row)-p.Logsumexp[pos]))
			top := make([]TopLogprob, 5)
			logSoftmax(row, 0, top)
			for k := range top {
				if top[k].ID != p.Top5IDs[pos][k] {
					t.Errorf("%s pos %d: top-5 ids %v, want %v", p.Name, pos, topIDs(top), p.Top5IDs[pos])
					break
				}
			}
		}
		if worst > tol {
			t.Errorf("%s: max |logit - reference| = %.3g > %.1g", p.Name, worst, tol)
		}
	}
}

func topIDs(top []TopLogprob) []int {
	ids := make([]int, len(top))
	for i, t := range top {
		ids[i] = t.ID
	}
	return ids
}

func logsumexp(row []float32) float64 {
	mx := float64(row[argmax(row)])
	s := 0.0
	for _, v := range row {
		s += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(s)
}

func TestLogitsMatchReference(t *testing.T) {
	checkAgainstReference(t, loadTiny(t), 1e-4)
}

func TestLogitsMatchReferenceFile(t *testing.T) {
	// logits_prompt0.f32 holds every logit of prompt 0 (rounded to f32).
	m := loadTiny(t)
	ref := loadReference(t)
	raw, err := os.ReadFile(tinyDir + "/logits_prompt0.f32")
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.PromptLogits(ref.Prompts[0].IDs)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 4*len(got) {
		t.Fatalf("reference has %d values, model gives %d", len(raw)/4, len(got))
	}
	worst := 0.0
	for i, g := range got {
		want := math.Float32frombits(uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24)
		worst = math.Max(worst, math.Abs(float64(g-want)))
	}
	if worst > 1e-4 {
		t.Errorf("max |logit - reference| over the whole vocabulary = %.3g", worst)
	}
}

func TestKVCacheMatchesFullPrefill(t *testing.T) {
	m := loadTiny(t)
	ref := loadReference(t)
	ids := ref.Prompts[3].IDs // 32 tokens
	full, err := m.PromptLogits(ids)
	if err != nil {
		t.Fatal(err)
	}
	V := m.Config.VocabSize
	a := m.newActivations(8, 1)
	cache := m.NewKVCache()
	// Feed in ragged chunks: 1, then 3, then one at a time.
	for pos := 0; pos < len(ids); {
		n := 1
		if pos == 1 {
			n = 3
		}
		st := []step{{cache: cache, tokens: ids[pos : pos+n], wantLogits: true}}
		if err := m.forward(a, st); err != nil {
			t.Fatal(err)
		}
		pos += n
		want := full[(pos-1)*V : pos*V]
		for i := range want {
			if d := math.Abs(float64(st[0].logits[i] - want[i])); d > 1e-4 {
				t.Fatalf("pos %d token %d: cached %g, full %g", pos-1, i, st[0].logits[i], want[i])
			}
		}
	}
}

func TestGreedyMatchesReference(t *testing.T) {
	m := loadTiny(t)
	e := NewEngine(m, EngineConfig{})
	defer e.Close()
	for _, p := range loadReference(t).Prompts {
		res, err := e.Generate(t.Context(), Request{PromptIDs: p.IDs, MaxNewTokens: p.Greedy.MaxNewTokens, IgnoreEOS: true}, nil)
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		if !equalInts(res.Tokens, p.Greedy.IDs) {
			t.Errorf("%s: greedy ids\n got %v\nwant %v", p.Name, res.Tokens, p.Greedy.IDs)
		}
		want, _ := hex.DecodeString(p.Greedy.TextBytesHex)
		if res.Text != m.Tokenizer.Decode(p.Greedy.IDs) {
			t.Errorf("%s: text %q is not Decode(ids)", p.Name, res.Text)
		}
		if utf8.Valid(want) && res.Text != string(want) {
			t.Errorf("%s: text %q, want %q", p.Name, res.Text, want)
		}
	}
}

func equalInts(a, b []int) bool {
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

// TestGreedyByFullRecomputation repeats the greedy continuations without
// the KV cache: every token from a fresh pass over the whole sequence.
func TestGreedyByFullRecomputation(t *testing.T) {
	m := loadTiny(t)
	V := m.Config.VocabSize
	for _, p := range loadReference(t).Prompts {
		ids := append([]int(nil), p.IDs...)
		for range p.Greedy.MaxNewTokens {
			logits, err := m.PromptLogits(ids)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, argmax(logits[len(logits)-V:]))
		}
		if got := ids[len(p.IDs):]; !equalInts(got, p.Greedy.IDs) {
			t.Errorf("%s: recomputed greedy %v, want %v", p.Name, got, p.Greedy.IDs)
		}
	}
}

// roundCheckpoint rewrites the tiny model's matrices as dtype, returning
// the rounded checkpoint and an F32 checkpoint holding exactly the rounded
// values (its logits are the exact answer for the rounded model).
func roundCheckpoint(t *testing.T, dtype weights.DType) (*weights.Checkpoint, *weights.Checkpoint) {
	return roundCheckpointFrom(t, tinyDir, dtype)
}

// roundCheckpointFrom is roundCheckpoint for the HF directory dir.
func roundCheckpointFrom(t *testing.T, dir string, dtype weights.DType) (*weights.Checkpoint, *weights.Checkpoint) {
	t.Helper()
	low, err := weights.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	wide, err := weights.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	low.DType = dtype
	for _, name := range weights.MatrixNames(low.Config.NLayer) {
		src := low.Tensors[name]
		f, _ := src.F32()
		rounded := make([]float32, len(f))
		bits := make([]byte, 2*len(f))
		for i, v := range f {
			var h uint16
			if dtype == weights.BF16 {
				h = bf16FromF32(v)
				rounded[i] = bf16ToF32(h)
			} else {
				h = f16FromF32(v)
				rounded[i] = f16ToF32(h)
			}
			bits[2*i], bits[2*i+1] = byte(h), byte(h>>8)
		}
		low.Tensors[name] = weights.Tensor{Name: name, DType: dtype, Shape: src.Shape, Data: bits}
		wb := make([]byte, 4*len(rounded))
		for i, v := range rounded {
			u := math.Float32bits(v)
			wb[4*i], wb[4*i+1], wb[4*i+2], wb[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
		}
		wide.Tensors[name] = weights.Tensor{Name: name, DType: weights.F32, Shape: src.Shape, Data: wb}
	}
	return low, wide
}

func TestHalfPrecisionWeights(t *testing.T) {
	for _, dt := range []weights.DType{weights.BF16, weights.F16} {
		t.Run(string(dt), func(t *testing.T) {
			low, wide := roundCheckpoint(t, dt)
			ml, err := FromCheckpoint(low, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer ml.Close()
			// The narrow GEMM (input rounded to bf16, 32 rows here) has its
			// own accuracy test; this one holds the kernels that widen.
			ml.pool.kern = withoutNarrow(ml.pool.kern)
			mw, err := FromCheckpoint(wide, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer mw.Close()
			ids := loadReference(t).Prompts[3].IDs
			a, err := ml.PromptLogits(ids)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := mw.PromptLogits(ids)
			worst := 0.0
			for i := range a {
				worst = math.Max(worst, math.Abs(float64(a[i]-b[i])))
			}
			// Same rounded weights, same float32 math: only summation order
			// may differ between kernels.
			if worst > 1e-4 {
				t.Errorf("%s kernels vs f32 kernels on the same rounded weights: max diff %.3g", dt, worst)
			}
		})
	}
}

// TestModelRefusesMisshapenTensors: every tensor's shape and element type
// is checked once, at load, and the error names the tensor.
func TestModelRefusesMisshapenTensors(t *testing.T) {
	cfg := weights.Config{
		NLayer: 2, NHead: 2, NEmbd: 8, NPositions: 16, VocabSize: 50257,
		LayerNormEpsilon: 1e-5, ActivationFunction: "gelu_new", BOSTokenID: 50256, EOSTokenID: 50256,
	}
	retype := func(name string, dt weights.DType) func(*weights.Checkpoint) {
		return func(ck *weights.Checkpoint) {
			tn := ck.Tensors[name]
			tn.DType, tn.Data = dt, tn.Data[:len(tn.Data)/tn.DType.Size()*dt.Size()]
			ck.Tensors[name] = tn
		}
	}
	reshape := func(name string, shape ...int) func(*weights.Checkpoint) {
		return func(ck *weights.Checkpoint) {
			tn := ck.Tensors[name]
			tn.Shape = shape
			ck.Tensors[name] = tn
		}
	}
	cases := []struct {
		name   string
		dtype  weights.DType
		tensor string // the tensor the error must name
		change func(*weights.Checkpoint)
	}{
		{"transposed matrix", weights.F32, "h.1.attn.c_attn.weight", reshape("h.1.attn.c_attn.weight", 8, 24)},
		{"flattened matrix", weights.BF16, "h.0.mlp.c_fc.weight", reshape("h.0.mlp.c_fc.weight", 32*8)},
		{"short bias", weights.F32, "h.0.mlp.c_proj.bias", reshape("h.0.mlp.c_proj.bias", 7)},
		{"position embedding too short", weights.F32, "wpe", reshape("wpe", 15, 8)},
		{"layer norm in bf16", weights.F32, "h.1.ln_2.weight", retype("h.1.ln_2.weight", weights.BF16)},
		{"missing tensor", weights.F32, "ln_f.bias", func(ck *weights.Checkpoint) { delete(ck.Tensors, "ln_f.bias") }},
		{"int8 without scales", weights.I8, "h.0.attn.c_proj.weight.scale", func(ck *weights.Checkpoint) { delete(ck.Tensors, "h.0.attn.c_proj.weight.scale") }},
		{"int8 scales of the wrong length", weights.I8, "wte", reshape("wte.scale", 50256)},
	}
	for _, dt := range []weights.DType{weights.F32, weights.BF16, weights.I8} {
		m, err := FromCheckpoint(randomCheckpoint(t, cfg, dt), Options{Threads: 1})
		if err != nil {
			t.Fatalf("unchanged %s checkpoint: %v", dt, err)
		}
		m.Close()
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ck := randomCheckpoint(t, cfg, c.dtype)
			c.change(ck)
			m, err := FromCheckpoint(ck, Options{Threads: 1})
			if err == nil {
				m.Close()
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), c.tensor) {
				t.Errorf("error %q does not name %s", err, c.tensor)
			}
		})
	}
}

// TestWeightBytesCountsTheMatrices: a decode step reads every matrix once,
// in its stored width (int8 with its row scales).
func TestWeightBytesCountsTheMatrices(t *testing.T) {
	cfg := weights.Config{
		NLayer: 2, NHead: 2, NEmbd: 8, NPositions: 16, VocabSize: 50257,
		LayerNormEpsilon: 1e-5, ActivationFunction: "gelu_new", BOSTokenID: 50256, EOSTokenID: 50256,
	}
	V, C, F, L := int64(cfg.VocabSize), int64(cfg.NEmbd), int64(cfg.Inner()), int64(cfg.NLayer)
	elems := V*C + L*(3*C*C+C*C+F*C+C*F)
	rows := V + L*(3*C+C+F+C)
	for _, c := range []struct {
		dtype weights.DType
		want  int64
	}{{weights.F32, 4 * elems}, {weights.BF16, 2 * elems}, {weights.I8, elems + 4*rows}} {
		m, err := FromCheckpoint(randomCheckpoint(t, cfg, c.dtype), Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.WeightBytes(); got != c.want {
			t.Errorf("%s: WeightBytes = %d, want %d", c.dtype, got, c.want)
		}
		m.Close()
	}
}

// TestSplitDecodeAttentionMatchesBlocked decodes a 120-token context one
// token at a time with decode attention split into many work items
// (pieces of one block), and holds every step's
// logits against PromptLogits, whose 64-token chunks run attention as
// matrix products: the online-softmax merges against the plain softmax.
func TestSplitDecodeAttentionMatchesBlocked(t *testing.T) {
	m := loadTiny(t)
	var ids []int
	for _, p := range loadReference(t).Prompts {
		ids = append(ids, p.IDs...)
	}
	for len(ids) < 120 {
		ids = append(ids, ids...)
	}
	ids = ids[:120]
	full, err := m.PromptLogits(ids)
	if err != nil {
		t.Fatal(err)
	}
	V := m.Config.VocabSize
	a := m.newActivations(1, 1)
	a.pieceLen = 1
	cache := m.NewKVCache()
	split := false
	for pos := range ids {
		st := []step{{cache: cache, tokens: ids[pos : pos+1], wantLogits: true}}
		if err := m.forward(a, st); err != nil {
			t.Fatal(err)
		}
		split = split || len(a.groups) > 0
		want := full[pos*V : (pos+1)*V]
		for i := range want {
			if d := math.Abs(float64(st[0].logits[i] - want[i])); d > 1e-4 {
				t.Fatalf("pos %d token %d: split decode %g, blocked %g", pos, i, st[0].logits[i], want[i])
			}
		}
	}
	if !split {
		t.Fatal("no (row, head) was split over several work items")
	}
}
