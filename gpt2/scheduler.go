package gpt2

import (
	"math"
	"time"

	"gpt2d/gpt2/tokenizer"
)

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
	plps    []TokenLogprob // the prompt's scores, when the job asks for them
	topBuf  []TopLogprob
	first   time.Time
	decoder bool  // prompt done: feeding generated tokens
	blkToks []int // scratch: one block's tokens, for publishing it
}

// scheduler is the state of the Engine's scheduling goroutine: the slots
// and the buffers of one forward step. Only that goroutine touches it.
type scheduler struct {
	e      *Engine
	m      *Model
	act    *activations
	slots  []*seq
	steps  []step // this step's share of each sequence in it…
	owners []*seq // …and the sequence it belongs to
	active int    // slots holding a job
	// waiting is the request at the head of the queue, taken from it but
	// not admitted until the KV pool can hold it: requests are admitted
	// in order, so a long one is not starved by short ones behind it.
	waiting *genJob
	// maxTok caps a step's tokens; scoreRows, the prompt tokens scored
	// in one step (they need a row of logits each).
	maxTok, scoreRows int
}

// run is the scheduler loop: admit, build a step, run it, sample; until
// Shutdown, which ends every job still queued or running with ErrClosed.
func (e *Engine) run() {
	defer close(e.done)
	sc := e.newScheduler()
	for sc.admit() {
		if sc.build() {
			sc.step()
		}
	}
	e.failAll(sc)
}

func (e *Engine) newScheduler() *scheduler {
	maxTok := max(e.cfg.MaxStepTokens, 1)
	// Every sequence in a step wants at most one row of logits, except a
	// prompt being scored, which wants one per token: those share
	// scoreRows more rows, so scoring adds a bounded, fixed amount of
	// memory however many requests ask for it.
	scoreRows := min(e.cfg.PrefillChunk, maxScoreRows)
	return &scheduler{
		e: e, m: e.m,
		act:    e.m.newActivations(maxTok, e.cfg.Slots+scoreRows),
		slots:  make([]*seq, e.cfg.Slots),
		steps:  make([]step, 0, e.cfg.Slots),
		owners: make([]*seq, 0, e.cfg.Slots),
		maxTok: maxTok, scoreRows: scoreRows,
	}
}

// admit moves waiting requests into free slots while the KV pool can
// hold them, blocking while there is nothing to do. It reports false once
// the Engine is shutting down.
func (sc *scheduler) admit() bool {
	e, m := sc.e, sc.m
	for i := range sc.slots {
		if sc.slots[i] != nil && sc.slots[i].j != nil {
			continue
		}
		j := sc.waiting
		if j == nil {
			if sc.active == 0 {
				select {
				case j = <-e.queue:
				case <-e.quit:
					return false
				}
			} else {
				select {
				case j = <-e.queue:
				default:
				}
			}
		}
		if j == nil {
			break
		}
		sc.waiting = nil
		if j.ctx.Err() != nil {
			e.queued.Add(-1)
			e.complete(j, nil, j.ctx.Err())
			continue
		}
		if sc.slots[i] == nil {
			sc.slots[i] = &seq{cache: e.pool.newCache(m.Config.NPositions), samp: newSampler(m.Config.VocabSize),
				blkToks: make([]int, e.pool.bs)}
		}
		s := sc.slots[i]
		ok, err := sc.reserve(s, j)
		if err != nil {
			e.queued.Add(-1)
			e.complete(j, nil, err)
			continue
		}
		if !ok { // wait for running sequences to free blocks
			sc.waiting = j
			break
		}
		e.queued.Add(-1)
		s.start(j, m.Tokenizer)
		sc.active++
		e.active.Add(1)
	}
	sc.poolStats()
	select {
	case <-e.quit:
		return false
	default:
		return true
	}
}

