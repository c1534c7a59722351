package gpt2

import (
	"errors"
	"fmt"
	"time"
)

// Request is one text-generation job.
//
// Exactly one of Prompt and PromptIDs is used: PromptIDs wins when non-empty.
// Length is bounded by MaxNewTokens when it is positive, otherwise by
// MaxLength (prompt tokens + new tokens, as in Hugging Face pipelines);
// with neither set, generation runs until the context window is full.
type Request struct {
	Prompt    string
	PromptIDs []int

	MaxNewTokens int
	MaxLength    int

	// Temperature 0 means greedy decoding (argmax, lowest id on ties).
	Temperature float64
	// TopK keeps only the K most likely tokens; 0 disables it.
	TopK int
	// TopP keeps the smallest set of tokens whose probability mass reaches
	// TopP; 0 or 1 disables it.
	TopP float64
	// Seed makes sampling reproducible when non-nil.
	Seed *uint64

	// Stop ends generation when the generated text contains any of these
	// strings; the stop string itself is not part of the output.
	Stop []string
	// IgnoreEOS keeps generating past <|endoftext|>.
	IgnoreEOS bool
	// Logprobs asks for the log-probabilities of the top N tokens at each
	// generated position (0 = none).
	Logprobs int
	// TokenLogprobs asks for each generated token's log-probability even
	// when Logprobs is 0 (OpenAI's logprobs: 0).
	TokenLogprobs bool
	// ScoreOnly marks a request for Engine.Score, which generates nothing:
	// Prepare then checks only that the prompt fits the context window,
	// and MaxNewTokens and MaxLength are ignored.
	ScoreOnly bool
	// CacheScope bounds who shares this request's cached prompt prefix
	// (EngineConfig.NoPrefixCache aside): KV blocks are reused only
	// between requests of the same scope, because a shared cache lets a
	// caller learn, from the time to its first token, whether someone
	// else recently sent the same prefix. The scope is mixed into the
	// root of the blocks' hash chain and stored with each cached block.
	// A server sets it from the authenticated caller (gpt2d: the user's
	// id); "" is one scope shared by every request that leaves it empty.
	CacheScope string
}

// FinishReason says why generation ended.
type FinishReason string

// The reasons generation ends.
const (
	FinishLength FinishReason = "length" // MaxNewTokens/MaxLength/context reached
	FinishStop   FinishReason = "stop"   // a stop string matched
	FinishEOS    FinishReason = "eos"    // the model produced <|endoftext|>
)

// TokenLogprob is the log-probability of one token and of the most likely
// alternatives at its position.
type TokenLogprob struct {
	ID      int
	Text    string // the token decoded on its own (U+FFFD for part of a character)
	Bytes   []byte // the token's raw bytes (shared: do not modify)
	Logprob float64
	Top     []TopLogprob
}

// TopLogprob is one alternative token at a position.
type TopLogprob struct {
	ID      int
	Text    string
	Bytes   []byte
	Logprob float64
}

// Chunk is a piece of output delivered while generation runs. Text never
// ends inside a UTF-8 character: bytes of an unfinished character are held
// back until it completes.
type Chunk struct {
	Text     string
	Tokens   []int
	Logprobs []TokenLogprob
}

// Result is the outcome of a finished Request.
type Result struct {
	// Text is the generated continuation (without the prompt).
	Text             string
	Tokens           []int
	PromptTokens     int
	CompletionTokens int
	FinishReason     FinishReason
	Logprobs         []TokenLogprob
	// PromptLogprobs scores the prompt's tokens (Engine.Score).
	PromptLogprobs   []TokenLogprob
	TimeToFirstToken time.Duration
	Duration         time.Duration
}

// Errors returned for requests that cannot be served.
var (
	ErrEmptyPrompt = errors.New("gpt2: empty prompt")
	ErrQueueFull   = errors.New("gpt2: generation queue is full")
	ErrClosed      = errors.New("gpt2: engine is closed")
	// ErrKVCacheFull is a step whose sequences need more KV blocks than
	// the pool can give. The scheduler reserves blocks at admission, so
	// it never sees it; a caller driving caches directly may.
	ErrKVCacheFull = errors.New("gpt2: KV cache full")
)

// ContextLengthError reports a request whose prompt plus new tokens does
// not fit the model's context window.
type ContextLengthError struct {
	PromptTokens int
	NewTokens    int
	Limit        int
}

func (e *ContextLengthError) Error() string {
	return fmt.Sprintf("gpt2: prompt (%d tokens) + new tokens (%d) exceeds the context window of %d tokens",
		e.PromptTokens, e.NewTokens, e.Limit)
}

// ParamError reports an invalid request parameter.
type ParamError struct {
	Param string
	Msg   string
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("gpt2: invalid %s: %s", e.Param, e.Msg)
}
