package gpt2

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"gpt2d/gpt2/tokenizer"
)

// EngineConfig sizes an Engine. The zero value gives working defaults.
type EngineConfig struct {
	// Slots is the most sequences generating at once (default 8); each
	// holds a KV cache for the full context window.
	Slots int
	// QueueSize is the most requests waiting for a slot (default 64);
	// beyond it Generate fails fast with ErrQueueFull.
	QueueSize int
	// MaxStepTokens caps the tokens in one forward step (default 512).
	MaxStepTokens int
	// PrefillChunk caps the prompt tokens a sequence adds to a step while
	// other sequences are decoding (default 64), so a long prompt delays
	// running streams by at most one short step.
	PrefillChunk int
}

func (c EngineConfig) withDefaults() EngineConfig {
	if c.Slots <= 0 {
		c.Slots = 8
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 64
	}
	if c.MaxStepTokens <= 0 {
		c.MaxStepTokens = 512
	}
	if c.MaxStepTokens < c.Slots {
		c.MaxStepTokens = c.Slots
	}
	if c.PrefillChunk <= 0 {
		c.PrefillChunk = 64
	}
	return c
}

// ModelInfo describes the served model.
type ModelInfo struct {
	Name       string
	DType      string
	NLayer     int
	NHead      int
	NEmbd      int
	NPositions int
	VocabSize  int
	Params     int64
}

// Stats is a snapshot of the Engine's load and totals.
type Stats struct {
	Active          int   // sequences in a slot
	Queued          int   // requests waiting for a slot
	Slots           int   // configured slots
	PromptTokens    int64 // total prompt tokens processed
	GeneratedTokens int64 // total tokens generated
	Steps           int64 // forward steps run
	CompletedReqs   int64 // requests finished (any reason)
}

// Engine serves generation requests on one Model with continuous
// batching: every active sequence advances in one shared forward step (so
// the weights are read once per step for all of them), new requests join
// between steps, finished ones leave, and long prompts are prefilled in
// chunks interleaved with the others' decoding.
//
// Engine's methods are safe for concurrent use.
type Engine struct {
	m     *Model
	cfg   EngineConfig
	queue chan *genJob
	quit  chan struct{}
	done  chan struct{}

	closeOnce sync.Once
	inflight  inflight

	active, queued                  atomic.Int64
	promptToks, genToks, steps, fin atomic.Int64
}

// NewEngine starts an Engine's scheduler on m.
func NewEngine(m *Model, cfg EngineConfig) *Engine {
	cfg = cfg.withDefaults()
	e := &Engine{
		m: m, cfg: cfg,
		queue: make(chan *genJob, cfg.QueueSize),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go e.run()
	return e
}

// Model returns the engine's model.
func (e *Engine) Model() *Model { return e.m }

// Tokenizer returns the model's tokenizer.
func (e *Engine) Tokenizer() *tokenizer.Tokenizer { return e.m.Tokenizer }

// Info describes the served model.
func (e *Engine) Info() ModelInfo {
	c := e.m.Config
	return ModelInfo{
		Name: e.m.Name, DType: e.m.DType, NLayer: c.NLayer, NHead: c.NHead, NEmbd: c.NEmbd,
		NPositions: c.NPositions, VocabSize: c.VocabSize, Params: e.m.Params(),
	}
}

// Stats returns current load and totals.
func (e *Engine) Stats() Stats {
	return Stats{
		Active: int(e.active.Load()), Queued: int(e.queued.Load()), Slots: e.cfg.Slots,
		PromptTokens: e.promptToks.Load(), GeneratedTokens: e.genToks.Load(),
		Steps: e.steps.Load(), CompletedReqs: e.fin.Load(),
	}
}

func (e *Engine) submit(j *genJob) error {
	if !e.inflight.acquire() {
		return ErrClosed
	}
	select {
	case e.queue <- j:
		e.queued.Add(1)
		return nil
	default:
		e.inflight.release()
		return ErrQueueFull
	}
}

// Close stops accepting requests, waits for queued and running ones to
// finish, then stops the scheduler.
func (e *Engine) Close() { e.Shutdown(context.Background()) }

// Shutdown is Close with a deadline: when ctx ends first, requests still
// running are cancelled (they end with context.Canceled).
func (e *Engine) Shutdown(ctx context.Context) error {
	drained := e.inflight.close()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = ctx.Err()
	}
	e.closeOnce.Do(func() { close(e.quit) })
	<-e.done
	return err
}

