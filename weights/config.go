// Package weights reads GPT-2 checkpoints: Hugging Face safetensors
// directories and gpt2d's own converted file, both presented to the engine
// as one Checkpoint in the layout its kernels want.
package weights

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Config is a GPT-2 model's shape, as in Hugging Face's config.json.
type Config struct {
	NLayer             int     `json:"n_layer"`
	NHead              int     `json:"n_head"`
	NEmbd              int     `json:"n_embd"`
	NPositions         int     `json:"n_positions"`
	NInner             int     `json:"n_inner,omitempty"` // MLP width; 0 means 4*NEmbd
	VocabSize          int     `json:"vocab_size"`
	LayerNormEpsilon   float64 `json:"layer_norm_epsilon"`
	ActivationFunction string  `json:"activation_function"`
	BOSTokenID         int     `json:"bos_token_id"`
	EOSTokenID         int     `json:"eos_token_id"`
}

// hfConfig holds the config.json fields that need care when parsed.
type hfConfig struct {
	Config
	NInner                     *int   `json:"n_inner"`
	NCtx                       int    `json:"n_ctx"`
	ScaleAttnByInverseLayerIdx bool   `json:"scale_attn_by_inverse_layer_idx"`
	ReorderAndUpcastAttn       bool   `json:"reorder_and_upcast_attn"`
	ScaleAttnWeights           *bool  `json:"scale_attn_weights"`
	ModelType                  string `json:"model_type"`
}

// ParseConfig parses and validates a Hugging Face GPT-2 config.json.
func ParseConfig(data []byte) (Config, error) {
	var h hfConfig
	h.LayerNormEpsilon = 1e-5
	h.ActivationFunction = "gelu_new"
	h.BOSTokenID, h.EOSTokenID = 50256, 50256
	if err := json.Unmarshal(data, &h); err != nil {
		return Config{}, fmt.Errorf("parse config: %w", err)
	}
	c := h.Config
	c.NInner = 0
	if h.NInner != nil {
		c.NInner = *h.NInner
	}
	if c.NPositions == 0 {
		c.NPositions = h.NCtx
	}
	if h.ModelType != "" && h.ModelType != "gpt2" {
		return Config{}, fmt.Errorf("config: model_type %q is not gpt2", h.ModelType)
	}
	if h.ScaleAttnByInverseLayerIdx || h.ReorderAndUpcastAttn || (h.ScaleAttnWeights != nil && !*h.ScaleAttnWeights) {
		return Config{}, errors.New("config: non-standard attention scaling options are not supported")
	}
	return c, c.Validate()
}

// Validate reports whether the configuration describes a model the engine
// can run.
func (c Config) Validate() error {
	switch {
	case c.NLayer <= 0:
		return fmt.Errorf("config: n_layer %d must be positive", c.NLayer)
	case c.NHead <= 0:
		return fmt.Errorf("config: n_head %d must be positive", c.NHead)
	case c.NEmbd <= 0 || c.NEmbd%c.NHead != 0:
		return fmt.Errorf("config: n_embd %d must be a positive multiple of n_head %d", c.NEmbd, c.NHead)
	case c.NPositions <= 0:
		return fmt.Errorf("config: n_positions %d must be positive", c.NPositions)
	case c.VocabSize <= 0:
		return fmt.Errorf("config: vocab_size %d must be positive", c.VocabSize)
	case c.NInner < 0:
		return fmt.Errorf("config: n_inner %d must not be negative", c.NInner)
	case !(c.LayerNormEpsilon > 0):
		return fmt.Errorf("config: layer_norm_epsilon %g must be positive", c.LayerNormEpsilon)
	case c.EOSTokenID < 0 || c.EOSTokenID >= c.VocabSize:
		return fmt.Errorf("config: eos_token_id %d outside the vocabulary", c.EOSTokenID)
	}
	switch c.ActivationFunction {
	case "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu":
	default:
		return fmt.Errorf("config: activation_function %q is not supported", c.ActivationFunction)
	}
	return nil
}

// Inner returns the MLP hidden width.
func (c Config) Inner() int {
	if c.NInner > 0 {
		return c.NInner
	}
	return 4 * c.NEmbd
}

// HeadDim returns the width of one attention head.
func (c Config) HeadDim() int { return c.NEmbd / c.NHead }
