package api

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"gpt2d/gpt2"
)

type completion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Text         string  `json:"text"`
		Index        int     `json:"index"`
		FinishReason *string `json:"finish_reason"`
		Logprobs     *struct {
			Tokens        []string             `json:"tokens"`
			TokenLogprobs []*float64           `json:"token_logprobs"`
			TopLogprobs   []map[string]float64 `json:"top_logprobs"`
			TextOffset    []int                `json:"text_offset"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

func decodeCompletion(t *testing.T, b []byte) completion {
	t.Helper()
	var c completion
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return c
}

func TestCompletions(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")

	r := ts.postJSON("/v1/completions", tok, map[string]any{"model": "gpt2-tiny", "prompt": []string{"Hello", "The sky is"},
		"n": 2, "max_tokens": 12, "seed": 5, "user": "ignored"})
	wantStatus(t, r, 200)
	c := decodeCompletion(t, r.body)
	if c.Object != "text_completion" || !strings.HasPrefix(c.ID, "cmpl-") || c.Model != "gpt2-tiny" || len(c.Choices) != 4 {
		t.Fatalf("completion %s", r.body)
	}
	for i, ch := range c.Choices {
		if ch.Index != i || ch.FinishReason == nil || (*ch.FinishReason != "length" && *ch.FinishReason != "stop") || ch.Logprobs != nil {
			t.Fatalf("choice %d: %+v", i, ch)
		}
	}
	// Prompts count once each, whatever n.
	if c.Usage == nil || c.Usage.PromptTokens != 1+3 || c.Usage.TotalTokens != c.Usage.PromptTokens+c.Usage.CompletionTokens {
		t.Fatalf("usage %+v", c.Usage)
	}
	// The same seed gives the same choices; choice i uses seed + i, so the
	// two choices of a prompt differ.
	again := decodeCompletion(t, ts.postJSON("/v1/completions", tok, map[string]any{"model": "gpt2-tiny", "prompt": []string{"Hello", "The sky is"},
		"n": 2, "max_tokens": 12, "seed": 5}).body)
	for i := range c.Choices {
		if again.Choices[i].Text != c.Choices[i].Text {
			t.Fatalf("choice %d not reproducible: %q vs %q", i, again.Choices[i].Text, c.Choices[i].Text)
		}
	}
	if c.Choices[0].Text == c.Choices[1].Text {
		t.Fatalf("two choices of one prompt are identical: %q", c.Choices[0].Text)
	}

	// echo and logprobs.
	r = ts.postJSON("/v1/completions", tok, map[string]any{"model": "gpt2-tiny", "prompt": "Hello world", "max_tokens": 5,
		"logprobs": 3, "echo": true, "seed": 1, "temperature": 0})
	wantStatus(t, r, 200)
	c = decodeCompletion(t, r.body)
	ch := c.Choices[0]
	lp := ch.Logprobs
	prompt := len(engine.Tokenizer().Encode("Hello world"))
	if !strings.HasPrefix(ch.Text, "Hello world") || lp == nil || len(lp.Tokens) != prompt+c.Usage.CompletionTokens ||
		len(lp.TokenLogprobs) != len(lp.Tokens) || len(lp.TopLogprobs) != len(lp.Tokens) || len(lp.TextOffset) != len(lp.Tokens) {
		t.Fatalf("echo + logprobs: %s", r.body)
	}
	for i := range lp.Tokens {
		switch {
		case i == 0 && (lp.TokenLogprobs[i] != nil || lp.TopLogprobs[i] != nil):
			t.Fatalf("the first prompt token has logprobs: nothing precedes it")
		case i > 0 && (lp.TokenLogprobs[i] == nil || *lp.TokenLogprobs[i] > 0 || len(lp.TopLogprobs[i]) == 0 || len(lp.TopLogprobs[i]) > 3):
			t.Fatalf("token %d: %v %v", i, lp.TokenLogprobs[i], lp.TopLogprobs[i])
		case i > 0 && lp.TextOffset[i] < lp.TextOffset[i-1]:
			t.Fatalf("offsets go back: %v", lp.TextOffset)
		}
	}
	// Greedy decoding picks the most likely token, which is in its top list
	// with the same logprob.
	first := lp.Tokens[prompt]
	if v, ok := lp.TopLogprobs[prompt][first]; !ok || v != *lp.TokenLogprobs[prompt] {
		t.Fatalf("greedy token %q not the top one: %v", first, lp.TopLogprobs[prompt])
	}

	// A token-id prompt is the same prompt.
	ids := engine.Tokenizer().Encode("The sky is")
	byIDs := decodeCompletion(t, ts.postJSON("/v1/completions", tok, map[string]any{"model": "gpt2-tiny", "prompt": ids, "max_tokens": 8, "seed": 9}).body)
	byText := decodeCompletion(t, ts.postJSON("/v1/completions", tok, map[string]any{"model": "gpt2-tiny", "prompt": "The sky is", "max_tokens": 8, "seed": 9}).body)
	if byIDs.Choices[0].Text != byText.Choices[0].Text {
		t.Fatalf("ids %q vs text %q", byIDs.Choices[0].Text, byText.Choices[0].Text)
	}
}

// streamCompletion runs a streamed completion and returns each choice's
// text and finish reason, and the usage chunk if any.
func streamCompletion(t *testing.T, ts *testServer, token string, body map[string]any) (texts []string, finish []string, u *usage) {
	t.Helper()
	resp := ts.openStream("/v1/completions", token, body, nil)
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	events := readEvents(t, resp.Body)
	if len(events) == 0 || events[len(events)-1].data != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %+v", events)
	}
	for _, ev := range events[:len(events)-1] {
		c := decodeCompletion(t, []byte(ev.data))
		if c.Usage != nil {
			u = c.Usage
		}
		for _, ch := range c.Choices {
			for len(texts) <= ch.Index {
				texts, finish = append(texts, ""), append(finish, "")
			}
			if !utf8.ValidString(ch.Text) {
				t.Fatalf("chunk splits a character: %q", ch.Text)
			}
			texts[ch.Index] += ch.Text
			if ch.FinishReason != nil {
				finish[ch.Index] = *ch.FinishReason
			}
		}
	}
	return texts, finish, u
}

func TestCompletionsStreamMatchesNonStreaming(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	body := map[string]any{"model": "gpt2-tiny", "prompt": []string{"Once", "Twice upon"}, "n": 2, "max_tokens": 20, "seed": 11, "echo": true}
	want := decodeCompletion(t, ts.postJSON("/v1/completions", tok, body).body)
	body["stream"] = true
	body["stream_options"] = map[string]any{"include_usage": true}
	texts, finish, u := streamCompletion(t, ts, tok, body)
	if len(texts) != len(want.Choices) {
		t.Fatalf("%d streamed choices, want %d", len(texts), len(want.Choices))
	}
	for i, ch := range want.Choices {
		if texts[i] != ch.Text || finish[i] != *ch.FinishReason {
			t.Fatalf("choice %d: streamed %q (%s), non-streamed %q (%s)", i, texts[i], finish[i], ch.Text, *ch.FinishReason)
		}
	}
	if u == nil || *u != *want.Usage {
		t.Fatalf("stream usage %+v, want %+v", u, want.Usage)
	}
}

func TestOpenAIErrorShape(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	long := strings.Repeat("word ", 200)
	tests := []struct {
		name   string
		token  string
		body   any
		status int
		typ    string
		param  any
		code   any
	}{
		{"no credentials", "", map[string]any{"model": "gpt2-tiny", "prompt": "x"}, 401, "invalid_request_error", nil, "invalid_api_key"},
		{"bad credentials", "g2d_nope", map[string]any{"model": "gpt2-tiny", "prompt": "x"}, 401, "invalid_request_error", nil, "invalid_api_key"},
		{"unknown model", tok, map[string]any{"model": "gpt-4", "prompt": "x"}, 404, "invalid_request_error", "model", "model_not_found"},
		{"missing prompt", tok, map[string]any{"model": "gpt2-tiny"}, 400, "invalid_request_error", "prompt", nil},
		{"temperature out of range", tok, map[string]any{"model": "gpt2-tiny", "prompt": "x", "temperature": 3}, 400, "invalid_request_error", "temperature", nil},
		{"too many stops", tok, map[string]any{"model": "gpt2-tiny", "prompt": "x", "stop": []string{"a", "b", "c", "d", "e"}}, 400, "invalid_request_error", "stop", nil},
		{"too many choices", tok, map[string]any{"model": "gpt2-tiny", "prompt": []string{"a", "b", "c"}, "n": 3}, 400, "invalid_request_error", "n", nil},
		{"unsupported option", tok, map[string]any{"model": "gpt2-tiny", "prompt": "x", "presence_penalty": 1}, 400, "invalid_request_error", "presence_penalty", nil},
		{"context too long", tok, map[string]any{"model": "gpt2-tiny", "prompt": long, "max_tokens": 16}, 400, "invalid_request_error", "prompt", "context_length_exceeded"},
		{"blocked word", tok, map[string]any{"model": "gpt2-tiny", "prompt": "violence"}, 400, "invalid_request_error", "prompt", "content_filter"},
		{"not JSON", tok, "nope", 400, "invalid_request_error", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.postJSON("/v1/completions", tt.token, tt.body)
			wantStatus(t, r, tt.status)
			var e struct {
				Error map[string]any `json:"error"`
			}
			if err := json.Unmarshal(r.body, &e); err != nil || e.Error["message"] == "" {
				t.Fatalf("not an OpenAI error: %s", r.body)
			}
			if e.Error["type"] != tt.typ || e.Error["param"] != tt.param || e.Error["code"] != tt.code {
				t.Fatalf("error %v", e.Error)
			}
			for _, k := range []string{"message", "type", "param", "code"} {
				if _, ok := e.Error[k]; !ok {
					t.Fatalf("error lacks %s: %s", k, r.body)
				}
			}
		})
	}
}

func TestModels(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	r := ts.get("/v1/models", tok)
	wantStatus(t, r, 200)
	var list struct {
		Object string     `json:"object"`
		Data   []modelOut `json:"data"`
	}
	json.Unmarshal(r.body, &list)
	if list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != "gpt2-tiny" || list.Data[0].Object != "model" ||
		list.Data[0].ContextLength != 128 || list.Data[0].Created == 0 {
		t.Fatalf("models %s", r.body)
	}
	wantStatus(t, ts.get("/v1/models/gpt2-tiny", tok), 200)
	wantStatus(t, ts.get("/v1/models/gpt-4", tok), 404)
}

func TestCompletionsLogprobsZeroAndPromptScoring(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")

	// logprobs: 0 gives each sampled token's logprob and no alternatives.
	r := ts.postJSON("/v1/completions", tok, map[string]any{"model": "gpt2-tiny", "prompt": "Hello", "max_tokens": 5, "logprobs": 0, "seed": 2})
	wantStatus(t, r, 200)
	c := decodeCompletion(t, r.body)
	lp := c.Choices[0].Logprobs
	if lp == nil || len(lp.Tokens) != c.Usage.CompletionTokens || len(lp.TokenLogprobs) != len(lp.Tokens) {
		t.Fatalf("logprobs 0: %s", r.body)
	}
	for i := range lp.Tokens {
		if lp.TokenLogprobs[i] == nil || *lp.TokenLogprobs[i] > 0 || len(lp.TopLogprobs[i]) != 0 {
			t.Fatalf("token %d: %v %v", i, lp.TokenLogprobs[i], lp.TopLogprobs[i])
		}
	}
	// Streamed too.
	body := map[string]any{"model": "gpt2-tiny", "prompt": "Hello", "max_tokens": 5, "logprobs": 0, "seed": 2, "stream": true}
	resp := ts.openStream("/v1/completions", tok, body, nil)
	streamedTokens := 0
	for _, ev := range readEvents(t, resp.Body) {
		if ev.data == "[DONE]" {
			continue
		}
		for _, ch := range decodeCompletion(t, []byte(ev.data)).Choices {
			if ch.Logprobs != nil {
				streamedTokens += len(ch.Logprobs.Tokens)
			}
		}
	}
	resp.Body.Close()
	if streamedTokens != c.Usage.CompletionTokens {
		t.Fatalf("streamed %d token logprobs, want %d", streamedTokens, c.Usage.CompletionTokens)
	}

	// max_tokens 0 with echo scores the prompt and generates nothing.
	prompt := "The sky is blue today"
	ids := engine.Tokenize(prompt)
	r = ts.postJSON("/v1/completions", tok, map[string]any{"model": "gpt2-tiny", "prompt": prompt, "max_tokens": 0, "echo": true, "logprobs": 2})
	wantStatus(t, r, 200)
	c = decodeCompletion(t, r.body)
	ch := c.Choices[0]
	if ch.Text != prompt || *ch.FinishReason != "length" || c.Usage.CompletionTokens != 0 || c.Usage.PromptTokens != len(ids) ||
		len(ch.Logprobs.Tokens) != len(ids) || ch.Logprobs.TokenLogprobs[0] != nil {
		t.Fatalf("prompt scoring: %s", r.body)
	}
	// The scores are the engine's, as Score gives them.
	p, err := engine.Prepare(gpt2.Request{PromptIDs: ids, ScoreOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	scores, err := engine.Score(t.Context(), p, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(ids); i++ {
		if got := *ch.Logprobs.TokenLogprobs[i]; got != scores[i].Logprob || len(ch.Logprobs.TopLogprobs[i]) != 2 {
			t.Fatalf("token %d: %v, engine %v", i, got, scores[i].Logprob)
		}
	}
	// Without logprobs it is the prompt echoed; without echo it is refused.
	r = ts.postJSON("/v1/completions", tok, map[string]any{"model": "gpt2-tiny", "prompt": prompt, "max_tokens": 0, "echo": true})
	if c := decodeCompletion(t, r.body); r.status != 200 || c.Choices[0].Text != prompt || c.Choices[0].Logprobs != nil {
		t.Fatalf("echo only: %d %s", r.status, r.body)
	}
	r = ts.postJSON("/v1/completions", tok, map[string]any{"model": "gpt2-tiny", "prompt": prompt, "max_tokens": 0})
	wantStatus(t, r, 400)
}
