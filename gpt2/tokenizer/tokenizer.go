// Package tokenizer is GPT-2's byte-level BPE tokenizer, exact to the
// reference (openai/gpt-2 encoder.py, Hugging Face tokenizers): text to
// token ids and back, including streaming decode.
//
// It is built on github.com/sugarme/tokenizer: the GPT-2 pieces here
// implement sugarme's PreTokenizer, Model and Decoder interfaces and are
// installed in a sugarme Tokenizer (see Pipeline), whose Encoding — ids,
// tokens and character offsets — Pieces returns. The tokenizer file is
// parsed once, by this package; sugarme's own ByteLevel and BPE are not
// used, as they differ from GPT-2: the pre-tokenizer lacks the \s+(?!\S)
// rule, BPE does not merge lowest rank first, and a literal
// "<|endoftext|>" in text is turned into the special token.
//
// Encode calls the same pre-tokenizer and model directly rather than
// through sugarme's pipeline, which keeps per-character offset bookkeeping
// (superlinear in the text length) and panics on text that is not valid
// UTF-8: generation, which needs only ids, never pays for it.
package tokenizer

import (
	"fmt"
	"unicode/utf8"

	sugarme "github.com/sugarme/tokenizer"
)

// Tokenizer encodes text to GPT-2 token ids and decodes ids to text. It is
// immutable after loading (apart from an internal bounded cache) and all
// its methods are safe for concurrent use.
type Tokenizer struct {
	model    *bpeModel
	eos      int
	pipeline *sugarme.Tokenizer
}

// newTokenizer finishes loading: it builds the sugarme pipeline from the
// GPT-2 pieces and finds the end-of-text token. Added tokens such as
// <|endoftext|> are not registered with the pipeline, so it never matches
// them in text; truncation, padding and post-processing are left out
// because Encode has none.
func newTokenizer(m *bpeModel) (*Tokenizer, error) {
	eos, ok := m.vocab[EOSToken]
	if !ok {
		return nil, fmt.Errorf("%w: neither the vocab nor the added tokens have %s", ErrNoEOS, EOSToken)
	}
	pipeline := sugarme.NewTokenizer(m)
	pipeline.WithPreTokenizer(preTokenizer{})
	pipeline.WithDecoder(byteLevelDecoder{})
	return &Tokenizer{model: m, eos: eos, pipeline: pipeline}, nil
}

// Encode returns the token ids of text. Special tokens are never produced
// from text: "<|endoftext|>" encodes as the seven ids of that text, not as
// EOS (callers add EOS by id). text need not be valid UTF-8; every byte is
// encoded, so the TokenBytes of the result concatenate back to text.
func (t *Tokenizer) Encode(text string) []int {
	ids := make([]int, 0, len(text)/4+1)
	for i := 0; i < len(text); {
		j := nextWord(text, i)
		ids = t.model.appendWord(ids, text[i:j])
		i = j
	}
	return ids
}

// Decode returns the text of ids. Where the bytes are not valid UTF-8 (a
// character cut off by the end of ids, or never valid) each maximal
// invalid subpart becomes one U+FFFD, exactly as Python's
// bytes.decode('utf-8', errors='replace'). Invalid ids are skipped.
func (t *Tokenizer) Decode(ids []int) string {
	n := 0
	for _, id := range ids {
		n += len(t.TokenBytes(id))
	}
	raw := make([]byte, 0, n)
	for _, id := range ids {
		raw = append(raw, t.TokenBytes(id)...)
	}
	if utf8.Valid(raw) {
		return string(raw)
	}
	text, _ := appendLossy(make([]byte, 0, n+8), raw, true)
	return string(text)
}

// TokenBytes returns the raw bytes of token id, or nil for an invalid id.
// The slice is shared: the caller must not modify it.
func (t *Tokenizer) TokenBytes(id int) []byte {
	if id < 0 || id >= len(t.model.bytes) {
		return nil
	}
	return t.model.bytes[id]
}

// TokenText returns the text of token id on its own, Decode([]int{id}).
func (t *Tokenizer) TokenText(id int) string {
	return t.Decode([]int{id})
}

// EOS returns the id of the <|endoftext|> token (50256 in GPT-2).
func (t *Tokenizer) EOS() int {
	return t.eos
}

// VocabSize returns the number of token ids: one more than the largest id.
func (t *Tokenizer) VocabSize() int {
	return len(t.model.bytes)
}

// Pipeline returns the sugarme Tokenizer assembled from this tokenizer's
// pieces, for callers that want sugarme Encodings (tokens, offsets into
// the text, masks). Its ids agree with Encode: added tokens such as
// <|endoftext|> are not registered with it, so it never matches them in
// text (nor drops them when decoding with skipSpecialTokens). It is much
// slower than Encode and, since sugarme indexes text by rune when it
// tracks offsets, it panics on text that is not valid UTF-8: use Encode
// for untrusted text. It must not be modified.
func (t *Tokenizer) Pipeline() *sugarme.Tokenizer {
	return t.pipeline
}