// seq is a slot's state: one sequence being generated.
type seq struct {
	j       *genJob
	cache   *KVCache
	samp    *sampler
	stream  *tokenizer.Stream
	stop    stopper
	fed     int // prompt tokens already in the cache
	gen     []int
	text    []byte
	lps     []TokenLogprob
	topBuf  []TopLogprob
	first   time.Time
	decoder bool // prompt done: feeding generated tokens
}

// run is the scheduler loop: admit, build a step, run it, sample.
func (e *Engine) run() {
	defer close(e.done)
	m := e.m
	maxTok := max(e.cfg.MaxStepTokens, 1)
	act := m.newActivations(maxTok, e.cfg.Slots)
	slots := make([]*seq, e.cfg.Slots)
	steps := make([]step, 0, e.cfg.Slots)
	owners := make([]*seq, 0, e.cfg.Slots)
	nActive := 0
	for {
		// Admit waiting requests into free slots; block when idle.
		for i := range slots {
			if slots[i] != nil && slots[i].j != nil {
				continue
			}
			var j *genJob
			if nActive == 0 {
				select {
				case j = <-e.queue:
				case <-e.quit:
					e.failAll(slots)
					return
				}
			} else {
				select {
				case j = <-e.queue:
				default:
				}
			}
			if j == nil {
				break
			}
			e.queued.Add(-1)
			if j.ctx.Err() != nil {
				e.complete(j, nil, j.ctx.Err())
				continue
			}
			if slots[i] == nil {
				slots[i] = &seq{cache: m.NewKVCache(), samp: newSampler(m.Config.VocabSize)}
			}
			slots[i].start(j, m.Tokenizer)
			nActive++
			e.active.Add(1)
		}
		select {
		case <-e.quit:
			e.failAll(slots)
			return
		default:
		}

		// Build the step: one token per decoding sequence, then prompt
		// chunks within the remaining budget.
		steps, owners = steps[:0], owners[:0]
		budget := maxTok
		decoding := 0
		for _, s := range slots {
			if s == nil || s.j == nil {
				continue
			}
			if s.j.ctx.Err() != nil {
				e.release(s, nil, s.j.ctx.Err())
				nActive--
				continue
			}
			if s.decoder {
				// Feed the last generated token (a view: no allocation).
				steps = append(steps, step{cache: s.cache, tokens: s.gen[len(s.gen)-1:], wantLogits: true})
				owners = append(owners, s)
				budget--
				decoding++
			}
		}
		for _, s := range slots {
			if s == nil || s.j == nil || s.decoder || budget <= 0 {
				continue
			}
			n := len(s.j.prompt) - s.fed
			limit := budget
			if decoding > 0 {
				limit = min(limit, e.cfg.PrefillChunk)
			}
			n = min(n, limit)
			done := s.fed+n == len(s.j.prompt)
			steps = append(steps, step{cache: s.cache, tokens: s.j.prompt[s.fed : s.fed+n], wantLogits: done})
			owners = append(owners, s)
			budget -= n
		}
		if len(steps) == 0 {
			continue
		}
		if err := m.forward(act, steps); err != nil {
			for _, s := range owners {
				e.release(s, nil, err)
				nActive--
			}
			continue
		}
		e.steps.Add(1)
		for i := range steps {
			s := owners[i]
			if !s.decoder {
				s.fed += len(steps[i].tokens)
				e.promptToks.Add(int64(len(steps[i].tokens)))
				if !steps[i].wantLogits {
					continue
				}
				s.decoder = true
			}
			if res := s.advance(steps[i].logits, m); res != nil {
				e.release(s, res, nil)
				nActive--
			}
			e.genToks.Add(1)
		}
	}
}

// start puts job j into this slot.
func (s *seq) start(j *genJob, tok *tokenizer.Tokenizer) {
	s.j = j
	s.cache.Reset()
	s.samp.reset(j.req.Temperature, j.req.TopK, j.req.TopP, j.seed)
	s.stream = tok.NewStream()
	s.stop = stopper{stops: j.req.Stop}
	s.fed, s.decoder = 0, false
	s.gen = s.gen[:0]
	s.text = s.text[:0]
	s.lps = nil
	if cap(s.topBuf) < j.req.Logprobs {
		s.topBuf = make([]TopLogprob, j.req.Logprobs)
	}
	s.topBuf = s.topBuf[:j.req.Logprobs]
}

