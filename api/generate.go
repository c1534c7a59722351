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
}

// generate is POST /generate {prompt, max_length}: it answers with the
// prompt followed by its continuation, max_length being prompt plus new
// tokens.
func (s *Server) generate(c *fiber.Ctx) error {
	b, err := parseJSON(c)
	if err != nil {
		return err
	}
	prompt := b.str("prompt", true, 1, 500)
	maxLength := b.integer("max_length", 50, 10, 200)
	if err := b.err(); err != nil {
		return err
	}
	u := currentUser(c)
	if s.filter.Blocked(prompt) {
		s.audit(c, slog.LevelWarn, "generate.blocked", u, "", map[string]any{"prompt_chars": utf8.RuneCountInString(prompt)})
		return newError(fiber.StatusBadRequest, detailBlockedContent)
	}
	g := s.generator()
	if g == nil {
		return retryLater(fiber.StatusServiceUnavailable, "Model is loading, retry later", 5*time.Second)
	}

	// The deadline covers waiting in the engine's queue and generating. The
	// request's own context is not used: fasthttp does not cancel it when
	// the client goes away, and shutdown must let generations finish.
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.GenerateTimeout)
	defer cancel()
	start := time.Now()
	res, err := g.Generate(ctx, gpt2.Request{
		Prompt:      prompt,
		MaxLength:   maxLength,
		Temperature: defaultTemperature,
		TopK:        defaultTopK,
	}, nil)
	if err != nil {
		return s.generateError(c, err, prompt)
	}
	s.audit(c, slog.LevelInfo, "generate", u, "", map[string]any{
		"prompt_chars":      utf8.RuneCountInString(prompt),
		"prompt_tokens":     res.PromptTokens,
		"completion_tokens": res.CompletionTokens,
		"max_length":        maxLength,
		"finish_reason":     string(res.FinishReason),
		"duration_ms":       time.Since(start).Milliseconds(),
	})
	s.log.Debug("generate text", "user", u.Username, "prompt", prompt, "text", res.Text)
	name := s.modelName(g)
	return c.JSON(generateResponse{GeneratedText: prompt + res.Text, Model: name, ModelName: name})
}

// generateError maps the engine's errors onto HTTP.
func (s *Server) generateError(c *fiber.Ctx, err error, prompt string) error {
	var pe *gpt2.ParamError
	var ce *gpt2.ContextLengthError
	switch {
	case errors.Is(err, gpt2.ErrQueueFull):
		return retryLater(fiber.StatusServiceUnavailable, "Server busy, retry later", time.Second)
	case errors.Is(err, gpt2.ErrClosed):
		return retryLater(fiber.StatusServiceUnavailable, "Server is shutting down", 5*time.Second)
	case errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("generation timed out", "timeout", s.cfg.GenerateTimeout, "prompt_chars", utf8.RuneCountInString(prompt))
		return newError(fiber.StatusGatewayTimeout, "Generation timed out")
	case errors.Is(err, gpt2.ErrEmptyPrompt):
		return invalid(fieldError{Loc: []any{"body", "prompt"}, Type: "value_error", Msg: "Value error, prompt has no tokens"})
	case errors.As(err, &pe):
		return invalid(fieldError{Loc: []any{"body", pe.Param}, Type: "value_error", Msg: "Value error, " + pe.Msg})
	case errors.As(err, &ce):
		return invalid(fieldError{Loc: []any{"body", "max_length"}, Type: "value_error", Msg: "Value error, " + ce.Error(),
			Ctx: map[string]any{"prompt_tokens": ce.PromptTokens, "limit": ce.Limit}})
	}
	return err
}
