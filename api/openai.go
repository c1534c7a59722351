package api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"gpt2d/gpt2"
)

// This file holds what the OpenAI-compatible API's endpoints share:
// errors, ids, token strings and GET /v1/models. POST /v1/completions
// (the legacy completions endpoint, which fits a base model like GPT-2)
// is in completions.go, POST /v1/chat/completions in chat.go. Stock
// OpenAI client libraries work against gpt2d with base_url pointed at it
// and an API key as the api_key.

// unsupported refuses OpenAI options gpt2d does not implement, rather
// than silently ignoring what a client relies on. Their neutral values
// (what clients send by default) are accepted.
func (b *body) unsupported() {
	neutral := map[string]string{"presence_penalty": "0", "frequency_penalty": "0", "best_of": "1", "suffix": `""`, "logit_bias": "{}"}
	for name, zero := range neutral {
		raw, ok := b.fields[name]
		if !ok {
			continue
		}
		var v, z any
		json.Unmarshal(raw, &v)
		json.Unmarshal([]byte(zero), &z)
		if fmt.Sprint(v) != fmt.Sprint(z) {
			b.fail(name, "value_error", "Value error, "+name+" is not supported by this server", nil)
		}
	}
}

// openAIFinish maps the engine's finish reasons onto OpenAI's: the end of
// text token is a stop like a stop string.
func openAIFinish(r gpt2.FinishReason) *string {
	s := "length"
	if r == gpt2.FinishStop || r == gpt2.FinishEOS {
		s = "stop"
	}
	return &s
}

// openAIGenerateError maps the engine's errors onto OpenAI's: a prompt
// that does not fit is a 400 context_length_exceeded with OpenAI's
// message; the rest as generateError, against max_tokens.
func (s *Server) openAIGenerateError(err error) error {
	var ce *gpt2.ContextLengthError
	if errors.As(err, &ce) {
		return &httpError{status: fiber.StatusBadRequest, code: "context_length_exceeded", param: "prompt", detail: fmt.Sprintf(
			"This model's maximum context length is %d tokens, however you requested %d tokens (%d in your prompt; %d for the completion). Please reduce your prompt; or completion length.",
			ce.Limit, ce.PromptTokens+ce.NewTokens, ce.PromptTokens, ce.NewTokens), cause: err}
	}
	return s.generateError(err, "max_tokens")
}

// openAIStreamError is the event that ends a stream when a choice fails
// after the stream began: OpenAI's error body, which client libraries
// raise as an API error.
func (s *Server) openAIStreamError(err error) openAIError {
	var he *httpError
	if !errors.As(s.openAIGenerateError(err), &he) {
		s.log.Error("generation failed mid-stream", "err", err)
		he = newError(fiber.StatusInternalServerError, "Internal Server Error")
	}
	_, body := he.openAI()
	return body
}

// servedModel returns the generator when model names the model served;
// a 404 model_not_found names any other, a 503 says the model is loading.
func (s *Server) servedModel(model string) (Generator, error) {
	g, err := s.loadedGenerator()
	if err != nil {
		return nil, err
	}
	if model != s.modelName(g) {
		return nil, &httpError{status: fiber.StatusNotFound, detail: fmt.Sprintf("The model `%s` does not exist", model),
			code: "model_not_found", param: "model"}
	}
	return g, nil
}

// newID returns a fresh OpenAI-style id: prefix and 24 hex digits.
func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// tokenString is how OpenAI shows a token: its text, or "bytes:\xNN…"
// when the token holds part of a UTF-8 character.
func tokenString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.WriteString("bytes:")
	for _, c := range b {
		fmt.Fprintf(&sb, `\x%02x`, c)
	}
	return sb.String()
}

// sampledSeed is the seed of choice i of a request seeded with seed:
// distinct, reproducible choices.
func sampledSeed(seed *uint64, i int) *uint64 {
	if seed == nil {
		return nil
	}
	v := *seed + uint64(i)
	return &v
}

// modelOut is a model as OpenAI's model list shows it, with what a
// client needs to know about chat with a base model.
type modelOut struct {
	ID            string `json:"id"`
	Object        string `json:"object"`
	Created       int64  `json:"created"`
	OwnedBy       string `json:"owned_by"`
	ContextLength int    `json:"context_length,omitempty"`
	// BaseModel is true: GPT-2 continues text and was never tuned to
	// follow instructions or converse.
	BaseModel bool `json:"base_model"`
	// Chat says how /v1/chat/completions treats messages.
	Chat chatInfo `json:"chat"`
}

// chatInfo describes the chat template in /v1/models.
type chatInfo struct {
	Format   string   `json:"format"`   // "plain-text"
	Template string   `json:"template"` // Go text/template over .Messages
	Stop     []string `json:"stop"`     // the reply ends at the first of these
	Note     string   `json:"note"`
}

func (s *Server) modelOut(g Generator) modelOut {
	t := s.cfg.ChatTemplate
	return modelOut{ID: s.modelName(g), Object: "model", Created: s.loadedAt.Load(), OwnedBy: "gpt2d",
		ContextLength: g.Info().NPositions, BaseModel: true,
		Chat: chatInfo{Format: "plain-text", Template: t.Source(), Stop: t.Stop(),
			Note: "GPT-2 is a base model: chat messages are rendered into a plain-text transcript by this template, and the reply stops at the next turn marker."}}
}

// listModels is GET /v1/models: the one model served.
func (s *Server) listModels(c *fiber.Ctx) error {
	g, err := s.loadedGenerator()
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"object": "list", "data": []modelOut{s.modelOut(g)}})
}

// getModel is GET /v1/models/{model}.
func (s *Server) getModel(c *fiber.Ctx) error {
	g, err := s.servedModel(c.Params("model"))
	if err != nil {
		return err
	}
	return c.JSON(s.modelOut(g))
}
