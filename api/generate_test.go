package api

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"gpt2d/auth"
	"gpt2d/gpt2"
)

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }

func TestContentFilter(t *testing.T) {
	f, err := NewFilter(DefaultBlockedWords())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		prompt  string
		blocked bool
	}{
		{"I hate Mondays", true},
		{"HATE", true},
		{"Violence, again.", true},
		{"no-violence-here", true},
		{"whatever you say", false},
		{"hateful", false},
		{"chateau", false},
		{"nonviolence", false},
		{"ViolenceX", false},
		{"émotion hate", true},
		{"hateé", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := f.Blocked(tt.prompt); got != tt.blocked {
			t.Errorf("Blocked(%q) = %v, want %v", tt.prompt, got, tt.blocked)
		}
	}
	words, _ := ReadWords(strings.NewReader("# comment\n\nspam\n  bad phrase  \n"))
	f, _ = NewFilter(words)
	if !f.Blocked("a BAD PHRASE here") || !f.Blocked("spam!") || f.Blocked("comment") {
		t.Fatal("words file not applied")
	}
}

func TestBlockedPromptIsRefused(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	r := ts.postJSON("/generate", tok, map[string]any{"prompt": "Tell me about HATE"})
	wantDetail(t, r, 400, "Prompt contains inappropriate content")
	wantStatus(t, ts.postJSON("/generate", tok, map[string]any{"prompt": "whatever", "max_length": 12}), 200)
	if strings.Contains(ts.logs.String(), "Tell me about") {
		t.Fatal("prompt text logged at info level")
	}
}

// fakeGenerator lets tests control the engine's answers. Everything but
// Run is the real engine's, so requests take the production path
// (Prepare's tokenization and checks included) up to generation; generate
// sees the request as the API built it.
type fakeGenerator struct {
	*gpt2.Engine
	generate func(ctx context.Context, req gpt2.Request) (*gpt2.Result, error)
}

func newFake(generate func(ctx context.Context, req gpt2.Request) (*gpt2.Result, error)) *fakeGenerator {
	return &fakeGenerator{Engine: engine, generate: generate}
}

func (f *fakeGenerator) Run(ctx context.Context, p *gpt2.Prepared, _ func(gpt2.Chunk) error) (*gpt2.Result, error) {
	return f.generate(ctx, p.Request)
}
func (f *fakeGenerator) Info() gpt2.ModelInfo {
	return gpt2.ModelInfo{Name: "fake", NPositions: engine.Info().NPositions}
}
func (f *fakeGenerator) Stats() gpt2.Stats { return gpt2.Stats{} }

func TestEngineErrorsMapToHTTP(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		retry  bool
	}{
		{"queue full", gpt2.ErrQueueFull, 503, true},
		{"engine closed", gpt2.ErrClosed, 503, true},
		{"context too long", &gpt2.ContextLengthError{PromptTokens: 120, NewTokens: 80, Limit: 128}, 422, false},
		{"bad parameter", &gpt2.ParamError{Param: "max_length", Msg: "leaves no room"}, 422, false},
		{"deadline", context.DeadlineExceeded, 504, false},
	}
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts.srv.SetGenerator(newFake(func(context.Context, gpt2.Request) (*gpt2.Result, error) { return nil, tt.err }))
			r := ts.postJSON("/generate", tok, map[string]any{"prompt": "hello"})
			wantStatus(t, r, tt.status)
			if got := r.header.Get("Retry-After") != ""; got != tt.retry {
				t.Fatalf("Retry-After present = %v", got)
			}
		})
	}
}

func TestGenerationHasADeadlineAndMapsMaxLength(t *testing.T) {
	ts := start(t, func(c *Config, _ *auth.Config) { c.GenerateTimeout = 50 * time.Millisecond })
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	var got gpt2.Request
	var deadline time.Time
	var hasDeadline bool
	ts.srv.SetGenerator(newFake(func(ctx context.Context, req gpt2.Request) (*gpt2.Result, error) {
		got = req
		deadline, hasDeadline = ctx.Deadline()
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	// The engine's context carries the configured deadline, set while the
	// request was being handled: between sending it and its answer, plus
	// GenerateTimeout. No bound on how long that took.
	sent := time.Now()
	wantDetail(t, ts.postJSON("/generate", tok, map[string]any{"prompt": "slow", "max_length": 42}), 504, "Generation timed out")
	answered := time.Now()
	if !hasDeadline || deadline.Before(sent.Add(50*time.Millisecond)) || deadline.After(answered.Add(50*time.Millisecond)) {
		t.Fatalf("engine context deadline %v (set: %v), want GenerateTimeout after a moment in [%v, %v]", deadline, hasDeadline, sent, answered)
	}
	if got.MaxLength != 42 || got.Prompt != "slow" || got.MaxNewTokens != 0 {
		t.Fatalf("engine got %+v", got)
	}
}

func TestHealthIs503UntilModelLoaded(t *testing.T) {
	ts := start(t)
	ts.srv.gen.Store(nil)
	r := ts.get("/health", "")
	wantStatus(t, r, 503)
	ts.register("user", "userpassword", "", "")
	wantStatus(t, ts.postJSON("/generate", ts.login("user", "userpassword"), map[string]any{"prompt": "hi"}), 503)
	ts.srv.SetGenerator(engine)
	wantStatus(t, ts.get("/health", ""), 200)
}
