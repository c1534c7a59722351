package gpt2

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
)

func newTinyEngine(t *testing.T, cfg EngineConfig) (*Model, *Engine) {
	t.Helper()
	return newTinyEngineThreads(t, cfg, 0)
}

// newTinyEngineThreads is newTinyEngine on a pool of the given number of
// workers (0: GOMAXPROCS).
func newTinyEngineThreads(t *testing.T, cfg EngineConfig, threads int) (*Model, *Engine) {
	t.Helper()
	m, err := LoadWithOptions(tinyDir, Options{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	e := NewEngine(m, cfg)
	t.Cleanup(e.Close)
	return m, e
}

func seed(v uint64) *uint64 { return &v }

func TestConcurrentRequestsMatchSequential(t *testing.T) {
	_, e := newTinyEngine(t, EngineConfig{Slots: 4, PrefillChunk: 8})
	ref := loadReference(t)
	reqs := []Request{}
	for _, p := range ref.Prompts {
		reqs = append(reqs, Request{PromptIDs: p.IDs, MaxNewTokens: 12, IgnoreEOS: true})
		reqs = append(reqs, Request{PromptIDs: p.IDs, MaxNewTokens: 15, Temperature: 0.9, TopK: 50, TopP: 0.95, Seed: seed(7), IgnoreEOS: true})
	}
	want := make([][]int, len(reqs))
	for i, r := range reqs {
		res, err := e.Generate(t.Context(), r, nil)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = res.Tokens
	}
	var wg sync.WaitGroup
	for round := 0; round < 2; round++ {
		for i, r := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := e.Generate(t.Context(), r, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if !equalInts(res.Tokens, want[i]) {
					t.Errorf("request %d batched with others gave %v, alone %v", i, res.Tokens, want[i])
				}
			}()
		}
	}
	wg.Wait()
	if st := e.Stats(); st.Active != 0 || st.Queued != 0 {
		t.Errorf("after all requests: %+v", st)
	}
}

// TestBatchedDecodeMatchesSeparate: eight different prompts decoded
// together in shared steps give, token for token, what each gives alone.
func TestBatchedDecodeMatchesSeparate(t *testing.T) {
	m, e := newTinyEngineThreads(t, EngineConfig{Slots: 8}, 2)
	prompts := loadReference(t).Prompts
	const n = 8
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = Request{PromptIDs: prompts[i%len(prompts)].IDs[i/len(prompts):], MaxNewTokens: 16, IgnoreEOS: true}
		if i%2 == 1 {
			reqs[i].Temperature, reqs[i].TopK, reqs[i].Seed = 0.8, 40, seed(uint64(i))
		}
	}
	alone := make([][]int, n)
	for i, r := range reqs {
		res, err := e.Generate(t.Context(), r, nil)
		if err != nil {
			t.Fatal(err)
		}
		alone[i] = res.Tokens
	}
	// Hold the scheduler in its first step until all eight have arrived, so
	// they run together however slowly their goroutines start.
	stepsBefore := e.Stats().Steps
	release := holdPool(t, m)
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.Generate(t.Context(), r, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if !equalInts(res.Tokens, alone[i]) {
				t.Errorf("prompt %d batched: %v, alone: %v", i, res.Tokens, alone[i])
			}
		}()
	}
	waitFor(t, func() bool { st := e.Stats(); return st.Active+st.Queued == n }, "all eight requests to arrive")
	release()
	wg.Wait()
	// Alone, the 8 requests took at least 8×16 steps; batched they share.
	if steps := e.Stats().Steps - stepsBefore; steps >= n*16 {
		t.Errorf("8 concurrent requests took %d steps: not batched", steps)
	}
}