// reserve gives the empty cache of s what job j needs, if the pool can:
// the cached blocks of the longest prefix of its prompt found in the pool
// within its cache scope (unless prefix caching is off or the job scores its prompt, which needs
// every position's logits), and a promise of the blocks for the rest of
// the prompt and every token it may generate. It reports false, changing
// nothing, when the pool cannot hold that now, and an error when it never
// could.
func (sc *scheduler) reserve(s *seq, j *genJob) (bool, error) {
	p, limit := sc.e.pool, sc.m.Config.NPositions
	reach := min(len(j.prompt)+j.maxNew, limit)
	total := (reach + p.bs - 1) / p.bs
	if total > p.n {
		return false, &ContextLengthError{PromptTokens: len(j.prompt), NewTokens: reach - len(j.prompt), Limit: sc.e.limit}
	}
	hit, idle := 0, 0
	if !sc.e.cfg.NoPrefixCache && j.score < 0 {
		hit, idle = p.matchPrefix(j.req.CacheScope, j.prompt)
	}
	if total-hit > p.available()-idle {
		return false, nil
	}
	s.cache.attachPrefix(j.req.CacheScope, j.prompt, hit)
	s.cache.reserve(total - hit)
	sc.e.prefixHits.Add(int64(hit * p.bs))
	return true, nil
}

// poolStats publishes the pool's counts for Stats.
func (sc *scheduler) poolStats() {
	p := sc.e.pool
	sc.e.kvUsed.Store(int64(p.used()))
	sc.e.kvCached.Store(int64(p.lru.len))
}

// build assembles the next step — one token per decoding sequence, then
// prompt chunks within the remaining budget — after releasing sequences
// whose callers have gone. It reports whether the step has any work.
func (sc *scheduler) build() bool {
	e := sc.e
	sc.steps, sc.owners = sc.steps[:0], sc.owners[:0]
	budget := sc.maxTok
	decoding := 0
	for _, s := range sc.slots {
		if s == nil || s.j == nil {
			continue
		}
		if err := s.j.ctx.Err(); err != nil {
			sc.release(s, nil, err)
			continue
		}
		if s.decoder {
			// Feed the last generated token (a view: no allocation).
			sc.steps = append(sc.steps, step{cache: s.cache, tokens: s.gen[len(s.gen)-1:], wantLogits: true})
			sc.owners = append(sc.owners, s)
			budget--
			decoding++
		}
	}
	scoring := sc.scoreRows
	for _, s := range sc.slots {
		if s == nil || s.j == nil || s.decoder || budget <= 0 {
			continue
		}
		limit := budget
		if decoding > 0 {
			limit = min(limit, e.cfg.PrefillChunk)
		}
		score := s.j.score >= 0
		if score {
			if limit = min(limit, scoring); limit <= 0 {
				continue
			}
		}
		n := min(len(s.j.prompt)-s.fed, limit)
		done := s.fed+n == len(s.j.prompt)
		sc.steps = append(sc.steps, step{cache: s.cache, tokens: s.j.prompt[s.fed : s.fed+n], wantLogits: done, allLogits: score})
		sc.owners = append(sc.owners, s)
		budget -= n
		if score {
			scoring -= n
		}
	}
	return len(sc.steps) > 0
}

// step runs the step built and moves each sequence on: a prompt chunk is
// counted (and scored, when asked), a finished prompt or a decoded token
// gives the next token, and finished sequences leave their slots.
func (sc *scheduler) step() {
	e, m := sc.e, sc.m
	if err := m.forward(sc.act, sc.steps); err != nil {
		for _, s := range sc.owners {
			sc.release(s, nil, err)
		}
		return
	}
	e.steps.Add(1)
	if !e.cfg.NoPrefixCache {
		for _, s := range sc.owners {
			s.cache.publish(s.j.prompt, s.gen, s.blkToks)
		}
	}
	V := m.Config.VocabSize
	for i := range sc.steps {
		s, st := sc.owners[i], &sc.steps[i]
		logits := st.logits
		if !s.decoder {
			n := len(st.tokens)
			if s.plps != nil {
				s.scoreChunk(logits, s.fed, m)
				logits = logits[(n-1)*V:] // the last row predicts the next token
			}
			s.fed += n
			e.promptToks.Add(int64(n))
			if !st.wantLogits {
				continue
			}
			if s.j.maxNew == 0 { // scored, nothing to generate
				sc.release(s, s.result(FinishLength), nil)
				continue
			}
			s.decoder = true
		}
		if res := s.advance(logits, m); res != nil {
			sc.release(s, res, nil)
		}
		e.genToks.Add(1)
	}
	sc.poolStats()
}

