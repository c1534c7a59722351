package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"gpt2d/gpt2/tokenizer"
	"gpt2d/weights"
)

const tokenizeUsage = `usage: gpt2d tokenize --model PATH|NAME [--decode | --pieces] [--] TEXT

Prints the token ids of TEXT ("-": read it from stdin) as a JSON array.
--decode reads ids instead (a JSON array, or ids separated by spaces or
commas) and prints their text. --pieces prints one JSON object per token,
as POST /tokenize with with_pieces does: its id, its piece (its text, or
its byte values when it holds part of a UTF-8 character), its bytes, and
its offsets in TEXT in characters, end exclusive.

flags:
`

func runTokenize(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	b := newBinder("tokenize", os.Getenv, stderr)
	b.fs.Usage = func() { fmt.Fprint(b.fs.Output(), tokenizeUsage); b.fs.PrintDefaults() }
	var mf modelFlags
	mf.bind(b)
	decode := b.fs.Bool("decode", false, "read token ids and print their text")
	pieces := b.fs.Bool("pieces", false, "print each token's id, bytes and character offsets")
	if err := b.parse(args); err != nil {
		return err
	}
	if b.fs.NArg() != 1 {
		b.fs.Usage()
		return fmt.Errorf("%w: tokenize: want one TEXT (\"-\" for stdin), got %d arguments", errUsage, b.fs.NArg())
	}
	if *decode && *pieces {
		return fmt.Errorf("%w: tokenize: --decode and --pieces exclude each other", errUsage)
	}
	text, err := readArg(b.fs.Arg(0), stdin)
	if err != nil {
		return fmt.Errorf("tokenize: %w", err)
	}
	tok, err := mf.tokenizer(ctx, stderr)
	if err != nil {
		return err
	}
	switch {
	case *decode:
		ids, err := parseIDs(text, tok.VocabSize())
		if err != nil {
			return fmt.Errorf("%w: tokenize --decode: %w", errUsage, err)
		}
		_, err = io.WriteString(stdout, tok.Decode(ids))
		return err
	case *pieces:
		return printPieces(stdout, tok, text)
	}
	ids := tok.Encode(text)
	if ids == nil {
		ids = []int{}
	}
	return json.NewEncoder(stdout).Encode(ids)
}

// tokenizer loads only the tokenizer of the model: a converted file is
// memory-mapped (its tensors are not read) and a directory's tensors are
// never opened.
func (m *modelFlags) tokenizer(ctx context.Context, stderr io.Writer) (*tokenizer.Tokenizer, error) {
	p, err := m.resolve(ctx, stderr)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		return dirTokenizer(p)
	}
	ck, err := weights.Load(p)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	if ck.TokenizerJSON != nil {
		return tokenizer.FromJSON(ck.TokenizerJSON)
	}
	return tokenizer.FromVocabMerges(ck.VocabJSON, ck.Merges)
}

// dirTokenizer loads the tokenizer of a Hugging Face directory:
// tokenizer.json, else vocab.json and merges.txt.
func dirTokenizer(dir string) (*tokenizer.Tokenizer, error) {
	if b, err := os.ReadFile(filepath.Join(dir, "tokenizer.json")); err == nil {
		return tokenizer.FromJSON(b)
	}
	vocab, err := os.ReadFile(filepath.Join(dir, "vocab.json"))
	if err != nil {
		return nil, fmt.Errorf("tokenizer of %s: no tokenizer.json, and %w", dir, err)
	}
	merges, err := os.ReadFile(filepath.Join(dir, "merges.txt"))
	if err != nil {
		return nil, fmt.Errorf("tokenizer of %s: no tokenizer.json, and %w", dir, err)
	}
	return tokenizer.FromVocabMerges(vocab, merges)
}

// parseIDs reads token ids written as a JSON array or separated by
// spaces or commas, each within the vocabulary.
func parseIDs(s string, vocab int) ([]int, error) {
	s = strings.TrimSpace(s)
	var ids []int
	if strings.HasPrefix(s, "[") {
		if err := json.Unmarshal([]byte(s), &ids); err != nil {
			return nil, fmt.Errorf("ids: %w", err)
		}
	} else {
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
			id, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("id %q is not an integer", f)
			}
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		if id < 0 || id >= vocab {
			return nil, fmt.Errorf("id %d is outside the vocabulary (0 to %d)", id, vocab-1)
		}
	}
	return ids, nil
}

// piece is one line of `tokenize --pieces`, shaped as a token of POST
// /tokenize with with_pieces (and llama-server's): its id, its text (the
// list of its byte values when it holds only part of a UTF-8 character),
// its bytes, and its span in the text in characters, end exclusive.
type piece struct {
	ID      int    `json:"id"`
	Piece   any    `json:"piece"`
	Bytes   []int  `json:"bytes"`
	Offsets [2]int `json:"offsets"`
}

var errPiecesUTF8 = errors.New("--pieces needs text that is valid UTF-8 (character offsets are undefined otherwise)")

// printPieces writes one JSON object per token of text, with the
// offsets sugarme's Encoding gives (tokenizer.Pieces).
func printPieces(w io.Writer, tok *tokenizer.Tokenizer, text string) error {
	if !utf8.ValidString(text) {
		return fmt.Errorf("%w: tokenize: %w", errUsage, errPiecesUTF8)
	}
	ps, err := tok.Pieces(text)
	if err != nil {
		return fmt.Errorf("tokenize: %w", err)
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, p := range ps {
		out := piece{ID: p.ID, Bytes: make([]int, len(p.Bytes)), Offsets: [2]int{p.Start, p.End}}
		for i, b := range p.Bytes {
			out.Bytes[i] = int(b)
		}
		out.Piece = out.Bytes
		if utf8.Valid(p.Bytes) {
			out.Piece = string(p.Bytes)
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	return nil
}
