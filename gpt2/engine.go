package gpt2

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"gpt2d/gpt2/tokenizer"
	"gpt2d/weights"
)

// EngineConfig sizes an Engine. The zero value gives working defaults.
type EngineConfig struct {
	// Slots is the most sequences generating at once (default 32). A
	// slot costs no KV memory up front: sequences take KV blocks from a
	// shared pool as they grow, so how many run at once is bounded by
	// KVCacheMB, Slots only caps it.
	Slots int
	// KVCacheMB is the KV cache pool in MiB, shared by every sequence
	// (default 0: as much as 8 sequences filling the model's whole
	// context in float32 use, 8 × 75 MiB for GPT-2 124M). A request is
	// admitted when the pool can hold its prompt plus the tokens it may
	// generate (blocks are reserved at admission, so a running sequence
	// never waits for memory); one that could never fit is refused with a
	// *ContextLengthError whose Limit is the pool's size in positions.
	KVCacheMB int
	// NoPrefixCache turns off automatic prefix caching: by default full
	// KV blocks of every sequence stay in the pool, indexed by their
	// tokens and all the tokens before them, and a request whose prompt
	// begins with the same tokens reuses them instead of recomputing
	// them, until the pool needs the memory (least recently used first).
	NoPrefixCache bool
	// KVDType is the element type the KV cache stores keys and values in:
	// F32 (the default, also for ""), BF16 or F16 (see CheckKVDType). The
	// 16-bit types halve the memory per position, so KVCacheMB holds
	// twice the positions and decode reads half the bytes per position;
	// keys and values are rounded to nearest even as they are stored,
	// attention computes in float32.
	KVDType weights.DType
	// QueueSize is the most requests waiting for a slot (default 64);
	// beyond it Generate fails fast with ErrQueueFull.
	QueueSize int
	// MaxStepTokens caps the tokens in one forward step (default 512).
	MaxStepTokens int
	// PrefillChunk caps the prompt tokens a sequence adds to a step while
	// other sequences are decoding (default 64), so a long prompt delays
	// running streams by at most one short step.
	PrefillChunk int

	blockSize int // positions per KV block (tests); default kvBlockSize
	kvBlocks  int // blocks in the pool (tests), overriding KVCacheMB
}

func (c EngineConfig) withDefaults() EngineConfig {
	if c.Slots <= 0 {
		c.Slots = 32
	}
	if c.blockSize <= 0 {
		c.blockSize = kvBlockSize
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
	KVBlocks        int   // blocks in the KV cache pool
	KVBlocksUsed    int   // blocks held by running sequences
	KVBlocksCached  int   // blocks holding a cached prefix and no sequence: reusable, evicted when needed
	KVBlockBytes    int64 // memory of one block
	KVBlockTokens   int   // positions one block holds
	PrefixHitTokens int64 // prompt tokens whose KV came from the prefix cache instead of being computed
	PromptTokens    int64 // total prompt tokens computed (those taken from the prefix cache are in PrefixHitTokens)
	GeneratedTokens int64 // total tokens generated
	Steps           int64 // forward steps run
	CompletedReqs   int64 // requests finished (any reason)
}

// Engine serves generation requests on one Model with continuous
// batching: every active sequence advances in one shared forward step (so
// the weights are read once per step for all of them), new requests join
// between steps, finished ones leave, and long prompts are prefilled in
// chunks interleaved with the others' decoding (see scheduler.go).
//
// A request goes through two calls: Prepare checks it and tokenizes its
// prompt without touching the model, so a caller knows its token counts
// before it commits to the work; Run (or Score, for a prompt's
// log-probabilities) then queues it for the scheduler. Generate is the
// two in one. Every forward pass runs on the scheduler's goroutine, under
// the same slot and queue limits.
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

	pool *kvPool // touched only by the scheduler's goroutine
	// limit is the most positions a sequence may reach: the context
	// window, or the pool's size if smaller.
	limit int

	active, queued                  atomic.Int64
	promptToks, genToks, steps, fin atomic.Int64
	kvUsed, kvCached, prefixHits    atomic.Int64
}