func TestSamplingIsReproducibleWithSeed(t *testing.T) {
	_, e := newTinyEngine(t, EngineConfig{})
	r := Request{Prompt: "Hello, my name is", MaxNewTokens: 20, Temperature: 1.2, TopP: 0.9, Seed: seed(42), IgnoreEOS: true}
	a, err := e.Generate(t.Context(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := e.Generate(t.Context(), r, nil)
	if !equalInts(a.Tokens, b.Tokens) {
		t.Errorf("same seed, different tokens: %v vs %v", a.Tokens, b.Tokens)
	}
	r.Seed = seed(43)
	c, _ := e.Generate(t.Context(), r, nil)
	if equalInts(a.Tokens, c.Tokens) {
		t.Errorf("different seeds gave identical samples %v", a.Tokens)
	}
	// top_k=1 is greedy whatever the temperature.
	g, _ := e.Generate(t.Context(), Request{Prompt: "Hello, my name is", MaxNewTokens: 10, IgnoreEOS: true}, nil)
	k1, _ := e.Generate(t.Context(), Request{Prompt: "Hello, my name is", MaxNewTokens: 10, Temperature: 5, TopK: 1, Seed: seed(1), IgnoreEOS: true}, nil)
	if !equalInts(g.Tokens, k1.Tokens) {
		t.Errorf("top_k=1 %v differs from greedy %v", k1.Tokens, g.Tokens)
	}
}

func TestStreamingDeliversSameText(t *testing.T) {
	_, e := newTinyEngine(t, EngineConfig{})
	ref := loadReference(t)
	for _, p := range ref.Prompts {
		var sb strings.Builder
		n := 0
		res, err := e.Generate(t.Context(), Request{PromptIDs: p.IDs, MaxNewTokens: 20, Temperature: 0.7, Seed: seed(3), IgnoreEOS: true}, func(c Chunk) error {
			if !utf8ValidString(c.Text) {
				t.Errorf("%s: chunk %q is not valid UTF-8", p.Name, c.Text)
			}
			sb.WriteString(c.Text)
			n += len(c.Tokens)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if sb.String() != res.Text || n != res.CompletionTokens {
			t.Errorf("%s: streamed %q (%d tokens), result %q (%d tokens)", p.Name, sb.String(), n, res.Text, res.CompletionTokens)
		}
	}
}

func utf8ValidString(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestStopSequence(t *testing.T) {
	m, e := newTinyEngine(t, EngineConfig{})
	p := loadReference(t).Prompts[0]
	full := m.Tokenizer.Decode(p.Greedy.IDs)
	// Stop on a word in the middle of the greedy continuation.
	stop := " governor"
	cut := strings.Index(full, stop)
	if cut < 0 {
		t.Fatalf("fixture continuation %q lacks %q", full, stop)
	}
	var streamed strings.Builder
	res, err := e.Generate(t.Context(), Request{PromptIDs: p.IDs, MaxNewTokens: 20, Stop: []string{"never", stop}}, func(c Chunk) error {
		streamed.WriteString(c.Text)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.FinishReason != FinishStop || res.Text != full[:cut] || streamed.String() != full[:cut] {
		t.Errorf("finish %s, text %q, streamed %q; want stop, %q", res.FinishReason, res.Text, streamed.String(), full[:cut])
	}
}

func TestLengthLimits(t *testing.T) {
	m, e := newTinyEngine(t, EngineConfig{})
	P := m.Config.NPositions
	long := make([]int, P)
	for i := range long {
		long[i] = 464
	}
	cases := []struct {
		name string
		req  Request
		want func(error) bool
	}{
		{"prompt fills context", Request{PromptIDs: long, MaxNewTokens: 1}, isContextErr},
		{"too many new tokens", Request{Prompt: "Hello", MaxNewTokens: P}, isContextErr},
		{"max_length below prompt", Request{Prompt: "Hello, my name is", MaxLength: 3}, paramErr("max_length")},
		{"negative temperature", Request{Prompt: "Hi", Temperature: -1}, paramErr("temperature")},
		{"top_p above 1", Request{Prompt: "Hi", TopP: 1.5}, paramErr("top_p")},
		{"negative top_k", Request{Prompt: "Hi", TopK: -2}, paramErr("top_k")},
		{"empty stop", Request{Prompt: "Hi", Stop: []string{""}}, paramErr("stop")},
		{"bad token id", Request{PromptIDs: []int{1 << 30}}, paramErr("prompt")},
	}
	for _, c := range cases {
		_, err := e.Generate(t.Context(), c.req, nil)
		if !c.want(err) {
			t.Errorf("%s: got %v", c.name, err)
		}
	}
	// An empty prompt starts at <|endoftext|>, as GPT-2's unconditional
	// samples and OpenAI's API do.
	p, err := e.Prepare(Request{MaxNewTokens: 3})
	if err != nil || len(p.IDs) != 1 || p.IDs[0] != m.Tokenizer.EOS() || p.MaxNewTokens != 3 {
		t.Errorf("empty prompt prepared as %+v, %v", p, err)
	}
	// A score-only request needs room for its prompt alone.
	if _, err := e.Prepare(Request{PromptIDs: long, ScoreOnly: true}); err != nil {
		t.Errorf("score-only prompt filling the context: %v", err)
	}
	if _, err := e.Prepare(Request{PromptIDs: append(long, 464), ScoreOnly: true}); !isContextErr(err) {
		t.Errorf("score-only prompt past the context: %v", err)
	}
	// max_length counts the prompt, as Hugging Face pipelines do.
	ids := m.Tokenizer.Encode("Hello, my name is")
	res, err := e.Generate(t.Context(), Request{Prompt: "Hello, my name is", MaxLength: len(ids) + 7, IgnoreEOS: true}, nil)
	if err != nil || res.CompletionTokens != 7 || res.FinishReason != FinishLength || res.PromptTokens != len(ids) {
		t.Errorf("max_length: %+v, %v", res, err)
	}
}

func isContextErr(err error) bool {
	var ce *ContextLengthError
	return errors.As(err, &ce)
}

func paramErr(name string) func(error) bool {
	return func(err error) bool {
		var pe *ParamError
		return errors.As(err, &pe) && pe.Param == name
	}
}

func TestCancellationFreesSlot(t *testing.T) {
	m, e := newTinyEngine(t, EngineConfig{Slots: 1})
	ctx, cancel := context.WithCancel(t.Context())
	got := 0
	_, err := e.Generate(ctx, Request{Prompt: "Hello", MaxNewTokens: m.Config.NPositions - 2, IgnoreEOS: true}, func(c Chunk) error {
		got += len(c.Tokens)
		if got >= 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled generation returned %v", err)
	}
	// The only slot must come free for the next request.
	done := make(chan error, 1)
	go func() {
		_, err := e.Generate(t.Context(), Request{Prompt: "Hello", MaxNewTokens: 2}, nil)
		done <- err
	}()
	if err := await(t, done, "the slot to be freed after cancellation"); err != nil {
		t.Fatal(err)
	}
	// An emit error stops generation and is returned.
	boom := errors.New("client went away")
	_, err = e.Generate(t.Context(), Request{Prompt: "Hello", MaxNewTokens: 50, IgnoreEOS: true}, func(Chunk) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("emit error: got %v", err)
	}
}

// TestQueueFull: with the one slot busy and the queue of one taken, every
// further request is refused at once with ErrQueueFull; the two accepted
// complete. The scheduler is held inside its first step (holdPool) while
// the requests arrive, so no request can finish early and free a place,
// however the goroutines are scheduled.
func TestQueueFull(t *testing.T) {
	m, e := newTinyEngineThreads(t, EngineConfig{Slots: 1, QueueSize: 1}, 2)
	req := Request{Prompt: "Hello", MaxNewTokens: 5, IgnoreEOS: true}
	generate := func() <-chan error {
		done := make(chan error, 1)
		go func() {
			_, err := e.Generate(t.Context(), req, nil)
			done <- err
		}()
		return done
	}
	release := holdPool(t, m)
	running := generate()
	waitFor(t, func() bool { return e.Stats().Active == 1 }, "the first request to take the slot")
	queued := generate()
	waitFor(t, func() bool { return e.Stats().Queued == 1 }, "the second request to wait in the queue")
	for i := range 14 {
		if _, err := e.Generate(t.Context(), req, nil); !errors.Is(err, ErrQueueFull) {
			t.Errorf("request %d with the slot and the queue taken: %v, want ErrQueueFull", i+3, err)
		}
	}
	release()
	for _, done := range []<-chan error{running, queued} {
		if err := await(t, done, "the accepted requests to complete"); err != nil {
			t.Errorf("accepted request: %v", err)
		}
	}
	if st := e.Stats(); st.Active != 0 || st.Queued != 0 {
		t.Errorf("after all requests: %+v", st)
	}
}

func TestEOSStopsGeneration(t *testing.T) {
	m, e := newTinyEngine(t, EngineConfig{})
	eos := m.Tokenizer.EOS()
	// Find a prompt whose greedy continuation hits EOS by forcing it:
	// generating from EOS-heavy context is model dependent, so instead
	// check the sampler path directly through a one-token vocabulary bias.
	s := &seq{cache: m.NewKVCache(), samp: newSampler(m.Config.VocabSize)}
	j := &genJob{ctx: t.Context(), prompt: []int{1}, maxNew: 5, notify: make(chan struct{}, 1)}
	s.start(j, m.Tokenizer)
	logits := make([]float32, m.Config.VocabSize)
	logits[eos] = 10
	if res := s.advance(logits, m); res == nil || res.FinishReason != FinishEOS || res.CompletionTokens != 0 {
		t.Errorf("EOS: %+v", res)
	}
	_ = e
}

func TestScoreMatchesReference(t *testing.T) {
	// Slots 2 and a small prefill chunk: prompts are scored in several
	// chunks, beside each other and beside a generation.
	_, e := newTinyEngine(t, EngineConfig{Slots: 2, PrefillChunk: 3})
	bg := make(chan error, 1)
	go func() {
		_, err := e.Generate(t.Context(), Request{Prompt: "Beside the scoring", MaxNewTokens: 40, IgnoreEOS: true}, nil)
		bg <- err
	}()
	for _, p := range loadReference(t).Prompts {
		prep, err := e.Prepare(Request{PromptIDs: p.IDs, ScoreOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		lps, err := e.Score(t.Context(), prep, 5)
		if err != nil {
			t.Fatal(err)
		}
		if len(lps) != len(p.IDs) || len(lps[0].Top) != 0 || !math.IsNaN(lps[0].Logprob) {
			t.Fatalf("%s: %d entries, first has %d alternatives", p.Name, len(lps), len(lps[0].Top))
		}
		for pos := 1; pos < len(p.IDs); pos++ {
			for k, alt := range lps[pos].Top {
				want := p.Top5Logits[pos-1][k] - p.Logsumexp[pos-1]
				if alt.ID != p.Top5IDs[pos-1][k] || math.Abs(alt.Logprob-want) > 1e-4 {
					t.Fatalf("%s pos %d alt %d: %d %.6f, want %d %.6f", p.Name, pos, k, alt.ID, alt.Logprob, p.Top5IDs[pos-1][k], want)
				}
			}
			if lps[pos].ID != p.IDs[pos] || lps[pos].Logprob > lps[pos].Top[0].Logprob+1e-9 {
				t.Errorf("%s pos %d: token %d logprob %.4f above the top alternative", p.Name, pos, lps[pos].ID, lps[pos].Logprob)
			}
		}
	}
	if err := <-bg; err != nil {
		t.Fatal(err)
	}
}

func TestScoreHonoursContextAndShutdown(t *testing.T) {
	m, e := newTinyEngineThreads(t, EngineConfig{Slots: 1, PrefillChunk: 2}, 2)
	long := make([]int, m.Config.NPositions)
	for i := range long {
		long[i] = 464
	}
	p, err := e.Prepare(Request{PromptIDs: long, ScoreOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := e.Score(ctx, p, 2); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled score: %v", err)
	}
	// A forced shutdown ends a score in flight with ErrClosed, and once
	// Shutdown has returned nothing reads the weights: closing the model
	// is safe (the race detector would see a forward pass after it). The
	// scheduler is held inside a step until Shutdown has given up waiting,
	// so the score is in flight whatever the machine's speed.
	release := holdPool(t, m)
	got := make(chan error, 1)
	go func() {
		_, err := e.Score(t.Context(), p, 2)
		got <- err
	}()
	waitFor(t, func() bool { return e.Stats().Active == 1 }, "the score to take the slot")
	sctx, scancel := context.WithCancel(t.Context())
	scancel()
	shut := make(chan error, 1)
	go func() { shut <- e.Shutdown(sctx) }()
	await(t, e.quit, "Shutdown to stop the scheduler's loop")
	release()
	if err := await(t, shut, "Shutdown to return"); !errors.Is(err, context.Canceled) {
		t.Fatalf("forced shutdown: %v", err)
	}
	m.Close()
	if err := await(t, got, "the score to end"); !errors.Is(err, ErrClosed) {
		t.Fatalf("score cut by shutdown: %v, want ErrClosed", err)
	}
	if _, err := e.Score(t.Context(), p, 2); !errors.Is(err, ErrClosed) {
		t.Fatalf("score after shutdown: %v", err)
	}
}