// advance samples the next token from logits, delivers its text, and
// returns the Result when the sequence is finished.
func (s *seq) advance(logits []float32, m *Model) *Result {
	j := s.j
	id := s.samp.next(logits)
	if len(s.gen) == 0 {
		s.first = time.Now()
	}
	var lp []TokenLogprob
	if j.req.Logprobs > 0 {
		l := logSoftmax(logits, id, s.topBuf)
		top := make([]TopLogprob, len(s.topBuf))
		copy(top, s.topBuf)
		for k := range top {
			if top[k].ID >= 0 {
				top[k].Text = m.Tokenizer.TokenText(top[k].ID)
			}
		}
		lp = []TokenLogprob{{ID: id, Text: m.Tokenizer.TokenText(id), Logprob: l, Top: top}}
		s.lps = append(s.lps, lp...)
	}
	eos := id == m.Tokenizer.EOS() && !j.req.IgnoreEOS
	if eos {
		return s.result(FinishEOS)
	}
	s.gen = append(s.gen, id)
	out, stopped := s.stop.feed(s.stream.Add(id))
	s.text = append(s.text, out...)
	if out != "" || lp != nil {
		j.push(Chunk{Text: out, Tokens: []int{id}, Logprobs: lp})
	}
	if stopped {
		return s.result(FinishStop)
	}
	if len(s.gen) >= j.maxNew || s.cache.Len()+1 > s.cache.ctx {
		return s.result(FinishLength)
	}
	return nil
}

// result ends generation: flushes held-back text and builds the Result.
func (s *seq) result(reason FinishReason) *Result {
	if reason != FinishStop {
		out, stopped := s.stop.feed(s.stream.Flush())
		if !stopped {
			out += s.stop.flush()
		} else {
			reason = FinishStop
		}
		s.text = append(s.text, out...)
		if out != "" {
			s.j.push(Chunk{Text: out})
		}
	}
	now := time.Now()
	r := &Result{
		Text:             string(s.text),
		Tokens:           append([]int(nil), s.gen...),
		PromptTokens:     len(s.j.prompt),
		CompletionTokens: len(s.gen),
		FinishReason:     reason,
		Logprobs:         s.lps,
		Duration:         now.Sub(s.j.started),
	}
	if !s.first.IsZero() {
		r.TimeToFirstToken = s.first.Sub(s.j.started)
	}
	return r
}

// release frees the slot and finishes its job.
func (e *Engine) release(s *seq, res *Result, err error) {
	j := s.j
	s.j = nil
	e.active.Add(-1)
	e.complete(j, res, err)
}

func (e *Engine) complete(j *genJob, res *Result, err error) {
	j.finish(res, err)
	e.fin.Add(1)
	e.inflight.release()
}

// failAll ends every running and queued job with ErrClosed.
func (e *Engine) failAll(slots []*seq) {
	for _, s := range slots {
		if s != nil && s.j != nil {
			e.release(s, nil, ErrClosed)
		}
	}
	for {
		select {
		case j := <-e.queue:
			e.queued.Add(-1)
			e.complete(j, nil, ErrClosed)
		default:
			return
		}
	}
}

// Params returns the number of weights in the model.
func (m *Model) Params() int64 {
	c := m.Config
	C, F := int64(c.NEmbd), int64(c.Inner())
	perLayer := 4*C + (3*C*C + 3*C) + (C*C + C) + (F*C + F) + (C*F + C)
	return int64(c.VocabSize)*C + int64(c.NPositions)*C + int64(c.NLayer)*perLayer + 2*C
}

// PromptLogprobs scores a prompt's tokens (see Model.PromptLogprobs),
// outside the batch scheduler. It fails with ErrClosed once the engine is
// shutting down.
func (e *Engine) PromptLogprobs(ctx context.Context, ids []int, top int) ([]TokenLogprob, error) {
	if top < 0 || top > MaxLogprobs {
		return nil, &ParamError{Param: "logprobs", Msg: fmt.Sprintf("must be between 0 and %d", MaxLogprobs)}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !e.inflight.acquire() {
		return nil, ErrClosed
	}
	defer e.inflight.release()
	return e.m.PromptLogprobs(ids, top)
}

// inflight counts the requests an Engine has accepted and not finished,
// and refuses new ones once closed. (A WaitGroup would let an Add race
// with the shutdown's Wait.)
type inflight struct {
	mu      sync.Mutex
	n       int
	closed  bool
	drained chan struct{} // made by close, closed when n reaches 0
}

func (f *inflight) acquire() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.n++
	return true
}

func (f *inflight) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 && f.drained != nil {
		close(f.drained)
		f.drained = nil
	}
}

// close refuses further requests and returns a channel closed once the
// accepted ones have finished.
func (f *inflight) close() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{})
	switch {
	case f.closed && f.drained != nil:
		return f.drained
	case f.n == 0:
		close(ch)
	default:
		f.drained = ch
	}
	f.closed = true
	return ch
}
