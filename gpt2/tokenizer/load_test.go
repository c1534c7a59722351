package tokenizer

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// tinyJSON returns a small valid GPT-2 style tokenizer.json (the 256
// bytes, "ab", "abc", <|endoftext|>) after applying edit to its decoded
// form.
func tinyJSON(t testing.TB, edit func(f map[string]any)) []byte {
	t.Helper()
	vocab := map[string]any{}
	for tok, id := range tinyVocab("ab", "abc") {
		vocab[tok] = id
	}
	f := map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": []any{map[string]any{"id": 256, "content": EOSToken, "special": true}},
		"normalizer":   nil,
		"pre_tokenizer": map[string]any{
			"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true,
		},
		"post_processor": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false,
			"vocab": vocab, "merges": []any{"a b", []any{"ab", "c"}},
		},
	}
	if edit != nil {
		edit(f)
	}
	data, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// model returns the "model" object of a tinyJSON map.
func model(f map[string]any) map[string]any { return f["model"].(map[string]any) }

func TestFromJSONAcceptsTinyTokenizer(t *testing.T) {
	tok, err := FromJSON(tinyJSON(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	got := tok.Encode("abc ab<|endoftext|>")
	want := []int{258, 32, 257, 60, 124, 101, 110, 100, 111, 102, 116, 101, 120, 116, 124, 62}
	if !slices.Equal(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
	if tok.EOS() != 256 || tok.VocabSize() != 259 {
		t.Errorf("EOS() = %d, VocabSize() = %d; want 256, 259", tok.EOS(), tok.VocabSize())
	}
}

func TestLoadRejectsBadInputWithNamedErrors(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		is      error
		mention string
	}{
		{"empty", []byte(""), ErrMalformed, "unexpected end"},
		{"garbage", []byte("\x00\xffnot json at all"), ErrMalformed, "invalid character"},
		{"json array", []byte(`[1, 2, 3]`), ErrMalformed, "cannot unmarshal array"},
		{"json null", []byte(`null`), ErrMalformed, "no model"},
		{"json string", []byte(`"tokenizer"`), ErrMalformed, "cannot unmarshal string"},
		{"model is a string", []byte(`{"model": "gpt2"}`), ErrMalformed, "model"},
		{"vocab is a list", []byte(`{"model": {"type": "BPE", "vocab": [1, 2], "merges": []}}`), ErrMalformed, "vocab"},
		{"vocab id is a string", []byte(`{"model": {"type": "BPE", "vocab": {"a": "0"}, "merges": []}}`), ErrMalformed, "vocab"},
		{"merges is an object", tinyJSON(t, func(f map[string]any) { model(f)["merges"] = map[string]any{"a": "b"} }), ErrMalformed, "merges"},
		{"merge is a number", tinyJSON(t, func(f map[string]any) { model(f)["merges"] = []any{7} }), ErrMalformed, "merges[0]"},
		{"merge has three parts", tinyJSON(t, func(f map[string]any) { model(f)["merges"] = []any{"a b c"} }), ErrMalformed, `"a b c"`},
		{"merge of unknown token", tinyJSON(t, func(f map[string]any) { model(f)["merges"] = []any{"a b", "x y"} }), ErrMalformed, `merge 2 "x y"`},
		{"added token without id", tinyJSON(t, func(f map[string]any) { f["added_tokens"] = []any{map[string]any{"content": "x"}} }), ErrMalformed, "added_tokens[0]"},
		{"huge id", []byte(`{"model":{"type":"BPE","vocab":{"a":4000000000},"merges":[]},"pre_tokenizer":{"type":"ByteLevel"}}`), ErrMalformed, "ids run up to 4000000000"},
		{"huge added id", tinyJSON(t, func(f map[string]any) { f["added_tokens"] = []any{map[string]any{"id": 1 << 40, "content": "x"}} }), ErrMalformed, "ids run up to"},
		{"duplicate id", tinyJSON(t, func(f map[string]any) { model(f)["vocab"].(map[string]any)["zz"] = 3 }), ErrMalformed, "vocab id 3"},
		{"WordPiece", tinyJSON(t, func(f map[string]any) { model(f)["type"] = "WordPiece" }), ErrNotByteLevelBPE, `"WordPiece"`},
		{"Unigram", tinyJSON(t, func(f map[string]any) { model(f)["type"] = "Unigram" }), ErrNotByteLevelBPE, `"Unigram"`},
		{"unk_token is a number", tinyJSON(t, func(f map[string]any) { model(f)["unk_token"] = 5 }), ErrMalformed, "unk_token"},
		{"dropout", tinyJSON(t, func(f map[string]any) { model(f)["dropout"] = 0.1 }), ErrNotByteLevelBPE, "dropout"},
		{"subword prefix", tinyJSON(t, func(f map[string]any) { model(f)["continuing_subword_prefix"] = "##" }), ErrNotByteLevelBPE, "continuing_subword_prefix"},
		{"byte fallback", tinyJSON(t, func(f map[string]any) { model(f)["byte_fallback"] = true }), ErrNotByteLevelBPE, "byte_fallback"},
		{"Metaspace", tinyJSON(t, func(f map[string]any) { f["pre_tokenizer"] = map[string]any{"type": "Metaspace"} }), ErrNotByteLevelBPE, `pre_tokenizer is type "Metaspace"`},
		{"no pre-tokenizer", tinyJSON(t, func(f map[string]any) { f["pre_tokenizer"] = nil }), ErrNotByteLevelBPE, "no pre_tokenizer"},
		{"pre-tokenizer wrong type", tinyJSON(t, func(f map[string]any) { f["pre_tokenizer"] = []any{1} }), ErrMalformed, "pre_tokenizer"},
		{"add_prefix_space", tinyJSON(t, func(f map[string]any) { f["pre_tokenizer"].(map[string]any)["add_prefix_space"] = true }), ErrNotByteLevelBPE, "add_prefix_space"},
		{"no regex", tinyJSON(t, func(f map[string]any) { f["pre_tokenizer"].(map[string]any)["use_regex"] = false }), ErrNotByteLevelBPE, "use_regex"},
		{"normalizer", tinyJSON(t, func(f map[string]any) { f["normalizer"] = map[string]any{"type": "NFC"} }), ErrNotByteLevelBPE, `normalizer (type "NFC")`},
		{"WordPiece decoder", tinyJSON(t, func(f map[string]any) { f["decoder"] = map[string]any{"type": "WordPiece"} }), ErrNotByteLevelBPE, "decoder"},
		{"template post-processor", tinyJSON(t, func(f map[string]any) { f["post_processor"] = map[string]any{"type": "TemplateProcessing"} }), ErrNotByteLevelBPE, "post_processor"},
		{"missing byte", tinyJSON(t, func(f map[string]any) { delete(model(f)["vocab"].(map[string]any), "Ġ") }), ErrNotByteLevelBPE, "byte 0x20"},
		{"no EOS", tinyJSON(t, func(f map[string]any) {
			f["added_tokens"] = []any{}
			delete(model(f)["vocab"].(map[string]any), EOSToken)
		}), ErrNoEOS, EOSToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := FromJSON(tt.data)
			if err == nil {
				t.Fatalf("FromJSON succeeded (%v)", tok)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %q", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

func TestFromVocabMergesRejectsBadInputWithNamedErrors(t *testing.T) {
	vocab, err := json.Marshal(tinyVocab("ab"))
	if err != nil {
		t.Fatal(err)
	}
	noEOS := tinyVocab("ab")
	delete(noEOS, EOSToken)
	noEOSJSON, err := json.Marshal(noEOS)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		vocab, merges string
		is            error
		mention       string
	}{
		{"vocab garbage", "{not json", "a b\n", ErrMalformed, "vocab.json"},
		{"vocab is a list", `["a"]`, "a b\n", ErrMalformed, "vocab.json"},
		{"vocab empty", `{}`, "a b\n", ErrMalformed, "empty vocab"},
		{"merge line with one token", string(vocab), "#version: 0.2\na b\nab\n", ErrMalformed, "line 3"},
		{"merge of unknown token", string(vocab), "#version: 0.2\nq z\n", ErrMalformed, `"q z"`},
		{"no EOS", string(noEOSJSON), "a b\n", ErrNoEOS, EOSToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromVocabMerges([]byte(tt.vocab), []byte(tt.merges))
			if err == nil {
				t.Fatal("FromVocabMerges succeeded")
			}
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q: want it to wrap %q and mention %q", err, tt.is, tt.mention)
			}
		})
	}
	// CRLF files and a missing "#version" line are fine.
	tok, err := FromVocabMerges(vocab, []byte("a b\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("ab"); !slices.Equal(got, []int{257}) {
		t.Errorf("Encode(ab) = %v, want [257]", got)
	}
}

// FuzzFromJSON checks that no input makes FromJSON panic.
func FuzzFromJSON(f *testing.F) {
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0},"merges":["a a"]},"pre_tokenizer":{"type":"ByteLevel"}}`))
	f.Add([]byte(`{"model":{"vocab":{},"merges":[["a"]]}}`))
	f.Add([]byte(`{"added_tokens":[{"id":-1,"content":""}],"model":{"vocab":{"a":-5}}}`))
	f.Add(tinyJSON(f, nil))
	f.Add(tinyJSON(f, func(f map[string]any) { delete(model(f), "type") }))
	f.Fuzz(func(t *testing.T, data []byte) {
		if tok, err := FromJSON(data); err == nil && tok == nil {
			t.Fatal("nil tokenizer without error")
		}
	})
}
