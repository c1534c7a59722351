package api

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"gpt2d/auth"
)

func TestForgedTokenTimesAreRefused(t *testing.T) {
	ts := start(t)
	admin := ts.admin("root")
	key := []byte(strings.Repeat("t", 32)) // the harness's signing key
	sign := func(edit func(c jwt.MapClaims)) string {
		now := ts.clock.Now()
		c := jwt.MapClaims{"sub": "1", "iss": "gpt2d", "aud": "gpt2d", "jti": "x",
			"iat": float64(now.UnixMilli()) / 1000, "exp": now.Add(time.Minute).Unix()}
		edit(c)
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := ts.clock.Now()
	tests := []struct {
		name   string
		edit   func(c jwt.MapClaims)
		status int
	}{
		{"well-formed, signed with the key", func(jwt.MapClaims) {}, 200},
		{"iat within the clock skew", func(c jwt.MapClaims) { c["iat"] = float64(now.Add(20*time.Second).UnixMilli()) / 1000 }, 200},
		{"iat ten years ahead", func(c jwt.MapClaims) {
			c["iat"] = float64(now.AddDate(10, 0, 0).UnixMilli()) / 1000
			c["exp"] = now.AddDate(10, 0, 0).Add(time.Minute).Unix()
		}, 401},
		{"nbf an hour ahead", func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }, 401},
		{"lifetime of a year", func(c jwt.MapClaims) { c["exp"] = now.AddDate(1, 0, 0).Unix() }, 401},
		{"lifetime one minute over the TTL", func(c jwt.MapClaims) { c["exp"] = now.Add(31 * time.Minute).Unix() }, 401},
	}
	before := scrape(t, ts, admin).counter(t, "gpt2d_auth_failures_total", "reason", auth.ReasonClaims)
	refused := 0
	for _, tt := range tests {
		r := ts.get("/users/me", sign(tt.edit))
		if r.status != tt.status {
			t.Errorf("%s: status %d, want %d (%s)", tt.name, r.status, tt.status, r.body)
		}
		if r.status == 401 {
			refused++
			wantBearerChallenge(t, r) // generic: not "expired"
		}
	}
	if got := scrape(t, ts, admin).counter(t, "gpt2d_auth_failures_total", "reason", auth.ReasonClaims) - before; got != float64(refused) {
		t.Fatalf("%v refusals counted as bad_claims, want %d", got, refused)
	}

	// A future-dated token does not survive a logout either.
	future := sign(func(c jwt.MapClaims) { c["iat"] = float64(now.Add(20*time.Second).UnixMilli()) / 1000 })
	wantStatus(t, ts.postJSON("/logout", admin, nil), 200)
	wantStatus(t, ts.get("/users/me", future), 401)
}

func TestExpiredAPIKeyAndTokenSayExpired(t *testing.T) {
	ts := start(t)
	ts.register("alice", "alice-secret-42", "", "")
	session := ts.login("alice", "alice-secret-42")
	key, _ := ts.createKey(session, map[string]any{"name": "short", "expires_in_days": 1})
	ts.clock.Advance(25 * time.Hour)
	for _, cred := range []string{session, key} {
		r := ts.get("/users/me", cred)
		wantDetail(t, r, 401, detailBadCredentials)
		if got := r.header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token", error_description="token expired"` {
			t.Fatalf("WWW-Authenticate = %q", got)
		}
	}
}

func TestRotatingTheKeyFileEndsEveryAccessToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "jwt.key")
	if err := os.WriteFile(file, []byte(strings.Repeat("t", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := start(t, func(_ *Config, a *auth.Config) { a.KeyFile = file })
	ts.register("alice", "alice-secret-42", "", "")
	access, refresh := ts.loginPair("alice", "alice-secret-42")
	wantStatus(t, ts.get("/users/me", access), 200)

	if err := auth.RotateKeyFile(file); err != nil {
		t.Fatal(err)
	}
	ts.clock.Advance(2 * time.Second) // the server looks at the file once a second
	wantDetail(t, ts.get("/users/me", access), 401, detailBadCredentials)
	// Refresh tokens are not signed with the key: they get a new one.
	r := ts.postForm("/token/refresh", map[string][]string{"refresh_token": {refresh}})
	wantStatus(t, r, 200)
	wantStatus(t, ts.get("/users/me", r.json(t)["access_token"].(string)), 200)
}
