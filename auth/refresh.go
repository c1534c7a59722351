package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"gpt2d/store"
)

// A refresh token is "F.S": F names its family — base64url of the user id
// (8 bytes, big-endian) and 16 random bytes — and S is 32 random bytes,
// base64url. Only the SHA-256 of the whole token is stored: a copy of the
// store does not yield usable tokens, and the token's entropy makes a slow
// hash unnecessary. The store keeps one record per family (its live
// token), so a used token is recognised as reuse by the family it names;
// tokens issued before families were named (a bare "S") still rotate,
// into named ones.
//
// Policy: a user holds at most Config.MaxRefreshFamilies live families
// (logins); a login beyond it ends the oldest. A user may refresh at most
// Config.RefreshPerMinute times a minute over all families; beyond it
// Refresh answers *ThrottledError without consuming the token.

func newRefreshToken(user uint64, family []byte) (token string, hash []byte, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	name := base64.RawURLEncoding.EncodeToString(append(itob(user), family...))
	token = name + "." + base64.RawURLEncoding.EncodeToString(b[:])
	return token, hashRefresh(token), nil
}

func hashRefresh(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// familyOf returns the user and family a token names, or zero values for
// a token that names none (issued before families were named, or not a
// token at all).
func familyOf(token string) (user uint64, family []byte) {
	name, _, ok := strings.Cut(token, ".")
	if !ok {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(name)
	if err != nil || len(b) != 8+16 {
		return 0, nil
	}
	return btoi(b[:8]), b[8:]
}

// familyID is how the store names a family: its random part, base64url.
func familyID(family []byte) string {
	if family == nil {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(family)
}

// IssueRefreshToken starts a new token family for u (at login) and returns
// its first token. It ends u's oldest families beyond the cap.
func (s *Service) IssueRefreshToken(u *store.User) (string, error) {
	family := make([]byte, 16)
	if _, err := rand.Read(family); err != nil {
		return "", err
	}
	token, hash, err := newRefreshToken(u.ID, family)
	if err != nil {
		return "", err
	}
	now := s.now()
	_, err = s.db.PutRefreshToken(&store.RefreshToken{
		Hash:      hash,
		UserID:    u.ID,
		Family:    familyID(family),
		StartedAt: now,
		CreatedAt: now,
		ExpiresAt: now.Add(s.cfg.RefreshTTL),
	}, s.cfg.MaxRefreshFamilies, now)
	if err != nil {
		return "", fmt.Errorf("store refresh token: %w", err)
	}
	return token, nil
}

// Refresh consumes a refresh token and returns its user, a new access
// token and the next refresh token of the family. A token presented a
// second time revokes its family and gives ErrRefreshReuse; unknown,
// expired and revoked tokens, and those of deleted or disabled users, give
// ErrInvalidToken; a user over the refresh rate gets *ThrottledError, and
// the token stays valid.
func (s *Service) Refresh(token string) (u *store.User, access, refresh string, err error) {
	now := s.now()
	hash := hashRefresh(token)
	// Only a live token spends its user's budget: a forged one naming a
	// user must not use up that user's refreshes.
	live, err := s.db.RefreshTokenByHash(hash)
	switch {
	case err == nil:
		if wait := s.refreshes.Take(live.UserID, int64(s.cfg.RefreshPerMinute), now); wait > 0 {
			return nil, "", "", &ThrottledError{RetryAfter: wait}
		}
	case !errors.Is(err, store.ErrNotFound):
		return nil, "", "", err
	}
	user, family := familyOf(token)
	if live != nil {
		user, family = live.UserID, nil
		if family, err = base64.RawURLEncoding.DecodeString(live.Family); err != nil {
			family = nil
		}
	}
	next, nextHash, err := newRefreshToken(user, family)
	if err != nil {
		return nil, "", "", err
	}
	old, err := s.db.RotateRefreshToken(hash, user, familyID(family), &store.RefreshToken{
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
	if errors.Is(err, store.ErrNotFound) || (err == nil && (u.Disabled || !old.StartedAt.After(u.TokensValidAfter))) {
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

func itob(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func btoi(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
