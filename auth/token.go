package auth

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"gpt2d/store"
)

// Alg is the only JWT signing algorithm accepted: tokens with any other
// "alg" header (including "none") are refused before the key is used.
const Alg = "HS256"

// MinKeyBytes is the shortest accepted HMAC key.
const MinKeyBytes = 32

// Claims are the claims of an access token.
//
// iat carries milliseconds (RFC 7519 NumericDate may be fractional): it is
// compared against the user's TokensValidAfter, and whole seconds would
// let a token issued just before a logout survive it or reject one issued
// just after.
type Claims struct {
	Subject   string           `json:"sub"`
	Issuer    string           `json:"iss"`
	Audience  jwt.ClaimStrings `json:"aud"`
	IssuedAt  Millis           `json:"iat"`
	ExpiresAt *jwt.NumericDate `json:"exp,omitempty"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	ID        string           `json:"jti"`
}

// GetExpirationTime implements jwt.Claims.
func (c *Claims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }

// GetIssuedAt implements jwt.Claims.
func (c *Claims) GetIssuedAt() (*jwt.NumericDate, error) {
	if c.IssuedAt.IsZero() {
		return nil, nil
	}
	return jwt.NewNumericDate(c.IssuedAt.Time), nil
}

// GetNotBefore implements jwt.Claims.
func (c *Claims) GetNotBefore() (*jwt.NumericDate, error) { return c.NotBefore, nil }

// GetIssuer implements jwt.Claims.
func (c *Claims) GetIssuer() (string, error) { return c.Issuer, nil }

// GetSubject implements jwt.Claims.
func (c *Claims) GetSubject() (string, error) { return c.Subject, nil }

// GetAudience implements jwt.Claims.
func (c *Claims) GetAudience() (jwt.ClaimStrings, error) { return c.Audience, nil }

// Validate implements jwt.ClaimsValidator: it requires the claims every
// gpt2d token has and jwt's own checks leave optional.
func (c *Claims) Validate() error {
	switch {
	case c.IssuedAt.IsZero():
		return errors.New("missing iat")
	case c.ExpiresAt == nil:
		return errors.New("missing exp")
	case c.ID == "":
		return errors.New("missing jti")
	}
	if _, err := c.userID(); err != nil {
		return err
	}
	return nil
}

func (c *Claims) userID() (uint64, error) {
	id, err := strconv.ParseUint(c.Subject, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("bad sub %q", c.Subject)
	}
	return id, nil
}

// Millis is a JSON NumericDate with millisecond precision.
type Millis struct{ time.Time }

// MarshalJSON writes seconds since the epoch with three decimals.
func (m Millis) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(float64(m.UnixMilli())/1000, 'f', 3, 64)), nil
}

// UnmarshalJSON reads seconds since the epoch, integral or fractional.
func (m *Millis) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("iat: %w", err)
	}
	f, err := n.Float64()
	if err != nil || f <= 0 || f > 1e12 {
		return fmt.Errorf("iat: bad value %s", b)
	}
	m.Time = time.UnixMilli(int64(math.Round(f * 1000)))
	return nil
}

// Keyfunc returns the HMAC key for a token after pinning its algorithm to
// HS256. Use it with jwt.Parse or the Fiber JWT middleware.
func (s *Service) Keyfunc(t *jwt.Token) (any, error) {
	if t.Method == nil || t.Method.Alg() != Alg {
		return nil, tokenError(ReasonSignature, "unexpected signing algorithm %v", t.Header["alg"])
	}
	return s.keys.current(), nil
}

// IssueAccessToken signs a new access token for u. Its iat is strictly
// after u.TokensValidAfter + ClockSkew (see Authenticate), so a token
// issued right after a logout — in the same millisecond, or within the
// clock skew — is valid; its iat then lies ahead by up to ClockSkew.
func (s *Service) IssueAccessToken(u *store.User) (string, error) {
	iat := s.now().Truncate(time.Millisecond)
	if floor := u.TokensValidAfter.Truncate(time.Millisecond).Add(s.cfg.ClockSkew + time.Millisecond); iat.Before(floor) {
		iat = floor
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	claims := &Claims{
		Subject:   strconv.FormatUint(u.ID, 10),
		Issuer:    s.cfg.Issuer,
		Audience:  jwt.ClaimStrings{s.cfg.Audience},
		IssuedAt:  Millis{iat},
		ExpiresAt: jwt.NewNumericDate(iat.Add(s.cfg.TokenTTL)),
		ID:        hex.EncodeToString(jti[:]),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.keys.current())
}

// Authenticate checks the claims of a token whose signature has been
// verified (by the API's one JWT middleware) and returns its user, read
// fresh from the store. It requires exp (against the injected clock), iss,
// aud, iat and jti; it refuses an iat or nbf further in the future than
// Config.ClockSkew and a lifetime (exp − iat) longer than the configured
// one — a token that claims to be issued later than it was would
// otherwise outlive a logout — and it refuses tokens of users that were
// deleted or disabled, and tokens issued at or before the user's
// TokensValidAfter (logout, password or role change). Every failure is a
// *TokenError (so it matches ErrInvalidToken).
func (s *Service) Authenticate(claims *Claims) (*store.User, error) {
	if err := s.validator.Validate(claims); err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, tokenError(ReasonExpired, "%v", err)
		}
		return nil, tokenError(ReasonClaims, "%v", err)
	}
	horizon := s.now().Add(s.cfg.ClockSkew + time.Millisecond)
	switch {
	case claims.IssuedAt.After(horizon):
		return nil, tokenError(ReasonClaims, "iat %s is in the future", claims.IssuedAt.UTC().Format(time.RFC3339))
	case claims.NotBefore != nil && claims.NotBefore.After(horizon):
		return nil, tokenError(ReasonClaims, "nbf %s is in the future", claims.NotBefore.UTC().Format(time.RFC3339))
	case claims.ExpiresAt.Sub(claims.IssuedAt.Time) > s.cfg.TokenTTL:
		return nil, tokenError(ReasonClaims, "lifetime %s exceeds %s", claims.ExpiresAt.Sub(claims.IssuedAt.Time), s.cfg.TokenTTL)
	}
	id, _ := claims.userID() // checked by Validate
	u, err := s.activeUser(id)
	if err != nil {
		return nil, err
	}
	// A token's iat may run ahead of real time by up to ClockSkew (its
	// issuer's clock), so it may have been issued as early as
	// iat − ClockSkew: revoked unless that is after the revocation.
	if !claims.IssuedAt.After(u.TokensValidAfter.Add(s.cfg.ClockSkew)) {
		return nil, tokenError(ReasonRevoked, "token issued before the user's tokens were revoked")
	}
	return u, nil
}

// activeUser reads user id and refuses deleted and disabled users with a
// *TokenError.
func (s *Service) activeUser(id uint64) (*store.User, error) {
	u, err := s.db.UserByID(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, tokenError(ReasonUnknownUser, "user %d no longer exists", id)
	}
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, tokenError(ReasonDisabledUser, "user %d is disabled", id)
	}
	return u, nil
}
