package api

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"

	"gpt2d/gpt2"
	"gpt2d/store"
)

// A generation is the engine work behind one HTTP request: one engine
// request per choice (several for OpenAI's n and prompt arrays), run
// concurrently — the engine batches them — with their chunks and outcomes
// merged into one channel.
//
// One goroutine at a time consumes a generation: the handler, then the
// stream writer it hands over to. It must call next until it reports the
// end, or abort, so that no engine call is left blocked; and then finish,
// once.
type generation struct {
	ctx     context.Context // the deadline of all its engine calls
	events  chan genEvent
	cancel  context.CancelFunc
	running int
	choices []choice
	started time.Time
}

// choice is the consumer's view of one engine request.
type choice struct {
	p            *gpt2.Prepared // nil: nothing to generate (OpenAI's max_tokens 0 with echo)
	prompt       int            // index of the prompt it continues
	chargePrompt bool           // the first choice of its prompt: count the prompt's tokens once
	promptTokens int            // known from Prepare
	tokens       int            // completion tokens seen in chunks so far
	res          *gpt2.Result
	err          error
	done         bool
}

// genEvent is a chunk of one choice or, with done, its end; res and err
// are its outcome.
type genEvent struct {
	index int
	chunk gpt2.Chunk
	done  bool
	res   *gpt2.Result
	err   error
}

// newGeneration makes the generation of choices. It runs under its own
// deadline (Config.GenerateTimeout, queueing and prompt scoring included),
// not under the request's context: fasthttp does not cancel that when the
// client goes away, and shutdown must let generations finish. Shutdown
// cuts those still running when its deadline passes: they end with
// gpt2.ErrClosed (503, or an error event on a stream).
func (s *Server) newGeneration(choices []choice) *generation {
	ctx, cancel := context.WithTimeout(s.base, s.cfg.GenerateTimeout)
	return &generation{
		ctx:     ctx,
		events:  make(chan genEvent, len(choices)+4),
		cancel:  cancel,
		running: len(choices),
		choices: choices,
		started: time.Now(),
	}
}

// start submits every choice to g. With stream, chunks are delivered as
// events; without, only the ends are.
func (gen *generation) start(g Generator, stream bool) {
	ctx := gen.ctx
	for i := range gen.choices {
		p, promptTokens := gen.choices[i].p, gen.choices[i].promptTokens
		go func() {
			if p == nil { // nothing to generate
				gen.events <- genEvent{index: i, done: true, res: &gpt2.Result{PromptTokens: promptTokens, FinishReason: gpt2.FinishLength}}
				return
			}
			var emit func(gpt2.Chunk) error
			if stream {
				emit = func(c gpt2.Chunk) error {
					select {
					case gen.events <- genEvent{index: i, chunk: c}:
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
			res, err := g.Run(ctx, p, emit)
			if err != nil && errors.Is(context.Cause(ctx), errShutdown) {
				err = gpt2.ErrClosed
			}
			// The consumer drains every end, so this never blocks for long.
			gen.events <- genEvent{index: i, done: true, res: res, err: err}
		}()
	}
}

// next returns the next event, or false once every choice has ended.
func (g *generation) next() (genEvent, bool) {
	if g.running == 0 {
		return genEvent{}, false
	}
	ev := <-g.events
	c := &g.choices[ev.index]
	if ev.done {
		g.running--
		c.done, c.res, c.err = true, ev.res, ev.err
	} else {
		c.tokens += len(ev.chunk.Tokens)
	}
	if g.running == 0 {
		g.cancel() // release the deadline's timer
	}
	return ev, true
}

// wait consumes every remaining event.
func (g *generation) wait() {
	for {
		if _, ok := g.next(); !ok {
			return
		}
	}
}

// abort cancels every choice still running and waits for them to end:
// the engine frees their slots at its next step.
func (g *generation) abort() {
	g.cancel()
	g.wait()
}

// err returns the first choice's error, if any choice failed.
func (g *generation) err() error {
	for _, c := range g.choices {
		if c.err != nil {
			return c.err
		}
	}
	return nil
}

// counts is what the generation cost, for usage records and quotas: each
// prompt's tokens once, and every token generated — also by choices cut
// short, as far as their chunks tell.
func (g *generation) counts() store.Counts {
	n := store.Counts{Requests: 1}
	for _, c := range g.choices {
		if c.chargePrompt {
			n.PromptTokens += int64(c.promptTokens)
		}
		if c.res != nil {
			n.CompletionTokens += int64(c.res.CompletionTokens)
		} else {
			n.CompletionTokens += int64(c.tokens)
		}
	}
	return n
}

// usage is what the generation cost, in OpenAI's shape.
func (g *generation) usage() *usage {
	n := g.counts()
	u := newUsage(int(n.PromptTokens), int(n.CompletionTokens))
	return &u
}

// finishReason is the label a choice's end is counted under.
func (c *choice) finishReason() string {
	switch {
	case c.res != nil:
		return string(c.res.FinishReason)
	case errors.Is(c.err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(c.err, context.Canceled):
		return "cancelled"
	}
	return "error"
}

// caller is who asked for a generation, copied out of the request so
// that it outlives the handler (a stream finishes after it returns).
type caller struct {
	user         *store.User
	key          *store.APIKey
	ip           string
	requestID    string
	completionID string // OpenAI's cmpl-… or chatcmpl-… id, once made
	// quota and seqs are what admit holds for the generation, released
	// by finish (or unadmit).
	quota reservation
	seqs  int
}

// callerOf copies the caller of request c.
func (s *Server) callerOf(c *fiber.Ctx) caller {
	return caller{user: currentUser(c), key: currentKey(c), ip: s.clientIP(c), requestID: requestID(c)}
}

func (c caller) keyID() uint64 {
	if c.key == nil {
		return 0
	}
	return c.key.ID
}

// finish records a generation that has ended: usage (per user and key,
// written to the store in the background), metrics, and an audit event
// with sizes and outcome, never text. endpoint labels the metrics; detail
// adds endpoint-specific audit fields. It also releases what admit held:
// the reservation is settled with what the generation spent, in the same
// step as that is recorded.
func (s *Server) finish(gen *generation, who caller, endpoint string, stream bool, detail map[string]any) {
	counts := gen.counts()
	s.settle(&who, counts)
	reasons := make([]string, len(gen.choices))
	for i := range gen.choices {
		c := &gen.choices[i]
		reasons[i] = c.finishReason()
		s.tel.generations.inc(endpoint, reasons[i])
		if r := c.res; r != nil && r.CompletionTokens > 0 {
			s.tel.ttft.observe(r.TimeToFirstToken.Seconds())
			if decode := r.Duration - r.TimeToFirstToken; r.CompletionTokens > 1 && decode > 0 {
				s.tel.tokensPerSec.observe(float64(r.CompletionTokens-1) / decode.Seconds())
			}
		}
	}
	if detail == nil {
		detail = map[string]any{}
	}
	detail["endpoint"] = endpoint
	detail["stream"] = stream
	detail["prompt_tokens"] = counts.PromptTokens
	detail["completion_tokens"] = counts.CompletionTokens
	detail["duration_ms"] = time.Since(gen.started).Milliseconds()
	if len(reasons) == 1 {
		detail["finish_reason"] = reasons[0]
	} else {
		detail["finish_reasons"] = reasons
	}
	if who.key != nil {
		detail["key_id"] = who.key.ID
	}
	if who.requestID != "" {
		detail["request_id"] = who.requestID
	}
	if who.completionID != "" {
		detail["completion_id"] = who.completionID
	}
	s.auditEvent(who.ip, slog.LevelInfo, "generate", who.user, "", detail)
}
