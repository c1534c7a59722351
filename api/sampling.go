package api

import (
	"gpt2d/gpt2"
)

// GenerationLimits caps what one generation request may ask of the
// engine. Zero fields take the defaults; values beyond the engine's own
// limits are lowered to them.
type GenerationLimits struct {
	// MaxNewTokens caps max_new_tokens (/generate) and max_tokens
	// (/v1/completions) (0 → 512).
	MaxNewTokens int
	// MaxTemperature caps temperature (0 → 2, OpenAI's bound).
	MaxTemperature float64
	// MaxChoices caps the completions one /v1/completions request asks
	// for: prompts × n (0 → 8).
	MaxChoices int
	// MaxLogprobs caps logprobs, the alternatives reported per token
	// (0 → 5, OpenAI's bound).
	MaxLogprobs int
	// MaxStops caps the number of stop strings (0 → 4, OpenAI's bound).
	MaxStops int
}

func (l GenerationLimits) withDefaults() GenerationLimits {
	def := func(v *int, d, hi int) {
		if *v <= 0 {
			*v = d
		}
		*v = min(*v, hi)
	}
	def(&l.MaxNewTokens, 512, 1<<20)
	def(&l.MaxChoices, 8, 128)
	def(&l.MaxLogprobs, 5, gpt2.MaxLogprobs)
	def(&l.MaxStops, 4, gpt2.MaxStops)
	if l.MaxTemperature <= 0 {
		l.MaxTemperature = 2
	}
	l.MaxTemperature = min(l.MaxTemperature, gpt2.MaxTemperature)
	return l
}

// maxTopK bounds top_k; GPT-2's vocabulary has 50 257 tokens, so larger
// values mean the same as 0 (no top-k filtering).
const maxTopK = 50257

// sampling reads the sampling controls /generate and /v1/completions
// share — temperature, top_k, top_p, seed, stop — into req, checking them
// against the server's limits. defaultTopK differs: /generate keeps the
// original service's top-k 50, OpenAI's API has no top-k (0).
func (b *body) sampling(lim GenerationLimits, defaultTopK int, req *gpt2.Request) {
	req.Temperature = b.number("temperature", defaultTemperature, 0, lim.MaxTemperature, false)
	req.TopK = b.integer("top_k", defaultTopK, 0, maxTopK)
	req.TopP = b.number("top_p", 1, 0, 1, true)
	req.Seed = b.seed("seed")
	req.Stop = b.stringList("stop", lim.MaxStops, gpt2.MaxStopLen)
}
