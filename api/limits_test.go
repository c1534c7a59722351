package api

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"gpt2d/auth"
	"gpt2d/store"
)

func wantLimited(t *testing.T, r response, limit string) int {
	t.Helper()
	wantStatus(t, r, 429)
	retry, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || retry < 1 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if m := r.json(t); m["limit"] != limit || m["detail"] == nil || m["retry_after"] != float64(retry) {
		t.Fatalf("429 body %s, want limit %s", r.body, limit)
	}
	return retry
}

func TestRequestsPerMinuteLimit(t *testing.T) {
	ts := start(t, func(c *Config, _ *auth.Config) { c.UserLimits = Limits{RequestsPerMinute: 2} })
	ts.register("alice", "alicepassword", "", "")
	tok := ts.login("alice", "alicepassword")
	gen := func() response {
		return ts.postJSON("/generate", tok, map[string]any{"prompt": "hi", "max_new_tokens": 2})
	}
	wantStatus(t, gen(), 200)
	wantStatus(t, gen(), 200)
	retry := wantLimited(t, gen(), "requests_per_minute")
	if retry > 30 {
		t.Fatalf("Retry-After %d s; one request comes back every 30 s", retry)
	}
	// Invalid requests do not spend the limit; the limit is per user, not
	// per credential.
	wantStatus(t, ts.postJSON("/generate", tok, map[string]any{"prompt": "hi", "temperature": -1}), 422)
	key, _ := ts.createKey(tok, map[string]any{"name": "k"})
	r := ts.postJSON("/v1/completions", key, map[string]any{"model": "gpt2-tiny", "prompt": "hi"})
	wantStatus(t, r, 429)
	if e := r.json(t)["error"].(map[string]any); e["type"] != "requests" || e["code"] != "rate_limit_exceeded" || r.header.Get("Retry-After") == "" {
		t.Fatalf("OpenAI 429: %s", r.body)
	}
	ts.clock.Advance(time.Duration(retry) * time.Second)
	wantStatus(t, gen(), 200)
	wantLimited(t, gen(), "requests_per_minute")
	// Other users have their own bucket; admins have theirs (unlimited here).
	ts.register("bob", "bobpassword", "", "")
	wantStatus(t, ts.postJSON("/generate", ts.login("bob", "bobpassword"), map[string]any{"prompt": "hi", "max_new_tokens": 2}), 200)
	admin := ts.admin("root")
	for range 5 {
		wantStatus(t, ts.postJSON("/generate", admin, map[string]any{"prompt": "hi", "max_new_tokens": 2}), 200)
	}
}

func TestTokensPerDayQuotaExhaustsThenRecovers(t *testing.T) {
	ts := start(t, func(c *Config, _ *auth.Config) { c.UserLimits = Limits{TokensPerDay: 40} })
	ts.register("alice", "alicepassword", "", "")
	session := ts.login("alice", "alicepassword")
	// A key, so that the test's day-long jump does not depend on a session.
	key, _ := ts.createKey(session, map[string]any{"name": "batch"})
	gen := func() response {
		return ts.postJSON("/generate", key, map[string]any{"prompt": "Hello", "max_new_tokens": 15, "stop": "never-matches"})
	}
	spent := 0
	for spent < 40 {
		r := gen()
		wantStatus(t, r, 200)
		u := r.json(t)["usage"].(map[string]any)
		spent += int(u["total_tokens"].(float64))
	}
	retry := wantLimited(t, gen(), "tokens_per_day")
	now := ts.clock.Now().UTC()
	midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	if d := midnight.Sub(now); time.Duration(retry)*time.Second < d || time.Duration(retry-2)*time.Second > d {
		t.Fatalf("Retry-After %d s, midnight UTC is %s away", retry, d)
	}
	// The OpenAI endpoint says the same, in OpenAI's shape.
	r := ts.postJSON("/v1/completions", key, map[string]any{"model": "gpt2-tiny", "prompt": "hi"})
	wantStatus(t, r, 429)
	var e struct{ Error map[string]any }
	json.Unmarshal(r.body, &e)
	if e.Error["type"] != "tokens" || e.Error["code"] != "rate_limit_exceeded" || r.header.Get("Retry-After") == "" {
		t.Fatalf("OpenAI 429: %s", r.body)
	}
	// /users/me/usage shows the exhausted quota.
	st := ts.get("/users/me/usage", key).json(t)["limits"].(map[string]any)
	if st["tokens_per_day"] != 40.0 || st["tokens_used_today"].(float64) < 40 {
		t.Fatalf("limits %v", st)
	}
	// The next UTC day the quota is back.
	ts.clock.Advance(time.Duration(retry) * time.Second)
	wantStatus(t, gen(), 200)
}

