package auth

import (
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"gpt2d/store"
)

// Signature and algorithm checks, and everything below, are also driven
// through the API's JWT middleware (api.TestTokenRejected), the one path
// that parses tokens.

func TestAuthenticateRefusesClaims(t *testing.T) {
	s, _, clk := newService(t, Config{})
	u, err := s.Register("alice", "correct horse", store.RoleUser)
	if err != nil {
		t.Fatal(err)
	}
	valid := func() *Claims {
		now := clk.Now()
		return &Claims{Subject: "1", Issuer: "gpt2d", Audience: jwt.ClaimStrings{"gpt2d"}, ID: "j",
			IssuedAt: Millis{now}, ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))}
	}
	tests := []struct {
		name   string
		edit   func(c *Claims)
		reason string
	}{
		{"valid", func(*Claims) {}, ""},
		{"no exp", func(c *Claims) { c.ExpiresAt = nil }, ReasonClaims},
		{"no iat", func(c *Claims) { c.IssuedAt = Millis{} }, ReasonClaims},
		{"no jti", func(c *Claims) { c.ID = "" }, ReasonClaims},
		{"wrong audience", func(c *Claims) { c.Audience = jwt.ClaimStrings{"other"} }, ReasonClaims},
		{"expired", func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(clk.Now().Add(-time.Second)) }, ReasonExpired},
		{"iat ten years ahead", func(c *Claims) {
			c.IssuedAt = Millis{clk.Now().AddDate(10, 0, 0)}
			c.ExpiresAt = jwt.NewNumericDate(c.IssuedAt.Add(time.Minute))
		}, ReasonClaims},
		{"iat within the clock skew", func(c *Claims) { c.IssuedAt = Millis{clk.Now().Add(30 * time.Second)} }, ""},
		{"nbf ahead", func(c *Claims) { c.NotBefore = jwt.NewNumericDate(clk.Now().Add(time.Hour)) }, ReasonClaims},
		{"lifetime over the TTL", func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(clk.Now().Add(31 * time.Minute)) }, ReasonClaims},
		{"unknown user", func(c *Claims) { c.Subject = "9" }, ReasonUnknownUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.edit(c)
			got, err := s.Authenticate(c)
			var te *TokenError
			switch {
			case tt.reason == "" && (err != nil || got.ID != u.ID):
				t.Fatalf("refused: %v", err)
			case tt.reason != "" && (!errors.As(err, &te) || te.Reason != tt.reason || !errors.Is(err, ErrInvalidToken)):
				t.Fatalf("Authenticate = %v, want reason %s", err, tt.reason)
			}
		})
	}
	// Revocation: after a logout the old iat is refused, whatever its
	// claims say.
	old := valid()
	s.Logout(u.ID)
	if _, err := s.Authenticate(old); !errors.As(err, new(*TokenError)) {
		t.Fatalf("token from before logout: %v", err)
	}
}

func TestRefreshTokenRotatesAndReuseRevokesFamily(t *testing.T) {
	s, _, _ := newService(t, Config{})
	u, _ := s.Register("alice", "correct horse", store.RoleUser)
	r1, err := s.IssueRefreshToken(u)
	if err != nil {
		t.Fatal(err)
	}
	_, access, r2, err := s.Refresh(r1)
	if err != nil || access == "" || r2 == r1 {
		t.Fatalf("first refresh: %v", err)
	}
	if _, _, _, err := s.Refresh(r1); !errors.Is(err, ErrRefreshReuse) {
		t.Fatalf("replayed r1: %v, want ErrRefreshReuse", err)
	}
	if _, _, _, err := s.Refresh(r2); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("r2 after family revoked: %v, want ErrInvalidToken", err)
	}
}

func TestRefreshTokenRevokedByLogoutAndExpiry(t *testing.T) {
	s, _, clk := newService(t, Config{RefreshTTL: time.Hour})
	u, _ := s.Register("alice", "correct horse", store.RoleUser)
	r, _ := s.IssueRefreshToken(u)
	s.Logout(u.ID)
	if _, _, _, err := s.Refresh(r); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("after logout: %v", err)
	}
	r, _ = s.IssueRefreshToken(u)
	clk.Advance(2 * time.Hour)
	if _, _, _, err := s.Refresh(r); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired: %v", err)
	}
	if _, _, _, err := s.Refresh("garbage"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("garbage: %v", err)
	}
}
