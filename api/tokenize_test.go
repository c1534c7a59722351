package api

import (
	"encoding/json"
	"slices"
	"testing"
	"unicode/utf8"
)

func TestTokenizeAndDetokenize(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	text := "Héllo wörld, 日本 🍕!"
	want := engine.Tokenize(text)

	var plain struct {
		Tokens      []int `json:"tokens"`
		Count       int   `json:"count"`
		MaxModelLen int   `json:"max_model_len"`
	}
	r := ts.postJSON("/tokenize", tok, map[string]any{"content": text})
	wantStatus(t, r, 200)
	if err := json.Unmarshal(r.body, &plain); err != nil || !slices.Equal(plain.Tokens, want) || plain.Count != len(want) || plain.MaxModelLen != 128 {
		t.Fatalf("tokenize %s", r.body)
	}
	// vLLM's field name.
	r = ts.postJSON("/tokenize", tok, map[string]any{"prompt": text, "add_special_tokens": true, "model": "gpt2-tiny"})
	if err := json.Unmarshal(r.body, &plain); err != nil || !slices.Equal(plain.Tokens, want) {
		t.Fatalf("tokenize (prompt) %s", r.body)
	}

	// with_pieces: every token's bytes, and character offsets that tile
	// the text; a token holding part of a character shows it as bytes.
	var pieces struct {
		Tokens []struct {
			ID      int    `json:"id"`
			Piece   any    `json:"piece"`
			Bytes   []int  `json:"bytes"`
			Offsets [2]int `json:"offsets"`
		} `json:"tokens"`
	}
	r = ts.postJSON("/tokenize", tok, map[string]any{"content": text, "with_pieces": true})
	wantStatus(t, r, 200)
	if err := json.Unmarshal(r.body, &pieces); err != nil || len(pieces.Tokens) != len(want) {
		t.Fatalf("with_pieces %s", r.body)
	}
	runes := []rune(text)
	var all []byte
	var tiled string
	end := 0
	for i, p := range pieces.Tokens {
		if p.ID != want[i] {
			t.Fatalf("piece %d id %d, want %d", i, p.ID, want[i])
		}
		b := make([]byte, len(p.Bytes))
		for k, v := range p.Bytes {
			b[k] = byte(v)
		}
		all = append(all, b...)
		if s, ok := p.Piece.(string); ok != utf8.Valid(b) || (ok && s != string(b)) {
			t.Fatalf("piece %d: %#v for bytes % x", i, p.Piece, b)
		}
		if p.Offsets[0] < 0 || p.Offsets[1] > len(runes) || p.Offsets[0] >= p.Offsets[1] {
			t.Fatalf("piece %d offsets %v", i, p.Offsets)
		}
		if p.Offsets[0] >= end {
			tiled += string(runes[p.Offsets[0]:p.Offsets[1]])
			end = p.Offsets[1]
		}
	}
	if string(all) != text || tiled != text {
		t.Fatalf("bytes %q, offsets tile %q; want %q", all, tiled, text)
	}

	// detokenize gives the text back.
	r = ts.postJSON("/detokenize", tok, map[string]any{"tokens": want})
	wantStatus(t, r, 200)
	if m := r.json(t); m["content"] != text || m["prompt"] != text {
		t.Fatalf("detokenize %s", r.body)
	}

	// Bad input is a 422 naming the field; no credentials a 401.
	for _, tt := range []struct {
		path string
		body map[string]any
		loc  string
	}{
		{"/tokenize", map[string]any{}, "content"},
		{"/tokenize", map[string]any{"content": 3}, "content"},
		{"/tokenize", map[string]any{"content": "x", "with_pieces": "yes"}, "with_pieces"},
		{"/detokenize", map[string]any{}, "tokens"},
		{"/detokenize", map[string]any{"tokens": "12"}, "tokens"},
		{"/detokenize", map[string]any{"tokens": []int{1 << 30}}, "tokens"},
	} {
		r := ts.postJSON(tt.path, tok, tt.body)
		wantStatus(t, r, 422)
		if loc := r.detail(t).([]any)[0].(map[string]any)["loc"].([]any); loc[1] != tt.loc {
			t.Errorf("%s %v: loc %v", tt.path, tt.body, loc)
		}
	}
	wantStatus(t, ts.postJSON("/tokenize", "", map[string]any{"content": "x"}), 401)
	wantStatus(t, ts.postJSON("/tokenize", tok, map[string]any{"content": "x", "model": "gpt-4"}), 404)
}
