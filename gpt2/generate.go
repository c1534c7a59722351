package gpt2

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Limits on request parameters.
const (
	MaxTemperature = 100
	MaxLogprobs    = 20
	MaxStops       = 16
	MaxStopLen     = 256
)

// genJob is one request travelling through the Engine: the caller's
// goroutine waits on notify and delivers chunks; the scheduler appends
// them and marks the job finished.
type genJob struct {
	ctx     context.Context
	cancel  context.CancelFunc
	req     Request
	prompt  []int
	maxNew  int
	seed    uint64
	score   int // ≥ 0: score the prompt with this many alternatives
	started time.Time

	mu       sync.Mutex
	pending  []Chunk
	finished bool
	result   *Result
	err      error
	notify   chan struct{} // capacity 1: "something changed"
}

// push queues a chunk for the caller, merging into one not yet taken.
func (j *genJob) push(c Chunk) {
	j.mu.Lock()
	if n := len(j.pending); n > 0 {
		last := &j.pending[n-1]
		last.Text += c.Text
		last.Tokens = append(last.Tokens, c.Tokens...)
		last.Logprobs = append(last.Logprobs, c.Logprobs...)
	} else {
		j.pending = append(j.pending, c)
	}
	j.mu.Unlock()
	j.wake()
}

func (j *genJob) finish(res *Result, err error) {
	j.mu.Lock()
	j.finished, j.result, j.err = true, res, err
	j.mu.Unlock()
	j.wake()
}

func (j *genJob) wake() {
	select {
	case j.notify <- struct{}{}:
	default:
	}
}

// take returns the chunks waiting for the caller and whether the job is
// finished (with its outcome).
func (j *genJob) take() ([]Chunk, bool, *Result, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.pending
	j.pending = nil
	return p, j.finished, j.result, j.err
}

// Generate runs req to completion: Prepare, then Run.
func (e *Engine) Generate(ctx context.Context, req Request, emit func(Chunk) error) (*Result, error) {
	p, err := e.Prepare(req)
	if err != nil {
		return nil, err
	}
	return e.Run(ctx, p, emit)
}

// Prepared is a Request checked and tokenized by Engine.Prepare: what it
// will cost is known before it is run.
type Prepared struct {
	// Request is the request as given, but for Prompt, which holds the
	// prompt's text also when the prompt was given as token ids.
	Request Request
	// IDs are the prompt's tokens, never empty: an empty prompt is the
	// <|endoftext|> token alone, as GPT-2's unconditional samples begin
	// and as OpenAI's API treats an empty prompt.
	IDs []int
	// MaxNewTokens is the most tokens Run generates (0 for a ScoreOnly
	// request).
	MaxNewTokens int
}

// Prepare checks req's parameters, tokenizes its prompt (or checks its
// token ids and decodes them), and resolves how many tokens it may
// generate, refusing a prompt plus new tokens that would not fit the
// context window (or the KV cache pool, if it holds fewer positions). It
// does not touch the model's weights and works after Shutdown. Errors: *ParamError, *ContextLengthError.
func (e *Engine) Prepare(req Request) (*Prepared, error) {
	if err := validate(&req); err != nil {
		return nil, err
	}
	tok := e.m.Tokenizer
	var ids []int
	if len(req.PromptIDs) > 0 {
		if err := e.checkIDs("prompt", req.PromptIDs); err != nil {
			return nil, err
		}
		ids = append([]int(nil), req.PromptIDs...)
		req.Prompt = tok.Decode(ids)
	} else {
		ids = tok.Encode(req.Prompt)
	}
	if len(ids) == 0 {
		ids = []int{tok.EOS()}
	}
	limit := e.limit // the context window, or the KV pool if smaller
	if req.ScoreOnly {
		if len(ids) > limit {
			return nil, &ContextLengthError{PromptTokens: len(ids), Limit: limit}
		}
		return &Prepared{Request: req, IDs: ids}, nil
	}
	maxNew := limit - len(ids)
	switch {
	case req.MaxNewTokens > 0:
		maxNew = req.MaxNewTokens
	case req.MaxLength > 0:
		maxNew = req.MaxLength - len(ids)
		if maxNew <= 0 {
			return nil, &ParamError{Param: "max_length", Msg: fmt.Sprintf("%d leaves no room for new tokens after the prompt's %d tokens", req.MaxLength, len(ids))}
		}
	}
	if maxNew <= 0 || len(ids)+maxNew > limit {
		return nil, &ContextLengthError{PromptTokens: len(ids), NewTokens: max(maxNew, 1), Limit: limit}
	}
	return &Prepared{Request: req, IDs: ids, MaxNewTokens: maxNew}, nil
}

// Run generates the continuation of p, calling emit (if non-nil) from the
// caller's goroutine with text as it is produced. It returns when
// generation ends, ctx is done (ctx's error), or emit returns an error
// (which is then returned). Errors: ErrQueueFull (too many requests
// waiting), ErrClosed (the engine is shutting down), *ParamError for a
// ScoreOnly p.
func (e *Engine) Run(ctx context.Context, p *Prepared, emit func(Chunk) error) (*Result, error) {
	if p.Request.ScoreOnly {
		return nil, &ParamError{Param: "max_new_tokens", Msg: "a score-only request generates nothing"}
	}
	return e.await(ctx, e.newJob(ctx, p, -1), emit)
}

