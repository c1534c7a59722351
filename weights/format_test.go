package weights

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"
)

func TestLoadConvertedIsZeroCopyAndAligned(t *testing.T) {
	for _, dt := range []DType{F32, BF16, F16, I8} {
		ck, err := Load(tinyConverted(t, dt))
		if err != nil {
			t.Fatal(err)
		}
		want := len(CanonicalShapes(ck.Config))
		if dt == I8 {
			want += len(MatrixNames(ck.Config.NLayer))
		}
		if len(ck.Tensors) != want {
			t.Errorf("%s: %d tensors, want %d (no padding, scales only for I8)", dt, len(ck.Tensors), want)
		}
		for name, tn := range ck.Tensors {
			p := uintptr(unsafe.Pointer(&tn.Data[0]))
			if p%Alignment != 0 {
				t.Errorf("%s: %s at %#x, not %d-byte aligned", dt, name, p, Alignment)
			}
			if tn.DType == F32 {
				v, _ := tn.F32()
				if uintptr(unsafe.Pointer(&v[0])) != p {
					t.Errorf("%s: %s F32 view copied", dt, name)
				}
			}
		}
		ck.Close()
	}
}

// refusal converts the fixture, damages the file with damage, and returns
// the path and the error Load gives.
func refusal(t *testing.T, damage func([]byte) []byte) (string, error) {
	t.Helper()
	path := tinyCopy(t, F32)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, damage(data), 0o644); err != nil {
		t.Fatal(err)
	}
	ck, err := Load(path)
	if err == nil {
		ck.Close()
	}
	return path, err
}

func TestLoadRefusesUnusableFiles(t *testing.T) {
	hf, err := os.ReadFile(filepath.Join(tinyDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	replace := func(old, new string) func([]byte) []byte {
		return func(b []byte) []byte {
			if !bytes.Contains(b, []byte(old)) {
				t.Fatalf("%q not in the file", old)
			}
			return bytes.Replace(b, []byte(old), []byte(new), 1)
		}
	}
	for _, c := range []struct {
		name   string
		damage func([]byte) []byte
		is     error
		want   string
	}{
		{"text file", func([]byte) []byte { return []byte("this is not a model, just some text\n") }, ErrNotConverted, "does not begin with a safetensors header"},
		{"tiny file", func([]byte) []byte { return []byte("abc") }, ErrNotConverted, ""},
		{"Hugging Face safetensors", func([]byte) []byte { return hf }, ErrNotConverted, "without gpt2d's format marker"},
		{"truncated in the data", func(b []byte) []byte { return b[:len(b)/2] }, ErrCorrupt, "truncated"},
		{"truncated by one byte", func(b []byte) []byte { return b[:len(b)-1] }, ErrCorrupt, "truncated"},
		{"truncated in the header", func(b []byte) []byte { return b[:1000] }, ErrCorrupt, "truncated"},
		{"truncated to the magic", func(b []byte) []byte { return b[:20] }, ErrCorrupt, ""},
		{"bytes appended", func(b []byte) []byte { return append(b, 0, 0, 0, 0) }, ErrCorrupt, "appended"},
		{"newer version", replace(`"format_version":"1"`, `"format_version":"2"`), ErrFormatVersion, `format version "2"`},
		{"header damaged", replace(`"data_offsets":[`, `"data_offsets":{`), ErrCorrupt, ""},
		{"shape changed", replace(`"shape":[64]`, `"shape":[16]`), ErrCorrupt, ""},
		{"config damaged", replace(`\"n_layer\":2`, `\"n_layer\":0`), ErrCorrupt, "n_layer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path, err := refusal(t, c.damage)
			if err == nil {
				t.Fatal("loaded")
			}
			if !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q should name %s and say %q", err, path, c.want)
			}
		})
	}
}

func TestLoadRefusesEmptyAndMissingFiles(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty.gpt2d")
	os.WriteFile(empty, nil, 0o644)
	missing := filepath.Join(t.TempDir(), "missing.gpt2d")
	for _, path := range []string{empty, missing} {
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Load(%s) error %v, want one naming the file", path, err)
		}
	}
}

func TestVerifyFindsACorruptedByte(t *testing.T) {
	path := tinyCopy(t, BF16)
	if err := Verify(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	data[len(data)-1000] ^= 0x10 // inside wte, which the header cannot notice
	os.WriteFile(path, data, 0o644)
	ck, err := Load(path)
	if err != nil {
		t.Fatalf("Load reads no data, so should not notice: %v", err)
	}
	ck.Close()
	if err := Verify(path); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Errorf("Verify error %v, want ErrCorrupt naming the file", err)
	}
}

// BenchmarkLoadConverted measures start-up's share of the weights: map
// the file and check its header, whose tokenizer dominates the time at
// every model size.
func BenchmarkLoadConverted(b *testing.B) {
	path := tinyConverted(b, F32)
	for b.Loop() {
		ck, err := Load(path)
		if err != nil {
			b.Fatal(err)
		}
		ck.Close()
	}
}

// BenchmarkLoadDir is the same from the Hugging Face directory, which
// transposes the matrices on the heap.
func BenchmarkLoadDir(b *testing.B) {
	for b.Loop() {
		ck, err := LoadDir(tinyDir)
		if err != nil {
			b.Fatal(err)
		}
		ck.Close()
	}
}
