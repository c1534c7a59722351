package api

import (
	"context"
	"errors"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"gpt2d/gpt2"
)

// Sampling as the original's Hugging Face text-generation pipeline did it
// for GPT-2 (its task_specific_params set do_sample): temperature 1,
// top-k 50.
const (
	defaultTemperature = 1.0
	defaultTopK        = 50
)

type generateResponse struct {
	GeneratedText string `json:"generated_text"`
	Model         string `json:"model"`
	ModelName     string `json:"model_name"`
	FinishReason  string `json:"finish_reason"`
	Usage         usage  `json:"usage"`
}

// usage is the token count of a response, as OpenAI reports it.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func newUsage(prompt, completion int) usage {
	return usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
}

// generateDelta is a streamed event of /generate: the text of the next
// tokens, never part of a UTF-8 character or of a stop string.
type generateDelta struct {
	Text string `json:"text"`
}

// generateDone is the last event of a /generate stream ("event: done").
type generateDone struct {
	FinishReason string `json:"finish_reason"`
	Model        string `json:"model"`
	ModelName    string `json:"model_name"`
	usage
}

// generate is POST /generate {prompt, max_length, max_new_tokens,
// temperature, top_k, top_p, seed, stop, stream}. It answers with the
// prompt followed by its continuation, max_length being prompt plus new
// tokens (max_new_tokens, when given, bounds the new tokens instead). With
// "stream": true, or Accept: text/event-stream, the continuation arrives
// as Server-Sent Events: {"text": …} per batch of tokens, then an
// "event: done" with the finish reason and token counts.
func (s *Server) generate(c *fiber.Ctx) error {
	b, err := parseJSON(c)
	if err != nil {
		return err
	}
	prompt := b.str("prompt", true, 1, 500)
	maxLength := b.integer("max_length", 50, 10, 200)
	req := gpt2.Request{Prompt: prompt, MaxLength: maxLength}
	if b.has("max_new_tokens") {
		req.MaxNewTokens = b.integer("max_new_tokens", 0, 1, s.cfg.Generation.MaxNewTokens)
	}
	b.sampling(s.cfg.Generation, defaultTopK, &req)
	stream := wantsStream(c, b)
	if err := b.err(); err != nil {
		return err
	}
	who := s.callerOf(c)
	if s.filter.Blocked(prompt) {
		s.audit(c, slog.LevelWarn, "generate.blocked", who.user, "", map[string]any{"prompt_chars": utf8.RuneCountInString(prompt)})
		return blockedError()
	}
	g, err := s.loadedGenerator()
	if err != nil {
		return err
	}
	req.CacheScope = s.cacheScope(c)
	p, err := g.Prepare(req)
	if err != nil {
		return s.generateError(err, "max_length")
	}
	if err := s.admit(&who, int64(len(p.IDs)+p.MaxNewTokens), 1); err != nil {
		return err
	}
	detail := map[string]any{"prompt_chars": utf8.RuneCountInString(prompt), "max_length": maxLength}
	if req.MaxNewTokens > 0 {
		detail["max_new_tokens"] = req.MaxNewTokens
	}
	gen := s.newGeneration([]choice{{p: p, chargePrompt: true, promptTokens: len(p.IDs)}})
	gen.start(g, stream)
	finish := func() { s.finish(gen, who, "generate", stream, detail) }
	out := &generateRender{s: s, gen: gen, name: s.modelName(g), prompt: prompt}
	return s.respond(c, gen, out, stream, finish, func(err error) error { return s.generateError(err, "max_length") })
}

// generateRender renders /generate's answer: the prompt and its
// continuation, or as a stream {"text": …} events, then an "event: done"
// with the finish reason and counts, or an "event: error".
type generateRender struct {
	s      *Server
	gen    *generation
	name   string
	prompt string
}

func (g *generateRender) complete() any {
	res := g.gen.choices[0].res
	g.s.log.Debug("generate text", "prompt", g.prompt, "text", res.Text)
	return generateResponse{GeneratedText: g.prompt + res.Text, Model: g.name, ModelName: g.name,
		FinishReason: string(res.FinishReason), Usage: newUsage(res.PromptTokens, res.CompletionTokens)}
}

func (*generateRender) open(*sseWriter) error { return nil }

func (*generateRender) chunk(w *sseWriter, _ int, c gpt2.Chunk) error {
	if c.Text == "" {
		return nil // tokens that only started a UTF-8 character
	}
	return w.send("", generateDelta{Text: c.Text})
}

func (g *generateRender) end(w *sseWriter, _ int, res *gpt2.Result) error {
	return w.send("done", generateDone{FinishReason: string(res.FinishReason), Model: g.name, ModelName: g.name,
		usage: newUsage(res.PromptTokens, res.CompletionTokens)})
}

func (g *generateRender) fail(w *sseWriter, err error) {
	w.send("error", g.s.streamError(err, "max_length"))
}

func (*generateRender) close(*sseWriter) error { return nil }

// generateError maps the engine's errors onto HTTP. lengthParam names the
// field a context-length error is reported against.
func (s *Server) generateError(err error, lengthParam string) error {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	he = s.engineError(err, lengthParam)
	if he == nil {
		return err
	}
	he.cause = err
	return he
}

func (s *Server) engineError(err error, lengthParam string) *httpError {
	var pe *gpt2.ParamError
	var ce *gpt2.ContextLengthError
	switch {
	case errors.Is(err, gpt2.ErrQueueFull):
		return retryLater(fiber.StatusServiceUnavailable, "Server busy, retry later", time.Second)
	case errors.Is(err, gpt2.ErrClosed):
		return retryLater(fiber.StatusServiceUnavailable, "Server is shutting down", 5*time.Second)
	case errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("generation timed out", "timeout", s.cfg.GenerateTimeout)
		return &httpError{status: fiber.StatusGatewayTimeout, detail: "Generation timed out", code: "timeout"}
	case errors.As(err, &pe):
		return invalid(fieldError{Loc: []any{"body", pe.Param}, Type: "value_error", Msg: "Value error, " + pe.Msg})
	case errors.As(err, &ce):
		he := invalid(fieldError{Loc: []any{"body", lengthParam}, Type: "value_error", Msg: "Value error, " + ce.Error(),
			Ctx: map[string]any{"prompt_tokens": ce.PromptTokens, "limit": ce.Limit}})
		he.code = "context_length_exceeded"
		return he
	}
	return nil
}

// streamError is the payload of an "event: error" that ends a stream
// after it started: the status and detail the error would have had.
func (s *Server) streamError(err error, lengthParam string) map[string]any {
	var he *httpError
	if errors.As(s.generateError(err, lengthParam), &he) {
		return map[string]any{"status": he.status, "detail": he.detail}
	}
	s.log.Error("generation failed mid-stream", "err", err)
	return map[string]any{"status": fiber.StatusInternalServerError, "detail": "Internal Server Error"}
}
