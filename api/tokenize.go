package api

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
)

// This file is POST /tokenize and POST /detokenize, named and shaped as
// llama-server and vLLM have them, so their clients' token counting
// works against gpt2d.

// tokenOut is one token of a /tokenize answer with with_pieces: its id,
// its text (a list of byte values when it holds only part of a UTF-8
// character, as llama-server shows it), its bytes, and its span in the
// text in characters, end exclusive.
type tokenOut struct {
	ID      int    `json:"id"`
	Piece   any    `json:"piece"`
	Bytes   []int  `json:"bytes"`
	Offsets [2]int `json:"offsets"`
}

// tokenize is POST /tokenize {content (or prompt), with_pieces}: the
// text's token ids, or with with_pieces each token's bytes and character
// offsets (computed by the tokenizer's sugarme pipeline).
func (s *Server) tokenize(c *fiber.Ctx) error {
	b, err := parseJSON(c)
	if err != nil {
		return err
	}
	b.dropNulls()
	field := "content"
	if !b.has(field) && b.has("prompt") { // vLLM's name
		field = "prompt"
	}
	text := b.str(field, true, 0, 0)
	pieces, _ := b.boolean("with_pieces")
	b.boolean("add_special_tokens") // accepted: GPT-2 adds none
	model := b.str("model", false, 0, 0)
	if err := b.err(); err != nil {
		return err
	}
	g, err := s.loadedGenerator()
	if err == nil && model != "" {
		g, err = s.servedModel(model)
	}
	if err != nil {
		return err
	}
	if err := s.admitRequest(s.callerOf(c)); err != nil {
		return err
	}
	out := fiber.Map{"max_model_len": g.Info().NPositions}
	if !pieces {
		ids := g.Tokenize(text)
		out["tokens"], out["count"] = ids, len(ids)
		return c.JSON(out)
	}
	ps, err := g.Pieces(text) // text came from JSON: valid UTF-8
	if err != nil {
		return err
	}
	toks := make([]tokenOut, len(ps))
	for i, p := range ps {
		toks[i] = tokenOut{ID: p.ID, Bytes: byteList(p.Bytes), Offsets: [2]int{p.Start, p.End}}
		if utf8.Valid(p.Bytes) {
			toks[i].Piece = string(p.Bytes)
		} else {
			toks[i].Piece = toks[i].Bytes
		}
	}
	out["tokens"], out["count"] = toks, len(toks)
	return c.JSON(out)
}

// detokenize is POST /detokenize {tokens}: the text of token ids, as
// "content" (llama-server) and "prompt" (vLLM).
func (s *Server) detokenize(c *fiber.Ctx) error {
	b, err := parseJSON(c)
	if err != nil {
		return err
	}
	var ids []int
	if raw, ok := b.fields["tokens"]; !ok {
		b.fail("tokens", "missing", "Field required", nil)
	} else if json.Unmarshal(raw, &ids) != nil {
		b.fail("tokens", "list_type", "Input should be a list of token ids", nil)
	}
	if err := b.err(); err != nil {
		return err
	}
	g, err := s.loadedGenerator()
	if err != nil {
		return err
	}
	if err := s.admitRequest(s.callerOf(c)); err != nil {
		return err
	}
	text, err := g.Detokenize(ids)
	if err != nil {
		return s.generateError(err, "tokens")
	}
	return c.JSON(fiber.Map{"content": text, "prompt": text})
}
