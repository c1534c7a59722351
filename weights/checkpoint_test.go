package weights

import "testing"

func TestLoadDirGivesEveryCanonicalTensor(t *testing.T) {
	ck, err := LoadDir(tinyDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	shapes := CanonicalShapes(ck.Config)
	if len(ck.Tensors) != len(shapes) {
		t.Errorf("got %d tensors, want %d", len(ck.Tensors), len(shapes))
	}
	for name, want := range shapes {
		tn, err := ck.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if tn.DType != F32 || !equalShape(tn.Shape, want) {
			t.Errorf("%s: %s %v, want F32 %v", name, tn.DType, tn.Shape, want)
		}
	}
	if ck.TokenizerJSON == nil {
		t.Error("tokenizer.json not read")
	}
}
