package api

import (
	"strings"
	"testing"

	"gpt2d/auth"
	"gpt2d/gpt2"
)

// TestPrefixCacheScopeOverHTTP: with the default scope a user's cached
// prompt prefix serves that user again (over another session or an API
// key) but never another user, whose identical prompt is computed in full
// (gpt2d_prefix_cache_hit_tokens_total does not move), so the time to
// first token tells nobody what others sent. With --prefix-cache-scope
// global the other user takes it from the cache too. Every answer is the
// same text.
func TestPrefixCacheScopeOverHTTP(t *testing.T) {
	// About 100 tokens of the tiny model's 128: its first 64-token block
	// is cacheable. The words are this test's own.
	prompt := strings.Repeat("Scoped caches keep each tenant's prompts to itself. ", 10)
	for _, tt := range []struct {
		name    string
		scope   PrefixCacheScope
		bobHits bool // whether bob's prompt finds alice's prefix
	}{
		{"default", "", false}, // user
		{"user", PrefixCacheUser, false},
		{"global", PrefixCacheGlobal, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := start(t, func(c *Config, _ *auth.Config) { c.PrefixCacheScope = tt.scope })
			// An engine of its own: the hit counter moves only for this
			// test's requests.
			eng := gpt2.NewEngine(engine.Model(), gpt2.EngineConfig{})
			t.Cleanup(eng.Close)
			ts.srv.SetGenerator(eng)
			admin := ts.admin("root")
			ts.register("alice", "alicepassword", "", "")
			ts.register("bob", "bobpassword", "", "")
			alice := ts.login("alice", "alicepassword")
			aliceKey, _ := ts.createKey(alice, map[string]any{"name": "laptop"})
			bob := ts.login("bob", "bobpassword")

			hits := func() float64 { return scrape(t, ts, admin).value(t, "gpt2d_prefix_cache_hit_tokens_total") }
			var first string
			send := func(who, token string, wantHit bool) {
				t.Helper()
				before := hits()
				r := ts.postJSON("/v1/completions", token, map[string]any{"model": "gpt2-tiny", "prompt": prompt, "max_tokens": 8, "temperature": 0})
				wantStatus(t, r, 200)
				c := decodeCompletion(t, r.body)
				if c.Usage.PromptTokens <= 64 {
					t.Fatalf("prompt of %d tokens: not a whole block to cache", c.Usage.PromptTokens)
				}
				got := hits() - before
				if wantHit && got < 64 || !wantHit && got != 0 {
					t.Errorf("%s: %v prefix hit tokens, want a hit: %v", who, got, wantHit)
				}
				if first == "" {
					first = c.Choices[0].Text
				} else if c.Choices[0].Text != first {
					t.Errorf("%s: %q, first answer %q", who, c.Choices[0].Text, first)
				}
			}
			send("alice, warming", alice, false)
			send("bob, the same prompt", bob, tt.bobHits)
			send("alice again, by API key", aliceKey, true)
			send("bob again", bob, true)
		})
	}
}

// TestPrefixCacheScopeChecked: New refuses a scope it does not know.
func TestPrefixCacheScopeChecked(t *testing.T) {
	for _, tt := range []struct {
		scope PrefixCacheScope
		ok    bool
	}{{"", true}, {PrefixCacheUser, true}, {PrefixCacheGlobal, true}, {"key", false}, {"User", false}} {
		if err := tt.scope.Check(); (err == nil) != tt.ok {
			t.Errorf("scope %q: %v", tt.scope, err)
		}
	}
}
