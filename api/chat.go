package api

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"gpt2d/gpt2"
)

// This file is POST /v1/chat/completions. GPT-2 is a base model: the
// messages are rendered into a plain-text prompt by Config.ChatTemplate,
// and the reply stops at the template's next turn marker (see
// ChatTemplate). The reply's leading spaces — the model writes
// "Assistant: Hi" as "Assistant:" then " Hi" — are dropped.

// chatRequest is a parsed POST /v1/chat/completions body.
type chatRequest struct {
	model        string
	messages     []ChatMessage
	maxTokens    int // 0: as many as fit, up to the server's cap
	n            int
	stream       bool
	includeUsage bool
	logprobs     bool
	topLogprobs  int
	sampling     gpt2.Request // Temperature, TopK, TopP, Seed, Stop
}

func (s *Server) parseChat(c *fiber.Ctx) (*chatRequest, error) {
	b, err := parseJSON(c)
	if err != nil {
		return nil, err
	}
	b.dropNulls()
	lim := s.cfg.Generation
	r := &chatRequest{}
	r.model = b.str("model", true, 1, 0)
	r.messages = b.chatMessages("messages")
	r.maxTokens = b.integer("max_tokens", 0, 1, lim.MaxNewTokens)
	if b.has("max_completion_tokens") { // the newer name wins
		r.maxTokens = b.integer("max_completion_tokens", 0, 1, lim.MaxNewTokens)
	}
	r.n = b.integer("n", 1, 1, lim.MaxChoices)
	b.sampling(lim, 0, &r.sampling)
	r.stream, _ = b.boolean("stream")
	r.includeUsage = b.streamOptions()
	r.logprobs, _ = b.boolean("logprobs")
	r.topLogprobs = b.integer("top_logprobs", 0, 0, lim.MaxLogprobs)
	if r.topLogprobs > 0 && !r.logprobs {
		b.fail("top_logprobs", "value_error", "Value error, top_logprobs needs logprobs set to true", nil)
	}
	b.unsupported()
	b.chatUnsupported()
	return r, b.err()
}

// chatMessages reads OpenAI's messages: role and content, the content a
// string or a list of text parts.
func (b *body) chatMessages(name string) []ChatMessage {
	raw, ok := b.fields[name]
	if !ok {
		b.fail(name, "missing", "Field required", nil)
		return nil
	}
	var in []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		b.fail(name, "list_type", "Input should be a list of messages {role, content}", nil)
		return nil
	}
	if len(in) == 0 {
		b.fail(name, "too_short", "List should have at least 1 item after validation", map[string]any{"min_length": 1})
		return nil
	}
	out := make([]ChatMessage, len(in))
	for i, m := range in {
		switch m.Role {
		case "system", "user", "assistant":
			out[i].Role = m.Role
		case "developer":
			out[i].Role = "system"
		default:
			b.fail(name, "value_error", fmt.Sprintf("Value error, messages[%d]: role %q is not supported (system, developer, user, assistant)", i, m.Role), nil)
			return nil
		}
		text, ok := chatContent(m.Content)
		if !ok {
			b.fail(name, "value_error", fmt.Sprintf("Value error, messages[%d]: content should be a string or a list of text parts", i), nil)
			return nil
		}
		out[i].Content = text
	}
	return out
}

// chatContent reads a message's content: a string, null, or a list of
// {"type": "text", "text": …} parts, joined.
func chatContent(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return "", false
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "text" || p.Text == nil {
			return "", false
		}
		sb.WriteString(*p.Text)
	}
	return sb.String(), true
}

// chatUnsupported refuses chat options a base model cannot honour: tools
// and structured output.
func (b *body) chatUnsupported() {
	for _, name := range []string{"tools", "functions"} {
		if raw, ok := b.fields[name]; ok && string(raw) != "[]" {
			b.fail(name, "value_error", "Value error, "+name+" are not supported by this server (GPT-2 is a base model)", nil)
		}
	}
	if raw, ok := b.fields["response_format"]; ok {
		var f struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(raw, &f) != nil || f.Type != "text" {
			b.fail("response_format", "value_error", "Value error, only response_format {\"type\": \"text\"} is supported", nil)
		}
	}
}

type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}

type chatChoice struct {
	Index        int           `json:"index"`
	Message      *chatDelta    `json:"message,omitempty"`
	Delta        *chatDelta    `json:"delta,omitempty"`
	Logprobs     *chatLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
}

// chatDelta is a message, or in a stream the part of it a chunk adds.
type chatDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// chatLogprobs is OpenAI's chat logprobs object.
type chatLogprobs struct {
	Content []chatTokenLogprob `json:"content"`
}

type chatTokenLogprob struct {
	Token       string           `json:"token"`
	Logprob     float64          `json:"logprob"`
	Bytes       []int            `json:"bytes"`
	TopLogprobs []chatTopLogprob `json:"top_logprobs"`
}

type chatTopLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

