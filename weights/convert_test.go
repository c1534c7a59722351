package weights

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"
)

func f32s(t *testing.T, tn Tensor) []float32 {
	t.Helper()
	v, err := tn.F32()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestConvertIsDeterministic(t *testing.T) {
	for _, dt := range []DType{F32, BF16, F16, I8} {
		a, err := os.ReadFile(tinyConverted(t, dt))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(convertTiny(t, tinyDir, dt))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two conversions of the same input differ", dt)
		}
	}
}

func TestConvertedFileIsStandardSafetensors(t *testing.T) {
	for _, dt := range []DType{F32, BF16, F16, I8} {
		path := tinyConverted(t, dt)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		checkReferenceRules(t, data)
		f, err := OpenSafetensors(path)
		if err != nil {
			t.Fatal(err)
		}
		if f.DataStart%Alignment != 0 {
			t.Errorf("%s: data section starts at %d", dt, f.DataStart)
		}
		for _, name := range f.Names() {
			tn := f.Tensors[name]
			off := int64(uintptr(unsafe.Pointer(unsafe.SliceData(tn.Data))) - uintptr(unsafe.Pointer(&f.data[0])))
			if off%Alignment != 0 && !strings.HasPrefix(name, padPrefix) {
				t.Errorf("%s: tensor %s at file offset %d, not %d-aligned", dt, name, off, Alignment)
			}
		}
		if got := f.Metadata[MetaDType]; got != string(dt) {
			t.Errorf("dtype metadata %q, want %s", got, dt)
		}
		if !bytes.HasPrefix(data[8:], formatPrefix) {
			t.Errorf("header does not start with %s", formatPrefix)
		}
		f.Close()
	}
}

