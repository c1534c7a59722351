package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"gpt2d/gpt2"
	"gpt2d/gpt2/tokenizer"
)

// This file is the OpenAI-compatible API: POST /v1/completions (the
// legacy completions endpoint, which fits a base model like GPT-2) and
// GET /v1/models, so that stock OpenAI client libraries work against
// gpt2d with base_url pointed at it and an API key as the api_key.

// completionRequest is a parsed POST /v1/completions body.
type completionRequest struct {
	model        string
	prompts      []completionPrompt
	maxTokens    int
	n            int
	stream       bool
	includeUsage bool
	logprobs     int
	echo         bool
	sampling     gpt2.Request // Temperature, TopK, TopP, Seed, Stop
}

// completionPrompt is one prompt, as text or as token ids.
type completionPrompt struct {
	text string
	ids  []int
}

// defaultMaxTokens is OpenAI's default max_tokens for completions.
const defaultMaxTokens = 16

func (s *Server) parseCompletion(c *fiber.Ctx) (*completionRequest, error) {
	b, err := parseJSON(c)
	if err != nil {
		return nil, err
	}
	b.dropNulls()
	lim := s.cfg.Generation
	r := &completionRequest{}
	r.model = b.str("model", true, 1, 0)
	r.prompts = b.prompts("prompt")
	r.maxTokens = b.integer("max_tokens", defaultMaxTokens, 1, lim.MaxNewTokens)
	r.n = b.integer("n", 1, 1, lim.MaxChoices)
	b.sampling(lim, 0, &r.sampling)
	r.stream, _ = b.boolean("stream")
	if raw, ok := b.fields["stream_options"]; ok {
		var opts struct {
			IncludeUsage bool `json:"include_usage"`
		}
		if err := json.Unmarshal(raw, &opts); err != nil {
			b.fail("stream_options", "model_type", "Input should be an object {include_usage: boolean}", nil)
		}
		r.includeUsage = opts.IncludeUsage
	}
	r.logprobs = b.integer("logprobs", 0, 0, lim.MaxLogprobs)
	r.echo, _ = b.boolean("echo")
	b.unsupported()
	if len(r.prompts)*r.n > lim.MaxChoices {
		b.fail("n", "less_than_equal", fmt.Sprintf("Input should be at most %d completions per request (prompts × n)", lim.MaxChoices),
			map[string]any{"le": lim.MaxChoices})
	}
	return r, b.err()
}

// prompts reads OpenAI's prompt: a string, a list of strings, a list of
// token ids, or a list of lists of token ids.
func (b *body) prompts(name string) []completionPrompt {
	raw, ok := b.fields[name]
	if !ok {
		b.fail(name, "missing", "Field required", nil)
		return nil
	}
	var one string
	var texts []string
	var ids []int
	var idLists [][]int
	var out []completionPrompt
	switch {
	case json.Unmarshal(raw, &one) == nil:
		return []completionPrompt{{text: one}}
	case json.Unmarshal(raw, &texts) == nil:
		for _, t := range texts {
			out = append(out, completionPrompt{text: t})
		}
	case json.Unmarshal(raw, &ids) == nil:
		if len(ids) > 0 {
			out = []completionPrompt{{ids: ids}}
		}
	case json.Unmarshal(raw, &idLists) == nil:
		for _, l := range idLists {
			if len(l) == 0 {
				b.fail(name, "too_short", "Token lists should have at least 1 item", nil)
				return nil
			}
			out = append(out, completionPrompt{ids: l})
		}
	default:
		b.fail(name, "union_type", "Input should be a string, a list of strings, a list of token ids or a list of lists of token ids", nil)
		return nil
	}
	if len(out) == 0 {
		b.fail(name, "too_short", "List should have at least 1 item after validation", map[string]any{"min_length": 1})
	}
	return out
}

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

type completionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *usage             `json:"usage,omitempty"`
}

type completionChoice struct {
	Text         string              `json:"text"`
	Index        int                 `json:"index"`
	Logprobs     *completionLogprobs `json:"logprobs"`
	FinishReason *string             `json:"finish_reason"`
}