// await submits j and waits for it to end, calling emit (if non-nil) with
// its chunks as they come, in the caller's goroutine. When ctx is done it
// returns at once; the scheduler notices at its next step and frees the
// slot.
func (e *Engine) await(ctx context.Context, j *genJob, emit func(Chunk) error) (*Result, error) {
	defer j.cancel()
	if err := e.submit(j); err != nil {
		return nil, err
	}
	for {
		select {
		case <-j.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		chunks, done, res, err := j.take()
		if emit != nil {
			for _, c := range chunks {
				if c.Text == "" && len(c.Tokens) == 0 {
					continue
				}
				if eerr := emit(c); eerr != nil {
					j.cancel()
					return nil, eerr
				}
			}
		}
		if done {
			return res, err
		}
	}
}

// Score returns the log-probability of each of p's prompt tokens given
// the ones before it, with the top most likely alternatives (0 to
// MaxLogprobs) at each position; entry 0 has none (Logprob NaN, no Top),
// as nothing precedes it. The prompt runs through the scheduler like a
// generation's — in a slot, in chunks, under the same queue limit — and
// ctx is honoured between chunks. Errors: those of Run, and *ParamError
// for top out of range.
func (e *Engine) Score(ctx context.Context, p *Prepared, top int) ([]TokenLogprob, error) {
	if top < 0 || top > MaxLogprobs {
		return nil, &ParamError{Param: "logprobs", Msg: fmt.Sprintf("must be between 0 and %d", MaxLogprobs)}
	}
	j := e.newJob(ctx, p, top)
	j.maxNew = 0
	res, err := e.await(ctx, j, nil)
	if err != nil {
		return nil, err
	}
	return res.PromptLogprobs, nil
}

// newJob makes the scheduler's job for p; score ≥ 0 asks for the prompt's
// log-probabilities with that many alternatives.
func (e *Engine) newJob(ctx context.Context, p *Prepared, score int) *genJob {
	req := p.Request
	seed := rand.Uint64()
	if req.Seed != nil {
		seed = *req.Seed
	}
	// The caller's strings may live in reused buffers (fasthttp): keep
	// private copies for the scheduler.
	req.Prompt = strings.Clone(req.Prompt)
	req.Stop = append([]string(nil), req.Stop...)
	for i, s := range req.Stop {
		req.Stop[i] = strings.Clone(s)
	}
	req.PromptIDs = nil
	ctx, cancel := context.WithCancel(ctx)
	return &genJob{
		ctx: ctx, cancel: cancel, req: req, prompt: append([]int(nil), p.IDs...), maxNew: p.MaxNewTokens, seed: seed,
		score: score, started: time.Now(), notify: make(chan struct{}, 1),
	}
}

// validate checks sampling parameters, naming the first bad one.
func validate(r *Request) error {
	bad := func(p, msg string) error { return &ParamError{Param: p, Msg: msg} }
	switch {
	case r.MaxNewTokens < 0:
		return bad("max_new_tokens", "must not be negative")
	case r.MaxLength < 0:
		return bad("max_length", "must not be negative")
	case r.Temperature < 0 || r.Temperature > MaxTemperature || r.Temperature != r.Temperature:
		return bad("temperature", fmt.Sprintf("must be between 0 and %d", MaxTemperature))
	case r.TopK < 0:
		return bad("top_k", "must not be negative")
	case r.TopP < 0 || r.TopP > 1 || r.TopP != r.TopP:
		return bad("top_p", "must be between 0 and 1")
	case r.Logprobs < 0 || r.Logprobs > MaxLogprobs:
		return bad("logprobs", fmt.Sprintf("must be between 0 and %d", MaxLogprobs))
	case len(r.Stop) > MaxStops:
		return bad("stop", fmt.Sprintf("at most %d stop strings", MaxStops))
	}
	for _, s := range r.Stop {
		if s == "" || len(s) > MaxStopLen {
			return bad("stop", fmt.Sprintf("stop strings must be 1 to %d bytes", MaxStopLen))
		}
	}
	return nil
}

// stopper finds stop strings in streamed text and holds back any tail that
// could still become one, so the caller never sees part of a stop string.
type stopper struct {
	stops   []string
	pending string
}

// feed adds text and returns what is safe to emit now and whether a stop
// string matched (in which case the text before it is returned).
func (s *stopper) feed(text string) (string, bool) {
	s.pending += text
	if len(s.stops) == 0 {
		out := s.pending
		s.pending = ""
		return out, false
	}
	first := -1
	for _, st := range s.stops {
		if i := strings.Index(s.pending, st); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first >= 0 {
		out := s.pending[:first]
		s.pending = ""
		return out, true
	}
	hold := 0
	for _, st := range s.stops {
		for k := min(len(st)-1, len(s.pending)); k > hold; k-- {
			if strings.HasSuffix(s.pending, st[:k]) {
				hold = k
				break
			}
		}
	}
	out := s.pending[:len(s.pending)-hold]
	s.pending = s.pending[len(s.pending)-hold:]
	return out, false
}

// flush returns the held-back text at the end of generation.
func (s *stopper) flush() string {
	out := s.pending
	s.pending = ""
	return out
}
