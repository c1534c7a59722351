package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"gpt2d/auth"
)

func TestAdminRightsOfAKeyAreItsScopes(t *testing.T) {
	ts := start(t, func(c *Config, _ *auth.Config) { c.RegistrationClosed = true })
	root := ts.admin("root")
	genKey, genID := ts.createKey(root, map[string]any{"name": "gen"})
	adminKey, adminID := ts.createKey(root, map[string]any{"name": "ops", "scopes": []string{"admin"}})

	// An admin's generate-only key is no admin, on every route that asks.
	wantDetail(t, ts.postJSON("/users", genKey, map[string]any{"username": "mallory", "password": "mallory-pass-77", "role": "admin"}),
		403, detailAdminRequired)
	wantDetail(t, ts.postJSON("/users", genKey, map[string]any{"username": "walkin", "password": "walkin-pass-77"}),
		403, detailRegistrationClose)
	wantStatus(t, ts.get("/admin/users", genKey), 403)
	wantStatus(t, ts.get("/metrics", genKey), 403)
	if _, err := ts.db.UserByUsername("mallory"); err == nil {
		t.Fatal("mallory was created")
	}

	// The admin-scoped key may, and the audit trail names it.
	ts.register("second-admin", "second-pass-77", "admin", adminKey)
	events, err := ts.db.ListAudit(0, 20)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range events {
		if e.Action == "user.register" && e.Target == "second-admin" {
			found = fmt.Sprint(e.Detail["key_id"]) == fmt.Sprint(adminID)
		}
		if e.Action == "user.register.denied" && fmt.Sprint(e.Detail["key_id"]) != fmt.Sprint(genID) {
			t.Errorf("denied event does not name key %d: %v", genID, e.Detail)
		}
	}
	if !found {
		t.Fatalf("register event does not name key %d: %+v", adminID, events)
	}
}

func TestSessionsAndKeysEndSeparately(t *testing.T) {
	ts := start(t)
	ts.register("alice", "alice-secret-42", "", "")
	session := ts.login("alice", "alice-secret-42")
	k1, _ := ts.createKey(session, map[string]any{"name": "ci"})
	k2, _ := ts.createKey(session, map[string]any{"name": "laptop"})

	// Logout and a password change end sessions, not API keys (policy:
	// keys belong to programs; revoke them with revoke-all).
	wantStatus(t, ts.postJSON("/logout", session, nil), 200)
	wantStatus(t, ts.get("/users/me", session), 401)
	wantStatus(t, ts.get("/users/me", k1), 200)
	session = ts.login("alice", "alice-secret-42")
	r := ts.postJSON("/users/me/password", session, map[string]any{"current_password": "alice-secret-42", "new_password": "alice-secret-43"})
	wantStatus(t, r, 200)
	if r.json(t)["api_keys_kept"] != float64(2) {
		t.Fatalf("password change answer %s", r.body)
	}
	wantStatus(t, ts.get("/users/me", session), 401)
	wantStatus(t, ts.get("/users/me", k2), 200)

	// revoke-all needs a session and ends every key.
	session = ts.login("alice", "alice-secret-43")
	wantDetail(t, ts.postJSON("/users/me/keys/revoke-all", k1, nil), 403, detailSessionRequired)
	r = ts.postJSON("/users/me/keys/revoke-all", session, nil)
	wantStatus(t, r, 200)
	if r.json(t)["revoked"] != float64(2) {
		t.Fatalf("revoke-all answer %s", r.body)
	}
	for _, k := range []string{k1, k2} {
		wantStatus(t, ts.get("/users/me", k), 401)
	}
	wantStatus(t, ts.get("/users/me", session), 200)
}

func TestKeysOfAReenabledUserStayDisarmedUntilRearmed(t *testing.T) {
	ts := start(t)
	root := ts.admin("root")
	ts.register("alice", "alice-secret-42", "", "")
	session := ts.login("alice", "alice-secret-42")
	old, _ := ts.createKey(session, map[string]any{"name": "old"})
	wantStatus(t, ts.get("/users/me", old), 200)

	patch := func(body string) {
		t.Helper()
		wantStatus(t, ts.do("PATCH", "/admin/users/2", root, "application/json", strings.NewReader(body)), 200)
	}
	patch(`{"disabled":true}`)
	wantStatus(t, ts.get("/users/me", old), 401)
	wantDetail(t, ts.postJSON("/admin/users/2/keys/rearm", root, nil), 409, "User is disabled; enable it first")
	patch(`{"disabled":false}`)
	wantStatus(t, ts.get("/users/me", old), 401) // still disarmed

	session = ts.login("alice", "alice-secret-42")
	fresh, _ := ts.createKey(session, map[string]any{"name": "new"})
	wantStatus(t, ts.get("/users/me", fresh), 200)
	r := ts.get("/users/me/keys", session)
	var keys []map[string]any
	json.Unmarshal(r.body, &keys)
	if len(keys) != 2 || keys[0]["disarmed"] != true || keys[1]["disarmed"] != false {
		t.Fatalf("keys %s", r.body)
	}

	// Only an admin re-arms, explicitly.
	wantStatus(t, ts.postJSON("/admin/users/2/keys/rearm", session, nil), 403)
	r = ts.postJSON("/admin/users/2/keys/rearm", root, nil)
	wantStatus(t, r, 200)
	wantStatus(t, ts.get("/users/me", old), 200)
	wantStatus(t, ts.get("/users/me", fresh), 200)
	wantDetail(t, ts.postJSON("/admin/users/99/keys/rearm", root, nil), 404, detailUserNotFound)
}
