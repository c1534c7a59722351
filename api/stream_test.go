package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gpt2d/auth"
	"gpt2d/gpt2"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	name string // "" for the default ("message")
	data string
}

// readEvents parses an event stream until EOF.
func readEvents(t testing.TB, r io.Reader) []sseEvent {
	t.Helper()
	var out []sseEvent
	var ev sseEvent
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			out = append(out, ev)
			ev = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data += strings.TrimPrefix(line, "data: ")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading stream: %v", err)
	}
	return out
}

// openStream posts a JSON body and returns the response unread.
func (ts *testServer) openStream(path, token string, body any, header http.Header) *http.Response {
	ts.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", ts.url+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := ts.http.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	return resp
}

// streamGenerate runs a streamed /generate and returns the prompt plus
// every delta, and the final event.
func streamGenerate(t *testing.T, ts *testServer, token string, body map[string]any, header http.Header) (string, map[string]any) {
	t.Helper()
	resp := ts.openStream("/generate", token, body, header)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	events := readEvents(t, resp.Body)
	if len(events) == 0 || events[len(events)-1].name != "done" {
		t.Fatalf("stream does not end with a done event: %+v", events)
	}
	text := body["prompt"].(string)
	for _, ev := range events[:len(events)-1] {
		var d struct{ Text string }
		if ev.name != "" || json.Unmarshal([]byte(ev.data), &d) != nil || d.Text == "" {
			t.Fatalf("bad delta event %+v", ev)
		}
		text += d.Text
	}
	var done map[string]any
	json.Unmarshal([]byte(events[len(events)-1].data), &done)
	return text, done
}

func TestStreamDeliversTheSameTextAsNonStreaming(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	for _, seed := range []uint64{1, 42, 1 << 63} {
		body := map[string]any{"prompt": "Once upon a time", "max_new_tokens": 40, "seed": seed}
		r := ts.postJSON("/generate", tok, body)
		wantStatus(t, r, 200)
		want := r.json(t)

		streamed, done := streamGenerate(t, ts, tok, withField(body, "stream", true), nil)
		if streamed != want["generated_text"] {
			t.Fatalf("seed %d: streamed %q, non-streamed %q", seed, streamed, want["generated_text"])
		}
		usage := want["usage"].(map[string]any)
		if done["finish_reason"] != want["finish_reason"] || done["completion_tokens"] != usage["completion_tokens"] ||
			done["prompt_tokens"] != usage["prompt_tokens"] || done["model"] != "gpt2-tiny" {
			t.Fatalf("seed %d: done %v, non-streamed %v", seed, done, want)
		}
		// Accept: text/event-stream asks for the same stream.
		viaAccept, _ := streamGenerate(t, ts, tok, body, http.Header{"Accept": {"text/event-stream"}})
		if viaAccept != streamed {
			t.Fatalf("seed %d: Accept stream %q differs", seed, viaAccept)
		}
	}

	// With a stop string taken from the text, both end before it.
	body := map[string]any{"prompt": "Once upon a time", "max_new_tokens": 40, "seed": 7}
	full := ts.postJSON("/generate", tok, body).json(t)["generated_text"].(string)
	cont := []rune(strings.TrimPrefix(full, "Once upon a time"))
	stop := string(cont[len(cont)/2 : len(cont)/2+2])
	body["stop"] = stop
	r := ts.postJSON("/generate", tok, body).json(t)
	streamed, done := streamGenerate(t, ts, tok, withField(body, "stream", true), nil)
	if r["finish_reason"] != "stop" || done["finish_reason"] != "stop" || streamed != r["generated_text"] ||
		strings.Contains(strings.TrimPrefix(streamed, "Once upon a time"), stop) {
		t.Fatalf("stop %q: non-streamed %v, streamed %q (%v)", stop, r, streamed, done)
	}
}

func withField(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{k: v}
	for key, val := range m {
		out[key] = val
	}
	return out
}

// pacedGenerator emits one token every interval until cancelled, and
// counts what it emits: a stand-in for a slow model, so a test can tell
// "stopped" from "finished".
type pacedGenerator struct {
	*gpt2.Engine // everything but Run
	interval     time.Duration
	active       atomic.Int64
	emitted      atomic.Int64
	ended        chan error
	tokens       int // tokens to produce before finishing (0: 100 000)
}

func newPaced(interval time.Duration, tokens int) *pacedGenerator {
	return &pacedGenerator{Engine: engine, interval: interval, ended: make(chan error, 16), tokens: tokens}
}

