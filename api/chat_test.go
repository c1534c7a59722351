package api

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gpt2d/auth"
	"gpt2d/gpt2"
)

type chatCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message *struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"message"`
		Delta *struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		Logprobs *struct {
			Content []struct {
				Token       string  `json:"token"`
				Logprob     float64 `json:"logprob"`
				Bytes       []int   `json:"bytes"`
				TopLogprobs []struct {
					Token   string  `json:"token"`
					Logprob float64 `json:"logprob"`
				} `json:"top_logprobs"`
			} `json:"content"`
		} `json:"logprobs"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

func decodeChat(t *testing.T, b []byte) chatCompletion {
	t.Helper()
	var c chatCompletion
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return c
}

// streamChat runs a streamed chat completion and returns each choice's
// content, role and finish reason, and the usage chunk if any.
func streamChat(t *testing.T, ts *testServer, token string, body map[string]any) (contents, roles, finish []string, u *usage) {
	t.Helper()
	resp := ts.openStream("/v1/chat/completions", token, body, nil)
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
		c := decodeChat(t, []byte(ev.data))
		if c.Object != "chat.completion.chunk" || !strings.HasPrefix(c.ID, "chatcmpl-") {
			t.Fatalf("chunk %s", ev.data)
		}
		if c.Usage != nil {
			u = c.Usage
		}
		for _, ch := range c.Choices {
			for len(contents) <= ch.Index {
				contents, roles, finish = append(contents, ""), append(roles, ""), append(finish, "")
			}
			if ch.Delta == nil {
				t.Fatalf("chunk without delta: %s", ev.data)
			}
			if ch.Delta.Role != "" {
				roles[ch.Index] = ch.Delta.Role
			}
			if ch.Delta.Content != nil {
				contents[ch.Index] += *ch.Delta.Content
			}
			if ch.FinishReason != nil {
				finish[ch.Index] = *ch.FinishReason
			}
		}
	}
	return contents, roles, finish, u
}

func TestChatCompletionsStreamMatchesNonStreaming(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	body := map[string]any{"model": "gpt2-tiny", "n": 2, "max_completion_tokens": 20, "seed": 4,
		"messages": []any{
			map[string]any{"role": "system", "content": "Be brief."},
			map[string]any{"role": "user", "content": []any{map[string]any{"type": "text", "text": "Hello"}}},
			map[string]any{"role": "assistant", "content": "Hi."},
			map[string]any{"role": "user", "content": "Tell me more"},
		}}
	r := ts.postJSON("/v1/chat/completions", tok, body)
	wantStatus(t, r, 200)
	want := decodeChat(t, r.body)
	if want.Object != "chat.completion" || !strings.HasPrefix(want.ID, "chatcmpl-") || want.Model != "gpt2-tiny" || len(want.Choices) != 2 {
		t.Fatalf("chat completion %s", r.body)
	}
	for i, ch := range want.Choices {
		if ch.Index != i || ch.Message == nil || ch.Message.Role != "assistant" || ch.Message.Content == nil || ch.FinishReason == nil {
			t.Fatalf("choice %d: %s", i, r.body)
		}
		if strings.HasPrefix(*ch.Message.Content, " ") || strings.Contains(*ch.Message.Content, "\nUser:") {
			t.Fatalf("choice %d content %q: leading space or the next turn", i, *ch.Message.Content)
		}
	}
	// The prompt is the template's transcript, counted once for both choices.
	prompt := "Be brief.\n\nUser: Hello\nAssistant: Hi.\nUser: Tell me more\nAssistant:"
	if n := len(engine.Tokenize(prompt)); want.Usage == nil || want.Usage.PromptTokens != n {
		t.Fatalf("usage %+v, want %d prompt tokens", want.Usage, n)
	}
	body["stream"] = true
	body["stream_options"] = map[string]any{"include_usage": true}
	contents, roles, finish, u := streamChat(t, ts, tok, body)
	for i, ch := range want.Choices {
		if contents[i] != *ch.Message.Content || roles[i] != "assistant" || finish[i] != *ch.FinishReason {
			t.Fatalf("choice %d: streamed %q (%s, %s), non-streamed %q (%s)", i, contents[i], roles[i], finish[i], *ch.Message.Content, *ch.FinishReason)
		}
	}
	if u == nil || *u != *want.Usage {
		t.Fatalf("stream usage %+v, want %+v", u, want.Usage)
	}
}

func TestChatRendersTheTemplateAndStopsAtTheNextTurn(t *testing.T) {
	tmpl, err := NewChatTemplate(`{{range .Messages}}<{{.Role}}> {{.Content}}
{{end}}<bot>`, []string{"\n<"})
	if err != nil {
		t.Fatal(err)
	}
	ts := start(t, func(c *Config, _ *auth.Config) { c.ChatTemplate = tmpl })
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	var got gpt2.Request
	ts.srv.SetGenerator(newFake(func(_ context.Context, req gpt2.Request) (*gpt2.Result, error) {
		got = req
		return &gpt2.Result{Text: "  Hello there", CompletionTokens: 3, FinishReason: gpt2.FinishStop}, nil
	}))
	r := ts.postJSON("/v1/chat/completions", tok, map[string]any{"model": "fake", "max_tokens": 9, "max_completion_tokens": 7,
		"stop": "END", "messages": []any{map[string]any{"role": "developer", "content": "rules"}, map[string]any{"role": "user", "content": "hi"}}})
	wantStatus(t, r, 200)
	c := decodeChat(t, r.body)
	if got.Prompt != "<system> rules\n<user> hi\n<bot>" || got.MaxNewTokens != 7 || len(got.Stop) != 2 || got.Stop[0] != "\n<" || got.Stop[1] != "END" {
		t.Fatalf("engine got %+v", got)
	}
	if *c.Choices[0].Message.Content != "Hello there" || *c.Choices[0].FinishReason != "stop" {
		t.Fatalf("reply %s", r.body)
	}
	// /v1/models says how chat works.
	m := ts.get("/v1/models/fake", tok).json(t)
	chat, _ := m["chat"].(map[string]any)
	if m["base_model"] != true || chat["format"] != "plain-text" || chat["template"] != tmpl.Source() || chat["stop"].([]any)[0] != "\n<" {
		t.Fatalf("model %v", m)
	}
}

