package api

import (
	"encoding/json"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"gpt2d/gpt2"
)

// completionRequest is a parsed POST /v1/completions body.
type completionRequest struct {
	model        string
	prompts      []completionPrompt
	maxTokens    int // 0: score the prompt only (with echo)
	n            int
	stream       bool
	includeUsage bool
	logprobs     *int // nil: none; 0: the sampled tokens' only
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
	r.maxTokens = b.integer("max_tokens", defaultMaxTokens, 0, lim.MaxNewTokens)
	r.n = b.integer("n", 1, 1, lim.MaxChoices)
	b.sampling(lim, 0, &r.sampling)
	r.stream, _ = b.boolean("stream")
	r.includeUsage = b.streamOptions()
	if b.has("logprobs") {
		n := b.integer("logprobs", 0, 0, lim.MaxLogprobs)
		r.logprobs = &n
	}
	r.echo, _ = b.boolean("echo")
	b.unsupported()
	if r.maxTokens == 0 && !r.echo {
		b.fail("max_tokens", "greater_than_equal", "Input should be at least 1 unless echo is set (max_tokens 0 with echo scores the prompt only)",
			map[string]any{"ge": 1})
	}
	if len(r.prompts)*r.n > lim.MaxChoices {
		b.fail("n", "less_than_equal", fmt.Sprintf("Input should be at most %d completions per request (prompts × n)", lim.MaxChoices),
			map[string]any{"le": lim.MaxChoices})
	}
	return r, b.err()
}

