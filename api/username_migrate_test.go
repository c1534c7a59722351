package api

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"gpt2d/auth"
	"gpt2d/store"
	"gpt2d/store/storetest"
)

// TestAccountsThatFoldAlikeStayApartAfterUpgrade serves a bbolt file
// written before usernames were folded with PRECIS, holding "ｂｏｂ"
// (fullwidth) and "Bob" as two accounts: after the upgrade each still
// logs in with its own password and is itself, no new account can take
// "bob" in any spelling, and admins find the collision in the audit
// trail.
func TestAccountsThatFoldAlikeStayApartAfterUpgrade(t *testing.T) {
	boltOnly(t)
	hash := func(pw string) []byte {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	path := filepath.Join(t.TempDir(), "gpt2d.db")
	storetest.WriteOldBoltFile(t, path, []store.User{
		{Username: "root", Role: store.RoleAdmin, PasswordHash: hash("root-password-1")},
		{Username: "ｂｏｂ", Role: store.RoleUser, PasswordHash: hash("fullwidth-password-1")},
		{Username: "Bob", Role: store.RoleUser, PasswordHash: hash("ascii-password-22")},
	})
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := start(t, func(c *Config, _ *auth.Config) { c.Store = db })

	for _, c := range []struct{ login, password, want string }{
		{"ｂｏｂ", "fullwidth-password-1", "ｂｏｂ"},
		{"ＢＯＢ", "fullwidth-password-1", "ｂｏｂ"},
		{"Bob", "ascii-password-22", "Bob"},
		{"bob", "ascii-password-22", "Bob"},
	} {
		me := ts.get("/users/me", ts.login(c.login, c.password)).json(t)
		if me["username"] != c.want {
			t.Errorf("logged in as %q, /users/me is %v; want %q", c.login, me["username"], c.want)
		}
	}
	r := ts.postForm("/token", map[string][]string{"username": {"bob"}, "password": {"fullwidth-password-1"}})
	wantStatus(t, r, 401) // "bob" is Bob's, not ｂｏｂ's

	for _, name := range []string{"bob", "BOB", "ｂｏｂ", "Ｂob"} {
		r := ts.postJSON("/users", "", map[string]any{"username": name, "password": "a-fresh-password-9"})
		wantDetail(t, r, 400, "Username already registered")
	}

	var events []store.Event
	if err := json.Unmarshal(ts.get("/admin/audit", ts.login("root", "root-password-1")).body, &events); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range events {
		found = found || (e.Action == "user.username_shadowed" && e.Target == "Bob" && e.Detail["held_by"] == "ｂｏｂ")
	}
	if !found {
		t.Fatalf("GET /admin/audit does not report the collision: %+v", events)
	}
	if n, _ := db.CountUsers(); n != 3 {
		t.Fatalf("%d users after the upgrade, want 3", n)
	}
}
