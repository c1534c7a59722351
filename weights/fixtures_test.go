package weights

import (
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"unicode/utf8"
)

// tinyDir is the Hugging Face-layout F32 fixture shared by the packages'
// tests: 2 layers, 64 wide, the real GPT-2 vocabulary.
var tinyDir = filepath.Join("..", "testdata", "gpt2-tiny")

// convertTiny converts the tiny fixture (or dir) to a file in a fresh
// temporary directory and returns its path.
func convertTiny(t *testing.T, dir string, dt DType) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "tiny.gpt2d")
	if err := Convert(dir, out, ConvertOptions{DType: dt, Version: "test"}); err != nil {
		t.Fatal(err)
	}
	return out
}

// converted holds one conversion of the tiny fixture per dtype, made on
// first use and shared by the tests that only read it.
var converted struct {
	sync.Mutex
	dir   string
	paths map[DType]string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weights-test-")
	if err != nil {
		panic(err)
	}
	converted.dir, converted.paths = dir, map[DType]string{}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tinyConverted returns the shared conversion of the tiny fixture to dt.
// Tests must not change the file.
func tinyConverted(t testing.TB, dt DType) string {
	t.Helper()
	converted.Lock()
	defer converted.Unlock()
	if p, ok := converted.paths[dt]; ok {
		return p
	}
	p := filepath.Join(converted.dir, string(dt)+".gpt2d")
	if err := Convert(tinyDir, p, ConvertOptions{DType: dt, Version: "test"}); err != nil {
		t.Fatal(err)
	}
	converted.paths[dt] = p
	return p
}

// tinyCopy returns a private copy of the shared conversion to dt.
func tinyCopy(t *testing.T, dt DType) string {
	t.Helper()
	data, err := os.ReadFile(tinyConverted(t, dt))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tiny.gpt2d")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// hfCopy writes a copy of the tiny fixture to a temporary directory with
// every floating-point tensor narrowed to dt (F32 copies as is), edit
// applied to the tensor list first if not nil.
func hfCopy(t *testing.T, dt DType, edit func([]Tensor) []Tensor) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"config.json", "tokenizer.json", "generation_config.json"} {
		data, err := os.ReadFile(filepath.Join(tinyDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := OpenSafetensors(filepath.Join(tinyDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var tensors []Tensor
	for _, name := range src.Names() {
		st := src.Tensors[name]
		vals, err := st.F32()
		if err != nil {
			t.Fatal(err)
		}
		out := Tensor{Name: name, DType: dt, Shape: st.Shape}
		switch dt {
		case F32:
			out.Data = append([]byte(nil), st.Data...)
		case F16, BF16:
			out.Data = make([]byte, 2*len(vals))
			for i, v := range vals {
				h := Float32ToBF16(v)
				if dt == F16 {
					h = Float32ToHalf(v)
				}
				binary.LittleEndian.PutUint16(out.Data[2*i:], h)
			}
		}
		tensors = append(tensors, out)
	}
	if edit != nil {
		tensors = edit(tensors)
	}
	if err := WriteSafetensors(filepath.Join(dir, "model.safetensors"), tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// randomHF writes a Hugging Face-layout directory for cfg with random
// F32 weights and the fixture's tokenizer.
func randomHF(t *testing.T, cfg Config) string {
	t.Helper()
	dir := t.TempDir()
	cfgJSON, _ := json.Marshal(cfg)
	os.WriteFile(filepath.Join(dir, "config.json"), cfgJSON, 0o644)
	tok, _ := os.ReadFile(filepath.Join(tinyDir, "tokenizer.json"))
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), tok, 0o644)
	r := rand.New(rand.NewPCG(9, 10))
	var tensors []Tensor
	for name, shape := range CanonicalShapes(cfg) {
		if isConv1D(name) {
			shape = []int{shape[1], shape[0]}
		}
		tn := Tensor{Name: hfName(name), DType: F32, Shape: shape}
		vals := make([]float32, tn.Len())
		for i := range vals {
			vals[i] = float32(r.NormFloat64())
		}
		tn.Data = f32Bytes(vals)
		tensors = append(tensors, tn)
	}
	if err := WriteSafetensors(filepath.Join(dir, "model.safetensors"), tensors, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkReferenceRules holds data to the rules the reference safetensors
// implementation enforces when reading: header length within bounds and
// the file, UTF-8 JSON starting with '{', known dtypes whose sizes match
// the offsets, and tensors covering the data section exactly, without
// holes or overlaps.
func checkReferenceRules(t *testing.T, data []byte) {
	t.Helper()
	n := binary.LittleEndian.Uint64(data)
	if n > 100_000_000 || 8+n > uint64(len(data)) {
		t.Fatalf("header length %d invalid", n)
	}
	hdr := data[8 : 8+n]
	if !utf8.Valid(hdr) || hdr[0] != '{' {
		t.Fatal("header is not UTF-8 JSON starting with '{'")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		t.Fatal(err)
	}
	type entry struct {
		name string
		headerEntry
	}
	var entries []entry
	for name, msg := range raw {
		if name == "__metadata__" {
			var m map[string]string
			if err := json.Unmarshal(msg, &m); err != nil {
				t.Fatalf("__metadata__ is not a string map: %v", err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, entry{name, e})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].DataOffsets[0] < entries[j].DataOffsets[0] })
	var off int64
	for _, e := range entries {
		if e.DataOffsets[0] != off {
			t.Fatalf("tensor %s starts at %d, previous ended at %d", e.name, e.DataOffsets[0], off)
		}
		size := int64(e.DType.Size())
		for _, d := range e.Shape {
			size *= int64(d)
		}
		if size == 0 && e.DType.Size() == 0 || e.DataOffsets[1]-e.DataOffsets[0] != size {
			t.Fatalf("tensor %s: offsets %v for %s %v", e.name, e.DataOffsets, e.DType, e.Shape)
		}
		off = e.DataOffsets[1]
	}
	if 8+int64(n)+off != int64(len(data)) {
		t.Fatalf("tensors end at %d, data section is %d bytes", off, int64(len(data))-8-int64(n))
	}
}
