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

// TestServePrefixCacheScope: the built server scopes its prefix cache by
// user unless told otherwise: another user's identical prompt takes
// nothing from the cache (the hit counter stays at 0) while the first
// user's repeat does; with GPT2D_PREFIX_CACHE_SCOPE=global the other
// user's prompt hits too. The text is the same every time.
func TestServePrefixCacheScope(t *testing.T) {
	prompt := strings.Repeat("Each tenant's system prompt stays its own, block by block. ", 7)
	for _, tt := range []struct {
		name     string
		env      []string
		crossHit bool
	}{
		{"default: per user", nil, false},
		{"global", []string{"GPT2D_PREFIX_CACHE_SCOPE=global"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "gpt2d.db")
			s := startServe(t, data, append([]string{"GPT2D_ADMIN_USERNAME=root", "GPT2D_ADMIN_PASSWORD=root-password"}, tt.env...))
			root := s.token(t, "root", "root-password")
			if code, body := s.call(t, "POST", "/users", "", `{"username": "alice", "password": "alice-password"}`); code != 200 {
				t.Fatalf("register: %d %s", code, body)
			}
			alice := s.token(t, "alice", "alice-password")
			var first string
			for i, step := range []struct {
				who, token string
				hit        bool
			}{
				{"root", root, false},
				{"alice", alice, tt.crossHit},
				{"root again", root, true},
			} {
				before := s.metric(t, root, "gpt2d_prefix_cache_hit_tokens_total")
				code, body := s.call(t, "POST", "/generate", step.token, `{"prompt": "`+prompt+`", "max_new_tokens": 8, "temperature": 0}`)
				if code != 200 {
					t.Fatalf("%s: generate: %d %s", step.who, code, body)
				}
				var r struct {
					Text string `json:"generated_text"`
				}
				if err := json.Unmarshal([]byte(body), &r); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = r.Text
				} else if r.Text != first {
					t.Errorf("%s: %q, first %q", step.who, r.Text, first)
				}
				if hits := s.metric(t, root, "gpt2d_prefix_cache_hit_tokens_total") - before; (hits >= 64) != step.hit || !step.hit && hits != 0 {
					t.Errorf("%s: %v prefix hit tokens, want a hit: %v", step.who, hits, step.hit)
				}
			}
		})
	}
}