func TestQuotaSurvivesARestartOfTheServer(t *testing.T) {
	// Usage is written in the background; Shutdown writes what is pending,
	// so a restart does not hand out a fresh quota.
	ts := start(t, func(c *Config, _ *auth.Config) {
		c.UserLimits = Limits{TokensPerDay: 10}
		c.UsageFlushInterval = time.Hour // only Shutdown flushes
	})
	ts.register("alice", "alicepassword", "", "")
	tok := ts.login("alice", "alicepassword")
	wantStatus(t, ts.postJSON("/generate", tok, map[string]any{"prompt": "Hello", "max_new_tokens": 12, "stop": "never-matches"}), 200)
	wantLimited(t, ts.postJSON("/generate", tok, map[string]any{"prompt": "Hello"}), "tokens_per_day") // counted while pending
	ts.srv.Shutdown(t.Context())
	if n, err := ts.db.DayTokens(1, ts.clock.Now()); err != nil || n < 10 {
		t.Fatalf("stored tokens after shutdown: %d, %v", n, err)
	}
}

func TestAdminOverridesAUsersLimits(t *testing.T) {
	ts := start(t, func(c *Config, _ *auth.Config) { c.UserLimits = Limits{RequestsPerMinute: 100, TokensPerDay: 1000} })
	admin := ts.admin("root")
	ts.register("alice", "alicepassword", "", "")
	alice := ts.login("alice", "alicepassword")

	wantStatus(t, ts.do("PUT", "/admin/users/2/limits", alice, "application/json", strings.NewReader(`{"requests_per_minute":1000}`)), 403)
	r := ts.do("PUT", "/admin/users/2/limits", admin, "application/json", strings.NewReader(`{"requests_per_minute":1}`))
	wantStatus(t, r, 200)
	m := r.json(t)
	ov := m["overrides"].(map[string]any)
	if m["requests_per_minute"] != 1.0 || m["tokens_per_day"] != 1000.0 || ov["requests_per_minute"] != 1.0 || ov["tokens_per_day"] != nil {
		t.Fatalf("limits after override: %s", r.body)
	}
	// The override applies at once, without ending alice's session.
	wantStatus(t, ts.postJSON("/generate", alice, map[string]any{"prompt": "hi", "max_new_tokens": 2}), 200)
	wantLimited(t, ts.postJSON("/generate", alice, map[string]any{"prompt": "hi", "max_new_tokens": 2}), "requests_per_minute")

	// 0 is unlimited; null goes back to the role's default.
	wantStatus(t, ts.do("PUT", "/admin/users/2/limits", admin, "application/json", strings.NewReader(`{"requests_per_minute":0}`)), 200)
	for range 3 {
		wantStatus(t, ts.postJSON("/generate", alice, map[string]any{"prompt": "hi", "max_new_tokens": 2}), 200)
	}
	r = ts.do("PUT", "/admin/users/2/limits", admin, "application/json", strings.NewReader(`{"requests_per_minute":null}`))
	if m := r.json(t); m["requests_per_minute"] != 100.0 {
		t.Fatalf("reset: %s", r.body)
	}
	if u, _ := ts.db.UserByID(2); u.Limits != nil {
		t.Fatalf("overrides kept: %+v", u.Limits)
	}
	wantStatus(t, ts.get("/admin/users/2/limits", admin), 200)
	wantStatus(t, ts.do("PUT", "/admin/users/2/limits", admin, "application/json", strings.NewReader(`{"tokens_per_day":-1}`)), 422)
	wantStatus(t, ts.do("PUT", "/admin/users/99/limits", admin, "application/json", strings.NewReader(`{}`)), 404)
	if !strings.Contains(ts.logs.String(), `"action":"user.limits"`) {
		t.Fatal("limit change not audited")
	}
}

