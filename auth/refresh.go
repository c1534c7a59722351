package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"gpt2d/store"
)

// A refresh token is 32 random bytes, base64url-encoded. Only its SHA-256
// is stored: a copy of the store does not yield usable tokens, and the
// token's entropy makes a slow hash unnecessary.

func newRefreshSecret() (token string, hash []byte, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, hashRefresh(token), nil
}

func hashRefresh(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// IssueRefreshToken starts a new token family for u (at login) and returns
// its first token.
func (s *Service) IssueRefreshToken(u *store.User) (string, error) {
	token, hash, err := newRefreshSecret()
	if err != nil {
		return "", err
	}
	var family [16]byte
	rand.Read(family[:])
	now := s.now()
	err = s.db.PutRefreshToken(&store.RefreshToken{
		Hash:      hash,
		UserID:    u.ID,
		Family:    base64.RawURLEncoding.EncodeToString(family[:]),
		CreatedAt: now,
		ExpiresAt: now.Add(s.cfg.RefreshTTL),
	}, now)
	if err != nil {
		return "", fmt.Errorf("store refresh token: %w", err)
	}
	return token, nil
}

// Refresh consumes a refresh token and returns its user, a new access
// token and the next refresh token of the family. A token presented a
// second time revokes its family and gives ErrRefreshReuse; unknown,
// expired and revoked tokens, and those of deleted or disabled users, give
// ErrInvalidToken.
func (s *Service) Refresh(token string) (u *store.User, access, refresh string, err error) {
	next, nextHash, err := newRefreshSecret()
	if err != nil {
		return nil, "", "", err
	}
	now := s.now()
	old, err := s.db.RotateRefreshToken(hashRefresh(token), &store.RefreshToken{
		Hash:      nextHash,
		CreatedAt: now,
		ExpiresAt: now.Add(s.cfg.RefreshTTL),
	}, now)
	switch {
	case errors.Is(err, store.ErrTokenReused):
		return nil, "", "", ErrRefreshReuse
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrTokenExpired):
		return nil, "", "", fmt.Errorf("%w: %v", ErrInvalidToken, err)
	case err != nil:
		return nil, "", "", err
	}
	u, err = s.db.UserByID(old.UserID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (u.Disabled || !old.CreatedAt.After(u.TokensValidAfter))) {
		s.db.RevokeRefreshTokens(old.UserID)
		return nil, "", "", ErrInvalidToken
	}
	if err != nil {
		return nil, "", "", err
	}
	access, err = s.IssueAccessToken(u)
	if err != nil {
		return nil, "", "", err
	}
	return u, access, next, nil
}
