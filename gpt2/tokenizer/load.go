package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// EOSToken is the text of GPT-2's end-of-text token.
const EOSToken = "<|endoftext|>"

var (
	// ErrMalformed is returned (wrapped) for tokenizer data that cannot be
	// parsed or is inconsistent: bad JSON, wrong types, a merge of tokens
	// the vocabulary does not have.
	ErrMalformed = errors.New("malformed tokenizer data")
	// ErrNotByteLevelBPE is returned (wrapped) for a well-formed tokenizer
	// that is not GPT-2's kind: another model type, pre-tokenizer or
	// decoder, or options GPT-2 does not use.
	ErrNotByteLevelBPE = errors.New("not a GPT-2 byte-level BPE tokenizer")
	// ErrNoEOS is returned (wrapped) when the vocabulary has no
	// <|endoftext|> token.
	ErrNoEOS = errors.New("no " + EOSToken + " token")
)

// hfFile is the part of a Hugging Face tokenizer.json this package reads.
// Components are kept raw and decoded one by one so that errors can say
// which one is wrong.
type hfFile struct {
	AddedTokens   []hfAddedToken  `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

type hfAddedToken struct {
	ID      *int    `json:"id"`
	Content *string `json:"content"`
}

type hfModel struct {
	Type                    string            `json:"type"`
	Dropout                 *float64          `json:"dropout"`
	UnkToken                *string           `json:"unk_token"` // unused: every byte has a token
	ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	ByteFallback            bool              `json:"byte_fallback"`
	Vocab                   map[string]int    `json:"vocab"`
	Merges                  []json.RawMessage `json:"merges"`
}

// hfComponent is a pre-tokenizer, post-processor or decoder; GPT-2 uses
// ByteLevel for all three.
type hfComponent struct {
	Type           string `json:"type"`
	AddPrefixSpace bool   `json:"add_prefix_space"`
	UseRegex       *bool  `json:"use_regex"`
}

// isNull reports whether a raw JSON value is absent or null.
func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// FromJSON loads a GPT-2 tokenizer from a Hugging Face tokenizer.json. It
// must describe byte-level BPE as GPT-2 does: a BPE model without dropout,
// subword prefixes or byte fallback; a ByteLevel pre-tokenizer without
// add_prefix_space; no normalizer; ByteLevel or no decoder and
// post-processor; and an <|endoftext|> token in the vocabulary or the added
// tokens. Errors wrap ErrMalformed, ErrNotByteLevelBPE or ErrNoEOS.
//
// Added tokens get their ids but are never matched in text: Encode of
// "<|endoftext|>" gives the ids of that text.
func FromJSON(tokenizerJSON []byte) (*Tokenizer, error) {
	var f hfFile
	if err := json.Unmarshal(tokenizerJSON, &f); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w: %w", ErrMalformed, err)
	}
	if isNull(f.Model) {
		return nil, fmt.Errorf("tokenizer.json: %w: no model", ErrMalformed)
	}
	var model hfModel
	if err := json.Unmarshal(f.Model, &model); err != nil {
		return nil, fmt.Errorf("tokenizer.json: model: %w: %w", ErrMalformed, err)
	}
	if err := checkModel(&model); err != nil {
		return nil, fmt.Errorf("tokenizer.json: model: %w", err)
	}
	if !isNull(f.Normalizer) {
		return nil, fmt.Errorf("tokenizer.json: %w: has a normalizer (%s); GPT-2 has none", ErrNotByteLevelBPE, summary(f.Normalizer))
	}
	if err := checkByteLevel("pre_tokenizer", f.PreTokenizer, true); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	if err := checkByteLevel("post_processor", f.PostProcessor, false); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	if err := checkByteLevel("decoder", f.Decoder, false); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}

	merges := make([][2]string, len(model.Merges))
	for i, raw := range model.Merges {
		pair, err := parseJSONMerge(raw)
		if err != nil {
			return nil, fmt.Errorf("tokenizer.json: model.merges[%d]: %w", i, err)
		}
		merges[i] = pair
	}
	added := make(map[int]string, len(f.AddedTokens))
	for i, at := range f.AddedTokens {
		if at.ID == nil || at.Content == nil {
			return nil, fmt.Errorf("tokenizer.json: added_tokens[%d]: %w: needs id and content", i, ErrMalformed)
		}
		added[*at.ID] = *at.Content
	}
	m, err := newBPEModel(model.Vocab, merges, added)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	return newTokenizer(m)
}

// checkModel accepts only GPT-2 style BPE.
func checkModel(m *hfModel) error {
	switch {
	case m.Type != "" && m.Type != "BPE":
		return fmt.Errorf("%w: type is %q, want \"BPE\"", ErrNotByteLevelBPE, m.Type)
	case len(m.Vocab) == 0:
		return fmt.Errorf("%w: empty or missing vocab", ErrMalformed)
	case m.Dropout != nil:
		return fmt.Errorf("%w: dropout %v is not supported", ErrNotByteLevelBPE, *m.Dropout)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return fmt.Errorf("%w: continuing_subword_prefix %q is not supported", ErrNotByteLevelBPE, *m.ContinuingSubwordPrefix)
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return fmt.Errorf("%w: end_of_word_suffix %q is not supported", ErrNotByteLevelBPE, *m.EndOfWordSuffix)
	case m.ByteFallback:
		return fmt.Errorf("%w: byte_fallback is not supported", ErrNotByteLevelBPE)
	}
	return nil
}

// checkByteLevel accepts a ByteLevel component as GPT-2 configures it, or
// (unless required) none.
func checkByteLevel(name string, raw json.RawMessage, required bool) error {
	if isNull(raw) {
		if required {
			return fmt.Errorf("%w: no %s, want ByteLevel", ErrNotByteLevelBPE, name)
		}
		return nil
	}
	var c hfComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("%s: %w: %w", name, ErrMalformed, err)
	}
	if c.Type != "ByteLevel" {
		return fmt.Errorf("%w: %s is %s, want ByteLevel", ErrNotByteLevelBPE, name, summary(raw))
	}
	if name == "pre_tokenizer" {
		if c.AddPrefixSpace {
			return fmt.Errorf("%w: pre_tokenizer add_prefix_space is true; GPT-2 uses false", ErrNotByteLevelBPE)
		}
		if c.UseRegex != nil && !*c.UseRegex {
			return fmt.Errorf("%w: pre_tokenizer use_regex is false; GPT-2 splits with its regex", ErrNotByteLevelBPE)
		}
	}
	return nil
}

// summary names a JSON component by its type, or shows its start.
func summary(raw json.RawMessage) string {
	var c struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(raw, &c) == nil && c.Type != "" {
		return fmt.Sprintf("type %q", c.Type)
	}
	s := string(raw)
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// parseJSONMerge reads one tokenizer.json merge: "a b" (older files) or
// ["a", "b"].
func parseJSONMerge(raw json.RawMessage) ([2]string, error) {
	var line string
	if err := json.Unmarshal(raw, &line); err == nil {
		return parseMergeLine(line)
	}
	var pair []string
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 || pair[0] == "" || pair[1] == "" {
		return [2]string{}, fmt.Errorf("%w: %s is not \"a b\" or [\"a\", \"b\"]", ErrMalformed, summary(raw))
	}
	return [2]string{pair[0], pair[1]}, nil
}

// parseMergeLine splits "a b". Byte-level tokens never contain a space
// (a space byte is spelled "Ġ"), so there is exactly one.
func parseMergeLine(line string) ([2]string, error) {
	a, b, ok := strings.Cut(line, " ")
	if !ok || a == "" || b == "" || strings.Contains(b, " ") {
		return [2]string{}, fmt.Errorf("%w: merge %q is not two tokens separated by one space", ErrMalformed, line)
	}
	return [2]string{a, b}, nil
}

// FromVocabMerges loads a GPT-2 tokenizer from the original release files:
// vocab.json (byte-level token -> id, including <|endoftext|>) and
// merges.txt (one "a b" merge per line by rank, after an optional
// "#version" line). Errors wrap ErrMalformed, ErrNotByteLevelBPE or
// ErrNoEOS.
func FromVocabMerges(vocabJSON, merges []byte) (*Tokenizer, error) {
	var vocab map[string]int
	if err := json.Unmarshal(vocabJSON, &vocab); err != nil {
		return nil, fmt.Errorf("vocab.json: %w: %w", ErrMalformed, err)
	}
	if len(vocab) == 0 {
		return nil, fmt.Errorf("vocab.json: %w: empty vocab", ErrMalformed)
	}
	pairs, err := parseMergesTxt(merges)
	if err != nil {
		return nil, fmt.Errorf("merges.txt: %w", err)
	}
	m, err := newBPEModel(vocab, pairs, nil)
	if err != nil {
		return nil, fmt.Errorf("vocab.json/merges.txt: %w", err)
	}
	return newTokenizer(m)
}

// parseMergesTxt reads merges.txt. Blank lines are skipped, and so is a
// first line starting with "#version" (encoder.py drops the first line
// unconditionally; Hugging Face drops "#version" lines).
func parseMergesTxt(data []byte) ([][2]string, error) {
	var pairs [][2]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" || n == 1 && strings.HasPrefix(line, "#version") {
			continue
		}
		pair, err := parseMergeLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		pairs = append(pairs, pair)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return pairs, nil
}