func TestChatLogprobs(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	r := ts.postJSON("/v1/chat/completions", tok, map[string]any{"model": "gpt2-tiny", "max_tokens": 6, "temperature": 0,
		"logprobs": true, "top_logprobs": 3, "messages": []any{map[string]any{"role": "user", "content": "Count"}}})
	wantStatus(t, r, 200)
	c := decodeChat(t, r.body)
	lp := c.Choices[0].Logprobs
	if lp == nil || len(lp.Content) != c.Usage.CompletionTokens {
		t.Fatalf("logprobs %s", r.body)
	}
	for i, e := range lp.Content {
		if e.Logprob > 0 || len(e.TopLogprobs) != 3 || len(e.Bytes) == 0 {
			t.Fatalf("token %d: %+v", i, e)
		}
		// Greedy: the token is the most likely one.
		if e.TopLogprobs[0].Logprob != e.Logprob {
			t.Fatalf("token %d (%q, %v) is not the top alternative %+v", i, e.Token, e.Logprob, e.TopLogprobs)
		}
	}
	// Without logprobs, none.
	r = ts.postJSON("/v1/chat/completions", tok, map[string]any{"model": "gpt2-tiny", "max_tokens": 3,
		"messages": []any{map[string]any{"role": "user", "content": "Count"}}})
	if c := decodeChat(t, r.body); c.Choices[0].Logprobs != nil {
		t.Fatalf("unasked logprobs: %s", r.body)
	}
}

func TestChatErrors(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	msgs := []any{map[string]any{"role": "user", "content": "hi"}}
	long := []any{map[string]any{"role": "user", "content": strings.Repeat("word ", 200)}}
	tests := []struct {
		name   string
		body   map[string]any
		status int
		param  any
		code   any
	}{
		{"no messages", map[string]any{"model": "gpt2-tiny"}, 400, "messages", nil},
		{"empty messages", map[string]any{"model": "gpt2-tiny", "messages": []any{}}, 400, "messages", nil},
		{"tool role", map[string]any{"model": "gpt2-tiny", "messages": []any{map[string]any{"role": "tool", "content": "x"}}}, 400, "messages", nil},
		{"image part", map[string]any{"model": "gpt2-tiny", "messages": []any{map[string]any{"role": "user",
			"content": []any{map[string]any{"type": "image_url", "image_url": map[string]any{"url": "x"}}}}}}, 400, "messages", nil},
		{"tools", map[string]any{"model": "gpt2-tiny", "messages": msgs, "tools": []any{map[string]any{"type": "function"}}}, 400, "tools", nil},
		{"json output", map[string]any{"model": "gpt2-tiny", "messages": msgs, "response_format": map[string]any{"type": "json_object"}}, 400, "response_format", nil},
		{"top_logprobs alone", map[string]any{"model": "gpt2-tiny", "messages": msgs, "top_logprobs": 2}, 400, "top_logprobs", nil},
		{"unknown model", map[string]any{"model": "gpt-4o", "messages": msgs}, 404, "model", "model_not_found"},
		{"blocked word", map[string]any{"model": "gpt2-tiny", "messages": []any{map[string]any{"role": "user", "content": "violence"}}}, 400, "messages", "content_filter"},
		{"context too long", map[string]any{"model": "gpt2-tiny", "messages": long, "max_tokens": 16}, 400, "prompt", "context_length_exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.postJSON("/v1/chat/completions", tok, tt.body)
			wantStatus(t, r, tt.status)
			var e struct {
				Error map[string]any `json:"error"`
			}
			if err := json.Unmarshal(r.body, &e); err != nil || e.Error["message"] == "" || e.Error["param"] != tt.param || e.Error["code"] != tt.code {
				t.Fatalf("error %s", r.body)
			}
		})
	}
}

func TestLoadChatTemplate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"template": "{{range .Messages}}### {{.Role}}\n{{.Content}}\n{{end}}### assistant\n", "stop": ["\n###"]}`)
	tmpl, err := LoadChatTemplate(good)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.Render([]ChatMessage{{Role: "user", Content: "hi"}})
	if err != nil || got != "### user\nhi\n### assistant\n" || tmpl.Stop()[0] != "\n###" {
		t.Fatalf("render %q, %v, stop %q", got, err, tmpl.Stop())
	}
	for name, content := range map[string]string{
		"syntax.json":  `{"template": "{{range .Messages}", "stop": []}`,
		"field.json":   `{"template": "{{.Nope}}", "stop": []}`,
		"missing.json": `{"stop": ["x"]}`,
		"unknown.json": `{"template": "x", "stops": ["x"]}`,
		"empty.json":   `{"template": "x", "stop": [""]}`,
		"notjson.json": `User: {{.Content}}`,
	} {
		if _, err := LoadChatTemplate(write(name, content)); err == nil {
			t.Errorf("%s loaded", name)
		}
	}
	if _, err := LoadChatTemplate(filepath.Join(dir, "absent.json")); err == nil {
		t.Error("absent file loaded")
	}
}