func TestConvertedFileRecordsProvenanceAndTokenizer(t *testing.T) {
	dir := hfCopy(t, F32, nil)
	si := SourceInfo{Repo: "openai-community/gpt2", Revision: "main", Commit: "607a30d783dfa663caf39e06633721c8d4cfcd7e"}
	if err := WriteSourceInfo(dir, si); err != nil {
		t.Fatal(err)
	}
	ck, err := Load(convertTiny(t, dir, BF16))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	want := map[string]string{
		MetaSourceRepo:     si.Repo,
		MetaSourceRevision: si.Revision,
		MetaSourceCommit:   si.Commit,
		MetaSourceDType:    "F32",
		MetaDType:          "BF16",
		MetaGPT2DVersion:   "test",
		MetaName:           "gpt2",
	}
	sum, err := fileSHA256(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	want[MetaSourceSHA256] = sum
	for k, v := range want {
		if ck.Metadata[k] != v {
			t.Errorf("metadata %s = %q, want %q", k, ck.Metadata[k], v)
		}
	}
	if ck.Name != "gpt2" || ck.DType != BF16 {
		t.Errorf("name %q dtype %s", ck.Name, ck.DType)
	}
	tok, _ := os.ReadFile(filepath.Join(tinyDir, "tokenizer.json"))
	if !bytes.Equal(ck.TokenizerJSON, tok) {
		t.Error("tokenizer.json not carried over byte for byte")
	}
	dirCk, err := LoadDir(tinyDir)
	if err != nil {
		t.Fatal(err)
	}
	defer dirCk.Close()
	if ck.Config != dirCk.Config {
		t.Errorf("config %+v, want %+v", ck.Config, dirCk.Config)
	}
}

func TestConvertVocabMergesTokenizer(t *testing.T) {
	dir := hfCopy(t, F32, nil)
	os.Remove(filepath.Join(dir, "tokenizer.json"))
	for _, name := range []string{"vocab.json", "merges.txt"} {
		data, _ := os.ReadFile(filepath.Join(tinyDir, name))
		os.WriteFile(filepath.Join(dir, name), data, 0o644)
	}
	ck, err := Load(convertTiny(t, dir, F32))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	merges, _ := os.ReadFile(filepath.Join(tinyDir, "merges.txt"))
	if ck.TokenizerJSON != nil || !bytes.Equal(ck.Merges, merges) || len(ck.VocabJSON) == 0 {
		t.Error("vocab.json and merges.txt not carried over")
	}
}

// TestConvertedMatchesDir holds every converted tensor against the
// Hugging Face directory as LoadDir presents it: F32 bit for bit, BF16 and
// F16 as the nearest-even narrowing of the F32 value, I8 within half a
// step of its row's scale.
func TestConvertedMatchesDir(t *testing.T) {
	ref, err := LoadDir(tinyDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for _, dt := range []DType{F32, BF16, F16, I8} {
		t.Run(string(dt), func(t *testing.T) {
			ck, err := Load(tinyConverted(t, dt))
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			for name, want := range CanonicalShapes(ref.Config) {
				got, err := ck.Tensor(name)
				if err != nil {
					t.Fatal(err)
				}
				if !equalShape(got.Shape, want) {
					t.Fatalf("%s: shape %v, want %v", name, got.Shape, want)
				}
				wv := f32s(t, ref.Tensors[name])
				if !isMatrix(name) || dt == F32 {
					if got.DType != F32 || !bytes.Equal(got.Data, ref.Tensors[name].Data) {
						t.Fatalf("%s: not bit-identical F32", name)
					}
					continue
				}
				switch dt {
				case BF16, F16:
					bits, err := got.U16()
					if err != nil {
						t.Fatal(err)
					}
					for i, v := range wv {
						w := Float32ToBF16(v)
						if dt == F16 {
							w = Float32ToHalf(v)
						}
						if bits[i] != w {
							t.Fatalf("%s[%d]: %#04x, want %#04x (of %g)", name, i, bits[i], w, v)
						}
					}
				case I8:
					q, err := got.I8s()
					if err != nil {
						t.Fatal(err)
					}
					scales := f32s(t, ck.Tensors[name+".scale"])
					cols := want[1]
					for i, v := range wv {
						s := scales[i/cols]
						if e := math.Abs(float64(v) - float64(q[i])*float64(s)); e > float64(s)/2*(1+1e-6) {
							t.Fatalf("%s[%d]: %g vs %d·%g", name, i, v, q[i], s)
						}
					}
				}
			}
		})
	}
}

// TestHalfSourcesWidenExactly writes F16 and BF16 copies of the fixture
// and checks that LoadDir widens them exactly, and that converting them to
// their own dtype keeps every bit.
func TestHalfSourcesWidenExactly(t *testing.T) {
	ref, err := LoadDir(tinyDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for _, dt := range []DType{F16, BF16} {
		t.Run(string(dt), func(t *testing.T) {
			dir := hfCopy(t, dt, nil)
			narrow, widen := Float32ToBF16, BF16ToFloat32
			if dt == F16 {
				narrow, widen = Float32ToHalf, HalfToFloat32
			}
			ck, err := LoadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			conv, err := Load(convertTiny(t, dir, dt))
			if err != nil {
				t.Fatal(err)
			}
			defer conv.Close()
			if conv.Metadata[MetaSourceDType] != string(dt) {
				t.Errorf("source dtype recorded as %q", conv.Metadata[MetaSourceDType])
			}
			for name := range CanonicalShapes(ref.Config) {
				wide, orig := f32s(t, ck.Tensors[name]), f32s(t, ref.Tensors[name])
				for i, v := range orig {
					if w := widen(narrow(v)); math.Float32bits(wide[i]) != math.Float32bits(w) {
						t.Fatalf("LoadDir %s[%d] = %g, want exactly %g", name, i, wide[i], w)
					}
				}
				ct := conv.Tensors[name]
				if !isMatrix(name) {
					if !bytes.Equal(ct.Data, ck.Tensors[name].Data) {
						t.Fatalf("converted %s differs from the widened source", name)
					}
					continue
				}
				bits, _ := ct.U16()
				for i, v := range orig {
					if bits[i] != narrow(v) {
						t.Fatalf("converted %s[%d] = %#04x, want the source bits %#04x", name, i, bits[i], narrow(v))
					}
				}
			}
		})
	}
}

func TestConvertNamesTheBadSourceTensor(t *testing.T) {
	drop := func(name string) func([]Tensor) []Tensor {
		return func(ts []Tensor) []Tensor {
			var out []Tensor
			for _, t := range ts {
				if t.Name != name {
					out = append(out, t)
				}
			}
			return out
		}
	}
	reshape := func(name string, shape []int) func([]Tensor) []Tensor {
		return func(ts []Tensor) []Tensor {
			for i := range ts {
				if ts[i].Name == name {
					ts[i].Shape = shape
				}
			}
			return ts
		}
	}
	retype := func(name string) func([]Tensor) []Tensor {
		return func(ts []Tensor) []Tensor {
			for i := range ts {
				if ts[i].Name == name {
					ts[i].DType = "I32"
				}
			}
			return ts
		}
	}
	for _, c := range []struct {
		name string
		edit func([]Tensor) []Tensor
		want string
	}{
		{"missing matrix", drop("h.1.mlp.c_fc.weight"), "missing tensor h.1.mlp.c_fc.weight"},
		{"missing embedding", drop("wte.weight"), "missing tensor wte.weight"},
		{"missing bias", drop("h.0.ln_2.bias"), "missing tensor h.0.ln_2.bias"},
		{"transposed conv1d", reshape("h.0.mlp.c_fc.weight", []int{256, 64}), "tensor h.0.mlp.c_fc.weight has shape [256 64], want [64 256]"},
		{"wrong length", reshape("ln_f.weight", []int{16, 4}), "tensor ln_f.weight has shape [16 4], want [64]"},
		{"integer dtype", retype("h.1.ln_1.weight"), "tensor h.1.ln_1.weight has dtype I32"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := hfCopy(t, F32, c.edit)
			out := filepath.Join(t.TempDir(), "x.gpt2d")
			err := Convert(dir, out, ConvertOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("LoadDir error %v, want one containing %q", err, c.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("output exists after a failed conversion")
			}
		})
	}
}

func TestConvertFailureLeavesExistingOutput(t *testing.T) {
	// A NaN in the last layer's matrix fails I8 quantization half way
	// through writing; the previous file must be untouched and no
	// temporary file left behind.
	dir := hfCopy(t, F32, func(ts []Tensor) []Tensor {
		for i := range ts {
			if ts[i].Name == "h.1.mlp.c_proj.weight" {
				binary.LittleEndian.PutUint32(ts[i].Data[4*100:], math.Float32bits(float32(math.NaN())))
			}
		}
		return ts
	})
	outDir := t.TempDir()
	out := filepath.Join(outDir, "m.gpt2d")
	if err := os.WriteFile(out, []byte("previous"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Convert(dir, out, ConvertOptions{DType: I8})
	if err == nil || !strings.Contains(err.Error(), "h.1.mlp.c_proj.weight") {
		t.Fatalf("error %v, want one naming h.1.mlp.c_proj.weight", err)
	}
	if data, _ := os.ReadFile(out); string(data) != "previous" {
		t.Error("existing output changed by a failed conversion")
	}
	if ents, _ := os.ReadDir(outDir); len(ents) != 1 {
		t.Errorf("%d entries in the output directory, want only the old file", len(ents))
	}
}

func TestConvertRefusesChangedSource(t *testing.T) {
	dir := hfCopy(t, F32, nil)
	if err := WriteSourceInfo(dir, SourceInfo{Repo: "openai-community/gpt2", Revision: "main", SHA256: map[string]string{"model.safetensors": strings.Repeat("ab", 32)}}); err != nil {
		t.Fatal(err)
	}
	err := Convert(dir, filepath.Join(t.TempDir(), "m.gpt2d"), ConvertOptions{})
	if err == nil || !strings.Contains(err.Error(), "changed since") {
		t.Fatalf("error %v, want a changed-source error", err)
	}
}

func TestParseDType(t *testing.T) {
	for in, want := range map[string]DType{"f32": F32, "BF16": BF16, "f16": F16, "fp16": F16, "int8": I8} {
		if got, err := ParseDType(in); err != nil || got != want {
			t.Errorf("ParseDType(%q) = %s, %v", in, got, err)
		}
	}
	if _, err := ParseDType("q4"); err == nil {
		t.Error("q4 accepted")
	}
}

func BenchmarkConvert(b *testing.B) {
	for _, dt := range []DType{F32, BF16, I8} {
		b.Run(string(dt), func(b *testing.B) {
			out := filepath.Join(b.TempDir(), "m.gpt2d")
			for b.Loop() {
				if err := Convert(tinyDir, out, ConvertOptions{DType: dt}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestConvertPadsOddShapesToAlignment(t *testing.T) {
	cfg := Config{NLayer: 2, NHead: 3, NEmbd: 9, NPositions: 5, NInner: 7, VocabSize: 11,
		LayerNormEpsilon: 1e-5, ActivationFunction: "gelu_new", EOSTokenID: 10}
	dir := randomHF(t, cfg)
	ref, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for _, dt := range []DType{F32, BF16, I8} {
		path := convertTiny(t, dir, dt)
		data, _ := os.ReadFile(path)
		checkReferenceRules(t, data)
		f, err := OpenSafetensors(path)
		if err != nil {
			t.Fatal(err)
		}
		pads := 0
		for _, name := range f.Names() {
			if strings.HasPrefix(name, padPrefix) {
				pads++
				if tn := f.Tensors[name]; tn.DType != "U8" || len(tn.Data) >= Alignment || bytes.Count(tn.Data, []byte{0}) != len(tn.Data) {
					t.Errorf("%s: padding %s is %s of %d bytes", dt, name, tn.DType, len(tn.Data))
				}
			}
		}
		f.Close()
		if pads == 0 {
			t.Errorf("%s: no padding tensors for odd shapes", dt)
		}
		ck, err := Load(path) // checks every tensor's alignment
		if err != nil {
			t.Fatal(err)
		}
		for name := range CanonicalShapes(cfg) {
			if dt == F32 || !isMatrix(name) {
				if !bytes.Equal(ck.Tensors[name].Data, ref.Tensors[name].Data) {
					t.Errorf("%s: %s differs from LoadDir", dt, name)
				}
			}
		}
		ck.Close()
	}
}

func TestLayoutAlignsEveryTensor(t *testing.T) {
	specs := []tensorSpec{{Name: "a", DType: I8, Shape: []int{3}}, {Name: "b", DType: F32, Shape: []int{16}}, {Name: "c", DType: F16, Shape: []int{1}}}
	got := layout(specs, 64)
	want := []struct {
		name       string
		begin, end int64
	}{{"a", 0, 3}, {"__pad__.b", 3, 64}, {"b", 64, 128}, {"c", 128, 130}}
	if len(got) != len(want) {
		t.Fatalf("layout %+v", got)
	}
	for i, w := range want {
		if got[i].Name != w.name || got[i].begin != w.begin || got[i].end != w.end {
			t.Errorf("entry %d: %s [%d,%d), want %s [%d,%d)", i, got[i].Name, got[i].begin, got[i].end, w.name, w.begin, w.end)
		}
	}
	hdr := encodeHeader(map[string]string{"z": "1", MetaFormat: FormatName}, got, 64)
	if (8+len(hdr))%64 != 0 || !bytes.HasPrefix(hdr, []byte(`{"__metadata__":{"format":"gpt2d","z":"1"},"a":`)) {
		t.Errorf("header %q", hdr)
	}
}
