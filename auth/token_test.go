package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"gpt2d/store"
)

func TestAccessTokenRejected(t *testing.T) {
	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name  string
		token func(s *Service, u *store.User, clk *clock) string
	}{
		{"alg none", func(s *Service, u *store.User, clk *clock) string {
			return sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, validClaims(s, u, clk))
		}},
		{"HS512 with the right key", func(s *Service, u *store.User, clk *clock) string {
			return sign(jwt.SigningMethodHS512, testKey, validClaims(s, u, clk))
		}},
		{"wrong key", func(s *Service, u *store.User, clk *clock) string {
			return sign(jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), validClaims(s, u, clk))
		}},
		{"edited payload", func(s *Service, u *store.User, clk *clock) string {
			tok, _ := s.IssueAccessToken(u)
			parts := strings.Split(tok, ".")
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			payload = []byte(strings.Replace(string(payload), `"sub":"1"`, `"sub":"2"`, 1))
			parts[1] = base64.RawURLEncoding.EncodeToString(payload)
			return strings.Join(parts, ".")
		}},
		{"no exp", func(s *Service, u *store.User, clk *clock) string {
			c := validClaims(s, u, clk)
			delete(c, "exp")
			return sign(jwt.SigningMethodHS256, testKey, c)
		}},
		{"no iat", func(s *Service, u *store.User, clk *clock) string {
			c := validClaims(s, u, clk)
			delete(c, "iat")
			return sign(jwt.SigningMethodHS256, testKey, c)
		}},
		{"wrong audience", func(s *Service, u *store.User, clk *clock) string {
			c := validClaims(s, u, clk)
			c["aud"] = "someone-else"
			return sign(jwt.SigningMethodHS256, testKey, c)
		}},
		{"wrong issuer", func(s *Service, u *store.User, clk *clock) string {
			c := validClaims(s, u, clk)
			c["iss"] = "evil"
			return sign(jwt.SigningMethodHS256, testKey, c)
		}},
		{"expired", func(s *Service, u *store.User, clk *clock) string {
			tok, _ := s.IssueAccessToken(u)
			clk.Advance(s.TokenTTL() + time.Second)
			return tok
		}},
		{"deleted user", func(s *Service, u *store.User, clk *clock) string {
			tok, _ := s.IssueAccessToken(u)
			s.db.DeleteUser(u.ID)
			return tok
		}},
		{"disabled user", func(s *Service, u *store.User, clk *clock) string {
			tok, _ := s.IssueAccessToken(u)
			s.Update(u.ID, func(u *store.User) error { u.Disabled = true; return nil })
			return tok
		}},
		{"after password change", func(s *Service, u *store.User, clk *clock) string {
			tok, _ := s.IssueAccessToken(u)
			if _, err := s.ChangePassword(u, "correct horse", "new password!"); err != nil {
				t.Fatal(err)
			}
			return tok
		}},
		{"after logout in the same millisecond", func(s *Service, u *store.User, clk *clock) string {
			tok, _ := s.IssueAccessToken(u)
			s.Logout(u.ID)
			return tok
		}},
		{"after role change", func(s *Service, u *store.User, clk *clock) string {
			tok, _ := s.IssueAccessToken(u)
			s.Update(u.ID, func(u *store.User) error { u.Role = store.RoleAdmin; return nil })
			return tok
		}},
	}
	// The reason each refusal is counted under in the auth-failure metric.
	reasons := map[string]string{
		"alg none": ReasonSignature, "HS512 with the right key": ReasonSignature, "wrong key": ReasonSignature,
		"edited payload": ReasonSignature, "no exp": ReasonClaims, "no iat": ReasonClaims,
		"wrong audience": ReasonClaims, "wrong issuer": ReasonClaims, "expired": ReasonExpired,
		"deleted user": ReasonUnknownUser, "disabled user": ReasonDisabledUser,
		"after password change": ReasonRevoked, "after logout in the same millisecond": ReasonRevoked,
		"after role change": ReasonRevoked,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, clk := newService(t, Config{})
			u, err := s.Register("alice", "correct horse", store.RoleUser)
			if err != nil || u.ID != 1 {
				t.Fatal(u, err)
			}
			tok := tt.token(s, u, clk)
			got, _, err := s.ParseAccessToken(tok)
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("ParseAccessToken = %v, %v; want ErrInvalidToken", got, err)
			}
			var te *TokenError
			if !errors.As(err, &te) || te.Reason != reasons[tt.name] {
				t.Fatalf("error %v, want reason %q", err, reasons[tt.name])
			}
		})
	}
}

// validClaims are the claims IssueAccessToken would sign, for forging.
func validClaims(s *Service, u *store.User, clk *clock) jwt.MapClaims {
	now := clk.Now()
	return jwt.MapClaims{
		"sub": "1", "iss": "gpt2d", "aud": "gpt2d", "jti": "j",
		"iat": float64(now.UnixMilli()) / 1000, "exp": now.Add(time.Minute).Unix(),
	}
}

func TestAccessTokenAccepted(t *testing.T) {
	s, _, clk := newService(t, Config{})
	u, _ := s.Register("alice", "correct horse", store.RoleUser)
	// A forged-looking but correctly signed token is fine: the key is the
	// secret, nothing else.
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, validClaims(s, u, clk)).SignedString(testKey)
	if _, _, err := s.ParseAccessToken(tok); err != nil {
		t.Fatalf("hand-signed valid token: %v", err)
	}
	// A token issued right after logout, at the same instant, works.
	s.Logout(u.ID)
	u, _ = s.db.UserByID(u.ID)
	tok, _ = s.IssueAccessToken(u)
	got, claims, err := s.ParseAccessToken(tok)
	if err != nil || got.ID != u.ID {
		t.Fatalf("fresh token after logout: %v", err)
	}
	// exp has whole seconds, iat milliseconds.
	if exp := claims.ExpiresAt.Sub(claims.IssuedAt.Time); exp <= 30*time.Minute-time.Second || exp > 30*time.Minute {
		t.Fatalf("lifetime %v, want 30m", exp)
	}
	clk.Advance(29 * time.Minute)
	if _, _, err := s.ParseAccessToken(tok); err != nil {
		t.Fatalf("token at 29 min: %v", err)
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