// release frees s's slot and its KV blocks, and finishes its job.
func (sc *scheduler) release(s *seq, res *Result, err error) {
	sc.active--
	s.cache.Reset()
	sc.poolStats()
	sc.e.release(s, res, err)
}

// start puts job j into this slot, whose cache holds the prompt's first
// cache.Len() positions already (a cached prefix).
func (s *seq) start(j *genJob, tok *tokenizer.Tokenizer) {
	s.j = j
	s.samp.reset(j.req.Temperature, j.req.TopK, j.req.TopP, j.seed)
	s.stream = tok.NewStream()
	s.stop = stopper{stops: j.req.Stop}
	s.fed, s.decoder = s.cache.Len(), false
	s.gen = s.gen[:0]
	s.text = s.text[:0]
	s.lps = nil
	s.plps = nil
	if j.score >= 0 {
		s.plps = make([]TokenLogprob, len(j.prompt))
		id := j.prompt[0]
		s.plps[0] = TokenLogprob{ID: id, Text: tok.TokenText(id), Bytes: tok.TokenBytes(id), Logprob: math.NaN()}
	}
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
	if j.req.Logprobs > 0 || j.req.TokenLogprobs {
		l := logSoftmax(logits, id, s.topBuf)
		top := make([]TopLogprob, len(s.topBuf))
		copy(top, s.topBuf)
		for k := range top {
			if top[k].ID >= 0 {
				top[k].Text, top[k].Bytes = m.Tokenizer.TokenText(top[k].ID), m.Tokenizer.TokenBytes(top[k].ID)
			}
		}
		lp = []TokenLogprob{{ID: id, Text: m.Tokenizer.TokenText(id), Bytes: m.Tokenizer.TokenBytes(id), Logprob: l, Top: top}}
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

// maxScoreRows caps the prompt tokens scored in one step (see run).
const maxScoreRows = 64

// scoreChunk records the scores of the prompt tokens that a chunk's rows
// of logits ((rows, V)) predict: row r follows prompt[start+r].
func (s *seq) scoreChunk(logits []float32, start int, m *Model) {
	V, tok, prompt := m.Config.VocabSize, m.Tokenizer, s.j.prompt
	for r := 0; r < len(logits)/V; r++ {
		pos := start + r + 1
		if pos >= len(prompt) {
			break
		}
		id := prompt[pos]
		alts := make([]TopLogprob, s.j.score)
		lp := logSoftmax(logits[r*V:(r+1)*V], id, alts)
		for k := range alts {
			if a := &alts[k]; a.ID >= 0 {
				a.Text, a.Bytes = tok.TokenText(a.ID), tok.TokenBytes(a.ID)
			}
		}
		s.plps[pos] = TokenLogprob{ID: id, Text: tok.TokenText(id), Bytes: tok.TokenBytes(id), Logprob: lp, Top: alts}
	}
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
		PromptLogprobs:   s.plps,
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
func (e *Engine) failAll(sc *scheduler) {
	for _, s := range sc.slots {
		if s != nil && s.j != nil {
			sc.release(s, nil, ErrClosed)
		}
	}
	if j := sc.waiting; j != nil {
		sc.waiting = nil
		e.queued.Add(-1)
		e.complete(j, nil, ErrClosed)
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
