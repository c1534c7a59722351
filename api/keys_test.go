package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// createKey makes an API key through the API and returns it and its id.
func (ts *testServer) createKey(token string, body map[string]any) (string, uint64) {
	ts.t.Helper()
	r := ts.postJSON("/users/me/keys", token, body)
	if r.status != 201 {
		ts.t.Fatalf("create key: %d %s", r.status, r.body)
	}
	var k struct {
		Key string `json:"key"`
		ID  uint64 `json:"id"`
	}
	json.Unmarshal(r.body, &k)
	return k.Key, k.ID
}

func TestAPIKeyWorksIsRevokedThenFails(t *testing.T) {
	ts := start(t)
	ts.register("alice", "alicepassword", "", "")
	session := ts.login("alice", "alicepassword")
	key, id := ts.createKey(session, map[string]any{"name": "laptop"})
	if !strings.HasPrefix(key, "g2d_") {
		t.Fatalf("key %q", key)
	}

	wantStatus(t, ts.postJSON("/generate", key, map[string]any{"prompt": "Hello", "max_new_tokens": 5}), 200)
	wantStatus(t, ts.postJSON("/v1/completions", key, map[string]any{"model": "gpt2-tiny", "prompt": "Hello", "max_tokens": 5}), 200)
	if r := ts.get("/users/me", key); r.status != 200 || r.json(t)["username"] != "alice" {
		t.Fatalf("me with a key: %d %s", r.status, r.body)
	}

	r := ts.get("/users/me/keys", session)
	wantStatus(t, r, 200)
	var keys []map[string]any
	json.Unmarshal(r.body, &keys)
	if len(keys) != 1 || keys[0]["name"] != "laptop" || !strings.HasPrefix(key, keys[0]["prefix"].(string)) ||
		keys[0]["created_at"] == nil || keys[0]["last_used_at"] == nil || fmt.Sprint(keys[0]["scopes"]) != "[generate]" {
		t.Fatalf("list: %s", r.body)
	}
	if strings.Contains(string(r.body), key) || strings.Contains(string(r.body), "hash") {
		t.Fatal("the key or its hash is listed")
	}

	wantStatus(t, ts.do("DELETE", fmt.Sprintf("/users/me/keys/%d", id), session, "", nil), 200)
	r = ts.get("/users/me", key)
	wantDetail(t, r, 401, "Could not validate credentials")
	wantBearerChallenge(t, r)
	wantStatus(t, ts.postJSON("/v1/completions", key, map[string]any{"model": "gpt2-tiny", "prompt": "Hello"}), 401)
	wantDetail(t, ts.do("DELETE", fmt.Sprintf("/users/me/keys/%d", id), session, "", nil), 404, "API key not found")
	if strings.Contains(ts.logs.String(), key) {
		t.Fatal("the key reached the log")
	}
}

func TestAPIKeysCarryAtMostTheirOwnersRights(t *testing.T) {
	ts := start(t)
	rootSession := ts.admin("root")
	ts.register("alice", "alicepassword", "", "")
	alice := ts.login("alice", "alicepassword")

	// A user cannot mint an admin key.
	wantDetail(t, ts.postJSON("/users/me/keys", alice, map[string]any{"name": "x", "scopes": []string{"admin"}}), 403, "Admin access required")

	genKey, _ := ts.createKey(rootSession, map[string]any{"name": "gen"})
	adminKey, _ := ts.createKey(rootSession, map[string]any{"name": "ops", "scopes": []string{"admin"}})
	// A generate key of an admin is no admin; an admin-only key cannot generate.
	wantStatus(t, ts.get("/admin/users", genKey), 403)
	wantStatus(t, ts.get("/admin/users", adminKey), 200)
	wantStatus(t, ts.get("/metrics", adminKey), 200)
	wantDetail(t, ts.postJSON("/generate", adminKey, map[string]any{"prompt": "hi"}), 403, detailScopeRequired)

	// Keys cannot manage keys, passwords or sessions.
	for _, call := range []struct{ method, path string }{
		{"POST", "/users/me/keys"}, {"GET", "/users/me/keys"}, {"DELETE", "/users/me/keys/1"},
		{"POST", "/users/me/password"}, {"POST", "/logout"},
	} {
		r := ts.do(call.method, call.path, genKey, "application/json", strings.NewReader(`{"name":"x"}`))
		wantDetail(t, r, 403, detailSessionRequired)
	}

	// An admin demoted loses the admin rights of their keys too.
	ts.register("root2", "root2password", "admin", rootSession)
	root2 := ts.login("root2", "root2password")
	wantStatus(t, ts.do("PATCH", "/admin/users/1", root2, "application/json", strings.NewReader(`{"role":"user"}`)), 200)
	wantStatus(t, ts.get("/admin/users", adminKey), 403)

	// A disabled owner's keys stop working; so do a deleted owner's.
	wantStatus(t, ts.do("PATCH", "/admin/users/1", root2, "application/json", strings.NewReader(`{"disabled":true}`)), 200)
	wantDetail(t, ts.get("/users/me", genKey), 401, "Could not validate credentials")
	aliceKey, _ := ts.createKey(alice, map[string]any{"name": "a"})
	wantStatus(t, ts.get("/users/me", aliceKey), 200)
	wantStatus(t, ts.do("DELETE", "/admin/users/2", root2, "", nil), 200)
	wantStatus(t, ts.get("/users/me", aliceKey), 401)
}

func TestAPIKeyExpires(t *testing.T) {
	ts := start(t)
	ts.register("alice", "alicepassword", "", "")
	session := ts.login("alice", "alicepassword")
	in1day, _ := ts.createKey(session, map[string]any{"name": "day", "expires_in_days": 1})
	at := ts.clock.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	in2h, _ := ts.createKey(session, map[string]any{"name": "2h", "expires_at": at})
	wantStatus(t, ts.get("/users/me", in2h), 200)
	ts.clock.Advance(3 * time.Hour)
	wantStatus(t, ts.get("/users/me", in2h), 401)
	wantStatus(t, ts.get("/users/me", in1day), 200)
	ts.clock.Advance(22 * time.Hour)
	wantStatus(t, ts.get("/users/me", in1day), 401)
}

func TestAPIKeyCreationValidated(t *testing.T) {
	ts := start(t)
	ts.register("alice", "alicepassword", "", "")
	session := ts.login("alice", "alicepassword")
	past := ts.clock.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	for _, body := range []map[string]any{
		{},
		{"name": ""},
		{"name": "x\nforged log line"},
		{"name": "x", "scopes": []string{"root"}},
		{"name": "x", "scopes": "generate"},
		{"name": "x", "expires_at": past},
		{"name": "x", "expires_at": "tomorrow"},
		{"name": "x", "expires_in_days": 0},
		{"name": "x", "expires_in_days": 1, "expires_at": past},
	} {
		if r := ts.postJSON("/users/me/keys", session, body); r.status != 422 {
			t.Errorf("%v: %d %s", body, r.status, r.body)
		}
	}
}