func byteList(b []byte) []int {
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

func newChatLogprobs(tokens []gpt2.TokenLogprob) *chatLogprobs {
	lp := &chatLogprobs{Content: make([]chatTokenLogprob, 0, len(tokens))}
	for _, t := range tokens {
		e := chatTokenLogprob{Token: t.Text, Logprob: t.Logprob, Bytes: byteList(t.Bytes), TopLogprobs: []chatTopLogprob{}}
		for _, alt := range t.Top {
			if alt.ID >= 0 {
				e.TopLogprobs = append(e.TopLogprobs, chatTopLogprob{Token: alt.Text, Logprob: alt.Logprob, Bytes: byteList(alt.Bytes)})
			}
		}
		lp.Content = append(lp.Content, e)
	}
	return lp
}

// chatCompletions is POST /v1/chat/completions: parse, render the
// messages and prepare the prompt, admit, run, render.
func (s *Server) chatCompletions(c *fiber.Ctx) error {
	r, err := s.parseChat(c)
	if err != nil {
		return err
	}
	g, err := s.servedModel(r.model)
	if err != nil {
		return err
	}
	for _, m := range r.messages {
		if s.filter.Blocked(m.Content) {
			he := blockedError()
			he.param = "messages"
			return he
		}
	}
	prompt, err := s.cfg.ChatTemplate.Render(r.messages)
	if err != nil {
		return &httpError{status: fiber.StatusBadRequest, detail: "Messages cannot be rendered by the chat template", param: "messages", cause: err}
	}
	req := r.sampling
	req.Prompt = prompt
	req.MaxNewTokens = r.maxTokens
	req.Stop = append(s.cfg.ChatTemplate.Stop(), req.Stop...)
	req.Logprobs, req.TokenLogprobs = r.topLogprobs, r.logprobs
	req.CacheScope = s.cacheScope(c)
	p, err := g.Prepare(req)
	if err != nil {
		return s.openAIGenerateError(err)
	}
	if r.maxTokens == 0 {
		p.MaxNewTokens = min(p.MaxNewTokens, s.cfg.Generation.MaxNewTokens)
	}
	who := s.callerOf(c)
	if err := s.admit(&who, int64(len(p.IDs)+r.n*p.MaxNewTokens), r.n); err != nil {
		return err
	}
	choices := make([]choice, r.n)
	for k := range choices {
		cp := *p
		cp.Request.Seed = sampledSeed(p.Request.Seed, k)
		choices[k] = choice{p: &cp, chargePrompt: k == 0, promptTokens: len(p.IDs)}
	}
	gen := s.newGeneration(choices)
	gen.start(g, r.stream)
	id := newID("chatcmpl-")
	c.Locals(localsCompletionID, id)
	who.completionID = id
	out := &chatRender{s: s, r: r, gen: gen, started: make([]bool, r.n),
		resp: chatResponse{ID: id, Object: "chat.completion", Created: s.cfg.Now().Unix(), Model: s.modelName(g)}}
	detail := map[string]any{"messages": len(r.messages), "n": r.n, "max_tokens": p.MaxNewTokens}
	if r.stream {
		out.resp.Object = "chat.completion.chunk"
	}
	finish := func() { s.finish(gen, who, "chat", r.stream, detail) }
	return s.respond(c, gen, out, r.stream, finish, s.openAIGenerateError)
}

// chatRender renders a chat completion's choices, whole or as a stream.
type chatRender struct {
	s       *Server
	r       *chatRequest
	gen     *generation
	resp    chatResponse
	started []bool // per choice: its reply's leading spaces are behind
}

// reply drops the leading spaces of choice i's reply from text.
func (o *chatRender) reply(i int, text string) string {
	if o.started[i] {
		return text
	}
	text = strings.TrimLeft(text, " ")
	o.started[i] = text != ""
	return text
}

func (o *chatRender) complete() any {
	resp := o.resp
	for i := range o.gen.choices {
		res := o.gen.choices[i].res
		text := o.reply(i, res.Text)
		ch := chatChoice{Index: i, Message: &chatDelta{Role: "assistant", Content: &text}, FinishReason: openAIFinish(res.FinishReason)}
		if o.r.logprobs {
			ch.Logprobs = newChatLogprobs(res.Logprobs[:min(len(res.Logprobs), len(res.Tokens))])
		}
		resp.Choices = append(resp.Choices, ch)
	}
	resp.Usage = o.gen.usage()
	return resp
}

func (o *chatRender) send(w *sseWriter, choices ...chatChoice) error {
	chunk := o.resp
	chunk.Choices = choices
	return w.send("", chunk)
}

func (o *chatRender) open(w *sseWriter) error {
	empty := ""
	for i := range o.gen.choices {
		if err := o.send(w, chatChoice{Index: i, Delta: &chatDelta{Role: "assistant", Content: &empty}}); err != nil {
			return err
		}
	}
	return nil
}

func (o *chatRender) chunk(w *sseWriter, i int, c gpt2.Chunk) error {
	text := o.reply(i, c.Text)
	if text == "" && !o.r.logprobs {
		return nil // leading spaces, or tokens that only started a UTF-8 character
	}
	ch := chatChoice{Index: i, Delta: &chatDelta{Content: &text}}
	if o.r.logprobs {
		ch.Logprobs = newChatLogprobs(c.Logprobs)
	}
	return o.send(w, ch)
}

func (o *chatRender) end(w *sseWriter, i int, res *gpt2.Result) error {
	return o.send(w, chatChoice{Index: i, Delta: &chatDelta{}, FinishReason: openAIFinish(res.FinishReason)})
}

func (o *chatRender) fail(w *sseWriter, err error) { w.send("", o.s.openAIStreamError(err)) }

func (o *chatRender) close(w *sseWriter) error {
	return sendOpenAIEnd(w, o.gen, o.r.includeUsage, func(u *usage) any {
		chunk := o.resp
		chunk.Choices, chunk.Usage = []chatChoice{}, u
		return chunk
	})
}
