package api

import (
	"net/url"
	"testing"
	"time"

	"gpt2d/auth"
	"gpt2d/store"
)

func (ts *testServer) refreshToken(token string) response {
	ts.t.Helper()
	return ts.postForm("/token/refresh", url.Values{"refresh_token": {token}})
}

func TestRefreshingDoesNotGrowTheStore(t *testing.T) {
	// Every refresh is audited: keep the trail short, so that the file's
	// size shows the refresh tokens.
	ts := start(t, func(c *Config, _ *auth.Config) {
		c.AuditRetention, c.PruneInterval = store.AuditRetention{MaxEvents: 20}, 20*time.Millisecond
	})
	ts.register("alice", "alicepassword", "", "")
	_, refresh := ts.loginPair("alice", "alicepassword")
	for range 20 { // warm up: the file reaches its working size
		ts.clock.Advance(5 * time.Second)
		r := ts.refreshToken(refresh)
		wantStatus(t, r, 200)
		refresh = r.json(t)["refresh_token"].(string)
	}
	before := storeSize(t, ts.db)
	const n = 150
	for range n {
		ts.clock.Advance(5 * time.Second) // within the refresh rate
		r := ts.refreshToken(refresh)
		wantStatus(t, r, 200)
		refresh = r.json(t)["refresh_token"].(string)
	}
	grew := storeSize(t, ts.db) - before
	t.Logf("store %d → %d bytes after %d refreshes", before, before+grew, n)
	// One record per refresh ever made (≈ 0.9 KB each) would be ≈ 135 KB.
	// (PostgreSQL keeps dead row versions until it vacuums: its size says
	// little; the family count below holds for both.)
	if _, bolt := ts.db.(*store.DB); bolt && grew > 64<<10 {
		t.Fatalf("store grew %d bytes over %d refreshes", grew, n)
	}
	if c, _ := ts.db.CountRefreshFamilies(1, ts.clock.Now()); c != 1 {
		t.Fatalf("%d live families, want 1", c)
	}
}

func TestLoginsBeyondTheCapEndTheOldestSessions(t *testing.T) {
	ts := start(t, func(_ *Config, a *auth.Config) { a.MaxRefreshFamilies = 3 })
	ts.register("alice", "alicepassword", "", "")
	var tokens []string
	for range 5 {
		_, r := ts.loginPair("alice", "alicepassword")
		tokens = append(tokens, r)
		ts.clock.Advance(time.Second)
	}
	for i, tok := range tokens {
		want := 200
		if i < 2 {
			want = 401 // evicted: the two oldest logins
		}
		wantStatus(t, ts.refreshToken(tok), want)
	}
}

func TestRefreshIsRateLimitedPerUserWithoutSpendingTheToken(t *testing.T) {
	ts := start(t, func(_ *Config, a *auth.Config) { a.RefreshPerMinute = 3 })
	ts.register("alice", "alicepassword", "", "")
	ts.register("bob", "bobpassword", "", "")
	_, refresh := ts.loginPair("alice", "alicepassword")
	for range 3 {
		r := ts.refreshToken(refresh)
		wantStatus(t, r, 200)
		refresh = r.json(t)["refresh_token"].(string)
	}
	r := ts.refreshToken(refresh)
	wantStatus(t, r, 429)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	// Another user has their own budget.
	_, bob := ts.loginPair("bob", "bobpassword")
	wantStatus(t, ts.refreshToken(bob), 200)
	// Garbage naming alice's family costs nothing of hers; the refused
	// token was not consumed and works once the budget refills.
	ts.clock.Advance(20 * time.Second)
	wantStatus(t, ts.refreshToken("AAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAA.garbage"), 401)
	wantStatus(t, ts.refreshToken(refresh), 200)
}

func TestLogoutRevokesEverySessionOfTheUserOnly(t *testing.T) {
	ts := start(t)
	ts.register("alice", "alicepassword", "", "")
	ts.register("bob", "bobpassword", "", "")
	access, a1 := ts.loginPair("alice", "alicepassword")
	_, a2 := ts.loginPair("alice", "alicepassword")
	_, b1 := ts.loginPair("bob", "bobpassword")
	ts.clock.Advance(time.Second)
	wantStatus(t, ts.postJSON("/logout", access, nil), 200)
	wantStatus(t, ts.refreshToken(a1), 401)
	wantStatus(t, ts.refreshToken(a2), 401)
	wantStatus(t, ts.refreshToken(b1), 200)
}
