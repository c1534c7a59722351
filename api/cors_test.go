package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"gpt2d/auth"
	"gpt2d/gpt2"
)

// preflight sends a browser's CORS preflight for POST path from origin.
func (ts *testServer) preflight(path, origin string) *http.Response {
	ts.t.Helper()
	req, _ := http.NewRequest("OPTIONS", ts.url+path, nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, x-stainless-os")
	resp, err := ts.http.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestCORSAllowsConfiguredOriginsOnly(t *testing.T) {
	ts := start(t, func(c *Config, _ *auth.Config) { c.AllowedOrigins = []string{"https://chat.example.com"} })
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")

	// A preflight carries no credentials: it is answered, never a 401.
	resp := ts.preflight("/v1/chat/completions", "https://chat.example.com")
	if allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")); resp.StatusCode != 204 ||
		resp.Header.Get("Access-Control-Allow-Origin") != "https://chat.example.com" ||
		!strings.Contains(allowed, "authorization") || !strings.Contains(allowed, "x-stainless-os") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp = ts.preflight("/v1/chat/completions", "https://evil.example.net")
	if resp.StatusCode == 401 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin: %d %v", resp.StatusCode, resp.Header)
	}

	// The request itself: allowed, and the client may read the request id.
	req, _ := http.NewRequest("GET", ts.url+"/v1/models", nil)
	req.Header.Set("Origin", "https://chat.example.com")
	req.Header.Set("Authorization", "Bearer "+tok)
	got, err := ts.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got.Body.Close()
	if got.StatusCode != 200 || got.Header.Get("Access-Control-Allow-Origin") != "https://chat.example.com" ||
		!strings.Contains(got.Header.Get("Access-Control-Expose-Headers"), "X-Request-Id") && !strings.Contains(got.Header.Get("Access-Control-Expose-Headers"), "X-Request-ID") {
		t.Fatalf("CORS request: %d %v", got.StatusCode, got.Header)
	}
}

func TestCORSIsOffByDefault(t *testing.T) {
	ts := start(t)
	resp := ts.preflight("/v1/completions", "https://chat.example.com")
	if resp.StatusCode == 401 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight without allowed origins: %d %v", resp.StatusCode, resp.Header)
	}
	// Not a preflight: OPTIONS without Access-Control-Request-Method needs credentials like anything else.
	req, _ := http.NewRequest("OPTIONS", ts.url+"/v1/completions", nil)
	r, err := ts.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 401 {
		t.Fatalf("plain OPTIONS: %d", r.StatusCode)
	}
	for _, bad := range [][]string{{"chat.example.com"}, {"ftp://x.example.com"}, {"https://x.example.com/path"}} {
		if _, err := New(Config{Store: ts.db, Auth: ts.auth, AllowedOrigins: bad}); err == nil {
			t.Errorf("origin %q accepted", bad)
		}
	}
}

// logLines returns the JSON log lines with msg.
func logLines(t *testing.T, ts *testServer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(ts.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func TestRequestIDIsReturnedLoggedAndAudited(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")

	// The client's id comes back and names the request's log line, the
	// completion's id and the audit event.
	req, _ := http.NewRequest("POST", ts.url+"/v1/completions", strings.NewReader(`{"model":"gpt2-tiny","prompt":"Hi","max_tokens":2}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Request-ID", "trace-42")
	resp, err := ts.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var c completion
	json.NewDecoder(resp.Body).Decode(&c)
	resp.Body.Close()
	if resp.Header.Get("X-Request-ID") != "trace-42" {
		t.Fatalf("X-Request-ID %q", resp.Header.Get("X-Request-ID"))
	}
	var line map[string]any
	for _, l := range logLines(t, ts, "request") {
		if l["request_id"] == "trace-42" {
			line = l
		}
	}
	if line == nil || line["completion_id"] != c.ID || line["path"] != "/v1/completions" {
		t.Fatalf("request log line %v (completion %s)", line, c.ID)
	}
	var audited bool
	for _, l := range logLines(t, ts, "audit") {
		if l["action"] == "generate" && l["request_id"] == "trace-42" && l["completion_id"] == c.ID {
			audited = true
		}
	}
	events, err := ts.db.ListAudit(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	stored := false
	for _, e := range events {
		if e.Action == "generate" && e.Detail["request_id"] == "trace-42" && e.Detail["completion_id"] == c.ID {
			stored = true
		}
	}
	if !audited || !stored {
		t.Fatalf("audit: logged %v, stored %v", audited, stored)
	}

	// Without one, or with one that could forge a log line, a fresh id.
	for _, sent := range []string{"", "two words", strings.Repeat("x", 129)} {
		req, _ := http.NewRequest("GET", ts.url+"/health", nil)
		if sent != "" {
			req.Header.Set("X-Request-ID", sent)
		}
		resp, err := ts.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if id := resp.Header.Get("X-Request-ID"); len(id) != 32 || id == sent {
			t.Fatalf("sent %q, got id %q", sent, id)
		}
	}
}

func TestHealthWhileLoadingIsNotAnError(t *testing.T) {
	ts := start(t)
	ts.srv.gen.Store(nil)
	wantStatus(t, ts.get("/health", ""), 503)
	for _, l := range logLines(t, ts, "request") {
		if l["path"] == "/health" {
			t.Fatalf("a 503 /health during load was logged at %v", l["level"])
		}
	}
	// An engine error's cause is in the request's log line, not the body.
	ts.srv.SetGenerator(newFake(func(context.Context, gpt2.Request) (*gpt2.Result, error) { return nil, gpt2.ErrQueueFull }))
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	r := ts.postJSON("/generate", tok, map[string]any{"prompt": "Hi"})
	wantStatus(t, r, 503)
	found := false
	for _, l := range logLines(t, ts, "request") {
		if l["path"] == "/generate" && l["err"] == gpt2.ErrQueueFull.Error() {
			found = true
		}
	}
	if !found || strings.Contains(string(r.body), "gpt2:") {
		t.Fatalf("cause logged %v; body %s", found, r.body)
	}
}