// NewEngine starts an Engine's scheduler on m.
func NewEngine(m *Model, cfg EngineConfig) *Engine {
	e := newEngine(m, cfg)
	go e.run()
	return e
}

// newEngine is an Engine whose scheduler has not started.
func newEngine(m *Model, cfg EngineConfig) *Engine {
	cfg = cfg.withDefaults()
	c, bs := m.Config, cfg.blockSize
	kind, err := kvKindOf(cfg.KVDType)
	if err != nil {
		panic(err) // callers check it first (CheckKVDType)
	}
	// By default as much memory as 8 full contexts take in float32.
	blocks := 8 * ((c.NPositions + bs - 1) / bs) * 4 / kind.size()
	switch {
	case cfg.kvBlocks > 0:
		blocks = cfg.kvBlocks
	case cfg.KVCacheMB > 0:
		blocks = max(int((int64(cfg.KVCacheMB)<<20)/kvBlockBytesOf(c, bs, kind)), 1)
	}
	e := &Engine{
		m: m, cfg: cfg,
		pool:  newKVPoolOf(c, blocks, bs, kind),
		limit: min(c.NPositions, blocks*bs),
		queue: make(chan *genJob, cfg.QueueSize),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
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
		KVBlocks: e.pool.n, KVBlocksUsed: int(e.kvUsed.Load()), KVBlocksCached: int(e.kvCached.Load()),
		KVBlockBytes: e.pool.blockBytes(), KVBlockTokens: e.pool.bs,
		PrefixHitTokens: e.prefixHits.Load(),
		PromptTokens:    e.promptToks.Load(), GeneratedTokens: e.genToks.Load(),
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

// Shutdown stops the Engine. From the moment it is called, Run, Generate
// and Score refuse new work with ErrClosed (Prepare, Tokenize and the other
// tokenizer calls keep working: they do not touch the model's weights).
// It waits for the requests already accepted — queued, generating or
// scoring — to finish, or for ctx to end; in that case the ones still
// queued or running end at once and their callers get ErrClosed, and
// Shutdown returns ctx's error. Either way, when Shutdown returns the
// scheduler has stopped: no forward pass runs or will run, so the Model
// may be closed. Every call on the model goes through the scheduler, so
// nothing can still be reading the weights.
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

// Params returns the number of weights in the model.
func (m *Model) Params() int64 {
	c := m.Config
	C, F := int64(c.NEmbd), int64(c.Inner())
	perLayer := 4*C + (3*C*C + 3*C) + (C*C + C) + (F*C + F) + (C*F + C)
	return int64(c.VocabSize)*C + int64(c.NPositions)*C + int64(c.NLayer)*perLayer + 2*C
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

// Tokenize returns the token ids of text (see tokenizer.Tokenizer.Encode).
func (e *Engine) Tokenize(text string) []int { return e.m.Tokenizer.Encode(text) }

// Pieces returns the tokens of text with their bytes and character
// offsets (see tokenizer.Tokenizer.Pieces). text must be valid UTF-8.
func (e *Engine) Pieces(text string) ([]tokenizer.Piece, error) { return e.m.Tokenizer.Pieces(text) }

// Detokenize returns the text of ids. An id outside the vocabulary is a
// *ParamError naming "tokens".
func (e *Engine) Detokenize(ids []int) (string, error) {
	if err := e.checkIDs("tokens", ids); err != nil {
		return "", err
	}
	return e.m.Tokenizer.Decode(ids), nil
}

// checkIDs refuses token ids outside the vocabulary, naming param.
func (e *Engine) checkIDs(param string, ids []int) error {
	for _, id := range ids {
		if id < 0 || id >= e.m.Config.VocabSize {
			return &ParamError{Param: param, Msg: fmt.Sprintf("token id %d outside the vocabulary", id)}
		}
	}
	return nil
}
