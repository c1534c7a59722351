package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"gpt2d/gpt2/tokenizer"
	"gpt2d/weights"
)

const tokenizeUsage = `usage: gpt2d tokenize --model PATH|NAME [--decode | --pieces] [--] TEXT

Prints the token ids of TEXT ("-": read it from stdin) as a JSON array.
--decode reads ids instead (a JSON array, or ids separated by spaces or
commas) and prints their text. --pieces prints one JSON object per token:
its id, its bytes (as text, and as numbers when they are not whole UTF-8
characters) and its span in TEXT in characters, end exclusive.

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
	src := modelSource{modelsDir: m.modelsDir, getenv: os.Getenv, progress: stderr, tty: isTerminal(stderr)}
	p, err := src.resolve(ctx, m.model)
	if err != nil {
		if ctx.Err() != nil {
			return nil, errInterrupted
		}
		return nil, err
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

// piece is one line of `tokenize --pieces`.
type piece struct {
	ID    int    `json:"id"`
	Piece string `json:"piece"`           // the token's bytes as text (U+FFFD for part of a character)
	Bytes []int  `json:"bytes,omitempty"` // the raw bytes, when they are not whole characters
	Start int    `json:"start"`           // span in the text, in characters, end exclusive
	End   int    `json:"end"`
}

var errPiecesUTF8 = errors.New("--pieces needs text that is valid UTF-8 (character offsets are undefined otherwise)")

// printPieces writes one JSON object per token of text.
func printPieces(w io.Writer, tok *tokenizer.Tokenizer, text string) error {
	if !utf8.ValidString(text) {
		return fmt.Errorf("%w: tokenize: %w", errUsage, errPiecesUTF8)
	}
	// runeOf[i] is the index of the character holding byte i.
	runeOf := make([]int, len(text))
	n := 0
	for i := range text {
		_, size := utf8.DecodeRuneInString(text[i:])
		for k := i; k < i+size; k++ {
			runeOf[k] = n
		}
		n++
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	off := 0
	for _, id := range tok.Encode(text) {
		raw := tok.TokenBytes(id)
		p := piece{ID: id, Piece: strings.ToValidUTF8(string(raw), "\uFFFD"), Start: runeOf[off], End: runeOf[off+len(raw)-1] + 1}
		if !utf8.Valid(raw) {
			for _, c := range raw {
				p.Bytes = append(p.Bytes, int(c))
			}
		}
		if err := enc.Encode(p); err != nil {
			return err
		}
		off += len(raw)
	}
	return nil
}