func TestUsageIsRecordedPerUserAndKey(t *testing.T) {
	ts := start(t)
	admin := ts.admin("root")
	ts.register("alice", "alicepassword", "", "")
	session := ts.login("alice", "alicepassword")
	key, keyID := ts.createKey(session, map[string]any{"name": "script"})

	var want store.Counts
	spend := func(tok string) {
		r := ts.postJSON("/generate", tok, map[string]any{"prompt": "Hello there", "max_new_tokens": 6})
		wantStatus(t, r, 200)
		u := r.json(t)["usage"].(map[string]any)
		want.Add(store.Counts{Requests: 1, PromptTokens: int64(u["prompt_tokens"].(float64)), CompletionTokens: int64(u["completion_tokens"].(float64))})
	}
	spend(session)
	spend(key)
	spend(key)
	streamGenerate(t, ts, key, map[string]any{"prompt": "Hello there", "max_new_tokens": 6, "stream": true}, nil)
	want.Requests++ // a stream counts too; its tokens are checked below through the totals

	r := ts.get("/users/me/usage", session)
	wantStatus(t, r, 200)
	var u userUsage
	json.Unmarshal(r.body, &u)
	today := store.Day(ts.clock.Now()).Format(dateLayout)
	if u.UserID != 2 || u.To != today || len(u.Days) != 1 || u.Days[0].Date != today || u.Total.Requests != 4 ||
		u.Total.PromptTokens != want.PromptTokens*4/3 || u.Total.TotalTokens != u.Total.PromptTokens+u.Total.CompletionTokens {
		t.Fatalf("usage %s (want %+v)", r.body, want)
	}
	if len(u.Keys) != 2 || u.Keys[0].KeyID != 0 || u.Keys[0].Requests != 1 || u.Keys[1].KeyID != keyID ||
		u.Keys[1].Name != "script" || u.Keys[1].Requests != 3 {
		t.Fatalf("per credential: %+v", u.Keys)
	}

	r = ts.get("/admin/usage", admin)
	wantStatus(t, r, 200)
	var all struct {
		Total usageTotals
		Users []struct {
			UserID   uint64 `json:"user_id"`
			Username string
			usageTotals
		}
	}
	json.Unmarshal(r.body, &all)
	if len(all.Users) != 1 || all.Users[0].Username != "alice" || all.Users[0].Requests != 4 || all.Total != u.Total {
		t.Fatalf("admin usage %s", r.body)
	}
	if r := ts.get("/admin/usage?user_id=2", admin); r.status != 200 || !strings.Contains(string(r.body), `"script"`) {
		t.Fatalf("admin usage of one user: %d %s", r.status, r.body)
	}
	wantStatus(t, ts.get("/admin/usage", session), 403)
	wantStatus(t, ts.get("/users/me/usage?from=2031-01-02&to=2031-01-01", session), 422)
	wantStatus(t, ts.get("/users/me/usage?from=yesterday", session), 422)
	// Yesterday's range holds nothing.
	yesterday := store.Day(ts.clock.Now()).AddDate(0, 0, -1).Format(dateLayout)
	if r := ts.get("/users/me/usage?from="+yesterday+"&to="+yesterday, key).json(t); r["total"].(map[string]any)["requests"] != 0.0 {
		t.Fatalf("yesterday: %v", r)
	}
}

// TestTallyKeepsFirstSeenOrderAndDaysSort: per-user and per-key sums keep
// the order records came in, and days are shown in date order whatever the
// records' order (AllUsage returns them by user, then date).
func TestTallyKeepsFirstSeenOrderAndDaysSort(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC) }
	records := []store.Usage{
		{UserID: 7, Day: day(3), Counts: store.Counts{Requests: 1, PromptTokens: 5}},
		{UserID: 7, Day: day(4), Counts: store.Counts{Requests: 2}},
		{UserID: 2, Day: day(1), Counts: store.Counts{Requests: 4, CompletionTokens: 9}},
		{UserID: 2, Day: day(3), Counts: store.Counts{Requests: 8}},
	}
	var days tally[time.Time]
	var users tally[uint64]
	for _, r := range records {
		days.add(r.Day, r.Counts)
		users.add(r.UserID, r.Counts)
	}
	if len(users.keys) != 2 || users.keys[0] != 7 || users.keys[1] != 2 ||
		users.sums[7].Requests != 3 || users.sums[2].Requests != 12 || users.sums[2].CompletionTokens != 9 {
		t.Fatalf("per user: keys %v, sums %+v %+v", users.keys, users.sums[7], users.sums[2])
	}
	got := showDays(&days)
	want := []struct {
		date     string
		requests int64
	}{{"2026-03-01", 4}, {"2026-03-03", 9}, {"2026-03-04", 2}}
	if len(got) != len(want) {
		t.Fatalf("days %+v", got)
	}
	for i, w := range want {
		if got[i].Date != w.date || got[i].Requests != w.requests {
			t.Errorf("day %d: %+v, want %s with %d requests", i, got[i], w.date, w.requests)
		}
	}
	var none tally[time.Time]
	if d := showDays(&none); d == nil || len(d) != 0 {
		t.Errorf("no records: %#v, want an empty list (JSON [])", d)
	}
}