// completionLogprobs is OpenAI's legacy logprobs object. With echo, the
// prompt's tokens are scored too; the first has null logprobs, as
// nothing precedes it.
type completionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []*float64           `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
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

// logprobBuilder turns token logprobs into OpenAI's shape for one choice,
// tracking the character offset of each token in the choice's text.
type logprobBuilder struct {
	tok    *tokenizer.Tokenizer // nil: use the engine's token text
	offset int
}

// tokenString is how OpenAI shows a token: its text, or "bytes:\xNN…"
// when the token is part of a UTF-8 character.
func (lb *logprobBuilder) tokenString(id int, text string) string {
	if lb.tok == nil {
		return text
	}
	b := lb.tok.TokenBytes(id)
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

func (lb *logprobBuilder) advance(lp *completionLogprobs, tokenText string) {
	lp.TextOffset = append(lp.TextOffset, lb.offset)
	lb.offset += utf8.RuneCountInString(tokenText)
}

// prompt returns the entries of the prompt's tokens: scored where
// scores (parallel to ids, may be nil) has a finite logprob, null
// otherwise.
func (lb *logprobBuilder) prompt(ids []int, scores []gpt2.TokenLogprob) *completionLogprobs {
	lp := &completionLogprobs{Tokens: []string{}, TokenLogprobs: []*float64{}, TopLogprobs: []map[string]float64{}, TextOffset: []int{}}
	for i, id := range ids {
		if i < len(scores) && !math.IsNaN(scores[i].Logprob) {
			lp = lb.add(lp, scores[i:i+1])
			continue
		}
		t := lb.tokenString(id, "")
		lp.Tokens = append(lp.Tokens, t)
		lp.TokenLogprobs = append(lp.TokenLogprobs, nil)
		lp.TopLogprobs = append(lp.TopLogprobs, nil)
		lb.advance(lp, t)
	}
	return lp
}

// promptScorer is an engine that can score a prompt's tokens (echo with
// logprobs).
type promptScorer interface {
	PromptLogprobs(ctx context.Context, ids []int, top int) ([]gpt2.TokenLogprob, error)
}

// add appends the entries of generated tokens to lp (nil: a new one).
func (lb *logprobBuilder) add(lp *completionLogprobs, tokens []gpt2.TokenLogprob) *completionLogprobs {
	if lp == nil {
		lp = &completionLogprobs{Tokens: []string{}, TokenLogprobs: []*float64{}, TopLogprobs: []map[string]float64{}, TextOffset: []int{}}
	}
	for _, t := range tokens {
		s := lb.tokenString(t.ID, t.Text)
		v := t.Logprob
		top := make(map[string]float64, len(t.Top))
		for _, alt := range t.Top {
			if alt.ID >= 0 {
				top[lb.tokenString(alt.ID, alt.Text)] = alt.Logprob
			}
		}
		lp.Tokens = append(lp.Tokens, s)
		lp.TokenLogprobs = append(lp.TokenLogprobs, &v)
		lp.TopLogprobs = append(lp.TopLogprobs, top)
		lb.advance(lp, s)
	}
	return lp
}

// choicesPromptIDs returns the token ids of prompt p.
func choicesPromptIDs(choices []choice, p int) []int {
	for _, ch := range choices {
		if ch.prompt == p {
			return ch.req.PromptIDs
		}
	}
	return nil
}

// completions is POST /v1/completions.
func (s *Server) completions(c *fiber.Ctx) error {
	r, err := s.parseCompletion(c)
	if err != nil {
		return err
	}
	g := s.generator()
	if g == nil {
		return retryLater(fiber.StatusServiceUnavailable, "Model is loading, retry later", 5*time.Second)
	}
	name := s.modelName(g)
	if r.model != name {
		return &httpError{status: fiber.StatusNotFound, detail: fmt.Sprintf("The model `%s` does not exist", r.model),
			code: "model_not_found", param: "model"}
	}
	var tok *tokenizer.Tokenizer
	if tk, ok := g.(tokenizing); ok {
		tok = tk.Tokenizer()
	}
	// Tokenize each prompt once: its length is checked here, and echo
	// and usage need its tokens.
	texts := make([]string, len(r.prompts))
	var choices []choice
	for p, pr := range r.prompts {
		text, ids := pr.text, pr.ids
		if tok != nil {
			if ids == nil {
				ids = tok.Encode(text)
				if len(ids) == 0 {
					ids = []int{tok.EOS()} // OpenAI's prompt when there is none
				}
			} else {
				text = tok.Decode(ids)
			}
		}
		if s.filter.Blocked(text) {
			return blockedError()
		}
		if limit := g.Info().NPositions; limit > 0 && len(ids)+r.maxTokens > limit {
			return &httpError{status: fiber.StatusBadRequest, code: "context_length_exceeded", param: "prompt", detail: fmt.Sprintf(
				"This model's maximum context length is %d tokens, however you requested %d tokens (%d in your prompt; %d for the completion). Please reduce your prompt; or completion length.",
				limit, len(ids)+r.maxTokens, len(ids), r.maxTokens)}
		}
		texts[p] = text
		for i := range r.n {
			req := r.sampling
			req.Prompt, req.PromptIDs = text, ids
			req.MaxNewTokens = r.maxTokens
			req.Logprobs = r.logprobs
			if r.sampling.Seed != nil {
				seed := *r.sampling.Seed + uint64(i) // distinct, reproducible choices
				req.Seed = &seed
			}
			choices = append(choices, choice{req: req, prompt: p, chargePrompt: i == 0, promptTokens: len(ids)})
		}
	}
	who := caller{user: currentUser(c), key: currentKey(c), ip: s.clientIP(c)}
	if err := s.admit(who); err != nil {
		return err
	}
	// Echo with logprobs scores each prompt once, before generating.
	scores := make([][]gpt2.TokenLogprob, len(r.prompts))
	if ps, ok := g.(promptScorer); ok && r.echo && r.logprobs > 0 {
		for p := range r.prompts {
			ids := choicesPromptIDs(choices, p)
			if len(ids) == 0 {
				continue
			}
			sc, err := ps.PromptLogprobs(c.UserContext(), ids, r.logprobs)
			if err != nil {
				return s.generateError(err, "prompt")
			}
			scores[p] = sc
		}
	}
	detail := map[string]any{"prompts": len(r.prompts), "n": r.n, "max_tokens": r.maxTokens}
	gen := s.startGeneration(g, choices, r.stream)
	resp := completionResponse{ID: newCompletionID(), Object: "text_completion", Created: s.cfg.Now().Unix(), Model: name}
	builders := make([]logprobBuilder, len(choices))
	for i := range builders {
		builders[i].tok = tok
	}
	// echoed returns the prompt part of choice i when echo is on.
	echoed := func(i int) (string, *completionLogprobs) {
		if !r.echo {
			return "", nil
		}
		var lp *completionLogprobs
		if r.logprobs > 0 {
			lp = builders[i].prompt(choices[i].req.PromptIDs, scores[choices[i].prompt])
		}
		return texts[choices[i].prompt], lp
	}

	if !r.stream {
		gen.wait()
		s.finish(gen, who, "completions", false, detail)
		if err := gen.err(); err != nil {
			return s.generateError(err, "max_tokens")
		}
		for i := range gen.choices {
			res := gen.choices[i].res
			text, lp := echoed(i)
			if r.logprobs > 0 {
				lp = builders[i].add(lp, res.Logprobs[:min(len(res.Logprobs), len(res.Tokens))])
			}
			resp.Choices = append(resp.Choices, completionChoice{Text: text + res.Text, Index: i, Logprobs: lp,
				FinishReason: openAIFinish(res.FinishReason)})
		}
		counts := gen.counts()
		u := newUsage(int(counts.PromptTokens), int(counts.CompletionTokens))
		resp.Usage = &u
		return c.JSON(resp)
	}

	first, _ := gen.next()
	if first.done && first.err != nil {
		gen.abort()
		s.finish(gen, who, "completions", true, detail)
		return s.generateError(first.err, "max_tokens")
	}
	return s.stream(c, func(w *sseWriter) {
		defer s.finish(gen, who, "completions", true, detail)
		send := func(choices ...completionChoice) error {
			chunk := resp
			chunk.Choices = choices
			return w.send("", chunk)
		}
		if r.echo {
			for i := range choices {
				text, lp := echoed(i)
				if err := send(completionChoice{Text: text, Index: i, Logprobs: lp}); err != nil {
					gen.abort()
					return
				}
			}
		}
		for ev, ok := first, true; ok; ev, ok = gen.next() {
			var err error
			switch {
			case !ev.done && ev.chunk.Text == "" && r.logprobs == 0:
				continue // tokens that only started a UTF-8 character
			case !ev.done:
				var lp *completionLogprobs
				if r.logprobs > 0 {
					lp = builders[ev.index].add(nil, ev.chunk.Logprobs)
				}
				err = send(completionChoice{Text: ev.chunk.Text, Index: ev.index, Logprobs: lp})
			case ev.err != nil:
				w.send("", s.openAIStreamError(ev.err))
				gen.abort()
				return
			default:
				err = send(completionChoice{Index: ev.index, FinishReason: openAIFinish(ev.res.FinishReason)})
			}
			if err != nil {
				gen.abort() // the client is gone: free the slots now
				return
			}
		}
		if r.includeUsage {
			counts := gen.counts()
			chunk := resp
			chunk.Choices = []completionChoice{}
			u := newUsage(int(counts.PromptTokens), int(counts.CompletionTokens))
			chunk.Usage = &u
			if w.send("", chunk) != nil {
				return
			}
		}
		w.send("", "[DONE]")
	})
}

// openAIStreamError is the event that ends a stream when a choice fails
// after the stream began: OpenAI's error body, which client libraries
// raise as an API error.
func (s *Server) openAIStreamError(err error) openAIError {
	var he *httpError
	if !errors.As(s.generateError(err, "max_tokens"), &he) {
		s.log.Error("generation failed mid-stream", "err", err)
		he = newError(fiber.StatusInternalServerError, "Internal Server Error")
	}
	_, body := he.openAI()
	return body
}

func newCompletionID() string {
	var b [12]byte
	rand.Read(b[:])
	return "cmpl-" + hex.EncodeToString(b[:])
}

// modelOut is a model as OpenAI's model list shows it.
type modelOut struct {
	ID            string `json:"id"`
	Object        string `json:"object"`
	Created       int64  `json:"created"`
	OwnedBy       string `json:"owned_by"`
	ContextLength int    `json:"context_length,omitempty"`
}

func (s *Server) modelOut(g Generator) modelOut {
	return modelOut{ID: s.modelName(g), Object: "model", Created: s.loadedAt.Load(), OwnedBy: "gpt2d",
		ContextLength: g.Info().NPositions}
}

// listModels is GET /v1/models: the one model served.
func (s *Server) listModels(c *fiber.Ctx) error {
	g := s.generator()
	if g == nil {
		return retryLater(fiber.StatusServiceUnavailable, "Model is loading, retry later", 5*time.Second)
	}
	return c.JSON(fiber.Map{"object": "list", "data": []modelOut{s.modelOut(g)}})
}

// getModel is GET /v1/models/{model}.
func (s *Server) getModel(c *fiber.Ctx) error {
	g := s.generator()
	if g == nil {
		return retryLater(fiber.StatusServiceUnavailable, "Model is loading, retry later", 5*time.Second)
	}
	if id := c.Params("model"); id != s.modelName(g) {
		return &httpError{status: fiber.StatusNotFound, detail: fmt.Sprintf("The model `%s` does not exist", id),
			code: "model_not_found", param: "model"}
	}
	return c.JSON(s.modelOut(g))
}