func (p *pacedGenerator) Run(ctx context.Context, _ *gpt2.Prepared, emit func(gpt2.Chunk) error) (*gpt2.Result, error) {
	p.active.Add(1)
	defer p.active.Add(-1)
	n := p.tokens
	if n == 0 {
		n = 100_000
	}
	start := time.Now()
	for i := range n {
		select {
		case <-ctx.Done():
			p.ended <- ctx.Err()
			return nil, ctx.Err()
		case <-time.After(p.interval):
		}
		if emit != nil {
			if err := emit(gpt2.Chunk{Text: "x", Tokens: []int{i}}); err != nil {
				p.ended <- err
				return nil, err
			}
		}
		p.emitted.Add(1)
	}
	p.ended <- nil
	return &gpt2.Result{Text: strings.Repeat("x", n), PromptTokens: 1, CompletionTokens: n, FinishReason: gpt2.FinishLength,
		TimeToFirstToken: p.interval, Duration: time.Since(start)}, nil
}

func (p *pacedGenerator) Info() gpt2.ModelInfo { return gpt2.ModelInfo{Name: "paced"} }
func (p *pacedGenerator) Stats() gpt2.Stats {
	return gpt2.Stats{Active: int(p.active.Load()), Slots: 1}
}

func TestStreamStopsGeneratingWhenTheClientDisconnects(t *testing.T) {
	ts := start(t)
	admin := ts.admin("root")
	paced := newPaced(20*time.Millisecond, 0)
	ts.srv.SetGenerator(paced)

	// A raw connection, so that the client can reset it: the server then
	// learns of the disconnect from the reset its next write meets, not
	// from a reply to that write, which would leave the count of writes
	// that still succeed to the scheduling of a loaded machine.
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"prompt": "go on forever", "stream": true}`
	fmt.Fprintf(conn, "POST /generate HTTP/1.1\r\nHost: gpt2d\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		admin, len(body), body)
	rd := bufio.NewReader(conn)
	for events := 0; events < 3; { // a few events arrive…
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data: ") {
			events++
		}
	}
	conn.(*net.TCPConn).SetLinger(0) // …then the client goes away mid-stream.
	conn.Close()
	atDisconnect := paced.emitted.Load()

	select {
	case err := <-paced.ended:
		if err == nil {
			t.Fatal("generation ran to completion")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("generation still running long after the client left")
	}
	// The active-sequences gauge drops to 0 too.
	waitUntil(t, func() bool { return scrape(t, ts, admin).value(t, "gpt2d_active_sequences") == 0 })
	extra := paced.emitted.Load() - atDisconnect
	t.Logf("tokens emitted after the disconnect: %d", extra)
	// The bound is structural, not a matter of speed: the generator runs
	// ahead of the stream writer by at most the events buffer (one choice:
	// 5 events) plus the one it is sending, and the writer's first write
	// after the reset fails (or its second, if the first was under way).
	// A slower machine only stretches the time, never the count; the
	// generator would go on forever.
	if budget := int64(5 + 1 + 2); extra > budget {
		t.Fatalf("%d tokens generated after the client left (budget %d)", extra, budget)
	}
	// The stream writer records the generation after the generator has
	// returned: wait for it rather than race it.
	waitUntil(t, func() bool {
		return scrape(t, ts, admin).counter(t, "gpt2d_generations_total", "endpoint", "generate", "finish_reason", "cancelled") == 1
	})
}

func TestStreamDisconnectFreesTheEngineSlot(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	resp := ts.openStream("/generate", tok, map[string]any{"prompt": "Hello", "max_new_tokens": 120, "stream": true}, nil)
	rd := bufio.NewReader(resp.Body)
	if _, err := rd.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitUntil(t, func() bool { return engine.Stats().Active == 0 })
	wantStatus(t, ts.postJSON("/generate", tok, map[string]any{"prompt": "Still serving", "max_new_tokens": 5}), 200)
}

func TestStreamOutlivesTheWriteTimeout(t *testing.T) {
	// The stream lasts at least 1.5 write timeouts (15 tokens a tenth of
	// one apart; a slow machine only makes it longer), while the gap
	// between two writes stays far below one: the writer must move the
	// deadline forward for each event.
	const timeout = time.Second
	ts := start(t, func(c *Config, _ *auth.Config) { c.WriteTimeout = timeout })
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	ts.srv.SetGenerator(newPaced(timeout/10, 15))
	text, done := streamGenerate(t, ts, tok, map[string]any{"prompt": "slow", "stream": true}, nil)
	if text != "slow"+strings.Repeat("x", 15) || done["finish_reason"] != "length" {
		t.Fatalf("stream cut short: %q %v", text, done)
	}
}

func TestStreamErrorsBeforeTheFirstTokenKeepTheirStatus(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	ts.srv.SetGenerator(newFake(func(context.Context, gpt2.Request) (*gpt2.Result, error) { return nil, gpt2.ErrQueueFull }))
	resp := ts.openStream("/generate", tok, map[string]any{"prompt": "hello", "stream": true}, nil)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), `"detail"`) {
		t.Fatalf("queue full on a stream: %d %s", resp.StatusCode, b)
	}
}

func TestSamplingControlsReachTheEngine(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	var got gpt2.Request
	ts.srv.SetGenerator(newFake(func(_ context.Context, req gpt2.Request) (*gpt2.Result, error) {
		got = req
		return &gpt2.Result{Text: "!", FinishReason: gpt2.FinishStop}, nil
	}))
	r := ts.postJSON("/generate", tok, map[string]any{"prompt": "hi", "max_new_tokens": 7, "temperature": 0.5, "top_k": 3,
		"top_p": "0.9", "seed": uint64(1<<64 - 1), "stop": []string{"\n", "END"}})
	wantStatus(t, r, 200)
	if got.MaxNewTokens != 7 || got.Temperature != 0.5 || got.TopK != 3 || got.TopP != 0.9 || got.Seed == nil ||
		*got.Seed != 1<<64-1 || len(got.Stop) != 2 || got.Stop[1] != "END" || got.MaxLength != 50 {
		t.Fatalf("engine got %+v", got)
	}
	ts.postJSON("/generate", tok, map[string]any{"prompt": "hi", "stop": "only"})
	if len(got.Stop) != 1 || got.Stop[0] != "only" || got.TopK != defaultTopK || got.Temperature != defaultTemperature || got.Seed != nil {
		t.Fatalf("defaults: engine got %+v", got)
	}
}

func TestSamplingControlsOutOfRangeAre422(t *testing.T) {
	ts := start(t, func(c *Config, _ *auth.Config) {
		c.Generation = GenerationLimits{MaxNewTokens: 64, MaxTemperature: 1.5}
	})
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	tests := []struct {
		field string
		value any
		typ   string
	}{
		{"max_new_tokens", 0, "greater_than_equal"},
		{"max_new_tokens", 65, "less_than_equal"}, // the server's cap
		{"temperature", -0.1, "greater_than_equal"},
		{"temperature", 1.6, "less_than_equal"}, // the server's cap
		{"temperature", "hot", "float_type"},
		{"top_k", -1, "greater_than_equal"},
		{"top_p", 0, "greater_than"},
		{"top_p", 1.01, "less_than_equal"},
		{"seed", -1, "greater_than_equal"},
		{"seed", 1.5, "int_type"},
		{"seed", 18446744073709551616.0, "less_than_equal"},
		{"stop", []string{"a", "b", "c", "d", "e"}, "too_long"},
		{"stop", "", "value_error"},
		{"stop", strings.Repeat("s", 257), "value_error"},
		{"stop", 3, "list_type"},
		{"stream", "yes", "bool_type"},
	}
	for _, tt := range tests {
		r := ts.postJSON("/generate", tok, map[string]any{"prompt": "hi", tt.field: tt.value})
		wantStatus(t, r, 422)
		d := r.detail(t).([]any)[0].(map[string]any)
		if loc := d["loc"].([]any); loc[1] != tt.field || d["type"] != tt.typ {
			t.Errorf("%s=%v: %v", tt.field, tt.value, d)
		}
	}
}

// waitUntil polls cond until it holds; the deadline is generous because
// it only bounds a failure, never a success.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestShutdownLetsStreamsFinish(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	ts.srv.SetGenerator(newPaced(20*time.Millisecond, 20))
	resp := ts.openStream("/generate", tok, map[string]any{"prompt": "drain", "stream": true}, nil)
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	if _, err := rd.ReadString('\n'); err != nil { // the stream is running
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		shut <- ts.srv.Shutdown(ctx)
	}()
	events := readEvents(t, rd)
	if len(events) == 0 || events[len(events)-1].name != "done" {
		t.Fatalf("stream cut by shutdown: %+v", events)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	// Its usage was stored before Shutdown returned.
	want := int64(len(engine.Tokenize("drain")) + 20) // the prompt as Prepare counted it, and the paced tokens
	if n, _ := ts.db.DayTokens(1, ts.clock.Now()); n != want {
		t.Fatalf("stored tokens %d, want %d", n, want)
	}
}