// streamOptions reads OpenAI's stream_options and returns include_usage.
func (b *body) streamOptions() bool {
	raw, ok := b.fields["stream_options"]
	if !ok {
		return false
	}
	var opts struct {
		IncludeUsage bool `json:"include_usage"`
	}
	if err := json.Unmarshal(raw, &opts); err != nil {
		b.fail("stream_options", "model_type", "Input should be an object {include_usage: boolean}", nil)
	}
	return opts.IncludeUsage
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

// completions is POST /v1/completions: parse, prepare each prompt (the
// engine tokenizes it and checks that it fits), admit, score the prompts
// when echo asks for their logprobs, run, render.
func (s *Server) completions(c *fiber.Ctx) error {
	r, err := s.parseCompletion(c)
	if err != nil {
		return err
	}
	g, err := s.servedModel(r.model)
	if err != nil {
		return err
	}
	prepared, err := s.prepareCompletion(c, g, r)
	if err != nil {
		return err
	}
	who := s.callerOf(c)
	// The quota reserves each prompt once and every choice's new tokens.
	var budget int64
	for _, p := range prepared {
		budget += int64(len(p.IDs) + r.n*p.MaxNewTokens)
	}
	if err := s.admit(&who, budget, len(prepared)*r.n); err != nil {
		return err
	}
	choices := completionChoices(prepared, r)
	gen := s.newGeneration(choices)
	// Echo with logprobs scores each prompt once, before generating.
	scores := make([][]gpt2.TokenLogprob, len(prepared))
	if r.echo && r.logprobs != nil {
		for i, p := range prepared {
			if scores[i], err = g.Score(gen.ctx, p, *r.logprobs); err != nil {
				gen.cancel()
				s.unadmit(&who)
				return s.openAIGenerateError(err)
			}
		}
	}
	gen.start(g, r.stream)
	id := newID("cmpl-")
	c.Locals(localsCompletionID, id)
	who.completionID = id
	out := &completionRender{s: s, r: r, gen: gen, prepared: prepared, scores: scores,
		resp:     completionResponse{ID: id, Object: "text_completion", Created: s.cfg.Now().Unix(), Model: s.modelName(g)},
		builders: make([]logprobBuilder, len(choices))}
	detail := map[string]any{"prompts": len(r.prompts), "n": r.n, "max_tokens": r.maxTokens}
	finish := func() { s.finish(gen, who, "completions", r.stream, detail) }
	return s.respond(c, gen, out, r.stream, finish, s.openAIGenerateError)
}

// prepareCompletion prepares each of r's prompts with its sampling: the
// engine tokenizes it and checks that it fits; the word filter sees the
// text the engine will run.
func (s *Server) prepareCompletion(c *fiber.Ctx, g Generator, r *completionRequest) ([]*gpt2.Prepared, error) {
	prepared := make([]*gpt2.Prepared, len(r.prompts))
	for i, pr := range r.prompts {
		req := r.sampling
		req.Prompt, req.PromptIDs = pr.text, pr.ids
		req.MaxNewTokens = r.maxTokens
		req.ScoreOnly = r.maxTokens == 0
		req.CacheScope = s.cacheScope(c)
		if r.logprobs != nil {
			req.Logprobs, req.TokenLogprobs = *r.logprobs, true
		}
		p, err := g.Prepare(req)
		if err != nil {
			return nil, s.openAIGenerateError(err)
		}
		if s.filter.Blocked(p.Request.Prompt) {
			return nil, blockedError()
		}
		prepared[i] = p
	}
	return prepared, nil
}

// completionChoices is r.n choices per prepared prompt, each with its own
// seed; only a prompt's first choice is charged for it. With max_tokens 0
// the choices generate nothing (echo only).
func completionChoices(prepared []*gpt2.Prepared, r *completionRequest) []choice {
	var choices []choice
	for i, p := range prepared {
		for k := range r.n {
			ch := choice{prompt: i, chargePrompt: k == 0, promptTokens: len(p.IDs)}
			if r.maxTokens > 0 {
				cp := *p
				cp.Request.Seed = sampledSeed(p.Request.Seed, k)
				ch.p = &cp
			}
			choices = append(choices, ch)
		}
	}
	return choices
}

// completionRender renders a completion's choices, whole or as a stream.
type completionRender struct {
	s        *Server
	r        *completionRequest
	gen      *generation
	prepared []*gpt2.Prepared
	scores   [][]gpt2.TokenLogprob // per prompt, with echo and logprobs
	resp     completionResponse
	builders []logprobBuilder // per choice
}

// echoed returns the prompt part of choice i when echo is on.
func (o *completionRender) echoed(i int) (string, *completionLogprobs) {
	if !o.r.echo {
		return "", nil
	}
	p := o.gen.choices[i].prompt
	var lp *completionLogprobs
	if o.r.logprobs != nil {
		lp = o.builders[i].add(nil, o.scores[p])
	}
	return o.prepared[p].Request.Prompt, lp
}

// complete is the whole response, once every choice has ended.
func (o *completionRender) complete() any {
	resp := o.resp
	for i := range o.gen.choices {
		res := o.gen.choices[i].res
		text, lp := o.echoed(i)
		if o.r.logprobs != nil {
			lp = o.builders[i].add(lp, res.Logprobs[:min(len(res.Logprobs), len(res.Tokens))])
		}
		resp.Choices = append(resp.Choices, completionChoice{Text: text + res.Text, Index: i, Logprobs: lp,
			FinishReason: openAIFinish(res.FinishReason)})
	}
	resp.Usage = o.gen.usage()
	return resp
}

func (o *completionRender) send(w *sseWriter, choices ...completionChoice) error {
	chunk := o.resp
	chunk.Choices = choices
	return w.send("", chunk)
}

func (o *completionRender) open(w *sseWriter) error {
	if !o.r.echo {
		return nil
	}
	for i := range o.gen.choices {
		text, lp := o.echoed(i)
		if err := o.send(w, completionChoice{Text: text, Index: i, Logprobs: lp}); err != nil {
			return err
		}
	}
	return nil
}

func (o *completionRender) chunk(w *sseWriter, i int, c gpt2.Chunk) error {
	if c.Text == "" && o.r.logprobs == nil {
		return nil // tokens that only started a UTF-8 character
	}
	var lp *completionLogprobs
	if o.r.logprobs != nil {
		lp = o.builders[i].add(nil, c.Logprobs)
	}
	return o.send(w, completionChoice{Text: c.Text, Index: i, Logprobs: lp})
}

func (o *completionRender) end(w *sseWriter, i int, res *gpt2.Result) error {
	return o.send(w, completionChoice{Index: i, FinishReason: openAIFinish(res.FinishReason)})
}

func (o *completionRender) fail(w *sseWriter, err error) { w.send("", o.s.openAIStreamError(err)) }

func (o *completionRender) close(w *sseWriter) error {
	return sendOpenAIEnd(w, o.gen, o.r.includeUsage, func(u *usage) any {
		chunk := o.resp
		chunk.Choices, chunk.Usage = []completionChoice{}, u
		return chunk
	})
}

// logprobBuilder turns token logprobs into OpenAI's legacy shape for one
// choice, tracking the character offset of each token in the choice's
// text.
type logprobBuilder struct {
	offset int
}

// add appends the entries of tokens to lp (nil: a new one). A token
// without a score (the prompt's first) has null logprobs.
func (lb *logprobBuilder) add(lp *completionLogprobs, tokens []gpt2.TokenLogprob) *completionLogprobs {
	if lp == nil {
		lp = &completionLogprobs{Tokens: []string{}, TokenLogprobs: []*float64{}, TopLogprobs: []map[string]float64{}, TextOffset: []int{}}
	}
	for _, t := range tokens {
		s := tokenString(t.Bytes)
		var v *float64
		var top map[string]float64
		if !math.IsNaN(t.Logprob) {
			l := t.Logprob
			v = &l
			top = make(map[string]float64, len(t.Top))
			for _, alt := range t.Top {
				if alt.ID >= 0 {
					top[tokenString(alt.Bytes)] = alt.Logprob
				}
			}
		}
		lp.Tokens = append(lp.Tokens, s)
		lp.TokenLogprobs = append(lp.TokenLogprobs, v)
		lp.TopLogprobs = append(lp.TopLogprobs, top)
		lp.TextOffset = append(lp.TextOffset, lb.offset)
		lb.offset += utf8.RuneCountInString(s)
	}
	return lp
}
