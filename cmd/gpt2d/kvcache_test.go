package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeKVCacheFlags: the built server sizes its KV pool by
// --kv-cache-mb (the tiny model's 64-position block is 64 KiB), reuses a
// repeated prompt prefix by default with the same output, and does not
// with --prefix-cache=false; with --kv-dtype f16 the same MiB hold twice
// the blocks.
func TestServeKVCacheFlags(t *testing.T) {
	prompt := strings.Repeat("A shared system prompt, long enough to fill a block. ", 8)
	for _, tt := range []struct {
		name   string
		flags  []string
		blocks float64
		hits   bool
	}{
		{"prefix cache on", []string{"--kv-cache-mb", "2"}, 32, true},
		{"prefix cache off", []string{"--kv-cache-mb", "3", "--prefix-cache=false"}, 48, false},
		{"f16 KV", []string{"--kv-cache-mb", "2", "--kv-dtype", "f16"}, 64, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "gpt2d.db")
			s := startServe(t, data, []string{"GPT2D_ADMIN_USERNAME=root", "GPT2D_ADMIN_PASSWORD=root-password"}, tt.flags...)
			root := s.token(t, "root", "root-password")
			if got := s.metric(t, root, "gpt2d_kv_cache_blocks"); got != tt.blocks {
				t.Errorf("%v blocks, want %v", got, tt.blocks)
			}
			var texts []string
			for _, suffix := range []string{"One", "One"} {
				code, body := s.call(t, "POST", "/generate", root, `{"prompt": "`+prompt+suffix+`", "max_new_tokens": 8, "temperature": 0}`)
				if code != 200 {
					t.Fatalf("generate: %d %s", code, body)
				}
				var r struct {
					Text string `json:"generated_text"`
				}
				if err := json.Unmarshal([]byte(body), &r); err != nil {
					t.Fatal(err)
				}
				texts = append(texts, r.Text)
			}
			if texts[0] != texts[1] {
				t.Errorf("the same prompt twice: %q, then %q", texts[0], texts[1])
			}
			if hits := s.metric(t, root, "gpt2d_prefix_cache_hit_tokens_total"); (hits >= 64) != tt.hits {
				t.Errorf("%v prefix hit tokens", hits)
			}
		})
	}
}
