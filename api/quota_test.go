package api

import (
	"bufio"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gpt2d/auth"
	"gpt2d/gpt2"
)

func TestDailyQuotaHoldsAgainstConcurrentRequests(t *testing.T) {
	const quota, clients, newTokens = 100, 30, 15
	ts := start(t, func(c *Config, _ *auth.Config) {
		c.UserLimits = Limits{TokensPerDay: quota}
		c.MaxUserSequences = -1 // this test is about tokens, not slots
	})
	ts.register("alice", "alicepassword", "", "")
	tok := ts.login("alice", "alicepassword")

	var wg sync.WaitGroup
	var ok, limited, spent atomic.Int64
	startLine := make(chan struct{})
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startLine
			r := ts.postJSON("/generate", tok, map[string]any{"prompt": "Hello", "max_new_tokens": newTokens, "stop": "never-matches"})
			switch r.status {
			case 200:
				ok.Add(1)
				spent.Add(int64(r.json(t)["usage"].(map[string]any)["total_tokens"].(float64)))
			case 429:
				limited.Add(1)
			default:
				t.Errorf("status %d: %s", r.status, r.body)
			}
		}()
	}
	close(startLine)
	wg.Wait()

	stored, err := ts.srv.tokensToday(1, ts.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d concurrent requests against a %d-token quota: %d served, %d refused, %d tokens spent (stored: %d)",
		clients, quota, ok.Load(), limited.Load(), spent.Load(), stored)
	// One request reserves 1 prompt token + 15 new ones: the quota may be
	// passed by at most that one reservation.
	if stored != spent.Load() || stored > quota+1+newTokens || limited.Load() == 0 {
		t.Fatalf("spent %d (recorded %d) of a %d-token quota", spent.Load(), stored, quota)
	}
	wantLimited(t, ts.postJSON("/generate", tok, map[string]any{"prompt": "Hello", "max_new_tokens": 1}), "tokens_per_day")
}

// gatedGenerator stands in for an engine with slots: Run waits for one
// of slots (or its context), then runs paced — without end, unless the
// request sets MaxNewTokens.
type gatedGenerator struct {
	*pacedGenerator
	slots chan struct{}
}

func newGated(slots int, interval time.Duration, tokens int) *gatedGenerator {
	return &gatedGenerator{pacedGenerator: newPaced(interval, tokens), slots: make(chan struct{}, slots)}
}

func (g *gatedGenerator) Run(ctx context.Context, p *gpt2.Prepared, emit func(gpt2.Chunk) error) (*gpt2.Result, error) {
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-g.slots }()
	if n := p.Request.MaxNewTokens; n > 0 {
		for range n { // as the engine, a step at a time, stopping when cancelled
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(g.interval):
			}
		}
		return &gpt2.Result{Text: strings.Repeat("x", n), PromptTokens: len(p.IDs), CompletionTokens: n, FinishReason: gpt2.FinishLength}, nil
	}
	return g.pacedGenerator.Run(ctx, p, emit)
}

func (g *gatedGenerator) Stats() gpt2.Stats {
	return gpt2.Stats{Active: int(g.active.Load()), Slots: cap(g.slots)}
}

func TestOneUserCannotTakeEverySlot(t *testing.T) {
	ts := start(t, func(c *Config, _ *auth.Config) { c.MaxUserSequences = 2 })
	ts.register("hog", "hogpassword", "", "")
	ts.register("bob", "bobpassword", "", "")
	hog, bob := ts.login("hog", "hogpassword"), ts.login("bob", "bobpassword")
	ts.srv.SetGenerator(newGated(3, 10*time.Millisecond, 0)) // 3 slots, streams that never end

	// The hog holds two streams; more are refused while they run.
	for range 2 {
		resp := ts.openStream("/generate", hog, map[string]any{"prompt": "forever", "stream": true}, nil)
		defer resp.Body.Close()
		if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	r := ts.postJSON("/generate", hog, map[string]any{"prompt": "more", "max_new_tokens": 5})
	wantLimited(t, r, "concurrent_sequences")
	key, _ := ts.createKey(hog, map[string]any{"name": "k"})
	r = ts.postJSON("/v1/completions", key, map[string]any{"model": "paced", "prompt": "more", "max_tokens": 5})
	if r.status != 429 || r.json(t)["error"].(map[string]any)["code"] != "rate_limit_exceeded" {
		t.Fatalf("OpenAI route: %d %s", r.status, r.body)
	}
	// Another user still gets the free slot.
	wantStatus(t, ts.postJSON("/generate", bob, map[string]any{"prompt": "my turn", "max_new_tokens": 3}), 200)
}
