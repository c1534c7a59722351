package api

import (
	"bytes"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"gpt2d/auth"
	"gpt2d/store"
)

func TestUsernamesAreCheckedAsIdentities(t *testing.T) {
	ts := start(t)
	ts.register("admin", "admin-secret-77", "", "")
	tests := []struct {
		name, username string
		status         int
		detail         string // for 400
	}{
		{"fullwidth folds to the existing name", "ａｄｍｉｎ", 400, detailUsernameTaken},
		{"upper case folds to the existing name", "ADMIN", 400, detailUsernameTaken},
		{"Cyrillic a in a Latin name", "аdmin", 422, ""},
		{"Greek omicron in a Latin name", "rοot-user", 422, ""},
		{"all-Cyrillic look-alike", "аррӏе", 422, ""},
		{"zero-width space", "ad\u200bmin", 422, ""},
		{"zero-width joiner", "ad\u200dmin", 422, ""},
		{"soft hyphen", "ad\u00admin", 422, ""},
		{"bidi override", "\u202eadmin", 422, ""},
		{"leading space", " admin", 422, ""},
		{"trailing space", "admin ", 422, ""},
		{"all spaces", "     ", 422, ""},
		{"inner space", "ad min", 422, ""},
		{"a real Cyrillic name", "Дмитрий", 200, ""},
		{"Japanese", "山田たろう", 200, ""},
		{"accented Latin", "José-María", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.postJSON("/users", "", map[string]any{"username": tt.username, "password": "some-secret-771"})
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.detail != "" && r.detail(t) != tt.detail {
				t.Fatalf("detail %v", r.detail(t))
			}
		})
	}
	// Lookups normalise the same way.
	ts.login("ＡＤＭＩＮ", "admin-secret-77")
	n, _ := ts.db.CountUsers()
	if n != 4 {
		t.Fatalf("%d users, want 4", n)
	}
}

func TestStoredUsernamesFromBeforeTheProfileKeepWorking(t *testing.T) {
	ts := start(t)
	// A name the old rules allowed and PRECIS refuses (an inner space),
	// stored as the old code did.
	legacy := &store.User{Username: "Old Timer", PasswordHash: mustHash(t, "old-timer-secret"), Role: store.RoleUser}
	if err := ts.db.CreateUser(legacy); err != nil {
		t.Fatal(err)
	}
	ts.login("Old Timer", "old-timer-secret")
	ts.login("old timer", "old-timer-secret")
	wantStatus(t, ts.postJSON("/users", "", map[string]any{"username": "old timer", "password": "some-secret-771"}), 422)
}

func TestInvalidUTF8CredentialsAre422(t *testing.T) {
	ts := start(t)
	ts.register("alice", "alice-secret-42", "", "")
	bodies := []string{
		"{\"username\":\"bad\xffname\",\"password\":\"some-secret-771\"}",
		"{\"username\":\"goodname\",\"password\":\"bad\xffsecret-771\"}",
		`{"username":"goodname","password":"lone\udc00surrogate-1"}`,
	}
	for _, b := range bodies {
		r := ts.do("POST", "/users", "", "application/json", bytes.NewReader([]byte(b)))
		wantStatus(t, r, 422)
		if !strings.Contains(string(r.body), "UTF-8") {
			t.Fatalf("body %s", r.body)
		}
	}
	if _, err := ts.db.UserByUsername("goodname"); err == nil {
		t.Fatal("an account was made with a rewritten password")
	}
	// The login form too.
	form := "username=alice&password=alice-secret-4%FF"
	r := ts.do("POST", "/token", "", "application/x-www-form-urlencoded", strings.NewReader(form))
	wantStatus(t, r, 422)
	form = "username=al%FFice&password=alice-secret-42"
	wantStatus(t, ts.do("POST", "/token", "", "application/x-www-form-urlencoded", strings.NewReader(form)), 422)
}

func TestCredentialsInTheQueryStringAreRefused(t *testing.T) {
	ts := start(t)
	ts.register("alice", "alice-secret-42", "", "")
	body := url.Values{"username": {"alice"}, "password": {"alice-secret-42"}}.Encode()
	for _, path := range []string{"/token?username=alice&password=alice-secret-42", "/token?password=x"} {
		r := ts.do("POST", path, "", "application/x-www-form-urlencoded", strings.NewReader(body))
		wantStatus(t, r, 400)
		if strings.Contains(string(r.body), "access_token") {
			t.Fatal("tokens issued")
		}
	}
	wantStatus(t, ts.do("POST", "/token/refresh?refresh_token=x", "", "application/x-www-form-urlencoded", strings.NewReader("refresh_token=x")), 400)
	ts.login("alice", "alice-secret-42")
}

func TestWeakPasswordsAreRefused(t *testing.T) {
	ts := start(t)
	root := ts.admin("root")
	for _, tt := range []struct{ username, password, role, token string }{
		{"carol", "password1", "", ""},
		{"carol", "Qwerty123", "", ""},
		{"carol", "iloveyou", "", ""},
		{"carol-the-admin", "carol-the-admin", "admin", root},
		{"carol-the-admin", "CAROL-THE-ADMIN", "admin", root},
		{"mallory", "baseball", "admin", root},
	} {
		r := ts.postJSON("/users", tt.token, map[string]any{"username": tt.username, "password": tt.password, "role": tt.role})
		wantStatus(t, r, 422)
		if strings.Contains(string(r.body), tt.password) {
			t.Fatal("the password is echoed")
		}
	}
	ts.register("carol", "carol-secret-42", "", "")
	tok := ts.login("carol", "carol-secret-42")
	wantStatus(t, ts.postJSON("/users/me/password", tok, map[string]any{"current_password": "carol-secret-42", "new_password": "football"}), 422)
	wantStatus(t, ts.postJSON("/users/me/password", tok, map[string]any{"current_password": "carol-secret-42", "new_password": "Carol"}), 422)
}

func TestBlockedWordsSurviveNormalisation(t *testing.T) {
	ts := start(t)
	ts.register("alice", "alice-secret-42", "", "")
	tok := ts.login("alice", "alice-secret-42")
	for _, prompt := range []string{"I hate this", "I h\u200bate this", "I ＨＡＴＥ this", "I Ha\u00adte this", "VIOLENCE!"} {
		r := ts.postJSON("/generate", tok, map[string]any{"prompt": prompt, "max_length": 12})
		wantDetail(t, r, 400, detailBlockedContent)
		if r.json(t)["setting"] != "--blocked-words" {
			t.Fatalf("400 does not name the setting: %s", r.body)
		}
		r = ts.postJSON("/v1/completions", tok, map[string]any{"model": "gpt2-tiny", "prompt": prompt, "max_tokens": 2})
		wantStatus(t, r, 400)
	}
	wantStatus(t, ts.postJSON("/generate", tok, map[string]any{"prompt": "whatever happens", "max_length": 12}), 200)

	// An empty list disables the filter.
	open := start(t, func(c *Config, _ *auth.Config) { c.BlockedWords = []string{} })
	open.register("bob", "bob-secret-4242", "", "")
	wantStatus(t, open.postJSON("/generate", open.login("bob", "bob-secret-4242"), map[string]any{"prompt": "I hate this", "max_length": 12}), 200)
}

func mustHash(t *testing.T, password string) []byte {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
